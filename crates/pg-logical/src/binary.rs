//! PostgreSQL's binary send formats of composite-ish built-in types (arrays,
//! ranges, network addresses), for pgoutput's `binary 'true'` mode.
//!
//! Layouts (`src/backend/utils/adt/*.c` `*_send`):
//!
//! ```text
//! array     int32 ndim, int32 has_nulls, uint32 element OID,
//!           ndim × (int32 length, int32 lower bound),
//!           per element: int32 length (-1 = NULL), bytes
//! range     uint8 flags (0x01 empty, 0x02 [lower, 0x04 upper], 0x08 no lower,
//!           0x10 no upper), then int32 length + bytes for each finite bound
//! inet/cidr uint8 family (2 = IPv4, 3 = IPv6), uint8 prefix bits,
//!           uint8 is_cidr, uint8 address length (4 / 16), address bytes
//! macaddr   6 bytes            macaddr8  8 bytes
//! ```
//!
//! Ranges and network addresses are carried as [`Value::Text`] in exactly the
//! text PostgreSQL prints for them (with the source's pinned `DateStyle=ISO`
//! and `TimeZone=UTC`), so text and binary tuples decode to the same value.

use std::fmt::Write as _;

use bytes::Bytes;
use cdc_envelope::temporal::civil_from_days;
use cdc_envelope::{Array, ArrayDim, Value};

use crate::pgtype::ValueError;

/// PostgreSQL's `MAXDIM`.
const MAX_DIMS: i32 = 6;

/// A bounds-checked reader over a binary value.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ValueError> {
        let data: &'a Bytes = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                ValueError::Invalid(format!("{what}: need {n} byte(s) at byte {}", self.pos))
            })?;
        let out = data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self, what: &str) -> Result<i32, ValueError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes(b.try_into().map_err(|_| "short read")?))
    }

    fn u8(&mut self, what: &str) -> Result<u8, ValueError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }

    /// An `int32 length` + bytes field as a zero-copy slice; `None` for -1 (NULL).
    fn field(&mut self, what: &str) -> Result<Option<Bytes>, ValueError> {
        let len = self.i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| ValueError::Invalid(format!("{what}: negative length {len}")))?;
        let start = self.pos;
        self.take(len, what)?;
        Ok(Some(self.data.slice(start..start + len)))
    }

    fn finish(&self, what: &str) -> Result<(), ValueError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(ValueError::Invalid(format!(
                "{what}: {} trailing byte(s)",
                self.data.len() - self.pos
            )))
        }
    }
}

