//! [`VouchedHubs`]: what the control plane vouches for, as the data plane needs it.
//!
//! For each trusted remote hub, the certificate chain its advertisement was verified with (leaf
//! first, site root last) and the jurisdiction it advertises. Receipts are verified with the
//! leaf; end-to-end handshakes are verified to the root. A hub missing here is not vouched for,
//! even a direct peer whose advertisement has not arrived yet.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;

use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;

/// The chains and jurisdictions of the hubs the control plane trusts now.
#[derive(Debug, Clone, Default)]
pub struct VouchedHubs {
    chains: BTreeMap<HubId, Vec<CertificateDer<'static>>>,
    jurisdictions: BTreeMap<HubId, Jurisdiction>,
}

impl VouchedHubs {
    /// From the two maps (see [`crate::flooding::ControlPlaneView::chains`]; the jurisdictions
    /// are those of the advertisements held).
    pub fn new(
        chains: BTreeMap<HubId, Vec<CertificateDer<'static>>>,
        jurisdictions: BTreeMap<HubId, Jurisdiction>,
    ) -> Self {
        Self {
            chains,
            jurisdictions,
        }
    }

    /// The chain `hub` is vouched for with, leaf first; `None` when empty or unknown.
    pub fn chain(&self, hub: &HubId) -> Option<&[CertificateDer<'static>]> {
        self.chains
            .get(hub)
            .map(Vec::as_slice)
            .filter(|chain| !chain.is_empty())
    }

    /// The hub certificate of `hub`: the key its receipts are signed with.
    pub fn leaf(&self, hub: &HubId) -> Option<&CertificateDer<'static>> {
        self.chain(hub)?.first()
    }

    /// The site root of `hub`: what its end-to-end certificate must chain to.
    pub fn root(&self, hub: &HubId) -> Option<&CertificateDer<'static>> {
        self.chain(hub)?.last()
    }

    /// The jurisdiction `hub` advertises.
    pub fn jurisdiction(&self, hub: &HubId) -> Option<Jurisdiction> {
        self.jurisdictions.get(hub).copied()
    }
}
