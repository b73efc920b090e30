//! Sessions end to end over `tokio::io::duplex` pipes: two sessions, each with a local side the
//! test writes and reads, joined by transports the test cuts where it likes (inside a frame,
//! right after a Resume) and replaces, as the source hub's owner does on `TransportLost`.
//! Waits end when the sessions do; a generous guard only keeps a broken test from hanging.

mod protocol;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf, duplex,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;

/// Longest any test may take before it counts as hung.
const GUARD: Duration = Duration::from_secs(20);
/// Never cut.
const WHOLE: usize = usize::MAX;

/// One end of a transport that fails once it has written `budget` bytes (the last write may be
/// short, so the cut can fall inside a frame); the session then drops it, and the peer's end
/// reads the end of the pipe.
struct Cut {
    inner: DuplexStream,
    budget: usize,
}

impl AsyncRead for Cut {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Cut {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "cut by the test",
            )));
        }
        let allowed = buf.len().min(self.budget);
        let polled = Pin::new(&mut self.inner).poll_write(cx, &buf[..allowed]);
        if let Poll::Ready(Ok(wrote)) = polled {
            self.budget -= wrote;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn settings(max_unacknowledged: usize) -> SessionSettings {
    SessionSettings {
        max_unacknowledged,
        ack_after: 16 << 10,
        ack_interval: Duration::from_millis(5),
        resume_within: Duration::from_secs(5),
    }
}

/// A running session and what the test holds of it.
struct End {
    /// The other end of the session's local side.
    local: DuplexStream,
    transports: mpsc::Sender<Cut>,
    events: mpsc::Receiver<SessionEvent>,
    session: JoinHandle<Result<SessionReport, SessionError>>,
}

fn start(settings: SessionSettings) -> End {
    start_with(settings, 64 << 10, 64)
}

/// A session whose local pipe holds `local_buffer` bytes and whose events channel `event_room`.
fn start_with(settings: SessionSettings, local_buffer: usize, event_room: usize) -> End {
    let (local, theirs) = duplex(local_buffer);
    let (transports, handed) = mpsc::channel(8);
    let (event_sender, events) = mpsc::channel(event_room);
    let session = tokio::spawn(run(theirs, handed, event_sender, settings));
    End {
        local,
        transports,
        events,
        session,
    }
}

/// Hands a new transport to each end; each end fails after writing its budget.
fn join(a: &mpsc::Sender<Cut>, b: &mpsc::Sender<Cut>, (a_budget, b_budget): (usize, usize)) {
    let (x, y) = duplex(64 << 10);
    let _ = a.try_send(Cut {
        inner: x,
        budget: a_budget,
    });
    let _ = b.try_send(Cut {
        inner: y,
        budget: b_budget,
    });
}

/// The source's owner: the first transport of `plan` at once, the next after each
/// `TransportLost` from `a`, uncut ones once the plan is used up. Returns `a`'s events.
fn own(
    mut events: mpsc::Receiver<SessionEvent>,
    a: mpsc::Sender<Cut>,
    b: mpsc::Sender<Cut>,
    plan: Vec<(usize, usize)>,
) -> JoinHandle<Vec<SessionEvent>> {
    tokio::spawn(async move {
        let mut plan = plan.into_iter();
        join(&a, &b, plan.next().unwrap_or((WHOLE, WHOLE)));
        let mut seen = Vec::new();
        while let Some(event) = events.recv().await {
            if matches!(event, SessionEvent::TransportLost { .. }) {
                join(&a, &b, plan.next().unwrap_or((WHOLE, WHOLE)));
            }
            seen.push(event);
        }
        seen
    })
}

/// Deterministic bytes that differ by seed and position.
fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Writes `data` to a local side and ends it, while reading what comes back to its end.
fn exchange(local: DuplexStream, data: Vec<u8>) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let (mut from, mut to) = tokio::io::split(local);
        let writing = async move {
            to.write_all(&data).await.unwrap();
            to.shutdown().await.unwrap();
            to
        };
        let reading = async {
            let mut got = Vec::new();
            from.read_to_end(&mut got).await.unwrap();
            got
        };
        let (_to, got) = tokio::join!(writing, reading);
        got
    })
}

