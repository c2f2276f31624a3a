"""Counts a key column of a meshd output table with pyiceberg, the independent reader.

Usage: table_keys.py <catalog.db> <warehouse dir> <namespace.table> <column>

Prints one JSON document: the number of rows, and every key with how often it occurs when
that is more than once, so the Rust test can check "every key exactly once" without
shipping the whole table through JSON.
"""

import json
import sys

import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog


def main():
    catalog_db, warehouse, identifier, column = sys.argv[1:5]
    catalog = SqlCatalog("meshd", uri=f"sqlite:///{catalog_db}", warehouse=f"file://{warehouse}")
    keys = catalog.load_table(identifier).scan(selected_fields=(column,)).to_arrow()[column]
    counts = pc.value_counts(keys)
    repeated = {
        str(item["values"]): int(item["counts"])
        for item in counts.to_pylist()
        if item["counts"] > 1
    }
    print(
        json.dumps(
            {
                "rows": len(keys),
                "distinct": len(counts),
                "min": pc.min(keys).as_py(),
                "max": pc.max(keys).as_py(),
                "repeated": repeated,
            }
        )
    )


if __name__ == "__main__":
    main()
