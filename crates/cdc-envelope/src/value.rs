//! The column value model shared by every pg-cdc crate.
//!
//! One [`Value`] per column of a row. The variants mirror what PostgreSQL can
//! put in a logical-replication tuple once typed by the column's type OID;
//! how a value is rendered on the wire (Kafka Connect JSON, Avro) is decided
//! by the converters together with the column's [`crate::PgType`] and the
//! Debezium options, never here.
//!
//! Text-like payloads are held as [`Str`], a UTF-8 checked view over
//! [`bytes::Bytes`] (validated once, on construction), so a decoder can hand
//! out slices of the replication buffer without copying.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use bytestring::ByteString;

/// An immutable UTF-8 string backed by [`Bytes`] (zero-copy slices of a
/// network buffer).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Str(ByteString);

impl Str {
    /// Wraps `bytes` after checking that they are valid UTF-8 (once: reads
    /// afterwards do not re-validate).
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Self)
    }

    /// A string from a static literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(ByteString::from_static(s))
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Consumes the string, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Self(ByteString::from(s))
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Self(ByteString::from(s))
    }
}

impl serde::Serialize for Str {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Str {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A column value.
///
/// `Null` and `Unavailable` are different things: `Unavailable` is an
/// unchanged TOASTed value that PostgreSQL did not write to the WAL (pgoutput
/// tuple kind `u`). It must travel through the pipeline as such so that the
/// sink leaves the target column untouched.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Unchanged TOASTed value, not present in the WAL record.
    Unavailable,
    /// `bool`.
    Bool(bool),
    /// `int2`.
    Int16(i16),
    /// `int4`.
    Int32(i32),
    /// `int8`, and `oid`/`xid`-like unsigned 32-bit types widened.
    Int64(i64),
    /// `float4` (NaN and ±Infinity allowed).
    Float32(f32),
    /// `float8` (NaN and ±Infinity allowed).
    Float64(f64),
    /// `numeric` / `decimal`.
    Numeric(Numeric),
    /// `money`, as a decimal amount in the currency's minor-unit scale.
    Money(Numeric),
    /// Character data: `text`, `varchar`, `bpchar`, `name`, `citext`, network
    /// address types, `tsvector`, ranges and any type passed through as text.
    Text(Str),
    /// `bytea`.
    Bytes(Bytes),
    /// `date`.
    Date(Date),
    /// `time` without time zone: microseconds since midnight (24:00:00 allowed).
    Time(i64),
    /// `timetz`: local time in microseconds since midnight and the zone offset
    /// in seconds east of UTC.
    TimeTz {
        /// Microseconds since midnight, local time.
        micros: i64,
        /// Offset in seconds east of UTC (PostgreSQL prints `+02` as 7200).
        offset_seconds: i32,
    },
    /// `timestamp` without time zone.
    Timestamp(Timestamp),
    /// `timestamptz`, normalised to UTC.
    TimestampTz(Timestamp),
    /// `interval`.
    Interval(Interval),
    /// `uuid`.
    Uuid([u8; 16]),
    /// `json` or `jsonb`, as text.
    Json(Str),
    /// `xml`, as text.
    Xml(Str),
    /// `bit(n)` / `varbit`.
    Bits(Bits),
    /// A value of an enum type (its label).
    Enum(Str),
    /// An array (any number of dimensions).
    Array(Array),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True for an unchanged TOASTed value.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Value::Unavailable)
    }
}

/// A `numeric` value, including the special values PostgreSQL allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Numeric {
    /// `NaN`.
    NaN,
    /// `Infinity` (PostgreSQL 14+).
    PosInfinity,
    /// `-Infinity` (PostgreSQL 14+).
    NegInfinity,
    /// A finite decimal.
    Finite(Decimal),
}

/// A finite decimal number of arbitrary precision, kept in canonical text
/// form: an optional `-`, at least one integer digit, and optionally `.`
/// followed by the fraction digits (`"-12.340"`). The number of fraction
/// digits is the scale, trailing zeros included, as PostgreSQL prints it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Decimal(Str);

