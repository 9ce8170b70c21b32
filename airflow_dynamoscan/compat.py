"""The one place that knows Airflow 2.11 from Airflow 3.x.

Every Airflow name the package uses is imported from here. The Amazon provider's own dependency
``apache-airflow-providers-common-compat`` resolves each name to ``airflow.sdk`` on Airflow 3 and to its
Airflow 2 location otherwise, so the rest of the package never branches on the Airflow version. Version 1.12.0 of
common-compat is the first whose ``sdk`` module has every name below (1.11 lacks ``conf``, 1.10 also
``AirflowException``); it needs Airflow 2.11, the oldest Airflow this package supports.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    Asset,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    Context,
    Param,
    TaskDeferred,
    TaskGroup,
    XCom,
    conf,
    dag,
    get_current_context,
    task,
)

# The same module on Airflow 2.11 and 3.x; the Amazon provider's triggers import it from there as well.
from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseTrigger",
    "Context",
    "Param",
    "TaskDeferred",
    "TaskGroup",
    "TriggerEvent",
    "XCom",
    "conf",
    "dag",
    "get_current_context",
    "task",
]
