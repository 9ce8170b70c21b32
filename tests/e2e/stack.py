"""
The processes of a real Airflow deployment on this machine, started and stopped by PID for the e2e run.

:class:`Stack` starts a private PostgreSQL cluster (the metadata database), the local DynamoDB server (dynalite), a
latency proxy in front of it, a moto server for DynamoDB's native exports and their S3 bucket, and Airflow's
``scheduler``, ``dag-processor``, ``api-server`` and ``triggerer`` with the LocalExecutor, each in its own process
group. :meth:`Stack.stop` ends every one of them, and only them: the process groups it started (the
LocalExecutor's workers and task processes are in the scheduler's group) and the PostgreSQL server whose PID its
cluster recorded.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools.local_dynamodb import PROJECT_ROOT, free_port, install_dynalite

VENV_BIN = Path(sys.executable).parent

#: DAGs only the e2e run loads, beside the example DAGs.
E2E_DAGS = Path(__file__).resolve().parent / "dags"


class StackError(RuntimeError):
    """A component could not be installed or started."""


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``condition`` until it returns something truthy, and return that; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def find_pg_bin() -> Path | None:
    """The ``bin`` directory of the newest installed Debian PostgreSQL server, or ``None``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda path: int(path.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_postgresql() -> Path:
    """Return the PostgreSQL server's ``bin`` directory, installing Debian's ``postgresql`` with apt if absent."""
    pg_bin = find_pg_bin()
    if pg_bin is not None:
        return pg_bin
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise StackError("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/pg_ctl): apt-get install postgresql")
    print("Installing PostgreSQL with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise StackError("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/pg_ctl is there")
    return pg_bin


def ensure_python_package(module: str, requirement: str) -> None:
    """Install ``requirement`` into this virtual environment (with uv when it is there) unless ``module`` imports."""
    try:
        __import__(module)
        return
    except ImportError:
        pass
    uv = VENV_BIN / "uv"
    if uv.exists():
        command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable, requirement]
    else:
        command = [sys.executable, "-m", "pip", "install", "--quiet", requirement]
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)


