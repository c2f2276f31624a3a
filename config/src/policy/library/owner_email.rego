# The owner is a reachable address, so alerts and access requests reach a team.
package datamesh.builtin.owner_email

deny contains {"msg": msg, "rule": "owner_email", "path": "metadata.owner"} if {
	not regex.match(`^[^@\s]+@[^@\s]+\.[^@\s]+$`, input.product.owner)
	msg := sprintf("Product %v: metadata.owner '%v' is not an email address; set it to the owning team's address, e.g. payments-team@example.com.", [input.product.name, input.product.owner])
}
