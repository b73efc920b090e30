//! A small hub network for the tests and the benchmark: `madrid-1` (ES) reaches the `echo`
//! service published at `paris-1` (FR) through the transit hubs the caller names.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{CONVERGE, Hub, Site, free_tcp};

/// An echo service on loopback: what it reads it writes back.
pub async fn echo_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    address
}

/// `madrid-1` (ES) reaches `echo` at `paris-1` (FR); transit hubs in between are given by the
/// caller. Paris grants the service to every transit hub; transit hubs grant Madrid transit.
pub struct Network {
    pub madrid: Hub,
    pub paris: Hub,
    pub transits: Vec<Hub>,
    pub client_listen: SocketAddr,
    _sites: Vec<Site>,
}

pub async fn network(transits: &[(&'static str, &str)], policy: &str) -> Network {
    let madrid_site = Site::new("madrid");
    let paris_site = Site::new("paris");
    let madrid = Hub::new("madrid-1", "ES", &madrid_site).await;
    let paris = Hub::new("paris-1", "FR", &paris_site).await;
    let mut sites = vec![];
    let mut hubs = vec![];
    for (id, code) in transits {
        let site = Site::new(id);
        let hub = Hub::new(id, code, &site).await;
        madrid.peer_with(&hub, code, &site.root_pem, false);
        paris.peer_with_grant(&hub, code, &site.root_pem, "services = [\"echo\"]");
        hub.peer_with(&madrid, "ES", &madrid_site.root_pem, true);
        hub.peer_with(&paris, "FR", &paris_site.root_pem, true);
        sites.push(site);
        hubs.push(hub);
    }
    let echo = echo_service().await;
    paris.configure(&format!(
        "[[service]]\nname = \"echo\"\npublish = \"{echo}\"\n"
    ));
    let client_listen = free_tcp();
    madrid.configure(&format!(
        "{policy}[[service]]\nname = \"echo\"\nhub = \"paris-1\"\nlisten = \"{client_listen}\"\n"
    ));
    if !policy.is_empty() {
        madrid.configure("path_policy = \"only\"\n");
    }
    sites.push(madrid_site);
    sites.push(paris_site);
    Network {
        madrid,
        paris,
        transits: hubs,
        client_listen,
        _sites: sites,
    }
}

impl Network {
    pub fn start(&mut self) {
        self.madrid.start();
        self.paris.start();
        for hub in &mut self.transits {
            hub.start();
        }
    }

    /// Waits until Madrid trusts Paris (through a transit hub's voucher).
    pub async fn converged(&self, trusted: f64) {
        self.madrid
            .wait_for("hubd_hubs_trusted", "madrid trusts every hub", |n| {
                n >= trusted
            })
            .await;
        self.paris
            .wait_for("hubd_hubs_trusted", "paris trusts every hub", |n| {
                n >= trusted
            })
            .await;
    }

    /// A client connection through Madrid, retried while the control plane settles.
    pub async fn connect(&self) -> TcpStream {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let mut stream = TcpStream::connect(self.client_listen).await.unwrap();
            // A refused session is reset at once; an accepted one echoes.
            stream.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            let echoed =
                tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer)).await;
            if matches!(echoed, Ok(Ok(_))) && &answer == b"ping" {
                return stream;
            }
            assert!(
                Instant::now() < deadline,
                "no session within {CONVERGE:?}; madrid:\n{}",
                self.madrid.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
