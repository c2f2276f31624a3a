//! Rego evaluation with regorus, the way conftest does it: every rule named `deny`,
//! `violation` (fail) or `warn` (report) in any package under `datamesh` is evaluated against
//! the policy input of each output port. Rego v0 (`deny[msg] { … }`) and v1
//! (`deny contains msg if { … }`) files are both accepted: each file is parsed as v1 first
//! and, failing that, as v0; the two kinds are evaluated in separate engines.

use std::collections::BTreeSet;
use std::path::Path;

use regorus::{Engine, Value as RegoValue};
use serde_json::Value;

use super::finding::{Finding, Severity, TestOutcome};
use super::input::policy_input;
use super::library;
use crate::descriptor::DataProduct;
use crate::error::ConfigError;

/// One policy file.
#[derive(Debug, Clone)]
struct Module {
    origin: String,
    text: String,
    v0: bool,
}

/// A set of policies to evaluate: the built-in library plus a team's own.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    modules: Vec<Module>,
    disabled: BTreeSet<String>,
    /// JSON documents merged into `data` (origin, text), given to every engine.
    data: Vec<(String, String)>,
    /// The modules parsed once, in one engine per Rego version; evaluations run on clones.
    v1: Option<Engine>,
    v0: Option<Engine>,
}

impl PolicySet {
    /// No policies at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in global library (see [`library::RULES`]).
    pub fn builtin() -> Result<Self, ConfigError> {
        let mut set = Self::empty();
        for (name, text) in library::SOURCES {
            set.add_source(format!("builtin:{name}"), (*text).to_string())?;
        }
        Ok(set)
    }

    /// The policies a platform config asks for: the built-in library unless turned off, the
    /// configured files and folders, minus the disabled rules.
    pub fn from_config(config: &crate::GovernanceConfig) -> Result<Self, ConfigError> {
        let mut set = if config.builtin {
            Self::builtin()?
        } else {
            Self::empty()
        };
        for path in &config.policies {
            set.add_path(path)?;
        }
        for rule in &config.disable {
            set.disable(rule);
        }
        Ok(set)
    }

    /// Turns a rule off by name (`pii_masking`, or a team rule's package name).
    pub fn disable(&mut self, rule: &str) {
        self.disabled.insert(rule.to_string());
    }

    /// Adds a `.rego` file, or every `.rego` file below a folder.
    pub fn add_path(&mut self, path: &Path) -> Result<(), ConfigError> {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths {
                if p.is_dir() || p.extension().is_some_and(|e| e == "rego") {
                    self.add_path(&p)?;
                }
            }
            return Ok(());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_source(path.display().to_string(), text)
    }

    /// Adds policy text; `origin` names it in messages.
    pub fn add_source(&mut self, origin: String, text: String) -> Result<(), ConfigError> {
        let mut first_error = None;
        for v0 in [false, true] {
            let slot = if v0 { &mut self.v0 } else { &mut self.v1 };
            let mut candidate = match slot {
                Some(engine) => engine.clone(),
                None => {
                    let mut engine = new_engine(v0, &origin)?;
                    for (data_origin, json) in &self.data {
                        engine
                            .add_data_json(json)
                            .map_err(|e| policy_error(data_origin, e))?;
                    }
                    engine
                }
            };
            match candidate.add_policy(origin.clone(), text.clone()) {
                Ok(_) => {
                    *slot = Some(candidate);
                    self.modules.push(Module { origin, text, v0 });
                    return Ok(());
                }
                // A v1 parse error is the one to report: v0 is only the fallback.
                Err(e) => {
                    first_error.get_or_insert_with(|| policy_error(&origin, e));
                }
            }
        }
        Err(first_error.unwrap_or_else(|| policy_error(&origin, "does not parse")))
    }

    /// Merges a JSON document into `data`, as OPA loads a bundle's `data.json`, for rules and
    /// tests that read it; `origin` names it in messages.
    pub fn add_data_json(&mut self, origin: &str, json: &str) -> Result<(), ConfigError> {
        for engine in [&mut self.v1, &mut self.v0].into_iter().flatten() {
            engine
                .add_data_json(json)
                .map_err(|e| policy_error(origin, e))?;
        }
        self.data.push((origin.to_string(), json.to_string()));
        Ok(())
    }

    /// How many policy files are loaded.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// Whether no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Evaluates every rule against every output port of `product`.
    pub fn evaluate(&self, product: &DataProduct) -> Result<Vec<Finding>, ConfigError> {
        let mut findings = Vec::new();
        let mut engines = self.engines()?;
        for port in 0..product.spec.spec.output_ports.len() {
            let input = policy_input(product, port);
            let input_json = input.to_string();
            for (engine, origin) in &mut engines {
                engine
                    .set_input_json(&input_json)
                    .map_err(|e| policy_error(origin, e))?;
                let tree = eval_json(engine, "data.datamesh", origin)?;
                let mut package = vec!["datamesh".to_string()];
                collect(&tree, &mut package, &mut |package, kind, messages| {
                    for message in messages {
                        let finding =
                            Finding::from_message(product, port, &input, package, kind, message);
                        if !self.disabled.contains(&finding.rule) {
                            findings.push(finding);
                        }
                    }
                });
            }
        }
        Ok(findings)
    }

