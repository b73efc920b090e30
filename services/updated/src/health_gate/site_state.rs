//! `site-state`: sited does not report the site critical (or in lockdown).
//!
//! Lockdown blocks blessing too. The contract (appliance's `Site1`) says updated does not bless
//! a new slot while the site is `critical`, and `lockdown` is the one state beyond critical
//! (`SiteState::ALL` runs from the mildest to lockdown): blessing in the worse state what is
//! refused in the milder one would be backwards. Lockdown also stops "services that change
//! trust", and blessing changes which image the appliance trusts to boot from now on; the
//! fallback after a failed gate does not add trust, it returns to the image that ran before.
//! An appliance that is not a site monitor (sited skipped by its condition: no sited.toml)
//! passes as such.

use appliance::dbus::contracts::{SITE, Site1Proxy, SiteState};
use zbus::Connection;
use zbus::proxy::CacheProperties;

use super::units::UnitObservation;
use super::verdict::{Check, check_names::SITE_STATE};
use super::{absent_service, on_bus};

/// Checks sited's `State`; `units` tells a sited that is not configured from one that is missing.
pub async fn check_site_state(connection: &Connection, units: &[UnitObservation]) -> Check {
    match on_bus(connection, SITE.bus_name).await {
        Err(why) => return Check::fail(SITE_STATE, why),
        Ok(false) => {
            return absent_service(
                SITE_STATE,
                SITE.daemon,
                SITE.bus_name,
                units,
                "no site to monitor",
            );
        }
        Ok(true) => {}
    }
    let read = async {
        let site = Site1Proxy::builder(connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        Ok::<_, zbus::Error>((site.site_state().await?, site.state_reason().await?))
    };
    match read.await {
        Ok((state, reason)) => judge_site(&state, &reason),
        Err(e) => Check::fail(SITE_STATE, format!("cannot read sited's State: {e}")),
    }
}

/// `normal` and `warning` pass; `critical`, `lockdown` and words no client knows fail.
pub fn judge_site(state: &str, reason: &str) -> Check {
    let state = match state.parse::<SiteState>() {
        Ok(state) => state,
        Err(e) => return Check::fail(SITE_STATE, format!("sited's State: {e}")),
    };
    let because = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    match state {
        SiteState::Normal => Check::pass(SITE_STATE, "the site is normal"),
        SiteState::Warning => Check::pass(
            SITE_STATE,
            format!("the site is in warning{because} (not critical)"),
        ),
        SiteState::Critical => Check::fail(SITE_STATE, format!("the site is critical{because}")),
        SiteState::Lockdown => Check::fail(
            SITE_STATE,
            format!("the site is in lockdown{because}; a new slot is not blessed in lockdown"),
        ),
    }
}
