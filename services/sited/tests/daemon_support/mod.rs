//! The real `sited` binary over a simulated site: sitesim's devices on loopback, a hardware
//! profile naming them, the QEMU image's own site layer (`image/sim/site/sited.toml`), a
//! private dbus-daemon, and a notify socket standing in for systemd.

#![allow(dead_code)] // each test file uses a part

use std::net::SocketAddr;
use std::time::Duration;

use appliance::dbus::contracts::Site1Proxy;
use appliance::dbus::testbus::TestBus;
pub use appliance::testdaemon::{CONVERGE, ServiceProcess, eventually, free_port};
use sim::site::{Site, SiteSpec};

/// The QEMU image's site layer: what the appliance runs in `make run`.
pub const QEMU_SITE_LAYER: &str = include_str!("../../../../image/sim/site/sited.toml");

/// Required keys of a hardware profile; the simulated site's buses are appended.
const PROFILE_HEAD: &str = r#"
[profile]
name = "test-site"
description = "sited's daemon tests"
arch = "x86_64"

[boot]
console = "ttyS0"

[disk]
device = "/dev/vda"

[tpm]
pcrs = [7]
"#;

/// A hardware profile: the required keys and `buses` (`[[sensor_bus]]` entries as TOML).
pub fn profile_with(buses: &str) -> String {
    format!("{PROFILE_HEAD}\n{buses}")
}

/// The real sited on `bus`, not started yet: `layer` as its site layer with a loopback metrics
/// endpoint added, `profile` as its hardware profile.
pub fn sited_process(bus: &TestBus, layer: &str, profile: &str) -> ServiceProcess {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let layer = format!("{layer}\n[metrics]\nlisten = \"{metrics}\"\n");
    let mut sited = ServiceProcess::new(
        env!("CARGO_BIN_EXE_sited"),
        "sited",
        &layer,
        bus.address(),
        metrics,
    );
    let path = sited.dir.path().join("profile.toml");
    std::fs::write(&path, profile).unwrap();
    sited.arg("--profile").arg(&path);
    sited
}

/// One simulated site with sited watching it.
pub struct SiteUnderTest {
    pub site: Site,
    pub bus: TestBus,
    pub sited: ServiceProcess,
}

impl SiteUnderTest {
    /// sitesim's small site at `listen` (port 0: any ports), the model frozen when `frozen`
    /// (tests step it), and sited with the QEMU site layer plus `extra` TOML; started and
    /// READY.
    pub async fn start(listen: &str, spec: SiteSpec, extra: &str) -> SiteUnderTest {
        Self::start_with(listen, spec, "", QEMU_SITE_LAYER, extra).await
    }

    /// sitesim's site of `spec` at `listen` and sited with `layer` as its whole site layer
    /// (the benchmarks' own); started and READY.
    pub async fn start_with_layer(listen: &str, spec: SiteSpec, layer: &str) -> SiteUnderTest {
        Self::start_with(listen, spec, "", layer, "").await
    }

    /// [`start`](Self::start) with more profile TOML (another bus) and another site layer
    /// followed by `extra`.
    pub async fn start_with(
        listen: &str,
        spec: SiteSpec,
        profile_extra: &str,
        layer: &str,
        extra: &str,
    ) -> SiteUnderTest {
        let site = Site::start(spec, listen.parse().unwrap()).await.unwrap();
        let bus = TestBus::start().unwrap();
        let map = site.register_map().to_toml().unwrap();
        let mut sited = sited_process(
            &bus,
            &format!("{layer}\n{extra}\n"),
            &profile_with(&format!("{map}\n{profile_extra}")),
        );
        sited.start();
        sited.wait_notify("READY=1");
        SiteUnderTest { site, bus, sited }
    }

    /// A Site1 client on the private bus.
    pub async fn site1(&self) -> Site1Proxy<'static> {
        let connection = appliance::dbus::connect(&self.bus.bus()).await.unwrap();
        Site1Proxy::new(&connection).await.unwrap()
    }

    /// Waits until the site's state is `state`.
    pub async fn wait_state(&self, state: &str) {
        let site1 = self.site1().await;
        eventually(&format!("site state {state}"), || {
            let site1 = site1.clone();
            async move { site1.site_state().await.is_ok_and(|s| s == state) }
        })
        .await;
    }

    /// Waits until alarm `name` is listed with `active`; returns its entry.
    pub async fn wait_alarm(&self, name: &str, active: bool) -> serde_json::Value {
        let site1 = self.site1().await;
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let alarms: serde_json::Value =
                serde_json::from_str(&site1.alarms().await.unwrap()).unwrap();
            let found = alarms
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["alarm"] == name && a["active"] == active)
                .cloned();
            if let Some(alarm) = found {
                return alarm;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "alarm {name} not active={active} within {CONVERGE:?}: {alarms}; log:\n{}",
                self.sited.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until relay `name` is set to `on` by sited, bounded by [`CONVERGE`].
    pub async fn wait_relay(&self, name: &str, on: bool) {
        let handle = self.site.handle();
        let waited = tokio::time::timeout(CONVERGE, handle.wait_relay(name, on)).await;
        assert!(
            matches!(waited, Ok(Some(_))),
            "relay {name} not {on} within {CONVERGE:?}; log:\n{}",
            self.sited.log()
        );
    }
}

/// The small site with its model running in real time.
pub fn live_site() -> SiteSpec {
    SiteSpec::small()
}

/// A short pause for "nothing else happens" checks: far above a poll period (250 ms).
pub const SETTLE: Duration = Duration::from_secs(2);

/// The next item of a signal stream, within [`CONVERGE`].
pub async fn next_signal<S: zbus::export::futures_core::Stream>(
    stream: &mut std::pin::Pin<Box<S>>,
) -> S::Item {
    tokio::time::timeout(
        CONVERGE,
        std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)),
    )
    .await
    .expect("a signal within the bound")
    .expect("the signal stream goes on")
}
