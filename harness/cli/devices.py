"""`harness devices check`: probe every host of an inventory in parallel."""

from __future__ import annotations

import argparse

from ._targets import DEVICES_HELP, TRUST_HELP


def add_arguments(subparsers) -> None:
    """Add the `devices check` command to the harness sub-parsers."""
    d = subparsers.add_parser("devices", help="inventory tools",
                              description="Tools for a devices inventory (TOML).")
    dsub = d.add_subparsers(dest="devices_command", required=True, metavar="SUBCOMMAND")
    dc = dsub.add_parser("check", help="probe every host of an inventory in parallel",
                         description="Connect to every selected host, check its Python, "
                                     "architecture and engines; one line per host.")
    dc.add_argument("inventory", help="devices inventory (TOML)")
    dc.add_argument("--devices", help=DEVICES_HELP)
    dc.add_argument("--trust-new-host-key", action="store_true", help=TRUST_HELP)
    dc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`devices check`: exit 1 when any host fails its check."""
    from ..fleet.check import check_hosts
    from ..fleet.inventory import load_inventory, select
    hosts = select(load_inventory(args.inventory), args.devices)
    results = check_hosts(hosts, args.trust_new_host_key)
    for r in results:
        print(r.line())
    bad = sum(not r.ok for r in results)
    print(f"{len(results) - bad} of {len(results)} hosts ok")
    return 1 if bad else 0
