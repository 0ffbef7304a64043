//! Calendar arithmetic and the date/time text forms Debezium writes.
//!
//! * `io.debezium.time.ZonedTimestamp`: `java.time` ISO offset date-time of
//!   the UTC instant, with exactly `p` fraction digits for `timestamptz(p)`
//!   (6 when unconstrained), e.g. `2024-05-06T05:08:09.123456Z`.
//! * `io.debezium.time.ZonedTime`: ISO offset time in UTC, fraction only when
//!   non-zero and without trailing zeros, e.g. `05:08:09Z`.
//! * `io.debezium.time.Interval`: `P<y>Y<m>M<d>DT<h>H<m>M<s>S`.
//! * `io.debezium.time.MicroDuration`: months count as 365.25/12 days.
//!
//! Infinite dates and timestamps: Debezium (pgjdbc) maps `±infinity`
//! timestamps to the sentinels [`PG_INFINITY_MICROS`] / [`PG_NEG_INFINITY_MICROS`]
//! in microsecond fields (scaled for ms, `i64::MAX/MIN` for ns) and to the
//! strings `infinity` / `-infinity` in ZonedTimestamp. We write the same
//! values and map them back to infinities when decoding, so the information
//! survives. `date` infinities become `i32::MAX` / `i32::MIN` days (Debezium's
//! own value is not meaningful there).

use std::fmt::Write as _;

use crate::value::Timestamp;

/// Micros Debezium writes for `timestamp 'infinity'` (pgjdbc's `DATE_POSITIVE_INFINITY`).
pub const PG_INFINITY_MICROS: i64 = 9_223_372_036_825_200_000;
/// Micros Debezium writes for `timestamp '-infinity'`.
pub const PG_NEG_INFINITY_MICROS: i64 = -9_223_372_036_832_400_000;

pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (`year` 0 = 1 BC).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn write_year(out: &mut String, year: i64) {
    // java.time ISO_LOCAL_DATE: 4 digits, sign when outside 0000..=9999.
    if year > 9999 {
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        let _ = write!(out, "-{:04}", -year);
    } else {
        let _ = write!(out, "{year:04}");
    }
}

/// ISO date `YYYY-MM-DD` (java.time style years).
pub fn format_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    write_year(out, y);
    let _ = write!(out, "-{m:02}-{d:02}");
}

fn write_fraction(out: &mut String, nanos: u32, width: Option<u32>) {
    match width {
        Some(w) if (1..=9).contains(&w) => {
            let digits = format!("{nanos:09}");
            out.push('.');
            out.push_str(digits.get(..w as usize).unwrap_or(&digits));
        }
        _ => {
            if nanos != 0 {
                let digits = format!("{nanos:09}");
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
        }
    }
}

/// `HH:MM:SS[.fraction]` of a time of day in micros (`width` as in
/// [`format_zoned_timestamp`]).
pub fn format_time_of_day(out: &mut String, micros: i64, width: Option<u32>) {
    let micros = micros.rem_euclid(MICROS_PER_DAY);
    let secs = micros / 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    write_fraction(out, (micros % 1_000_000) as u32 * 1000, width);
}

/// `(days since 1970-01-01, µs since midnight)` of a µs count since 1970.
fn split_days(unix_micros: i128) -> (i64, i64) {
    let day = i128::from(MICROS_PER_DAY);
    // |unix_micros| < 2^127 / day, so the day count fits an i64 for every
    // value a Timestamp can hold (and saturates beyond).
    let days = i64::try_from(unix_micros.div_euclid(day)).unwrap_or(if unix_micros < 0 {
        i64::MIN
    } else {
        i64::MAX
    });
    // rem_euclid is in 0..day, which fits an i64.
    let tod = i64::try_from(unix_micros.rem_euclid(day)).unwrap_or(0);
    (days, tod)
}

/// A UTC instant (`unix_micros` µs since 1970-01-01, an `i128` so that all of
/// PostgreSQL's range up to 294276 AD can be written; see
/// [`Timestamp::micros_since_unix_i128`]) as `java.time` formats an
/// `OffsetDateTime` at `Z`: with `width = Some(p)` (1..=9) exactly `p`
/// fraction digits, otherwise the fraction only when non-zero, trailing
/// zeros dropped.
pub fn format_zoned_timestamp(out: &mut String, unix_micros: i128, width: Option<u32>) {
    let (days, tod) = split_days(unix_micros);
    format_date(out, days);
    out.push('T');
    format_time_of_day(out, tod, width);
    out.push('Z');
}

/// A local timestamp (`unix_micros` µs since 1970-01-01 as for
/// [`format_zoned_timestamp`]) as `java.time` `LocalDateTime.toString()`-like
/// ISO text (used by `isostring` mode): fraction only when non-zero.
pub fn format_local_timestamp(out: &mut String, unix_micros: i128) {
    let (days, tod) = split_days(unix_micros);
    format_date(out, days);
    out.push('T');
    format_time_of_day(out, tod, None);
}

/// A small cursor for the date/time parsers.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c) = self.peek() {
            if !c.is_ascii_digit() || self.i - start >= max {
                break;
            }
            v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            self.i += 1;
        }
        let n = self.i - start;
        (n >= min).then_some((v, n))
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
}

