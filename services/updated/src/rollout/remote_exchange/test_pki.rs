//! Test sites for the exchange between hubs: each with its own root (rcgen, P-256, as trustd's),
//! the coordinator's `service` certificate and hubs' `hub` certificates under them, and a
//! coordinator serving a directory exchange on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use appliance::tls::{Identity, PeerRoots, PinnedRoot};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use super::{CoordinatorExchange, ExchangeCertificate, ExchangeServer, hub_uri};
use crate::rollout::exchange::DirectoryExchange;

/// The DNS name of the coordinator's exchange certificate in these tests.
pub const COORDINATOR_NAME: &str = "rollout.geneva.bunker.test";

/// One site: its root CA.
pub struct TestSite {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestSite {
    pub fn new(name: &str) -> TestSite {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} site root"));
        TestSite {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn root(&self) -> PinnedRoot {
        PinnedRoot::from_pem(self.issuer.pem().as_bytes()).unwrap()
    }

    fn identity(&self, name: SanType, usage: ExtendedKeyUsagePurpose) -> Identity {
        self.identity_with(name, usage, |_| {})
    }

    fn identity_with(
        &self,
        name: SanType,
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![name];
        params.extended_key_usages = vec![usage];
        adjust(&mut params);
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Identity::from_pem(certificate.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    }

    /// A `service` certificate for `dns`, as the coordinator's trustd issues it.
    pub fn server_certificate(&self, dns: &str) -> Arc<ExchangeCertificate> {
        let name = SanType::DnsName(dns.try_into().unwrap());
        Arc::new(ExchangeCertificate::fixed(
            self.identity(name, ExtendedKeyUsagePurpose::ServerAuth),
        ))
    }

    /// A `hub` certificate (`bunkeros:hub:<hub>`), as a hub's trustd issues it.
    pub fn hub_certificate(&self, hub: &str) -> Arc<ExchangeCertificate> {
        let name = SanType::URI(hub_uri(hub).try_into().unwrap());
        Arc::new(ExchangeCertificate::fixed(
            self.identity(name, ExtendedKeyUsagePurpose::ClientAuth),
        ))
    }
}

impl TestSite {
    /// A hub certificate that expired in 2021.
    pub fn expired_hub_certificate(&self, hub: &str) -> Arc<ExchangeCertificate> {
        let name = SanType::URI(hub_uri(hub).try_into().unwrap());
        Arc::new(ExchangeCertificate::fixed(self.identity_with(
            name,
            ExtendedKeyUsagePurpose::ClientAuth,
            |params| {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            },
        )))
    }

    /// A client certificate of this site for a DNS name: what a device or a service holds,
    /// not a hub certificate.
    pub fn device_certificate(&self, dns: &str) -> Arc<ExchangeCertificate> {
        let name = SanType::DnsName(dns.try_into().unwrap());
        Arc::new(ExchangeCertificate::fixed(
            self.identity(name, ExtendedKeyUsagePurpose::ClientAuth),
        ))
    }
}

/// A coordinator serving `exchange` on loopback to the hubs pinned in `hubs`; stops when dropped.
pub struct TestCoordinator {
    pub site: TestSite,
    pub address: SocketAddr,
    cancel: CancellationToken,
}

impl TestCoordinator {
    pub async fn serve(exchange: DirectoryExchange, hubs: &[(&str, &TestSite)]) -> TestCoordinator {
        let site = TestSite::new("geneva");
        let mut roots = PeerRoots::new();
        for (hub, hub_site) in hubs {
            roots.insert(*hub, hub_site.root()).unwrap();
        }
        let server = ExchangeServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            site.server_certificate(COORDINATOR_NAME),
            roots,
            exchange,
        )
        .await
        .unwrap();
        let address = server.local_addr();
        let cancel = CancellationToken::new();
        tokio::spawn(server.serve(cancel.clone()));
        TestCoordinator {
            site,
            address,
            cancel,
        }
    }

    /// The exchange as `hub` of `hub_site` reaches it.
    pub fn client(&self, hub: &str, hub_site: &TestSite) -> CoordinatorExchange {
        self.client_via(self.address, hub, hub_site)
    }

    /// The exchange as `hub` asks for it presenting `certificate` (which may be another hub's,
    /// a device's or an expired one).
    pub fn client_presenting(
        &self,
        hub: &str,
        certificate: Arc<ExchangeCertificate>,
    ) -> CoordinatorExchange {
        CoordinatorExchange::new(
            hub,
            self.address,
            ServerName::try_from(COORDINATOR_NAME).unwrap(),
            self.site.root(),
            certificate,
        )
    }

    /// The exchange as `hub` of `hub_site` reaches it through `address` (hubd's listener).
    pub fn client_via(
        &self,
        address: SocketAddr,
        hub: &str,
        hub_site: &TestSite,
    ) -> CoordinatorExchange {
        CoordinatorExchange::new(
            hub,
            address,
            ServerName::try_from(COORDINATOR_NAME).unwrap(),
            self.site.root(),
            hub_site.hub_certificate(hub),
        )
    }
}

impl Drop for TestCoordinator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
