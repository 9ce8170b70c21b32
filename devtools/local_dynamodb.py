"""
Start and stop a local DynamoDB server (dynalite, an implementation of DynamoDB's HTTP API on LevelDB).

Used by the test suite, the demo and the benchmarks. ``python -m devtools.local_dynamodb install`` installs it
into ``.local/dynalite`` with npm; :func:`running_dynalite` starts it on a free port of 127.0.0.1 and stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DYNALITE_VERSION = "4.0.0"
DYNALITE_PREFIX = PROJECT_ROOT / ".local" / "dynalite"
DYNALITE_CLI = DYNALITE_PREFIX / "node_modules" / "dynalite" / "cli.js"


class LocalDynamoDBError(RuntimeError):
    """The local DynamoDB server could not be installed or started."""


def install_dynalite() -> Path:
    """Install dynalite with npm into ``.local/dynalite`` unless it is there; return the path of its CLI."""
    if DYNALITE_CLI.exists():
        return DYNALITE_CLI
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise LocalDynamoDBError(
                f"'{tool}' was not found on PATH: the local DynamoDB server (dynalite) needs Node.js and npm. "
                "Install them (e.g. 'apt-get install nodejs npm') and try again."
            )
    command = [
        "npm", "install", "--no-save", "--no-audit", "--no-fund",
        "--prefix", str(DYNALITE_PREFIX), f"dynalite@{DYNALITE_VERSION}",
    ]  # fmt: skip
    DYNALITE_PREFIX.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not DYNALITE_CLI.exists():
        raise LocalDynamoDBError(f"npm could not install dynalite@{DYNALITE_VERSION}:\n{result.stderr[-2000:]}")
    return DYNALITE_CLI


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(endpoint_url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``GET endpoint_url`` until it answers 200, the process exits, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalDynamoDBError(f"dynalite exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(endpoint_url + "/", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise LocalDynamoDBError(f"dynalite did not answer at {endpoint_url} within {timeout:.0f} s")


@contextlib.contextmanager
def running_dynalite(port: int | None = None, *, data_dir: str | None = None) -> Iterator[str]:
    """
    Run dynalite on 127.0.0.1 for the duration of the ``with`` block; yield its endpoint URL.

    Tables live in memory unless ``data_dir`` is given.
    """
    cli = install_dynalite()
    port = port or free_port()
    command = [
        "node", str(cli), "--host", "127.0.0.1", "--port", str(port),
        "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0",
    ]  # fmt: skip
    if data_dir:
        command += ["--path", data_dir]
    endpoint_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_ready(endpoint_url, process)
            except LocalDynamoDBError:
                log_file.seek(0)
                sys.stderr.write(log_file.read().decode(errors="replace")[-2000:])
                raise
            yield endpoint_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str]) -> int:
    """``install`` installs dynalite; ``serve [PORT]`` runs it in the foreground until interrupted."""
    if argv[:1] == ["install"]:
        print(install_dynalite())
        return 0
    if argv[:1] == ["serve"]:
        port = int(argv[1]) if len(argv) > 1 else int(os.environ.get("DYNALITE_PORT", "0")) or None
        with running_dynalite(port) as endpoint_url:
            print(f"dynalite listening at {endpoint_url}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    print("usage: python -m devtools.local_dynamodb install | serve [PORT]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
