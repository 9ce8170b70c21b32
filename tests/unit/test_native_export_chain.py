"""
Chained incremental native exports, run by run, on hand-made contexts of every kind of run: Airflow 3's cron runs
(an empty data interval), Airflow 2's ``[start, end)`` intervals, manual runs without a logical date, a pause, a
re-run, a retry, two runs racing for one window; against moto (its exports made to answer incremental requests by
:mod:`tests.incremental_export_fixture`), each window converted and committed by the package's own operators.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowFailException, AirflowSkipException
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportConvertOperator,
    DynamoDBNativeExportOperator,
    plan_native_export_files,
)
from devtools.sample_data import load_sample_table
from tests.conftest import aws_connection, make_client
from tests.incremental_export_fixture import ExportLog, answer_incremental_exports
from tests.native_export_fixture import change_line, write_native_export

TABLE = "orders"
BUCKET = "native-exports"
NOW = datetime.now(timezone.utc)
#: Midnight ten days ago: the chain's start in most tests.
DAY0 = NOW.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def moto_exports() -> Iterator[tuple[ExportLog, dict[str, Any]]]:
    """
    A table with point-in-time recovery on moto, for the whole module; the log of the incremental exports started,
    and the restorable range DescribeContinuousBackups reports (by default the last 35 days, to 5 minutes ago).
    """
    from airflow_dynamoscan.hooks import dynamodb_scan

    window: dict[str, Any] = {}

    def report(parsed: dict[str, Any], **_: Any) -> None:
        recovery = parsed["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        recovery["EarliestRestorableDateTime"] = window["earliest"]
        recovery["LatestRestorableDateTime"] = window["latest"]

    original = dynamodb_scan.DynamoDBScanHook.client

    def client_with_range(self: Any) -> Any:
        client = original.fget(self)
        client.meta.events.register("after-call.dynamodb.DescribeContinuousBackups", report)
        return client

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection())
        patch.setattr(dynamodb_scan.DynamoDBScanHook, "client", property(client_with_range))
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        load_sample_table(make_client(), TABLE, 3, padding=0)
        make_client().update_continuous_backups(
            TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        yield answer_incremental_exports(patch.setattr), window


@pytest.fixture
def exports(moto_exports: tuple[ExportLog, dict[str, Any]]) -> ExportLog:
    """The log of the exports this test starts."""
    log, window = moto_exports
    log.started.clear()
    log.by_token.clear()
    log.requests = 0
    window.update({"earliest": NOW - timedelta(days=35), "latest": NOW - timedelta(minutes=5)})
    return log


@pytest.fixture
def restorable(moto_exports: tuple[ExportLog, dict[str, Any]], exports: ExportLog) -> dict[str, Any]:
    """The restorable range DescribeContinuousBackups reports, to change."""
    return moto_exports[1]


def airflow3_run(day: datetime, run_id: str | None = None) -> dict[str, Any]:
    """A scheduled run of ``@daily`` on Airflow 3 (CronTriggerTimetable): an empty interval at the day's midnight."""
    moment = pendulum.instance(day)
    return run_context(run_id or f"scheduled__{day.isoformat()}", data_interval_start=moment, data_interval_end=moment)


def airflow2_run(day: datetime) -> dict[str, Any]:
    """A scheduled run of ``@daily`` on Airflow 2.11: the interval ``[day - 1 day, day)``."""
    start, end = pendulum.instance(day - DAY), pendulum.instance(day)
    return run_context(f"scheduled__{start.isoformat()}", data_interval_start=start, data_interval_end=end)


def manual_run(run_id: str, run_after: datetime) -> dict[str, Any]:
    """A manual run created without a logical date (Airflow 3's UI, CLI, REST API): no data interval."""
    dag_run = SimpleNamespace(run_id=run_id, logical_date=None, run_after=pendulum.instance(run_after))
    return run_context(run_id, data_interval_start=None, data_interval_end=None, dag_run=dag_run)


def run_context(run_id: str, **values: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="nightly", task_id="start_export", run_id=run_id, map_index=-1, try_number=1)
    return {"ti": ti, "run_id": run_id, **values}


