//! The uplink against receivers that misbehave: one that accepts connections and never answers
//! (enqueue never waits for it, the status says why), and one that refuses every alert as
//! invalid (the refused batch is counted and set aside instead of holding up the queue).

mod uplink_support;

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use appliance::config::{Bounded, DurationSecs};
use appliance::tls::{Identity, PinnedRoot};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::ExtendedKeyUsagePurpose;
use sited::uplink::Outbox;
use tokio_util::sync::CancellationToken;
use uplink_support::{Alertmanager, PORT, ago, notification, wait_status};

fn run(outbox: &Arc<Outbox>) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(Arc::clone(outbox).run(cancel.clone()));
    cancel
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_nothing() {
    let ip = Ipv4Addr::new(127, 72, 4, 1);
    // Connections complete in the kernel's backlog and then nothing is ever said.
    let _black_hole = std::net::TcpListener::bind((ip, PORT)).unwrap();
    let am = Alertmanager::prepare(ip);
    let state = tempfile::tempdir().unwrap();
    let mut settings = am.settings();
    settings.timeout = DurationSecs::from_const(1);
    let outbox = Arc::new(Outbox::open(state.path(), settings).unwrap());
    let cancel = run(&outbox);
    outbox
        .enqueue(notification("door-open", "raised", "critical", ago(3)))
        .unwrap();
    let status = wait_status(&outbox, "a timed-out attempt", |s| s.last_error.is_some()).await;
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("did not answer"),
        "{status:#?}"
    );
    // The sender is stuck retrying; queueing goes on regardless.
    for i in 0..50 {
        outbox
            .enqueue(notification(
                &format!("probe-{i}"),
                "raised",
                "info",
                ago(1),
            ))
            .unwrap();
    }
    assert_eq!(outbox.status().queued, 51);
    assert!(!outbox.status().reachable);
    cancel.cancel();
}

#[tokio::test]
async fn alerts_refused_as_invalid_are_set_aside_and_the_queue_goes_on() {
    let ip = Ipv4Addr::new(127, 72, 4, 2);
    let am = Alertmanager::prepare(ip);
    let requests = Arc::new(AtomicUsize::new(0));
    serve_refusals(&am, ip, Arc::clone(&requests)).await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = am.settings();
    settings.batch = Bounded::from_const(1);
    let outbox = Arc::new(Outbox::open(state.path(), settings).unwrap());
    let cancel = run(&outbox);
    outbox
        .enqueue(notification("a", "raised", "warning", ago(2)))
        .unwrap();
    outbox
        .enqueue(notification("b", "raised", "warning", ago(1)))
        .unwrap();
    let status = wait_status(&outbox, "both batches refused", |s| s.rejected_total == 2).await;
    assert_eq!(status.queued, 0, "{status:#?}");
    assert_eq!(status.delivered_total, 0);
    assert!(status.reachable);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("Alertmanager refused"),
        "{status:#?}"
    );
    assert!(requests.load(Ordering::SeqCst) >= 2);
    cancel.cancel();
}

/// An HTTPS server with Alertmanager's certificate and mutual TLS that answers every request
/// `400 Bad Request`, as Alertmanager does to alerts it finds invalid.
async fn serve_refusals(am: &Alertmanager, ip: Ipv4Addr, requests: Arc<AtomicUsize>) {
    let (chain, key) = am
        .control_centre
        .leaf(&ip.to_string(), ExtendedKeyUsagePurpose::ServerAuth);
    let identity = Identity::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let site = PinnedRoot::from_pem(am.site.pem.as_bytes()).unwrap();
    let tls = Arc::new(appliance::tls::server_config(&identity, &[site]).unwrap());
    let listener = tokio::net::TcpListener::bind((ip, PORT)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls));
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let requests = Arc::clone(&requests);
                    async move {
                        let _ = request.into_body().collect().await;
                        requests.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .body(Full::new(Bytes::from_static(
                                    b"{\"code\":400,\"message\":\"start time must be before end time\"}",
                                )))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
