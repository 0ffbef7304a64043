//! Checked big-endian reads over one pgoutput message.
//!
//! Every read returns a typed [`Error`] naming the message tag and the byte
//! offset instead of panicking; values are sliced out of the message's
//! [`Bytes`] without copying.

use bytes::Bytes;
use cdc_envelope::{Lsn, Str};

use crate::error::{Error, Result, Tag};

/// Microseconds between the Unix epoch (1970-01-01) and the PostgreSQL epoch
/// (2000-01-01), which pgoutput timestamps count from.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Converts a pgoutput timestamp (µs since 2000-01-01) to µs since the Unix
/// epoch. Wrapping, so that the conversion is a bijection on `i64`.
pub fn pg_to_unix_micros(pg: i64) -> i64 {
    pg.wrapping_add(PG_EPOCH_OFFSET_MICROS)
}

/// Converts µs since the Unix epoch to a pgoutput timestamp (µs since 2000-01-01).
pub fn unix_to_pg_micros(unix: i64) -> i64 {
    unix.wrapping_sub(PG_EPOCH_OFFSET_MICROS)
}

/// A cursor over one message.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    tag: Tag,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes, tag: u8, pos: usize) -> Self {
        Self {
            buf,
            pos,
            tag: Tag(tag),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                let mut out = [0u8; N];
                out.copy_from_slice(s);
                self.pos += N;
                Ok(out)
            }
            None => Err(self.truncated(N, what)),
        }
    }

    #[cold]
    fn truncated(&self, want: usize, what: &'static str) -> Error {
        Error::Truncated {
            tag: self.tag,
            offset: self.pos,
            needed: want.saturating_sub(self.remaining()),
            what,
        }
    }

    #[cold]
    pub(crate) fn invalid(&self, offset: usize, what: &'static str, detail: String) -> Error {
        Error::InvalidField {
            tag: self.tag,
            offset,
            what,
            detail,
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(1, what)),
        }
    }

    #[inline]
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16> {
        self.take::<2>(what).map(i16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.take::<4>(what).map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32> {
        self.take::<4>(what).map(i32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64> {
        self.take::<8>(what).map(i64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn lsn(&mut self, what: &'static str) -> Result<Lsn> {
        self.take::<8>(what).map(|b| Lsn(u64::from_be_bytes(b)))
    }

    /// A pgoutput timestamp converted to µs since the Unix epoch.
    #[inline]
    pub(crate) fn timestamp(&mut self, what: &'static str) -> Result<i64> {
        self.i64(what).map(pg_to_unix_micros)
    }

    /// `n` raw bytes, zero-copy.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let out = self.buf.slice(self.pos..end);
                self.pos = end;
                Ok(out)
            }
            _ => Err(self.truncated(n, what)),
        }
    }

    /// Skips `n` bytes.
    #[inline]
    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                Ok(())
            }
            _ => Err(self.truncated(n, what)),
        }
    }

    /// A NUL-terminated UTF-8 string, zero-copy.
    pub(crate) fn cstr(&mut self, what: &'static str) -> Result<Str> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(Error::Truncated {
                tag: self.tag,
                offset: start,
                needed: 1,
                what,
            });
        };
        let s = self.buf.slice(start..start + len);
        self.pos = start + len + 1;
        Str::from_utf8(s).map_err(|_| Error::InvalidUtf8 {
            tag: self.tag,
            offset: start,
            what,
        })
    }

    /// Fails if bytes are left.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(Error::TrailingBytes {
                tag: self.tag,
                offset: self.pos,
                extra,
            }),
        }
    }
}
