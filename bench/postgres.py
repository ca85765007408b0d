"""A PostgreSQL database for a bench: a fresh database on a server the caller names, or a throwaway
server of its own started from Debian's binaries (`apt-get install postgresql`), the way .ci/run
starts the tests' server: a temporary data folder, a free loopback port, stopped at the end.

    with postgres_database(max_connections=600) as url: ...
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, text


class NoPostgres(RuntimeError):
    """No server was named and none can be started here; the message says what is missing."""


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise NoPostgres("no PostgreSQL binaries (apt-get install postgresql), and no --postgres URL given")
    return Path(found[-1]).parent


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as `postgres` then."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise NoPostgres("running as root without runuser: cannot start PostgreSQL as its own user")
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_server(max_connections: int = 100, **settings: str) -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for the duration of the block; yields its admin URL.
    `settings`: further server settings (`shared_buffers="256MB"`)."""
    binaries = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="transferlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    options = {"max_connections": str(max_connections), "listen_addresses": "127.0.0.1",
               "unix_socket_directories": str(folder), **settings}
    flags = " ".join(f"-c {key}={value}" for key, value in options.items())
    subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-o", f"-p {port} {flags}",
                                    "-l", str(folder / "log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str, prefix: str = "bench") -> str:
    """A new, empty database on the server at `server_url`; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def server_cpu_seconds(url: str) -> float | None:
    """CPU seconds the server at `url` has used so far (its processes and those that ended), when it
    runs on this machine and /proc shows it; else None."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            data = conn.execute(text("SHOW data_directory")).scalar()
        pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for stat in [Path(f"/proc/{pid}/stat")] + [p / "stat" for p in Path("/proc").iterdir()
                                                    if p.name.isdigit() and _parent(p) == pid]:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15 if stat.parent.name == str(pid) else 13]) / ticks
        return total
    except (OSError, ValueError, IndexError):
        return None
    finally:
        engine.dispose()


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def postgres_database(server_url: str | None = None, max_connections: int = 100) -> Iterator[str]:
    """A fresh database: on `server_url` when given, else on a throwaway server of this process's own
    (with `max_connections`). Raises NoPostgres when neither is possible."""
    if server_url:
        yield fresh_database(server_url)
        return
    with throwaway_server(max_connections) as admin:
        yield fresh_database(admin)
