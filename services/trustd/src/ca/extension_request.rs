//! The PKCS#9 extension request of a CSR: the only place a requester can ask for names and
//! certificate properties.
//!
//! The CA honours subject alternative names and nothing else. It tolerates the harmless
//! extensions common tools add by default (`basicConstraints cA=FALSE`, end-entity key usages,
//! serverAuth/clientAuth, a subject key identifier) because the profile sets those itself; it
//! refuses everything that asks for more (CA status, certificate or CRL signing, other EKUs) and
//! every extension it does not know, so a requester never believes it obtained a property the
//! certificate does not have.

use std::collections::HashSet;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};

use super::csr::{CsrError, MAX_NAMES};
use super::names::{DnsName, MAX_DNS_NAME_LEN, quote_untrusted};
use super::subject::SubjectName;

/// Longest e-mail local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_PART_LEN: usize = 64;

const OID_EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const OID_SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";

/// The names from the extension request, after checking every requested extension.
pub(super) fn requested_names(
    csr: &X509CertificationRequest<'_>,
) -> Result<Vec<SubjectName>, CsrError> {
    let mut requests = csr
        .certification_request_info
        .iter_attributes()
        .filter(|attr| attr.oid.to_id_string() == OID_EXTENSION_REQUEST);
    let Some(request) = requests.next() else {
        return Ok(Vec::new());
    };
    if requests.next().is_some() {
        return Err(CsrError::MultipleExtensionRequests);
    }
    let ParsedCriAttribute::ExtensionRequest(request) = request.parsed_attribute() else {
        return Err(CsrError::MalformedExtension(OID_EXTENSION_REQUEST.into()));
    };
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for extension in &request.extensions {
        let oid = extension.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            return Err(CsrError::DuplicateExtension(oid));
        }
        if let Some(found) = check_extension(extension, &oid)? {
            names = found;
        }
    }
    Ok(names)
}

/// Refuses what the CA does not honour; returns the names of a SAN extension.
fn check_extension(
    extension: &X509Extension<'_>,
    oid: &str,
) -> Result<Option<Vec<SubjectName>>, CsrError> {
    let malformed = || CsrError::MalformedExtension(oid.to_owned());
    let known = matches!(
        oid,
        OID_SUBJECT_ALT_NAME
            | OID_BASIC_CONSTRAINTS
            | OID_KEY_USAGE
            | OID_EXTENDED_KEY_USAGE
            | OID_SUBJECT_KEY_IDENTIFIER
    );
    if !known {
        return Err(CsrError::UnsupportedExtension {
            oid: oid.to_owned(),
            critical: extension.critical,
        });
    }
    match extension.parsed_extension() {
        ParsedExtension::SubjectAlternativeName(san) => {
            if san.general_names.len() > MAX_NAMES {
                return Err(CsrError::TooManyNames {
                    count: san.general_names.len(),
                });
            }
            let mut names = Vec::with_capacity(san.general_names.len());
            for general in &san.general_names {
                let name = requested_name(general)?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            Ok(Some(names))
        }
        ParsedExtension::BasicConstraints(constraints) => {
            if constraints.ca {
                Err(CsrError::CaRequested)
            } else {
                Ok(None)
            }
        }
        ParsedExtension::KeyUsage(usage) => {
            if usage.key_cert_sign() {
                Err(CsrError::ForbiddenKeyUsage("keyCertSign"))
            } else if usage.crl_sign() {
                Err(CsrError::ForbiddenKeyUsage("cRLSign"))
            } else {
                Ok(None)
            }
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let forbidden = [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.code_signing, "codeSigning"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ];
            if let Some((_, name)) = forbidden.iter().find(|(present, _)| *present) {
                return Err(CsrError::ForbiddenExtendedKeyUsage((*name).to_owned()));
            }
            if let Some(other) = eku.other.first() {
                return Err(CsrError::ForbiddenExtendedKeyUsage(other.to_id_string()));
            }
            Ok(None)
        }
        ParsedExtension::SubjectKeyIdentifier(_) => Ok(None),
        _ => Err(malformed()),
    }
}

/// One SAN entry, checked.
fn requested_name(general: &GeneralName<'_>) -> Result<SubjectName, CsrError> {
    match general {
        GeneralName::DNSName(text) => {
            DnsName::parse(text)
                .map(SubjectName::Dns)
                .map_err(|reason| CsrError::BadDnsName {
                    name: quote_untrusted(text, 80),
                    reason,
                })
        }
        GeneralName::IPAddress(octets) => match octets.len() {
            4 => Ok(SubjectName::Ip(IpAddr::from(
                <[u8; 4]>::try_from(*octets).map_err(|_| CsrError::BadIpAddress(4))?,
            ))),
            16 => Ok(SubjectName::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*octets).map_err(|_| CsrError::BadIpAddress(16))?,
            ))),
            other => Err(CsrError::BadIpAddress(other)),
        },
        GeneralName::URI(text) => check_uri(text).map(|()| SubjectName::Uri((*text).to_owned())),
        GeneralName::RFC822Name(text) => {
            check_email(text).map(|()| SubjectName::Email((*text).to_owned()))
        }
        GeneralName::OtherName(..) => Err(CsrError::UnsupportedNameType("otherName")),
        GeneralName::X400Address(_) => Err(CsrError::UnsupportedNameType("x400Address")),
        GeneralName::DirectoryName(_) => Err(CsrError::UnsupportedNameType("directoryName")),
        GeneralName::EDIPartyName(_) => Err(CsrError::UnsupportedNameType("ediPartyName")),
        GeneralName::RegisteredID(_) => Err(CsrError::UnsupportedNameType("registeredID")),
        GeneralName::Invalid(..) => Err(CsrError::MalformedName),
    }
}

/// Printable ASCII, no spaces, `scheme:` prefix, at most 253 bytes. Which URIs a profile takes
/// is the profile's business.
fn check_uri(text: &str) -> Result<(), CsrError> {
    let refuse = |reason| {
        Err(CsrError::BadUri {
            uri: quote_untrusted(text, 80),
            reason,
        })
    };
    if text.len() > MAX_DNS_NAME_LEN {
        return refuse("it is longer than 253 bytes");
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return refuse("it contains spaces, control characters or non-ASCII bytes");
    }
    let scheme_ok = text.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    });
    if !scheme_ok {
        return refuse("it does not start with a lowercase `scheme:`");
    }
    Ok(())
}

/// `local@domain`, lowercase, with a well-formed domain and no wildcard.
fn check_email(text: &str) -> Result<(), CsrError> {
    let refuse = |reason: String| {
        Err(CsrError::BadEmail {
            email: quote_untrusted(text, 80),
            reason,
        })
    };
    if text.len() > MAX_DNS_NAME_LEN {
        return refuse("it is longer than 253 bytes".into());
    }
    let Some((local, domain)) = text.split_once('@') else {
        return refuse("it has no `@`".into());
    };
    if local.is_empty() || local.len() > MAX_LOCAL_PART_LEN {
        return refuse(format!(
            "the local part must have 1 to {MAX_LOCAL_PART_LEN} characters"
        ));
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b))
    {
        return refuse("the local part may hold only a-z, 0-9, `.`, `_`, `+` and `-`".into());
    }
    match DnsName::parse(domain) {
        Ok(domain) if domain.is_wildcard() => refuse("the domain is a wildcard".into()),
        Ok(_) => Ok(()),
        Err(reason) => refuse(format!("the domain is refused: {reason}")),
    }
}
