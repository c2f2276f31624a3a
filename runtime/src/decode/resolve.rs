//! Can the port's schema (the reader) read what a producer wrote with another schema (the
//! writer)? Avro schema resolution, as the Avro specification and Confluent's compatibility
//! checks define it, naming the field that breaks it.
//!
//! Stricter than arrow-avro where arrow-avro would decode wrong values silently or fail only
//! at the first unlucky record: logical types must agree (a decimal's precision and scale, a
//! timestamp's unit), a writer union with `null` cannot feed a required field, and an enum
//! symbol the port lacks needs the port's enum to have a default. Named types are compared by
//! their unqualified names (or aliases), as Confluent does.

use std::fmt;

use apache_avro::Schema;
use apache_avro::schema::{Name, NamesRef, ResolvedSchema};

/// Recursive schemas nest as deep as data goes; the check stops descending here.
const MAX_DEPTH: usize = 64;

/// Why a writer schema cannot be read as the port's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatible {
    /// The field's dotted path (`customer.email`, `items[].sku`, `attributes{}`); empty for
    /// the record itself.
    pub path: String,
    /// What does not resolve, and how.
    pub problem: String,
}

impl fmt::Display for Incompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "field `{}`: {}", self.path, self.problem)
        }
    }
}

/// Checks that records written with `writer` (schema text) can be read with `reader`.
pub fn check(writer: &str, reader: &str) -> Result<(), Incompatible> {
    let parse = |text: &str, which: &str| {
        Schema::parse_str(text).map_err(|e| Incompatible {
            path: String::new(),
            problem: format!("the {which} schema is not valid Avro: {e}"),
        })
    };
    let (w, r) = (parse(writer, "writer")?, parse(reader, "port's")?);
    let (wn, rn) = (names(&w)?, names(&r)?);
    Walk {
        writer: &wn,
        reader: &rn,
    }
    .check(&w, &r, "", 0)
}

fn names(schema: &Schema) -> Result<NamesRef<'_>, Incompatible> {
    ResolvedSchema::try_from(schema)
        .map(|resolved| resolved.get_names().clone())
        .map_err(|e| Incompatible {
            path: String::new(),
            problem: format!("a named type does not resolve: {e}"),
        })
}

struct Walk<'a, 's> {
    writer: &'a NamesRef<'s>,
    reader: &'a NamesRef<'s>,
}

fn deref<'s>(names: &NamesRef<'s>, schema: &'s Schema) -> &'s Schema {
    match schema {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(schema),
        other => other,
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

type Aliases = Option<Vec<apache_avro::schema::Alias>>;

/// Named types match by unqualified name or an alias on either side.
fn same_name(w: &Name, w_aliases: &Aliases, r: &Name, r_aliases: &Aliases) -> bool {
    w.name == r.name
        || r_aliases
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a.name() == w.name))
        || w_aliases
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a.name() == r.name))
}

