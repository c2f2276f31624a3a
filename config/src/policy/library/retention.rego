# A declared retention is a duration meshd (and the lifecycle jobs after it) can act on.
package datamesh.builtin.retention

deny contains {"msg": msg, "rule": "retention", "path": "spec.policies.retention"} if {
	input.policies.retention
	not is_number(input.policies.retention.seconds)
	msg := sprintf("Product %v: retention '%v' is not a duration; write it like \"7years\", \"90days\" or \"24h\".", [input.product.name, input.policies.retention.text])
}
