"""The `langmem-prod` command: the demo, a deployment's tables, master keys.

Rules:
- `setup --url URL` opens one connection (waiting at most `--timeout` seconds), reads the
  installed migration versions, runs the store's `setup()` on that connection (the vector
  tables too with `--index-dims N`, for `--distance`, the chat histories' with
  `--history`), reads them again and says what changed: "created", "upgraded" or "up to
  date", with each track's version; a Redis URL is checked (server version, scripts):
  Redis has no tables;
- what the user must fix (the server unreachable, a bad URL, authentication, a server
  without pgvector, a schema newer than this code) is one line on stderr and exit status
  1, never a traceback; the URL is never printed (it may hold a password), and `--url`
  may come from `$LANGMEM_URL` so it stays out of the shell's history;
- `new-master-key --id ID` prints one `id:base64key` entry for `LANGMEM_MASTER_KEYS`
  (32 random bytes); it checks the id the way `Keyring.from_env` will;
- the library never prints; this module does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, NoReturn, cast

import psycopg
import redis
from langgraph.store.base import IndexConfig
from psycopg import sql

from langmem_prod.demo import BACKENDS, run_demo
from langmem_prod.errors import ConfigurationError, LangmemError
from langmem_prod.history import PostgresChatMessageHistory
from langmem_prod.security import Keyring, new_master_key
from langmem_prod.store import PostgresStore, RedisStore
from langmem_prod.store._index import DISTANCES
from langmem_prod.store.postgres._errors import translate

PROG = "langmem-prod"
URL_VARIABLE = "LANGMEM_URL"
_BAD_URL = (
    "--url is not a valid PostgreSQL URL (postgresql://user:password@host:5432/dbname) "
    "or key=value connection string"
)
_VERSIONS = sql.SQL("SELECT track, max(version) FROM {}.migrations GROUP BY track")


def version() -> str:
    """The installed version of langmem_prod ("unknown" when it is not installed).

    >>> version() != ""
    True
    """
    try:
        return metadata.version("langmem_prod")
    except metadata.PackageNotFoundError:
        return "unknown"


def describe_change(schema: str, before: Mapping[str, int], after: Mapping[str, int]) -> str:
    """One line saying truthfully what a setup did to `schema`'s migration tracks.

    >>> describe_change("app", {}, {"core": 7, "rls": 3})
    "created schema 'app' (core 7, rls 3)"
    >>> describe_change("app", {"core": 7, "rls": 3}, {"core": 7, "rls": 3, "vectors": 1})
    "upgraded schema 'app' (core 7, rls 3, vectors 0 -> 1)"
    >>> describe_change("app", {"core": 7}, {"core": 7})
    "schema 'app' is up to date (core 7)"
    """
    if not before:
        return f"created schema {schema!r} ({', '.join(f'{t} {after[t]}' for t in sorted(after))})"
    tracks = ", ".join(
        f"{track} {after[track]}"
        if before.get(track) == after[track]
        else f"{track} {before.get(track, 0)} -> {after[track]}"
        for track in sorted(after)
    )
    if dict(before) == dict(after):
        return f"schema {schema!r} is up to date ({tracks})"
    return f"upgraded schema {schema!r} ({tracks})"


def _installed(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    found = conn.execute(
        "SELECT to_regclass(format('%%I.migrations', %s::text)) IS NOT NULL", (schema,)
    ).fetchone()
    if not found or not found[0]:
        return {}
    rows = conn.execute(_VERSIONS.format(sql.Identifier(schema))).fetchall()
    return {str(track): int(number) for track, number in rows}


def _has_vector_index(conn: psycopg.Connection[Any], args: argparse.Namespace) -> bool:
    name = sql.Identifier(args.schema, "vectors_embedding_hnsw_idx").as_string(None)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _no_embedding(texts: Sequence[str]) -> list[list[float]]:
    raise ConfigurationError("langmem-prod setup creates tables; it embeds nothing")


def _connect(url: str, timeout: float) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(2, round(timeout)))
    except psycopg.ProgrammingError:
        _fail(_BAD_URL)
    except psycopg.OperationalError as exc:
        _fail(f"cannot connect to PostgreSQL: {_one_line(exc).removeprefix('connection failed: ')}")


def _setup_postgres(args: argparse.Namespace) -> str:
    index, distance = None, args.distance or "cosine"
    if args.index_dims:
        settings = {"dims": args.index_dims, "embed": _no_embedding, "distance_type": distance}
        index = cast(IndexConfig, settings)  # LangGraph's PostgresIndexConfig has the key
    with _connect(args.url, args.timeout) as conn:
        try:
            before, had_index = _installed(conn, args.schema), _has_vector_index(conn, args)
            store = PostgresStore(
                conn, schema=args.schema, index=index, start_sweeper=False, track_access="off"
            )
            with store:
                store.setup()
            if args.history:
                PostgresChatMessageHistory("setup", conn, schema=args.schema).setup()
            said = describe_change(args.schema, before, _installed(conn, args.schema))
            if before.get("vectors") and not had_index and _has_vector_index(conn, args):
                said += f"; rebuilt its vector index for distance_type {distance!r}"
            return said
        except psycopg.Error as exc:
            raise translate(exc, args.schema) from exc


def _setup_redis(args: argparse.Namespace) -> str:
    if args.index_dims or args.distance or args.history:
        _fail(
            "--index-dims, --distance and --history are for PostgreSQL; Redis creates keys on write"
        )
    try:
        client = redis.Redis.from_url(
            args.url, socket_connect_timeout=args.timeout, socket_timeout=args.timeout
        )
    except ValueError:
        _fail("--url is not a valid Redis URL (redis://[user:password@]host:6379/0)")
    try:
        with RedisStore(client, start_sweeper=False, track_access="off") as store:
            store.setup()
        info = client.info("server")
    finally:
        client.close()
    name = "Valkey" if "valkey_version" in info else "Redis"
    found = info.get("valkey_version") or info.get("redis_version")
    return f"{name} {found} is ready for the store (its scripts are loaded; Redis has no tables)"


def _setup(args: argparse.Namespace) -> int:
    if not args.url:
        _fail(f"setup needs --url (or ${URL_VARIABLE})")
    if args.index_dims is not None and args.index_dims < 1:
        _fail("--index-dims must be a positive number of dimensions, e.g. 1536")
    if args.distance and not args.index_dims:
        _fail("--distance needs --index-dims: it chooses the vector index's distance type")
    if args.timeout <= 0:
        _fail("--timeout must be a positive number of seconds")
    redis_url = args.url.startswith(("redis://", "rediss://", "unix://"))
    print(_setup_redis(args) if redis_url else _setup_postgres(args))
    return 0


def _new_master_key(args: argparse.Namespace) -> int:
    entry = f"{args.id}:{new_master_key()}"
    try:
        Keyring.from_env({"LANGMEM_MASTER_KEYS": entry})  # refuses an id it would not read
    except ConfigurationError:
        _fail(
            "--id must be 1-32 letters, digits, '.', '_' or '-', starting with one of the first two"
        )
    print(entry)
    return 0


def _demo(args: argparse.Namespace) -> int:
    if not args.url:
        server = "Valkey 9" if args.store == "redis" else "PostgreSQL 18 with pgvector"
        print(f"starting a throwaway {server} ...", flush=True)
    for line in run_demo(args.url, args.store):
        print(line)
    return 0


def _one_line(exc: BaseException) -> str:
    """An error's text as one line (libpq and servers add hints on further lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _fail(message: str) -> NoReturn:
    raise SystemExit(f"{PROG}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="an agent that remembers across conversations")
    demo.add_argument("--store", choices=BACKENDS, default="postgres", help="default: postgres")
    demo.add_argument(
        "--url", help="PostgreSQL or Redis URL of that store (default: start an embedded server)"
    )
    demo.set_defaults(run=_demo)
    setup = commands.add_parser(
        "setup",
        help="create or upgrade a deployment's tables before the application runs",
        description="Create or upgrade the store's tables; say what changed.",
    )
    setup.add_argument(
        "--url",
        default=os.environ.get(URL_VARIABLE),
        help=f"PostgreSQL URL (or a Redis URL, to check the server); default ${URL_VARIABLE}",
    )
    setup.add_argument("--schema", default="langmem", help="schema name (default: langmem)")
    setup.add_argument(
        "--index-dims",
        type=int,
        metavar="N",
        help="also create the vector tables for semantic search, for N-dimensional embeddings "
        "(the `dims` of the store's `index=`; needs pgvector)",
    )
    setup.add_argument(
        "--distance",
        choices=DISTANCES,
        help="the vector index's distance type, the `distance_type` of the store's `index=` "
        "(default: cosine)",
    )
    setup.add_argument(
        "--history", action="store_true", help="also create the chat histories' tables"
    )
    setup.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the server (default: 10)",
    )
    setup.set_defaults(run=_setup)
    key = commands.add_parser(
        "new-master-key",
        help="print a new master key entry for LANGMEM_MASTER_KEYS (id:base64key)",
        description="Print `ID:KEY`, KEY being 32 random bytes in base64, for "
        "LANGMEM_MASTER_KEYS (entries separated by commas; the first is primary unless "
        "LANGMEM_PRIMARY_KEY_ID names another). Keep it in a secrets manager.",
    )
    key.add_argument("--id", required=True, help="the key's id, e.g. 2026-12 (1-32 characters)")
    key.set_defaults(run=_new_master_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `langmem-prod` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # the error below says it once
    try:
        return int(args.run(args))
    except (LangmemError, redis.RedisError, OSError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
