//! The relation cache and the catalog hook.
//!
//! pgoutput describes each table with a Relation message (name, and per
//! column: name, type OID, type modifier, key flag) before its first change
//! and again after each schema change, and each non-built-in type with a
//! Type message (OID → namespace + name). [`RelationCache`] keeps the latest
//! of both, merges in what the replication source learned from the catalog
//! ([`TypeRegistry`]: enum labels, domain base types, array element types,
//! NOT NULL, defaults, primary keys) and turns tuples into rows of
//! [`Value`]s aligned with the [`TableSchema`].

use std::collections::HashMap;
use std::sync::Arc;

use cdc_envelope::{Column, PgType, TableId, TableSchema, TypeKind, Value};

use crate::error::{Error, Result};
use crate::message::{OldTupleKind, PgOutputMessage, Relation, ReplicaIdentity, TypeMessage};
use crate::pgtype::{builtin_pg_type, builtin_type_oid, ValueDecoder, ValueError};
use crate::tuple::{RawColumn, TupleData};

/// What the catalog says about a type (`pg_type`, `pg_enum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// Type OID.
    pub oid: u32,
    /// Namespace (schema) of the type.
    pub namespace: String,
    /// Type name (`typname`).
    pub name: String,
    /// What kind of type it is.
    pub kind: TypeInfoKind,
}

/// The kind of a catalog type (`pg_type.typtype` plus the details needed to
/// decode its values).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeInfoKind {
    /// A base type (built-in or from an extension): values pass through as text
    /// unless the OID is a built-in one.
    Base,
    /// An enum with its labels in sort order (`pg_enum.enumlabel` by `enumsortorder`).
    Enum {
        /// The labels.
        labels: Vec<String>,
    },
    /// A domain (`typbasetype`, `typtypmod`).
    Domain {
        /// OID of the base type.
        base_oid: u32,
        /// Modifier of the base type, -1 when none.
        base_modifier: i32,
    },
    /// An array type (`typelem`).
    Array {
        /// OID of the element type.
        element_oid: u32,
    },
    /// A range type (`pg_range.rngsubtype`).
    Range {
        /// OID of the subtype.
        subtype_oid: u32,
    },
    /// A composite type.
    Composite,
    /// Only known from a pgoutput Type message (name, no details).
    Unknown,
}

/// What the catalog says about one column (`pg_attribute`, `pg_attrdef`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnInfo {
    /// `attnotnull`.
    pub not_null: bool,
    /// `pg_get_expr(adbin, adrelid)`, if the column has a default.
    pub default_expr: Option<String>,
}

/// What the catalog says about one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableInfo {
    /// Per-column facts by column name.
    pub columns: HashMap<String, ColumnInfo>,
    /// Primary-key column names (empty when the table has no primary key).
    pub primary_key: Vec<String>,
}

/// Catalog knowledge the replication source supplies, from `pg_type`,
/// `pg_enum`, `pg_range`, `pg_attribute`, `pg_attrdef` and `pg_index`
/// queries. Everything is optional: without it, user-defined types pass
/// through as text, every column is nullable and the key is the replica
/// identity from the Relation message.
#[derive(Debug, Clone, Default)]
pub struct TypeRegistry {
    types: HashMap<u32, TypeInfo>,
    tables: HashMap<u32, TableInfo>,
}

