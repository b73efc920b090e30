//! What `bunkerctl site` commands take beyond plain words: how long a silence lasts (`30m`,
//! `2h`, `1d`, `1h30m`) and name patterns where `*` matches any run of characters, the same
//! pattern language sited's `Silence` takes.

use std::fmt;

/// The shortest silence sited takes.
const MIN_SECONDS: u64 = 1;
/// The longest silence sited takes: 30 days.
const MAX_SECONDS: u64 = 30 * 86_400;

/// How long a silence lasts, 1 s to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceDuration {
    seconds: u64,
}

/// Why a `--for` value is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("a duration is a number and a unit: 45s, 30m, 2h, 1d (or 1h30m)")]
    Malformed,
    #[error("`{0}` is not a unit: use s, m, h or d")]
    UnknownUnit(char),
    #[error("a silence lasts from 1 s to 30 days")]
    OutOfRange,
}

impl SilenceDuration {
    /// Reads `45s`, `30m`, `2h`, `1d` or several of them in a row (`1h30m`).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let mut seconds: u64 = 0;
        let mut digits = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.is_empty() {
                return Err(DurationError::Malformed);
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                other if other.is_alphabetic() => return Err(DurationError::UnknownUnit(other)),
                _ => return Err(DurationError::Malformed),
            };
            // More digits than fit are far beyond 30 days.
            let count: u64 = digits.parse().map_err(|_| DurationError::OutOfRange)?;
            seconds = count
                .checked_mul(unit)
                .and_then(|part| seconds.checked_add(part))
                .ok_or(DurationError::OutOfRange)?;
            digits.clear();
        }
        if !digits.is_empty() || text.trim().is_empty() {
            return Err(DurationError::Malformed);
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            return Err(DurationError::OutOfRange);
        }
        Ok(Self { seconds })
    }

    /// The duration in seconds, as sited's `Silence` takes it.
    pub fn seconds(self) -> u64 {
        self.seconds
    }
}

impl fmt::Display for SilenceDuration {
    /// The largest units first, zero parts left out: `2h`, `1h 30m`, `1d 2h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.seconds / 86_400, "d"),
            (self.seconds % 86_400 / 3600, "h"),
            (self.seconds % 3600 / 60, "m"),
            (self.seconds % 60, "s"),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(count, _)| *count > 0)
            .map(|(count, unit)| format!("{count}{unit}"))
            .collect();
        f.write_str(&shown.join(" "))
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included)
/// and every other character only itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // Without a `*` there is one part, which must be the whole name.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, between)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in between {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Result<u64, DurationError> {
        SilenceDuration::parse(text).map(SilenceDuration::seconds)
    }

    #[test]
    fn durations_read_in_the_operators_units() {
        assert_eq!(seconds("45s"), Ok(45));
        assert_eq!(seconds("30m"), Ok(1800));
        assert_eq!(seconds("2h"), Ok(7200));
        assert_eq!(seconds("1d"), Ok(86_400));
        assert_eq!(seconds("1h30m"), Ok(5400));
        assert_eq!(seconds("1d2h3m4s"), Ok(93_784));
        assert_eq!(seconds(" 90m "), Ok(5400));
    }

    #[test]
    fn durations_are_bounded_by_what_sited_takes() {
        assert_eq!(seconds("1s"), Ok(1));
        assert_eq!(seconds("30d"), Ok(2_592_000));
        assert_eq!(seconds("0s"), Err(DurationError::OutOfRange));
        assert_eq!(seconds("0m"), Err(DurationError::OutOfRange));
        assert_eq!(seconds("31d"), Err(DurationError::OutOfRange));
        assert_eq!(seconds("29d25h"), Err(DurationError::OutOfRange));
        assert_eq!(
            seconds("99999999999999999999999d"),
            Err(DurationError::OutOfRange)
        );
        assert_eq!(
            seconds("9999999999999999d"),
            Err(DurationError::OutOfRange),
            "overflow on multiplication is out of range, not a panic"
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_sentence() {
        for malformed in ["", "30", "m", "h2", "1.5h", "-1h", "2 h", "1h-", "1h30"] {
            assert_eq!(
                seconds(malformed),
                Err(DurationError::Malformed),
                "{malformed:?}"
            );
        }
        assert_eq!(seconds("2w"), Err(DurationError::UnknownUnit('w')));
        assert_eq!(seconds("10M"), Err(DurationError::UnknownUnit('M')));
        assert_eq!(
            DurationError::UnknownUnit('w').to_string(),
            "`w` is not a unit: use s, m, h or d"
        );
    }

    #[test]
    fn durations_show_their_largest_units_first() {
        let shown = |text: &str| SilenceDuration::parse(text).unwrap().to_string();
        assert_eq!(shown("2h"), "2h");
        assert_eq!(shown("90m"), "1h 30m");
        assert_eq!(shown("1d"), "1d");
        assert_eq!(shown("26h"), "1d 2h");
        assert_eq!(shown("61s"), "1m 1s");
    }

    #[test]
    fn globs_match_any_run_of_characters_at_the_star() {
        assert!(glob_matches("hall-a.*", "hall-a.door-1.open"));
        assert!(glob_matches("*.open", "hall-a.door-1.open"));
        assert!(glob_matches("*door*", "hall-a.door-1.open"));
        assert!(glob_matches("hall-*.door-*.open", "hall-a.door-1.open"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("ups-1.charge", "ups-1.charge"));
        assert!(glob_matches("ups-1*", "ups-1"));
        assert!(glob_matches("a*a", "aa"));
        assert!(!glob_matches("a*a", "a"));
        assert!(!glob_matches("ups-1", "ups-1.charge"));
        assert!(!glob_matches("*.open", "hall-a.door-1.opened"));
        assert!(!glob_matches("hall-b.*", "hall-a.door-1.open"));
        assert!(!glob_matches("*door*lock", "door-1.open"));
        assert!(
            !glob_matches("ups?", "ups1"),
            "only `*` is special, as in sited's patterns"
        );
    }
}
