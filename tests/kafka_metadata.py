"""Reads the `_kafka` column of a meshd output table with pyiceberg, the independent reader.

Usage: kafka_metadata.py <catalog spec JSON> <namespace.table>

Prints one JSON document: the Iceberg type of `_kafka` as the table declares it, and per
row its `transaction_id` and `_kafka` (null for rows written before the port kept Kafka
metadata), with bytes as hex and the timestamp as epoch milliseconds, so the Rust test can
compare values exactly.
"""

import datetime
import json
import sys

import catalog as test_catalog


def hexed(value):
    return None if value is None else value.hex()


def plain(kafka):
    if kafka is None:
        return None
    out = dict(kafka)
    if "key" in out:
        out["key"] = hexed(out["key"])
    if out.get("timestamp") is not None:
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        out["timestamp"] = (out["timestamp"] - epoch) // datetime.timedelta(milliseconds=1)
    if out.get("headers") is not None:
        out["headers"] = [[h["key"], hexed(h["value"])] for h in out["headers"]]
    return out


def main():
    spec_json, identifier = sys.argv[1:3]
    catalog, _ = test_catalog.load(spec_json)
    table = catalog.load_table(identifier)
    field = table.schema().find_field("_kafka")
    rows = table.scan(selected_fields=("transaction_id", "_kafka")).to_arrow().to_pylist()
    print(
        json.dumps(
            {
                "type": str(field.field_type),
                "rows": [
                    {"transaction_id": row["transaction_id"], "kafka": plain(row["_kafka"])}
                    for row in rows
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
