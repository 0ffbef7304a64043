//! Parsers for PostgreSQL's text output of dates, times and intervals
//! (`DateStyle=ISO`, `IntervalStyle=postgres`), and the calendar arithmetic
//! behind them.

use cdc_envelope::{Date, Interval, Timestamp};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year:
/// 1 BC is year 0); the same calendar the converters use.
pub(crate) use cdc_envelope::temporal::days_from_civil;

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// A byte cursor for the small text grammars below.
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Self { s, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected '{}' at position {}", b as char, self.pos))
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// One or more ASCII digits as an unsigned number (at most 18 digits).
    pub(crate) fn digits(&mut self) -> Result<(u64, usize), String> {
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(b) = self.peek() {
            if !b.is_ascii_digit() {
                break;
            }
            if self.pos - start >= 18 {
                return Err("number too long".into());
            }
            v = v * 10 + u64::from(b - b'0');
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected a digit at position {start}"));
        }
        Ok((v, self.pos - start))
    }

    fn two_digits(&mut self) -> Result<u32, String> {
        let (v, n) = self.digits()?;
        if n != 2 {
            return Err(format!("expected two digits before position {}", self.pos));
        }
        Ok(v as u32)
    }

    /// `.ffffff` (1–6 digits) as microseconds; 0 when absent.
    fn fraction(&mut self) -> Result<i64, String> {
        if !self.eat(b'.') {
            return Ok(0);
        }
        let (v, n) = self.digits()?;
        if n > 6 {
            return Err("more than 6 fractional digits".into());
        }
        Ok(v as i64 * 10i64.pow(6 - n as u32))
    }
}

/// `YYYY-MM-DD` (year of 4+ digits) → (astronomical year unadjusted for BC, month, day).
fn ymd(c: &mut Cursor<'_>) -> Result<(i64, u32, u32), String> {
    let (year, n) = c.digits()?;
    // PostgreSQL's dates end in 5874897 AD; more digits would overflow the
    // calendar arithmetic.
    if !(4..=7).contains(&n) {
        return Err("year needs 4 to 7 digits".into());
    }
    c.expect(b'-')?;
    let month = c.two_digits()?;
    c.expect(b'-')?;
    let day = c.two_digits()?;
    Ok((year as i64, month, day))
}

fn civil_days(year: i64, month: u32, day: u32, bc: bool) -> Result<i64, String> {
    if year == 0 {
        return Err("year 0 does not exist".into());
    }
    let astro = if bc { 1 - year } else { year };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(astro, month) {
        return Err(format!("date out of range: {year:04}-{month:02}-{day:02}"));
    }
    Ok(days_from_civil(astro, month, day))
}