fn parse_date_part(c: &mut Cur<'_>) -> Option<i64> {
    let neg = if c.eat(b'-') {
        true
    } else {
        c.eat(b'+');
        false
    };
    let (y, _) = c.digits(4, 10)?;
    let y = if neg { -y } else { y };
    if !c.eat(b'-') {
        return None;
    }
    let (m, _) = c.digits(2, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let (d, _) = c.digits(2, 2)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m as u32, d as u32))
}

fn parse_time_part(c: &mut Cur<'_>) -> Option<i64> {
    let (h, _) = c.digits(2, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    let mut frac_micros = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
        if c.eat(b'.') {
            let start = c.i;
            let (_, n) = c.digits(1, 9)?;
            let text = c.s.get(start..start + n)?;
            let mut micros: i64 = 0;
            for k in 0..6 {
                micros = micros * 10 + text.get(k).map_or(0, |d| i64::from(d - b'0'));
            }
            frac_micros = micros;
        }
    }
    if h > 24 || mi > 59 || s > 60 {
        return None;
    }
    Some(((h * 60 + mi) * 60 + s) * 1_000_000 + frac_micros)
}

fn parse_offset(c: &mut Cur<'_>) -> Option<i64> {
    if c.eat(b'Z') || c.eat(b'z') {
        return Some(0);
    }
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let (h, _) = c.digits(2, 2)?;
    let mut secs = h * 3600;
    if c.eat(b':') || c.peek().is_some_and(|b| b.is_ascii_digit()) {
        secs += c.digits(2, 2)?.0 * 60;
        if c.eat(b':') {
            secs += c.digits(2, 2)?.0;
        }
    }
    Some(sign * secs)
}

/// Parses an ISO-8601 / PostgreSQL date-time with offset
/// (`2024-05-06T05:08:09.123456Z`, `2024-05-06 07:08:09+02`) to the UTC
/// instant. `None` for malformed text, for `infinity` / `-infinity` (callers
/// handle those) and for instants a [`Timestamp`] cannot hold.
pub fn parse_zoned_timestamp(s: &str) -> Option<Timestamp> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let days = parse_date_part(&mut c)?;
    if !(c.eat(b'T') || c.eat(b' ') || c.eat(b't')) {
        return None;
    }
    let tod = parse_time_part(&mut c)?;
    let off = if c.done() { 0 } else { parse_offset(&mut c)? };
    if !c.done() {
        return None;
    }
    let unix = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(tod)
        - i128::from(off) * 1_000_000;
    Timestamp::from_unix_micros_i128(unix)
}

/// Parses a local date-time (`2024-05-06 07:08:09.123`, `2024-05-06T07:08:09`,
/// or a bare date) to a [`Timestamp`] (`None` when malformed or beyond what
/// it can hold).
pub fn parse_local_timestamp(s: &str) -> Option<Timestamp> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let days = parse_date_part(&mut c)?;
    let day_micros = i128::from(days) * i128::from(MICROS_PER_DAY);
    if c.done() {
        return Timestamp::from_unix_micros_i128(day_micros);
    }
    if !(c.eat(b'T') || c.eat(b' ')) {
        return None;
    }
    let tod = parse_time_part(&mut c)?;
    if !c.done() {
        return None;
    }
    Timestamp::from_unix_micros_i128(day_micros + i128::from(tod))
}

/// Parses `YYYY-MM-DD` to days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let d = parse_date_part(&mut c)?;
    c.done().then_some(d)
}

/// Parses `HH:MM[:SS[.f]]` to micros since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let t = parse_time_part(&mut c)?;
    c.done().then_some(t)
}

