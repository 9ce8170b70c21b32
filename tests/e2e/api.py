"""A small client of Airflow's REST API (``/api/v2``) for the e2e checks: trigger, wait, read results."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

TERMINAL_RUN_STATES = {"success", "failed"}


class ApiError(RuntimeError):
    """The API answered with an error status."""


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or offset) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class AirflowApi:
    """
    Calls of ``{base_url}/api/v2``; with ``simple_auth_manager_all_admins`` the API server needs no token.

    :param base_url: ``http://127.0.0.1:PORT``
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """Send one request to ``/api/v2{path}``; return the decoded JSON answer."""
        url = f"{self.base_url}/api/v2{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise ApiError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        return json.loads(payload) if payload else None

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details, or ``None`` while the dag-processor has not stored it yet."""
        try:
            return dict(self.request("GET", f"/dags/{dag_id}"))
        except ApiError:
            return None

    def warm_up(self, dag_id: str) -> None:
        """Have the API server load the DAG (its first task would otherwise wait for that)."""
        self.request("GET", f"/dags/{dag_id}/details")

    def unpause(self, dag_id: str) -> None:
        """Unpause the DAG, so the scheduler runs what is triggered."""
        self.request("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark the run ``success``, ``failed`` or ``queued``."""
        self.request("PATCH", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}", {"state": state})

    def trigger(self, dag_id: str, conf: dict[str, Any], *, logical_date: str | None) -> dict[str, Any]:
        """Create a DAG run (``logical_date=None``: a run without a logical date, as a manual run has)."""
        return dict(self.request("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf}))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run."""
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"))

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG, oldest first."""
        answer = self.request("GET", f"/dags/{dag_id}/dagRuns", limit=100, order_by="run_after")
        return list(answer["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, alive: Any = None) -> dict[str, Any]:
        """Poll the run until it succeeds or fails; return it. ``alive()`` is called between polls (raise to stop)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG run {dag_id}/{run_id} still {run['state']} after {timeout:.0f} s")
            if alive is not None:
                alive()
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones one by one)."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances", limit=1000)
        return list(answer["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        """Every try of one task instance, first to last."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/{map_index}/tries")
        return sorted(answer["task_instances"], key=lambda attempt: attempt["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """The task's return value."""
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/return_value",
            map_index=map_index,
            deserialize="true",
        )
        value = answer["value"]
        return json.loads(value) if isinstance(value, str) else value

    def extra_links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        """The task instance's extra links (the buttons in the UI), by name."""
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/links"
        return dict(self.request("GET", path, map_index=map_index)["extra_links"])

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered the run."""
        quoted = urllib.parse.quote(run_id, safe="")
        return list(self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/upstreamAssetEvents")["asset_events"])

    def asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        """Every event of the asset named ``asset_name``, oldest first."""
        assets = self.request("GET", "/assets", name_pattern=asset_name)["assets"]
        asset_ids = [asset["id"] for asset in assets if asset["name"] == asset_name]
        if not asset_ids:
            return []
        answer = self.request("GET", "/assets/events", asset_id=asset_ids[0], limit=100, order_by="timestamp")
        return list(answer["asset_events"])
