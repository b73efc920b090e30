use super::*;
use crate::stratum::line::LineBuffer;

// The braiins.com Stratum V1 session (anchors-mining-site.md, section (b)).
const SUBSCRIBE: &str = r#"{"id": 1, "method": "mining.subscribe", "params": []}"#;
const SUBSCRIBE_REPLY: &str = r#"{"id": 1, "result": [[["mining.set_difficulty","b4b6693b72a50c7116db18d6497cac52"],["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"08000002",4],"error": null}"#;
const AUTHORIZE: &str =
    r#"{"params": ["slush.miner1","password"], "id": 2, "method": "mining.authorize"}"#;
const SET_DIFFICULTY: &str = r#"{"id": null, "method": "mining.set_difficulty", "params": [2]}"#;
const NOTIFY: &str = r#"{"params": ["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",[], "00000002", "1c2ac4af", "504e86b9", false], "id": null, "method": "mining.notify"}"#;
const SUBMIT: &str = r#"{"params": ["slush.miner1","bf","00000001","504e86ed","b2957c02"], "id": 4, "method": "mining.submit"}"#;
const CONFIGURE: &str = r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#;
const CONFIGURE_REPLY: &str =
    r#"{"error":null,"id":1,"result":{"version-rolling":true,"version-rolling.mask":"18000000"}}"#;

fn client(line: &str) -> ClientMessage {
    ClientMessage::parse(line.as_bytes()).unwrap()
}

fn server(line: &str) -> ServerMessage {
    ServerMessage::parse(line.as_bytes()).unwrap()
}

fn roundtrip_client(m: &ClientMessage) {
    let line = m.encode();
    assert!(line.ends_with('\n'));
    assert_eq!(&ClientMessage::parse(line.as_bytes()).unwrap(), m);
}

fn roundtrip_server(m: &ServerMessage) {
    let line = m.encode();
    assert!(line.ends_with('\n'));
    assert_eq!(&ServerMessage::parse(line.as_bytes()).unwrap(), m);
}

#[test]
fn braiins_session_parses_into_typed_messages() {
    let sub = client(SUBSCRIBE);
    assert_eq!(sub.id, RequestId::Number(1));
    assert_eq!(
        sub.request,
        ClientRequest::Subscribe {
            user_agent: None,
            session_id: None
        }
    );

    let ServerMessage::Response {
        id,
        outcome: Ok(result),
    } = server(SUBSCRIBE_REPLY)
    else {
        panic!("not a result")
    };
    assert_eq!(id, Some(RequestId::Number(1)));
    let subscribed = SubscribeResult::from_json(&result).unwrap();
    assert_eq!(subscribed.extranonce1, vec![0x08, 0, 0, 0x02]);
    assert_eq!(subscribed.extranonce2_size, 4);
    assert_eq!(subscribed.subscriptions[1].0, "mining.notify");
    assert_eq!(
        SubscribeResult::from_json(&subscribed.to_json()).unwrap(),
        subscribed
    );

    assert_eq!(
        client(AUTHORIZE).request,
        ClientRequest::Authorize {
            worker: "slush.miner1".into(),
            password: "password".into()
        }
    );
    assert_eq!(server(SET_DIFFICULTY), ServerMessage::SetDifficulty(2.0));

    let ServerMessage::Notify(notify) = server(NOTIFY) else {
        panic!("not a notify")
    };
    assert_eq!(notify.job_id, "bf");
    assert_eq!(notify.prevhash[0..4], [0x4d, 0x16, 0xb6, 0xf8]);
    assert_eq!(notify.coinb1.len(), 58);
    assert!(notify.merkle_branch.is_empty());
    assert_eq!(
        (notify.version, notify.nbits, notify.ntime),
        (2, 0x1c2ac4af, 0x504e86b9)
    );
    assert!(!notify.clean_jobs);

    let ClientRequest::Submit(submit) = client(SUBMIT).request else {
        panic!("not a submit")
    };
    assert_eq!(submit.worker, "slush.miner1");
    assert_eq!(submit.extranonce2, vec![0, 0, 0, 1]);
    assert_eq!(
        (submit.ntime, submit.nonce, submit.version_bits),
        (0x504e86ed, 0xb2957c02, None)
    );
}

