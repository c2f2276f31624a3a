"""Reads a meshd output table with pyiceberg, the independent reader of the end-to-end tests.

Usage: read_table.py <catalog spec JSON> <namespace.table>

Prints one JSON document: the table's properties, its snapshots (summaries included) and
every row, with decimals as strings and timestamps as epoch milliseconds, so the Rust test
can compare values exactly.
"""

import datetime
import decimal
import json
import sys

import catalog as test_catalog


def plain(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def main():
    spec_json, identifier = sys.argv[1:3]
    catalog, _ = test_catalog.load(spec_json)
    table = catalog.load_table(identifier)
    rows = table.scan().to_arrow().to_pylist()
    print(
        json.dumps(
            {
                "properties": dict(table.properties),
                "snapshots": [
                    {"id": s.snapshot_id, "summary": s.summary.additional_properties if s.summary else {}}
                    for s in table.metadata.snapshots
                ],
                "rows": [{k: plain(v) for k, v in row.items()} for row in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