async fn finish<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(GUARD, task)
        .await
        .expect("the session hung")
        .expect("the task panicked")
}

fn drain(events: &mut mpsc::Receiver<SessionEvent>) -> Vec<SessionEvent> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_carries_megabytes_each_way_across_transports_cut_anywhere() {
    let max = 256 << 10;
    let a = start(settings(max));
    // b's owner never reads its events: they must not hold b up.
    let mut b = start_with(settings(max), 64 << 10, 1);
    let plan = vec![
        (700_000, WHOLE),   // inside a data frame from a
        (17, WHOLE),        // right after a's Resume (17 bytes)
        (WHOLE, 17 + 9),    // inside b's first frame after its Resume
        (5, WHOLE),         // inside a's Resume
        (1_500_000, 2_000), // both directions busy
    ];
    let owner = own(a.events, a.transports.clone(), b.transports.clone(), plan);
    let (a_data, b_data) = (stream(1, 6 << 20), stream(2, 5 << 20));
    let at_a = exchange(a.local, a_data.clone());
    let at_b = exchange(b.local, b_data.clone());

    let (got_at_b, got_at_a) = (finish(at_b).await, finish(at_a).await);
    assert!(got_at_b == a_data, "b got a's bytes, none lost or doubled");
    assert!(got_at_a == b_data, "a got b's bytes, none lost or doubled");
    let a_report = finish(a.session).await.unwrap();
    let b_report = finish(b.session).await.unwrap();
    let a_events = finish(owner).await;

    assert_eq!((a_report.sent, a_report.received), (6 << 20, 5 << 20));
    assert_eq!((b_report.sent, b_report.received), (5 << 20, 6 << 20));
    assert_eq!(a_report.transports, 6, "five cut, one whole");
    assert_eq!(b_report.transports, 6);
    for report in [&a_report, &b_report] {
        assert!(report.peak_unacknowledged <= max, "{report:?}");
        assert!(report.peak_undelivered <= max, "{report:?}");
    }
    assert!(
        a_report.retransmitted > 0,
        "a's first transport was cut inside data"
    );
    let lost = a_events
        .iter()
        .filter(|event| matches!(event, SessionEvent::TransportLost { .. }))
        .count();
    assert_eq!(lost, 5, "{a_events:?}");
    let resumed: u64 = a_events
        .iter()
        .filter_map(|event| match event {
            SessionEvent::Resumed { retransmitted, .. } => Some(*retransmitted),
            _ => None,
        })
        .sum();
    assert_eq!(resumed, a_report.retransmitted, "{a_events:?}");
    assert_eq!(
        drain(&mut b.events).len(),
        1,
        "b's first event, the rest dropped"
    );
}

#[tokio::test]
async fn a_transport_handed_in_replaces_the_current_one() {
    let a = start(settings(64 << 10));
    let mut b = start(settings(64 << 10));
    join(&a.transports, &b.transports, (WHOLE, WHOLE));
    let (mut a_local, mut b_local) = (a.local, b.local);
    a_local.write_all(b"before ").await.unwrap();
    let mut got = [0; 7];
    b_local.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"before ");

    // The peer moved to a new circuit before the old one failed.
    join(&a.transports, &b.transports, (WHOLE, WHOLE));
    a_local.write_all(b"after").await.unwrap();
    a_local.shutdown().await.unwrap();
    b_local.shutdown().await.unwrap();
    let mut rest = Vec::new();
    b_local.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"after");
    let mut nothing = Vec::new();
    a_local.read_to_end(&mut nothing).await.unwrap();
    assert!(nothing.is_empty());

    let report = finish(a.session).await.unwrap();
    assert_eq!((report.sent, report.transports), (12, 2));
    finish(b.session).await.unwrap();
    let mut a_events = a.events;
    let a_events = drain(&mut a_events);
    assert!(
        a_events.contains(&SessionEvent::TransportLost {
            reason: "replaced by a newer transport".into(),
            generation: 1
        }),
        "{a_events:?}"
    );
    assert!(
        a_events
            .iter()
            .any(|event| matches!(event, SessionEvent::Resumed { generation: 2, .. })),
        "{a_events:?}"
    );
    assert!(!drain(&mut b.events).is_empty());
}

