# Every column tagged PII declares how it is masked (the seed's rule, with a fix in the message).
package datamesh.builtin.pii_masking

deny contains {"msg": msg, "rule": "pii_masking", "column": col.path} if {
	some col in input.schema.columns
	"PII" in col.tags
	not col.masking
	msg := sprintf("Column '%v' of product %v is tagged PII but has no masking: add \"masking\": \"HMAC-SHA256\" (or SHA256, REDACT, NULL, LAST4) to the field in %v.", [col.path, input.product.name, input.schema.file])
}
