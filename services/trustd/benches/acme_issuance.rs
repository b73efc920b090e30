//! `make bench` for trustd's ACME server: certificates per second through whole RFC 8555 flows
//! over TLS 1.3 on loopback, against the raw TPM signature rate measured in the same run on the
//! same software TPM (interleaved, see `common`). Only the ratio travels between machines.
//!
//! Server: trustd's own `AcmeServer` in front of the authority through `AuthorityBackend`, with
//! a listener certificate the CA issued itself — what trustd's main starts. Client: the
//! `instant-acme` crate (a maintained RFC 8555 client), speaking HTTP/1.1 over rustls to the
//! listener with one kept-alive connection per client, and trusting only the site root. Each
//! certificate is a new order for a name of its own → its authorisation → the http-01
//! challenge, answered by this benchmark's responder on loopback (the server validates every
//! name at 127.0.0.1 through its address table) → polling until ready → finalize with a fresh
//! P-256 key → download of the chain.
//!
//! One client measures the latency of a flow (polling included); several clients at once
//! measure what the server sustains. The clients share this process and the machine's cores
//! with the server, so the CPU time per certificate (here and in swtpm) is printed beside it.
//!
//! Environment: BENCH_SIGNATURES (default 300) certificates per rate, BENCH_ACME_CLIENTS
//! (default 8) clients at once.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::state::StateDir;
use common::{CpuUse, Lab, SITE, env_count, same_run, threads_cpu_time};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use trustd::acme::{AcmeBackend, AcmeConfig, AcmeServer};
use trustd::acme_backend::{AcmeIdentity, AuthorityBackend, listener_names};
use trustd::ca::DnsName;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How clients poll an order while the server validates: soon, then less often.
const POLLING: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(5))
    .backoff(1.5)
    .timeout(Duration::from_secs(60));

fn main() {
    let count = env_count("BENCH_SIGNATURES", 300);
    let clients = env_count("BENCH_ACME_CLIENTS", 8);
    // The server and the clients run on runtimes of their own, so the CPU time of each can be
    // told apart by thread name.
    let server = runtime(SERVER_THREADS);
    let runtime = runtime(CLIENT_THREADS);
    let lab = Lab::start();
    // Every name one run can ask for: the server validates each at 127.0.0.1.
    let names: Vec<String> = (0..2 * count + 2 * clients + 1)
        .map(|i| format!("miner-{i}.devices.{SITE}"))
        .collect();
    let cancel = CancellationToken::new();
    let tokens = Tokens::default();
    let responder = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let http_port = responder.local_addr().expect("bound").port();
    runtime.spawn(serve_http01(responder, Arc::clone(&tokens), cancel.clone()));
    let site = server.block_on(Site::start(&lab, &names, http_port, tokens, cancel));
    let next_name = AtomicUsize::new(0);
    let name = || names[next_name.fetch_add(1, Ordering::Relaxed)].clone();

    println!(
        "trustd ACME issuance benchmark: swtpm, TLS 1.3 on loopback, instant-acme clients, \
         release build, {count} certificates per rate, raw TPM signatures interleaved"
    );
    let single = runtime.block_on(site.client());
    runtime
        .block_on(single.certificate(name()))
        .expect("warm-up certificate");
    let requests_before = single.http.requests.load(Ordering::Relaxed);
    let one = same_run(
        count,
        10,
        |n| lab.raw_signatures(n),
        |n| {
            runtime.block_on(async {
                for _ in 0..n {
                    single.certificate(name()).await.expect("ACME certificate");
                }
            })
        },
    );
    let per_certificate =
        (single.http.requests.load(Ordering::Relaxed) - requests_before) as f64 / count as f64;
    one.print("ACME order → http-01 → finalize → download, one client");
    println!(
        "            {per_certificate:.1} HTTPS requests per certificate, {:.1} ms per flow",
        1000.0 / one.measured.rate()
    );

    let many: Vec<Arc<Client>> = runtime.block_on(async {
        let mut many = Vec::new();
        for _ in 0..clients {
            let client = site.client().await;
            client
                .certificate(name())
                .await
                .expect("warm-up certificate");
            many.push(Arc::new(client));
        }
        many
    });
    let swtpm = lab.tpm.pid();
    let (mut raw_cpu, mut acme_cpu) = (CpuUse::default(), CpuUse::default());
    let (mut server_cpu, mut client_cpu) = (Duration::ZERO, Duration::ZERO);
    same_run(
        count,
        5 * clients,
        |n| raw_cpu.add(swtpm, || lab.raw_signatures(n)),
        |n| {
            let (server_before, clients_before) = (
                threads_cpu_time(SERVER_THREADS),
                threads_cpu_time(CLIENT_THREADS),
            );
            acme_cpu.add(swtpm, || {
                runtime.block_on(async {
                    let mut flows = tokio::task::JoinSet::new();
                    for (i, client) in many.iter().enumerate() {
                        let share = n / clients + usize::from(i < n % clients);
                        let client = Arc::clone(client);
                        let names: Vec<String> = (0..share).map(|_| name()).collect();
                        flows.spawn(async move {
                            for name in names {
                                client.certificate(name).await.expect("ACME certificate");
                            }
                        });
                    }
                    while let Some(done) = flows.join_next().await {
                        done.expect("a client finished");
                    }
                })
            });
            server_cpu += threads_cpu_time(SERVER_THREADS).saturating_sub(server_before);
            client_cpu += threads_cpu_time(CLIENT_THREADS).saturating_sub(clients_before);
        },
    )
    .print(&format!("ACME, {clients} clients at once"));
    raw_cpu.print("raw TPM signature", count);
    acme_cpu.print("ACME certificate (server, clients, TPM)", count);
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / count as f64;
    println!(
        "            of which trustd's threads (ACME server, authority, TPM client library) \
         {:.2} ms, the benchmark's clients {:.2} ms",
        per(server_cpu),
        per(client_cpu)
    );
    println!("  (goal: issuance >= 0.90 of the raw TPM rate)");
    site.cancel.cancel();
}