/// Parses `HH:MM[:SS[.f]](Z|±HH[:MM])` to `(local micros, offset seconds)`.
pub fn parse_time_tz(s: &str) -> Option<(i64, i32)> {
    let mut c = Cur {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let t = parse_time_part(&mut c)?;
    let off = if c.done() { 0 } else { parse_offset(&mut c)? };
    c.done().then_some((t, i32::try_from(off).ok()?))
}

/// `io.debezium.time.MicroDuration` of an interval, with Debezium's double
/// arithmetic (a month is 365.25/12 days).
pub fn interval_micro_duration(months: i32, days: i32, micros: i64) -> i64 {
    let years = months / 12;
    let months = months % 12;
    let hours = micros / 3_600_000_000;
    let minutes = micros / 60_000_000 % 60;
    let seconds = (micros % 60_000_000) as f64 / 1e6;
    let days_per_month = 365.25 / 12.0;
    let number_of_days = f64::from(years * 12 + months) * days_per_month + f64::from(days);
    let number_of_seconds =
        ((number_of_days * 24.0 + hours as f64) * 60.0 + minutes as f64) * 60.0 + seconds;
    (number_of_seconds * 1e6) as i64
}

/// `io.debezium.time.Interval` text: `P<y>Y<m>M<d>DT<h>H<min>M<s>S`.
pub fn format_interval_iso(out: &mut String, months: i32, days: i32, micros: i64) {
    let hours = micros / 3_600_000_000;
    let minutes = micros / 60_000_000 % 60;
    let sec_micros = micros % 60_000_000;
    let _ = write!(
        out,
        "P{}Y{}M{}DT{}H{}M",
        months / 12,
        months % 12,
        days,
        hours,
        minutes
    );
    let neg = sec_micros < 0;
    let abs = sec_micros.unsigned_abs();
    let whole = abs / 1_000_000;
    let frac = abs % 1_000_000;
    if neg {
        out.push('-');
    }
    let _ = write!(out, "{whole}");
    if frac != 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('S');
}

/// Parses the text of [`format_interval_iso`] back to `(months, days, micros)`.
pub fn parse_interval_iso(s: &str) -> Option<(i32, i32, i64)> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut micros: i64 = 0;
    let mut take = |part: &str, units: &[(char, u8)]| -> Option<()> {
        let mut p = part;
        while !p.is_empty() {
            let end = p.find(|c: char| c.is_ascii_alphabetic())?;
            let (num, tail) = p.split_at(end);
            let unit = tail.chars().next()?;
            p = tail.get(1..)?;
            let code = units.iter().find(|(u, _)| *u == unit)?.1;
            match code {
                0 => months += num.parse::<i64>().ok()? * 12,
                1 => months += num.parse::<i64>().ok()?,
                2 => days += num.parse::<i64>().ok()?,
                3 => micros += num.parse::<i64>().ok()? * 3_600_000_000,
                4 => micros += num.parse::<i64>().ok()? * 60_000_000,
                _ => micros += parse_seconds_micros(num)?,
            }
        }
        Some(())
    };
    take(date, &[('Y', 0), ('M', 1), ('D', 2), ('W', 2)])?;
    take(time, &[('H', 3), ('M', 4), ('S', 5)])?;
    Some((
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        micros,
    ))
}

fn parse_seconds_micros(num: &str) -> Option<i64> {
    let (neg, body) = match num.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, num),
    };
    let (w, f) = body.split_once('.').unwrap_or((body, ""));
    let whole: i64 = if w.is_empty() { 0 } else { w.parse().ok()? };
    let mut frac: i64 = 0;
    for k in 0..6 {
        let d = f.as_bytes().get(k).copied().unwrap_or(b'0');
        if !d.is_ascii_digit() {
            return None;
        }
        frac = frac * 10 + i64::from(d - b'0');
    }
    let v = whole.checked_mul(1_000_000)?.checked_add(frac)?;
    Some(if neg { -v } else { v })
}

