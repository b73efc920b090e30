//! Test fixtures: sites with their own root CA (made with rcgen, as trustd's are), hub
//! certificates under them, and advertisements signed the way a hub signs them.

pub mod loopback;

use std::time::SystemTime;

use appliance::tls::{Identity, PinnedRoot};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::advertisement::{
    AdvertisedLink, Advertisement, AdvertisementParts, AdvertisementSignature, Flags,
    SignedAdvertisement, Timestamp, Voucher,
};
use crate::hub_certificate::SpkiFingerprint;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::{Latency, LinkId};

/// A site: its root CA key and certificate.
pub struct Site {
    key: KeyPair,
    params: CertificateParams,
    root: CertificateDer<'static>,
    root_pem: String,
}

impl Site {
    /// A new site with a fresh P-256 root, valid from yesterday for ten years.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = Self::root_params(name, 1);
        let root = params.self_signed(&key).unwrap();
        Self {
            key,
            params,
            root: root.der().clone(),
            root_pem: root.pem(),
        }
    }

    fn root_params(name: &str, serial: u64) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} BunkerOS Site CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial.into());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        params
    }

    /// The root certificate.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The root as a peering file pins it.
    pub fn pinned(&self) -> PinnedRoot {
        PinnedRoot::from_der(self.root.clone()).unwrap()
    }

    /// The root's PEM text.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The fingerprint peers pin and vouch for.
    pub fn fingerprint(&self) -> SpkiFingerprint {
        SpkiFingerprint::of_certificate(&self.root).unwrap()
    }

    /// A second root certificate for the same key (a re-issued root).
    pub fn reissued_root(&self) -> CertificateDer<'static> {
        let mut params = self.params.clone();
        params.serial_number = Some(2u64.into());
        params.self_signed(&self.key).unwrap().der().clone()
    }

    /// A hub certificate naming `bunkeros:hub:<id>`, valid from yesterday for 30 days.
    pub fn hub(&self, id: &str) -> HubCert {
        self.hub_with_names(id, &[&format!("bunkeros:hub:{id}")])
    }

    /// A hub certificate with exactly these names (`bunkeros:…` as URIs, others as DNS names).
    pub fn hub_with_names(&self, label: &str, names: &[&str]) -> HubCert {
        let now = OffsetDateTime::now_utc();
        self.hub_valid(
            label,
            names,
            now - Duration::days(1),
            now + Duration::days(30),
        )
    }

    /// A hub certificate valid only between `not_before` and `not_after`.
    pub fn hub_valid(
        &self,
        label: &str,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> HubCert {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, label);
        params.subject_alt_names = names
            .iter()
            .map(|name| {
                if name.starts_with("bunkeros:") {
                    SanType::URI((*name).try_into().unwrap())
                } else {
                    SanType::DnsName((*name).try_into().unwrap())
                }
            })
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let chain_pem = format!("{}{}", leaf.pem(), self.root_pem);
        let key_pem = key.serialize_pem();
        let identity = Identity::from_pem(chain_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        HubCert {
            identity,
            chain_pem,
            key_pem,
        }
    }
}

/// A hub's certificate chain (hub certificate, site root) and key.
pub struct HubCert {
    identity: Identity,
    chain_pem: String,
    key_pem: String,
}

impl HubCert {
    /// The identity a hub signs with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The hub certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        self.identity.leaf()
    }

    /// Hub certificate then root.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        self.identity.chain()
    }

    /// The chain as a PEM file holds it.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The key as a PEM file holds it.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Signs an advertisement with this hub's identity.
    pub fn sign(&self, advertisement: Advertisement) -> SignedAdvertisement {
        SignedAdvertisement::sign(advertisement, &self.identity).unwrap()
    }
}

/// A low-s signature over `message` by `hub`'s key.
pub fn sign_bytes(hub: &HubCert, message: &[u8]) -> AdvertisementSignature {
    crate::hub_certificate::sign_message(&hub.identity, message).unwrap()
}

/// A hub id, known valid.
pub fn hub(id: &str) -> HubId {
    HubId::parse(id).unwrap()
}

/// A jurisdiction, known valid.
pub fn country(code: &str) -> Jurisdiction {
    Jurisdiction::parse(code).unwrap()
}

/// Now, as advertisements and certificates are checked.
pub fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

/// An advertisement draft: `origin` in `jurisdiction`, sequence 1, valid for an hour, nothing
/// else; fill in with the methods below.
pub struct Draft(pub AdvertisementParts);

impl Draft {
    pub fn new(origin: &str, jurisdiction: &str) -> Self {
        Self(AdvertisementParts {
            origin: hub(origin),
            jurisdiction: country(jurisdiction),
            flags: Flags::default(),
            sequence: 1,
            expires_at: now().plus_secs(3600),
            links: Vec::new(),
            vouchers: Vec::new(),
            prefixes: Vec::new(),
        })
    }

    /// Announces `prefix` (e.g. `10.77.3.0/24`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.0
            .prefixes
            .push(crate::grant::IpPrefix::parse(prefix).unwrap());
        self
    }

    pub fn sequence(mut self, sequence: u64) -> Self {
        self.0.sequence = sequence;
        self
    }

    pub fn expires_at(mut self, expires_at: Timestamp) -> Self {
        self.0.expires_at = expires_at;
        self
    }

    pub fn no_transit(mut self) -> Self {
        self.0.flags.no_transit = true;
        self
    }

    /// A link to `neighbour`, number `id`, `millis` ms one way.
    pub fn link(mut self, neighbour: &str, id: u16, millis: u64) -> Self {
        self.0.links.push(AdvertisedLink {
            neighbour: hub(neighbour),
            link: LinkId::new(id).unwrap(),
            latency: Latency::from_millis(millis),
        });
        self
    }

    pub fn vouch(mut self, peer: &str, root: SpkiFingerprint) -> Self {
        self.0.vouchers.push(Voucher {
            hub: hub(peer),
            root,
        });
        self
    }

    pub fn build(self) -> Advertisement {
        Advertisement::new(self.0).unwrap()
    }
}
