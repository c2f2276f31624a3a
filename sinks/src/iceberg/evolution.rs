//! Schema evolution: compares the schema a port declares (from its `.avsc`) with the table's
//! current schema, column by column (by name), and says what changes and whether readers of
//! the table survive it. Compatible changes: a new optional column, int→long, float→double,
//! decimal precision widening, required→optional, doc changes. Breaking: a dropped or renamed
//! column, a new required column, narrowing, optional→required, any other type change.
//!
//! Every compatible change is applied, by `meshd provision` and by a worker on start: new
//! optional columns through iceberg-rust's `update_schema` (which assigns their ids), then type
//! promotions, required→optional and doc changes as one new current schema (same field ids)
//! through meshd's own metadata commit ([`super::commit`]): iceberg-rust 0.10's `update_schema`
//! cannot change a type or a doc.

use std::fmt;

use iceberg::spec::{NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type};
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, TableRequirement, TableUpdate, table::Table};
use serde::Serialize;

use super::commit::{MetadataChange, MetadataCommitter, commit_with_rebase};
use crate::SinkError;

/// What happens to one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A new optional column: applied by `provision` and by workers on start.
    AddOptional {
        /// Iceberg type, e.g. `string`.
        #[serde(rename = "type")]
        ty: String,
    },
    /// Only the doc differs: applied with the column's id unchanged.
    Doc,
    /// A type promotion or required→optional: applied as a new schema, same field ids; old
    /// data files read as the wider type.
    Widen {
        /// What would change.
        what: String,
    },
    /// Refused: readers or writers of the table would break.
    Breaking {
        /// Why, and how to get the change in another way.
        why: String,
    },
}

/// One column's change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted column path.
    pub column: String,
    /// What happens.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::AddOptional { ty } => {
                write!(f, "add optional column `{}` ({ty})", self.column)
            }
            ChangeKind::Doc => write!(f, "column `{}`: doc changes", self.column),
            ChangeKind::Widen { what } => write!(f, "column `{}`: {what}", self.column),
            ChangeKind::Breaking { why } => write!(f, "column `{}`: {why}", self.column),
        }
    }
}

/// Changes from `current` (the table) to `desired` (the port's schema), in column order.
pub fn diff(current: &Schema, desired: &Schema) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_struct(current.as_struct(), desired.as_struct(), "", &mut changes);
    changes
}

fn diff_struct(current: &StructType, desired: &StructType, prefix: &str, out: &mut Vec<Change>) {
    let path = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for want in desired.fields() {
        let column = path(&want.name);
        match current.field_by_name(&want.name) {
            None if !want.required => out.push(Change {
                column,
                kind: ChangeKind::AddOptional { ty: type_name(&want.field_type) },
            }),
            None => out.push(Change {
                column,
                kind: ChangeKind::Breaking {
                    why: "new required column: existing rows have no value; make it optional ([\"null\", T])".into(),
                },
            }),
            Some(have) => diff_field(have, want, &column, out),
        }
    }
    for have in current.fields() {
        if desired.field_by_name(&have.name).is_none() {
            out.push(Change {
                column: path(&have.name),
                kind: ChangeKind::Breaking {
                    why: "dropped or renamed: readers of the table lose it; keep it in the schema (optional) or publish a new table version".into(),
                },
            });
        }
    }
}

fn diff_field(have: &NestedFieldRef, want: &NestedFieldRef, column: &str, out: &mut Vec<Change>) {
    let push = |out: &mut Vec<Change>, kind| {
        out.push(Change {
            column: column.to_string(),
            kind,
        })
    };
    match (&*have.field_type, &*want.field_type) {
        (Type::Struct(a), Type::Struct(b)) => diff_struct(a, b, column, out),
        (a, b) if same_type(a, b) => {}
        (Type::Primitive(a), Type::Primitive(b)) if promotable(a, b) => push(
            out,
            ChangeKind::Widen {
                what: format!("widen {a} to {b}"),
            },
        ),
        (a, b) => push(
            out,
            ChangeKind::Breaking {
                why: format!(
                    "type changes from {} to {}, which existing data files cannot be read as; add a new column instead",
                    type_name(a),
                    type_name(b)
                ),
            },
        ),
    }
    match (have.required, want.required) {
        (false, true) => push(
            out,
            ChangeKind::Breaking {
                why: "optional → required: existing rows may hold nulls; keep it optional".into(),
            },
        ),
        (true, false) => push(
            out,
            ChangeKind::Widen {
                what: "required → optional".into(),
            },
        ),
        _ => {}
    }
    if have.doc != want.doc {
        push(out, ChangeKind::Doc);
    }
}

