//! The REST catalog's table commit endpoint, for meshd's own metadata commits
//! ([`super::commit`]): iceberg-catalog-rest can only send the commits iceberg-rust's
//! transactions build. Auth follows the catalog's settings as iceberg-catalog-rest reads them:
//! a bearer `token`, or a `credential` (`client_id:client_secret`) exchanged for one at
//! `oauth2-server-uri` (default `{uri}/v1/oauth/tokens`) with `scope` (default `catalog`),
//! and the extra `headers`.

use std::time::Duration;

use iceberg::{Error, ErrorKind, TableIdent};
use iceberg_catalog_rest::CommitTableRequest;
use meshd_config::PlatformConfig;
use reqwest::{Method, RequestBuilder, StatusCode};
use tokio::sync::Mutex;

use super::commit::MetadataChange;
use crate::SinkError;

/// A client for the REST catalog's commit endpoint.
pub(super) struct RestTables {
    http: reqwest::Client,
    base: String,
    prefix: Option<String>,
    headers: Vec<(String, String)>,
    credential: Option<(String, String)>,
    token_uri: String,
    scope: String,
    token: Mutex<Option<String>>,
}

impl RestTables {
    /// Reads the catalog's config (its URL prefix for the warehouse), authenticating first.
    pub(super) async fn open(config: &PlatformConfig) -> Result<Self, SinkError> {
        let catalog = &config.catalog;
        let base = catalog.uri.trim_end_matches('/').to_string();
        let failed = |what: String| SinkError::CatalogOpen {
            kind: "rest",
            uri: super::catalog::redact_uri(&catalog.uri),
            source: Error::new(ErrorKind::Unexpected, super::catalog::scrub(&what, config)),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| failed(format!("building the HTTP client: {e}")))?;
        let credential = catalog.credential.as_ref().map(|c| {
            let c = c.expose();
            match c.split_once(':') {
                Some((id, secret)) => (id.to_string(), secret.to_string()),
                None => (String::new(), c.clone()),
            }
        });
        let mut tables = Self {
            http,
            token_uri: catalog
                .properties
                .get("oauth2-server-uri")
                .cloned()
                .unwrap_or_else(|| format!("{base}/v1/oauth/tokens")),
            scope: catalog
                .properties
                .get("scope")
                .cloned()
                .unwrap_or_else(|| "catalog".into()),
            base,
            prefix: catalog.properties.get("prefix").cloned(),
            headers: catalog
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().clone()))
                .collect(),
            credential,
            token: Mutex::new(catalog.token.as_ref().map(|t| t.expose().clone())),
        };
        let mut url = format!("{}/v1/config", tables.base);
        if let Some(warehouse) = &catalog.warehouse {
            url.push_str("?warehouse=");
            url.extend(url::form_urlencoded::byte_serialize(warehouse.as_bytes()));
        }
        let response = tables
            .send(|http| http.request(Method::GET, &url))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(failed(format!("GET {url}: {status}: {body}")));
        }
        let answer: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| failed(format!("GET {url}: not a catalog config: {e}")))?;
        let from = |section: &str| answer[section]["prefix"].as_str().map(str::to_string);
        // As iceberg-catalog-rest merges them: the server's overrides, then the user's
        // settings, then the server's defaults.
        if let Some(prefix) = from("overrides") {
            tables.prefix = Some(prefix);
        } else if tables.prefix.is_none() {
            tables.prefix = from("defaults");
        }
        Ok(tables)
    }

    /// Sends one commit; `409 Conflict` (a requirement failed) is a retryable conflict.
    pub(super) async fn commit(
        &self,
        ident: &TableIdent,
        change: MetadataChange,
    ) -> Result<(), Error> {
        let url = self.table_url(ident)?;
        let request = CommitTableRequest {
            identifier: Some(ident.clone()),
            requirements: change.requirements,
            updates: change.updates,
        };
        let response = self
            .send(|http| http.request(Method::POST, &url).json(&request))
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let (kind, retryable, hint) = match status {
            StatusCode::CONFLICT => (ErrorKind::CatalogCommitConflicts, true, ""),
            StatusCode::NOT_FOUND => (ErrorKind::TableNotFound, false, ""),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
                ErrorKind::Unexpected,
                false,
                " (check catalog.token or catalog.credential, and that the principal may commit to this table)",
            ),
            // 500, 502, 504: the REST spec's "commit state unknown".
            s if s.is_server_error() => (ErrorKind::Unexpected, true, " (outcome unknown)"),
            _ => (ErrorKind::Unexpected, false, ""),
        };
        Err(
            Error::new(kind, format!("POST {url}: {status}{hint}: {body}"))
                .with_retryable(retryable),
        )
    }

    /// `{uri}/v1/{prefix}/namespaces/{ns}/tables/{name}`, each segment percent-encoded (the
    /// namespace's levels joined by 0x1F, as the REST spec says).
    fn table_url(&self, ident: &TableIdent) -> Result<String, Error> {
        let mut url = url::Url::parse(&self.base).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("catalog.uri `{}` is not a URL: {e}", self.base),
            )
        })?;
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!("catalog.uri `{}` cannot have a path", self.base),
                )
            })?;
            segments.pop_if_empty().push("v1");
            if let Some(prefix) = &self.prefix {
                segments.extend(prefix.split('/').filter(|p| !p.is_empty()));
            }
            segments
                .push("namespaces")
                .push(&ident.namespace().to_url_string())
                .push("tables")
                .push(ident.name());
        }
        Ok(url.to_string())
    }

    /// Sends a request with the headers and the bearer token; a `401` with a credential fetches
    /// a new token and tries once more.
    async fn send(
        &self,
        request: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let mut renewed = false;
        loop {
            let mut token = self.token.lock().await;
            if token.is_none() && self.credential.is_some() {
                *token = Some(self.exchange().await?);
            }
            let mut builder = request(&self.http);
            for (name, value) in &self.headers {
                builder = builder.header(name, value);
            }
            if let Some(t) = token.as_ref() {
                builder = builder.bearer_auth(t);
            }
            let response = builder.send().await.map_err(|e| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("the REST catalog at {} did not answer: {e}", self.base),
                )
                .with_retryable(true)
            })?;
            if response.status() == StatusCode::UNAUTHORIZED
                && self.credential.is_some()
                && !renewed
            {
                *token = None;
                renewed = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// OAuth2 client credentials for a token, as iceberg-catalog-rest does.
    async fn exchange(&self) -> Result<String, Error> {
        let Some((id, secret)) = &self.credential else {
            return Err(Error::new(ErrorKind::Unexpected, "no catalog.credential"));
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_secret", secret.as_str()),
            ("scope", self.scope.as_str()),
        ];
        if !id.is_empty() {
            form.push(("client_id", id.as_str()));
        }
        let failed = |what: String| {
            Error::new(
                ErrorKind::Unexpected,
                format!("getting a token from {}: {what}", self.token_uri),
            )
        };
        let response = self
            .http
            .post(&self.token_uri)
            .form(&form)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| failed(format!("{status}: {e}")))?;
        answer["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| failed(format!("{status}: no access_token in the answer")))
    }
}
