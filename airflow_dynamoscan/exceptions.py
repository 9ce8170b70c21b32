"""Exceptions raised by airflow-dynamoscan; none of them depends on Airflow."""

from __future__ import annotations


class DynamoScanError(Exception):
    """Base class of every error this package raises on its own."""


class InvalidScanArgumentError(DynamoScanError, ValueError):
    """A parameter given by the caller is outside what is allowed."""


class TableNotFoundError(DynamoScanError):
    """The table does not exist at the endpoint and region the client talks to."""


class ScanRequestError(DynamoScanError):
    """DynamoDB rejected a request (for example an invalid expression); the message is DynamoDB's."""
