"""Real servers for tests, started on 127.0.0.1 and stopped by PID: Chroma (`chroma run`) and PostgreSQL.

Each is a context manager yielding its URL. PostgreSQL runs a throwaway cluster made with
``initdb`` in a temporary folder (as the ``postgres`` user when the tests run as root, through ``setpriv``,
which becomes the server so that its PID is the one stopped; PostgreSQL refuses to run as root). When the server
programs are not installed the test is skipped with the reason, or fails under CI (``conftest.unavailable``;
``make test`` installs Debian's ``postgresql``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import require_program, unavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End a process this test started, by its PID: politely, then for sure."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(ready, proc: subprocess.Popen, log: Path, what: str, seconds: float = 60) -> None:
    """Poll ``ready()`` until it holds; a process that dies or a deadline that passes fails the test with its log."""
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"{what} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)


@contextlib.contextmanager
def chroma_server(folder: Path):
    """`chroma run` on a free loopback port, storing in ``folder``; yields its URL."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        unavailable(f"the `chroma` command is not in {chroma.parent} (chromadb installs it: make install)")
    port = free_port()
    log = folder.parent / f"chroma-{port}.log"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"

    wait_until(lambda: http_ok(f"{url}/api/v2/heartbeat"), proc, log, "the Chroma server")
    try:
        yield url, proc
    finally:
        stop(proc)


def http_ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres_server(folder: Path):
    """A fresh PostgreSQL cluster on a free loopback port; yields ``postgresql://`` URL of database ``arag``."""
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL's initdb is not installed (Debian's postgresql provides it; make test installs it)")
    as_root = os.geteuid() == 0
    if as_root:  # PostgreSQL refuses to run as root: it is started as the postgres user
        require_program("setpriv", package="Debian's util-linux")
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "pgdata"
    prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"] if as_root else []
    if as_root:
        shutil.chown(folder, "postgres")
        for parent in folder.parents:  # the server user must be able to reach the folder
            if parent == Path(parent.anchor):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "arag", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    port = free_port()
    log = folder / "postgres.log"
    if as_root:
        log.touch()
        shutil.chown(log, "postgres")
    proc = subprocess.Popen([*prefix, str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(folder), "-c", "fsync=off"], stdout=log.open("a"), stderr=subprocess.STDOUT)

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            return False
        done = subprocess.run([*prefix, str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "arag", "-d", "postgres",
                               "-c", "CREATE DATABASE arag"], capture_output=True, text=True)
        return done.returncode == 0 or "already exists" in done.stderr

    wait_until(ready, proc, log, "PostgreSQL")
    try:
        yield f"postgresql://arag@127.0.0.1:{port}/arag"
    finally:
        stop(proc)
