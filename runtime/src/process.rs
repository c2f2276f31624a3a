//! One meshd process: the metrics endpoint, the shared catalog, and one worker per product.
//! A product that fails to start is reported on `/readyz` and does not stop the others.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use meshd_config::policy::{PolicySet, Severity};
use meshd_config::{DataProduct, MaskingConfig, PlatformConfig, Sensitive};
use tokio_util::sync::CancellationToken;

use meshd_sinks::iceberg::commit::MetadataCommitter;

use crate::RuntimeError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::worker::{self, WorkerContext, WorkerOptions};

/// Reads the masking key from its file or variable; the key itself is never logged.
pub fn masking_key(config: &MaskingConfig) -> Result<Option<Sensitive<Vec<u8>>>, RuntimeError> {
    if let Some(path) = &config.key_file {
        let text = std::fs::read(path).map_err(|e| {
            RuntimeError::MaskingKey(format!(
                "cannot read masking.keyFile {}: {e}",
                path.display()
            ))
        })?;
        let trimmed = text.trim_ascii().to_vec();
        if trimmed.is_empty() {
            return Err(RuntimeError::MaskingKey(format!(
                "masking.keyFile {} is empty",
                path.display()
            )));
        }
        return Ok(Some(Sensitive::new(trimmed)));
    }
    if let Some(var) = &config.key_env {
        let value = std::env::var(var).map_err(|_| {
            RuntimeError::MaskingKey(format!("masking.keyEnv names {var}, which is not set"))
        })?;
        return Ok(Some(Sensitive::new(value.into_bytes())));
    }
    Ok(None)
}

/// What every run of meshd shares: the metrics registry, the health registry, the stop signal
/// and the HTTP endpoint serving them.
pub struct Services {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Health registry.
    pub health: Health,
    /// Cancelled to stop workers and the endpoint.
    pub shutdown: CancellationToken,
    /// Where the endpoint listens (the port is known even when `listen` asked for 0).
    pub bound: SocketAddr,
}

impl Services {
    /// Registers metrics and starts serving `/metrics`, `/healthz` and `/readyz` on `listen`.
    pub async fn start(listen: SocketAddr) -> Result<Self, RuntimeError> {
        let metrics = Metrics::new()?;
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let bound =
            crate::http::serve(listen, metrics.clone(), health.clone(), shutdown.clone()).await?;
        spawn_readiness_gauge(metrics.clone(), health.clone(), shutdown.clone());
        Ok(Self {
            metrics,
            health,
            shutdown,
            bound,
        })
    }
}

/// Evaluates the policies for one product: warnings are logged, denials refuse it with a
/// reason naming each rule, column and fix.
fn governance_check(policies: &PolicySet, product: &DataProduct) -> Result<(), String> {
    let findings = policies
        .evaluate(product)
        .map_err(|e| format!("policies could not be evaluated: {e}"))?;
    let mut denied = Vec::new();
    for f in findings {
        match f.severity {
            Severity::Warn => {
                tracing::warn!(product = %f.product, port = %f.port, rule = %f.rule, column = f.column.as_deref().unwrap_or(""), "{}", f.message)
            }
            Severity::Deny => denied.push(format!("refused by policy {}: {}", f.rule, f.message)),
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        Err(denied.join("; "))
    }
}

/// Exports the `/readyz` verdict per product as `meshd_worker_ready`, once a second, so
/// Prometheus can alert on a worker that runs but is not ready.
fn spawn_readiness_gauge(metrics: Metrics, health: Health, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            for (product, status) in health.readiness().products {
                metrics
                    .worker_ready
                    .with_label_values(&[&product])
                    .set(i64::from(status.ready));
            }
        }
    });
}

/// What `meshd run` does, with everything injectable for tests.
pub struct Process {
    /// Platform settings.
    pub platform: Arc<PlatformConfig>,
    /// Descriptor files to run.
    pub descriptors: Vec<PathBuf>,
    /// Worker tuning.
    pub options: WorkerOptions,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Health registry.
    pub health: Health,
}

impl Process {
    /// Runs every product until `shutdown`; returns how many products failed.
    pub async fn run(self, shutdown: CancellationToken) -> Result<usize, RuntimeError> {
        let key = masking_key(&self.platform.masking)?;
        let policies = PolicySet::from_config(&self.platform.governance)?;
        let catalog = meshd_sinks::iceberg::open_catalog(&self.platform).await?;
        let committer = MetadataCommitter::open(&self.platform).await?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed = 0;
        for path in &self.descriptors {
            let product = match DataProduct::load(path) {
                Ok(p) => p,
                Err(e) => {
                    let name = path.display().to_string();
                    tracing::error!(descriptor = %name, error = %e, "Product not started: its descriptor is invalid.");
                    self.health.failed(&name, &e.to_string());
                    failed += 1;
                    continue;
                }
            };
            let name = product.name().to_string();
            if let Err(reason) = governance_check(&policies, &product) {
                tracing::error!(product = %name, reason = %reason, "Product refused: governance policies deny it; run `meshd validate` for details.");
                self.health.failed(&name, &reason);
                self.metrics.worker_up.with_label_values(&[&name]).set(0);
                failed += 1;
                continue;
            }
            self.health.starting(&name);
            crate::maintenance::spawn(
                &product,
                &self.platform,
                Arc::clone(&catalog),
                committer.clone(),
                self.metrics.clone(),
                shutdown.clone(),
            );
            let ctx = WorkerContext {
                product,
                platform: Arc::clone(&self.platform),
                catalog: Arc::clone(&catalog),
                committer: committer.clone(),
                masking_key: key.clone(),
                metrics: self.metrics.clone(),
                health: self.health.clone(),
                options: self.options.clone(),
            };
            let token = shutdown.clone();
            tasks.spawn(async move { (name, worker::run(ctx, token).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => {
                    failed += 1;
                    tracing::error!(product = %name, error = %e, "Worker stopped with an error; other products keep running.");
                }
                Err(e) => {
                    failed += 1;
                    tracing::error!(error = %e, "A worker task panicked.");
                }
            }
        }
        Ok(failed)
    }
}
