# Every output port states both SLA numbers: freshness (how old data may be) and availability.
package datamesh.builtin.sla_complete

deny contains {"msg": msg, "rule": "sla_complete", "path": sprintf("spec.outputPorts[%d].sla", [input.port.index])} if {
	not is_number(input.port.sla.freshness.seconds)
	msg := sprintf("Product %v, port %v: no freshness SLA; add sla.freshness, e.g. \"15min\".", [input.product.name, input.port.table])
}

deny contains {"msg": msg, "rule": "sla_complete", "path": sprintf("spec.outputPorts[%d].sla", [input.port.index])} if {
	not is_number(input.port.sla.availability.ratio)
	msg := sprintf("Product %v, port %v: no availability SLA; add sla.availability, e.g. \"99.9%%\".", [input.product.name, input.port.table])
}
