//! Tuple data: the column values of one row in a pgoutput message.
//!
//! A [`TupleData`] is validated once when its message is decoded and then
//! kept as a zero-copy slice of the message; iterate it with
//! [`TupleData::iter`] to get one [`TupleValue`] per column.

use bytes::Bytes;

use crate::error::Result;
use crate::protocol::Reader;

/// One column of a tuple, as pgoutput sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TupleValue {
    /// `n`: SQL NULL.
    Null,
    /// `u`: unchanged TOASTed value, not sent. Never the same as NULL.
    UnchangedToast,
    /// `t`: the value in the type's text output format.
    Text(Bytes),
    /// `b`: the value in the type's binary send format (`binary = true`).
    Binary(Bytes),
}

/// The columns of one row: a validated, zero-copy view of the tuple bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TupleData {
    /// The column entries (without the leading column count).
    raw: Bytes,
    /// Number of columns.
    ncols: u16,
}

impl std::fmt::Debug for TupleData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Where one column's data sits inside [`TupleData::raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawColumn {
    Null,
    UnchangedToast,
    Text(usize, usize),
    Binary(usize, usize),
}

impl TupleData {
    /// Builds a tuple from values (used by encoders and tests).
    pub fn from_values(values: &[TupleValue]) -> Self {
        let mut raw = Vec::new();
        for v in values {
            match v {
                TupleValue::Null => raw.push(b'n'),
                TupleValue::UnchangedToast => raw.push(b'u'),
                TupleValue::Text(b) | TupleValue::Binary(b) => {
                    raw.push(if matches!(v, TupleValue::Text(_)) {
                        b't'
                    } else {
                        b'b'
                    });
                    raw.extend_from_slice(&(b.len() as u32).to_be_bytes());
                    raw.extend_from_slice(b);
                }
            }
        }
        Self {
            raw: Bytes::from(raw),
            ncols: values.len() as u16,
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.ncols)
    }

    /// True if the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.ncols == 0
    }

    /// The raw column entries as sent (kind byte, length, data for each column).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Iterates the columns; values are zero-copy slices.
    pub fn iter(&self) -> impl Iterator<Item = TupleValue> + '_ {
        self.raw_columns().map(|c| match c {
            RawColumn::Null => TupleValue::Null,
            RawColumn::UnchangedToast => TupleValue::UnchangedToast,
            RawColumn::Text(s, e) => TupleValue::Text(self.slice(s, e)),
            RawColumn::Binary(s, e) => TupleValue::Binary(self.slice(s, e)),
        })
    }

    /// Zero-copy slice; empty if out of range (cannot happen after validation).
    pub(crate) fn slice(&self, start: usize, end: usize) -> Bytes {
        if start <= end && end <= self.raw.len() {
            self.raw.slice(start..end)
        } else {
            Bytes::new()
        }
    }

    pub(crate) fn raw_columns(&self) -> RawColumns<'_> {
        RawColumns {
            raw: &self.raw,
            pos: 0,
            left: self.ncols,
        }
    }
}

/// Iterator over column positions of a validated tuple.
pub(crate) struct RawColumns<'a> {
    raw: &'a [u8],
    pos: usize,
    left: u16,
}

impl Iterator for RawColumns<'_> {
    type Item = RawColumn;

    #[inline]
    fn next(&mut self) -> Option<RawColumn> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let kind = *self.raw.get(self.pos)?;
        self.pos += 1;
        match kind {
            b'n' => Some(RawColumn::Null),
            b'u' => Some(RawColumn::UnchangedToast),
            _ => {
                let len_bytes: [u8; 4] = self.raw.get(self.pos..self.pos + 4)?.try_into().ok()?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let start = self.pos + 4;
                let end = start.checked_add(len)?;
                if end > self.raw.len() {
                    self.left = 0;
                    return None;
                }
                self.pos = end;
                Some(if kind == b't' {
                    RawColumn::Text(start, end)
                } else {
                    RawColumn::Binary(start, end)
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// Reads and validates `Int16 ncols` followed by the column entries.
pub(crate) fn read_tuple(r: &mut Reader<'_>, msg: &Bytes) -> Result<TupleData> {
    let at = r.pos();
    let n = r.i16("tuple column count")?;
    let ncols = u16::try_from(n)
        .map_err(|_| r.invalid(at, "tuple column count", format!("negative: {n}")))?;
    let start = r.pos();
    for _ in 0..ncols {
        let at = r.pos();
        match r.u8("tuple column kind")? {
            b'n' | b'u' => {}
            b't' | b'b' => {
                let len_at = r.pos();
                let len = r.i32("column length")?;
                let len = usize::try_from(len)
                    .map_err(|_| r.invalid(len_at, "column length", format!("negative: {len}")))?;
                r.skip(len, "column data")?;
            }
            other => {
                return Err(r.invalid(
                    at,
                    "tuple column kind",
                    format!("expected 'n', 'u', 't' or 'b', got 0x{other:02x}"),
                ))
            }
        }
    }
    let end = r.pos();
    let raw = if start <= end && end <= msg.len() {
        msg.slice(start..end)
    } else {
        Bytes::new()
    };
    Ok(TupleData { raw, ncols })
}
