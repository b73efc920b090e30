//! Part 3: a UPS going on battery (dummy-ups behind a real upsd) → sited's new power budget on
//! D-Bus, against upsd's own report to a plain `GET VAR` loop.

use std::time::{Duration, Instant};

use appliance::dbus::contracts::Site1Proxy;
use appliance::dbus::testbus::TestBus;
use sited::nut::settings::NutSettings;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::daemon_support::{eventually, next_signal, profile_with, sited_process};
use crate::nut_support::{NutServer, UPS};
use crate::{Jitter, ms, percentile};

/// The profile's `nut` bus; sensors are `ups.<UPS>.<sensor>`.
const BUS: &str = "ups";
const GRID_BUDGET: f64 = 550_000.0;
const BATTERY_BUDGET: f64 = 100_000.0;
/// How often the plain client asks upsd.
const ASK_EVERY: Duration = Duration::from_millis(5);
/// Separates "reported" from "never will" (dummy-ups reads each second, sited polls every 2 s).
const REPORT_LIMIT: Duration = Duration::from_secs(30);

/// Per flip: how long until upsd said so, and until sited's `BudgetChanged` arrived.
pub struct UpsFigures {
    pub upsd: Vec<Duration>,
    pub sited: Vec<Duration>,
    pub nut_poll: Duration,
}

fn layer() -> String {
    format!(
        "[site]\nname = \"bench-ups\"\n\n[power]\ngrid_w = 600000.0\nreserve_w = 50000.0\n\
         battery_w = {BATTERY_BUDGET:.1}\non_battery = [\"{BUS}.{UPS}.on_battery\"]\n"
    )
}

/// Asks upsd `GET VAR <ups> ups.status` every [`ASK_EVERY`] and publishes whether it says
/// OB, with the moment it first said so. One line per answer: a `LIST VAR` answer comes in
/// many small writes, which upsd's Nagle and our delayed acknowledgements can hold back tens of
/// milliseconds, and the baseline is when upsd knows.
async fn follow_upsd(address: String, said: watch::Sender<(bool, Instant)>) {
    let stream = TcpStream::connect(&address).await.expect("upsd answers");
    // As sited's client does: a request is never held back waiting for an acknowledgement.
    stream.set_nodelay(true).expect("a TCP socket");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let request = format!("GET VAR {UPS} ups.status\n");
    let answer = format!("VAR {UPS} ups.status ");
    loop {
        write
            .write_all(request.as_bytes())
            .await
            .expect("upsd takes the request");
        let line = lines
            .next_line()
            .await
            .expect("upsd answers")
            .expect("upsd keeps the connection");
        if let Some(status) = line.strip_prefix(&answer) {
            let ob = status.trim_matches('"').split(' ').any(|w| w == "OB");
            if said.borrow().0 != ob {
                said.send_replace((ob, Instant::now()));
            }
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// Flips the UPS OB, OL `flips` times each, at random phases of the polls.
pub async fn measure(bus: &TestBus, flips: usize) -> UpsFigures {
    let mut server = NutServer::start("OL", 100);
    let profile = profile_with(&format!(
        "[[sensor_bus]]\nname = \"{BUS}\"\nkind = \"nut\"\naddress = \"{UPS}@{}\"\n",
        server.address()
    ));
    let nut_poll = NutSettings::for_bus(BUS, &format!("{UPS}@{}", server.address()))
        .expect("a UPS@HOST:PORT address")
        .poll_period();
    let mut sited = sited_process(bus, &layer(), &profile);
    sited.start();
    sited.wait_notify("READY=1");
    sited.discard_notifications();
    let connection = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let site1 = Site1Proxy::new(&connection).await.unwrap();
    eventually("sited reads the UPS online: the grid budget", || {
        let site1 = site1.clone();
        async move {
            site1
                .power_budget_watts()
                .await
                .is_ok_and(|w| w == GRID_BUDGET)
        }
    })
    .await;
    let mut budgets = Box::pin(site1.receive_budget_changed().await.unwrap());
    let (said_in, mut said) = watch::channel((false, Instant::now()));
    let follower = tokio::spawn(follow_upsd(server.address(), said_in));

    let mut figures = UpsFigures {
        upsd: Vec::new(),
        sited: Vec::new(),
        nut_poll,
    };
    let mut jitter = Jitter::new();
    for i in 0..2 * flips {
        let on_battery = i % 2 == 0;
        tokio::time::sleep(jitter.below(nut_poll)).await;
        let flipped = Instant::now();
        server.set(if on_battery { "OB DISCHRG" } else { "OL" }, 100);
        let expected = if on_battery {
            BATTERY_BUDGET
        } else {
            GRID_BUDGET
        };
        let upsd = async {
            let (_, at) = *said
                .wait_for(|(ob, _)| *ob == on_battery)
                .await
                .expect("the upsd follower runs");
            at.saturating_duration_since(flipped)
        };
        let budget = async {
            loop {
                let signal = next_signal(&mut budgets).await;
                if signal.args().unwrap().power_budget_watts == expected {
                    return flipped.elapsed();
                }
            }
        };
        let both = tokio::time::timeout(REPORT_LIMIT, async { tokio::join!(upsd, budget) }).await;
        let Ok((upsd, budget)) = both else {
            panic!(
                "no budget {expected} W within {REPORT_LIMIT:?} of the UPS going {}; sited's log:\n{}\n{}",
                if on_battery { "OB" } else { "OL" },
                sited.log(),
                server.logs()
            );
        };
        figures.upsd.push(upsd);
        figures.sited.push(budget);
    }
    follower.abort();
    sited.stop();
    figures
}

pub fn print(f: &UpsFigures) {
    let extra: Vec<Duration> = f
        .sited
        .iter()
        .zip(&f.upsd)
        .map(|(sited, upsd)| sited.saturating_sub(*upsd))
        .collect();
    println!(
        "ups: Debian's upsd + dummy-ups on loopback, a sited following the UPS over NUT; {} flips OL <-> OB",
        f.sited.len()
    );
    println!(
        "  UPS state change -> new power budget (BudgetChanged on D-Bus): p50 {:.0} ms, max {:.0} ms",
        ms(percentile(&f.sited, 0.5)),
        ms(percentile(&f.sited, 1.0))
    );
    println!(
        "  baseline: upsd reports it to a plain GET VAR ups.status loop (every {} ms): p50 {:.0} ms, max {:.0} ms (dummy-ups reads its state once a second)",
        ASK_EVERY.as_millis(),
        ms(percentile(&f.upsd, 0.5)),
        ms(percentile(&f.upsd, 1.0))
    );
    println!(
        "  sited after upsd: p50 {:.0} ms, max {:.0} ms, against sited's NUT poll period of {} ms; ratio p50 sited / upsd {:.1}x",
        ms(percentile(&extra, 0.5)),
        ms(percentile(&extra, 1.0)),
        f.nut_poll.as_millis(),
        ms(percentile(&f.sited, 0.5)) / ms(percentile(&f.upsd, 0.5))
    );
}
