"""airflow-dynamoscan: read every item of a DynamoDB table from Airflow, fast, safely and losslessly."""

from __future__ import annotations

__version__ = "0.1.0"
