"""Throughput and memory of airflow-dynamoscan against the usual ways of reading a DynamoDB table (``make bench``)."""
