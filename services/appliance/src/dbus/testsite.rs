//! A stand-in for `sited` on a test bus (feature `test-support`; never in production builds).
//!
//! Until sited exists, and afterwards in the tests of services that only need the site's state,
//! [`StandInSite`] owns `org.bunkeros.Site1` and serves the [`Site1`](super::contracts::Site1Proxy)
//! contract at `/org/bunkeros/Site1`: the `State` and `StateReason` properties with a
//! `StateChanged` signal on every change, and the power budget and thermal headroom with a
//! `BudgetChanged` signal, as sited promises; it records the alarms other services raise
//! ([`StandInSite::alarms`]). It can also say things sited never
//! should ([`StandInSite::set_words`]) so that clients' handling of nonsense is tested.

use zbus::Connection;
use zbus::object_server::SignalEmitter;

use super::contracts::{SITE, SiteState};

/// The budget a stand-in starts with: a site with room to spare (1 MW, 20 °C of headroom).
pub const ROOMY_BUDGET: (f64, f64) = (1_000_000.0, 20.0);
use super::{Bus, BusError, serve};

/// The `org.bunkeros.Site1` object the stand-in serves.
#[derive(Debug)]
struct SiteObject {
    state: String,
    reason: String,
    power_budget_watts: f64,
    thermal_headroom_celsius: f64,
    alarms: Vec<RaisedAlarm>,
}

/// An alarm another service raised or cleared at the stand-in, in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedAlarm {
    pub source: String,
    pub key: String,
    /// `None` for a `ClearAlarm`.
    pub severity: Option<String>,
    pub summary: String,
    pub detail: String,
}

#[zbus::interface(name = "org.bunkeros.Site1")]
impl SiteObject {
    #[zbus(property)]
    fn state(&self) -> String {
        self.state.clone()
    }

    #[zbus(property)]
    fn state_reason(&self) -> String {
        self.reason.clone()
    }

    #[zbus(property)]
    fn power_budget_watts(&self) -> f64 {
        self.power_budget_watts
    }

    #[zbus(property)]
    fn thermal_headroom_celsius(&self) -> f64 {
        self.thermal_headroom_celsius
    }

    fn raise_alarm(
        &mut self,
        source: &str,
        key: &str,
        severity: &str,
        summary: &str,
        detail: &str,
    ) {
        self.alarms.push(RaisedAlarm {
            source: source.to_owned(),
            key: key.to_owned(),
            severity: Some(severity.to_owned()),
            summary: summary.to_owned(),
            detail: detail.to_owned(),
        });
    }

    fn clear_alarm(&mut self, source: &str, key: &str) {
        self.alarms.push(RaisedAlarm {
            source: source.to_owned(),
            key: key.to_owned(),
            severity: None,
            summary: String::new(),
            detail: String::new(),
        });
    }

    /// `BudgetChanged(power_budget_watts d, thermal_headroom_celsius d)`.
    #[zbus(signal, name = "BudgetChanged")]
    async fn announce_budget(
        emitter: &SignalEmitter<'_>,
        power_budget_watts: f64,
        thermal_headroom_celsius: f64,
    ) -> zbus::Result<()>;

    /// `StateChanged(state s, reason s)`. Not called `state_changed`: zbus gives that name to
    /// the method that emits `PropertiesChanged` for `State`.
    #[zbus(signal, name = "StateChanged")]
    async fn announce_state(
        emitter: &SignalEmitter<'_>,
        state: &str,
        reason: &str,
    ) -> zbus::Result<()>;
}

/// A connection that owns `org.bunkeros.Site1` and serves the site's state; dropping it (or
/// [`stop`](Self::stop)) releases the name, as a sited that stops would.
#[derive(Debug)]
pub struct StandInSite {
    connection: Connection,
}

impl StandInSite {
    /// Serves `state` with `reason` on `bus` under `org.bunkeros.Site1`.
    pub async fn start(bus: &Bus, state: SiteState, reason: &str) -> Result<Self, BusError> {
        Self::start_words(bus, state.as_str(), reason).await
    }

    /// Like [`start`](Self::start) with any word as the state, e.g. one no client knows.
    pub async fn start_words(bus: &Bus, state: &str, reason: &str) -> Result<Self, BusError> {
        let object = SiteObject {
            state: state.to_owned(),
            reason: reason.to_owned(),
            power_budget_watts: ROOMY_BUDGET.0,
            thermal_headroom_celsius: ROOMY_BUDGET.1,
            alarms: Vec::new(),
        };
        let connection = serve(bus, SITE.bus_name, SITE.object_path, object).await?;
        Ok(Self { connection })
    }

    /// Changes the site's state and emits `StateChanged` (and `PropertiesChanged`), as sited
    /// does on every change.
    pub async fn set(&self, state: SiteState, reason: &str) -> zbus::Result<()> {
        self.set_words(state.as_str(), reason).await
    }

    /// Like [`set`](Self::set) with any word as the state, e.g. one no client knows.
    pub async fn set_words(&self, state: &str, reason: &str) -> zbus::Result<()> {
        let site = self
            .connection
            .object_server()
            .interface::<_, SiteObject>(SITE.object_path)
            .await?;
        {
            let mut object = site.get_mut().await;
            object.state = state.to_owned();
            object.reason = reason.to_owned();
        }
        let emitter = site.signal_emitter();
        SiteObject::announce_state(emitter, state, reason).await?;
        let object = site.get().await;
        object.state_changed(emitter).await?;
        object.state_reason_changed(emitter).await
    }

    /// Changes the power budget and thermal headroom and emits `BudgetChanged` (and
    /// `PropertiesChanged`), as sited does; any numbers, including ones no client should accept.
    pub async fn set_budget(
        &self,
        power_budget_watts: f64,
        thermal_headroom_celsius: f64,
    ) -> zbus::Result<()> {
        let site = self
            .connection
            .object_server()
            .interface::<_, SiteObject>(SITE.object_path)
            .await?;
        {
            let mut object = site.get_mut().await;
            object.power_budget_watts = power_budget_watts;
            object.thermal_headroom_celsius = thermal_headroom_celsius;
        }
        let emitter = site.signal_emitter();
        SiteObject::announce_budget(emitter, power_budget_watts, thermal_headroom_celsius).await?;
        let object = site.get().await;
        object.power_budget_watts_changed(emitter).await?;
        object.thermal_headroom_celsius_changed(emitter).await
    }

    /// Every `RaiseAlarm` and `ClearAlarm` received so far, in order.
    pub async fn alarms(&self) -> zbus::Result<Vec<RaisedAlarm>> {
        let site = self
            .connection
            .object_server()
            .interface::<_, SiteObject>(SITE.object_path)
            .await?;
        Ok(site.get().await.alarms.clone())
    }

    /// The stand-in's connection (its unique name, or to emit raw messages from the owner).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Leaves the bus, releasing `org.bunkeros.Site1`, and waits until the bus has seen it go.
    pub async fn stop(self) -> zbus::Result<()> {
        self.connection.release_name(SITE.bus_name).await?;
        self.connection.close().await
    }
}