impl Decimal {
    /// Parses a canonical decimal string. Accepts an optional leading `+`/`-`,
    /// digits, and an optional fraction; no exponent, no spaces.
    pub fn parse(text: &str) -> Option<Self> {
        Self::from_str_checked(Str::from(text))
    }

    /// Like [`Decimal::parse`] but without copying when the input is already a [`Str`].
    pub fn from_str_checked(text: Str) -> Option<Self> {
        let s = text.as_str();
        let body = s.strip_prefix(['-', '+']).unwrap_or(s);
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let int_ok = !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit());
        let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
        if !(int_ok && frac_ok) {
            return None;
        }
        if let Some(rest) = s.strip_prefix('+') {
            return Some(Self(Str::from(rest)));
        }
        Some(Self(text))
    }

    /// The decimal as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The decimal's text as bytes (ASCII), without re-checking UTF-8.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Number of digits after the decimal point.
    pub fn scale(&self) -> u32 {
        self.as_str()
            .split_once('.')
            .map_or(0, |(_, f)| f.len() as u32)
    }

    /// True if the number is negative (and not zero).
    pub fn is_negative(&self) -> bool {
        self.as_str().starts_with('-') && self.as_str().bytes().any(|b| (b'1'..=b'9').contains(&b))
    }

    /// The unscaled integer (all digits without the point) in big-endian
    /// two's-complement with the fewest bytes, as Kafka Connect's `Decimal`
    /// logical type and Avro's `decimal` encode it.
    pub fn to_unscaled_be_bytes(&self) -> Vec<u8> {
        let s = self.as_str();
        let neg = s.starts_with('-');
        // Magnitude as little-endian base-2^32 limbs.
        let mut limbs: Vec<u32> = Vec::with_capacity(s.len() / 9 + 1);
        for b in s.bytes().filter(u8::is_ascii_digit) {
            let mut carry = u64::from(b - b'0');
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * 10 + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                limbs.push(carry as u32);
            }
        }
        let mut mag: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        let first = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
        mag.drain(..first);
        if mag.is_empty() {
            return vec![0];
        }
        if !neg {
            if mag[0] & 0x80 != 0 {
                mag.insert(0, 0);
            }
            return mag;
        }
        // Two's complement of the magnitude.
        let mut out: Vec<u8> = mag.iter().map(|b| !b).collect();
        for byte in out.iter_mut().rev() {
            let (v, overflow) = byte.overflowing_add(1);
            *byte = v;
            if !overflow {
                break;
            }
        }
        if out[0] & 0x80 == 0 {
            out.insert(0, 0xff);
        }
        // Strip redundant leading 0xff bytes.
        while out.len() > 1 && out[0] == 0xff && out[1] & 0x80 != 0 {
            out.remove(0);
        }
        out
    }

    /// Builds a decimal from a big-endian two's-complement unscaled integer
    /// and a scale (the inverse of [`Decimal::to_unscaled_be_bytes`]).
    pub fn from_unscaled_be_bytes(bytes: &[u8], scale: u32) -> Self {
        let neg = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let mag: Vec<u8> = if neg {
            // Magnitude = two's complement of the value.
            let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
            for byte in m.iter_mut().rev() {
                let (v, overflow) = byte.overflowing_add(1);
                *byte = v;
                if !overflow {
                    break;
                }
            }
            m
        } else {
            bytes.to_vec()
        };
        // Convert base-256 big-endian to decimal digits via base-10^9 limbs.
        let mut limbs: Vec<u32> = Vec::new(); // little-endian base 1e9
        for &b in &mag {
            let mut carry = u64::from(b);
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * 256 + carry;
                *limb = (v % 1_000_000_000) as u32;
                carry = v / 1_000_000_000;
            }
            while carry != 0 {
                limbs.push((carry % 1_000_000_000) as u32);
                carry /= 1_000_000_000;
            }
        }
        let mut digits = String::new();
        for (i, limb) in limbs.iter().rev().enumerate() {
            if i == 0 {
                digits.push_str(&limb.to_string());
            } else {
                digits.push_str(&format!("{limb:09}"));
            }
        }
        if digits.is_empty() {
            digits.push('0');
        }
        let scale = scale as usize;
        if digits.len() <= scale {
            let pad = scale + 1 - digits.len();
            digits.insert_str(0, &"0".repeat(pad));
        }
        let mut text = String::with_capacity(digits.len() + 2);
        let is_zero = digits.bytes().all(|b| b == b'0');
        if neg && !is_zero {
            text.push('-');
        }
        let split = digits.len() - scale;
        text.push_str(&digits[..split]);
        if scale > 0 {
            text.push('.');
            text.push_str(&digits[split..]);
        }
        Self(Str::from(text))
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.as_str())
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `date`: days since 1970-01-01 in the proleptic Gregorian calendar
/// (negative before 1970, BC dates included), or an infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Date {
    /// `-infinity`.
    NegInfinity,
    /// A calendar day.
    Days(i32),
    /// `infinity`.
    PosInfinity,
}