impl<'s> Walk<'_, 's> {
    fn check(
        &self,
        w: &'s Schema,
        r: &'s Schema,
        path: &str,
        depth: usize,
    ) -> Result<(), Incompatible> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let (w, r) = (deref(self.writer, w), deref(self.reader, r));
        let fail = |problem: String| {
            Err(Incompatible {
                path: path.to_string(),
                problem,
            })
        };
        match (w, r) {
            (Schema::Union(wu), Schema::Union(ru)) => {
                for branch in wu.variants() {
                    if !ru
                        .variants()
                        .iter()
                        .any(|rb| self.check(branch, rb, path, depth + 1).is_ok())
                    {
                        return fail(format!(
                            "the producer may write {}, which no branch of the port's union reads",
                            kind(deref(self.writer, branch))
                        ));
                    }
                }
                Ok(())
            }
            (_, Schema::Union(ru)) => {
                let mut first_error = None;
                for rb in ru.variants() {
                    match self.check(w, rb, path, depth + 1) {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    // A record that almost matches explains itself better than "no branch".
                    Some(e) if e.path != path => Err(e),
                    _ => fail(format!(
                        "the producer writes {}, which no branch of the port's union reads",
                        kind(w)
                    )),
                }
            }
            (Schema::Union(wu), _) => {
                for branch in wu.variants() {
                    let branch = deref(self.writer, branch);
                    if matches!(branch, Schema::Null) && !matches!(r, Schema::Null) {
                        return fail(
                            "the producer allows null, the port requires a value (make it [\"null\", …] in the port's schema)".into(),
                        );
                    }
                    self.check(branch, r, path, depth + 1)?;
                }
                Ok(())
            }
            (Schema::Record(wr), Schema::Record(rr)) => {
                if !same_name(&wr.name, &wr.aliases, &rr.name, &rr.aliases) {
                    return fail(format!(
                        "record `{}` is written where the port expects record `{}` (add an alias)",
                        wr.name.name, rr.name.name
                    ));
                }
                for field in &rr.fields {
                    let found = wr.fields.iter().find(|wf| {
                        wf.name == field.name
                            || field.aliases.as_ref().is_some_and(|a| a.contains(&wf.name))
                    });
                    let at = child(path, &field.name);
                    match found {
                        Some(wf) => self.check(&wf.schema, &field.schema, &at, depth + 1)?,
                        None if field.default.is_some() => {}
                        None => {
                            return Err(Incompatible {
                                path: at,
                                problem: "the producer's schema lacks it and the port's schema gives no default".into(),
                            });
                        }
                    }
                }
                Ok(())
            }
            (Schema::Enum(we), Schema::Enum(re)) => {
                if !same_name(&we.name, &we.aliases, &re.name, &re.aliases) {
                    return fail(format!(
                        "enum `{}` is written where the port expects enum `{}`",
                        we.name.name, re.name.name
                    ));
                }
                let missing: Vec<&str> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && re.default.is_none() {
                    return fail(format!(
                        "symbols {missing:?} are not in the port's enum, which has no default"
                    ));
                }
                Ok(())
            }
            (Schema::Array(wa), Schema::Array(ra)) => {
                self.check(&wa.items, &ra.items, &format!("{path}[]"), depth + 1)
            }
            (Schema::Map(wm), Schema::Map(rm)) => {
                self.check(&wm.types, &rm.types, &format!("{path}{{}}"), depth + 1)
            }
            (Schema::Fixed(wf), Schema::Fixed(rf)) => {
                if wf.size != rf.size {
                    return fail(format!(
                        "fixed of {} bytes is written, the port reads {} bytes",
                        wf.size, rf.size
                    ));
                }
                Ok(())
            }
            (Schema::Decimal(wd), Schema::Decimal(rd)) => {
                let inner = |d: &apache_avro::schema::DecimalSchema| match d.inner.as_ref() {
                    Schema::Fixed(f) => format!("fixed({})", f.size),
                    _ => "bytes".to_string(),
                };
                if wd.precision != rd.precision || wd.scale != rd.scale || inner(wd) != inner(rd) {
                    return fail(format!(
                        "decimal({}, {}) as {} is written, the port reads decimal({}, {}) as {}",
                        wd.precision,
                        wd.scale,
                        inner(wd),
                        rd.precision,
                        rd.scale,
                        inner(rd)
                    ));
                }
                Ok(())
            }
            (w, r) if readable(w, r) => Ok(()),
            (w, r) => fail(format!(
                "{} is written, the port reads {}",
                kind(w),
                kind(r)
            )),
        }
    }
}

/// Primitive and logical pairs that resolve: equal kinds, Avro's promotions, text and uuid,
/// and a plain value read as the logical type built on it.
fn readable(w: &Schema, r: &Schema) -> bool {
    use Schema as S;
    if std::mem::discriminant(w) == std::mem::discriminant(r) {
        return true;
    }
    matches!(
        (w, r),
        (S::Int, S::Long | S::Float | S::Double)
            | (S::Long, S::Float | S::Double)
            | (S::Float, S::Double)
            | (S::String, S::Bytes | S::Uuid)
            | (S::Bytes | S::Uuid, S::String)
            | (S::Int, S::Date | S::TimeMillis)
            | (
                S::Long,
                S::TimeMicros
                    | S::TimestampMillis
                    | S::TimestampMicros
                    | S::LocalTimestampMillis
                    | S::LocalTimestampMicros
            )
    )
}

/// The Avro name of a schema's type, for messages.
fn kind(s: &Schema) -> String {
    use Schema as S;
    match s {
        S::Null => "null".into(),
        S::Boolean => "boolean".into(),
        S::Int => "int".into(),
        S::Long => "long".into(),
        S::Float => "float".into(),
        S::Double => "double".into(),
        S::Bytes => "bytes".into(),
        S::String => "string".into(),
        S::Array(_) => "an array".into(),
        S::Map(_) => "a map".into(),
        S::Union(_) => "a union".into(),
        S::Record(r) => format!("record `{}`", r.name.name),
        S::Enum(e) => format!("enum `{}`", e.name.name),
        S::Fixed(f) => format!("fixed({})", f.size),
        S::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        S::BigDecimal => "big-decimal".into(),
        S::Uuid => "uuid".into(),
        S::Date => "date".into(),
        S::TimeMillis => "time-millis".into(),
        S::TimeMicros => "time-micros".into(),
        S::TimestampMillis => "timestamp-millis".into(),
        S::TimestampMicros => "timestamp-micros".into(),
        S::TimestampNanos => "timestamp-nanos".into(),
        S::LocalTimestampMillis => "local-timestamp-millis".into(),
        S::LocalTimestampMicros => "local-timestamp-micros".into(),
        S::LocalTimestampNanos => "local-timestamp-nanos".into(),
        S::Duration => "duration".into(),
        S::Ref { name } => format!("`{}`", name.name),
    }
}

#[cfg(test)]
mod tests;