fn strip_bc(s: &[u8]) -> (&[u8], bool) {
    match s.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

/// `date` text.
pub(crate) fn parse_date(s: &[u8]) -> Result<Date, String> {
    match s {
        b"infinity" => return Ok(Date::PosInfinity),
        b"-infinity" => return Ok(Date::NegInfinity),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    let mut c = Cursor::new(s);
    let (y, m, d) = ymd(&mut c)?;
    if !c.at_end() {
        return Err(format!("unexpected text at position {}", c.pos));
    }
    let days = civil_days(y, m, d, bc)?;
    i32::try_from(days)
        .map(Date::Days)
        .map_err(|_| "date out of range".into())
}

/// `HH:MM:SS[.ffffff]` → µs since midnight (hours may exceed 24 only when `wide`).
fn hms(c: &mut Cursor<'_>, wide: bool) -> Result<i64, String> {
    let (h, hn) = c.digits()?;
    if !wide && (hn != 2 || h > 24) {
        return Err("hour out of range".into());
    }
    c.expect(b':')?;
    let m = c.two_digits()?;
    c.expect(b':')?;
    let s = c.two_digits()?;
    if m > 59 || s > 60 {
        return Err("minute or second out of range".into());
    }
    let frac = c.fraction()?;
    let total = (h as i64)
        .checked_mul(3_600 * MICROS_PER_SECOND)
        .and_then(|v| v.checked_add((i64::from(m) * 60 + i64::from(s)) * MICROS_PER_SECOND + frac))
        .ok_or("time out of range")?;
    if !wide && total > MICROS_PER_DAY {
        return Err("time out of range".into());
    }
    Ok(total)
}

/// `time` text.
pub(crate) fn parse_time(s: &[u8]) -> Result<i64, String> {
    let mut c = Cursor::new(s);
    let t = hms(&mut c, false)?;
    if !c.at_end() {
        return Err(format!("unexpected text at position {}", c.pos));
    }
    Ok(t)
}

/// Zone offset `+HH[:MM[:SS]]` / `-HH…` → seconds east of UTC.
fn zone(c: &mut Cursor<'_>) -> Result<i32, String> {
    let neg = match c.peek() {
        Some(b'+') => false,
        Some(b'-') => true,
        _ => return Err(format!("expected a time zone offset at position {}", c.pos)),
    };
    c.pos += 1;
    let h = c.two_digits()?;
    let mut secs = h * 3600;
    if c.eat(b':') {
        secs += c.two_digits()? * 60;
        if c.eat(b':') {
            secs += c.two_digits()?;
        }
    }
    if secs > 16 * 3600 {
        return Err("time zone offset out of range".into());
    }
    let secs = secs as i32;
    Ok(if neg { -secs } else { secs })
}

/// `timetz` text → (µs since midnight local, offset seconds east of UTC).
pub(crate) fn parse_timetz(s: &[u8]) -> Result<(i64, i32), String> {
    let mut c = Cursor::new(s);
    let t = hms(&mut c, false)?;
    let z = zone(&mut c)?;
    if !c.at_end() {
        return Err(format!("unexpected text at position {}", c.pos));
    }
    Ok((t, z))
}

/// `timestamp` (`with_zone = false`) or `timestamptz` text → a [`Timestamp`]
/// (UTC for timestamptz). PostgreSQL's whole range, 4714-11-24 BC to
/// 294276-12-31 AD, is accepted.
pub(crate) fn parse_timestamp(s: &[u8], with_zone: bool) -> Result<Timestamp, String> {
    match s {
        b"infinity" => return Ok(Timestamp::PosInfinity),
        b"-infinity" => return Ok(Timestamp::NegInfinity),
        _ => {}
    }
    let (s, bc) = strip_bc(s);
    let mut c = Cursor::new(s);
    let (y, m, d) = ymd(&mut c)?;
    if !(c.eat(b' ') || c.eat(b'T')) {
        return Err(format!("expected ' ' at position {}", c.pos));
    }
    let t = hms(&mut c, false)?;
    let offset = if with_zone { zone(&mut c)? } else { 0 };
    if !c.at_end() {
        return Err(format!("unexpected text at position {}", c.pos));
    }
    let days = civil_days(y, m, d, bc)?;
    // The year has at most 7 digits, so this cannot overflow an i128.
    let unix = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(t)
        - i128::from(offset) * i128::from(MICROS_PER_SECOND);
    Timestamp::from_unix_micros_i128(unix).ok_or_else(|| "timestamp out of range".into())
}

/// `interval` text in `IntervalStyle=postgres`
/// (`1 year 2 mons -3 days +04:05:06.789`).
pub(crate) fn parse_interval(s: &[u8]) -> Result<Interval, String> {
    let mut iv = Interval::default();
    let mut c = Cursor::new(s);
    let mut seen_time = false;
    loop {
        while c.eat(b' ') {}
        if c.at_end() {
            break;
        }
        let neg = if c.eat(b'-') {
            true
        } else {
            c.eat(b'+');
            false
        };
        let start = c.pos;
        let (n, _) = c.digits()?;
        if c.peek() == Some(b':') {
            // The time part.
            if seen_time {
                return Err("two time parts".into());
            }
            seen_time = true;
            c.pos = start;
            let t = hms(&mut c, true)?;
            iv.micros = if neg { -t } else { t };
            continue;
        }
        let n = i64::try_from(n).map_err(|_| "interval field out of range")?;
        let n = if neg { -n } else { n };
        if !c.eat(b' ') {
            return Err(format!("expected a unit at position {}", c.pos));
        }
        let unit_start = c.pos;
        while c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            c.pos += 1;
        }
        let unit = s.get(unit_start..c.pos).unwrap_or_default();
        let field =
            |v: i64| i32::try_from(v).map_err(|_| "interval field out of range".to_string());
        match unit {
            b"year" | b"years" => {
                iv.months = iv
                    .months
                    .checked_add(field(
                        n.checked_mul(12).ok_or("interval field out of range")?,
                    )?)
                    .ok_or("interval field out of range")?
            }
            b"mon" | b"mons" => {
                iv.months = iv
                    .months
                    .checked_add(field(n)?)
                    .ok_or("interval field out of range")?
            }
            b"day" | b"days" => {
                iv.days = iv
                    .days
                    .checked_add(field(n)?)
                    .ok_or("interval field out of range")?
            }
            other => {
                return Err(format!(
                    "unknown interval unit {:?}",
                    String::from_utf8_lossy(other)
                ))
            }
        }
    }
    Ok(iv)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_known_points() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // 0044-03-15 BC is astronomical year -43.
        assert_eq!(
            parse_date(b"0044-03-15 BC"),
            Ok(Date::Days(days_from_civil(-43, 3, 15) as i32))
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(b"2024-02-29"), Ok(Date::Days(19_782)));
        assert_eq!(parse_date(b"infinity"), Ok(Date::PosInfinity));
        assert_eq!(parse_date(b"-infinity"), Ok(Date::NegInfinity));
        assert!(parse_date(b"2023-02-29").is_err());
        assert!(parse_date(b"0000-01-01").is_err());
        assert!(parse_date(b"2024-1-01").is_err());
        assert!(parse_date(b"").is_err());
        assert_eq!(parse_date(b"5874897-12-31"), Ok(Date::Days(2_145_042_905))); // PostgreSQL 15: date - date
        assert!(parse_date(b"999999999999999999-01-01").is_err());
        assert!(parse_timestamp(b"999999999999999999-01-01 00:00:00", false).is_err());
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time(b"04:05:06.789"),
            Ok(((4 * 60 + 5) * 60 + 6) * 1_000_000 + 789_000)
        );
        assert_eq!(parse_time(b"24:00:00"), Ok(86_400_000_000));
        assert!(parse_time(b"24:00:01").is_err());
        assert_eq!(parse_timetz(b"12:00:00+02"), Ok((43_200_000_000, 7200)));
        assert_eq!(
            parse_timetz(b"12:00:00-03:30"),
            Ok((43_200_000_000, -12_600))
        );
    }

    fn unix(t: Result<Timestamp, String>) -> Option<i64> {
        t.ok().and_then(Timestamp::micros_since_unix)
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            unix(parse_timestamp(b"1970-01-01 00:00:01.5", false)),
            Some(1_500_000)
        );
        assert_eq!(
            unix(parse_timestamp(b"1970-01-01 02:00:00+02", true)),
            Some(0)
        );
        assert_eq!(
            unix(parse_timestamp(b"1970-01-01 00:00:00-00:30", true)),
            Some(1_800_000_000)
        );
        assert_eq!(
            parse_timestamp(b"infinity", true),
            Ok(Timestamp::PosInfinity)
        );
        // PostgreSQL's whole range, 4714-11-24 BC .. 294276-12-31 AD, is
        // carried. Expected values are PostgreSQL 15's binary send format
        // (µs since 2000-01-01), from
        //   SELECT ('x' || encode(timestamp_send('<text>'::timestamp), 'hex'))::bit(64)::bigint;
        // (extract(epoch …) is no reference here: past i64 µs since 1970
        // PostgreSQL computes it in float8 and rounds.)
        assert_eq!(
            parse_timestamp(b"294276-12-31 23:59:59.999999", false),
            Ok(Timestamp::PgMicros(9_223_371_331_199_999_999))
        );
        assert_eq!(
            parse_timestamp(b"294276-12-31 23:59:59.999999+00", true),
            Ok(Timestamp::PgMicros(9_223_371_331_199_999_999))
        );
        assert_eq!(
            parse_timestamp(b"4714-11-24 00:00:00 BC", false),
            Ok(Timestamp::PgMicros(-211_813_488_000_000_000))
        );
        // The last µs an i64 count since 1970 can hold, and the next one.
        let edge = parse_timestamp(b"294247-01-10 04:00:54.775807", false).unwrap();
        assert_eq!(edge.micros_since_unix(), Some(i64::MAX));
        let past = parse_timestamp(b"294247-01-10 04:00:54.775808", false).unwrap();
        assert_eq!(past.micros_since_unix(), None);
        assert_eq!(
            past.micros_since_unix_i128(),
            Some(i128::from(i64::MAX) + 1)
        );
        assert_eq!(parse_date(b"294276-12-31"), Ok(Date::Days(106_762_939))); // from PostgreSQL 15: date - date
        assert_eq!(parse_date(b"4714-11-24 BC"), Ok(Date::Days(-2_440_588)));
    }

    #[test]
    fn intervals() {
        assert_eq!(
            parse_interval(b"1 year 2 mons 3 days 04:05:06.789"),
            Ok(Interval {
                months: 14,
                days: 3,
                micros: 14_706_789_000
            })
        );
        assert_eq!(
            parse_interval(b"-1 years -2 mons +3 days -04:05:06.789"),
            Ok(Interval {
                months: -14,
                days: 3,
                micros: -14_706_789_000
            })
        );
        assert_eq!(parse_interval(b"00:00:00"), Ok(Interval::default()));
        assert_eq!(
            parse_interval(b"1 day"),
            Ok(Interval {
                months: 0,
                days: 1,
                micros: 0
            })
        );
        assert_eq!(
            parse_interval(b"100:00:00"),
            Ok(Interval {
                months: 0,
                days: 0,
                micros: 360_000_000_000
            })
        );
        assert!(parse_interval(b"1 fortnight").is_err());
    }
}
