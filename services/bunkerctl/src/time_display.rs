//! Times as an operator reads them: "3m ago" beside a unit, a UTC clock on the console screen.
//!
//! systemd hands out wall-clock timestamps in µs since the Unix epoch; everything here takes
//! "now" as an argument so it is a pure function of its inputs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in µs since the Unix epoch (0 if the clock is before 1970, which no appliance is).
pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        })
}

/// How long ago `then_usec` was, in the two largest units: `45s ago`, `3m ago`, `2h 5m ago`,
/// `4d 1h ago`. `-` when there is no timestamp; `just now` for under a second and for a
/// timestamp slightly in the future (the clock was stepped after the unit started).
pub fn humanize_since(now_usec: u64, then_usec: Option<u64>) -> String {
    let Some(then_usec) = then_usec else {
        return "-".to_owned();
    };
    let seconds = now_usec.saturating_sub(then_usec) / 1_000_000;
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        0 => "just now".to_owned(),
        1..60 => format!("{seconds}s ago"),
        60..3600 => format!("{minutes}m ago"),
        3600..86_400 => match minutes % 60 {
            0 => format!("{hours}h ago"),
            rest => format!("{hours}h {rest}m ago"),
        },
        _ => match hours % 24 {
            0 => format!("{days}d ago"),
            rest => format!("{days}d {rest}h ago"),
        },
    }
}

/// How long until `then_usec`, in the two largest units: `in 45s`, `in 1h 59m`; `ended` once
/// it is past; `-` without a timestamp.
pub fn humanize_until(now_usec: u64, then_usec: Option<u64>) -> String {
    match then_usec {
        None => "-".to_owned(),
        Some(then) if then <= now_usec => "ended".to_owned(),
        // The mirror image of "ago": the same units, counted forward.
        Some(then) => match humanize_since(then, Some(now_usec)).as_str() {
            "just now" => "in under 1s".to_owned(),
            ago => format!("in {}", ago.trim_end_matches(" ago")),
        },
    }
}

/// `2026-01-01 12:00:00 UTC`: the console's clock, in UTC so every site in every city agrees.
pub fn format_utc(usec: u64) -> String {
    let seconds = usec / 1_000_000;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`,
/// restricted to dates after the epoch, which is all a timestamp from systemd can be).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_268_800_000_000; // 2026-01-01T12:00:00Z
    const SECOND: u64 = 1_000_000;

    fn ago(seconds: u64) -> String {
        humanize_since(NOW, Some(NOW - seconds * SECOND))
    }

    #[test]
    fn since_picks_the_two_largest_units() {
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(1), "1s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(60), "1m ago");
        assert_eq!(ago(3 * 60 + 59), "3m ago");
        assert_eq!(ago(3599), "59m ago");
        assert_eq!(ago(3600), "1h ago");
        assert_eq!(ago(2 * 3600 + 5 * 60 + 7), "2h 5m ago");
        assert_eq!(ago(86_399), "23h 59m ago");
        assert_eq!(ago(86_400), "1d ago");
        assert_eq!(ago(4 * 86_400 + 3600 + 42), "4d 1h ago");
        assert_eq!(ago(400 * 86_400), "400d ago");
    }

    #[test]
    fn since_without_a_timestamp_is_a_dash() {
        assert_eq!(humanize_since(NOW, None), "-");
    }

    #[test]
    fn since_in_the_future_is_just_now() {
        assert_eq!(humanize_since(NOW, Some(NOW + 30 * SECOND)), "just now");
    }

    #[test]
    fn until_counts_forward_in_the_same_units() {
        assert_eq!(humanize_until(NOW, Some(NOW + 45 * SECOND)), "in 45s");
        assert_eq!(
            humanize_until(NOW, Some(NOW + (3600 + 59 * 60 + 30) * SECOND)),
            "in 1h 59m"
        );
        assert_eq!(humanize_until(NOW, Some(NOW + 86_400 * SECOND)), "in 1d");
        assert_eq!(humanize_until(NOW, Some(NOW + SECOND / 2)), "in under 1s");
        assert_eq!(humanize_until(NOW, Some(NOW)), "ended");
        assert_eq!(humanize_until(NOW, Some(NOW - SECOND)), "ended");
        assert_eq!(humanize_until(NOW, None), "-");
    }

    #[test]
    fn utc_clock() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(NOW), "2026-01-01 12:00:00 UTC");
        assert_eq!(format_utc(951_782_400 * SECOND), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            format_utc(1_709_251_199 * SECOND + 999_999),
            "2024-02-29 23:59:59 UTC"
        );
        assert_eq!(
            format_utc(4_102_444_800 * SECOND),
            "2100-01-01 00:00:00 UTC"
        );
    }

    #[test]
    fn now_is_after_2025() {
        assert!(now_usec() > 1_735_689_600 * SECOND);
    }
}