/// `array_send` format; `elem(element OID, bytes)` converts each non-NULL element.
pub(crate) fn array(
    data: &Bytes,
    elem: impl Fn(u32, &Bytes) -> Result<Value, ValueError>,
) -> Result<Array, ValueError> {
    let mut r = Reader { data, pos: 0 };
    let ndim = r.i32("array dimensions")?;
    if !(0..=MAX_DIMS).contains(&ndim) {
        return Err(ValueError::Invalid(format!(
            "array has {ndim} dimensions (0 to {MAX_DIMS} allowed)"
        )));
    }
    let flags = r.i32("array flags")?;
    if flags != 0 && flags != 1 {
        return Err(ValueError::Invalid(format!("invalid array flags {flags}")));
    }
    let elem_oid = r.i32("array element type")? as u32;
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut total: usize = 1;
    for _ in 0..ndim {
        let len = r.i32("array dimension length")?;
        let lower_bound = r.i32("array lower bound")?;
        let len = u32::try_from(len)
            .map_err(|_| ValueError::Invalid(format!("negative array dimension {len}")))?;
        total = total.checked_mul(len as usize).ok_or("array too large")?;
        dims.push(ArrayDim { len, lower_bound });
    }
    if ndim == 0 || total == 0 {
        r.finish("array")?;
        return Ok(Array {
            dims: Vec::new(),
            elements: Vec::new(),
        });
    }
    // Every element takes at least its 4-byte length: refuse counts the
    // data cannot hold before allocating for them.
    if total > (data.len() - r.pos) / 4 {
        return Err(ValueError::Invalid(format!(
            "array claims {total} elements in {} bytes",
            data.len() - r.pos
        )));
    }
    let mut elements = Vec::with_capacity(total);
    for _ in 0..total {
        elements.push(match r.field("array element")? {
            None => Value::Null,
            Some(b) => elem(elem_oid, &b)?,
        });
    }
    r.finish("array")?;
    Ok(Array { dims, elements })
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// `range_send` format to `range_out` text; `bound(bytes)` renders one bound
/// as the subtype's text output.
pub(crate) fn range_text(
    data: &Bytes,
    bound: impl Fn(&Bytes) -> Result<String, ValueError>,
) -> Result<String, ValueError> {
    let mut r = Reader { data, pos: 0 };
    let flags = r.u8("range flags")?;
    if flags & RANGE_EMPTY != 0 {
        r.finish("range")?;
        return Ok("empty".into());
    }
    let mut out = String::new();
    out.push(if flags & RANGE_LB_INC != 0 { '[' } else { '(' });
    if flags & RANGE_LB_INF == 0 {
        let b = r.field("range lower bound")?.ok_or("NULL range bound")?;
        push_range_bound(&mut out, &bound(&b)?);
    }
    out.push(',');
    if flags & RANGE_UB_INF == 0 {
        let b = r.field("range upper bound")?.ok_or("NULL range bound")?;
        push_range_bound(&mut out, &bound(&b)?);
    }
    out.push(if flags & RANGE_UB_INC != 0 { ']' } else { ')' });
    r.finish("range")?;
    Ok(out)
}

/// `range_bound_escape`: quoted when empty or holding `"\()[],` or
/// white space, with `"` and `\` doubled inside the quotes.
fn push_range_bound(out: &mut String, s: &str) {
    let quote = s.is_empty()
        || s.chars().any(|c| {
            matches!(c, '"' | '\\' | '(' | ')' | '[' | ']' | ',') || c.is_ascii_whitespace()
        });
    if !quote {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('"');
}

/// `date_out` (ISO) of the binary `date` (days since 2000-01-01).
pub(crate) fn date_text(days_since_2000: i32) -> String {
    match days_since_2000 {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => {
            let mut s = String::with_capacity(16);
            let bc = push_ymd(&mut s, i64::from(d) + PG_EPOCH_DAYS);
            if bc {
                s.push_str(" BC");
            }
            s
        }
    }
}

/// `timestamp_out` / `timestamptz_out` (ISO, UTC) of the binary value (µs
/// since 2000-01-01).
pub(crate) fn timestamp_text(pg_micros: i64, with_zone: bool) -> String {
    match pg_micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    const DAY: i64 = 86_400_000_000;
    let days = pg_micros.div_euclid(DAY) + PG_EPOCH_DAYS;
    let tod = pg_micros.rem_euclid(DAY);
    let mut s = String::with_capacity(32);
    let bc = push_ymd(&mut s, days);
    let secs = tod / 1_000_000;
    let _ = write!(
        s,
        " {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let frac = tod % 1_000_000;
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    if with_zone {
        s.push_str("+00");
    }
    if bc {
        s.push_str(" BC");
    }
    s
}

const PG_EPOCH_DAYS: i64 = 10_957;

/// `YYYY-MM-DD` of days since 1970 with PostgreSQL's year numbering (no
/// year 0: astronomical year 0 is 1 BC); returns true for BC.
fn push_ymd(s: &mut String, days_since_1970: i64) -> bool {
    let (y, m, d) = civil_from_days(days_since_1970);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    let _ = write!(s, "{year:04}-{m:02}-{d:02}");
    bc
}

/// `inet_send` / `cidr_send` format to `inet_out` / `cidr_out` text.
pub(crate) fn inet_text(data: &Bytes) -> Result<String, ValueError> {
    let mut r = Reader { data, pos: 0 };
    let family = r.u8("inet family")?;
    let bits = r.u8("inet prefix length")?;
    let is_cidr = r.u8("inet is_cidr")?;
    let len = r.u8("inet address length")?;
    let (max_bits, want_len) = match family {
        2 => (32, 4),
        3 => (128, 16),
        f => return Err(ValueError::Invalid(format!("invalid inet family {f}"))),
    };
    if usize::from(len) != want_len || bits > max_bits || is_cidr > 1 {
        return Err("invalid inet value".into());
    }
    let addr = r.take(want_len, "inet address")?;
    r.finish("inet")?;
    let mut s = String::with_capacity(48);
    if family == 2 {
        let _ = write!(s, "{}.{}.{}.{}", addr[0], addr[1], addr[2], addr[3]);
    } else {
        push_ipv6(&mut s, addr);
    }
    // The prefix is printed unless it covers the whole address; cidr always
    // shows it.
    if bits != max_bits || is_cidr == 1 {
        let _ = write!(s, "/{bits}");
    }
    Ok(s)
}

/// IPv6 as PostgreSQL's `inet_net_ntop` (from BIND) prints it: lowercase hex
/// words without leading zeros, the first longest run of at least two zero
/// words as `::`, and the last 32 bits as dotted IPv4 for `::a.b.c.d` and
/// `::ffff:a.b.c.d`.
fn push_ipv6(s: &mut String, addr: &[u8]) {
    let words: Vec<u16> = addr
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    let n = words.len();
    // The first longest run of zero words, if at least two long.
    let (mut best, mut best_len) = (None, 0usize);
    let mut i = 0;
    while i < n {
        if words[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && words[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best, best_len) = (Some(start), i - start);
        }
    }
    if best_len < 2 {
        best = None;
    }
    for (i, w) in words.iter().enumerate() {
        if let Some(b) = best {
            if (b..b + best_len).contains(&i) {
                if i == b {
                    s.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            s.push(':');
        }
        let ipv4 =
            best == Some(0) && (best_len == 6 || (best_len == 5 && words.get(5) == Some(&0xffff)));
        if i == 6 && ipv4 {
            if let [a, b, c, d] = addr.get(12..16).unwrap_or_default() {
                let _ = write!(s, "{a}.{b}.{c}.{d}");
            }
            return;
        }
        let _ = write!(s, "{w:x}");
    }
    if best.is_some_and(|b| b + best_len == n) {
        s.push(':');
    }
}

/// `macaddr_send` (6 bytes) / `macaddr8_send` (8 bytes) to their text.
pub(crate) fn macaddr_text(data: &Bytes, len: usize) -> Result<String, ValueError> {
    if data.len() != len {
        return Err(ValueError::Invalid(format!(
            "expected {len} bytes, got {}",
            data.len()
        )));
    }
    let mut s = String::with_capacity(len * 3);
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_an_error() {
        let b = |v: &[u8]| Bytes::copy_from_slice(v);
        let elem = |_: u32, _: &Bytes| Ok(Value::Null);
        // Huge element counts in a tiny buffer.
        let mut huge = vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23];
        huge.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        huge.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        assert!(array(&b(&huge), elem).is_err());
        assert!(array(&b(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 23]), elem).is_err());
        assert!(array(&b(&[0, 0, 0]), elem).is_err());
        assert!(range_text(&b(&[0x02]), |_| Ok(String::new())).is_err());
        assert!(inet_text(&b(&[2, 33, 0, 4, 1, 2, 3, 4])).is_err());
        assert!(inet_text(&b(&[2, 32, 0, 4, 1, 2, 3])).is_err());
        assert!(macaddr_text(&b(&[1, 2, 3]), 6).is_err());
    }
}
