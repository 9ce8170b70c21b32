"""Exceptions raised by airflow-dynamoscan; none of them depends on Airflow."""

from __future__ import annotations


class DynamoScanError(Exception):
    """Base class of every error this package raises on its own."""


class InvalidScanArgumentError(DynamoScanError, ValueError):
    """A parameter given by the caller is outside what is allowed."""


class MissingRegionError(InvalidScanArgumentError):
    """The AWS connection names no region, so no client can be made; names the connection and how to give one."""


class TableNotFoundError(DynamoScanError):
    """The table does not exist at the endpoint and region the client talks to."""


class ScanRequestError(DynamoScanError):
    """DynamoDB rejected a request (for example an invalid expression); the message is DynamoDB's."""


class IncompleteExportError(DynamoScanError):
    """The per-segment results of an export do not cover every segment exactly once, or disagree with each other."""


class DestinationError(DynamoScanError, OSError):
    """An export destination (a local directory or an S3 prefix) could not be read or written; names the destination."""


class DestinationBusyError(DestinationError):
    """A destination was refused for a reason that may pass (another task is committing there): a retry may succeed."""


class InvalidItemError(DynamoScanError, ValueError):
    """An item holds a value DynamoDB cannot store (a float, an empty set, an unsupported type)."""


class BatchWriteError(DynamoScanError):
    """BatchWriteItem failed: DynamoDB rejected a request, or items stayed unprocessed after every retry."""


class TransformError(DynamoScanError):
    """A transform raised, returned something other than a dict or None, or changed a key where not allowed."""


class RetriesExhaustedError(DynamoScanError):
    """A request kept being throttled or failing transiently until every retry was spent; the last error is chained."""


class SchemaMismatchError(DynamoScanError, ValueError):
    """An item does not fit the export's schema, and the schema has no extra column to hold what does not fit."""


class MissingBucketError(DestinationError):
    """The S3 bucket of a destination does not exist; names the destination and the bucket."""
