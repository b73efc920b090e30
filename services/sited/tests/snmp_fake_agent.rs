//! The SNMP driver against a fake agent on loopback that can lie: garbage, answers to another
//! request id, error-status, variables out of order, silence; and the batching of OIDs into
//! bounded GETs.

mod snmp_support;

use std::sync::{Arc, Mutex};

use sited::sensor::{LostReason, SensorEvent, Value};
use sited::snmp::{SnmpPoller, SnmpSettings};
use snmp_support::{ber, drain, lost_reason, sample_of};
use snmp2::{MessageType, Pdu};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const COMMUNITY: &[u8] = b"public";

/// One GET as the fake agent saw it.
#[derive(Debug, Clone)]
struct Request {
    id: i32,
    /// Content bytes of each requested OID.
    oids: Vec<Vec<u8>>,
}

/// What the fake agent sends back to request number `n` (0-based): a list of datagrams.
type Script = dyn Fn(usize, &Request) -> Vec<Vec<u8>> + Send + Sync;

struct FakeAgent {
    address: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeAgent {
    async fn start(script: Box<Script>) -> FakeAgent {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let pdu = Pdu::from_bytes(&buf[..len]).expect("the driver sends valid SNMP");
                assert_eq!(pdu.message_type, MessageType::GetRequest);
                assert_eq!(pdu.community, COMMUNITY);
                let request = Request {
                    id: pdu.req_id,
                    oids: pdu
                        .varbinds
                        .clone()
                        .map(|(oid, _)| oid.as_bytes().to_vec())
                        .collect(),
                };
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                for datagram in script(n, &request) {
                    let _ = socket.send_to(&datagram, peer).await;
                }
            }
        });
        FakeAgent { address, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// An answer to `request` with id `id` giving every OID the INTEGER of its last arc byte
/// (`.1.0` → 0, so the fake agent's OIDs below end in their value: `.42` → 42).
fn answer_with_id(request: &Request, id: i32) -> Vec<u8> {
    let varbinds: Vec<Vec<u8>> = request
        .oids
        .iter()
        .map(|oid| ber::varbind(oid, &ber::integer(i64::from(*oid.last().unwrap()))))
        .collect();
    ber::response(COMMUNITY, id, 0, 0, &varbinds)
}

fn answer(request: &Request) -> Vec<u8> {
    answer_with_id(request, request.id)
}

fn settings(agent: &FakeAgent, retries: u32, per_request: usize, sensors: usize) -> SnmpSettings {
    let oids: String = (0..sensors)
        .map(|i| {
            format!(
                "[[oid]]\nsensor = \"probe.s{i}\"\noid = \"1.3.6.1.4.1.99999.{i}.{}\"\n",
                40 + i
            )
        })
        .collect();
    let settings: SnmpSettings = toml::from_str(&format!(
        "address = \"{}\"\ncommunity = \"public\"\npoll_ms = 1000\ndeadline_ms = 200\n\
         retries = {retries}\noids_per_request = {per_request}\n{oids}",
        agent.address
    ))
    .unwrap();
    settings.validate("snmp").unwrap();
    settings
}

async fn poll(settings: &SnmpSettings) -> Vec<SensorEvent> {
    let (tx, mut rx) = mpsc::channel(256);
    let mut poller = SnmpPoller::new(settings, tx).unwrap();
    assert!(poller.poll_once().await);
    drain(&mut rx)
}

fn assert_all_malformed(events: &[SensorEvent], sensors: usize) {
    assert_eq!(events.len(), sensors, "{events:?}");
    for i in 0..sensors {
        match lost_reason(events, &format!("probe.s{i}")) {
            Some(LostReason::Malformed { .. }) => {}
            other => panic!("probe.s{i}: {other:?} in {events:?}"),
        }
    }
}

#[tokio::test]
async fn oids_are_batched_in_bounded_gets_and_each_sensor_gets_its_own_value() {
    let agent = FakeAgent::start(Box::new(|_, request| vec![answer(request)])).await;
    let events = poll(&settings(&agent, 1, 2, 5)).await;
    let sizes: Vec<usize> = agent.requests().iter().map(|r| r.oids.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(events.len(), 5);
    for i in 0..5 {
        assert_eq!(
            sample_of(&events, &format!("probe.s{i}")),
            Some(&Value::Number(40.0 + i as f64)),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn garbage_is_malformed_after_the_retries() {
    let agent = FakeAgent::start(Box::new(|_, _| {
        vec![b"\x30\x82\xff\xff\x02\x01".to_vec(), b"hello".to_vec()]
    }))
    .await;
    let events = poll(&settings(&agent, 1, 16, 2)).await;
    assert_all_malformed(&events, 2);
    assert_eq!(agent.requests().len(), 2, "one attempt and one retry");
}

#[tokio::test]
async fn an_answer_to_another_request_id_is_never_taken_for_the_answer() {
    let agent = FakeAgent::start(Box::new(|_, request| {
        vec![answer_with_id(request, request.id.wrapping_add(1))]
    }))
    .await;
    let events = poll(&settings(&agent, 0, 16, 2)).await;
    assert_all_malformed(&events, 2);
}

#[tokio::test]
async fn a_stray_answer_fails_only_its_attempt_and_the_retry_reads_the_value() {
    // The first GET gets an answer with another id (and other values); the retry is answered.
    let agent = FakeAgent::start(Box::new(|n, request| {
        if n == 0 {
            let stray: Vec<Vec<u8>> = request
                .oids
                .iter()
                .map(|oid| ber::varbind(oid, &ber::integer(999)))
                .collect();
            vec![ber::response(COMMUNITY, request.id ^ 0x55, 0, 0, &stray)]
        } else {
            vec![answer(request)]
        }
    }))
    .await;
    let events = poll(&settings(&agent, 1, 16, 1)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(sample_of(&events, "probe.s0"), Some(&Value::Number(40.0)));
    let requests = agent.requests();
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0].id, requests[1].id,
        "each attempt has its own id"
    );
}

#[tokio::test]
async fn an_error_status_is_refused_without_retrying() {
    let agent = FakeAgent::start(Box::new(|_, request| {
        let varbinds: Vec<Vec<u8>> = request
            .oids
            .iter()
            .map(|oid| ber::varbind(oid, &ber::tlv(0x05, &[])))
            .collect();
        vec![ber::response(COMMUNITY, request.id, 5, 2, &varbinds)]
    }))
    .await;
    let events = poll(&settings(&agent, 2, 16, 2)).await;
    assert_eq!(events.len(), 2);
    for sensor in ["probe.s0", "probe.s1"] {
        match lost_reason(&events, sensor) {
            Some(LostReason::Refused { detail }) => {
                assert!(
                    detail.contains("genErr") && detail.contains("99999.1.41"),
                    "{detail}"
                )
            }
            other => panic!("{sensor}: {other:?}"),
        }
    }
    assert_eq!(agent.requests().len(), 1);
}

#[tokio::test]
async fn variables_out_of_order_or_missing_are_malformed() {
    let agent = FakeAgent::start(Box::new(|n, request| {
        let mut shuffled = request.clone();
        if n == 0 {
            shuffled.oids.reverse();
        } else {
            shuffled.oids.pop();
        }
        vec![answer_with_id(&shuffled, request.id)]
    }))
    .await;
    let settings = settings(&agent, 0, 16, 2);
    assert_all_malformed(&poll(&settings).await, 2);
    assert_all_malformed(&poll(&settings).await, 2);
}

#[tokio::test]
async fn text_numbers_are_read_and_other_types_lose_only_their_sensor() {
    // s0 gets the OCTET STRING "0.15" (UCD's laLoad style), s1 an IpAddress, s2 its integer.
    let agent = FakeAgent::start(Box::new(|_, request| {
        let values = [
            ber::tlv(0x04, b"0.15"),
            ber::tlv(0x40, &[10, 0, 0, 1]),
            ber::integer(42),
        ];
        let varbinds: Vec<Vec<u8>> = request
            .oids
            .iter()
            .zip(values)
            .map(|(oid, value)| ber::varbind(oid, &value))
            .collect();
        vec![ber::response(COMMUNITY, request.id, 0, 0, &varbinds)]
    }))
    .await;
    let events = poll(&settings(&agent, 0, 16, 3)).await;
    assert_eq!(sample_of(&events, "probe.s0"), Some(&Value::Number(0.15)));
    match lost_reason(&events, "probe.s1") {
        Some(LostReason::Malformed { detail }) => {
            assert!(detail.contains("not a number"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sample_of(&events, "probe.s2"), Some(&Value::Number(42.0)));
}

#[tokio::test]
async fn a_silent_agent_times_out_after_the_retries_and_the_poll_asks_no_further() {
    let agent = FakeAgent::start(Box::new(|_, _| Vec::new())).await;
    // Four sensors in two GETs: once the first GET has timed out (twice), the second is not
    // sent; all four are lost in this poll.
    let events = poll(&settings(&agent, 1, 2, 4)).await;
    assert_eq!(events.len(), 4);
    for i in 0..4 {
        assert_eq!(
            lost_reason(&events, &format!("probe.s{i}")),
            Some(&LostReason::Timeout)
        );
    }
    assert_eq!(agent.requests().len(), 2);
}
