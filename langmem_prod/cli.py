"""The `langmem-prod` command: the demo, and schema setup for a real server."""

from __future__ import annotations

import argparse
import logging
import sys

from langmem_prod.demo import BACKENDS, run_demo
from langmem_prod.errors import LangmemError
from langmem_prod.store import PostgresStore


def _demo(args: argparse.Namespace) -> int:
    if not args.url:
        server = "Valkey 9" if args.store == "redis" else "PostgreSQL 18 with pgvector"
        print(f"starting a throwaway {server} ...", flush=True)
    for line in run_demo(args.url, args.store):
        print(line)
    return 0


def _setup(args: argparse.Namespace) -> int:
    with PostgresStore.from_conn_string(args.url, schema=args.schema, start_sweeper=False) as store:
        store.setup()
    print(f"schema {args.schema!r} is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `langmem-prod` command."""
    parser = argparse.ArgumentParser(prog="langmem-prod", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="an agent that remembers across conversations")
    demo.add_argument(
        "--store",
        choices=BACKENDS,
        default="postgres",
        help="the store to run on (default: postgres)",
    )
    demo.add_argument(
        "--url", help="PostgreSQL or Redis URL of that store (default: start an embedded server)"
    )
    demo.set_defaults(run=_demo)
    setup = commands.add_parser("setup", help="create or upgrade the store's schema")
    setup.add_argument("--url", required=True, help="PostgreSQL URL")
    setup.add_argument("--schema", default="langmem", help="schema name (default: langmem)")
    setup.set_defaults(run=_setup)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except LangmemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
