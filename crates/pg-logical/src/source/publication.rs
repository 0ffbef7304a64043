//! Publication management per `publication.autocreate.mode`.
//!
//! | mode | publication missing | publication exists |
//! |---|---|---|
//! | `all_tables` | `CREATE PUBLICATION … FOR ALL TABLES` (superuser only) | used as is |
//! | `filtered` | `CREATE PUBLICATION … FOR TABLE <included tables>` | `ALTER PUBLICATION … SET TABLE <included tables>` when the set differs |
//! | `disabled` | error | used as is |
//! | `no_tables` | `CREATE PUBLICATION …` (empty) | used as is |
//!
//! With `publish.via.partition.root=true` the publications this connector
//! creates get `WITH (publish_via_partition_root = true)` (in `filtered`
//! mode an existing one is altered to match): changes to partitions are
//! published as changes of the partitioned (root) table, and the snapshot
//! reads the root table, so each row arrives once, under the root's name.
//!
//! Debezium's pitfalls are reported, not hit: `FOR ALL TABLES` without
//! superuser says so and suggests `filtered`; `filtered` with no matching
//! table says which lists matched nothing; captured tables missing from a
//! publication the connector may not change are logged.

use std::collections::BTreeSet;

use cdc_envelope::TableId;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::source::catalog::{quote_ident, quote_table, sql_error, TableMeta};
use crate::source::config::{PublicationAutocreateMode, SourceConfig};

/// Ensures the publication exists and (in `filtered` mode) covers exactly
/// the captured tables. Returns the tables the publication publishes among
/// the captured ones.
pub async fn ensure_publication(
    client: &Client,
    cfg: &SourceConfig,
    tables: &[TableMeta],
) -> Result<Vec<TableId>> {
    let name = &cfg.publication_name;
    let fail = |detail: String| Error::Publication {
        publication: name.clone(),
        detail,
    };
    let row = client
        .query_opt(
            "SELECT puballtables, pubviaroot FROM pg_publication WHERE pubname = $1",
            &[name],
        )
        .await
        .map_err(sql_error(format!("reading publication {name}")))?;
    let existing = row.as_ref().map(|r| r.get::<_, bool>(0));
    let via_root_now = row.as_ref().map(|r| r.get::<_, bool>(1));
    let via_root = cfg.publish_via_partition_root;
    let with = if via_root {
        " WITH (publish_via_partition_root = true)"
    } else {
        ""
    };
    let wanted: BTreeSet<TableId> = tables.iter().map(|t| t.id.clone()).collect();
    let table_list = || {
        tables
            .iter()
            .map(|t| quote_table(&t.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let run = |sql: String, what: &'static str| async move {
        client.batch_execute(&sql).await.map_err(|e| {
            let code = e.code().map(|c| c.code().to_owned());
            let base = sql_error(format!("{what} publication {name}"))(e);
            match (code.as_deref(), what) {
                (Some("42501"), "creating") if sql.contains("ALL TABLES") => fail(format!(
                    "CREATE PUBLICATION … FOR ALL TABLES needs superuser ({base}); create the publication as a \
                     superuser, or set publication.autocreate.mode=filtered to publish only the captured tables"
                )),
                (Some("42501"), _) => fail(format!(
                    "{base}; the user must own the captured tables (or create the publication as their owner \
                     and set publication.autocreate.mode=disabled)"
                )),
                _ => base,
            }
        })
    };
    match (cfg.publication_autocreate_mode, existing) {
        (PublicationAutocreateMode::Disabled, None) => {
            return Err(fail(
                "does not exist and publication.autocreate.mode=disabled: create it (CREATE PUBLICATION … FOR TABLE …) \
                 or choose another autocreate mode"
                    .into(),
            ))
        }
        (PublicationAutocreateMode::AllTables, None) => {
            run(format!("CREATE PUBLICATION {} FOR ALL TABLES{with}", quote_ident(name)), "creating").await?;
        }
        (PublicationAutocreateMode::NoTables, None) => {
            run(format!("CREATE PUBLICATION {}{with}", quote_ident(name)), "creating").await?;
        }
        (PublicationAutocreateMode::Filtered, existing) => {
            if tables.is_empty() {
                return Err(fail(
                    "publication.autocreate.mode=filtered but no table matches table.include.list / \
                     schema.include.list (and the exclude lists): check the regular expressions (anchored, \
                     schema.table)"
                        .into(),
                ));
            }
            match existing {
                None => {
                    run(
                        format!("CREATE PUBLICATION {} FOR TABLE {}{with}", quote_ident(name), table_list()),
                        "creating",
                    )
                    .await?
                }
                Some(_) if via_root_now != Some(via_root) => {
                    // This mode manages the publication: align the flag first.
                    run(
                        format!(
                            "ALTER PUBLICATION {} SET (publish_via_partition_root = {via_root})",
                            quote_ident(name)
                        ),
                        "altering",
                    )
                    .await?;
                }
                _ => {}
            }
            match existing {
                None | Some(true) => {}
                Some(false) => {
                    let current = published(client, name).await?;
                    if current != wanted {
                        run(format!("ALTER PUBLICATION {} SET TABLE {}", quote_ident(name), table_list()), "altering")
                            .await?;
                    }
                }
            }
        }
        (_, Some(_)) => {
            if via_root_now != Some(via_root) {
                tracing::warn!(
                    publication = %name,
                    "publish.via.partition.root={via_root} but the existing publication has \
                     publish_via_partition_root={}; it is used as is",
                    !via_root
                );
            }
        }
    }
    let partitioned: Vec<String> = tables
        .iter()
        .filter(|t| t.partitioned)
        .map(|t| t.id.to_string())
        .collect();
    if !partitioned.is_empty() && !via_root {
        tracing::warn!(
            tables = %partitioned.join(", "),
            "captured partitioned tables without publish.via.partition.root=true: PostgreSQL \
             publishes their changes under the partitions' names, which table.include.list must \
             then match; set publish.via.partition.root=true to stream them as the root table"
        );
    }
    let published_now = published(client, name).await?;
    let missing: Vec<String> = wanted
        .difference(&published_now)
        .map(|t| t.to_string())
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            publication = %name,
            tables = %missing.join(", "),
            "captured tables are not in the publication: their changes will not be streamed"
        );
    }
    Ok(wanted.intersection(&published_now).cloned().collect())
}

async fn published(client: &Client, name: &str) -> Result<BTreeSet<TableId>> {
    let rows = client
        .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&name])
        .await
        .map_err(sql_error(format!("reading tables of publication {name}")))?;
    Ok(rows
        .into_iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}
