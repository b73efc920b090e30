//! [`Jurisdiction`]: the country a hub stands in, as an ISO 3166-1 alpha-2 code.
//!
//! Path policies exclude or allow countries, so a misspelt code must never silently match
//! nothing: a code is accepted only if ISO 3166-1 assigns it (`FR`, `ES`, `BR`), written in
//! capitals. `UK` (reserved, not assigned; the code is `GB`), `EU` and other reserved or
//! user-assigned codes are refused with a sentence saying so.

mod codes;

use std::fmt;

use serde::{Deserialize, Serialize};

use codes::CODES;

/// An officially assigned ISO 3166-1 alpha-2 country code.
///
/// Ordered by code, so sets of jurisdictions print in a stable order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jurisdiction([u8; 2]);

/// Why a text is not a [`Jurisdiction`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JurisdictionError {
    /// Not two ASCII letters at all.
    #[error(
        "\"{0}\" is not a country code; a jurisdiction is an ISO 3166-1 alpha-2 code such as `ES` or `BR`"
    )]
    NotACode(String),
    /// Two letters, but in lower case.
    #[error("`{given}` must be written in capitals: `{upper}`")]
    LowerCase {
        /// As written.
        given: String,
        /// The same code in capitals.
        upper: String,
    },
    /// Two capitals that ISO 3166-1 does not assign to any country.
    #[error("`{0}` is not an assigned ISO 3166-1 alpha-2 code{hint}", hint = hint(.0))]
    Unassigned(String),
}

/// A pointer to the right code for codes people often use by mistake.
fn hint(code: &str) -> &'static str {
    match code {
        "UK" => " (the United Kingdom is `GB`)",
        "EU" => " (the European Union is not a country; list its members)",
        "XK" => " (`XK` is user-assigned, not an ISO code)",
        _ => "",
    }
}

impl Jurisdiction {
    /// Every assigned code, in alphabetical order (249 of them).
    pub fn all() -> impl Iterator<Item = Jurisdiction> {
        CODES.iter().map(|(code, _)| {
            let bytes = code.as_bytes();
            Jurisdiction([bytes[0], bytes[1]])
        })
    }

    /// Parses `text` as an assigned code in capitals, e.g. `"CH"`.
    pub fn parse(text: &str) -> Result<Self, JurisdictionError> {
        let bytes = text.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(JurisdictionError::NotACode(quote(text)));
        }
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(JurisdictionError::LowerCase {
                given: text.to_owned(),
                upper: text.to_ascii_uppercase(),
            });
        }
        Self::from_bytes([bytes[0], bytes[1]])
            .ok_or_else(|| JurisdictionError::Unassigned(text.to_owned()))
    }

    /// The code for two bytes as carried on the wire; `None` unless they spell an assigned code.
    pub fn from_bytes(bytes: [u8; 2]) -> Option<Self> {
        let code = std::str::from_utf8(&bytes).ok()?;
        CODES
            .binary_search_by(|(candidate, _)| (*candidate).cmp(code))
            .ok()
            .map(|_| Self(bytes))
    }

    /// The two capitals, e.g. `"FR"`.
    pub fn as_str(&self) -> &str {
        // Only ever built from an entry of CODES, which is ASCII.
        std::str::from_utf8(&self.0).expect("jurisdiction codes are ASCII")
    }

    /// The two bytes, for the wire.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0
    }

    /// The country's short English name, e.g. `"France"`.
    pub fn name(&self) -> &'static str {
        let index = CODES
            .binary_search_by(|(candidate, _)| (*candidate).cmp(self.as_str()))
            .expect("a Jurisdiction is always an assigned code");
        CODES[index].1
    }
}

/// Untrusted text, shortened and escaped so an error message stays one readable line.
fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(16).flat_map(char::escape_debug).collect();
    if text.chars().count() > 16 {
        quoted.push('…');
    }
    quoted
}

