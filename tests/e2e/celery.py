"""
`make e2e-celery`: the parallel export on the CeleryExecutor with two workers, as a deployment of several machines
runs it, and one "machine" lost in the middle of an export.

The deployment: Redis as the broker (Debian's ``redis-server``, installed with apt if absent, on a free port of
127.0.0.1), PostgreSQL as the metadata database and Celery's result backend, the api-server, scheduler and
dag-processor, and two ``airflow celery worker`` processes, each in its own session and with its own hostname
(``[core] hostname_callable``), as two machines would have. The Celery provider and what it needs come from
``tests/e2e/celery-requirements.txt`` (exact versions), installed into ``.local/e2e-celery/`` and put on the Airflow
processes' ``PYTHONPATH``, never into the project's virtual environment. A latency proxy slows every DynamoDB
request of the tasks so a segment's scan lasts long enough to be caught in the middle.

Checks:

1. the 8 mapped ``export_segment`` tasks ran on both workers (each task instance's ``hostname``) and overlapped in
   time; the export holds every item once, each value exact;
2. SIGKILL to every process of one worker's session (the worker, its pool and the task processes, which the
   supervisor puts in process groups of their own) while its segments scan: the run still succeeds, on the other
   worker, the export is exact with every item once and no temporary file is left; the run prints the time from
   the kill to the run's success and the worker each retry ran on.

``python -m tests.e2e.celery [--keep]``; the run's files go to ``.local/e2e/celery-*`` and are removed at the end
unless ``--keep`` or a check failed. It ends with ``N passed, N failed in S s`` and stops every process it started.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from devtools.local_dynamodb import PROJECT_ROOT, free_port
from devtools.sample_data import load_sample_table
from tests.e2e.api import AirflowApi, parse_time
from tests.e2e.run import (
    E2E,
    EXPORT_TASK,
    ITEMS,
    PADDING,
    PARALLEL_EXPORT_DAG,
    SEGMENTS,
    TABLE,
    assert_export_exact,
    dynamodb_client,
    expected_export_lines,
    export_root,
    run_checks,
    segment_instances,
    task_log_has,
)
from tests.e2e.stack import VENV_BIN, Stack, StackError, ensure_python_package, http_ok, wait_for

REQUIREMENTS = Path(__file__).resolve().parent / "celery-requirements.txt"
CELERY_HOME = PROJECT_ROOT / ".local" / "e2e-celery"
CELERY_SITE = CELERY_HOME / "site-packages"
#: The hostnames of the two workers, as the task instances record them.
WORKERS = ("celery-worker-a", "celery-worker-b")
#: Task slots per worker: 4 + 4 take the 8 segments at once.
CONCURRENCY = 4
#: Added to each DynamoDB request of the tasks: a segment scans for several seconds, so a kill lands mid-scan.
LATENCY_MS = float(os.environ.get("E2E_CELERY_LATENCY_MS", "1500"))
#: How long a task instance may go without a heartbeat before the scheduler counts it lost (default 300 s).
HEARTBEAT_TIMEOUT_SECONDS = 30


def install_celery_provider() -> None:
    """Install the exact versions of ``celery-requirements.txt`` into ``.local/e2e-celery`` unless they are there."""
    stamp = CELERY_HOME / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == wanted and CELERY_SITE.is_dir():
        return
    shutil.rmtree(CELERY_SITE, ignore_errors=True)
    CELERY_HOME.mkdir(parents=True, exist_ok=True)
    uv = VENV_BIN / "uv"
    if uv.exists():
        command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable]
    else:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--target", str(CELERY_SITE), "-r", str(REQUIREMENTS)]
    print(f"Installing the Celery provider into {CELERY_SITE} ...", flush=True)
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    stamp.write_text(wanted)


def ensure_redis() -> str:
    """Return the path of ``redis-server``, installing Debian's ``redis-server`` with apt if absent."""
    found = shutil.which("redis-server")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise StackError("redis-server is missing: apt-get install redis-server")
    print("Installing Redis with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]):
        subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    found = shutil.which("redis-server")
    if not found:
        raise StackError("apt-get installed redis-server, but it is not on PATH")
    return found


def session_of(pid: int) -> int | None:
    """The session id of process ``pid`` (field 6 of ``/proc/PID/stat``), or ``None`` if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    return int(stat.rpartition(")")[2].split()[3])


def session_members(session: int) -> list[int]:
    """Every live process whose session id is ``session``."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if session_of(pid) == session]


class CeleryStack(Stack):
    """A :class:`Stack` whose Airflow runs the CeleryExecutor: Redis, and two workers in sessions of their own."""

    def __init__(self, root: Path, *, latency_ms: float) -> None:
        super().__init__(root, latency_ms=latency_ms)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.redis_url = ""

    def start_redis(self) -> None:
        """Start a private ``redis-server`` on a free port of 127.0.0.1 (no persistence), stopped by PID."""
        server = ensure_redis()
        port = free_port()
        data = self.root / "redis"
        data.mkdir()
        command = [
            server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(data), "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        self.spawn("redis", command)
        self.redis_url = f"redis://127.0.0.1:{port}/0"

        def answers() -> bool:
            self.check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            return False

        wait_for("redis-server", answers, 30, 0.1)

    def celery_env(self) -> None:
        """Turn :attr:`env` (from :meth:`airflow_env`) into the CeleryExecutor's: broker, result backend, timeouts."""
        hostnames = self.root / "python"
        hostnames.mkdir()
        functions = "".join(f"\n\ndef {name.replace('-', '_')}() -> str:\n    return {name!r}\n" for name in WORKERS)
        (hostnames / "e2e_celery_hostnames.py").write_text(
            '"""The hostname of each Celery worker of the e2e run ([core] hostname_callable)."""' + functions
        )
        database = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        pythonpath = [str(CELERY_SITE), str(hostnames), *filter(None, [os.environ.get("PYTHONPATH")])]
        self.env.update(
            {
                "PYTHONPATH": os.pathsep.join(pythonpath),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
                # With SQLAlchemy 2.1 a bare db+postgresql:// means psycopg 3: name the driver.
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CONCURRENCY),
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                # The messages a lost worker had taken come back after this; the scheduler retries its task
                # instances long before (heartbeat timeout), and a late message of an old try is refused.
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
                # A lost worker's task instances stop their heartbeats: counted lost after this, then retried.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # A task a lost worker had taken from the queue but not started is queued again after this.
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
            }
        )

    def start_airflow(self) -> None:
        """Start the api-server, scheduler, dag-processor and the two workers; wait until the API answers."""
        port = self.env["AIRFLOW__API__PORT"]
        self.spawn("api-server", self.airflow("api-server", "--host", "127.0.0.1", "--port", port), env=self.env)
        self.spawn("scheduler", self.airflow("scheduler"), env=self.env)
        self.spawn("dag-processor", self.airflow("dag-processor"), env=self.env)
        for hostname in WORKERS:
            env = {**self.env, "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"e2e_celery_hostnames.{hostname.replace('-', '_')}"}
            command = self.airflow(
                "celery", "worker", "--celery-hostname", f"{hostname}@e2e", "--concurrency", str(CONCURRENCY),
                "--pid", str(self.root / f"{hostname}.pid"), "--skip-serve-logs", "--without-mingle",
                "--without-gossip",
            )  # fmt: skip
            # Stack.spawn starts a new session: the worker and everything it starts are one "machine".
            self.workers[hostname] = self.spawn(hostname, command, env=env)
        wait_for(
            "the API server", lambda: self.check_alive() or http_ok(f"{self.api_url}/api/v2/monitor/health"), 300, 0.5
        )
        wait_for("the execution API", lambda: http_ok(f"{self.api_url}/execution/health"), 300, 0.5)
        for hostname in WORKERS:
            wait_for(
                f"the Celery worker {hostname}",
                lambda hostname=hostname: self.check_alive() or "ready." in self.log_text(hostname),
                300,
                0.5,
            )

    def log_text(self, name: str) -> str:
        """What component ``name`` has logged so far."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill_worker(self, hostname: str) -> list[int]:
        """SIGKILL every process of the worker's session (the worker, its pool, its task processes); return them."""
        process = self.workers[hostname]
        session = process.pid  # started with start_new_session: the worker leads its session
        killed: list[int] = []
        for _ in range(5):  # a process may fork while the others die: look until none is left
            members = session_members(session)
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.2)
        process.wait(timeout=10)
        self.processes = [(name, other) for name, other in self.processes if other is not process]
        return sorted(set(killed))

    def stop(self) -> None:
        """Stop the workers' whole sessions (task processes are in groups of their own), then the rest."""
        for process in self.workers.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.workers.values():
            for pid in session_members(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        super().stop()


# -- checks ------------------------------------------------------------------------------------------------------


def worker_table(instances: list[dict[str, Any]]) -> str:
    """``worker  tasks  segments`` lines: how the segments spread over the workers."""
    by_worker: dict[str, list[int]] = {}
    for ti in instances:
        by_worker.setdefault(ti["hostname"] or "?", []).append(ti["map_index"])
    lines = [f"      {'worker':<18} {'tasks':>5}  segments"]
    for hostname in sorted(by_worker):
        segments = sorted(by_worker[hostname])
        lines.append(f"      {hostname:<18} {len(segments):>5}  {', '.join(map(str, segments))}")
    return "\n".join(lines)


def overlap_seconds(first: list[tuple[datetime, datetime]], second: list[tuple[datetime, datetime]]) -> float:
    """The longest time a task of ``first`` and a task of ``second`` ran at the same moment."""
    return max(
        (max(0.0, (min(a_end, b_end) - max(a_start, b_start)).total_seconds())
         for a_start, a_end in first for b_start, b_end in second),
        default=0.0,
    )  # fmt: skip


def after_kill(attempt: dict[str, Any], killed_at: datetime) -> str:
    """``, started 41.2 s / ended 63.0 s after the kill`` for a try, or the end only for one that began before."""
    start, end = parse_time(attempt["start_date"]), parse_time(attempt["end_date"])
    text = ""
    if start is not None and start > killed_at:
        text += f", started {(start - killed_at).total_seconds():.1f} s"
    if end is not None:
        text += f"{',' if not text else ''} ended {(end - killed_at).total_seconds():.1f} s"
    return text + " after the kill" if text else ""


def check_segments_run_on_both_workers(e2e: E2E) -> None:
    """The 8 mapped segments spread over both workers, run there at the same time, and export every item once."""
    destination = e2e.exports / "celery-spread"
    conf = {"table_name": TABLE, "destination": str(destination), "total_segments": SEGMENTS}
    run_id, triggered = e2e.trigger(PARALLEL_EXPORT_DAG, conf)
    e2e.wait(PARALLEL_EXPORT_DAG, run_id)
    e2e.figure("8-segment export on 2 workers, trigger -> success", f"{time.monotonic() - triggered:.1f} s")
    instances = segment_instances(e2e, run_id)
    assert [ti["map_index"] for ti in instances] == list(range(SEGMENTS)), [ti["map_index"] for ti in instances]
    print(worker_table(instances), flush=True)
    per_worker = Counter(ti["hostname"] for ti in instances)
    assert set(per_worker) == set(WORKERS), f"segments ran on {dict(per_worker)}, expected both of {WORKERS}"
    intervals: dict[str, list[tuple[datetime, datetime]]] = {name: [] for name in WORKERS}
    for ti in instances:
        start, end = parse_time(ti["start_date"]), parse_time(ti["end_date"])
        assert start is not None and end is not None, ti
        intervals[ti["hostname"]].append((start, end))
    overlap = overlap_seconds(intervals[WORKERS[0]], intervals[WORKERS[1]])
    e2e.figure("tasks per worker", ", ".join(f"{name} {per_worker[name]}" for name in WORKERS))
    e2e.figure("overlap of the two workers' segments", f"{overlap:.1f} s")
    assert overlap > 0, f"no segment of {WORKERS[0]} ran while one of {WORKERS[1]} did: {intervals}"
    manifest = assert_export_exact(e2e, export_root(destination), total_segments=SEGMENTS)
    e2e.figure("export", f"{manifest['items']:,} items exactly once, {manifest['part_count']} parts")


def check_lost_worker_is_recovered_on_the_other(e2e: E2E) -> None:
    """SIGKILL one worker's whole session mid-scan: the other worker retries its segments; the export is exact."""
    stack = e2e.stack
    assert isinstance(stack, CeleryStack)
    destination = e2e.exports / "celery-kill"
    conf = {"table_name": TABLE, "destination": str(destination), "total_segments": SEGMENTS}
    run_id, _ = e2e.trigger(PARALLEL_EXPORT_DAG, conf)
    victim, survivor = WORKERS[1], WORKERS[0]

    def victim_scanning() -> list[dict[str, Any]] | None:
        stack.check_alive()
        instances = [ti for ti in segment_instances(e2e, run_id) if ti["hostname"] == victim]
        scanning = [
            ti
            for ti in instances
            if ti["state"] == "running" and task_log_has(e2e, run_id, EXPORT_TASK, ti["map_index"], "Exporting table")
        ]
        return scanning or None

    scanning = wait_for(f"a segment scanning on {victim}", victim_scanning, 300, 0.2)
    killed = stack.kill_worker(victim)
    killed_at = datetime.now(timezone.utc)
    lost = sorted(ti["map_index"] for ti in segment_instances(e2e, run_id) if ti["hostname"] == victim)
    e2e.figure(
        "worker killed",
        f"{victim}: SIGKILL to {len(killed)} processes of its session while segment(s) "
        f"{', '.join(str(ti['map_index']) for ti in scanning)} scanned; its segments {lost}",
    )
    run = e2e.wait(PARALLEL_EXPORT_DAG, run_id)
    finished = parse_time(run["end_date"])
    assert finished is not None
    recovery = (finished - killed_at).total_seconds()
    retried: list[str] = []
    for segment in range(SEGMENTS):
        tries = e2e.api.tries(PARALLEL_EXPORT_DAG, run_id, EXPORT_TASK, segment)
        assert tries[-1]["state"] == "success", f"segment {segment}: {[attempt['state'] for attempt in tries]}"
        if len(tries) > 1:
            where = " -> ".join(
                f"try {attempt['try_number']} on {attempt['hostname']} ({attempt['state']}"
                f"{after_kill(attempt, killed_at)})"
                for attempt in tries
            )
            retried.append(f"segment {segment}: {where}")
            assert tries[-1]["hostname"] == survivor, f"segment {segment} was retried on {tries[-1]['hostname']}"
    instances = segment_instances(e2e, run_id)
    print(worker_table(instances), flush=True)
    assert retried, f"no segment was retried after {victim} was killed"
    e2e.figure("recovery, kill -> run success", f"{recovery:.1f} s")
    for line in retried:
        e2e.figure("retry", line)
    root = export_root(destination)
    assert_export_exact(e2e, root, total_segments=SEGMENTS)
    leftovers = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.name.endswith(".tmp"))
    assert not leftovers, f"temporary files left in the export: {leftovers}"
    e2e.figure("export after the kill", f"{ITEMS:,} items exactly once, no temporary file left")


CHECKS = [check_segments_run_on_both_workers, check_lost_worker_is_recovered_on_the_other]


# -- the run -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.celery", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the run's files in .local/e2e/")
    parser.add_argument("--only", help="run only the checks whose name contains this")
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    base = PROJECT_ROOT / ".local" / "e2e"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="celery-", dir=base))
    stack = CeleryStack(root, latency_ms=LATENCY_MS)
    atexit.register(stack.stop)

    def stop_on_signal(signal_number: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signal_number}")

    for signal_number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signal_number, stop_on_signal)
    counts = {"passed": 0, "failed": 0}
    try:
        ensure_python_package("psycopg2", "psycopg2-binary")  # the metadata database's and result backend's driver
        ensure_python_package("asyncpg", "asyncpg")
        install_celery_provider()
        database_url = stack.start_postgres()
        stack.start_redis()
        stack.start_dynamodb()
        stack.airflow_env(database_url, api_port=free_port())
        stack.celery_env()
        migration = stack.start_migration()
        load_started = time.monotonic()
        load_sample_table(dynamodb_client(stack.dynalite_url), TABLE, ITEMS, padding=PADDING)
        print(f"Loaded {ITEMS:,} items into {TABLE!r} ({time.monotonic() - load_started:.1f} s)", flush=True)
        stack.finish_migration(migration)
        print(f"airflow db migrate done: {time.monotonic() - started:.1f} s", flush=True)
        stack.start_airflow()
        api = AirflowApi(stack.api_url)
        e2e = E2E(stack, api, root / "exports")
        e2e.expected_lines = expected_export_lines()
        wait_for(f"the dag-processor to store {PARALLEL_EXPORT_DAG}", lambda: api.dag(PARALLEL_EXPORT_DAG), 180, 1)
        api.warm_up(PARALLEL_EXPORT_DAG)
        print(
            f"Airflow is up at {stack.api_url} with Celery workers {', '.join(WORKERS)} "
            f"({time.monotonic() - started:.1f} s after the start)",
            flush=True,
        )
        run_checks(e2e, arguments.only, counts, CHECKS)
        print("Figures:")
        for name, value in e2e.figures:
            print(f"  {name}: {value}")
    except BaseException as error:  # noqa: BLE001 - the stack is stopped and the failure reported below
        counts["failed"] += 1
        print(f"FAILED setup: {str(error)[:2000]}", flush=True)
    finally:
        stack.stop()
    passed, failed = counts["passed"], counts["failed"]
    if failed or arguments.keep:
        print(f"Files of the run (logs, Airflow home, exports): {root}; PostgreSQL's: {stack.pg_root}")
    else:
        stack.remove_files()
    print(f"{'=' * 20} {passed} passed, {failed} failed in {time.monotonic() - started:.1f} s {'=' * 20}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
