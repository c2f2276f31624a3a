"""Opens the catalog a meshd test wrote to, for pyiceberg and DuckDB, the independent readers.

The first argument of every reader script is a JSON catalog spec, made by the Rust tests from
the meshd.yaml they ran with (tests/support `catalog_spec`):

    {"type": "sql" | "rest", "name": "meshd", "uri": "...", "warehouse": "...",
     "properties": {"s3.endpoint": ..., "s3.access-key-id": ..., ...}}
"""

import glob
import json
import os

import duckdb


def load(spec_json):
    spec = json.loads(spec_json)
    props = dict(spec.get("properties", {}))
    if spec.get("warehouse"):
        props["warehouse"] = spec["warehouse"]
    if spec["type"] == "rest":
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(spec.get("name", "meshd"), uri=spec["uri"], **props), spec
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(spec.get("name", "meshd"), uri=spec["uri"], **props), spec


def duckdb_connection(spec):
    """DuckDB with the iceberg, avro and httpfs extensions loaded from their PyPI packages (no
    download at run time) and the spec's S3 endpoint and credentials as a secret."""
    con = duckdb.connect()
    site = os.path.dirname(os.path.dirname(duckdb.__file__))
    for name in ("httpfs", "avro", "iceberg"):
        (path,) = glob.glob(f"{site}/duckdb_extension_{name}/extensions/*/{name}.duckdb_extension")
        con.execute(f"LOAD '{path}'")
    props = spec.get("properties", {})
    if "s3.endpoint" in props:
        endpoint = props["s3.endpoint"]
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL ?)",
            [
                props.get("s3.access-key-id", ""),
                props.get("s3.secret-access-key", ""),
                props.get("s3.region", "us-east-1"),
                endpoint.split("://", 1)[-1],
                endpoint.startswith("https://"),
            ],
        )
    return con