/// Names of the threads that run trustd's side, and the clients' side.
const SERVER_THREADS: &str = "trustd-server";
const CLIENT_THREADS: &str = "acme-client";

/// A runtime whose threads (the blocking ones too, kept alive so their CPU time stays
/// readable) are named `name`.
fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .expect("a tokio runtime")
}

/// trustd's ACME server over the lab's authority, and where the clients publish http-01 tokens.
struct Site {
    directory: String,
    root: CertificateDer<'static>,
    server_name: ServerName<'static>,
    tokens: Tokens,
    cancel: CancellationToken,
}

/// http-01 tokens → key authorizations, as the clients publish them.
type Tokens = Arc<Mutex<HashMap<String, String>>>;

impl Site {
    async fn start(
        lab: &Lab,
        names: &[String],
        http_port: u16,
        tokens: Tokens,
        cancel: CancellationToken,
    ) -> Self {
        let authority = Arc::new(lab.authority());
        let domain = DnsName::parse(SITE).expect("a valid site domain");
        let identity = AcmeIdentity::issue(
            &authority,
            &listener_names(&domain, None),
            Duration::from_secs(7 * 24 * 3600),
        )
        .expect("the ACME listener's certificate");
        let mut config = AcmeConfig::new("127.0.0.1:0".parse().expect("an address"));
        config.validation.http_port = http_port;
        config.validation.system_resolver = false;
        for name in names {
            config
                .validation
                .addresses
                .insert(name.clone(), [127, 0, 0, 1].into());
        }
        let backend: Arc<dyn AcmeBackend> =
            Arc::new(AuthorityBackend::new(Arc::clone(&authority), lab.policy()));
        let server = AcmeServer::bind(
            config,
            &domain,
            &identity.identity,
            backend,
            StateDir::new(lab.dir.path().join("acme")).expect("a state directory"),
        )
        .await
        .expect("the ACME server binds");
        let directory = server.directory_url();
        tokio::spawn(server.serve(cancel.clone()));
        let root = pem::parse(authority.root_pem().expect("a root"))
            .expect("the root is PEM")
            .into_contents();
        Self {
            directory,
            root: CertificateDer::from(root),
            server_name: ServerName::try_from(format!("acme.{SITE}")).expect("a server name"),
            tokens,
            cancel,
        }
    }

