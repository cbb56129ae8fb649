"""Configuration: the TOML table reader (`toml`), suite files (`suite`) and one-off suites from
command-line flags (`flags`). Device inventories are read by `harness.fleet.inventory`."""
