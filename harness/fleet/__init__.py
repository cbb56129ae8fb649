"""Remote hosts: inventories, SSH transport, pushing, engine runtimes, host locks."""