/// Parses PostgreSQL's default interval output (`1 year 2 mons 3 days 04:05:06.5`,
/// `-1 days +02:00:00`, `00:00:00`) to `(months, days, micros)`.
pub fn parse_pg_interval(s: &str) -> Option<(i32, i32, i64)> {
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut micros: i64 = 0;
    let mut tokens = s.split_whitespace().peekable();
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            let (neg, body) = match tok.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, tok.strip_prefix('+').unwrap_or(tok)),
            };
            let mut parts = body.split(':');
            let h: i64 = parts.next()?.parse().ok()?;
            let m: i64 = parts.next()?.parse().ok()?;
            let sec = parts.next().map_or(Some(0), parse_seconds_micros)?;
            let v = (h * 60 + m) * 60_000_000 + sec;
            micros += if neg { -v } else { v };
            continue;
        }
        let n: i64 = tok.parse().ok()?;
        let unit = tokens.next()?;
        match unit.trim_end_matches('s') {
            "year" => months += n * 12,
            "mon" => months += n,
            "day" => days += n,
            "hour" => micros += n * 3_600_000_000,
            "min" => micros += n * 60_000_000,
            "sec" => micros += n * 1_000_000,
            _ => return None,
        }
    }
    Some((
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for d in [-800_000i64, -719_528, -1, 0, 1, 18_687, 19_849, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_from_civil(2024, 5, 6), 19_849);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn zoned_formats_match_debezium() {
        let mut s = String::new();
        format_zoned_timestamp(&mut s, 1_714_972_089_123_456, Some(6));
        assert_eq!(s, "2024-05-06T05:08:09.123456Z");
        s.clear();
        format_zoned_timestamp(&mut s, 946_713_599_000_000, Some(6));
        assert_eq!(s, "2000-01-01T07:59:59.000000Z");
        s.clear();
        format_time_of_day(&mut s, (5 * 3600 + 8 * 60 + 9) * 1_000_000, None);
        assert_eq!(s, "05:08:09");
        s.clear();
        format_zoned_timestamp(
            &mut s,
            i128::from(days_from_civil(-44, 3, 15) * MICROS_PER_DAY),
            None,
        );
        assert_eq!(s, "-0044-03-15T00:00:00Z");
    }

    #[test]
    fn parses() {
        let unix = |t: Option<Timestamp>| t.and_then(Timestamp::micros_since_unix);
        assert_eq!(
            unix(parse_zoned_timestamp("2024-05-06 07:08:09.123456+02")),
            Some(1_714_972_089_123_456)
        );
        assert_eq!(
            unix(parse_zoned_timestamp("2024-05-06T05:08:09.123456Z")),
            Some(1_714_972_089_123_456)
        );
        assert_eq!(
            unix(parse_local_timestamp("2024-01-15 10:30:00")),
            Some(1_705_314_600_000_000)
        );
        assert_eq!(parse_time_tz("07:08:09+02"), Some((25_689_000_000, 7200)));
        assert_eq!(
            parse_pg_interval("1 day 02:03:04.5"),
            Some((0, 1, 7_384_500_000))
        );
        assert_eq!(parse_pg_interval("1 year 2 mons"), Some((14, 0, 0)));
        assert!(parse_zoned_timestamp("nope").is_none());
    }

    #[test]
    fn postgres_whole_range_round_trips_through_text() {
        // µs since 2000-01-01 from PostgreSQL 15:
        //   SELECT ('x' || encode(timestamptz_send('<text>'), 'hex'))::bit(64)::bigint;
        for (text, pg_micros) in [
            ("+294276-12-31T23:59:59.999999Z", 9_223_371_331_199_999_999),
            ("-4713-11-24T00:00:00.000000Z", -211_813_488_000_000_000),
        ] {
            let t = parse_zoned_timestamp(text);
            assert_eq!(t, Some(Timestamp::PgMicros(pg_micros)), "{text}");
            let mut s = String::new();
            let unix = t.and_then(Timestamp::micros_since_unix_i128);
            format_zoned_timestamp(&mut s, unix.unwrap_or_default(), Some(6));
            assert_eq!(s, text);
        }
        // One µs past PostgreSQL's range still fits; beyond i64 µs since 2000 does not.
        assert_eq!(
            parse_local_timestamp("+294277-01-01T00:00:00"),
            Some(Timestamp::PgMicros(9_223_371_331_200_000_000))
        );
        assert_eq!(parse_local_timestamp("+300000-01-01T00:00:00"), None);
    }

    #[test]
    fn intervals() {
        assert_eq!(interval_micro_duration(0, 1, 7_384_500_000), 93_784_500_000);
        let mut s = String::new();
        format_interval_iso(&mut s, 14, 3, 7_384_500_000);
        assert_eq!(s, "P1Y2M3DT2H3M4.5S");
        assert_eq!(parse_interval_iso(&s), Some((14, 3, 7_384_500_000)));
        s.clear();
        format_interval_iso(&mut s, -1, 0, -1_500_000);
        assert_eq!(parse_interval_iso(&s), Some((-1, 0, -1_500_000)));
    }
}
