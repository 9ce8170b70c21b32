"""
A deferrable native export of a time the backups have not reached yet waits in the triggerer, not in the worker:
the task defers at once, the trigger polls DescribeContinuousBackups until the time is restorable, and the task
then starts the export (and defers again for it); a wait that runs out is retryable.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from datetime import timedelta
from typing import Any

import pytest

from airflow_dynamoscan.compat import AirflowException, AirflowFailException, TaskDeferred
from airflow_dynamoscan.triggers import dynamodb_native_export as triggers
from airflow_dynamoscan.triggers.dynamodb_native_export import DynamoDBRestorableTimeTrigger
from tests.unit.test_native_export_operator import NOW, context, held_exports, moto_table, operator, restorable

__all__ = ["held_exports", "moto_table", "restorable"]  # fixtures


def first_event(trigger: Any) -> dict[str, Any]:
    """The trigger as the triggerer runs it: rebuilt from its serialised form, its first event."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)

    async def run() -> Any:
        return await anext(aiter(rebuilt.run()))

    payload: dict[str, Any] = asyncio.run(run()).payload
    return payload


@pytest.fixture
def trigger_backups(restorable: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """
    The restorable range the trigger's DescribeContinuousBackups reports: ``restorable``'s, which moves to
    ``catch_up_to`` (when set) after each call; ``seen`` lists the latest restorable times reported.
    """
    backups: dict[str, Any] = {"seen": [], "catch_up_to": None}
    original = triggers.describe_export_client

    def client(*args: Any) -> Any:
        made = original(*args)

        def report(parsed: dict[str, Any], **_: Any) -> None:
            recovery = parsed["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            recovery["LatestRestorableDateTime"] = restorable["latest"]
            backups["seen"].append(restorable["latest"])
            if backups["catch_up_to"] is not None:
                restorable["latest"] = backups["catch_up_to"]

        made.meta.events.register("after-call.dynamodb.DescribeContinuousBackups", report)
        return made

    monkeypatch.setattr(triggers, "describe_export_client", client)
    return backups


def test_the_wait_for_a_restorable_time_is_deferred(
    moto_table: list[dict[str, Any]], trigger_backups: dict[str, Any], held_exports: threading.Event
) -> None:
    # held_exports: the export stays IN_PROGRESS until released, as on AWS, so its own wait is deferred.
    task = operator(deferrable=True, export_time=NOW - timedelta(minutes=1), poll_interval=0.05, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_after_restorable_wait"
    assert deferred.value.timeout == timedelta(minutes=20)  # restorable_wait (15 min) and a margin
    trigger = deferred.value.trigger
    assert isinstance(trigger, DynamoDBRestorableTimeTrigger)
    assert (trigger.table_name, trigger.export_time, trigger.timeout) == (
        "orders",
        (NOW - timedelta(minutes=1)).isoformat(),
        900.0,
    )
    trigger_backups["catch_up_to"] = NOW  # by the trigger's second call
    event = first_event(trigger)
    assert event == {
        "status": "restorable",
        "message": f"{trigger.export_time} is restorable in table 'orders'",
        "latest": NOW.isoformat(),
    }
    assert trigger_backups["seen"] == [NOW - timedelta(minutes=5), NOW]
    # Resumed: the export starts, and its own wait is deferred too.
    with pytest.raises(TaskDeferred) as export_wait:
        task.execute_after_restorable_wait(context(), event)  # type: ignore[arg-type]
    assert export_wait.value.method_name == "execute_complete"
    held_exports.set()


def test_a_wait_that_runs_out_is_retryable(moto_table: list[dict[str, Any]], trigger_backups: dict[str, Any]) -> None:
    task = operator(deferrable=True, export_time=NOW - timedelta(minutes=1), restorable_wait=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())  # type: ignore[arg-type]
    event = first_event(deferred.value.trigger)  # the backups stay 5 minutes behind
    assert event["status"] == "timeout"
    assert event["message"].startswith(f"the export time {(NOW - timedelta(minutes=1)).isoformat()} is after the ")
    with pytest.raises(AirflowException, match="a retry tries again") as failed:
        task.execute_after_restorable_wait(context(), event)  # type: ignore[arg-type]
    assert not isinstance(failed.value, AirflowFailException)


def test_without_deferrable_the_worker_waits_as_before(
    moto_table: list[dict[str, Any]], restorable: dict[str, Any]
) -> None:
    task = operator(deferrable=False, export_time=NOW - timedelta(minutes=1), restorable_wait=0.1, poll_interval=0.05)
    with pytest.raises(
        AirflowException, match=r"is after the latest restorable time \S+; a retry will find it restorable"
    ):
        task.execute(context())  # type: ignore[arg-type]