/// A `timestamp` / `timestamptz`: microseconds since 2000-01-01T00:00:00
/// (UTC for `timestamptz`), PostgreSQL's own epoch and representation, or an
/// infinity.
///
/// Counting from 2000 rather than 1970 is what makes PostgreSQL's whole range
/// (4714-11-24 BC to 294276-12-31 AD) fit in an `i64`: microseconds since 1970
/// in an `i64` end at 294247-01-10, so the last 29 years of PostgreSQL's
/// range have no `i64` Unix-microsecond value. Use
/// [`Timestamp::micros_since_unix`] for encodings that are `int64` since 1970
/// (they must refuse such values rather than wrap), and
/// [`Timestamp::micros_since_unix_i128`] for text forms, which carry every
/// value.
///
/// ```
/// use cdc_envelope::Timestamp;
/// let t = Timestamp::from_unix_micros(1_500_000).unwrap();
/// assert_eq!(t, Timestamp::PgMicros(1_500_000 - Timestamp::PG_EPOCH_UNIX_MICROS));
/// assert_eq!(t.micros_since_unix(), Some(1_500_000));
/// // PostgreSQL's last microsecond: representable, but not as i64 µs since 1970.
/// let last = Timestamp::PgMicros(9_223_371_331_199_999_999);
/// assert_eq!(last.micros_since_unix(), None);
/// assert_eq!(last.micros_since_unix_i128(), Some(9_224_318_015_999_999_999));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timestamp {
    /// `-infinity`.
    NegInfinity,
    /// A point in time: microseconds since 2000-01-01T00:00:00 (negative
    /// before), exactly PostgreSQL's binary representation.
    PgMicros(i64),
    /// `infinity`.
    PosInfinity,
}

impl Timestamp {
    /// Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
    pub const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

    /// The timestamp `unix_micros` microseconds after 1970-01-01T00:00:00;
    /// `None` if that is before the earliest representable instant (only
    /// possible for values within 30 years of `i64::MIN`).
    pub fn from_unix_micros(unix_micros: i64) -> Option<Self> {
        unix_micros
            .checked_sub(Self::PG_EPOCH_UNIX_MICROS)
            .map(Self::PgMicros)
    }

    /// Like [`Timestamp::from_unix_micros`] for a wider count (text forms
    /// can name instants beyond `i64` microseconds since 1970).
    pub fn from_unix_micros_i128(unix_micros: i128) -> Option<Self> {
        i64::try_from(unix_micros - i128::from(Self::PG_EPOCH_UNIX_MICROS))
            .ok()
            .map(Self::PgMicros)
    }

    /// Microseconds since 1970-01-01T00:00:00; `None` for the infinities and
    /// for instants that do not fit an `i64` (after 294247-01-10T04:00:54.775807).
    pub fn micros_since_unix(self) -> Option<i64> {
        match self {
            Self::PgMicros(m) => m.checked_add(Self::PG_EPOCH_UNIX_MICROS),
            _ => None,
        }
    }

    /// Microseconds since 1970-01-01T00:00:00 as an `i128` (every finite
    /// value fits); `None` for the infinities.
    pub fn micros_since_unix_i128(self) -> Option<i128> {
        match self {
            Self::PgMicros(m) => Some(i128::from(m) + i128::from(Self::PG_EPOCH_UNIX_MICROS)),
            _ => None,
        }
    }