impl std::str::FromStr for Jurisdiction {
    type Err = JurisdictionError;
    fn from_str(text: &str) -> Result<Self, JurisdictionError> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Jurisdiction {
    type Error = JurisdictionError;
    fn try_from(text: String) -> Result<Self, JurisdictionError> {
        Self::parse(&text)
    }
}

impl From<Jurisdiction> for String {
    fn from(jurisdiction: Jurisdiction) -> String {
        jurisdiction.as_str().to_owned()
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jurisdiction({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_sorted_list_of_249_assigned_codes() {
        assert_eq!(CODES.len(), 249);
        assert!(
            CODES.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "sorted, no duplicates"
        );
        assert!(CODES.iter().all(|(code, name)| code.len() == 2
            && code.bytes().all(|b| b.is_ascii_uppercase())
            && !name.is_empty()));
        assert_eq!(Jurisdiction::all().count(), 249);
    }

    #[test]
    fn the_hub_countries_parse_with_their_names() {
        for (code, name) in [
            ("CH", "Switzerland"),
            ("ES", "Spain"),
            ("PT", "Portugal"),
            ("BR", "Brazil"),
            ("CO", "Colombia"),
            ("FR", "France"),
            ("GB", "United Kingdom"),
            ("AX", "Åland Islands"),
        ] {
            let jurisdiction = Jurisdiction::parse(code).unwrap();
            assert_eq!(jurisdiction.as_str(), code);
            assert_eq!(jurisdiction.name(), name);
            assert_eq!(jurisdiction.to_string(), code);
            assert_eq!(
                Jurisdiction::from_bytes(jurisdiction.to_bytes()),
                Some(jurisdiction)
            );
        }
    }

    #[test]
    fn unassigned_lower_case_and_junk_are_refused_with_a_sentence() {
        assert_eq!(
            Jurisdiction::parse("UK").unwrap_err().to_string(),
            "`UK` is not an assigned ISO 3166-1 alpha-2 code (the United Kingdom is `GB`)"
        );
        assert_eq!(
            Jurisdiction::parse("ZZ").unwrap_err().to_string(),
            "`ZZ` is not an assigned ISO 3166-1 alpha-2 code"
        );
        assert!(
            Jurisdiction::parse("EU")
                .unwrap_err()
                .to_string()
                .contains("not a country")
        );
        assert!(matches!(
            Jurisdiction::parse("XK"),
            Err(JurisdictionError::Unassigned(_))
        ));
        assert_eq!(
            Jurisdiction::parse("fr").unwrap_err().to_string(),
            "`fr` must be written in capitals: `FR`"
        );
        for junk in ["", "F", "FRA", "F1", "é", "🇫🇷", "F\n"] {
            assert!(
                matches!(
                    Jurisdiction::parse(junk),
                    Err(JurisdictionError::NotACode(_))
                ),
                "{junk:?}"
            );
        }
        assert!(
            Jurisdiction::parse("France is a long name indeed")
                .unwrap_err()
                .to_string()
                .contains('…')
        );
        assert_eq!(Jurisdiction::from_bytes(*b"QQ"), None);
        assert_eq!(Jurisdiction::from_bytes([0xff, 0x00]), None);
        assert_eq!(Jurisdiction::from_bytes(*b"fr"), None);
    }

    #[test]
    fn serde_reads_and_writes_the_code() {
        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct Doc {
            jurisdiction: Jurisdiction,
        }
        let doc: Doc = toml::from_str("jurisdiction = \"PT\"").unwrap();
        assert_eq!(doc.jurisdiction.name(), "Portugal");
        assert_eq!(
            toml::to_string(&doc).unwrap().trim(),
            "jurisdiction = \"PT\""
        );
        let err = toml::from_str::<Doc>("jurisdiction = \"UK\"").unwrap_err();
        assert!(
            err.message().contains("the United Kingdom is `GB`"),
            "{err}"
        );
    }
}