#[tokio::test]
async fn half_close_in_each_direction_leaves_the_other_open() {
    for a_first in [true, false] {
        tokio::time::timeout(GUARD, half_close(a_first))
            .await
            .expect("a half-closed session hung");
    }
}

async fn half_close(a_first: bool) {
    {
        let a = start(settings(64 << 10));
        let b = start(settings(64 << 10));
        join(&a.transports, &b.transports, (WHOLE, WHOLE));
        let (mut first, mut second) = if a_first {
            (a.local, b.local)
        } else {
            (b.local, a.local)
        };
        first.write_all(b"request").await.unwrap();
        first.shutdown().await.unwrap();
        let mut request = Vec::new();
        second.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"request", "the first side's end arrives as EOF");

        // The second side still talks, after its peer's half-close.
        // More than all the buffers between them hold: read while it is written.
        let response = stream(3, 300_000);
        let answering = async {
            second.write_all(&response).await.unwrap();
            second.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let ((), read) = tokio::join!(answering, first.read_to_end(&mut got));
        read.unwrap();
        assert!(got == response);

        let a_report = finish(a.session).await.unwrap();
        let b_report = finish(b.session).await.unwrap();
        let (a_sent, b_sent) = if a_first { (7, 300_000) } else { (300_000, 7) };
        assert_eq!((a_report.sent, a_report.received), (a_sent, b_sent));
        assert_eq!((b_report.sent, b_report.received), (b_sent, a_sent));
    }
}

#[tokio::test]
async fn no_transport_within_resume_within_ends_the_session() {
    let quick = SessionSettings {
        resume_within: Duration::from_millis(100),
        ..settings(64 << 10)
    };
    // None ever handed in.
    let never = start(quick.clone());
    let err = finish(never.session).await.unwrap_err();
    assert_eq!(err.label(), "no_transport", "{err}");

    // One that fails, and no other.
    let mut lost = start(quick.clone());
    let (transport, peer) = duplex(1024);
    lost.transports
        .try_send(Cut {
            inner: transport,
            budget: WHOLE,
        })
        .unwrap();
    drop(peer);
    let started = tokio::time::Instant::now();
    let err = finish(lost.session).await.unwrap_err();
    assert!(matches!(err, SessionError::NoTransport { waited } if waited == quick.resume_within));
    assert!(started.elapsed() >= quick.resume_within);
    let events = drain(&mut lost.events);
    assert!(
        matches!(
            &events[..],
            [SessionEvent::TransportLost { generation: 1, .. }]
        ),
        "{events:?}"
    );

    // The owner closes the channel of transports: at once, no waiting.
    let closed = start(settings(64 << 10));
    drop(closed.transports);
    let err = finish(closed.session).await.unwrap_err();
    assert_eq!(err.label(), "no_transport");
}

/// A local side whose reads fail: the client's connection was reset.
struct Broken;

impl AsyncRead for Broken {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client reset",
        )))
    }
}

impl AsyncWrite for Broken {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_local_failure_aborts_the_peer() {
    let (a_transports, handed) = mpsc::channel(1);
    let (a_events, _events) = mpsc::channel(8);
    let a = tokio::spawn(run(Broken, handed, a_events, settings(64 << 10)));
    let mut b = start(settings(64 << 10));
    join(&a_transports, &b.transports, (WHOLE, WHOLE));