    /// From PostgreSQL's binary `timestamp`/`timestamptz` representation
    /// (`int8` µs since 2000-01-01; `i64::MAX` / `i64::MIN` are ±infinity).
    pub fn from_pg_binary(raw: i64) -> Self {
        match raw {
            i64::MAX => Self::PosInfinity,
            i64::MIN => Self::NegInfinity,
            m => Self::PgMicros(m),
        }
    }

    /// PostgreSQL's binary representation (the inverse of
    /// [`Timestamp::from_pg_binary`]).
    pub fn to_pg_binary(self) -> i64 {
        match self {
            Self::PosInfinity => i64::MAX,
            Self::NegInfinity => i64::MIN,
            Self::PgMicros(m) => m,
        }
    }
}

/// An `interval`, kept in PostgreSQL's own three fields (months and days do
/// not have a fixed length in microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Months (years × 12 + months).
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Microseconds (hours, minutes, seconds and fractions).
    pub micros: i64,
}

/// A `bit(n)` / `varbit` value: `len` bits packed most-significant-bit first
/// into `data` (the last byte padded with zero bits), as PostgreSQL stores them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bits {
    /// Number of bits.
    pub len: u32,
    /// Packed bits, `len.div_ceil(8)` bytes.
    pub data: Bytes,
}

/// One dimension of an array: its length and lower bound (1 unless the value
/// was written with explicit bounds such as `[0:2]={…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArrayDim {
    /// Number of elements along this dimension.
    pub len: u32,
    /// Index of the first element.
    pub lower_bound: i32,
}

/// An array value of any number of dimensions. Elements are stored flat in
/// row-major order; an empty array has no dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions, outermost first.
    pub dims: Vec<ArrayDim>,
    /// The elements (`Value::Null` for NULL elements), row-major.
    pub elements: Vec<Value>,
}

impl Array {
    /// A one-dimensional array with lower bound 1.
    pub fn one_dim(elements: Vec<Value>) -> Self {
        if elements.is_empty() {
            return Self {
                dims: Vec::new(),
                elements,
            };
        }
        Self {
            dims: vec![ArrayDim {
                len: elements.len() as u32,
                lower_bound: 1,
            }],
            elements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_unscaled_round_trip() {
        for s in [
            "0",
            "1",
            "-1",
            "127",
            "128",
            "-128",
            "-129",
            "75000.00",
            "-0.01",
            "255",
            "256",
            "123456789012345678901234567890.123456789",
        ] {
            let d = Decimal::parse(s).expect(s);
            let bytes = d.to_unscaled_be_bytes();
            let back = Decimal::from_unscaled_be_bytes(&bytes, d.scale());
            assert_eq!(back.as_str(), s, "bytes {bytes:?}");
        }
    }

    #[test]
    fn decimal_unscaled_bytes_match_java_bigdecimal() {
        // BigInteger.toByteArray() of the unscaled values.
        assert_eq!(
            Decimal::parse("75000.00").map(|d| d.to_unscaled_be_bytes()),
            Some(vec![0x72, 0x70, 0xe0])
        );
        assert_eq!(
            Decimal::parse("-1").map(|d| d.to_unscaled_be_bytes()),
            Some(vec![0xff])
        );
        assert_eq!(
            Decimal::parse("128").map(|d| d.to_unscaled_be_bytes()),
            Some(vec![0x00, 0x80])
        );
        assert_eq!(
            Decimal::parse("-128").map(|d| d.to_unscaled_be_bytes()),
            Some(vec![0x80])
        );
        assert_eq!(
            Decimal::parse("-129").map(|d| d.to_unscaled_be_bytes()),
            Some(vec![0xff, 0x7f])
        );
    }

    #[test]
    fn decimal_rejects_garbage() {
        for s in ["", "-", "1.", ".5", "1e5", "abc", "1.2.3", " 1"] {
            assert!(Decimal::parse(s).is_none(), "{s}");
        }
    }
}
