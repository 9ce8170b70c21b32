"""
IcebergCatalogHook: an Airflow connection -> a pyiceberg catalog (SQL, Glue, REST, or any type pyiceberg knows).

The connection's ``extra`` holds pyiceberg's own catalog properties, as ``pyiceberg.catalog.load_catalog`` takes
them; the other fields fill what the extra leaves out:

* ``host`` -> ``uri`` (the SQL catalog's SQLAlchemy URL, a REST catalog's URL);
* ``login`` and ``password`` -> ``credential`` (``login:password``, a REST catalog's OAuth2 client credentials), or
  ``password`` alone -> ``token``, for a ``rest`` catalog;
* ``"aws_conn_id"`` in the extra -> the credentials and region of that Airflow AWS connection as ``glue.*`` and
  ``s3.*`` properties (a Glue catalog, an S3 warehouse), unless the extra sets them;
* ``"name"`` in the extra -> the catalog's name (default: the connection id).

Examples: ``{"type": "sql", "uri": "sqlite:////data/catalog.db", "warehouse": "file:///data/warehouse"}``;
``{"type": "glue", "aws_conn_id": "aws_default", "warehouse": "s3://lake/warehouse"}``;
``{"type": "rest", "warehouse": "arn:aws:s3tables:...", "rest.sigv4-enabled": "true", ...}`` with the URL in host.
Secrets are never logged: :func:`~airflow_dynamoscan.iceberg.catalog.redacted` shows the properties.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_dynamoscan.compat import BaseHook
from airflow_dynamoscan.iceberg.catalog import open_catalog, redacted


class IcebergCatalogHook(BaseHook):
    """
    Open the pyiceberg catalog an Airflow connection describes (see the module docstring).

    :param iceberg_conn_id: the connection's id
    """

    conn_name_attr = "iceberg_conn_id"
    default_conn_name = "iceberg_default"
    conn_type = "iceberg"
    hook_name = "Apache Iceberg catalog (airflow-dynamoscan)"

    def __init__(self, iceberg_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.iceberg_conn_id = iceberg_conn_id

    def catalog_properties(self) -> tuple[str, dict[str, str]]:
        """
        The catalog's name and pyiceberg properties, from the connection.

        :raises ValueError: the extra is not a JSON object, naming the connection.
        """
        connection = self.get_connection(self.iceberg_conn_id)
        extra: Any = connection.extra_dejson if connection.extra else {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        if not isinstance(extra, dict):
            raise ValueError(
                f"Connection {self.iceberg_conn_id!r}: its extra must be a JSON object of pyiceberg catalog "
                'properties, e.g. {"type": "sql", "uri": "sqlite:///catalog.db", "warehouse": "file:///lake"}.'
            )
        properties = {name: str(value) for name, value in extra.items() if value is not None}
        name = properties.pop("name", self.iceberg_conn_id)
        if connection.host and "uri" not in properties:
            properties["uri"] = str(connection.host)
        if properties.get("type") == "rest" and connection.password:
            if connection.login:
                properties.setdefault("credential", f"{connection.login}:{connection.password}")
            else:
                properties.setdefault("token", str(connection.password))
        aws_conn_id = properties.pop("aws_conn_id", None)
        if aws_conn_id:
            for key, value in self._aws_properties(aws_conn_id).items():
                properties.setdefault(key, value)
        return name, properties

    @staticmethod
    def _aws_properties(aws_conn_id: str) -> dict[str, str]:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
        credentials = hook.get_credentials()
        region = hook.conn_region_name or ""
        endpoint = hook.conn_config.endpoint_url if hook.conn_config is not None else None
        found: dict[str, str] = {}
        for prefix in ("glue", "s3"):
            found[f"{prefix}.access-key-id"] = str(credentials.access_key)
            found[f"{prefix}.secret-access-key"] = str(credentials.secret_key)
            if credentials.token:
                found[f"{prefix}.session-token"] = credentials.token
            if region:
                found[f"{prefix}.region"] = region
        if endpoint:
            found["s3.endpoint"] = endpoint
        return found

    def get_catalog(self) -> Any:
        """The pyiceberg catalog; its properties are logged without secrets."""
        name, properties = self.catalog_properties()
        self.log.info("Opening the Iceberg catalog %s: %s", name, redacted(properties))
        return open_catalog(name, properties)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form: the URI in host, pyiceberg's properties in the extra."""
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {"host": "Catalog URI", "login": "Client id (REST)", "password": "Secret or token (REST)"},
            "placeholders": {"extra": '{"type": "sql", "warehouse": "file:///data/warehouse"}'},
        }
