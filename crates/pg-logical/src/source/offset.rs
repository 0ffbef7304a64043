//! Source offsets and the caller-supplied store that keeps them.
//!
//! A [`SourceOffset`] records what the consumer has acknowledged: the last
//! acknowledged streamed [`Position`] and, while an initial snapshot is
//! unfinished, per table the key of the last fully acknowledged chunk. The
//! source writes it through an [`OffsetStore`] whenever acknowledgements
//! move it, and reads it once at start.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cdc_envelope::{Lsn, Position, TableId};

use crate::error::{Error, Result};

/// How far the snapshot of one table got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableProgress {
    /// Every chunk was acknowledged.
    Done,
    /// Chunks up to and including this key (the key columns' text values)
    /// were acknowledged.
    After(Vec<String>),
}

/// An unfinished or finished initial snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// The slot's consistent point the snapshot started at.
    pub consistent_point: Lsn,
    /// True once every snapshot row was acknowledged.
    pub completed: bool,
    /// Per-table progress; tables not listed have not started.
    pub tables: BTreeMap<TableId, TableProgress>,
    /// Next `seq` to use for snapshot rows (positions keep growing across resumes).
    pub next_seq: u64,
}

/// Everything the source needs to resume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceOffset {
    /// The snapshot, if one was started.
    pub snapshot: Option<SnapshotProgress>,
    /// The last acknowledged streamed position.
    pub acked: Option<Position>,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

fn unesc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('t') => o.push('\t'),
                Some('n') => o.push('\n'),
                Some('r') => o.push('\r'),
                Some(c) => o.push(c),
                None => {}
            }
        } else {
            o.push(c);
        }
    }
    o
}

impl SourceOffset {
    /// A line-based text form (tab-separated, escaped), stable across versions.
    pub fn to_text(&self) -> String {
        let mut out = String::from("pg-cdc-offset\t1\n");
        if let Some(p) = &self.acked {
            out.push_str(&format!("acked\t{}\t{}\n", p.commit_lsn, p.seq));
        }
        if let Some(s) = &self.snapshot {
            out.push_str(&format!(
                "snapshot\t{}\t{}\t{}\n",
                s.consistent_point,
                u8::from(s.completed),
                s.next_seq
            ));
            for (t, p) in &s.tables {
                out.push_str(&format!("table\t{}\t{}", esc(&t.schema), esc(&t.table)));
                match p {
                    TableProgress::Done => out.push_str("\tdone"),
                    TableProgress::After(k) => {
                        out.push_str("\tafter");
                        for v in k {
                            out.push('\t');
                            out.push_str(&esc(v));
                        }
                    }
                }
                out.push('\n');
            }
        }
        out
    }

    /// Parses [`SourceOffset::to_text`].
    pub fn from_text(text: &str) -> Result<Self> {
        let bad = |line: &str| Error::OffsetStore {
            detail: format!("unreadable offset line {line:?}"),
        };
        let mut out = SourceOffset::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            match f.first().copied() {
                Some("pg-cdc-offset") => {}
                Some("acked") if f.len() == 3 => {
                    out.acked = Some(Position {
                        commit_lsn: f[1].parse().map_err(|_| bad(line))?,
                        seq: f[2].parse().map_err(|_| bad(line))?,
                    })
                }
                Some("snapshot") if f.len() == 4 => {
                    out.snapshot = Some(SnapshotProgress {
                        consistent_point: f[1].parse().map_err(|_| bad(line))?,
                        completed: f[2] == "1",
                        tables: BTreeMap::new(),
                        next_seq: f[3].parse().map_err(|_| bad(line))?,
                    })
                }
                Some("table") if f.len() >= 4 => {
                    let snap = out.snapshot.as_mut().ok_or_else(|| bad(line))?;
                    let id = TableId::new(unesc(f[1]), unesc(f[2]));
                    let p = match f[3] {
                        "done" => TableProgress::Done,
                        "after" => TableProgress::After(f[4..].iter().map(|v| unesc(v)).collect()),
                        _ => return Err(bad(line)),
                    };
                    snap.tables.insert(id, p);
                }
                _ => return Err(bad(line)),
            }
        }
        Ok(out)
    }
}

/// Where the source keeps its offsets. Implementations must make
/// [`OffsetStore::store`] durable before returning (the slot is advanced
/// only after it).
pub trait OffsetStore: Send + Sync + 'static {
    /// The last stored offsets, `None` on first start.
    fn load(&self) -> impl Future<Output = Result<Option<SourceOffset>>> + Send;
    /// Replaces the stored offsets.
    fn store(&self, offset: &SourceOffset) -> impl Future<Output = Result<()>> + Send;
}

/// Offsets in memory (tests, or a caller that persists them elsewhere);
/// clones share the same cell.
#[derive(Debug, Clone, Default)]
pub struct MemoryOffsetStore {
    cell: Arc<Mutex<Option<SourceOffset>>>,
}

impl MemoryOffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current content.
    pub fn get(&self) -> Option<SourceOffset> {
        self.cell.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

impl OffsetStore for MemoryOffsetStore {
    async fn load(&self) -> Result<Option<SourceOffset>> {
        Ok(self.get())
    }

    async fn store(&self, offset: &SourceOffset) -> Result<()> {
        let mut g = self.cell.lock().map_err(|_| Error::OffsetStore {
            detail: "poisoned lock".into(),
        })?;
        *g = Some(offset.clone());
        Ok(())
    }
}

/// Offsets in a file, replaced atomically (write to `<path>.tmp`, fsync, rename).
#[derive(Debug, Clone)]
pub struct FileOffsetStore {
    path: PathBuf,
}

impl FileOffsetStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl OffsetStore for FileOffsetStore {
    async fn load(&self) -> Result<Option<SourceOffset>> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => SourceOffset::from_text(&t).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::OffsetStore {
                detail: format!("reading {}: {e}", self.path.display()),
            }),
        }
    }

    async fn store(&self, offset: &SourceOffset) -> Result<()> {
        let text = offset.to_text();
        let path = self.path.clone();
        let io = move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        io().map_err(|e| Error::OffsetStore {
            detail: format!("writing {}: {e}", self.path.display()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_round_trip() {
        let mut tables = BTreeMap::new();
        tables.insert(TableId::new("public", "a\tb"), TableProgress::Done);
        tables.insert(
            TableId::new("s", "t"),
            TableProgress::After(vec!["1".into(), "x\\y\nz".into()]),
        );
        let o = SourceOffset {
            snapshot: Some(SnapshotProgress {
                consistent_point: Lsn(0x1_0000_0010),
                completed: false,
                tables,
                next_seq: 42,
            }),
            acked: Some(Position {
                commit_lsn: Lsn(77),
                seq: 3,
            }),
        };
        assert_eq!(SourceOffset::from_text(&o.to_text()).unwrap(), o);
        assert!(SourceOffset::from_text("junk").is_err());
    }
}
