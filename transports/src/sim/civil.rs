//! Civil (proleptic Gregorian) date-times as nanoseconds since the Unix
//! epoch, for trace timestamps, without a date-time library: Howard
//! Hinnant's `days_from_civil` ("chrono-Compatible Low-Level Date
//! Algorithms", 2013) and a strict parser.

/// `YYYY-MM-DD HH:MM:SS[.f…]` (or a `T` between date and time, 0 to 9
/// fractional digits) as nanoseconds since 1970-01-01 00:00:00.
pub(crate) fn parse_datetime(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0_i64, |n, &c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b" T") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = match b.get(19..)? {
        [] => &[][..],
        [b'.', f @ ..] if f.len() <= 9 && f.iter().all(u8::is_ascii_digit) => f,
        _ => return None,
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let nanos = frac
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(9)
        .fold(0_i64, |n, &c| n * 10 + i64::from(c - b'0'));
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + sec;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (Howard
/// Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_count_days_from_the_epoch() {
        for (y, m, d, days) in [
            (1970, 1, 1, 0),
            (1969, 12, 31, -1),
            (2000, 2, 29, 11_016),
            (2000, 3, 1, 11_017),
            (2023, 11, 16, 19_677),
            (1600, 1, 1, -135_140),
            (9999, 12, 31, 2_932_896),
        ] {
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn date_times_parse_with_any_fraction_and_reject_nonsense() {
        let base = i128::from(days_from_civil(2023, 11, 16)) * 86_400_000_000_000;
        let at = |h: i128, m: i128, s: i128, ns: i128| {
            base + ((h * 60 + m) * 60 + s) * 1_000_000_000 + ns
        };
        let ok = [
            ("2023-11-16 18:15:46.6805900", at(18, 15, 46, 680_590_000)),
            ("2023-11-16 18:15:46", at(18, 15, 46, 0)),
            ("2023-11-16T00:00:00.", at(0, 0, 0, 0)),
            ("2023-11-16 23:59:59.123456789", at(23, 59, 59, 123_456_789)),
            ("2023-11-16 00:00:00.5", at(0, 0, 0, 500_000_000)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_datetime(s), Some(want), "{s}");
        }
        for bad in [
            "",
            "2023-11-16",
            "2023-11-16 18:15",
            "2023/11/16 18:15:46",
            "2023-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2023-04-31 00:00:00",
            "2023-11-00 00:00:00",
            "2023-11-16 24:00:00",
            "2023-11-16 18:60:00",
            "2023-11-16 18:15:60",
            "2023-11-16 18:15:46.1234567890",
            "2023-11-16 18:15:46.12a",
            "2023-11-16 18:15:46Z",
            "+023-11-16 18:15:46",
            "2023-1x-16 18:15:46",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert!(parse_datetime("2024-02-29 00:00:00").is_some());
        assert!(parse_datetime("2000-02-29 00:00:00").is_some());
        assert!(parse_datetime("1900-02-29 00:00:00").is_none());
    }
}
