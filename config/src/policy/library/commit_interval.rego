# Data is committed more often than the freshness SLA allows it to age.
package datamesh.builtin.commit_interval

deny contains {"msg": msg, "rule": "commit_interval", "path": sprintf("spec.outputPorts[%d].commit.interval", [input.port.index])} if {
	input.port.commit.interval.seconds >= input.port.sla.freshness.seconds
	msg := sprintf("Product %v, port %v: commit.interval %v is not below the freshness SLA %v; data would breach the SLA between commits. Lower commit.interval.", [input.product.name, input.port.table, input.port.commit.interval.text, input.port.sla.freshness.text])
}