    let err = finish(a).await.unwrap_err();
    assert!(
        matches!(&err, SessionError::Local(error) if error.kind() == io::ErrorKind::ConnectionReset),
        "{err}"
    );
    let err = finish(b.session).await.unwrap_err();
    match err {
        SessionError::Aborted { reason } => assert!(reason.contains("client reset"), "{reason}"),
        other => panic!("expected an abort, got {other}"),
    }
    // b's local side was dropped without an orderly end of its writing... and without bytes.
    let mut rest = Vec::new();
    let _ = b.local.read_to_end(&mut rest).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_slow_local_reader_holds_the_sender_back_within_the_bounds() {
    let max = 128 << 10;
    let local_buffer = 16 << 10;
    let a = start_with(settings(max), local_buffer, 64);
    let b = start_with(settings(max), local_buffer, 64);
    join(&a.transports, &b.transports, (WHOLE, WHOLE));
    let data = stream(4, 8 << 20);
    let written = Arc::new(AtomicU64::new(0));
    let (mut a_local, mut b_local) = (a.local, b.local);
    let writer = {
        let (data, written) = (data.clone(), written.clone());
        tokio::spawn(async move {
            for chunk in data.chunks(4096) {
                a_local.write_all(chunk).await.unwrap();
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            a_local.shutdown().await.unwrap();
            a_local
        })
    };

    // b's client reads nothing for a while: a's client must stall once every buffer between
    // them is full: both local pipes, a's retransmission buffer, b's window, the transport.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled = written.load(Ordering::SeqCst);
    let bound = 2 * local_buffer + 2 * max + (64 << 10) + 4 * frame::MAX_FRAME_LEN;
    assert!(
        stalled as usize <= bound,
        "{stalled} bytes written past a stalled reader"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        written.load(Ordering::SeqCst),
        stalled,
        "the writer is held back"
    );

    let mut got = Vec::new();
    b_local.read_to_end(&mut got).await.unwrap();
    assert!(got == data);
    let mut a_local = finish(writer).await;
    b_local.shutdown().await.unwrap();
    a_local.read_to_end(&mut Vec::new()).await.unwrap();
    let report = finish(a.session).await.unwrap();
    assert!(report.peak_unacknowledged <= max, "{report:?}");
    assert_eq!(
        report.peak_unacknowledged, max,
        "the buffer filled, then held"
    );
    let report = finish(b.session).await.unwrap();
    assert!(report.peak_undelivered <= max, "{report:?}");
}

/// a's client writes everything before it reads; b's echoes as it reads. b's replies wait for
/// a's client, but a must still hear b's acknowledgements, or both would wait for ever.
#[tokio::test]
async fn a_stalled_direction_does_not_stall_the_other() {
    let max = 64 << 10;
    let a = start_with(settings(max), 4096, 64);
    let b = start_with(settings(max), 4096, 64);
    join(&a.transports, &b.transports, (WHOLE, WHOLE));
    let data = stream(5, 1 << 20);
    let echo = tokio::spawn(async move {
        let (mut from, mut to) = tokio::io::split(b.local);
        let mut buf = vec![0; 8192];
        let mut echoed = 0;
        loop {
            match from.read(&mut buf).await.unwrap() {
                0 => break,
                read => {
                    // Replies only the first 100 KiB: more than the buffers between them.
                    let keep = read.min((100 << 10) - echoed.min(100 << 10));
                    to.write_all(&buf[..keep]).await.unwrap();
                    echoed += keep;
                }
            }
        }
        to.shutdown().await.unwrap();
    });
    let mut a_local = a.local;
    tokio::time::timeout(GUARD, a_local.write_all(&data))
        .await
        .expect("a's client was never let through")
        .unwrap();
    a_local.shutdown().await.unwrap();
    let mut got = Vec::new();
    a_local.read_to_end(&mut got).await.unwrap();
    assert!(got == data[..100 << 10]);
    finish(echo).await;
    finish(a.session).await.unwrap();
    finish(b.session).await.unwrap();
}
