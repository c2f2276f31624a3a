# The access-control row filter is a plain SQL condition over the port's own columns: no
# subqueries, and no functions beyond a short safe list.
package datamesh.builtin.access_filter

path := "spec.policies.accessControl.filter"

analysis := input.policies.accessControl.filterAnalysis

deny contains {"msg": msg, "rule": "access_filter", "path": path} if {
	not analysis.valid
	msg := sprintf("Product %v: accessControl.filter \"%v\" is not a SQL condition (%v); write one like \"region = 'JP'\".", [input.product.name, input.policies.accessControl.filter, analysis.error])
}

deny contains {"msg": msg, "rule": "access_filter", "path": path} if {
	some column in analysis.unknownColumns
	msg := sprintf("Product %v: accessControl.filter reads column '%v', which %v does not have; use one of the schema's columns.", [input.product.name, column, input.schema.file])
}

deny contains {"msg": msg, "rule": "access_filter", "path": path} if {
	analysis.subqueries
	msg := sprintf("Product %v: accessControl.filter contains a subquery; a row filter may only compare this row's columns.", [input.product.name])
}

deny contains {"msg": msg, "rule": "access_filter", "path": path} if {
	some f in analysis.unsafeFunctions
	msg := sprintf("Product %v: accessControl.filter calls %v(), which is not allowed in row filters; allowed: lower, upper, trim, length, coalesce, abs, substring, current_date, current_timestamp.", [input.product.name, f])
}