/// A type as people read it, nested fields named (`struct<key: binary, offset: long>`):
/// iceberg-rust 0.10 prints a struct as its field types run together and a list as `list`.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name, type_name(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(", "))
        }
        Type::List(l) => format!("list<{}>", type_name(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{}, {}>",
            type_name(&m.key_field.field_type),
            type_name(&m.value_field.field_type)
        ),
    }
}

/// Whether two types are the same apart from field ids (and docs inside lists and maps). The
/// ids of a table are its own: a column added by evolution gets the table's next free ids,
/// and a column added to the port's schema shifts the ids meshd would give the nested fields
/// after it, so comparing `list<…>` or `map<…>` with `==` would call the same column changed.
fn same_type(a: &Type, b: &Type) -> bool {
    let same_field = |a: &NestedFieldRef, b: &NestedFieldRef| {
        a.name == b.name && a.required == b.required && same_type(&a.field_type, &b.field_type)
    };
    match (a, b) {
        (Type::Primitive(a), Type::Primitive(b)) => a == b,
        (Type::Struct(a), Type::Struct(b)) => {
            a.fields().len() == b.fields().len()
                && a.fields()
                    .iter()
                    .zip(b.fields())
                    .all(|(a, b)| same_field(a, b))
        }
        (Type::List(a), Type::List(b)) => same_field(&a.element_field, &b.element_field),
        (Type::Map(a), Type::Map(b)) => {
            same_field(&a.key_field, &b.key_field) && same_field(&a.value_field, &b.value_field)
        }
        _ => false,
    }
}

/// Iceberg's allowed type promotions.
fn promotable(from: &PrimitiveType, to: &PrimitiveType) -> bool {
    use PrimitiveType as P;
    match (from, to) {
        (P::Int, P::Long) | (P::Float, P::Double) => true,
        (
            P::Decimal {
                precision: p1,
                scale: s1,
            },
            P::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s1 == s2 && p2 > p1,
        _ => false,
    }
}

/// Whether any change is refused.
pub fn has_breaking(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| matches!(c.kind, ChangeKind::Breaking { .. }))
}

