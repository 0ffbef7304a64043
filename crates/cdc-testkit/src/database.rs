//! A throwaway database that cleans up after itself.

use crate::error::Error;
use crate::services::{connect, PgServer};

/// A database created for one test. On drop, replication slots in it are
/// dropped (their walsenders terminated first) and the database is dropped
/// with `FORCE`. Set `CDC_TEST_KEEP_DB=1` to keep it for debugging.
#[derive(Debug)]
pub struct TestDatabase {
    server: PgServer,
    name: String,
}

impl TestDatabase {
    pub(crate) fn new(server: PgServer, name: String) -> Self {
        Self { server, name }
    }

    /// Database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it lives on.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// `postgres://user:password@host:port/<name>`.
    pub fn url(&self) -> String {
        self.server.url_for(&self.name)
    }

    /// Driver configuration for this database.
    pub fn config(&self) -> tokio_postgres::Config {
        self.server.config_for(&self.name)
    }

    /// A new connection to this database (driven on the current runtime).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, Error> {
        connect(&self.config()).await
    }

    /// Drops slots and the database now, reporting errors (drop does the
    /// same silently).
    pub async fn cleanup(self) -> Result<(), Error> {
        let result = cleanup(&self.server, &self.name).await;
        std::mem::forget(self);
        result
    }
}

async fn cleanup(server: &PgServer, name: &str) -> Result<(), Error> {
    let admin = server.connect_admin().await?;
    admin
        .execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = $1 AND active_pid IS NOT NULL",
            &[&name],
        )
        .await
        .map_err(Error::pg("terminating walsenders"))?;
    // A terminated walsender releases its slot asynchronously: retry briefly.
    for attempt in 0..50 {
        let res = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE database = $1 AND NOT active",
                &[&name],
            )
            .await;
        let remaining: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                &[&name],
            )
            .await
            .map_err(Error::pg("counting slots"))?
            .get(0);
        if remaining == 0 {
            break;
        }
        if attempt == 49 {
            res.map_err(Error::pg(format!("dropping replication slots of {name}")))?;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        ))
        .await
        .map_err(Error::pg(format!("dropping database {name}")))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::env::var_os("CDC_TEST_KEEP_DB").is_some() {
            eprintln!(
                "keeping test database {} (CDC_TEST_KEEP_DB is set)",
                self.name
            );
            return;
        }
        let server = self.server.clone();
        let name = std::mem::take(&mut self.name);
        // Drop may run inside or outside a runtime: clean up on a thread of our own.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(cleanup(&server, &name)) {
                        eprintln!("warning: cleaning up test database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: no runtime to clean up test database {name}: {e}"),
            }
        });
        let _ = handle.join();
    }
}