class Stack:
    """
    The processes of one e2e run, all under ``root`` (data, logs, AIRFLOW_HOME), stopped by :meth:`stop`.

    :param root: a fresh directory for this run
    :param latency_ms: the latency the proxy adds to each DynamoDB request the Airflow tasks send
    """

    def __init__(self, root: Path, *, latency_ms: float) -> None:
        self.root = root
        self.latency_ms = latency_ms
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.pg_root: Path | None = None
        self.pg_data: Path | None = None
        self.pg_bin: Path | None = None
        self.env: dict[str, str] = {}
        self.dynalite_url = ""
        self.proxy_url = ""
        self.moto_url = ""
        self.export_release_file = root / "release-native-exports"
        self.api_url = ""
        self.pg_port = 0
        self._stopped = False

    # -- processes -------------------------------------------------------------------------------------------------

    def spawn(self, name: str, command: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``command`` in a process group of its own, output to ``logs/{name}.log``; remember its PID."""
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )
        self.processes.append((name, process))
        return process

    def check_alive(self) -> None:
        """Raise if a component this stack started has exited."""
        for name, process in self.processes:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise StackError(f"{name} (pid {process.pid}) exited with code {process.returncode}:\n{tail}")

    def stop(self) -> None:
        """Stop every process this stack started: SIGTERM to each process group, SIGKILL after 15 s; then PostgreSQL."""
        if self._stopped:
            return
        self._stopped = True
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, process in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The group may outlive its leader (a worker still ending): end what is left of it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.wait(timeout=5)
        self._stop_postgres()

    def remove_files(self) -> None:
        """Delete the run's files (call after :meth:`stop`)."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.pg_root is not None:
            shutil.rmtree(self.pg_root, ignore_errors=True)

    # -- PostgreSQL ------------------------------------------------------------------------------------------------

    def _as_postgres(self, command: list[str]) -> list[str]:
        # The server refuses to run as root: as root, run it as the postgres user of Debian's package.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start_postgres(self) -> str:
        """Start a private PostgreSQL cluster on a free port with a private socket directory; return its URL."""
        self.pg_bin = ensure_postgresql()
        # Under /tmp, not the project: the postgres user may not be allowed into the directory of the clone.
        pg_root = self.pg_root = Path(tempfile.mkdtemp(prefix="dynamoscan-e2e-postgres-"))
        self.pg_data, sockets = pg_root / "data", pg_root / "sockets"
        sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(pg_root, "postgres")
            shutil.chown(sockets, "postgres")
        self.pg_port = free_port()
        subprocess.run(
            self._as_postgres(
                [str(self.pg_bin / "initdb"), "-D", str(self.pg_data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
            ),
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        options = f"-p {self.pg_port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        server_log = str(pg_root / "server.log")
        pg_ctl = [str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_data), "-o", options, "-l", server_log]
        subprocess.run(
            self._as_postgres([*pg_ctl, "-w", "-t", "60", "start"]),
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-qc", "CREATE DATABASE airflow"],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.pg_port}/airflow"

    def _stop_postgres(self) -> None:
        if self.pg_data is None or not (self.pg_data / "postmaster.pid").exists():
            return
        pid = int((self.pg_data / "postmaster.pid").read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    # -- DynamoDB --------------------------------------------------------------------------------------------------

    def start_dynamodb(self) -> None:
        """Start dynalite on a free port, and the latency proxy in front of it that the Airflow tasks use."""
        cli = install_dynalite()
        port = free_port()
        command = [
            "node", str(cli), "--host", "127.0.0.1", "--port", str(port),
            "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0",
        ]  # fmt: skip
        process = self.spawn("dynalite", command)
        self.dynalite_url = f"http://127.0.0.1:{port}"
        wait_for("dynalite", lambda: process.poll() is None and http_ok(self.dynalite_url + "/"), 30, 0.05)
        proxy_port = free_port()
        command = [
            sys.executable, "-m", "devtools.dynamodb_proxy", "--upstream", self.dynalite_url,
            "--port", str(proxy_port), "--latency-ms", str(self.latency_ms),
        ]  # fmt: skip
        self.spawn("dynamodb-proxy", command, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        wait_for("the DynamoDB proxy", lambda: self.check_alive() or http_ok(self.proxy_url + "/"), 30, 0.1)

    def start_moto(self) -> None:
        """Start the moto server of native exports (DynamoDB + S3; exports held until :attr:`export_release_file`)."""
        port = free_port()
        command = [
            sys.executable, "-m", "tests.e2e.moto_export_server", "--port", str(port),
            "--release-file", str(self.export_release_file),
        ]  # fmt: skip
        self.spawn("moto", command, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
        self.moto_url = f"http://127.0.0.1:{port}"
        wait_for("the moto server", lambda: self.check_alive() or http_ok(self.moto_url + "/"), 60, 0.2)

    def dags_folder(self) -> Path:
        """The DAGs folder: the example DAGs and the e2e run's own DAGs (tests/e2e/dags/), copied side by side."""
        folder = self.root / "dags"
        folder.mkdir()
        for source in (*sorted((PROJECT_ROOT / "example_dags").glob("*.py")), *sorted(E2E_DAGS.glob("*.py"))):
            shutil.copy(source, folder / source.name)
        return folder

    # -- Airflow ---------------------------------------------------------------------------------------------------

    def airflow_env(self, database_url: str, *, api_port: int) -> dict[str, str]:
        """The environment of every Airflow component: one throwaway AIRFLOW_HOME, LocalExecutor, short timeouts."""
        home = self.root / "airflow-home"
        home.mkdir()
        connection = {
            "conn_type": "aws",
            "login": "e2e-access-key",
            "password": "e2e-secret-key",
            "extra": {"region_name": "us-east-1", "endpoint_url": self.proxy_url},
        }
        self.api_url = f"http://127.0.0.1:{api_port}"
        settings = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # A busy machine can keep the API server from answering for many seconds (the first task of a DAG
            # loads it there): tasks wait for it rather than fail.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            # Each task process parses its DAG file again; 8 of them at once on 2 busy cores take far longer
            # than the default 30 s allows.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
            # The native export's table and buckets, on the moto server (see tests/e2e/moto_export_server.py).
            "AIRFLOW_CONN_AWS_MOTO": json.dumps(
                {**connection, "extra": {"region_name": "us-east-1", "endpoint_url": self.moto_url}}
            ),
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        self.env = {**os.environ, **settings}
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(name, None)
        return self.env

    def airflow(self, *arguments: str) -> list[str]:
        """The command line of ``airflow ARGUMENTS`` in this virtual environment."""
        return [str(VENV_BIN / "airflow"), *arguments]

    def start_migration(self) -> subprocess.Popen[bytes]:
        """Start ``airflow db migrate``; :meth:`finish_migration` waits for it."""
        return self.spawn("db-migrate", self.airflow("db", "migrate"), env=self.env)

    def finish_migration(self, process: subprocess.Popen[bytes]) -> None:
        """Wait for ``airflow db migrate``; raise with its output if it failed."""
        if process.wait(timeout=600) != 0:
            tail = (self.logs / "db-migrate.log").read_text(errors="replace")[-3000:]
            raise StackError(f"airflow db migrate failed:\n{tail}")
        self.processes = [(name, other) for name, other in self.processes if other is not process]

    def start_airflow(self) -> None:
        """Start the api-server, scheduler, dag-processor and triggerer; wait until the API answers."""
        port = self.env["AIRFLOW__API__PORT"]
        self.spawn("api-server", self.airflow("api-server", "--host", "127.0.0.1", "--port", port), env=self.env)
        self.spawn("scheduler", self.airflow("scheduler"), env=self.env)
        self.spawn("dag-processor", self.airflow("dag-processor"), env=self.env)
        self.spawn("triggerer", self.airflow("triggerer"), env=self.env)
        wait_for(
            "the API server", lambda: self.check_alive() or http_ok(f"{self.api_url}/api/v2/monitor/health"), 300, 0.5
        )
        # The execution API (what task processes call) builds its routes on its first request: do that now.
        wait_for("the execution API", lambda: http_ok(f"{self.api_url}/execution/health"), 300, 0.5)
