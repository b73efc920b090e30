//! The NUT driver against a fake upsd that misbehaves on command: garbage, silence, oversized
//! lines and `ERR` replies each make every sensor lost with the matching reason, and a good
//! reply afterwards makes them read again (the client reconnects after each failure).

mod nut_support;

use std::sync::{Arc, Mutex};

use nut_support::{is_lost, is_sample, wait_for};
use sited::nut::{NutDriver, NutSettings};
use sited::sensor::{LostReason, SensorEvent, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Good,
    Garbage,
    Silent,
    Oversized,
    Err(&'static str),
}

/// What the fake upsd answers to `LIST VAR <ups>` in `mode`; `None`: nothing at all.
fn reply(mode: Mode, ups: &str) -> Option<Vec<u8>> {
    match mode {
        Mode::Good => Some(
            format!(
                "BEGIN LIST VAR {ups}\nVAR {ups} battery.charge \"64\"\n\
                 VAR {ups} ups.status \"OL CHRG\"\nEND LIST VAR {ups}\n"
            )
            .into_bytes(),
        ),
        Mode::Garbage => Some(b"\x16\x03\x01 HELLO from something else\n".to_vec()),
        Mode::Silent => None,
        Mode::Oversized => {
            let mut line = format!("BEGIN LIST VAR {ups}\nVAR {ups} ups.status \"").into_bytes();
            line.extend(std::iter::repeat_n(b'O', 64 * 1024));
            line.extend_from_slice(b"\"\n");
            Some(line)
        }
        Mode::Err(code) => Some(format!("ERR {code}\n").into_bytes()),
    }
}

/// A fake upsd on a free loopback port; the mode can change between polls.
async fn fake_upsd() -> (String, Arc<Mutex<Mode>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mode = Arc::new(Mutex::new(Mode::Good));
    let shared = mode.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mode = shared.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Some(ups) = line.strip_prefix("LIST VAR ") else {
                        continue;
                    };
                    let ups = ups.trim_matches('"').to_owned();
                    let current = *mode.lock().unwrap();
                    if let Some(bytes) = reply(current, &ups)
                        && write.write_all(&bytes).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (address, mode)
}

const ONLINE: &str = "power.fake.online";
const CHARGE: &str = "power.fake.charge_pct";
const SENSORS: [&str; 6] = [
    "power.fake.online",
    "power.fake.on_battery",
    "power.fake.low_battery",
    "power.fake.replace_battery",
    "power.fake.overload",
    "power.fake.charge_pct",
];

async fn start() -> (mpsc::Receiver<SensorEvent>, Arc<Mutex<Mode>>) {
    let (address, mode) = fake_upsd().await;
    let driver = NutDriver::new(NutSettings {
        bus: "power".into(),
        address,
        ups: "fake".into(),
        poll_ms: 400,
        deadline_ms: 300,
        username: None,
        password: None,
    })
    .unwrap();
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(driver.run(tx));
    wait_for(&mut rx, "online", |e| {
        is_sample(e, ONLINE, Value::Contact(true))
    })
    .await;
    wait_for(&mut rx, "charge", |e| {
        is_sample(e, CHARGE, Value::Number(64.0))
    })
    .await;
    (rx, mode)
}

/// Switches the fake to `mode`, checks every sensor goes lost for a reason `expected` accepts,
/// then switches back and checks the sensors read again.
async fn lost_then_recovered(mode: Mode, expected: impl Fn(&LostReason) -> bool) {
    let (mut events, shared) = start().await;
    *shared.lock().unwrap() = mode;
    let mut lost = Vec::new();
    for sensor in SENSORS {
        if lost.iter().any(|e| is_lost(e, sensor)) {
            continue;
        }
        let (event, before) =
            wait_for(&mut events, "every sensor lost", |e| is_lost(e, sensor)).await;
        lost.extend(
            before
                .into_iter()
                .filter(|e| matches!(e, SensorEvent::Lost { .. })),
        );
        lost.push(event);
    }
    for event in &lost {
        let SensorEvent::Lost { reason, .. } = event else {
            unreachable!()
        };
        assert!(expected(reason), "{mode:?}: {reason:?}");
    }
    *shared.lock().unwrap() = Mode::Good;
    wait_for(&mut events, "online again", |e| {
        is_sample(e, ONLINE, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge again", |e| {
        is_sample(e, CHARGE, Value::Number(64.0))
    })
    .await;
}

#[tokio::test]
async fn garbage_is_malformed() {
    lost_then_recovered(Mode::Garbage, |r| matches!(r, LostReason::Malformed { .. })).await;
}

#[tokio::test]
async fn an_oversized_line_is_malformed() {
    lost_then_recovered(Mode::Oversized, |r| {
        matches!(r, LostReason::Malformed { .. })
    })
    .await;
}

#[tokio::test]
async fn silence_is_a_timeout() {
    lost_then_recovered(Mode::Silent, |r| *r == LostReason::Timeout).await;
}

#[tokio::test]
async fn data_stale_is_stale() {
    lost_then_recovered(Mode::Err("DATA-STALE"), |r| *r == LostReason::Stale).await;
}

#[tokio::test]
async fn access_denied_is_refused() {
    lost_then_recovered(
        Mode::Err("ACCESS-DENIED"),
        |r| matches!(r, LostReason::Refused { detail } if detail.contains("ACCESS-DENIED")),
    )
    .await;
}
