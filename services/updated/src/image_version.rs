//! The BunkerOS image version a release carries ("0.2.0"), ordered so a downgrade is visible.

use std::fmt;
use std::str::FromStr;

/// `MAJOR.MINOR.PATCH` of a BunkerOS image; compared numerically, field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

/// A version string that is not three dot-separated decimal numbers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("image version {0:?} is not MAJOR.MINOR.PATCH with decimal numbers")]
pub struct BadImageVersion(pub String);

impl ImageVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> ImageVersion {
        ImageVersion {
            major,
            minor,
            patch,
        }
    }
}

impl FromStr for ImageVersion {
    type Err = BadImageVersion;

    fn from_str(text: &str) -> Result<ImageVersion, BadImageVersion> {
        let bad = || BadImageVersion(text.to_owned());
        let mut fields = text.split('.').map(|field| {
            // `u64::from_str` takes a leading '+'; a version field must be digits only
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            field.parse::<u64>().map_err(|_| bad())
        });
        let version = ImageVersion {
            major: fields.next().ok_or_else(bad)??,
            minor: fields.next().ok_or_else(bad)??,
            patch: fields.next().ok_or_else(bad)??,
        };
        if fields.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_orders_and_prints() {
        let v: ImageVersion = "0.10.2".parse().unwrap();
        assert_eq!(v, ImageVersion::new(0, 10, 2));
        assert!(v > "0.9.99".parse().unwrap());
        assert_eq!(v.to_string(), "0.10.2");
    }

    #[test]
    fn refuses_what_is_not_three_numbers() {
        for text in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1..3",
            "1.2.+3",
            "1.2.x",
            "1.2.3-rc1",
        ] {
            assert!(text.parse::<ImageVersion>().is_err(), "{text:?} parsed");
        }
    }
}
