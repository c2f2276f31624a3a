# Tests of columns_documented.rego: run with `meshd policy test policies`.
package test.datamesh.columns_documented

import data.datamesh.columns_documented

document(columns) := {
	"product": {"name": "p", "domain": "d", "owner": "team@example.com"},
	"schema": {"file": "schema/p.avsc", "columns": columns},
}

test_denies_a_column_without_doc if {
	some finding in columns_documented.deny with input as document([
		{"name": "id", "path": "id", "type": "string", "optional": false, "tags": [], "doc": "Unique id"},
		{"name": "region", "path": "region", "type": "string", "optional": false, "tags": []},
	])
	finding.column == "region"
}

test_denies_a_blank_doc if {
	count(columns_documented.deny) == 1 with input as document([
		{"name": "id", "path": "id", "type": "string", "optional": false, "tags": [], "doc": "  "},
	])
}

test_passes_documented_columns if {
	count(columns_documented.deny) == 0 with input as document([
		{"name": "id", "path": "id", "type": "string", "optional": false, "tags": [], "doc": "Unique id"},
	])
}
