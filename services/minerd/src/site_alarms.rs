//! Alarms to `sited`: minerd's findings (a hijacked miner) raised and cleared through
//! `org.bunkeros.Site1`'s `RaiseAlarm`/`ClearAlarm`, so the site's operators see them where
//! they see every other alarm.
//!
//! An alarm is always in minerd's own log first (the caller logs the finding); delivering it to
//! sited is best effort. With sited (or the bus) absent, the call is logged as not delivered and
//! nothing fails; every call is bounded by [`CALL_TIMEOUT`] so a stuck bus never holds up the
//! caller (the hijack guard runs after each telemetry cycle). The connection is made on first
//! use and made again after a failure.
//!
//! Hook point for the daemon: build one [`SiteAlarms::new`] with the bus minerd serves on and
//! hand it (in an `Arc`) to the hijack guard.

use std::time::Duration;

use appliance::dbus::contracts::Site1Proxy;
use appliance::dbus::{Bus, connect};
use serde_json::Value;
use tokio::sync::Mutex;

/// The `source` minerd names itself with; sited checks it against the caller's user.
pub const SOURCE: &str = "minerd";

/// The longest a raise or clear (connecting included) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How bad the condition is, in sited's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmSeverity {
    Info,
    Warning,
    Critical,
}

impl AlarmSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmSeverity::Info => "info",
            AlarmSeverity::Warning => "warning",
            AlarmSeverity::Critical => "critical",
        }
    }
}

/// A client of sited's alarms on one bus.
pub struct SiteAlarms {
    bus: Bus,
    site: Mutex<Option<Site1Proxy<'static>>>,
}

impl std::fmt::Debug for SiteAlarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteAlarms")
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

impl SiteAlarms {
    /// Connects lazily: nothing happens on the bus until the first alarm.
    pub fn new(bus: Bus) -> SiteAlarms {
        SiteAlarms {
            bus,
            site: Mutex::new(None),
        }
    }

    /// Raises (or updates) the alarm `key`; true when sited took it.
    pub async fn raise(
        &self,
        key: &str,
        severity: AlarmSeverity,
        summary: &str,
        detail: &Value,
    ) -> bool {
        let detail = detail.to_string();
        let delivered = self
            .call(|site| {
                let detail = detail.clone();
                async move {
                    site.raise_alarm(SOURCE, key, severity.as_str(), summary, &detail)
                        .await
                }
            })
            .await;
        match delivered {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(alarm = key, severity = severity.as_str(), summary, %why,
                    "alarm not delivered to sited; it stays in minerd's log");
                false
            }
        }
    }

    /// Clears the alarm `key`; true when sited took it.
    pub async fn clear(&self, key: &str) -> bool {
        match self
            .call(|site| async move { site.clear_alarm(SOURCE, key).await })
            .await
        {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(alarm = key, %why, "alarm clearance not delivered to sited");
                false
            }
        }
    }

    async fn call<F, Fut>(&self, send: F) -> Result<(), String>
    where
        F: FnOnce(Site1Proxy<'static>) -> Fut,
        Fut: std::future::Future<Output = zbus::Result<()>>,
    {
        let attempt = async {
            let site = self.site().await?;
            send(site).await.map_err(|e| e.to_string())
        };
        let result = match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        };
        if result.is_err() {
            // A dead connection is not kept: the next alarm connects afresh.
            *self.site.lock().await = None;
        }
        result
    }

    async fn site(&self) -> Result<Site1Proxy<'static>, String> {
        let mut cached = self.site.lock().await;
        if let Some(site) = cached.as_ref() {
            return Ok(site.clone());
        }
        let connection = connect(&self.bus).await.map_err(|e| e.to_string())?;
        let site = Site1Proxy::builder(&connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        *cached = Some(site.clone());
        Ok(site)
    }
}
