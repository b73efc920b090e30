//! One session against a peer the test plays by hand, frame by frame: each malformed or
//! out-of-order frame ends the session with its own label (and the peer is told why), and a
//! Resume on a new transport is answered from exactly the offset it names.

use super::*;

/// Bytes of a frame whose body is `body`.
fn raw(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn resume(received: u64) -> Vec<u8> {
    SessionFrame::Resume {
        received,
        window: 1 << 20,
    }
    .encode()
}

fn data(offset: u64, bytes: &[u8]) -> Vec<u8> {
    SessionFrame::Data {
        offset,
        bytes: bytes.to_vec(),
    }
    .encode()
}

fn ack(received: u64, finished: bool) -> Vec<u8> {
    SessionFrame::Ack {
        received,
        window: 1 << 20,
        finished,
    }
    .encode()
}

fn finish(length: u64) -> Vec<u8> {
    SessionFrame::Finish { length }.encode()
}

/// Every frame in `bytes`, which must hold whole frames only.
fn frames(mut bytes: &[u8]) -> Vec<SessionFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let len = 4 + frame::body_len(bytes[..4].try_into().unwrap()).unwrap();
        frames.push(SessionFrame::decode(&bytes[..len]).unwrap());
        bytes = &bytes[len..];
    }
    frames
}

/// Runs a session (window 1 KiB) against a peer that sends `sent`, then reads what the session
/// sends until it closes the transport. Returns the session's error and its frames.
async fn refused(sent: &[Vec<u8>]) -> (SessionError, Vec<SessionFrame>) {
    let (local, _client) = duplex(4096);
    let (transports, handed) = mpsc::channel(1);
    let (events, _events) = mpsc::channel(8);
    let (transport, mut peer) = duplex(64 << 10);
    transports.try_send(transport).unwrap();
    let session = tokio::spawn(run(local, handed, events, settings(1024)));
    for frame in sent {
        // The session may already have dropped the transport.
        let _ = peer.write_all(frame).await;
    }
    let mut from_session = Vec::new();
    let _ = peer.read_to_end(&mut from_session).await;
    drop(peer);
    let err = super::finish(session).await.unwrap_err();
    (err, frames(&from_session))
}