    /// The rules that ran (for one test case per rule per port in JUnit output).
    pub fn rule_names(&self) -> Vec<String> {
        let mut names = BTreeSet::new();
        for m in &self.modules {
            if let Some(pkg) = package_of(&m.text)
                && pkg.starts_with("datamesh")
                && ["deny", "violation", "warn"]
                    .iter()
                    .any(|k| declares(&m.text, k))
            {
                let rule = pkg.rsplit('.').next().unwrap_or(&pkg).to_string();
                if !self.disabled.contains(&rule) {
                    names.insert(rule);
                }
            }
        }
        names.into_iter().collect()
    }

    /// Runs every `test_*` rule (the `opa test` habit): a test passes when it is true.
    pub fn run_tests(&self) -> Result<Vec<TestOutcome>, ConfigError> {
        let mut outcomes = Vec::new();
        let mut engines = self.engines()?;
        for m in &self.modules {
            let Some(package) = package_of(&m.text) else {
                continue;
            };
            for test in test_rules(&m.text) {
                let Some((engine, _)) = engines
                    .iter_mut()
                    .find(|(_, origin)| origin == if m.v0 { "v0" } else { "v1" })
                else {
                    continue;
                };
                let query = format!("data.{package}.{test}");
                let outcome = match engine.eval_query(query, false) {
                    Ok(results) => {
                        let value = results
                            .result
                            .first()
                            .and_then(|r| r.expressions.first())
                            .map(|e| e.value.clone());
                        match value {
                            Some(RegoValue::Bool(true)) => {
                                TestOutcome::pass(&m.origin, &package, &test)
                            }
                            Some(other) => TestOutcome::fail(
                                &m.origin,
                                &package,
                                &test,
                                format!("evaluated to {other}"),
                            ),
                            None => TestOutcome::fail(
                                &m.origin,
                                &package,
                                &test,
                                "undefined (a condition was false)".into(),
                            ),
                        }
                    }
                    Err(e) => TestOutcome::fail(&m.origin, &package, &test, e.to_string()),
                };
                outcomes.push(outcome);
            }
        }
        Ok(outcomes)
    }

    /// Fresh copies of the engines in use (one per Rego version), with meshd's extra built-ins.
    fn engines(&self) -> Result<Vec<(Engine, String)>, ConfigError> {
        Ok([(&self.v1, "v1"), (&self.v0, "v0")]
            .into_iter()
            .filter_map(|(engine, label)| engine.clone().map(|e| (e, label.to_string())))
            .collect())
    }
}

fn new_engine(v0: bool, label: &str) -> Result<Engine, ConfigError> {
    let mut engine = Engine::new();
    engine.set_rego_v0(v0);
    super::builtins::register(&mut engine).map_err(|e| policy_error(label, e))?;
    Ok(engine)
}

fn policy_error(origin: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Policy {
        origin: origin.to_string(),
        message: e.to_string(),
    }
}

fn eval_json(engine: &mut Engine, query: &str, origin: &str) -> Result<Value, ConfigError> {
    let results = engine
        .eval_query(query.to_string(), false)
        .map_err(|e| policy_error(origin, e))?;
    let Some(value) = results
        .result
        .first()
        .and_then(|r| r.expressions.first())
        .map(|e| &e.value)
    else {
        return Ok(Value::Null);
    };
    let json = value.to_json_str().map_err(|e| policy_error(origin, e))?;
    serde_json::from_str(&json).map_err(|e| policy_error(origin, e))
}

/// Walks `data.datamesh` and hands over every `deny`/`violation`/`warn` rule's messages.
fn collect(
    tree: &Value,
    package: &mut Vec<String>,
    emit: &mut dyn FnMut(&str, Severity, &[Value]),
) {
    let Value::Object(map) = tree else { return };
    for (key, value) in map {
        let severity = match key.as_str() {
            "deny" | "violation" => Some(Severity::Deny),
            "warn" => Some(Severity::Warn),
            _ => None,
        };
        match (severity, value) {
            (Some(severity), Value::Array(messages)) => {
                emit(&package.join("."), severity, messages)
            }
            (None, Value::Object(_)) if !key.starts_with("test_") => {
                package.push(key.clone());
                collect(value, package, emit);
                package.pop();
            }
            _ => {}
        }
    }
}

/// The `package` line of a Rego file.
fn package_of(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.trim().to_string())
}

/// Whether the file declares a rule with this name at the start of a line.
fn declares(text: &str, rule: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(rule)
            .is_some_and(|rest| rest.starts_with([' ', '[', '{', '=', ':']) || rest.is_empty())
    })
}

/// Names of `test_*` rules declared in a file, in order, without repeats.
fn test_rules(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("test_") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let full = format!("test_{name}");
            if !names.contains(&full) {
                names.push(full);
            }
        }
    }
    names
}
