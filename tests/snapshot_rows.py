"""Reads every snapshot of a table with pyiceberg (time travel) and prints, as JSON, the number of
rows each one holds: {"<snapshot id>": rows}. A snapshot whose files are gone fails loudly.

Usage: snapshot_rows.py <catalog spec JSON> <namespace.table>
"""

import json
import sys

import catalog as test_catalog


def main():
    spec_json, identifier = sys.argv[1:3]
    catalog, _ = test_catalog.load(spec_json)
    table = catalog.load_table(identifier)
    rows = {
        str(s.snapshot_id): table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows
        for s in table.metadata.snapshots
    }
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