#[tokio::test]
async fn each_malformed_or_out_of_order_frame_is_refused_with_its_label() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("unknown_kind", vec![raw(&[9, 0, 0])]),
        ("frame_too_large", vec![u32::MAX.to_be_bytes().to_vec()]),
        ("empty_frame", vec![raw(&[])]),
        ("trailing_bytes", vec![raw(&[4, 0, 0, 0, 0, 0, 0, 0, 0, 7])]),
        (
            "empty_data",
            vec![resume(0), raw(&[2, 0, 0, 0, 0, 0, 0, 0, 0])],
        ),
        ("expected_resume", vec![data(0, b"x")]),
        ("expected_resume", vec![ack(0, false)]),
        ("repeated_resume", vec![resume(0), resume(0)]),
        ("resume_out_of_range", vec![resume(5)]),
        ("ack_out_of_range", vec![resume(0), ack(10, false)]),
        ("unexpected_finish_ack", vec![resume(0), ack(0, true)]),
        ("data_gap", vec![resume(0), data(5, b"x")]),
        (
            "data_beyond_finish",
            vec![resume(0), data(0, b"ab"), finish(2), data(2, b"c")],
        ),
        ("window_exceeded", vec![resume(0), data(0, &[7; 1025])]),
        (
            "finish_mismatch",
            vec![resume(0), data(0, b"abc"), finish(5)],
        ),
        (
            "finish_changed",
            vec![resume(0), data(0, b"abc"), finish(3), finish(4)],
        ),
    ];
    for (label, sent) in cases {
        let (err, from_session) = refused(&sent).await;
        assert!(
            matches!(&err, SessionError::Protocol(error) if error.label() == label),
            "{label}: {err}"
        );
        assert_eq!(err.label(), label);
        assert_eq!(
            from_session.first(),
            Some(&SessionFrame::Resume {
                received: 0,
                window: 1024
            }),
            "{label}"
        );
        match from_session.last() {
            Some(SessionFrame::Abort { reason }) => {
                assert_eq!(reason, &err.to_string(), "{label}: the peer is told why")
            }
            other => panic!("{label}: the session ended without an Abort: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_resume_drops_what_the_peer_has_and_resends_the_rest() {
    let (local, mut client) = duplex(4096);
    let (transports, handed) = mpsc::channel(1);
    let (events, mut events_seen) = mpsc::channel(8);
    let session = tokio::spawn(run(local, handed, events, settings(1024)));
    client.write_all(b"0123456789").await.unwrap();

    let (transport, mut peer) = duplex(4096);
    transports.send(transport).await.unwrap();
    peer.write_all(&resume(0)).await.unwrap();
    // The session's Resume, then its data, as one or more frames.
    let got = read_data(&mut peer, 10).await;
    assert_eq!(got, b"0123456789");
    drop(peer);

    // A new transport: the peer says it took 4 bytes; the session sends from byte 4 on.
    let (transport, mut peer) = duplex(4096);
    transports.send(transport).await.unwrap();
    peer.write_all(&resume(4)).await.unwrap();
    client.shutdown().await.unwrap();
    let mut from_session = Vec::new();
    let mut buf = [0; 4096];
    while !frames_done(&from_session) {
        let read = peer.read(&mut buf).await.unwrap();
        assert_ne!(read, 0, "the session closed early");
        from_session.extend_from_slice(&buf[..read]);
    }
    let sent = frames(&from_session);
    assert!(
        sent.contains(&SessionFrame::Data {
            offset: 4,
            bytes: b"456789".to_vec()
        }),
        "{sent:?}"
    );
    assert_eq!(sent.last(), Some(&SessionFrame::Finish { length: 10 }));
    let events = drain_when_some(&mut events_seen).await;
    assert!(
        events.contains(&SessionEvent::Resumed {
            generation: 2,
            retransmitted: 6
        }),
        "{events:?}"
    );
    drop(peer);
    drop(transports);
    let err = super::finish(session).await.unwrap_err();
    assert_eq!(err.label(), "no_transport");
}

/// The session's data frames, in order from offset 0, until `want` bytes came; Resume and Ack
/// frames are passed over.
async fn read_data(peer: &mut DuplexStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let mut header = [0; 4];
        peer.read_exact(&mut header).await.unwrap();
        let mut body = vec![0; frame::body_len(header).unwrap()];
        peer.read_exact(&mut body).await.unwrap();
        match SessionFrame::decode(&[&header[..], &body].concat()).unwrap() {
            SessionFrame::Data { offset, bytes } => {
                assert_eq!(offset as usize, got.len());
                got.extend(bytes);
            }
            SessionFrame::Resume { .. } | SessionFrame::Ack { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

/// Whole frames received, the last a Finish.
fn frames_done(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let mut last = None;
    while rest.len() >= 4 {
        let len = 4 + frame::body_len(rest[..4].try_into().unwrap()).unwrap();
        if rest.len() < len {
            return false;
        }
        last = Some(SessionFrame::decode(&rest[..len]).unwrap());
        rest = &rest[len..];
    }
    rest.is_empty() && matches!(last, Some(SessionFrame::Finish { .. }))
}

async fn drain_when_some(events: &mut mpsc::Receiver<SessionEvent>) -> Vec<SessionEvent> {
    let mut seen = vec![events.recv().await.unwrap()];
    seen.extend(drain(events));
    seen
}

/// Frames of every kind with small, colliding numbers, in any order, on a second transport
/// after a first that carried 10 bytes: whatever a peer sends, the session ends (well or with
/// an error) and never panics.
#[tokio::test]
async fn random_frames_from_a_peer_never_panic_the_session() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for _ in 0..1000 {
        let (local, mut client) = duplex(4096);
        let (transports, handed) = mpsc::channel(1);
        let (events, _events) = mpsc::channel(8);
        let quick = SessionSettings {
            resume_within: Duration::from_millis(50),
            ..settings(64)
        };
        let session = tokio::spawn(run(local, handed, events, quick));
        client.write_all(b"0123456789").await.unwrap();
        if next(2) == 0 {
            client.shutdown().await.unwrap();
        }
        let (transport, mut peer) = duplex(64 << 10);
        transports.send(transport).await.unwrap();
        peer.write_all(&resume(0)).await.unwrap();
        read_data(&mut peer, 10).await;
        drop(peer);

        let (transport, mut peer) = duplex(64 << 10);
        transports.send(transport).await.unwrap();
        drop(transports);
        let mut sent = Vec::new();
        for _ in 0..next(8) {
            let frame = match next(9) {
                0 | 1 => SessionFrame::Resume {
                    received: next(12),
                    window: next(12) as u32,
                },
                2 | 3 => SessionFrame::Data {
                    offset: next(16),
                    bytes: vec![7; 1 + next(40) as usize],
                },
                4 | 5 => SessionFrame::Ack {
                    received: next(12),
                    window: next(12) as u32,
                    finished: next(2) == 0,
                },
                6 | 7 => SessionFrame::Finish { length: next(16) },
                _ => SessionFrame::Abort {
                    reason: "test".into(),
                },
            };
            frame.encode_into(&mut sent);
        }
        // Its writing ends; its reading stays, so the session's writes never fail first.
        peer.write_all(&sent).await.unwrap();
        peer.shutdown().await.unwrap();
        let outcome = tokio::time::timeout(GUARD, session)
            .await
            .expect("the session hung");
        assert!(outcome.is_ok(), "the session panicked on {sent:?}");
        drop((client, peer));
    }
}

/// The peer aborts and is gone at once: the session's own writes fail, yet it still hears the
/// Abort that had arrived, rather than waiting for a transport that will never come.
#[tokio::test]
async fn an_abort_is_heard_even_when_the_peer_is_already_gone() {
    for _ in 0..50 {
        let (local, _client) = duplex(4096);
        let (transports, handed) = mpsc::channel(1);
        let (events, _events) = mpsc::channel(8);
        let (transport, mut peer) = duplex(64 << 10);
        let mut sent = resume(0);
        SessionFrame::Abort {
            reason: "client reset".into(),
        }
        .encode_into(&mut sent);
        peer.write_all(&sent).await.unwrap();
        drop(peer);
        transports.try_send(transport).unwrap();
        let err = super::finish(tokio::spawn(run(local, handed, events, settings(1024))))
            .await
            .unwrap_err();
        assert_eq!(err.label(), "aborted", "{err}");
    }
}

/// The next whole frame from the session; `None` once it closed the transport.
async fn read_frame(peer: &mut DuplexStream) -> Option<SessionFrame> {
    let mut header = [0; 4];
    peer.read_exact(&mut header).await.ok()?;
    let mut body = vec![0; frame::body_len(header).unwrap()];
    peer.read_exact(&mut body).await.unwrap();
    Some(SessionFrame::decode(&[&header[..], &body].concat()).unwrap())
}

/// A session that has every byte both ways and then loses its transport before it could tell
/// the peer that the peer's stream arrived whole (TCP's TIME-WAIT): a session with `b"abc"` to
/// send and `b"xy"` to receive, whose peer acknowledges all of `abc`, sends its Finish, and
/// breaks the transport inside the next frame, gone before the session's last acknowledgement
/// can be written. Returns the session, its client end, its transports and events.
async fn settled_then_broken(
    settings: SessionSettings,
) -> (
    JoinHandle<Result<SessionReport, SessionError>>,
    DuplexStream,
    mpsc::Sender<DuplexStream>,
    mpsc::Receiver<SessionEvent>,
) {
    let (local, mut client) = duplex(4096);
    let (transports, handed) = mpsc::channel(1);
    let (events, events_seen) = mpsc::channel(8);
    let session = tokio::spawn(run(local, handed, events, settings));
    client.write_all(b"abc").await.unwrap();
    client.shutdown().await.unwrap();

    let (transport, mut peer) = duplex(4096);
    transports.send(transport).await.unwrap();
    peer.write_all(&[resume(0), data(0, b"xy")].concat())
        .await
        .unwrap();
    while read_frame(&mut peer).await != Some(SessionFrame::Finish { length: 3 }) {}
    peer.write_all(&[ack(3, true), finish(2), vec![0, 0]].concat())
        .await
        .unwrap();
    drop(peer);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"xy");
    (session, client, transports, events_seen)
}

#[tokio::test]
async fn a_settled_session_answers_a_late_resumption_with_its_last_acknowledgement() {
    let (session, _client, transports, mut events) = settled_then_broken(settings(1024)).await;
    // The peer never heard that its stream arrived whole: it resumes on a new transport.
    let (transport, mut peer) = duplex(4096);
    transports.send(transport).await.unwrap();
    peer.write_all(&resume(3)).await.unwrap();
    let mut answered = Vec::new();
    while let Some(frame) = read_frame(&mut peer).await {
        answered.push(frame);
    }
    assert_eq!(
        answered,
        [
            SessionFrame::Resume {
                received: 2,
                window: 1024
            },
            SessionFrame::Ack {
                received: 2,
                window: 1024,
                finished: true
            }
        ],
        "the last acknowledgement again, nothing resent, then the session closes"
    );
    drop(peer);
    let report = super::finish(session).await.unwrap();
    assert_eq!((report.sent, report.received, report.transports), (3, 2, 2));
    let events = drain_when_some(&mut events).await;
    assert!(
        matches!(
            &events[..],
            [
                SessionEvent::TransportLost { generation: 1, .. },
                SessionEvent::Resumed {
                    generation: 2,
                    retransmitted: 0
                }
            ]
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_settled_session_waits_out_the_resume_time_then_ends_well() {
    let quick = SessionSettings {
        resume_within: Duration::from_millis(300),
        ..settings(1024)
    };
    let (session, _client, _transports, _events) = settled_then_broken(quick.clone()).await;
    let waiting = tokio::time::Instant::now();
    let report = super::finish(session).await.unwrap();
    assert!(
        waiting.elapsed() >= quick.resume_within / 2,
        "it waited for a resumption"
    );
    assert_eq!((report.sent, report.received, report.transports), (3, 2, 1));

    // The owner closing the channel ends the wait at once, just as well.
    let (session, _client, transports, _events) = settled_then_broken(settings(1024)).await;
    drop(transports);
    let report = super::finish(session).await.unwrap();
    assert_eq!((report.sent, report.received), (3, 2));
}