#[test]
fn version_rolling_is_negotiated_and_submitted() {
    let ClientRequest::Configure {
        extensions,
        version_rolling,
    } = client(CONFIGURE).request
    else {
        panic!()
    };
    assert_eq!(extensions, vec!["version-rolling".to_string()]);
    assert_eq!(
        version_rolling,
        Some(VersionRollingRequest {
            mask: 0x1fffe000,
            min_bit_count: 2
        })
    );
    let ServerMessage::Response {
        outcome: Ok(result),
        ..
    } = server(CONFIGURE_REPLY)
    else {
        panic!()
    };
    assert_eq!(
        ConfigureResult::from_json(&result)
            .unwrap()
            .version_rolling_mask,
        Some(0x18000000)
    );
    let declined = ConfigureResult {
        version_rolling_mask: None,
    };
    assert_eq!(
        ConfigureResult::from_json(&declined.to_json()).unwrap(),
        declined
    );

    let six = r#"{"id":5,"method":"mining.submit","params":["w","bf","00000001","504e86ed","b2957c02","08000000"]}"#;
    let ClientRequest::Submit(submit) = client(six).request else {
        panic!()
    };
    assert_eq!(submit.version_bits, Some(0x08000000));
    assert_eq!(
        server(r#"{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}"#),
        ServerMessage::SetVersionMask(0x1fffe000)
    );
}

#[test]
fn every_message_roundtrips() {
    for line in [SUBSCRIBE, AUTHORIZE, SUBMIT, CONFIGURE] {
        roundtrip_client(&client(line));
    }
    for request in [
        ClientRequest::Subscribe {
            user_agent: Some("bmminer/2.0".into()),
            session_id: Some("abc".into()),
        },
        ClientRequest::Subscribe {
            user_agent: None,
            session_id: Some("abc".into()),
        },
        ClientRequest::Subscribe {
            user_agent: Some("cgminer/4.11.1".into()),
            session_id: None,
        },
        ClientRequest::ExtranonceSubscribe,
        ClientRequest::SuggestDifficulty(0.5),
        ClientRequest::Configure {
            extensions: vec!["minimum-difficulty".into()],
            version_rolling: None,
        },
    ] {
        roundtrip_client(&ClientMessage {
            id: RequestId::Text("x".into()),
            request,
        });
    }
    for line in [SUBSCRIBE_REPLY, SET_DIFFICULTY, NOTIFY, CONFIGURE_REPLY] {
        roundtrip_server(&server(line));
    }
    roundtrip_server(&ServerMessage::SetExtranonce {
        extranonce1: vec![1, 2, 3, 4],
        extranonce2_size: 4,
    });
    roundtrip_server(&ServerMessage::SetVersionMask(0x1fffe000));
    roundtrip_server(&ServerMessage::result(
        RequestId::Number(4),
        serde_json::json!(true),
    ));
    for code in [20, 21, 22, 23, 24, 25, -1] {
        roundtrip_server(&ServerMessage::error(
            Some(RequestId::Number(9)),
            StratumErrorCode::from_code(code),
        ));
    }
}

#[test]
fn error_codes_are_typed() {
    let rejected = server(r#"{"id":4,"result":false,"error":[21,"Job not found",null]}"#);
    let ServerMessage::Response {
        outcome: Err(e), ..
    } = rejected
    else {
        panic!()
    };
    assert_eq!(e.code, StratumErrorCode::JobNotFound);
    assert_eq!(e.message, "Job not found");
    for (code, typed) in [
        (20, StratumErrorCode::Other),
        (21, StratumErrorCode::JobNotFound),
        (22, StratumErrorCode::DuplicateShare),
        (23, StratumErrorCode::LowDifficulty),
        (24, StratumErrorCode::UnauthorizedWorker),
        (25, StratumErrorCode::NotSubscribed),
        (-3, StratumErrorCode::Unknown(-3)),
    ] {
        assert_eq!(StratumErrorCode::from_code(code), typed);
        assert_eq!(typed.code(), code);
    }
    // The object form some pools send.
    let ServerMessage::Response {
        outcome: Err(e), ..
    } = server(r#"{"id":4,"result":null,"error":{"code":23,"message":"Low difficulty"}}"#)
    else {
        panic!()
    };
    assert_eq!(e.code, StratumErrorCode::LowDifficulty);
}

#[test]
fn malformed_input_gives_typed_errors() {
    let c = |line: &str| ClientMessage::parse(line.as_bytes()).unwrap_err();
    let s = |line: &str| ServerMessage::parse(line.as_bytes()).unwrap_err();
    assert!(matches!(c("{"), MessageError::Json(_)));
    assert!(matches!(c("[1,2]"), MessageError::NotAnObject));
    assert!(
        matches!(c(r#"{"id":1,"method":"mining.steal","params":[]}"#), MessageError::UnknownMethod(m) if m == "mining.steal")
    );
    assert!(matches!(
        s(r#"{"id":null,"method":"client.reconnect","params":[]}"#),
        MessageError::UnknownMethod(_)
    ));
    assert!(matches!(
        c(r#"{"id":{},"method":"mining.subscribe","params":[]}"#),
        MessageError::BadId
    ));
    assert!(matches!(
        c(r#"{"id":null,"method":"mining.subscribe","params":[]}"#),
        MessageError::BadId
    ));
    assert!(matches!(
        c(r#"{"id":1,"params":[]}"#),
        MessageError::NoMethod
    ));
    assert!(matches!(
        c(r#"{"id":1,"method":"mining.authorize","params":[]}"#),
        MessageError::BadParams { .. }
    ));
    assert!(matches!(
        c(r#"{"id":1,"method":"mining.submit","params":["w","j","00","00000000"]}"#),
        MessageError::BadParams { .. }
    ));
    // Hex fields: odd length, not hex, and wrong byte counts.
    for (params, field) in [
        (r#"["w","j","0","504e86ed","b2957c02"]"#, "extranonce2"),
        (r#"["w","j","zz","504e86ed","b2957c02"]"#, "extranonce2"),
        (r#"["w","j","00","504e86","b2957c02"]"#, "ntime"),
        (r#"["w","j","00","504e86ed","b2957c0200"]"#, "nonce"),
        (
            r#"["w","j","00","504e86ed","b2957c02","1"]"#,
            "version bits",
        ),
        (r#"["w","j","00","504e86ed",7]"#, "nonce"),
    ] {
        let line = format!(r#"{{"id":1,"method":"mining.submit","params":{params}}}"#);
        assert!(
            matches!(c(&line), MessageError::BadHex { field: f, .. } if f == field),
            "{params}"
        );
    }
    let short_prevhash = NOTIFY.replace(
        "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
        "4d16b6f8",
    );
    assert!(matches!(
        s(&short_prevhash),
        MessageError::BadHex {
            field: "prevhash",
            ..
        }
    ));
    let long_nbits = NOTIFY.replace("\"1c2ac4af\"", "\"1c2ac4af00\"");
    assert!(matches!(
        s(&long_nbits),
        MessageError::BadHex { field: "nbits", .. }
    ));
    let short_version = NOTIFY.replace("\"00000002\"", "\"02\"");
    assert!(matches!(
        s(&short_version),
        MessageError::BadHex {
            field: "version",
            ..
        }
    ));
    let bad_branch = NOTIFY.replace("[], \"00000002\"", "[\"00\"], \"00000002\"");
    assert!(matches!(
        s(&bad_branch),
        MessageError::BadHex {
            field: "merkle branch",
            ..
        }
    ));
    assert!(matches!(
        s(r#"{"id":null,"method":"mining.set_difficulty","params":[-1]}"#),
        MessageError::BadParams { .. }
    ));
    assert!(matches!(
        s(r#"{"id":null,"method":"mining.set_difficulty","params":["2"]}"#),
        MessageError::BadParams { .. }
    ));
    assert!(matches!(s(r#"{"id":1}"#), MessageError::NoMethod));
}

#[test]
fn long_lines_are_refused_before_parsing() {
    let long = vec![b' '; MAX_LINE_LEN + 1];
    assert_eq!(
        ClientMessage::parse(&long).unwrap_err(),
        MessageError::LineTooLong {
            len: MAX_LINE_LEN + 1,
            max: MAX_LINE_LEN
        }
    );
    assert!(matches!(
        ServerMessage::parse(&long).unwrap_err(),
        MessageError::LineTooLong { .. }
    ));
}

/// A small deterministic generator (xorshift64*), so the property loops need no extra crate and
/// a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_lines_never_panic() {
    let mut rng = Rng(0x5eed_cafe);
    let corpus = [
        SUBSCRIBE,
        SUBSCRIBE_REPLY,
        AUTHORIZE,
        SET_DIFFICULTY,
        NOTIFY,
        SUBMIT,
        CONFIGURE,
        CONFIGURE_REPLY,
    ];
    let alphabet = b"{}[]\":,0123456789abcdefx-.e nulltruefalse";
    for round in 0..20_000 {
        let mut line: Vec<u8> = corpus[round % corpus.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(line.len() + 1);
            match rng.below(3) {
                0 if at < line.len() => {
                    line.remove(at);
                }
                1 if at < line.len() => line[at] = alphabet[rng.below(alphabet.len())],
                _ => line.insert(
                    at,
                    if rng.below(4) == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    },
                ),
            }
        }
        // Whatever parses must encode to a line that parses again.
        if let Ok(m) = ClientMessage::parse(&line) {
            assert!(
                ClientMessage::parse(m.encode().as_bytes()).is_ok(),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        if let Ok(m) = ServerMessage::parse(&line) {
            assert!(
                ServerMessage::parse(m.encode().as_bytes()).is_ok(),
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    for _ in 0..5_000 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
        let _ = ClientMessage::parse(&bytes);
        let _ = ServerMessage::parse(&bytes);
        let mut buffer = LineBuffer::new(64);
        buffer.extend(&bytes);
        while buffer.next_line().is_some() {}
    }
}
