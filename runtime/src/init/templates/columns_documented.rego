# The team's own rule, beside meshd's built-in library: every column says what it holds, so
# people who find the table in a catalog can use it without asking. Checked in CI by
#   meshd validate --policy policies product.yaml
# and tested by columns_documented_test.rego (`meshd policy test policies`).
package datamesh.columns_documented

deny contains {"msg": msg, "rule": "columns_documented", "column": col.path} if {
	some col in input.schema.columns
	not documented(col)
	msg := sprintf("Column '%v' of product %v has no doc: add a \"doc\" to the field in %v.", [col.path, input.product.name, input.schema.file])
}

documented(col) if trim_space(col.doc) != ""
