//! The client against a local listener playing a miner that answers, hangs, trickles, floods
//! or hangs up: every case ends within the deadline with its own typed error.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use minerd::cgminer::{
    ClientConfig, ClientError, Command, MinerSnapshot, ReplyError, Request, query,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const S21: &[u8] = include_bytes!("fixtures/bmminer_s21xp_version+summary+stats+pools.json");

fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(300),
        deadline: Duration::from_millis(400),
        max_reply_bytes: 256 * 1024,
    }
}

/// A one-connection miner: reads the request, hands it and the socket to `behave`.
async fn miner<F, Fut>(behave: F) -> SocketAddr
where
    F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        // The client never half-closes (like pyasic), so read what one write brought.
        let n = sock.read(&mut buf).await.unwrap_or(0);
        buf.truncate(n);
        behave(sock, buf).await;
    });
    addr
}

fn joined() -> Request {
    Request::joined(vec![
        Command::Version,
        Command::Summary,
        Command::Stats,
        Command::Pools,
    ])
    .unwrap()
}

#[tokio::test]
async fn reads_a_fixture_reply_to_the_nul() {
    let addr = miner(|mut sock, request| async move {
        assert_eq!(request, br#"{"command":"version+summary+stats+pools"}"#);
        sock.write_all(S21).await.unwrap();
        sock.write_all(b"\0").await.unwrap();
        // Keep the socket open: the NUL alone must end the read.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let reply = query(addr, &joined(), &config()).await.unwrap();
    // Far sooner than the miner closes (30 s); generous for a loaded test machine.
    assert!(started.elapsed() < Duration::from_secs(10));
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap.model.as_deref(), Some("Antminer S21 XP Hyd."));
    assert_eq!(snap.boards.len(), 3);
}

#[tokio::test]
async fn reads_to_eof_without_nul() {
    let addr = miner(|mut sock, _| async move {
        sock.write_all(S21).await.unwrap();
    })
    .await;
    let reply = query(addr, &joined(), &config()).await.unwrap();
    assert!(reply.section("pools").is_ok());
}

#[tokio::test]
async fn a_miner_that_never_answers_times_out_within_the_deadline() {
    let addr = miner(|sock, _| async move {
        // Hold the connection open without answering (pyasic#65).
        let _open = sock;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ClientError::ReadTimeout { received: 0, .. }),
        "{err}"
    );
    // Not before the deadline, and far sooner than the miner's 30 s (the slack is for a
    // loaded test machine).
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_trickle_past_the_deadline_times_out() {
    let addr = miner(|mut sock, _| async move {
        for b in S21 {
            if sock.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let started = Instant::now();
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::ReadTimeout { received, .. } if received > 0),
        "{err}"
    );
    // The whole reply would take 80 s at this pace.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_oversized_reply_is_refused() {
    let addr = miner(|mut sock, _| async move {
        let flood = vec![b' '; 1024 * 1024];
        let _ = sock.write_all(&flood).await;
    })
    .await;
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(
        matches!(err, ClientError::TooLarge { limit: 262144, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_miner_that_hangs_up_closes_early() {
    let addr = miner(|sock, _| async move {
        drop(sock);
    })
    .await;
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(matches!(err, ClientError::ClosedEarly { .. }), "{err}");
}

#[tokio::test]
async fn a_truncated_reply_is_malformed() {
    let addr = miner(|mut sock, _| async move {
        sock.write_all(&S21[..S21.len() / 2]).await.unwrap();
    })
    .await;
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Reply {
                source: ReplyError::Malformed(_),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    // Bind then drop to get a loopback port with nothing on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn a_privileged_command_refused_by_the_miner_is_access_denied() {
    let addr = miner(|mut sock, request| async move {
        let v: serde_json::Value = serde_json::from_slice(&request).unwrap();
        assert_eq!(v["command"], "addpool");
        assert_eq!(v["parameter"], "stratum+tcp://foreign.example:3333,thief,x");
        sock.write_all(include_bytes!("fixtures/access_denied_addpool.json"))
            .await
            .unwrap();
        sock.write_all(b"\0").await.unwrap();
    })
    .await;
    let request = Request::single(Command::AddPool {
        url: "stratum+tcp://foreign.example:3333".into(),
        user: "thief".into(),
        password: "x".into(),
    });
    let reply = query(addr, &request, &config()).await.unwrap();
    assert_eq!(
        reply.section("addpool"),
        Err(ReplyError::AccessDenied {
            command: "addpool".into()
        })
    );
}

#[tokio::test]
async fn a_miner_whose_accept_queue_is_full_times_out_connecting() {
    // A listener that never accepts, with the smallest backlog: once its queue is full the
    // kernel drops further SYNs, which is how a wedged miner looks from the poller.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    assert!(queued.len() < 64, "the accept queue never filled");
    let started = Instant::now();
    let err = query(addr, &joined(), &config()).await.unwrap_err();
    assert!(matches!(err, ClientError::ConnectTimeout { .. }), "{err}");
    // The kernel alone would retry the SYN for about two minutes.
    assert!(started.elapsed() < Duration::from_secs(10));
}