def start_export(chain: Path, context: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
    """The ``start_export`` task of the run; ``None`` when it skips (nothing to export yet)."""
    options: dict[str, Any] = {
        "task_id": "start_export",
        "table_name": TABLE,
        "s3_bucket": BUCKET,
        "s3_prefix": "staging",
        "export_type": "INCREMENTAL_EXPORT",
        "chain_destination": str(chain),
        "deferrable": False,
        "poll_interval": 0.05,
        "restorable_wait": 0,
    }
    try:
        result: dict[str, Any] = DynamoDBNativeExportOperator(**{**options, **kwargs}).execute(context)  # type: ignore[arg-type]
    except AirflowSkipException:
        return None
    return result


def convert_and_commit(export: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The ``convert_files`` and ``write_manifest`` tasks of the run, over the window's (empty) data files."""
    convert = DynamoDBNativeExportConvertOperator(
        task_id="convert_files",
        table_name=TABLE,
        source_bucket=BUCKET,
        data_files=[],
        incremental=True,
        segment=0,
        total_segments=1,
        destination=export["window_destination"],
        incremental_window=export["incremental_window"],
    )
    result = convert.execute(context)  # type: ignore[arg-type]
    manifest: dict[str, Any] = DynamoDBExportManifestOperator(task_id="write_manifest", results=[result]).execute(
        context  # type: ignore[arg-type]
    )
    return manifest


def run(chain: Path, context: dict[str, Any], **kwargs: Any) -> tuple[datetime, datetime] | None:
    """One whole run: export, convert, commit; the window it committed, or ``None`` when it skipped."""
    export = start_export(chain, context, **kwargs)
    if export is None:
        return None
    convert_and_commit(export, context)
    window = export["incremental_window"]
    return datetime.fromisoformat(window["export_from_time"]), datetime.fromisoformat(window["export_to_time"])


def committed(chain: Path) -> list[tuple[str, str]]:
    """The windows committed at the chain, read from the manifests on disk."""
    windows = []
    for manifest_path in sorted(chain.glob("*/manifest.json")):
        window = json.loads(manifest_path.read_text())["incremental_window"]
        assert manifest_path.parent.name == (
            datetime.fromisoformat(window["export_from_time"]).strftime("%Y%m%dT%H%M%SZ")
            + "_"
            + datetime.fromisoformat(window["export_to_time"]).strftime("%Y%m%dT%H%M%SZ")
        )
        windows.append((window["export_from_time"], window["export_to_time"]))
    return windows


def days(*pairs: tuple[int, int]) -> list[tuple[datetime, datetime]]:
    return [(DAY0 + first * DAY, DAY0 + last * DAY) for first, last in pairs]


def iso(windows: list[tuple[datetime, datetime]]) -> list[tuple[str, str]]:
    return [(start.isoformat(), end.isoformat()) for start, end in windows]


def test_airflow3_cron_runs_with_empty_intervals_chain_day_after_day(exports: ExportLog, tmp_path: Path) -> None:
    windows = [run(tmp_path, airflow3_run(DAY0 + number * DAY), chain_start=DAY0.isoformat()) for number in (1, 2, 3)]
    assert windows == days((0, 1), (1, 2), (2, 3))
    assert committed(tmp_path) == iso(days((0, 1), (1, 2), (2, 3)))
    assert exports.windows() == days((0, 1), (1, 2), (2, 3))
    assert len({token for token, _, _ in exports.started}) == 3


def test_airflow2_data_intervals_chain_the_same_windows(exports: ExportLog, tmp_path: Path) -> None:
    windows = [run(tmp_path, airflow2_run(DAY0 + number * DAY), chain_start=DAY0) for number in (1, 2, 3)]
    assert windows == days((0, 1), (1, 2), (2, 3))
    assert exports.windows() == days((0, 1), (1, 2), (2, 3))


def test_a_first_run_without_chain_start_starts_at_the_earliest_restorable_time(
    exports: ExportLog, tmp_path: Path, restorable: dict[str, Any]
) -> None:
    earliest = DAY0 + timedelta(hours=5, minutes=3, seconds=1, microseconds=250)
    restorable["earliest"] = earliest
    start = earliest.replace(microsecond=0) + timedelta(seconds=1)
    assert run(tmp_path, airflow3_run(DAY0 + DAY)) == (start, DAY0 + DAY)
    assert run(tmp_path, airflow3_run(DAY0 + 2 * DAY)) == (DAY0 + DAY, DAY0 + 2 * DAY)


def test_manual_runs_without_a_logical_date_chain_up_to_when_they_were_asked_to_run(
    exports: ExportLog, tmp_path: Path
) -> None:
    run_after = DAY0 + DAY + timedelta(hours=6)
    assert run(tmp_path, manual_run("manual__a", run_after), chain_start=DAY0) == (DAY0, DAY0 + DAY)
    assert run(tmp_path, manual_run("manual__b", run_after), chain_start=DAY0) == (DAY0 + DAY, run_after)
    assert run(tmp_path, manual_run("manual__c", run_after), chain_start=DAY0) is None
    assert exports.windows() == [(DAY0, DAY0 + DAY), (DAY0 + DAY, run_after)]


def test_a_pause_of_three_days_is_exported_in_24_hour_windows_in_order(exports: ExportLog, tmp_path: Path) -> None:
    assert run(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0) == (DAY0, DAY0 + DAY)
    # Paused for three days, unpaused without catch-up: the next run is the one of day 4, then manual runs.
    assert run(tmp_path, airflow3_run(DAY0 + 4 * DAY)) == (DAY0 + DAY, DAY0 + 2 * DAY)
    catch_up = manual_run("manual__catch_up", DAY0 + 4 * DAY)
    assert run(tmp_path, catch_up) == (DAY0 + 2 * DAY, DAY0 + 3 * DAY)
    assert run(tmp_path, catch_up) == (DAY0 + 3 * DAY, DAY0 + 4 * DAY)
    assert run(tmp_path, catch_up) is None
    assert committed(tmp_path) == iso(days((0, 1), (1, 2), (2, 3), (3, 4)))
    assert exports.windows() == days((0, 1), (1, 2), (2, 3), (3, 4))


def test_a_re_run_of_an_exported_day_exports_nothing_twice(exports: ExportLog, tmp_path: Path) -> None:
    for number in (1, 2):
        run(tmp_path, airflow3_run(DAY0 + number * DAY), chain_start=DAY0)
    # Day 1 cleared and run again (the same run id), and re-triggered (another run id, the same logical date).
    assert run(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0) is None
    assert run(tmp_path, airflow3_run(DAY0 + DAY, "manual__again"), chain_start=DAY0) is None
    assert run(tmp_path, airflow2_run(DAY0 + 2 * DAY), chain_start=DAY0) is None
    assert exports.windows() == days((0, 1), (1, 2))
    assert committed(tmp_path) == iso(days((0, 1), (1, 2)))


def test_a_window_exported_but_not_committed_is_exported_once_whichever_run_takes_it(
    exports: ExportLog, tmp_path: Path
) -> None:
    first = start_export(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0)
    assert first is not None  # ... and the run failed before its commit; a retry, then another run, ask again:
    retry = start_export(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0)
    other_run = start_export(tmp_path, manual_run("manual__later", DAY0 + 3 * DAY), chain_start=DAY0)
    assert retry is not None and other_run is not None
    assert retry["export_arn"] == first["export_arn"] == other_run["export_arn"]
    assert (exports.requests, len(exports.started)) == (3, 1)
    convert_and_commit(other_run, manual_run("manual__later", DAY0 + 3 * DAY))
    # The first run, retried after the other committed the window: its convert step skips, its export is done.
    with pytest.raises(AirflowSkipException, match="is already committed at"):
        convert_and_commit(first, airflow3_run(DAY0 + DAY))
    assert committed(tmp_path) == iso(days((0, 1)))
    # ... and its start_export, retried from the start, finds nothing left to export.
    assert start_export(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0) is None


def test_a_window_that_does_not_start_where_the_chain_ends_is_not_committed(exports: ExportLog, tmp_path: Path) -> None:
    stale = start_export(tmp_path, airflow2_run(DAY0 + DAY), chain_start=DAY0 - timedelta(hours=6))
    assert stale is not None
    run(tmp_path, airflow2_run(DAY0 + DAY), chain_start=DAY0)  # another DAG run with its own chain_start wins
    stale["window_destination"] = str(tmp_path / "elsewhere")  # its own folder: only the chain check can refuse it
    with pytest.raises(AirflowFailException, match=r"does not start where the chain at .* ends"):
        convert_and_commit(stale, airflow2_run(DAY0 + DAY))
    assert committed(tmp_path) == iso(days((0, 1)))


def test_a_chain_older_than_the_restorable_period_fails_and_says_to_re_base(
    exports: ExportLog, tmp_path: Path, restorable: dict[str, Any]
) -> None:
    run(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0)
    restorable["earliest"] = DAY0 + DAY + timedelta(hours=1)  # the DAG was paused for more than 35 days
    with pytest.raises(AirflowFailException) as error:
        start_export(tmp_path, airflow3_run(DAY0 + 2 * DAY))
    message = str(error.value)
    assert f"ends at {(DAY0 + DAY).isoformat()}, before the table's earliest restorable time" in message
    assert "Re-base the chain: run a full export" in message
    assert len(exports.started) == 1


def test_an_empty_interval_without_a_chain_fails_with_iso_times_and_the_way_out(
    exports: ExportLog, tmp_path: Path
) -> None:
    with pytest.raises(AirflowFailException) as error:
        start_export(tmp_path, airflow3_run(DAY0 + DAY), chain_destination=None)
    message = str(error.value)
    assert f"an empty data interval ({(DAY0 + DAY).isoformat()})" in message
    assert "Give chain_destination" in message and "DateTime(" not in message and "Interval" not in message


def test_an_explicit_window_still_wins_over_the_chain(exports: ExportLog, tmp_path: Path) -> None:
    start, end = DAY0 + timedelta(hours=2), DAY0 + timedelta(hours=3)
    context = airflow3_run(DAY0 + DAY)
    result = start_export(tmp_path, context, export_from_time=start.isoformat(), export_to_time=pendulum.instance(end))
    assert result is not None and "incremental_window" not in result
    assert exports.windows() == [(start, end)]
    with pytest.raises(AirflowFailException, match=r"lasts 0:10:00; DynamoDB needs at least 15 minutes"):
        start_export(
            tmp_path, context, export_from_time=start, export_to_time=pendulum.instance(start + 10 * 60 * SECOND)
        )


SECOND = timedelta(seconds=1)


def test_plan_files_sends_each_batch_to_the_window_folder(exports: ExportLog, tmp_path: Path) -> None:
    export = start_export(tmp_path, airflow3_run(DAY0 + DAY), chain_start=DAY0)
    assert export is not None
    micros = int((DAY0 + timedelta(hours=1)).timestamp() * 1_000_000)
    lines = [
        change_line({"pk": f"order#{number}"}, micros, {"pk": f"order#{number}", "n": number}) for number in range(3)
    ]
    built = write_native_export(make_client(service="s3"), BUCKET, "staging", [lines[:2], lines[2:]], incremental=True)
    export.update({"manifest_summary_key": built.summary_key, "s3_bucket": BUCKET})
    batches = plan_native_export_files(export, s3_client=make_client(service="s3"))
    folder = f"{tmp_path}/{(DAY0).strftime('%Y%m%dT%H%M%SZ')}_{(DAY0 + DAY).strftime('%Y%m%dT%H%M%SZ')}"
    assert [batch["destination"] for batch in batches] == [folder, folder]
    assert all(batch["incremental_window"] == export["incremental_window"] for batch in batches)


def test_the_incremental_group_chains_at_its_destination_unless_given_a_window() -> None:
    from airflow_dynamoscan.compat import DAG
    from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files

    options: dict[str, Any] = {"table_name": TABLE, "s3_bucket": BUCKET, "export_type": "INCREMENTAL_EXPORT"}
    with DAG(dag_id="chained", schedule="@daily", start_date=datetime(2026, 1, 1)) as dag:
        dynamodb_native_export_to_files("changes", destination="s3://lake/changes", **options)
        dynamodb_native_export_to_files(
            "window",
            destination="s3://lake/window",
            export_kwargs={"export_from_time": "2026-01-01T00:00:00", "export_to_time": "2026-01-01T01:00:00"},
            **options,
        )
    chained = dag.get_task("changes.start_export")
    assert (chained.chain_destination, chained.chained) == ("s3://lake/changes", True)  # type: ignore[attr-defined]
    assert "destination" not in dag.get_task("changes.convert_files").partial_kwargs  # type: ignore[attr-defined]
    assert dag.get_task("changes.write_manifest").destination is None  # type: ignore[attr-defined]
    given = dag.get_task("window.start_export")
    assert (given.chain_destination, given.chained) == (None, False)  # type: ignore[attr-defined]
    assert dag.get_task("window.convert_files").partial_kwargs["destination"] == "s3://lake/window"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"chain_destination/chain_start apply to export_type='INCREMENTAL_EXPORT'"):
        DynamoDBNativeExportOperator(task_id="full", table_name=TABLE, s3_bucket=BUCKET, chain_destination="/tmp/x")
