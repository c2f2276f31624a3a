//! A client for the Confluent schema registry REST API (also served by Redpanda, Karapace and
//! Apicurio): the three reads meshd needs, a writer schema by id and a subject's versions.
//! Written on reqwest (already in the tree through iceberg) rather than a client crate: the
//! crates on crates.io pin other reqwest and apache-avro versions, and meshd needs exactly one
//! distinction from an answer: "this id does not exist" (the record's fault: a dead letter)
//! versus everything else (the registry's fault: wait and retry).

use std::time::Duration;

use meshd_config::{SchemaRegistryConfig, Sensitive};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::RuntimeError;

/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A schema registry, with its credentials.
pub struct Registry {
    http: reqwest::Client,
    base: String,
    username: Option<String>,
    password: Option<Sensitive<String>>,
    token: Option<Sensitive<String>>,
}

/// One registered version of a subject.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectVersion {
    /// The version number.
    pub version: u32,
    /// The schema id records carry.
    pub id: u32,
    /// The schema text.
    pub schema: String,
    /// `AVRO` when absent; meshd reads Avro only.
    #[serde(default, rename = "schemaType")]
    pub schema_type: Option<String>,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

impl Registry {
    /// A client for the configured registry; a CA file that cannot be read is an error now.
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RuntimeError> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| RuntimeError::Registry {
            url: redact(&config.url),
            problem: format!("`schemaRegistry.url` is not a URL ({e})"),
        })?;
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| RuntimeError::Registry {
                url: redact(url.as_str()),
                problem: format!("cannot read schemaRegistry.caFile {}: {e}", path.display()),
            })?;
            let certificate =
                reqwest::Certificate::from_pem(&pem).map_err(|e| RuntimeError::Registry {
                    url: redact(url.as_str()),
                    problem: format!(
                        "schemaRegistry.caFile {} is not a PEM certificate: {e}",
                        path.display()
                    ),
                })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| RuntimeError::Registry {
            url: redact(url.as_str()),
            problem: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            http,
            base: url.as_str().trim_end_matches('/').to_string(),
            username: config.username.clone(),
            password: config.password.clone(),
            token: config.token.clone(),
        })
    }

    /// The schema registered under `id` (None: the registry does not know it). A schema of
    /// another type (JSON Schema, Protobuf) is returned as is and fails resolution.
    pub async fn schema(&self, id: u32) -> Result<Option<String>, RuntimeError> {
        let found: Option<SchemaById> = self.get(&format!("/schemas/ids/{id}")).await?;
        Ok(found.map(|s| match s.schema_type.as_deref() {
            None | Some("AVRO") => s.schema,
            Some(other) => format!("{{\"type\": \"{other} schema, not Avro\"}}"),
        }))
    }

    /// The version numbers registered under `subject` (None: no such subject).
    pub async fn versions(&self, subject: &str) -> Result<Option<Vec<u32>>, RuntimeError> {
        self.get(&format!("/subjects/{}/versions", encode(subject)))
            .await
    }

    /// One version of `subject` (None: no such subject or version).
    pub async fn version(
        &self,
        subject: &str,
        version: u32,
    ) -> Result<Option<SubjectVersion>, RuntimeError> {
        self.get(&format!("/subjects/{}/versions/{version}", encode(subject)))
            .await
    }

    /// GETs `path`; a 404 is `None`, any other failure an error that says what to check.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, RuntimeError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        } else if let Some(user) = &self.username {
            request = request.basic_auth(user, self.password.as_ref().map(|p| p.expose()));
        }
        let failed = |problem: String| RuntimeError::Registry {
            url: redact(&url),
            problem,
        };
        let response = request.send().await.map_err(|e| {
            failed(format!(
                "no answer ({}); check schemaRegistry.url and that the registry is up",
                without_url(&e)
            ))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(failed(format!(
                "refused with {status}; check schemaRegistry.username/password or token"
            )));
        }
        if !status.is_success() {
            return Err(failed(format!("answered {status}")));
        }
        response.json::<T>().await.map(Some).map_err(|e| {
            failed(format!(
                "answered something that is not the registry's JSON ({})",
                without_url(&e)
            ))
        })
    }
}

/// A subject in a URL path (subjects may contain `/` or spaces).
fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A URL without user and password, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "<the configured URL>".into(),
    }
}

/// reqwest's error text without the URL it carries (the message names the URL once, redacted).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the registry");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_path_encoded_and_urls_lose_their_credentials() {
        assert_eq!(encode("orders-value"), "orders-value");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        let shown = redact("https://user:hunter2@registry:8081/");
        assert!(
            !shown.contains("hunter2") && !shown.contains("user"),
            "{shown}"
        );
    }
}
