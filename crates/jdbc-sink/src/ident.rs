//! The one identifier-quoting helper.
//!
//! Every identifier that reaches SQL text (schema, table, column, type,
//! staging table, offsets table) goes through [`quote_ident`]. Values never
//! reach SQL text: they are bound parameters or COPY data. The single
//! exception is a column `DEFAULT` in DDL, which PostgreSQL cannot bind; it
//! goes through [`quote_literal`] after [`safe_default`] re-parsed it.

use std::fmt;

/// The workspace's one identifier-quoting helper.
pub use cdc_envelope::ident::quote_ident;

/// Quotes a string literal for the one place a value reaches SQL text (a
/// column `DEFAULT` in DDL, which PostgreSQL cannot bind). Quotes are
/// doubled and NUL (which `text` cannot hold) dropped; a value with a
/// backslash is written as an escape string `E'…'` with the backslash
/// doubled, so the literal reads the same whatever the session's
/// `standard_conforming_strings` (the sink also sets it `on`).
pub fn quote_literal(value: &str) -> String {
    let escape = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if escape => out.push_str("\\\\"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Re-renders a column default expression (as cdc-envelope produces it from a
/// Connect schema `default`) into a safe SQL literal, or `None` when it is
/// anything but a plain number, boolean or quoted string (optionally followed
/// by a `::type` cast, which is dropped: the column's type applies).
pub fn safe_default(expr: &str) -> Option<String> {
    let e = expr.trim();
    if e == "true" || e == "false" {
        return Some(e.to_owned());
    }
    let digits = e.strip_prefix('-').unwrap_or(e);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !digits.ends_with('.')
    {
        return Some(e.to_owned());
    }
    let body = e.strip_prefix('\'')?;
    let mut content = String::new();
    let mut chars = body.char_indices().peekable();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                content.push('\'');
                chars.next();
            } else {
                end = Some(i + 1);
                break;
            }
        } else {
            content.push(c);
        }
    }
    let rest = &body[end?..];
    let cast_ok = rest.is_empty()
        || rest.strip_prefix("::").is_some_and(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_')
        });
    cast_ok.then(|| quote_literal(&content))
}

/// A table name in the target: optional schema and the table, both already
/// normalised (case-folded unless `quote.identifiers=true`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// Schema; `None` means the connection's `current_schema()`.
    pub schema: Option<String>,
    /// Table name.
    pub name: String,
}

impl QualifiedName {
    /// A name without schema.
    pub fn new(schema: Option<String>, name: impl Into<String>) -> Self {
        Self {
            schema,
            name: name.into(),
        }
    }

    /// The quoted form for SQL text: `"schema"."name"` or `"name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for QualifiedName {
    /// The quoted form (safe to show in errors and logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// How identifiers are normalised before quoting (`quote.identifiers`).
///
/// With `quote.identifiers=false` (Debezium's default) Debezium writes names
/// unquoted and PostgreSQL folds them to lower case; pg-cdc folds them the
/// same way and still quotes them, so odd names cannot break the SQL.
pub fn normalise(name: &str, quote_identifiers: bool) -> String {
    if quote_identifiers {
        name.to_owned()
    } else {
        name.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote_ident("emp"), "\"emp\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert_eq!(quote_ident("nul\0l"), "\"null\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(quote_literal("x\0y"), "'xy'");
    }

    #[test]
    fn defaults_are_reparsed() {
        assert_eq!(safe_default("0").as_deref(), Some("0"));
        assert_eq!(safe_default("-1.5").as_deref(), Some("-1.5"));
        assert_eq!(safe_default("true").as_deref(), Some("true"));
        assert_eq!(
            safe_default("'a''b'::character varying").as_deref(),
            Some("'a''b'")
        );
        assert_eq!(safe_default("'x'); DROP TABLE t; --"), None);
        assert_eq!(safe_default("'x'::text; DROP TABLE t"), None);
        assert_eq!(safe_default("E'\\x27; DROP TABLE t; --'"), None);
        assert_eq!(safe_default("$$x$$"), None);
        assert_eq!(safe_default("'unterminated"), None);
        assert_eq!(safe_default("1e5"), None);
        assert_eq!(safe_default("--1"), None);
        // Accepted strings are re-quoted from their content, never passed through.
        assert_eq!(
            safe_default("'a'';b\\'::text").as_deref(),
            Some("E'a'';b\\\\'")
        );
        assert_eq!(safe_default("now()"), None);
        assert_eq!(safe_default("1; DROP"), None);
    }

    #[test]
    fn qualified() {
        let q = QualifiedName::new(Some("Sch".into()), "T x");
        assert_eq!(q.quoted(), "\"Sch\".\"T x\"");
    }
}