const MAX_TYPE_DEPTH: usize = 8;

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a type.
    pub fn insert_type(&mut self, info: TypeInfo) {
        self.types.insert(info.oid, info);
    }

    /// Adds or replaces the catalog facts of a table.
    pub fn insert_table(&mut self, relation_oid: u32, info: TableInfo) {
        self.tables.insert(relation_oid, info);
    }

    /// A type by OID.
    pub fn get_type(&self, oid: u32) -> Option<&TypeInfo> {
        self.types.get(&oid)
    }

    /// The catalog facts of a table.
    pub fn get_table(&self, relation_oid: u32) -> Option<&TableInfo> {
        self.tables.get(&relation_oid)
    }

    /// Records a pgoutput Type message. A type the catalog already described
    /// is left alone: the message carries less (and for a domain, pgoutput
    /// sends the domain's OID with its *base type's* namespace and name).
    pub fn record_type_message(&mut self, msg: &TypeMessage) {
        match self.types.get(&msg.oid) {
            Some(known) if known.kind != TypeInfoKind::Unknown => {}
            _ => {
                self.types.insert(
                    msg.oid,
                    TypeInfo {
                        oid: msg.oid,
                        namespace: namespace_name(msg.namespace.as_str()).to_owned(),
                        name: msg.name.as_str().to_owned(),
                        kind: TypeInfoKind::Unknown,
                    },
                );
            }
        }
    }

    /// The [`PgType`] of a column type: built-in types by OID, others from
    /// the registry (`TypeKind::Unknown` with the Type-message name, or
    /// `unknown` when nothing is known).
    pub fn resolve(&self, oid: u32, modifier: i32) -> PgType {
        self.resolve_depth(oid, modifier, 0)
    }

    fn resolve_depth(&self, oid: u32, modifier: i32, depth: usize) -> PgType {
        if let Some(t) = builtin_pg_type(oid, modifier) {
            return t;
        }
        let Some(info) = self.types.get(&oid).filter(|_| depth < MAX_TYPE_DEPTH) else {
            return PgType {
                oid,
                name: "unknown".to_owned(),
                modifier,
                kind: TypeKind::Unknown,
            };
        };
        let kind =
            match &info.kind {
                TypeInfoKind::Base => TypeKind::Base,
                TypeInfoKind::Enum { labels } => TypeKind::Enum(labels.clone()),
                TypeInfoKind::Domain {
                    base_oid,
                    base_modifier,
                } => {
                    let m = if *base_modifier >= 0 {
                        *base_modifier
                    } else {
                        modifier
                    };
                    TypeKind::Domain(Box::new(self.resolve_depth(*base_oid, m, depth + 1)))
                }
                TypeInfoKind::Array { element_oid } => TypeKind::Array(Box::new(
                    self.resolve_depth(*element_oid, modifier, depth + 1),
                )),
                TypeInfoKind::Range { subtype_oid } => {
                    TypeKind::Range(Box::new(self.resolve_depth(*subtype_oid, -1, depth + 1)))
                }
                TypeInfoKind::Composite => TypeKind::Composite,
                TypeInfoKind::Unknown => match builtin_type_oid(&info.name) {
                    // A user OID named like a built-in type in pg_catalog is a
                    // domain over it (that is how pgoutput's Type message names domains).
                    Some(base) if info.namespace == "pg_catalog" && base != oid => {
                        TypeKind::Domain(Box::new(self.resolve_depth(base, modifier, depth + 1)))
                    }
                    _ => TypeKind::Unknown,
                },
            };
        let name = match info.namespace.as_str() {
            "" | "public" | "pg_catalog" => info.name.clone(),
            ns => format!("{ns}.{}", info.name),
        };
        PgType {
            oid,
            name,
            modifier,
            kind,
        }
    }
}

fn namespace_name(ns: &str) -> &str {
    // pgoutput sends an empty namespace for pg_catalog.
    if ns.is_empty() {
        "pg_catalog"
    } else {
        ns
    }
}

/// A relation as currently known: its schema and one value decoder per column.
#[derive(Debug, Clone)]
pub struct CachedRelation {
    /// The merged schema (Relation message + catalog).
    pub schema: Arc<TableSchema>,
    /// The replica identity from the Relation message.
    pub replica_identity: ReplicaIdentity,
    /// The last Relation message.
    pub relation: Relation,
    decoders: Vec<ValueDecoder>,
}

