"""`python -m tests.langgraph_suites`: LangGraph's store tests against our four stores.

Options: `--stores postgres,redis,...`, `--pg-url URL`, `--redis-url URL` (embedded servers
when not given), `--cluster` (the Redis URL is a cluster node), `--json PATH`, and anything
after `--` goes to pytest (e.g. `-- -k vector`). Exits 1 when any test failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from dataclasses import asdict

from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.langgraph_suites._run import STORES, TABLE_HEAD, files_for, run_file
from tests.langgraph_suites._sources import lay_out


def main(argv: list[str]) -> int:
    """Run, print the table and the failures, return the exit code."""
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="python -m tests.langgraph_suites")
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--pg-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    roots = lay_out()
    root = next(iter(roots.values())).parent
    outcomes = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        pg_url = args.pg_url or stack.enter_context(EmbeddedPostgres()).url
        redis_url = args.redis_url or stack.enter_context(EmbeddedRedis()).url
        print(TABLE_HEAD)
        for store in args.stores.split(","):
            for suite, file in files_for(store):
                outcome = run_file(
                    root,
                    store,
                    suite,
                    file,
                    pg_url=pg_url,
                    redis_url=redis_url,
                    cluster=args.cluster,
                    extra=tuple(extra),
                )
                outcomes.append(outcome)
                print(outcome.row(), flush=True)
    failed = [(o.store, n) for o in outcomes for n in o.failed]
    for store, nodeid in failed:
        print(f"FAILED [{store}] {nodeid}")
    broken = [o for o in outcomes if o.exit_code not in (0, 1)]
    for o in broken:
        print(f"ERROR [{o.store}] {o.suite}/{o.file} exited {o.exit_code}:\n{o.output[-3000:]}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(o) for o in outcomes], out, indent=1)
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
