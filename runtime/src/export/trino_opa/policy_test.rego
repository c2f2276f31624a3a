# The bundle's own tests, on a fixture product and on the exported data (run with `opa test <bundle>` or
# `meshd policy test <bundle>`). Requests are shaped as Trino's OPA plugin sends them.
package trino_test

import rego.v1

import data.trino

fixture := {
	"catalog": "iceberg",
	"adminGroup": "meshd-admin",
	"tables": {"payments": {"payment_transactions": {
		"product": "payment-transactions",
		"role": "data-analyst",
		"rowFilter": "region = 'JP'",
		"piiColumns": ["email", "card_last4"],
		"piiCleared": ["fraud-investigators"],
	}}},
}

request(groups, action) := {
	"context": {
		"identity": {"user": "alice", "groups": groups},
		"softwareStack": {"trinoVersion": "455"},
	},
	"action": action,
}

analyst := ["data-analyst"]

outsider := ["marketing"]

admin := ["meshd-admin"]

table := {"catalogName": "iceberg", "schemaName": "payments", "tableName": "payment_transactions"}

select_request(groups) := request(groups, {
	"operation": "SelectFromColumns",
	"resource": {"table": object.union(table, {"columns": ["transaction_id", "email"]})},
})

column_request(groups, name) := request(groups, {
	"operation": "GetColumnMask",
	"resource": {"column": object.union(table, {"columnName": name, "columnType": "varchar"})},
})

test_everyone_may_execute_a_query if {
	trino.allow with input as request(outsider, {"operation": "ExecuteQuery"}) with data.meshd.trino as fixture
}

test_analyst_selects_the_table if {
	trino.allow with input as select_request(analyst) with data.meshd.trino as fixture
}

test_outsider_may_not_select if {
	not trino.allow with input as select_request(outsider) with data.meshd.trino as fixture
}

test_admin_selects_anything if {
	trino.allow with input as select_request(admin) with data.meshd.trino as fixture
}

test_outsider_does_not_see_the_table if {
	filter := request(outsider, {"operation": "FilterTables", "filterResources": [{"table": table}]})
	count(trino.batch) == 0 with input as filter with data.meshd.trino as fixture
}

test_analyst_sees_the_table_only if {
	other := {"catalogName": "iceberg", "schemaName": "hr", "tableName": "salaries"}
	filter := request(analyst, {"operation": "FilterTables", "filterResources": [{"table": other}, {"table": table}]})
	trino.batch == {1} with input as filter with data.meshd.trino as fixture
}

test_analyst_gets_the_row_filter if {
	rows := request(analyst, {"operation": "GetRowFilters", "resource": {"table": table}})
	trino.rowFilters == {{"expression": "region = 'JP'"}} with input as rows with data.meshd.trino as fixture
}

test_admin_gets_no_row_filter if {
	rows := request(admin, {"operation": "GetRowFilters", "resource": {"table": table}})
	count(trino.rowFilters) == 0 with input as rows with data.meshd.trino as fixture
}

test_analyst_gets_pii_masked if {
	mask := trino.columnMask with input as column_request(analyst, "email") with data.meshd.trino as fixture
	mask == {"expression": "CAST(NULL AS varchar)"}
}

test_other_columns_are_not_masked if {
	not trino.columnMask with input as column_request(analyst, "region") with data.meshd.trino as fixture
}

test_cleared_group_sees_pii if {
	not trino.columnMask with input as column_request(["data-analyst", "fraud-investigators"], "email") with data.meshd.trino as fixture
}

test_batch_column_masks_index_the_pii_columns if {
	columns := [{"column": object.union(table, {"columnName": name, "columnType": "varchar"})} | some name in ["region", "email"]]
	masks := trino.batchColumnMasks with input as request(analyst, {"operation": "GetColumnMask", "filterResources": columns}) with data.meshd.trino as fixture
	masks == {{"index": 1, "viewExpression": {"expression": "CAST(NULL AS varchar)"}}}
}

# On the exported data itself: each product's table is readable by its role and hidden from
# a user in no group.
test_exported_tables_are_readable_by_their_role_only if {
	every schema, tables in data.meshd.trino.tables {
		every name, table in tables {
			readable_by_role_only(schema, name, table)
		}
	}
}

readable_by_role_only(_, _, table) if not table.role

readable_by_role_only(schema, name, table) if {
	is_string(table.role)
	resource := {"table": {"catalogName": data.meshd.trino.catalog, "schemaName": schema, "tableName": name, "columns": ["x"]}}
	trino.allow with input as request([table.role], {"operation": "SelectFromColumns", "resource": resource})
	not trino.allow with input as request([], {"operation": "SelectFromColumns", "resource": resource})
}
