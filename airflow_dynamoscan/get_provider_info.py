"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_dynamoscan import __version__


def get_provider_info() -> dict[str, Any]:
    """Return what ``airflow providers list`` and the providers registry show of this package."""
    return {
        "package-name": "airflow-dynamoscan",
        "name": "DynamoDB Scan",
        "description": "Read every item of a DynamoDB table fast and losslessly: parallel scans, exports, transforms.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Amazon DynamoDB (parallel scan)",
                "external-doc-url": "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html",
                "tags": ["aws"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Amazon DynamoDB (parallel scan)",
                "python-modules": [
                    "airflow_dynamoscan.hooks.dynamodb_scan",
                    "airflow_dynamoscan.hooks.iceberg_catalog",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_dynamoscan.hooks.iceberg_catalog.IcebergCatalogHook",
                "connection-type": "iceberg",
            }
        ],
        "operators": [
            {
                "integration-name": "Amazon DynamoDB (parallel scan)",
                "python-modules": [
                    "airflow_dynamoscan.operators.dynamodb_export",
                    "airflow_dynamoscan.operators.dynamodb_transform",
                    "airflow_dynamoscan.operators.dynamodb_native_export",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Amazon DynamoDB (parallel scan)",
                "python-modules": ["airflow_dynamoscan.triggers.dynamodb_native_export"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "Amazon DynamoDB (parallel scan)",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_dynamoscan.operators.dynamodb_export",
            }
        ],
        "extra-links": [
            "airflow_dynamoscan.links.dynamodb.DynamoDBTableLink",
            "airflow_dynamoscan.links.dynamodb.DynamoDBTargetTableLink",
            "airflow_dynamoscan.links.dynamodb.ExportDestinationLink",
        ],
    }
