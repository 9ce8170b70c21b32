"""The incremental native-export example DAG: its shape, and that a run with the default params only skips."""

from __future__ import annotations

import pytest

from tests.dags.test_example_transform_aggregate_dags import load_dag, task_states

DAG_FILE = "example_dynamodb_native_incremental_export.py"
DAG_ID = "example_dynamodb_native_incremental_export"


def test_daily_incremental_export_dag_shape() -> None:
    dag = load_dag(DAG_FILE, DAG_ID)
    assert sorted(dag.task_ids) == [
        "enabled",
        "export_changes.convert_files",
        "export_changes.plan_files",
        "export_changes.start_export",
        "export_changes.write_manifest",
    ]
    assert dag.catchup is False
    assert dag.params["enabled"] is False
    export = dag.get_task("export_changes.start_export")
    assert (export.export_type, export.deferrable) == ("INCREMENTAL_EXPORT", True)
    # Each window starts where the last one committed at the destination ended: no dependence on past runs.
    assert (export.chain_destination, export.chain_start) == ("{{ params.destination }}", "{{ params.chain_start }}")
    assert export.depends_on_past is False and dag.max_active_runs == 1
    assert export.upstream_task_ids == {"enabled"}
    assert dag.get_task("export_changes.plan_files").upstream_task_ids == {"export_changes.start_export"}
    convert = dag.get_task("export_changes.convert_files")
    assert convert.upstream_task_ids == {"export_changes.plan_files"}
    assert convert.partial_kwargs["file_format"] == "parquet"
    assert dag.get_task("export_changes.write_manifest").upstream_task_ids == {"export_changes.convert_files"}


@pytest.mark.usefixtures("airflow_db")
def test_a_run_with_the_default_params_skips_everything() -> None:
    run = load_dag(DAG_FILE, DAG_ID).test()
    assert run.state == "success"
    states = {task: state for task, _, state, _ in task_states(run)}
    assert states.pop("enabled") == "success"
    assert set(states.values()) == {"skipped"}
    assert sorted(states) == [
        "export_changes.convert_files",
        "export_changes.plan_files",
        "export_changes.start_export",
        "export_changes.write_manifest",
    ]