impl CachedRelation {
    /// Converts a tuple of this relation to values aligned with
    /// [`CachedRelation::schema`]: NULL as [`Value::Null`], unchanged TOAST as
    /// [`Value::Unavailable`].
    pub fn decode_row(&self, tuple: &TupleData) -> Result<Vec<Value>> {
        if tuple.len() != self.decoders.len() {
            return Err(Error::ColumnCountMismatch {
                relation: self.schema.id.to_string(),
                expected: self.decoders.len(),
                got: tuple.len(),
            });
        }
        let mut row = Vec::with_capacity(self.decoders.len());
        for (i, (raw, decoder)) in tuple.raw_columns().zip(&self.decoders).enumerate() {
            let value = match raw {
                RawColumn::Null => Ok(Value::Null),
                RawColumn::UnchangedToast => Ok(Value::Unavailable),
                RawColumn::Text(s, e) => decoder.decode_text_range(tuple.raw(), s, e),
                RawColumn::Binary(s, e) => decoder.decode_binary(&tuple.slice(s, e)),
            }
            .map_err(|err| self.value_error(i, matches!(raw, RawColumn::Binary(..)), err))?;
            row.push(value);
        }
        if row.len() != self.decoders.len() {
            // Only reachable with a tuple that was not validated.
            return Err(Error::ColumnCountMismatch {
                relation: self.schema.id.to_string(),
                expected: self.decoders.len(),
                got: row.len(),
            });
        }
        Ok(row)
    }

    #[cold]
    fn value_error(&self, i: usize, binary: bool, err: ValueError) -> Error {
        let col = self.schema.columns.get(i);
        let column = col.map(|c| c.name.clone()).unwrap_or_default();
        let type_name = col.map(|c| c.pg_type.name.clone()).unwrap_or_default();
        match err {
            ValueError::UnsupportedBinary => Error::UnsupportedBinaryType {
                column,
                type_name,
                type_oid: col.map_or(0, |c| c.pg_type.oid),
            },
            ValueError::Invalid(detail) => Error::InvalidValue {
                column,
                type_name,
                format: if binary { "binary" } else { "text" },
                detail,
            },
        }
    }
}

/// Kind of row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Insert.
    Insert,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

/// An Insert, Update or Delete typed against its relation.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// Insert, update or delete.
    pub kind: ChangeKind,
    /// The relation's schema at the time of the change.
    pub schema: Arc<TableSchema>,
    /// The old row (Update with `K`/`O`, Delete). With a key-only image
    /// (`K`), non-key columns are [`Value::Null`].
    pub before: Option<Vec<Value>>,
    /// Which old image `before` is.
    pub before_kind: Option<OldTupleKind>,
    /// The new row (Insert, Update). Unchanged TOASTed columns are
    /// [`Value::Unavailable`].
    pub after: Option<Vec<Value>>,
    /// Transaction id when inside a streamed block.
    pub xid: Option<u32>,
}

/// Relations by OID, with their schema versions and the type registry.
#[derive(Debug, Clone, Default)]
pub struct RelationCache {
    registry: TypeRegistry,
    relations: HashMap<u32, CachedRelation>,
}

impl RelationCache {
    /// An empty cache with an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache with catalog knowledge.
    pub fn with_registry(registry: TypeRegistry) -> Self {
        Self {
            registry,
            relations: HashMap::new(),
        }
    }

    /// The type registry.
    pub fn registry(&self) -> &TypeRegistry {
        &self.registry
    }

    /// The type registry, to add catalog knowledge; call
    /// [`RelationCache::refresh`] afterwards for relations already cached.
    pub fn registry_mut(&mut self) -> &mut TypeRegistry {
        &mut self.registry
    }

    /// A relation by OID.
    pub fn get(&self, relation_oid: u32) -> Option<&CachedRelation> {
        self.relations.get(&relation_oid)
    }

    /// The relations currently cached.
    pub fn relations(&self) -> impl Iterator<Item = &CachedRelation> {
        self.relations.values()
    }

    /// Records Relation and Type messages; ignores other messages. Returns
    /// the relation when `msg` was a Relation message.
    pub fn apply(&mut self, msg: &PgOutputMessage) -> Option<&CachedRelation> {
        match msg {
            PgOutputMessage::Relation(rel) => Some(self.insert_relation(rel)),
            PgOutputMessage::Type(ty) => {
                self.registry.record_type_message(ty);
                None
            }
            _ => None,
        }
    }