    /// A client with an account of its own and its own connection.
    async fn client(&self) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone()).expect("the site root");
        let mut tls = rustls::ClientConfig::builder_with_provider(appliance::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = Loopback {
            tls: TlsConnector::from(Arc::new(tls)),
            server_name: self.server_name.clone(),
            connection: Arc::default(),
            requests: Arc::default(),
        };
        let (account, _credentials) = Account::builder_with_http(Box::new(http.clone()))
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await
            .expect("an ACME account");
        Client {
            account,
            tokens: Arc::clone(&self.tokens),
            http,
        }
    }
}

/// One ACME client: an account and the connection it talks over.
struct Client {
    account: Account,
    tokens: Tokens,
    http: Loopback,
}

impl Client {
    /// One whole flow for `name`: order, http-01, finalize, download.
    async fn certificate(&self, name: String) -> Result<String, BoxError> {
        let identifiers = [Identifier::Dns(name)];
        let mut order = self.account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut tokens = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            if authorization.status != AuthorizationStatus::Pending {
                return Err(format!("authorization is {:?}", authorization.status).into());
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or("the server offers no http-01 challenge")?;
            let proof = challenge.key_authorization().as_str().to_owned();
            lock(&self.tokens).insert(challenge.token.clone(), proof);
            tokens.push(challenge.token.clone());
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&POLLING).await;
        forget(&self.tokens, &tokens);
        let status = status?;
        if status != OrderStatus::Ready {
            return Err(format!("the order is {status:?}, not ready").into());
        }
        let _key_pem = order.finalize().await?;
        // trustd issues while it answers the finalize request, so no polling is needed.
        let chain = match order.state().status {
            OrderStatus::Valid => order.certificate().await?.ok_or("no certificate")?,
            _ => order.poll_certificate(&POLLING).await?,
        };
        if chain.matches("-----BEGIN CERTIFICATE-----").count() < 2 {
            return Err("the download is not a certificate chain".into());
        }
        Ok(chain)
    }
}

/// instant-acme's HTTP seam over hyper and rustls: one kept-alive HTTP/1.1 connection to the
/// listener, TLS 1.3 trusting only the site root, the listener's name checked as
/// `acme.<site>` whatever address the URLs carry.
#[derive(Clone)]
struct Loopback {
    tls: TlsConnector,
    server_name: ServerName<'static>,
    connection: Arc<tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>>,
    requests: Arc<AtomicUsize>,
}

impl HttpClient for Loopback {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let this = self.clone();
        Box::pin(async move { this.send(request).await.map_err(instant_acme::Error::Other) })
    }
}

impl Loopback {
    async fn send(&self, request: Request<BodyWrapper<Bytes>>) -> Result<BytesResponse, BoxError> {
        let (mut parts, body) = request.into_parts();
        let body = body.collect().await?.to_bytes();
        let authority = parts.uri.authority().cloned().ok_or("a URL without host")?;
        parts
            .headers
            .insert(hyper::header::HOST, authority.as_str().parse()?);
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()?;
        let mut connection = self.connection.lock().await;
        if connection.as_ref().is_none_or(SendRequest::is_closed) {
            *connection = Some(self.connect(authority.as_str()).await?);
        }
        let sender = connection.as_mut().ok_or("no connection")?;
        sender.ready().await?;
        let response = sender
            .send_request(Request::from_parts(parts, Full::new(body)))
            .await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        drop(connection);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(BytesResponse::from(Response::from_parts(
            parts,
            Full::new(body),
        )))
    }

    async fn connect(&self, address: &str) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// The clients' http-01 responder: `GET /.well-known/acme-challenge/<token>` → the key
/// authorization published for that token.
async fn serve_http01(listener: TcpListener, tokens: Tokens, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let tokens = Arc::clone(&tokens);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answer = request
                    .uri()
                    .path()
                    .strip_prefix("/.well-known/acme-challenge/")
                    .and_then(|token| lock(&tokens).get(token).cloned());
                async move {
                    Ok::<_, Infallible>(match answer {
                        Some(proof) => Response::new(Full::new(Bytes::from(proof))),
                        None => {
                            let mut missing = Response::new(Full::new(Bytes::new()));
                            *missing.status_mut() = StatusCode::NOT_FOUND;
                            missing
                        }
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Takes `tokens` off the responder once their validation is over.
fn forget(published: &Tokens, tokens: &[String]) {
    let mut published = lock(published);
    for token in tokens {
        published.remove(token);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
