//! Shared helpers for the integration tests: the seed's `employees` table as
//! Debezium events, and sink configurations for a fresh target database.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cdc_envelope::{
    ChangeEvent, Column, Date, Decimal, Numeric, Op, PgType, Position, SourceInfo, TableId,
    TableSchema, Timestamp, Value,
};
use cdc_testkit::{Services, TestDatabase};
use jdbc_sink::{SinkConfig, SinkRecord};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const TOPIC: &str = "pgsource.public.employees";

pub async fn target_db(prefix: &str) -> Result<TestDatabase, Box<dyn std::error::Error>> {
    Ok(Services::get()?.target().fresh_database(prefix).await?)
}

pub fn props(db: &TestDatabase, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let s = db.server();
    let mut p = BTreeMap::new();
    p.insert(
        "connection.url".to_owned(),
        format!("jdbc:postgresql://{}:{}/{}", s.host(), s.port(), db.name()),
    );
    p.insert("connection.username".to_owned(), s.user());
    p.insert("connection.password".to_owned(), s.password());
    for (k, v) in extra {
        p.insert((*k).to_owned(), (*v).to_owned());
    }
    p
}

/// The seed's sink settings (upsert, record_key, deletes, basic evolution, `${source.table}`).
pub fn seed_config(db: &TestDatabase, extra: &[(&str, &str)]) -> SinkConfig {
    let mut base: Vec<(&str, &str)> = vec![
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("delete.enabled", "true"),
        ("auto.create", "true"),
        ("auto.evolve", "true"),
        ("schema.evolution", "basic"),
        ("table.name.format", "${source.table}"),
        ("errors.tolerance", "all"),
        ("flush.retry.delay.ms", "50"),
    ];
    base.extend_from_slice(extra);
    SinkConfig::from_properties(&props(db, &base)).expect("valid config")
}

fn col(name: &str, t: PgType, optional: bool, key: bool) -> Column {
    Column {
        name: name.into(),
        pg_type: t,
        optional,
        default_expr: None,
        is_key: key,
    }
}

/// `employees` as the source describes it (version 1).
pub fn employees_schema() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("public", "employees"),
        relation_oid: 0,
        columns: vec![
            col("emp_id", PgType::base(23, "int4"), false, true),
            col(
                "name",
                PgType::base(1043, "varchar").with_modifier(104),
                false,
                false,
            ),
            col(
                "email",
                PgType::base(1043, "varchar").with_modifier(104),
                true,
                false,
            ),
            col(
                "department",
                PgType::base(1043, "varchar").with_modifier(54),
                true,
                false,
            ),
            col(
                "salary",
                PgType::base(1700, "numeric").with_modifier(((10 << 16) | 2) + 4),
                true,
                false,
            ),
            col("hire_date", PgType::base(1082, "date"), true, false),
            Column {
                default_expr: Some("'1970-01-01 00:00:00'::timestamp without time zone".into()),
                ..col("created_at", PgType::base(1114, "timestamp"), true, false)
            },
        ],
        version: 1,
    })
}

pub fn text(s: &str) -> Value {
    Value::Text(s.into())
}

pub fn num(s: &str) -> Value {
    Value::Numeric(Numeric::Finite(Decimal::parse(s).expect("decimal")))
}

/// An `employees` row.
pub fn emp_row(id: i32, name: &str, dept: &str, salary: &str) -> Vec<Value> {
    vec![
        Value::Int32(id),
        text(name),
        text(&format!("{}@example.com", name.to_lowercase())),
        text(dept),
        num(salary),
        Value::Date(Date::Days(19_000 + id)),
        Value::Timestamp(Timestamp::PgMicros(
            1_700_000_000_000_000 - Timestamp::PG_EPOCH_UNIX_MICROS + i64::from(id),
        )),
    ]
}

pub fn event(
    schema: &Arc<TableSchema>,
    op: Op,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table: Some(Arc::clone(schema)),
        before,
        after,
        source: SourceInfo {
            version: "3.6.3.Final".into(),
            connector: "postgresql".into(),
            name: "pgsource".into(),
            db: "bf_source".into(),
            schema: schema.id.schema.as_str().into(),
            table: schema.id.table.as_str().into(),
            ..SourceInfo::default()
        },
        ts_ns: 0,
        transaction: None,
        message: None,
        position: Position::default(),
        key_change: None,
    }
}

/// Builds records on one partition with consecutive offsets from `start`.
pub struct Stream {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
    pub records: Vec<SinkRecord>,
}

impl Stream {
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.into(),
            partition: 0,
            next: 0,
            records: Vec::new(),
        }
    }
    pub fn push(&mut self, ev: ChangeEvent) -> &mut Self {
        let r = SinkRecord::from_event(self.topic.clone(), self.partition, self.next, ev);
        self.next += 1;
        self.records.push(r);
        self
    }
    pub fn push_record(&mut self, mut r: SinkRecord) -> &mut Self {
        r.offset = self.next;
        r.partition = self.partition;
        self.next += 1;
        self.records.push(r);
        self
    }
    pub fn take(&mut self) -> Vec<SinkRecord> {
        std::mem::take(&mut self.records)
    }
}

pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .expect("count query")
        .get::<_, i64>(0)
}