    /// Adds or replaces a relation. The schema version starts at 1 and is
    /// bumped whenever the merged schema differs from the cached one.
    pub fn insert_relation(&mut self, rel: &Relation) -> &CachedRelation {
        let previous = self
            .relations
            .get(&rel.oid)
            .map(|c| (c.schema.version, c.schema.clone()));
        let mut schema = self.build_schema(rel);
        schema.version = match previous {
            None => 1,
            Some((v, old)) if old.columns == schema.columns && old.id == schema.id => v,
            Some((v, _)) => v + 1,
        };
        let decoders = schema
            .columns
            .iter()
            .map(|c| ValueDecoder::for_type(&c.pg_type))
            .collect();
        let entry = CachedRelation {
            schema: Arc::new(schema),
            replica_identity: rel.replica_identity,
            relation: rel.clone(),
            decoders,
        };
        match self.relations.entry(rel.oid) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                o.insert(entry);
                o.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(entry),
        }
    }

    /// Re-merges a cached relation with the registry (after the source
    /// added catalog knowledge). Returns false if the relation is unknown.
    pub fn refresh(&mut self, relation_oid: u32) -> bool {
        match self
            .relations
            .get(&relation_oid)
            .map(|c| c.relation.clone())
        {
            Some(rel) => {
                self.insert_relation(&rel);
                true
            }
            None => false,
        }
    }

    fn build_schema(&self, rel: &Relation) -> TableSchema {
        let table = self.registry.get_table(rel.oid);
        let pk: &[String] = table.map_or(&[], |t| t.primary_key.as_slice());
        let columns = rel
            .columns
            .iter()
            .map(|c| {
                let name = c.name.as_str();
                let info = table.and_then(|t| t.columns.get(name));
                let is_key = if !pk.is_empty() {
                    pk.iter().any(|k| k == name)
                } else {
                    // With REPLICA IDENTITY FULL every column carries the key flag.
                    c.is_key() && rel.replica_identity != ReplicaIdentity::Full
                };
                Column {
                    name: name.to_owned(),
                    pg_type: self.registry.resolve(c.type_oid, c.type_modifier),
                    optional: !info.is_some_and(|i| i.not_null),
                    default_expr: info.and_then(|i| i.default_expr.clone()),
                    is_key,
                }
            })
            .collect();
        TableSchema {
            id: TableId::new(namespace_name(rel.namespace.as_str()), rel.name.as_str()),
            relation_oid: rel.oid,
            columns,
            version: 1,
        }
    }

    /// Types an Insert, Update or Delete against its relation; `Ok(None)`
    /// for every other message.
    pub fn row_change(&self, msg: &PgOutputMessage) -> Result<Option<RowChange>> {
        let (kind, xid, oid, old, new) = match msg {
            PgOutputMessage::Insert(m) => (
                ChangeKind::Insert,
                m.xid,
                m.relation_oid,
                None,
                Some(&m.new),
            ),
            PgOutputMessage::Update(m) => (
                ChangeKind::Update,
                m.xid,
                m.relation_oid,
                m.old.as_ref(),
                Some(&m.new),
            ),
            PgOutputMessage::Delete(m) => (
                ChangeKind::Delete,
                m.xid,
                m.relation_oid,
                Some(&m.old),
                None,
            ),
            _ => return Ok(None),
        };
        let rel = self
            .get(oid)
            .ok_or(Error::UnknownRelation { relation_oid: oid })?;
        Ok(Some(RowChange {
            kind,
            schema: rel.schema.clone(),
            before: old.map(|o| rel.decode_row(&o.data)).transpose()?,
            before_kind: old.map(|o| o.kind),
            after: new.map(|t| rel.decode_row(t)).transpose()?,
            xid,
        }))
    }

    /// Types one tuple of a relation.
    pub fn decode_row(&self, relation_oid: u32, tuple: &TupleData) -> Result<Vec<Value>> {
        self.get(relation_oid)
            .ok_or(Error::UnknownRelation { relation_oid })?
            .decode_row(tuple)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;
    use cdc_envelope::{Str, TypeKind};

    use super::*;
    use crate::message::{Insert, RelationColumn, Update};
    use crate::tuple::TupleValue;

    fn col(key: bool, name: &str, type_oid: u32, type_modifier: i32) -> RelationColumn {
        RelationColumn {
            flags: u8::from(key),
            name: Str::from(name),
            type_oid,
            type_modifier,
        }
    }

    fn rel(columns: Vec<RelationColumn>, ri: ReplicaIdentity) -> Relation {
        Relation {
            xid: None,
            oid: 16384,
            namespace: Str::from("public"),
            name: Str::from("t"),
            replica_identity: ri,
            columns,
        }
    }

    fn text(s: &'static str) -> TupleValue {
        TupleValue::Text(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn schema_versions_bump_only_on_change() {
        let mut cache = RelationCache::new();
        let r1 = rel(vec![col(true, "id", 23, -1)], ReplicaIdentity::Default);
        assert_eq!(cache.insert_relation(&r1).schema.version, 1);
        // The same Relation again (e.g. after a reconnect): same version.
        assert_eq!(cache.insert_relation(&r1).schema.version, 1);
        let r2 = rel(
            vec![col(true, "id", 23, -1), col(false, "note", 25, -1)],
            ReplicaIdentity::Default,
        );
        assert_eq!(cache.insert_relation(&r2).schema.version, 2);
        // A type change (varchar(10) → varchar(20)) is a schema change too.
        let r3 = rel(
            vec![col(true, "id", 23, -1), col(false, "note", 1043, 14)],
            ReplicaIdentity::Default,
        );
        assert_eq!(cache.insert_relation(&r3).schema.version, 3);
        let r4 = rel(
            vec![col(true, "id", 23, -1), col(false, "note", 1043, 24)],
            ReplicaIdentity::Default,
        );
        let schema = cache.insert_relation(&r4).schema.clone();
        assert_eq!(schema.version, 4);
        assert_eq!(schema.columns[1].pg_type.length(), Some(20));
        assert_eq!(schema.id, TableId::new("public", "t"));
    }

    #[test]
    fn catalog_knowledge_is_merged() {
        let mut cache = RelationCache::new();
        let r = rel(
            vec![
                col(true, "id", 23, -1),
                col(false, "m", 70_000, -1),
                col(false, "d", 70_002, -1),
                col(false, "x", 70_003, -1),
            ],
            ReplicaIdentity::Full,
        );
        cache.insert_relation(&r);
        // Nothing known yet: FULL flags every column, which is not a key; user types pass through.
        let s = cache.get(16384).map(|c| c.schema.clone()).expect("cached");
        assert!(!s.has_key());
        assert_eq!(s.columns[1].pg_type.kind, TypeKind::Unknown);
        assert!(s.columns.iter().all(|c| c.optional));

        let reg = cache.registry_mut();
        reg.insert_type(TypeInfo {
            oid: 70_000,
            namespace: "public".into(),
            name: "mood".into(),
            kind: TypeInfoKind::Enum {
                labels: vec!["sad".into(), "ok".into()],
            },
        });
        reg.insert_type(TypeInfo {
            oid: 70_001,
            namespace: "app".into(),
            name: "money2".into(),
            kind: TypeInfoKind::Domain {
                base_oid: 1700,
                base_modifier: (10 << 16 | 2) + 4,
            },
        });
        reg.insert_type(TypeInfo {
            oid: 70_002,
            namespace: "app".into(),
            name: "_money2".into(),
            kind: TypeInfoKind::Array {
                element_oid: 70_001,
            },
        });
        let mut columns = HashMap::new();
        columns.insert(
            "id".to_owned(),
            ColumnInfo {
                not_null: true,
                default_expr: Some("nextval('s')".into()),
            },
        );
        reg.insert_table(
            16384,
            TableInfo {
                columns,
                primary_key: vec!["id".into()],
            },
        );
        // The Type message for a type the catalog described changes nothing…
        reg.record_type_message(&TypeMessage {
            xid: None,
            oid: 70_000,
            namespace: Str::from("public"),
            name: Str::from("renamed"),
        });
        // …and one for an unknown OID named like a built-in is a domain over it.
        reg.record_type_message(&TypeMessage {
            xid: None,
            oid: 70_003,
            namespace: Str::from(""),
            name: Str::from("int4"),
        });
        assert!(cache.refresh(16384));
        assert!(!cache.refresh(1));
        let c = cache.get(16384).expect("cached");
        let s = c.schema.clone();
        assert_eq!(s.version, 2);
        assert_eq!(s.key_indices().collect::<Vec<_>>(), vec![0]);
        assert!(!s.columns[0].optional);
        assert_eq!(s.columns[0].default_expr.as_deref(), Some("nextval('s')"));
        assert_eq!(s.columns[1].pg_type.name, "mood");
        assert!(matches!(&s.columns[1].pg_type.kind, TypeKind::Enum(l) if l.len() == 2));
        assert_eq!(s.columns[2].pg_type.name, "app._money2");
        let TypeKind::Array(elem) = &s.columns[2].pg_type.kind else {
            panic!("array")
        };
        let TypeKind::Domain(base) = &elem.kind else {
            panic!("domain")
        };
        assert_eq!(base.numeric_scale(), Some(2));
        assert!(matches!(&s.columns[3].pg_type.kind, TypeKind::Domain(b) if b.oid == 23));

        let tuple =
            TupleData::from_values(&[text("1"), text("ok"), text("{1.50,NULL}"), text("7")]);
        let row = c.decode_row(&tuple).expect("row");
        assert_eq!(row[1], Value::Enum(Str::from("ok")));
        let Value::Array(a) = &row[2] else {
            panic!("array")
        };
        assert_eq!(a.elements.len(), 2);
        assert_eq!(row[3], Value::Int32(7));
    }

    #[test]
    fn row_changes_and_errors() {
        let mut cache = RelationCache::new();
        cache.insert_relation(&rel(
            vec![col(true, "id", 23, -1), col(false, "body", 25, -1)],
            ReplicaIdentity::Default,
        ));
        let ins = PgOutputMessage::Insert(Insert {
            xid: None,
            relation_oid: 16384,
            new: TupleData::from_values(&[text("1"), TupleValue::Null]),
        });
        let ch = cache.row_change(&ins).expect("typed").expect("a change");
        assert_eq!(ch.after, Some(vec![Value::Int32(1), Value::Null]));
        assert_eq!((ch.kind, ch.before), (ChangeKind::Insert, None));

        // Unchanged TOAST stays distinct from NULL.
        let upd = PgOutputMessage::Update(Update {
            xid: Some(9),
            relation_oid: 16384,
            old: None,
            new: TupleData::from_values(&[text("1"), TupleValue::UnchangedToast]),
        });
        let ch = cache.row_change(&upd).expect("typed").expect("a change");
        assert_eq!(ch.after, Some(vec![Value::Int32(1), Value::Unavailable]));
        assert_eq!(ch.xid, Some(9));

        // Errors: unknown relation, wrong column count, bad value, unsupported binary.
        let bad = |oid: u32, vals: &[TupleValue]| {
            cache.row_change(&PgOutputMessage::Insert(Insert {
                xid: None,
                relation_oid: oid,
                new: TupleData::from_values(vals),
            }))
        };
        assert_eq!(bad(1, &[]), Err(Error::UnknownRelation { relation_oid: 1 }));
        assert!(matches!(
            bad(16384, &[text("1")]),
            Err(Error::ColumnCountMismatch {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            bad(16384, &[text("x"), TupleValue::Null]),
            Err(Error::InvalidValue { ref column, format: "text", .. }) if column == "id"
        ));
        assert!(matches!(
            bad(16384, &[TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 5])), TupleValue::Binary(Bytes::from_static(b"hi"))]),
            Ok(Some(RowChange { after: Some(ref v), .. })) if v == &vec![Value::Int32(5), Value::Text(Str::from("hi"))]
        ));
        let mut cache2 = RelationCache::new();
        cache2.insert_relation(&rel(
            vec![col(false, "p", 600, -1)],
            ReplicaIdentity::Default,
        ));
        let r = cache2.decode_row(
            16384,
            &TupleData::from_values(&[TupleValue::Binary(Bytes::from_static(&[0; 16]))]),
        );
        assert!(matches!(
            r,
            Err(Error::UnsupportedBinaryType { type_oid: 600, .. })
        ));
        // Non-row messages give None.
        assert_eq!(cache.row_change(&PgOutputMessage::StreamStop), Ok(None));
    }
}
