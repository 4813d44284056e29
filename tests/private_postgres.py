"""A PostgreSQL cluster of its own for one test host: `initdb` + `postgres` from the system's binaries.

The machine's own PostgreSQL listens on 127.0.0.1 of this machine only; a server host in a network
namespace needs one on its own address. It runs as the `postgres` user (initdb refuses root) from a
folder under /tmp (pytest's folders are root-only), requires a password from other hosts, and is
stopped and removed on exit. No pytest here.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.netns import Host

USER = "inspect"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder with initdb, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return found[-1].parent if found else None


def unavailable() -> str | None:
    if binaries() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if shutil.which("runuser") is None or shutil.which("setpriv") is None or subprocess.run(
            ["id", "postgres"], capture_output=True, check=False).returncode != 0:
        return "no `postgres` user (or `runuser`, `setpriv`) to run a private cluster as"
    return None


@contextmanager
def private_postgres(host: Host, subnet: str, env: dict[str, str], log_path: Path, timeout_s: float = 60
                     ) -> Iterator[str]:
    """Yield the SQLAlchemy URL of database `inspect` on a cluster listening on `host`'s address only; hosts in
    `subnet` (`10.x.y`) must give the password."""
    bin_dir = binaries()
    assert bin_dir is not None, unavailable()
    password = secrets.token_urlsafe(18)
    base = Path(tempfile.mkdtemp(prefix="gi-pg-", dir="/tmp"))
    process: subprocess.Popen | None = None
    try:
        (base / "password").write_text(password)
        shutil.chown(base, "postgres")
        shutil.chown(base / "password", "postgres")
        data = base / "data"
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(data), "-U", USER,
                        "--pwfile", str(base / "password"), "--auth-host=scram-sha-256", "--auth-local=peer",
                        "-E", "UTF8", "--no-sync"], cwd=base, check=True, capture_output=True, timeout=120)
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {subnet}.0/24 scram-sha-256\n")
        process = host.popen([str(bin_dir / "postgres"), "-D", str(data), "-c", f"listen_addresses={host.address}",
                              "-c", f"unix_socket_directories={base}", "-c", "fsync=off", "-c", "port=5432"],
                             env, log_path, cwd=base, user="postgres")
        admin = f"host={host.address} port=5432 user={USER} password={password} dbname=postgres connect_timeout=2"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with host.call(psycopg.connect, admin, autocommit=True) as connection:
                    host.call(connection.execute, "CREATE DATABASE inspect")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private PostgreSQL did not start:\n{log_path.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield f"postgresql+psycopg://{USER}:{password}@{host.address}:5432/inspect"
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(base, ignore_errors=True)
