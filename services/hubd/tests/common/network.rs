//! A small hub network for the tests and the benchmark: `madrid-1` (ES) reaches the services
//! `echo` and `sink` published at `paris-1` (FR) through the transit hubs the caller names (or
//! over a direct link), and any other services the caller publishes there.

use std::collections::BTreeMap;
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

/// A sink service on loopback: echoes the first 4 bytes (so a client knows the session is up),
/// then counts what it reads and, at the client's half-close, answers the count (8 bytes, BE).
pub async fn sink_service() -> SocketAddr {
    sink_on(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
}

/// [`sink_service`] on a listener already bound (e.g. inside a test's network namespace).
/// Must be called inside a tokio runtime.
pub fn sink_on(listener: std::net::TcpListener) -> SocketAddr {
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut hello = [0u8; 4];
                if stream.read_exact(&mut hello).await.is_err()
                    || stream.write_all(&hello).await.is_err()
                {
                    return;
                }
                let mut buffer = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = stream.write_all(&total.to_be_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    address
}

/// `madrid-1` (ES) reaches `echo` and `sink` at `paris-1` (FR); transit hubs in between are
/// given by the caller. Paris grants the services to every hub it peers with; transit hubs grant
/// Madrid transit.
pub struct Network {
    pub madrid: Hub,
    pub paris: Hub,
    pub transits: Vec<Hub>,
    /// The echo service's listener at Madrid.
    pub client_listen: SocketAddr,
    /// Every service's listener at Madrid, by name.
    pub listeners: BTreeMap<&'static str, SocketAddr>,
    madrid_site: Site,
    paris_site: Site,
    _sites: Vec<Site>,
    /// What Paris grants the hubs it peers with.
    grant: String,
}

pub async fn network(transits: &[(&'static str, &str)], policy: &str) -> Network {
    network_with(transits, policy, &[]).await
}

/// [`network`], with `more` services (name, target) published at Paris besides `echo` and
/// `sink`, granted and reached at Madrid like them.
pub async fn network_with(
    transits: &[(&'static str, &str)],
    policy: &str,
    more: &[(&'static str, SocketAddr)],
) -> Network {
    let mut services = vec![
        ("echo", echo_service().await),
        ("sink", sink_service().await),
    ];
    services.extend_from_slice(more);
    let names: Vec<String> = services
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    let grant = format!("services = [{}]", names.join(", "));
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
        paris.peer_with_grant(&hub, code, &site.root_pem, &grant);
        hub.peer_with(&madrid, "ES", &madrid_site.root_pem, true);
        hub.peer_with(&paris, "FR", &paris_site.root_pem, true);
        sites.push(site);
        hubs.push(hub);
    }
    madrid.configure(policy);
    let mut listeners = BTreeMap::new();
    for (name, target) in services {
        paris.configure(&format!(
            "[[service]]\nname = \"{name}\"\npublish = \"{target}\"\n"
        ));
        let listen = free_tcp();
        madrid.configure(&format!(
            "[[service]]\nname = \"{name}\"\nhub = \"paris-1\"\nlisten = \"{listen}\"\n"
        ));
        if !policy.is_empty() {
            madrid.configure("path_policy = \"only\"\n");
        }
        listeners.insert(name, listen);
    }
    Network {
        madrid,
        paris,
        transits: hubs,
        client_listen: listeners["echo"],
        listeners,
        madrid_site,
        paris_site,
        _sites: sites,
        grant,
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

    /// Links Madrid and Paris directly (before they start).
    pub fn peer_directly(&self) {
        self.madrid
            .peer_with(&self.paris, "FR", &self.paris_site.root_pem, false);
        self.paris
            .peer_with_grant(&self.madrid, "ES", &self.madrid_site.root_pem, &self.grant);
    }

    /// The process ids: Madrid, Paris, then the transit hubs.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.madrid)
            .chain(std::iter::once(&self.paris))
            .chain(&self.transits)
            .filter_map(|hub| hub.child.as_ref().map(std::process::Child::id))
            .collect()
    }

    /// Which transit hub (index) carries Madrid's latest session, from its log.
    pub fn carrier_of_latest_session(&self) -> usize {
        let log = self.madrid.log();
        let latest = log
            .lines()
            .rfind(|line| line.contains("session started") || line.contains("session moved"))
            .unwrap_or_default()
            .to_owned();
        self.transits
            .iter()
            .position(|hub| latest.contains(&format!("→ {} (", hub.id)))
            .expect("the latest session crosses a transit hub")
    }

    /// A client connection to the echo service through Madrid, retried while the control plane
    /// settles.
    pub async fn connect(&self) -> TcpStream {
        self.connect_to("echo").await
    }

    /// A client connection to service `name` through Madrid (its first 4 bytes answered).
    pub async fn connect_to(&self, name: &str) -> TcpStream {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let mut stream = TcpStream::connect(self.listeners[name]).await.unwrap();
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
