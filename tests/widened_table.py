"""Reads a table whose schema was widened, with pyiceberg and with DuckDB's iceberg extension.

Usage: widened_table.py <catalog spec JSON> <namespace.table>

Prints one JSON document: the current schema's fields (id, name, type, required, doc), how many
schemas the table has, every row's transaction_id, account_id and amount (decimals as strings)
from pyiceberg, and from DuckDB the row count, the sum of account_id and the largest amount.
"""

import decimal
import json
import sys

import catalog as test_catalog


def main():
    spec_json, identifier = sys.argv[1:3]
    catalog, spec = test_catalog.load(spec_json)
    table = catalog.load_table(identifier)
    schema = table.schema()
    rows = (
        table.scan(selected_fields=("transaction_id", "account_id", "amount"))
        .to_arrow()
        .to_pylist()
    )
    con = test_catalog.duckdb_connection(spec)
    count, total, largest = con.execute(
        "SELECT count(*), sum(account_id)::VARCHAR, max(amount)::VARCHAR FROM iceberg_scan(?)",
        [table.metadata_location],
    ).fetchone()
    print(
        json.dumps(
            {
                "schemas": len(table.metadata.schemas),
                "fields": [
                    {
                        "id": f.field_id,
                        "name": f.name,
                        "type": str(f.field_type),
                        "required": f.required,
                        "doc": f.doc,
                    }
                    for f in schema.fields
                ],
                "rows": [
                    {
                        k: str(v) if isinstance(v, decimal.Decimal) else v
                        for k, v in row.items()
                    }
                    for row in rows
                ],
                "duckdb": {"rows": count, "account_id_sum": total, "max_amount": largest},
            }
        )
    )


if __name__ == "__main__":
    main()
