# Plain SHA-256 of low-entropy PII (emails, card numbers) can be reversed by guessing; a keyed
# HMAC cannot without the key.
package datamesh.builtin.unkeyed_sha256

warn contains {"msg": msg, "rule": "unkeyed_sha256", "column": col.path} if {
	some col in input.schema.columns
	"PII" in col.tags
	col.masking == "SHA256"
	msg := sprintf("Column '%v' of product %v is masked with SHA256; prefer \"HMAC-SHA256\" with masking.keyFile set, which cannot be reversed by hashing guesses.", [col.path, input.product.name])
}
