//! SQL identifiers: the one helper every pg-cdc crate uses to put a name
//! into SQL text. Values never go through here: they are bound parameters or
//! COPY data.

use crate::schema::TableId;

/// Quotes an identifier for PostgreSQL: wraps it in double quotes and doubles
/// any embedded double quote. NUL bytes (which PostgreSQL rejects anyway) are
/// dropped so the result is always one well-formed identifier token.
///
/// ```
/// assert_eq!(cdc_envelope::ident::quote_ident(r#"we"ird"#), r#""we""ird""#);
/// ```
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"schema"."table"`.
pub fn quote_table(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.schema), quote_ident(&id.table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_names_into_one_token() {
        assert_eq!(quote_ident("employees"), "\"employees\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
        assert_eq!(quote_ident("nul\0byte"), "\"nulbyte\"");
        assert_eq!(
            quote_table(&TableId::new("public", "select")),
            "\"public\".\"select\""
        );
    }
}
