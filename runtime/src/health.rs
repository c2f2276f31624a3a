//! Liveness and readiness per product. `/readyz` is ready when every product's worker runs
//! and has been assigned partitions; its JSON body says which product is not ready and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use crate::worker::WorkerStatus;

#[derive(Clone)]
enum State {
    Starting,
    Running(watch::Receiver<WorkerStatus>),
    Failed(String),
    Stopped,
}

/// Shared, cloneable health registry.
#[derive(Clone, Default)]
pub struct Health {
    products: Arc<Mutex<BTreeMap<String, State>>>,
}

/// One product's readiness, as `/readyz` reports it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ProductStatus {
    /// Whether it is ready.
    pub ready: bool,
    /// `starting`, `running`, `failed` or `stopped`.
    pub state: &'static str,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `/readyz` body.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// All products ready.
    pub ready: bool,
    /// Per product.
    pub products: BTreeMap<String, ProductStatus>,
}

impl Health {
    fn set(&self, product: &str, state: State) {
        if let Ok(mut p) = self.products.lock() {
            p.insert(product.to_string(), state);
        }
    }

    /// The worker is being built.
    pub fn starting(&self, product: &str) {
        self.set(product, State::Starting);
    }

    /// The worker runs; readiness follows the status it publishes.
    pub fn running(&self, product: &str, status: watch::Receiver<WorkerStatus>) {
        self.set(product, State::Running(status));
    }

    /// The worker failed; the reason is shown on `/readyz`.
    pub fn failed(&self, product: &str, reason: &str) {
        self.set(product, State::Failed(reason.to_string()));
    }

    /// The worker stopped after a graceful shutdown.
    pub fn stopped(&self, product: &str) {
        self.set(product, State::Stopped);
    }

    /// Current readiness of every product.
    pub fn readiness(&self) -> Readiness {
        let products: BTreeMap<String, ProductStatus> = self
            .products
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, state)| {
                let status = match state {
                    State::Starting => ProductStatus {
                        ready: false,
                        state: "starting",
                        reason: Some("connecting to the catalog and Kafka".into()),
                    },
                    State::Running(status) => {
                        let reason = status.borrow().not_ready_reason();
                        ProductStatus {
                            ready: reason.is_none(),
                            state: "running",
                            reason,
                        }
                    }
                    State::Failed(reason) => ProductStatus {
                        ready: false,
                        state: "failed",
                        reason: Some(reason),
                    },
                    State::Stopped => ProductStatus {
                        ready: false,
                        state: "stopped",
                        reason: Some("shut down".into()),
                    },
                };
                (name, status)
            })
            .collect();
        Readiness {
            ready: !products.is_empty() && products.values().all(|s| s.ready),
            products,
        }
    }
}
