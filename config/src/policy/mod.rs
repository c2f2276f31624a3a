//! Federated governance as code: global policies written in Rego check each output port of a
//! product before anything runs. The flow: a [`DataProduct`](crate::DataProduct) becomes one
//! policy input document per output port ([`policy_input`]); a [`PolicySet`] (the built-in
//! [`library`] plus a team's `.rego` files) evaluates its `deny`/`violation`/`warn` rules;
//! each message becomes a [`Finding`] positioned in the descriptor or schema file.

mod builtins;
mod engine;
mod filter;
mod finding;
mod input;
pub mod library;

pub use engine::PolicySet;
pub use filter::{FilterAnalysis, SAFE_FUNCTIONS, analyze_filter};
pub use finding::{Finding, Location, Severity, TestOutcome};
pub use input::{policy_input, type_name};