/// Applies every compatible change: the new optional columns in one schema update, then the
/// widenings and doc changes as a new current schema. Fails, applying nothing, if any change is
/// breaking, naming each one. Returns the updated table.
pub async fn apply(
    catalog: &dyn Catalog,
    committer: &MetadataCommitter,
    table: &Table,
    desired: &Schema,
    changes: &[Change],
) -> Result<Table, SinkError> {
    let name = table.identifier().to_string();
    let breaking: Vec<String> = changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Breaking { .. }))
        .map(Change::to_string)
        .collect();
    if !breaking.is_empty() {
        return Err(SinkError::SchemaChange {
            table: name,
            changes: breaking.join("; "),
        });
    }
    let table = add_columns(catalog, table, desired, changes).await?;
    if !changes
        .iter()
        .any(|c| matches!(c.kind, ChangeKind::Widen { .. } | ChangeKind::Doc))
    {
        return Ok(table);
    }
    commit_with_rebase(
        catalog,
        committer,
        table.identifier(),
        "committing the widened schema",
        |now| {
            let current = now.metadata().current_schema();
            let changes = diff(current, desired);
            if has_breaking(&changes) {
                return Err(SinkError::SchemaChange {
                    table: now.identifier().to_string(),
                    changes: changes
                        .iter()
                        .map(Change::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            let Some(schema) = widened(current, desired).map_err(|source| SinkError::Table {
                table: now.identifier().to_string(),
                action: "building the widened schema",
                source,
            })?
            else {
                return Ok(None);
            };
            Ok(Some(MetadataChange {
                requirements: vec![TableRequirement::CurrentSchemaIdMatch {
                    current_schema_id: current.schema_id(),
                }],
                updates: vec![
                    TableUpdate::AddSchema { schema },
                    TableUpdate::SetCurrentSchema { schema_id: -1 },
                ],
            }))
        },
    )
    .await
}

/// `current` with every type promotion, required→optional and doc change `desired` asks for,
/// field ids kept; `None` when nothing differs.
pub fn widened(current: &Schema, desired: &Schema) -> iceberg::Result<Option<Schema>> {
    let fields = widen_struct(current.as_struct(), desired.as_struct());
    if fields == current.as_struct().fields() {
        return Ok(None);
    }
    Schema::builder()
        .with_schema_id(current.schema_id() + 1)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(fields)
        .build()
        .map(Some)
}

fn widen_struct(current: &StructType, desired: &StructType) -> Vec<NestedFieldRef> {
    current
        .fields()
        .iter()
        .map(|have| match desired.field_by_name(&have.name) {
            Some(want) => std::sync::Arc::new(widen_field(have, want)),
            None => have.clone(),
        })
        .collect()
}

fn widen_field(have: &NestedField, want: &NestedField) -> NestedField {
    let mut field = have.clone();
    match (&*have.field_type, &*want.field_type) {
        (Type::Struct(a), Type::Struct(b)) => {
            field.field_type = Box::new(Type::Struct(StructType::new(widen_struct(a, b))));
        }
        (Type::Primitive(a), Type::Primitive(b)) if promotable(a, b) => {
            field.field_type = want.field_type.clone();
        }
        _ => {}
    }
    if have.required && !want.required {
        field.required = false;
    }
    field.doc = want.doc.clone();
    field
}

/// The new optional columns in one schema update through iceberg-rust (it assigns their ids).
async fn add_columns(
    catalog: &dyn Catalog,
    table: &Table,
    desired: &Schema,
    changes: &[Change],
) -> Result<Table, SinkError> {
    let name = table.identifier().to_string();
    if !changes
        .iter()
        .any(|c| matches!(c.kind, ChangeKind::AddOptional { .. }))
    {
        return Ok(table.clone());
    }
    let tx = Transaction::new(table);
    let mut update = tx.update_schema();
    for change in changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::AddOptional { .. }))
    {
        let Some(field) = desired.field_by_name(&change.column) else {
            continue;
        };
        let leaf = change.column.rsplit('.').next().unwrap_or(&change.column);
        let ty = (*field.field_type).clone();
        let parent = change
            .column
            .rsplit_once('.')
            .map(|(parent, _)| parent.to_string());
        let add = match (parent, field.doc.clone()) {
            (Some(p), Some(d)) => AddColumn::builder()
                .name(leaf)
                .field_type(ty)
                .parent(p)
                .doc(d)
                .build(),
            (Some(p), None) => AddColumn::builder()
                .name(leaf)
                .field_type(ty)
                .parent(p)
                .build(),
            (None, Some(d)) => AddColumn::builder()
                .name(leaf)
                .field_type(ty)
                .doc(d)
                .build(),
            (None, None) => AddColumn::optional(leaf, ty),
        };
        update = update.add_column(add);
    }
    let err = |action, source| SinkError::Table {
        table: name.clone(),
        action,
        source,
    };
    let tx = update
        .apply(tx)
        .map_err(|e| err("preparing the schema update", e))?;
    tx.commit(catalog)
        .await
        .map_err(|e| err("committing the schema update", e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{ListType, MapType, NestedField};

    use super::*;

    fn schema(fields: Vec<NestedField>) -> Schema {
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new).collect::<Vec<_>>())
            .build()
            .expect("schema")
    }

    fn p(t: PrimitiveType) -> Type {
        Type::Primitive(t)
    }

    #[test]
    fn changes_are_classified() {
        let current = schema(vec![
            NestedField::required(1, "id", p(PrimitiveType::Int)),
            NestedField::optional(2, "name", p(PrimitiveType::String)),
            NestedField::required(3, "gone", p(PrimitiveType::String)),
            NestedField::optional(
                4,
                "amount",
                p(PrimitiveType::Decimal {
                    precision: 10,
                    scale: 2,
                }),
            ),
            NestedField::optional(5, "flag", p(PrimitiveType::Boolean)),
        ]);
        let desired = schema(vec![
            NestedField::required(1, "id", p(PrimitiveType::Long)),
            NestedField::required(2, "name", p(PrimitiveType::String)),
            NestedField::optional(
                4,
                "amount",
                p(PrimitiveType::Decimal {
                    precision: 12,
                    scale: 2,
                }),
            ),
            NestedField::optional(5, "flag", p(PrimitiveType::String)),
            NestedField::optional(6, "note", p(PrimitiveType::String)),
            NestedField::required(7, "must", p(PrimitiveType::String)),
        ]);
        let changes = diff(&current, &desired);
        let kind = |col: &str| -> Vec<&'static str> {
            changes
                .iter()
                .filter(|c| c.column == col)
                .map(|c| match c.kind {
                    ChangeKind::AddOptional { .. } => "add",
                    ChangeKind::Widen { .. } => "widen",
                    ChangeKind::Doc => "doc",
                    ChangeKind::Breaking { .. } => "breaking",
                })
                .collect()
        };
        assert_eq!(kind("id"), vec!["widen"]);
        assert_eq!(kind("name"), vec!["breaking"]);
        assert_eq!(kind("gone"), vec!["breaking"]);
        assert_eq!(kind("amount"), vec!["widen"]);
        assert_eq!(kind("flag"), vec!["breaking"]);
        assert_eq!(kind("note"), vec!["add"]);
        assert_eq!(kind("must"), vec!["breaking"]);
        let mut documented = (*current.as_struct().fields()[4]).clone();
        documented.doc = Some("Whether the payment was flagged".into());
        let with_doc = schema(
            current
                .as_struct()
                .fields()
                .iter()
                .map(|f| {
                    if f.name == "flag" {
                        documented.clone()
                    } else {
                        (**f).clone()
                    }
                })
                .collect(),
        );
        let doc_only = diff(&current, &with_doc);
        assert_eq!(doc_only.len(), 1);
        assert_eq!(
            doc_only[0].kind,
            ChangeKind::Doc,
            "a doc change blocks nothing"
        );
        assert!(has_breaking(&changes));
        assert!(diff(&current, &current).is_empty());
    }

    /// A list of structs the table holds under other ids than meshd would give it (it was
    /// added by evolution, or a column added before it shifted meshd's ids) is unchanged.
    #[test]
    fn lists_and_maps_compare_without_their_ids() {
        let headers = |first: i32, value: PrimitiveType| {
            let header = StructType::new(vec![
                NestedField::required(first + 1, "key", p(PrimitiveType::String)).into(),
                NestedField::optional(first + 2, "value", p(value)).into(),
            ]);
            Type::List(ListType::new(
                NestedField::list_element(first, Type::Struct(header), true).into(),
            ))
        };
        let tags = |key: i32| {
            Type::Map(MapType::new(
                NestedField::map_key_element(key, p(PrimitiveType::String)).into(),
                NestedField::map_value_element(key + 1, p(PrimitiveType::Long), false).into(),
            ))
        };
        let table = schema(vec![
            NestedField::optional(1, "headers", headers(10, PrimitiveType::Binary)),
            NestedField::optional(2, "tags", tags(20)),
        ]);
        let desired = schema(vec![
            NestedField::optional(1, "headers", headers(3, PrimitiveType::Binary)),
            NestedField::optional(2, "tags", tags(6)),
        ]);
        assert_eq!(diff(&table, &desired), []);
        let changed = schema(vec![
            NestedField::optional(1, "headers", headers(3, PrimitiveType::String)),
            NestedField::optional(2, "tags", tags(6)),
        ]);
        let changes = diff(&table, &changed);
        assert!(has_breaking(&changes));
        assert!(
            changes[0].to_string().contains(
                "from list<struct<key: string, value: binary>> to list<struct<key: string, value: string>>"
            ),
            "{}",
            changes[0]
        );
    }
}
