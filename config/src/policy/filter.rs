//! Static analysis of an access-control row `filter` (`region = 'JP'`): does it parse as a SQL
//! boolean expression, which columns does it read, and does it call functions or run
//! subqueries. The result goes into the policy input, where the built-in `access_filter` rule
//! (or a team's own rule) judges it.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    BinaryOperator, Expr, InTarget, UnaryOperator, Value as SqlValue, visit_expressions,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// Functions a row filter may call: deterministic, cheap, no side effects.
pub const SAFE_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "trim",
    "length",
    "coalesce",
    "abs",
    "substring",
    "current_date",
    "current_timestamp",
];

/// What a row filter does, as far as policies need to know.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FilterAnalysis {
    /// It parses as one SQL expression that yields a boolean.
    pub valid: bool,
    /// Why not, when not valid.
    pub error: Option<String>,
    /// Column names it reads (lower-case).
    pub columns: Vec<String>,
    /// Columns it reads that the port's schema does not have.
    pub unknown_columns: Vec<String>,
    /// Functions it calls (lower-case).
    pub functions: Vec<String>,
    /// Functions it calls that are not in [`SAFE_FUNCTIONS`].
    pub unsafe_functions: Vec<String>,
    /// It contains a subquery (`IN (SELECT …)`, `EXISTS`, a scalar subquery).
    pub subqueries: bool,
}

/// Analyzes `filter` against the port's top-level `columns`.
pub fn analyze_filter(filter: &str, columns: &[String]) -> FilterAnalysis {
    let expr = match parse_one_expression(filter) {
        Ok(e) => e,
        Err(error) => {
            return FilterAnalysis {
                error: Some(error),
                ..FilterAnalysis::default()
            };
        }
    };
    let mut seen_columns = BTreeSet::new();
    let mut functions = BTreeSet::new();
    let mut subqueries = false;
    let _ = visit_expressions(&expr, |e| {
        match e {
            Expr::Identifier(id) => {
                seen_columns.insert(id.value.to_lowercase());
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    seen_columns.insert(last.value.to_lowercase());
                }
            }
            Expr::Function(f) => {
                functions.insert(f.name.to_string().to_lowercase());
            }
            Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::In {
                target: InTarget::Subquery(_) | InTarget::Table { .. },
                ..
            } => subqueries = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    let known: BTreeSet<String> = columns.iter().map(|c| c.to_lowercase()).collect();
    let boolean = is_boolean(&expr);
    FilterAnalysis {
        valid: boolean,
        error: (!boolean).then(|| {
            "the filter is an expression, but not a condition (true or false for a row)".to_string()
        }),
        unknown_columns: seen_columns
            .iter()
            .filter(|c| !known.contains(*c))
            .cloned()
            .collect(),
        unsafe_functions: functions
            .iter()
            .filter(|f| !SAFE_FUNCTIONS.contains(&f.as_str()))
            .cloned()
            .collect(),
        columns: seen_columns.into_iter().collect(),
        functions: functions.into_iter().collect(),
        subqueries,
    }
}

fn parse_one_expression(filter: &str) -> Result<Expr, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(filter)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    match parser.peek_token().token {
        Token::EOF => Ok(expr),
        other => Err(format!("unexpected `{other}` after the condition")),
    }
}

/// Whether an expression's value is a boolean (conservatively: unknown shapes are not).
fn is_boolean(expr: &Expr) -> bool {
    use BinaryOperator as B;
    match expr {
        Expr::Nested(inner) => is_boolean(inner),
        Expr::BinaryOp { op, .. } => matches!(
            op,
            B::Eq
                | B::NotEq
                | B::Lt
                | B::LtEq
                | B::Gt
                | B::GtEq
                | B::And
                | B::Or
                | B::Xor
                | B::Spaceship
        ),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        Expr::Value(v) => matches!(v.value, SqlValue::Boolean(_)),
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::In { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::Exists { .. }
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        vec!["region".into(), "amount".into()]
    }

    #[test]
    fn a_plain_condition_is_valid() {
        let a = analyze_filter("region = 'JP' AND lower(region) <> 'x'", &cols());
        assert!(a.valid, "{a:?}");
        assert_eq!(a.columns, vec!["region"]);
        assert!(a.unknown_columns.is_empty() && a.unsafe_functions.is_empty() && !a.subqueries);
    }

    #[test]
    fn problems_are_reported() {
        assert!(!analyze_filter("region = ", &cols()).valid);
        assert!(!analyze_filter("amount + 1", &cols()).valid);
        assert!(!analyze_filter("region = 'JP'; DROP TABLE t", &cols()).valid);
        assert_eq!(
            analyze_filter("country = 'JP'", &cols()).unknown_columns,
            vec!["country"]
        );
        assert_eq!(
            analyze_filter("sleep(10) = 0", &cols()).unsafe_functions,
            vec!["sleep"]
        );
        assert!(analyze_filter("region IN (SELECT r FROM t)", &cols()).subqueries);
    }
}
