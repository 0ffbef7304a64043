//! Target table names: `collection.name.format` / `table.name.format`.
//!
//! The format is literal text with placeholders `${topic}`, `${source.schema}`
//! and `${source.table}`. As in the Debezium JDBC sink, `${topic}` is
//! substituted with the topic's dots replaced by underscores
//! (`pgsource.public.employees` → `pgsource_public_employees`). A `.` written
//! literally in the format separates the schema from the table
//! (`archive.${source.table}`); dots that come from substituted values never
//! do, so a source table called `a.b` or `x"; DROP …` stays one identifier.

use crate::ident::{normalise, QualifiedName};

/// One piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Topic,
    SourceSchema,
    SourceTable,
}

/// A parsed name format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat {
    /// Parts before the literal schema separator (if any).
    schema: Option<Vec<Part>>,
    /// Parts of the table name.
    table: Vec<Part>,
}

fn parse_parts(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Literal(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated placeholder in {s:?}"))?;
        parts.push(match &after[..end] {
            "topic" => Part::Topic,
            "source.schema" => Part::SourceSchema,
            "source.table" => Part::SourceTable,
            other => return Err(format!("unknown placeholder ${{{other}}}")),
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

impl NameFormat {
    /// Parses a format.
    pub fn parse(format: &str) -> Result<Self, String> {
        if format.trim().is_empty() {
            return Err("the format is empty".into());
        }
        // A literal dot outside placeholders splits schema and table.
        let mut depth = false;
        let mut split = None;
        for (i, c) in format.char_indices() {
            match c {
                '$' if format[i..].starts_with("${") => depth = true,
                '}' if depth => depth = false,
                '.' if !depth => {
                    split = Some(i);
                    break;
                }
                _ => {}
            }
        }
        match split {
            Some(i) => Ok(Self {
                schema: Some(parse_parts(&format[..i])?),
                table: parse_parts(&format[i + 1..])?,
            }),
            None => Ok(Self {
                schema: None,
                table: parse_parts(format)?,
            }),
        }
    }

    /// Resolves the name for one record.
    pub fn resolve(
        &self,
        topic: &str,
        source_schema: &str,
        source_table: &str,
        quote_identifiers: bool,
        default_schema: Option<&str>,
    ) -> QualifiedName {
        let render = |parts: &[Part]| {
            let mut s = String::new();
            for p in parts {
                match p {
                    Part::Literal(l) => s.push_str(l),
                    Part::Topic => s.push_str(&topic.replace('.', "_")),
                    Part::SourceSchema => s.push_str(source_schema),
                    Part::SourceTable => s.push_str(source_table),
                }
            }
            normalise(&s, quote_identifiers)
        };
        let schema = match &self.schema {
            Some(p) => Some(render(p)),
            None => default_schema.map(|s| normalise(s, quote_identifiers)),
        };
        QualifiedName::new(schema, render(&self.table))
    }

    /// True when the format needs the `source` block (`${source.*}`), which
    /// tombstones do not have.
    pub fn needs_source(&self) -> bool {
        self.table
            .iter()
            .chain(self.schema.iter().flatten())
            .any(|p| matches!(p, Part::SourceSchema | Part::SourceTable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debezium_defaults() {
        let f = NameFormat::parse("${topic}").expect("format");
        let n = f.resolve(
            "pgsource.public.employees",
            "public",
            "employees",
            false,
            None,
        );
        assert_eq!(n, QualifiedName::new(None, "pgsource_public_employees"));
        let f = NameFormat::parse("${source.table}").expect("format");
        assert_eq!(
            f.resolve("t", "public", "Employees", false, None).name,
            "employees"
        );
        assert_eq!(
            f.resolve("t", "public", "Employees", true, None).name,
            "Employees"
        );
    }

    #[test]
    fn literal_dot_splits_schema_but_values_never_do() {
        let f = NameFormat::parse("archive.${source.table}_v1").expect("format");
        let n = f.resolve("t", "public", "a.b", true, None);
        assert_eq!(n, QualifiedName::new(Some("archive".into()), "a.b_v1"));
        let f = NameFormat::parse("${source.schema}.${source.table}").expect("format");
        let n = f.resolve("t", "S", "x\"; DROP TABLE y; --", true, None);
        assert_eq!(n.quoted(), "\"S\".\"x\"\"; DROP TABLE y; --\"");
        assert!(NameFormat::parse("${nope}").is_err());
        assert!(NameFormat::parse("${topic").is_err());
    }
}
