//! The end-to-end handshake over an in-memory pipe: who is accepted, who is refused.

use std::collections::BTreeMap;

use rustls_pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::testing::loopback::guarded;
use crate::testing::{HubCert, Site, hub};

/// Madrid's and Bogotá's sites, and the control plane that vouches for both hubs.
struct Ends {
    madrid: Site,
    bogota: Site,
}

impl Ends {
    fn new() -> Self {
        Self {
            madrid: Site::new("madrid"),
            bogota: Site::new("bogota"),
        }
    }

    fn vouching(chains: &[(&str, &HubCert)]) -> VouchedHubs {
        let chains = chains
            .iter()
            .map(|(id, cert)| (hub(id), cert.chain().to_vec()))
            .collect();
        VouchedHubs::new(chains, BTreeMap::new())
    }
}

/// Runs the handshake: `client` as madrid-1 dialing bogota-1, `server` as bogota-1 expecting
/// madrid-1; each side checks against its own control plane. Returns each side's outcome.
async fn handshake(
    client: &HubCert,
    client_vouched: &VouchedHubs,
    server: &HubCert,
    server_vouched: &VouchedHubs,
) -> (bool, bool) {
    let client_config = client_config(client.identity(), &hub("bogota-1"), client_vouched).unwrap();
    let server_config = server_config(server.identity(), &hub("madrid-1"), server_vouched).unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("bogota-1").unwrap();
    let (client_side, server_side) = guarded(async {
        tokio::join!(
            async {
                let mut tls = TlsConnector::from(client_config)
                    .connect(name, client_io)
                    .await?;
                // TLS 1.3: the server checks the client's certificate after the client is done;
                // a byte from the server proves it accepted.
                let mut byte = [0u8; 1];
                tokio::io::AsyncReadExt::read_exact(&mut tls, &mut byte).await?;
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(CIRCUIT_ALPN));
                Ok::<_, std::io::Error>(())
            },
            async {
                let mut tls = TlsAcceptor::from(server_config).accept(server_io).await?;
                tokio::io::AsyncWriteExt::write_all(&mut tls, b"!").await?;
                tokio::io::AsyncWriteExt::flush(&mut tls).await?;
                Ok::<_, std::io::Error>(())
            }
        )
    })
    .await;
    (client_side.is_ok(), server_side.is_ok())
}

#[tokio::test]
async fn both_ends_accept_the_hubs_the_control_plane_vouches_for() {
    let ends = Ends::new();
    let (madrid, bogota) = (ends.madrid.hub("madrid-1"), ends.bogota.hub("bogota-1"));
    let vouched = Ends::vouching(&[("madrid-1", &madrid), ("bogota-1", &bogota)]);
    assert_eq!(
        handshake(&madrid, &vouched, &bogota, &vouched).await,
        (true, true)
    );
}

#[tokio::test]
async fn the_destination_refuses_another_hub_or_another_site_as_the_source() {
    let ends = Ends::new();
    let (madrid, bogota) = (ends.madrid.hub("madrid-1"), ends.bogota.hub("bogota-1"));
    let vouched = Ends::vouching(&[("madrid-1", &madrid), ("bogota-1", &bogota)]);
    // madrid-2 of the right site claims to be the route's source, madrid-1.
    let madrid_2 = ends.madrid.hub("madrid-2");
    let (_, accepted) = handshake(&madrid_2, &vouched, &bogota, &vouched).await;
    assert!(!accepted, "another hub of the source's site");
    // A madrid-1 certificate from a site the control plane does not vouch for.
    let impostor = Site::new("rome").hub("madrid-1");
    let (_, accepted) = handshake(&impostor, &vouched, &bogota, &vouched).await;
    assert!(!accepted, "another site's madrid-1");
}

#[tokio::test]
async fn the_source_refuses_a_destination_not_under_the_vouched_root() {
    let ends = Ends::new();
    let (madrid, bogota) = (ends.madrid.hub("madrid-1"), ends.bogota.hub("bogota-1"));
    let vouched = Ends::vouching(&[("madrid-1", &madrid), ("bogota-1", &bogota)]);
    let impostor = Site::new("rome").hub("bogota-1");
    let (connected, _) = handshake(&madrid, &vouched, &impostor, &vouched).await;
    assert!(!connected, "another site's bogota-1");
    let wrong_hub = ends.bogota.hub("bogota-2");
    let (connected, _) = handshake(&madrid, &vouched, &wrong_hub, &vouched).await;
    assert!(!connected, "another hub of the destination's site");
}

#[test]
fn no_configuration_without_a_vouched_chain() {
    let ends = Ends::new();
    let madrid = ends.madrid.hub("madrid-1");
    let nobody = VouchedHubs::default();
    assert!(matches!(
        client_config(madrid.identity(), &hub("bogota-1"), &nobody),
        Err(EndToEndError::NotVouched(h)) if h == hub("bogota-1")
    ));
    assert!(matches!(
        server_config(madrid.identity(), &hub("bogota-1"), &nobody),
        Err(EndToEndError::NotVouched(_))
    ));
}
