//! Tests against a real private `dbus-daemon` ([`TestBus`]).

use std::future::poll_fn;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::object_server::SignalEmitter;
use zbus::proxy::CacheProperties;

use super::testbus::TestBus;
use super::{Bus, BusError, connect, serve, system_bus};

const PROBE_NAME: &str = "org.bunkeros.Probe1";
const PROBE_PATH: &str = "/org/bunkeros/Probe1";
/// Bound for anything that should be prompt on an idle machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// A test-only interface with a method, a property and a signal.
#[derive(Debug, Default)]
struct ProbeService {
    pings: u32,
}

#[zbus::interface(name = "org.bunkeros.Probe1")]
impl ProbeService {
    async fn ping(
        &mut self,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<u32> {
        self.pings += 1;
        Self::pinged(&emitter, self.pings).await?;
        Ok(self.pings)
    }

    #[zbus(property)]
    fn pings(&self) -> u32 {
        self.pings
    }

    #[zbus(signal)]
    async fn pinged(emitter: &SignalEmitter<'_>, pings: u32) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.bunkeros.Probe1",
    default_path = "/org/bunkeros/Probe1"
)]
trait Probe {
    fn ping(&self) -> zbus::Result<u32>;

    #[zbus(property)]
    fn pings(&self) -> zbus::Result<u32>;

    #[zbus(signal)]
    fn pinged(&self, pings: u32) -> zbus::Result<()>;
}

async fn probe_proxy(conn: &zbus::Connection) -> ProbeProxy<'static> {
    ProbeProxy::builder(conn)
        .destination(PROBE_NAME)
        .expect("destination")
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .expect("proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_interface_answers_calls_properties_and_signals() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let _server = serve(&bus.bus(), PROBE_NAME, PROBE_PATH, ProbeService::default())
        .await
        .expect("serve");

    let client = connect(&bus.bus()).await.expect("client connection");
    let probe = probe_proxy(&client).await;
    let mut pinged = pin!(probe.receive_pinged().await.expect("subscribe"));

    assert_eq!(probe.ping().await.expect("first ping"), 1);
    assert_eq!(probe.ping().await.expect("second ping"), 2);
    assert_eq!(probe.pings().await.expect("property"), 2);

    for expected in [1, 2] {
        let signal = tokio::time::timeout(PATIENCE, poll_fn(|cx| pinged.as_mut().poll_next(cx)))
            .await
            .expect("signal in time")
            .expect("signal stream open");
        assert_eq!(signal.args().expect("signal args").pings, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_cannot_take_an_owned_name() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let _first = serve(&bus.bus(), PROBE_NAME, PROBE_PATH, ProbeService::default())
        .await
        .expect("first instance");

    let second = serve(&bus.bus(), PROBE_NAME, PROBE_PATH, ProbeService::default()).await;
    let err = second.expect_err("the name is owned");
    assert!(
        matches!(&err, BusError::NameTaken { name, .. } if name == PROBE_NAME),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "the D-Bus name {PROBE_NAME} is already owned on unix:path="
        )),
        "{err}"
    );

    // The first instance still serves: it was neither replaced nor queued behind.
    let client = connect(&bus.bus()).await.expect("client connection");
    assert_eq!(probe_proxy(&client).await.ping().await.expect("ping"), 1);
}

#[tokio::test]
async fn a_missing_bus_is_reported_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!("unix:path={}", dir.path().join("absent").display());
    let err = connect(&Bus::Address(address.clone()))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, BusError::NoBus { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("no D-Bus bus at {address}: is dbus running?")
    );
}

#[tokio::test]
async fn bad_names_paths_and_addresses_are_refused_before_connecting() {
    let absent = Bus::Address("unix:path=/nonexistent/bus".into());
    let err = serve(&absent, "not a name", PROBE_PATH, ProbeService::default())
        .await
        .expect_err("bad name");
    assert!(matches!(err, BusError::InvalidName { .. }), "{err:?}");
    let err = serve(&absent, PROBE_NAME, "no/slash", ProbeService::default())
        .await
        .expect_err("bad path");
    assert!(matches!(err, BusError::InvalidPath { .. }), "{err:?}");
    let err = connect(&Bus::Address("bogus".into()))
        .await
        .expect_err("bad address");
    assert!(matches!(err, BusError::InvalidAddress { .. }), "{err:?}");
}

/// Selects what the re-executed child does; absent in the normal test run.
const CHILD_ENV: &str = "APPLIANCE_DBUS_CHILD";

/// Child side of the `DBUS_SYSTEM_BUS_ADDRESS` tests: runs [`system_bus`] in a process whose
/// environment the parent chose, so the test process's own environment is never mutated.
#[test]
#[ignore = "entry point of the child process that the system-bus tests re-execute"]
fn child_system_bus() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        match mode.as_str() {
            // The parent serves PROBE_NAME on its private bus: seeing it proves we are there.
            "reaches-private-bus" => {
                let conn = system_bus().await.expect("system bus via the environment");
                assert_eq!(probe_proxy(&conn).await.ping().await.expect("ping"), 1);
            }
            "no-system-bus" => {
                let err = system_bus().await.expect_err("nothing listens there");
                let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").expect("set by parent");
                assert_eq!(
                    err.to_string(),
                    format!("no D-Bus system bus at {address}: is dbus running?")
                );
            }
            other => panic!("unknown child mode {other:?}"),
        }
    });
}

/// Runs [`child_system_bus`] with `DBUS_SYSTEM_BUS_ADDRESS` set; true when it passed.
async fn run_child(mode: &str, system_bus_address: &str) -> bool {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args(["dbus::tests::child_system_bus", "--exact", "--ignored"])
        .env(CHILD_ENV, mode)
        .env("DBUS_SYSTEM_BUS_ADDRESS", system_bus_address)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = command.spawn().expect("spawn child");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if tokio::time::Instant::now() >= deadline {
            // Our own child, by PID; then reap it.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let status = status.expect("child finishes in time");
    status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_bus_honours_dbus_system_bus_address() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let _server = serve(&bus.bus(), PROBE_NAME, PROBE_PATH, ProbeService::default())
        .await
        .expect("serve");
    assert!(run_child("reaches-private-bus", bus.address()).await);
}

#[tokio::test]
async fn a_missing_system_bus_names_its_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let address = format!(
        "unix:path={}",
        dir.path().join("system_bus_socket").display()
    );
    assert!(run_child("no-system-bus", &address).await);
}

#[test]
fn the_test_bus_is_stopped_when_dropped() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let proc_entry = std::path::PathBuf::from(format!("/proc/{}", bus.pid()));
    assert!(proc_entry.exists());
    drop(bus);
    assert!(!proc_entry.exists(), "the daemon was killed and reaped");
}
