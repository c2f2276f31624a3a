"""Counts a key column of a meshd output table with pyiceberg, the independent reader.

Usage: table_keys.py <catalog spec JSON> <namespace.table> <column>

Prints one JSON document: the number of rows, and every key with how often it occurs when
that is more than once, so the Rust test can check "every key exactly once" without
shipping the whole table through JSON; under "duckdb" the same counts from DuckDB's iceberg
extension reading the table's current metadata file (a second reader of every data file).
"""

import datetime
import json
import sys

import pyarrow.compute as pc

import catalog as test_catalog


def plain(value):
    """Timestamps as epoch milliseconds, so JSON carries them."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    return value


def main():
    spec_json, identifier, column = sys.argv[1:4]
    catalog, spec = test_catalog.load(spec_json)
    table = catalog.load_table(identifier)
    keys = table.scan(selected_fields=(column,)).to_arrow()[column]
    counts = pc.value_counts(keys)
    repeated = {
        str(item["values"]): int(item["counts"])
        for item in counts.to_pylist()
        if item["counts"] > 1
    }
    con = test_catalog.duckdb_connection(spec)
    rows, distinct = con.execute(
        f'SELECT count(*), count(DISTINCT "{column}") FROM iceberg_scan(?)',
        [table.metadata_location],
    ).fetchone()
    print(
        json.dumps(
            {
                "rows": len(keys),
                "distinct": len(counts),
                "min": plain(pc.min(keys).as_py()),
                "max": plain(pc.max(keys).as_py()),
                "repeated": repeated,
                "duckdb": {"rows": rows, "distinct": distinct},
            }
        )
    )


if __name__ == "__main__":
    main()
