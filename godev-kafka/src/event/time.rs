use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// An instant with the UTC offset it was written in, as RFC 3339 text on the wire.
///
/// It formats exactly as Go's `time.Time` marshals to JSON (RFC 3339 with up to nine
/// fractional digits, trailing zeros dropped, `Z` for UTC), so Go-kit timestamps survive a
/// decode and re-encode byte for byte. It reads what Go's `time.Parse` reads for RFC 3339,
/// years 0000 to 9999 with an offset of at most ±23:59; second 60 (a leap second) is refused,
/// as Go refuses it, so everything that parses displays as text that parses to the same value.
///
/// # Examples
///
/// ```
/// use godev_kafka::event::Timestamp;
///
/// let t: Timestamp = "2024-05-01T10:20:30.123400+07:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2024-05-01T10:20:30.1234+07:00");
/// assert_eq!(t.unix_nanos(), 1_714_533_630_123_400_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    unix_nanos: i128,
    offset_seconds: i32,
}

/// Text that is not an RFC 3339 timestamp this type reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 timestamp ({why})")]
pub struct TimestampError {
    text: String,
    why: &'static str,
}

/// What a [`TimestampError`] says when the text does not have the layout at all.
const EXPECTED_LAYOUT: &str = "expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)";
/// What a [`TimestampError`] says about second 60.
const LEAP_SECOND: &str = "second 60, a leap second, is not accepted: an instant is kept as \
     Unix time, which has no leap seconds, so it could only be shown as the next minute \
     (Go's time package refuses it too)";

impl Timestamp {
    /// The current time, in UTC.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_unix_nanos(since.as_nanos() as i128)
    }

    /// The instant `nanos` after the Unix epoch, in UTC.
    pub fn from_unix_nanos(nanos: i128) -> Self {
        Self {
            unix_nanos: nanos,
            offset_seconds: 0,
        }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.unix_nanos
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.unix_nanos + i128::from(self.offset_seconds) * NANOS_PER_SEC;
        let secs = local.div_euclid(NANOS_PER_SEC) as i64;
        let nanos = local.rem_euclid(NANOS_PER_SEC) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let of_day = secs.rem_euclid(SECS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        )?;
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        if self.offset_seconds == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset_seconds < 0 { '-' } else { '+' };
            let abs = self.offset_seconds.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60)
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text).map_err(|why| TimestampError {
            text: text.to_owned(),
            why,
        })
    }
}

/// Parses RFC 3339 text; every instant it accepts is displayed as text it accepts again
/// (second 60 is refused for that reason: see [`LEAP_SECOND`]).
fn parse(text: &str) -> Result<Timestamp, &'static str> {
    parse_layout(text).ok_or(EXPECTED_LAYOUT)?
}

/// The timestamp of `text`, `Some(Err(..))` when it has the layout but a value this type
/// does not accept, `None` when it does not have the layout.
fn parse_layout(text: &str) -> Option<Result<Timestamp, &'static str>> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = fraction[..digits].parse::<i64>().ok()? * 10_i64.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let digits = |r: std::ops::Range<usize>| {
                let part = &rest[r];
                part.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| part.parse::<i32>().ok())?
            };
            let (hours, minutes) = (digits(1..3)?, digits(4..6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    if second == 60 {
        return Some(Err(LEAP_SECOND));
    }
    let local_secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    let utc_secs = i128::from(local_secs) - i128::from(offset_seconds);
    Some(Ok(Timestamp {
        unix_nanos: utc_secs * NANOS_PER_SEC + i128::from(nanos),
        offset_seconds,
    }))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
            (1_700_000_000_120_000_000, "2023-11-14T22:13:20.12Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00Z"),
        ];
        for (nanos, text) in cases {
            assert_eq!(Timestamp::from_unix_nanos(nanos).to_string(), text);
            assert_eq!(
                text.parse::<Timestamp>().unwrap().unix_nanos(),
                nanos,
                "{text}"
            );
        }
    }

    #[test]
    fn keeps_the_offset_it_was_written_in() {
        for text in ["2025-06-30T23:59:59.5-03:30", "2025-01-01T07:00:00+07:00"] {
            assert_eq!(text.parse::<Timestamp>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for text in [
            "",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-01-01 00:00:00",
            "2025-01-01T00:00:00",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+7:00",
        ] {
            assert!(text.parse::<Timestamp>().is_err(), "{text}");
        }
    }

    /// Issue #12 F3: second 60 was accepted and displayed as the next minute, here a year
    /// the parser refuses (`10000-01-01T00:00:00Z`).
    #[test]
    fn refuses_second_60_and_says_why() {
        for text in [
            "9999-12-31T23:59:60Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5+01:00",
        ] {
            let error = text.parse::<Timestamp>().unwrap_err().to_string();
            assert!(error.contains("second 60"), "{text}: {error}");
        }
        let error = "2025-01-01T00:00:60 garbage"
            .parse::<Timestamp>()
            .unwrap_err();
        assert!(error.to_string().contains("expected YYYY-MM-DD"), "{error}");
    }

    /// Re-parses the display of `text` when `text` parses; says whether it parsed.
    fn display_reparses(text: &str) -> bool {
        let Ok(parsed) = text.parse::<Timestamp>() else {
            return false;
        };
        let shown = parsed.to_string();
        let again: Timestamp = shown
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} parses, its display {shown:?} does not: {e}"));
        assert_eq!(
            again, parsed,
            "{text:?} displays as {shown:?}, another value"
        );
        assert_eq!(again.to_string(), shown, "{text:?}: display is not stable");
        true
    }

    #[test]
    fn everything_that_parses_displays_as_text_that_parses_to_the_same_value() {
        // The corners of every field, each combined with all the others.
        let mut accepted = 0;
        for year in ["0000", "0001", "1969", "1970", "2000", "2100", "9999"] {
            for month in 1..=12 {
                for day in [1, 28, 29, 30, 31] {
                    for time in ["00:00:00", "23:59:59", "23:59:60", "12:30:45"] {
                        for fraction in ["", ".5", ".000000001", ".999999999"] {
                            for offset in ["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59"] {
                                let text =
                                    format!("{year}-{month:02}-{day:02}T{time}{fraction}{offset}");
                                accepted += usize::from(display_reparses(&text));
                            }
                        }
                    }
                }
            }
        }
        // 373 real dates (53 of the 60 day numbers a year, plus 02-29 in the leap years 0000
        // and 2000) × the three times without second 60 × 4 fractions × 6 offsets.
        assert_eq!(accepted, 373 * 3 * 4 * 6);
        // Mutations of valid texts: any byte replaced by one of the bytes the layout uses.
        let seeds = [
            "9999-12-31T23:59:59.999999999-23:59",
            "0000-01-01T00:00:00+23:59",
            "2024-02-29T12:00:00Z",
        ];
        let alphabet = b"0123456789-:.+TZtz ";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200_000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            display_reparses(std::str::from_utf8(&bytes).unwrap());
        }
    }
}
