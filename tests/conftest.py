"""Session-wide test setup: fake AWS credentials, a private AIRFLOW_HOME, and the local DynamoDB server."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Set before anything imports boto3 or Airflow: no test may reach a real AWS account or a user's Airflow.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "example_dags"),
    }
)
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="dynamoscan-airflow-home-")
# Removed when the test process ends (each xdist worker has its own).
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)


def share_botocore_data_loader() -> None:
    """
    Let every botocore session of the test process share one data loader (botocore's own cache of the service
    models and endpoint rules it reads from JSON files).

    Each hook makes its own boto3 session, and a new session reads and parses those files again: about 0.3 s per
    client, hundreds of times a run. Within one session botocore already shares the loader between clients; this
    extends the same sharing across sessions, so clients are built exactly as before, from the same data.
    """
    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)  # type: ignore[assignment]


share_botocore_data_loader()


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    """
    The endpoint URL of a local DynamoDB server (dynalite) running for the whole test session: one per pytest-xdist
    worker, each on its own free port. Two workers starting at once can be handed the same free port, and the
    second server then exits: it is started again on another.
    """
    from devtools.local_dynamodb import LocalDynamoDBError, running_dynalite

    for attempt in range(3):
        with contextlib.ExitStack() as stack:
            try:
                endpoint_url = stack.enter_context(running_dynalite())
            except LocalDynamoDBError:
                if attempt == 2:
                    raise
                continue
            yield endpoint_url
            return


def make_client(endpoint_url: str | None = None, service: str = "dynamodb") -> Any:
    """A low-level boto3 client with the test credentials, on ``endpoint_url`` (or moto when ``None``)."""
    import boto3

    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def dynalite_client(dynalite_endpoint: str) -> Any:
    """A plain boto3 DynamoDB client (botocore's parser, no fast decoding) on the local server."""
    return make_client(dynalite_endpoint)


def aws_connection(endpoint_url: str | None = None, *, login: str = "testing", password: str = "testing") -> str:
    """The JSON of an ``aws`` Airflow connection in us-east-1, at ``endpoint_url`` (``None``: AWS, i.e. moto)."""
    import json

    extra: dict[str, Any] = {"region_name": "us-east-1"}
    if endpoint_url is not None:
        extra["endpoint_url"] = endpoint_url
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": extra})


@pytest.fixture
def aws_connection_env(dynalite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Airflow's ``aws_default`` connection at the local server; return the connection id."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(dynalite_endpoint))
    return "aws_default"


@pytest.fixture
def moto_connection_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point Airflow's ``aws_default`` connection at AWS with moto's test credentials (use inside ``mock_aws``)."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection())
    return "aws_default"


def unique_table_name(prefix: str = "t") -> str:
    """A table name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def fails_task(error_type: type[BaseException], match: str | None = None) -> Iterator[Any]:
    """
    Expect an operator to end its task without retries: ``AirflowFailException`` with the message of the
    package's ``error_type`` (matching ``match``), which is its cause. Yields pytest's ``ExceptionInfo``.
    """
    from airflow_dynamoscan.compat import AirflowFailException

    with pytest.raises(AirflowFailException, match=match) as info:
        yield info
    assert isinstance(info.value.__cause__, error_type), repr(info.value.__cause__)
    assert str(info.value) == str(info.value.__cause__)
