//! `tests/registry.py`, the minimal Confluent-compatible schema registry of the tests (no
//! registry server installs here), as a process on a free port. Its state is a JSON file, so
//! `stop` then `resume` is an outage that keeps every id.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A running (or stopped) test registry.
pub struct SchemaRegistry {
    python: PathBuf,
    port: u16,
    state: PathBuf,
    child: Option<Child>,
}

impl SchemaRegistry {
    /// Starts it with `schemas` registered in order (ids 1, 2, …), each under its subject.
    pub fn start(python: &Path, dir: &Path, schemas: &[(&str, &str)]) -> Self {
        let state = dir.join("registry.json");
        let mut subjects = serde_json::Map::new();
        for (i, (subject, _)) in schemas.iter().enumerate() {
            subjects
                .entry(subject.to_string())
                .or_insert_with(|| serde_json::json!([]))
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!(i + 1));
        }
        let texts: Vec<&str> = schemas.iter().map(|(_, s)| *s).collect();
        std::fs::write(
            &state,
            serde_json::json!({"schemas": texts, "subjects": subjects}).to_string(),
        )
        .unwrap();
        let mut registry = Self {
            python: python.to_path_buf(),
            port: super::free_port(),
            state,
            child: None,
        };
        registry.resume();
        registry
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port with the same ids.
    pub fn resume(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/registry.py");
        self.child = Some(
            Command::new(&self.python)
                .arg(script)
                .arg(self.port.to_string())
                .arg(&self.state)
                .spawn()
                .unwrap(),
        );
        let probe = format!("{}/subjects/probe/versions", self.url());
        super::poll("the registry to answer", Duration::from_secs(20), || {
            super::http_get_status(&probe).map(|_| ())
        });
    }

    /// Stops the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for SchemaRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
