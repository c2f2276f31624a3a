# Tests of the built-in library: for each rule, an input it denies and one it passes.
# Run with `meshd policy test` (no folder: these built-in tests).
package test.datamesh.builtin

import data.datamesh.builtin.access_filter
import data.datamesh.builtin.commit_interval
import data.datamesh.builtin.owner_email
import data.datamesh.builtin.pii_masking
import data.datamesh.builtin.retention
import data.datamesh.builtin.sla_complete
import data.datamesh.builtin.unkeyed_sha256

good := {
	"product": {"name": "p", "domain": "d", "owner": "team@example.com"},
	"port": {
		"index": 0, "table": "d.p",
		"sla": {"freshness": {"text": "15min", "seconds": 900}, "availability": {"text": "99.9%", "ratio": 0.999}},
		"commit": {"interval": {"text": "10s", "seconds": 10}},
	},
	"schema": {"file": "s.avsc", "columns": [
		{"name": "email", "path": "email", "type": "string", "optional": false, "tags": ["PII"], "masking": "HMAC-SHA256"},
		{"name": "region", "path": "region", "type": "string", "optional": false, "tags": []},
	]},
	"policies": {
		"retention": {"text": "7years", "seconds": 220898160},
		"accessControl": {"role": "analyst", "filter": "region = 'JP'", "filterAnalysis": {
			"valid": true, "columns": ["region"], "unknownColumns": [], "functions": [], "unsafeFunctions": [], "subqueries": false,
		}},
	},
}

with_columns(cols) := object.union(good, {"schema": {"file": "s.avsc", "columns": cols}})

with_analysis(a) := object.union(good, {"policies": {"accessControl": {"filter": "x", "filterAnalysis": object.union(good.policies.accessControl.filterAnalysis, a)}}})

test_pii_masking_denies_unmasked_pii if {
	some d in pii_masking.deny with input as with_columns([{"name": "email", "path": "email", "tags": ["PII"]}])
	d.column == "email"
}

test_pii_masking_passes_masked_pii if {
	count(pii_masking.deny) == 0 with input as good
}

test_owner_email_denies_a_name if {
	count(owner_email.deny) == 1 with input as object.union(good, {"product": {"name": "p", "owner": "Payments Team"}})
}

test_owner_email_passes_an_address if {
	count(owner_email.deny) == 0 with input as good
}

test_sla_complete_denies_missing_availability if {
	no_availability := {"product": good.product, "port": {"index": 0, "table": "d.p", "sla": {"freshness": {"text": "15min", "seconds": 900}}}}
	count(sla_complete.deny) == 1 with input as no_availability
}

test_sla_complete_passes_both if {
	count(sla_complete.deny) == 0 with input as good
}

test_commit_interval_denies_slow_commits if {
	count(commit_interval.deny) == 1 with input as object.union(good, {"port": {"commit": {"interval": {"text": "20min", "seconds": 1200}}}})
}

test_commit_interval_passes_fast_commits if {
	count(commit_interval.deny) == 0 with input as good
}

test_retention_denies_unparsed if {
	count(retention.deny) == 1 with input as object.union(good, {"policies": {"retention": {"text": "forever", "seconds": null}}})
}

test_retention_passes_a_duration if {
	count(retention.deny) == 0 with input as good
}

test_access_filter_denies_invalid_sql if {
	count(access_filter.deny) == 1 with input as with_analysis({"valid": false, "error": "syntax"})
}

test_access_filter_denies_unknown_columns if {
	count(access_filter.deny) == 1 with input as with_analysis({"unknownColumns": ["country"]})
}

test_access_filter_denies_subqueries if {
	count(access_filter.deny) == 1 with input as with_analysis({"subqueries": true})
}

test_access_filter_denies_unsafe_functions if {
	count(access_filter.deny) == 1 with input as with_analysis({"unsafeFunctions": ["sleep"]})
}

test_access_filter_passes_a_plain_condition if {
	count(access_filter.deny) == 0 with input as good
}

test_unkeyed_sha256_warns if {
	count(unkeyed_sha256.warn) == 1 with input as with_columns([{"name": "email", "path": "email", "tags": ["PII"], "masking": "SHA256"}])
}

test_unkeyed_sha256_quiet_for_hmac if {
	count(unkeyed_sha256.warn) == 0 with input as good
}

test_crypto_builtins_match_known_digests if {
	crypto.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	crypto.hmac.sha256("", "") == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
}
