//! The built-in global policy library, shipped inside the binary. Each rule lives in its own
//! package `datamesh.builtin.<rule>` and can be turned off by name (`--disable <rule>`).

/// Rule name and what it enforces, for `--help` and the README.
pub const RULES: &[(&str, &str)] = &[
    (
        "pii_masking",
        "A column tagged PII has a masking method (deny).",
    ),
    ("owner_email", "metadata.owner is an email address (deny)."),
    (
        "sla_complete",
        "Every output port states freshness and availability (deny).",
    ),
    (
        "commit_interval",
        "commit.interval is below the freshness SLA (deny).",
    ),
    ("retention", "policies.retention is a duration (deny)."),
    (
        "access_filter",
        "accessControl.filter is a SQL condition over the port's columns, without subqueries or unsafe functions (deny).",
    ),
    (
        "unkeyed_sha256",
        "PII masked with plain SHA256 (warn: prefer HMAC-SHA256).",
    ),
];

/// The rule sources, by name.
pub const SOURCES: &[(&str, &str)] = &[
    ("pii_masking", include_str!("library/pii_masking.rego")),
    ("owner_email", include_str!("library/owner_email.rego")),
    ("sla_complete", include_str!("library/sla_complete.rego")),
    (
        "commit_interval",
        include_str!("library/commit_interval.rego"),
    ),
    ("retention", include_str!("library/retention.rego")),
    ("access_filter", include_str!("library/access_filter.rego")),
    (
        "unkeyed_sha256",
        include_str!("library/unkeyed_sha256.rego"),
    ),
];

/// The library's own tests (`meshd policy test` with no folder).
pub const TESTS: &[(&str, &str)] = &[("builtin_test", include_str!("library/builtin_test.rego"))];
