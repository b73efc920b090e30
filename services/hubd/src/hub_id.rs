//! [`HubId`]: the name of one hub in the network, e.g. `madrid-1`.
//!
//! A hub id follows the rule trustd applies to the `hub` certificate profile: one DNS label
//! (lower-case letters, digits and `-`, 1 to 63 characters, no `-` at either end). The hub's
//! certificate carries it as `<id>.hub.<site domain>` or `bunkeros:hub:<id>`, so the id in an
//! advertisement can be compared with the id its certificate proves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest hub id: one DNS label.
pub const MAX_HUB_ID_LEN: usize = 63;

/// The id of a hub: one DNS label, unique in the network.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HubId(String);

/// Why a text is not a [`HubId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubIdError {
    /// Empty.
    #[error("a hub id cannot be empty")]
    Empty,
    /// More than one DNS label's worth.
    #[error("a hub id has at most {MAX_HUB_ID_LEN} characters; this one has {0}")]
    TooLong(usize),
    /// A character outside `a-z`, `0-9`, `-`.
    #[error(
        "\"{id}\" is not a hub id: only lower-case letters, digits and `-` are allowed (found {found:?})"
    )]
    BadCharacter {
        /// The id, shortened and escaped.
        id: String,
        /// The first offending character.
        found: char,
    },
    /// Starts or ends with `-`.
    #[error("\"{0}\" is not a hub id: it cannot start or end with `-`")]
    EdgeHyphen(String),
}

impl HubId {
    /// Checks `text` against the hub id rule.
    pub fn parse(text: &str) -> Result<Self, HubIdError> {
        if text.is_empty() {
            return Err(HubIdError::Empty);
        }
        if let Some(found) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            let mut id: String = text
                .chars()
                .take(MAX_HUB_ID_LEN)
                .flat_map(char::escape_debug)
                .collect();
            if text.chars().count() > MAX_HUB_ID_LEN {
                id.push('…');
            }
            return Err(HubIdError::BadCharacter { id, found });
        }
        // Only ASCII is left, so bytes are characters.
        if text.len() > MAX_HUB_ID_LEN {
            return Err(HubIdError::TooLong(text.len()));
        }
        if text.starts_with('-') || text.ends_with('-') {
            return Err(HubIdError::EdgeHyphen(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for HubId {
    type Err = HubIdError;
    fn from_str(text: &str) -> Result<Self, HubIdError> {
        Self::parse(text)
    }
}

impl TryFrom<String> for HubId {
    type Error = HubIdError;
    fn try_from(text: String) -> Result<Self, HubIdError> {
        Self::parse(&text)
    }
}

impl From<HubId> for String {
    fn from(id: HubId) -> String {
        id.0
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubId({})", self.0)
    }
}

impl AsRef<str> for HubId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_hub_ids() {
        for id in ["madrid-1", "sao-paulo-2", "a", "0", &"x".repeat(63)] {
            assert_eq!(HubId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert_eq!(HubId::parse(""), Err(HubIdError::Empty));
        assert_eq!(HubId::parse(&"x".repeat(64)), Err(HubIdError::TooLong(64)));
        assert_eq!(
            HubId::parse("Madrid").unwrap_err().to_string(),
            "\"Madrid\" is not a hub id: only lower-case letters, digits and `-` are allowed (found 'M')"
        );
        assert!(matches!(
            HubId::parse("a.b"),
            Err(HubIdError::BadCharacter { found: '.', .. })
        ));
        assert!(matches!(
            HubId::parse("são"),
            Err(HubIdError::BadCharacter { found: 'ã', .. })
        ));
        assert!(matches!(
            HubId::parse("a\nb"),
            Err(HubIdError::BadCharacter { .. })
        ));
        assert_eq!(HubId::parse("-x"), Err(HubIdError::EdgeHyphen("-x".into())));
        assert!(HubId::parse("x-").is_err());
    }
}
