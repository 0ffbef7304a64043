//! Table schemas: columns with their PostgreSQL type identity.
//!
//! A [`TableSchema`] is what the source knows about a captured table when it
//! emits an event (from pgoutput `Relation`/`Type` messages and the catalog)
//! and what the sink reconstructs from a Debezium event's Connect schema. Its
//! [`TableSchema::version`] changes whenever the column set or a column type
//! changes, so converters can cache per-version encodings.

use std::fmt;

/// Fully qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// Schema (namespace), e.g. `public`.
    pub schema: String,
    /// Table name, e.g. `employees`.
    pub table: String,
}

impl TableId {
    /// Builds a table id.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// What kind of type a [`PgType`] is, beyond its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TypeKind {
    /// A built-in or extension base type.
    #[default]
    Base,
    /// An array whose elements are of the boxed type.
    Array(Box<PgType>),
    /// An enum with its labels in sort order.
    Enum(Vec<String>),
    /// A domain over the boxed base type.
    Domain(Box<PgType>),
    /// A range over the boxed subtype.
    Range(Box<PgType>),
    /// A composite (row) type.
    Composite,
    /// A type the source could not resolve; values pass through as text.
    Unknown,
}

/// The identity of a PostgreSQL type: OID, name and type modifier, plus what
/// kind of type it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PgType {
    /// Type OID (`pg_type.oid`). Built-in OIDs are stable across servers;
    /// user-defined ones are not, so compare by name for those.
    pub oid: u32,
    /// Type name as `format_type` prints it without modifiers
    /// (`int4`, `varchar`, `numeric`, `_int4` for arrays, `my_enum`).
    pub name: String,
    /// Type modifier (`atttypmod`), `-1` when none.
    pub modifier: i32,
    /// Kind of type.
    pub kind: TypeKind,
}

impl PgType {
    /// A base type without modifier.
    pub fn base(oid: u32, name: impl Into<String>) -> Self {
        Self {
            oid,
            name: name.into(),
            modifier: -1,
            kind: TypeKind::Base,
        }
    }

    /// Same type with a modifier.
    pub fn with_modifier(mut self, modifier: i32) -> Self {
        self.modifier = modifier;
        self
    }

    /// Declared length for `varchar(n)`, `bpchar(n)`, `bit(n)`, `varbit(n)`.
    pub fn length(&self) -> Option<u32> {
        if self.modifier < 0 {
            return None;
        }
        match self.name.as_str() {
            "varchar" | "bpchar" | "_varchar" | "_bpchar" => u32::try_from(self.modifier - 4).ok(),
            "bit" | "varbit" | "_bit" | "_varbit" => u32::try_from(self.modifier).ok(),
            _ => None,
        }
    }

    /// Declared precision of `numeric(p,s)`.
    pub fn numeric_precision(&self) -> Option<u32> {
        (self.is_numeric() && self.modifier >= 4)
            .then(|| ((self.modifier - 4) >> 16) as u32 & 0xffff)
    }

    /// Declared scale of `numeric(p,s)` (may be negative on PostgreSQL 15+).
    pub fn numeric_scale(&self) -> Option<i32> {
        (self.is_numeric() && self.modifier >= 4).then(|| {
            // The low 16 bits hold the scale as a signed 11-bit value on PG 15+.
            let raw = (self.modifier - 4) & 0x7ff;
            (raw ^ 1024) - 1024
        })
    }

    /// Fractional-second precision of `time(p)`, `timetz(p)`,
    /// `timestamp(p)`, `timestamptz(p)`, `interval(p)`.
    pub fn time_precision(&self) -> Option<u32> {
        if self.modifier < 0 {
            return None;
        }
        match self.name.as_str() {
            "time" | "timetz" | "timestamp" | "timestamptz" => u32::try_from(self.modifier).ok(),
            "interval" => Some((self.modifier & 0xffff) as u32),
            _ => None,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self.name.as_str(), "numeric" | "_numeric")
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Column type.
    pub pg_type: PgType,
    /// True when the column accepts NULL.
    pub optional: bool,
    /// The column default as an SQL expression (`pg_get_expr(adbin)`), if any.
    pub default_expr: Option<String>,
    /// True when the column is part of the key (primary key or replica
    /// identity index).
    pub is_key: bool,
}

impl Column {
    /// A nullable, non-key column without default.
    pub fn new(name: impl Into<String>, pg_type: PgType) -> Self {
        Self {
            name: name.into(),
            pg_type,
            optional: true,
            default_expr: None,
            is_key: false,
        }
    }
}

/// The schema of a captured table at one point in time.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Table name.
    pub id: TableId,
    /// Relation OID on the source server (0 when unknown, e.g. in the sink).
    pub relation_oid: u32,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Schema version: bumped whenever `columns` change.
    pub version: u64,
}

impl TableSchema {
    /// Indices of the key columns, in table order.
    pub fn key_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
    }

    /// True if the table has at least one key column.
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.is_key)
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifiers_decode() {
        let numeric = PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4);
        assert_eq!(numeric.numeric_precision(), Some(10));
        assert_eq!(numeric.numeric_scale(), Some(2));
        let varchar = PgType::base(1043, "varchar").with_modifier(104);
        assert_eq!(varchar.length(), Some(100));
        let ts = PgType::base(1114, "timestamp").with_modifier(3);
        assert_eq!(ts.time_precision(), Some(3));
        assert_eq!(PgType::base(1700, "numeric").numeric_precision(), None);
    }
}
