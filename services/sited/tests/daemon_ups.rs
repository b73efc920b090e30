//! A UPS behind Debian's real upsd (dummy-ups) as one of the site's buses: on battery, the
//! power budget drops to what the loads may draw on battery (nothing) and the site's state
//! changes; back on line, both return.

mod daemon_support;
mod nut_support;

use daemon_support::{QEMU_SITE_LAYER, SiteUnderTest, eventually, live_site, next_signal};
use nut_support::{NutServer, UPS};

/// The QEMU site layer with the UPS's on-battery contact and charge in `[power]`, and a rule
/// that says so.
fn layer_with_ups() -> String {
    let ups = UPS.to_ascii_lowercase();
    let power = format!(
        "generators = [\"feed-1.generator-running\", \"feed-2.generator-running\"]\n\
         on_battery = [\"ups.{ups}.on_battery\"]\nups_charge = [\"ups.{ups}.charge_pct\"]\n"
    );
    let layer = QEMU_SITE_LAYER.replacen(
        "generators = [\"feed-1.generator-running\", \"feed-2.generator-running\"]\n",
        &power,
        1,
    );
    assert_ne!(layer, QEMU_SITE_LAYER, "the site layer's [power] was found");
    format!(
        "{layer}\n[[rule]]\nname = \"ups-on-battery\"\nkind = \"contact\"\nseverity = \"warning\"\n\
         sensor = \"ups.{ups}.on_battery\"\nsummary = \"the UPS carries the site\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ups_on_battery_drops_the_budget_and_changes_the_state() {
    let mut ups = NutServer::start("OL", 100);
    let profile = format!(
        "[[sensor_bus]]\nname = \"ups\"\nkind = \"nut\"\naddress = \"{UPS}@{}\"\n",
        ups.address()
    );
    let site = SiteUnderTest::start_with(
        "127.71.10.1:0",
        live_site(),
        &profile,
        &layer_with_ups(),
        "",
    )
    .await;
    let site1 = site.site1().await;
    let mut budgets = Box::pin(site1.receive_budget_changed().await.unwrap());
    site.wait_state("normal").await;
    eventually("the grid budget", || {
        let site1 = site1.clone();
        async move {
            site1
                .power_budget_watts()
                .await
                .is_ok_and(|w| w == 550_000.0)
        }
    })
    .await;

    ups.set("OB DISCHRG", 90);
    loop {
        let signal = next_signal(&mut budgets).await;
        if signal.args().unwrap().power_budget_watts == 0.0 {
            break;
        }
    }
    site.wait_alarm("ups-on-battery", true).await;
    site.wait_state("warning").await;
    let status: serde_json::Value = serde_json::from_str(&site1.status().await.unwrap()).unwrap();
    assert_eq!(status["power"]["source"], "battery", "{status}");

    ups.set("OL CHRG", 90);
    // A warning leaves the list when it clears (only critical ones wait for an acknowledgement).
    site.wait_state("normal").await;
    eventually("the grid budget again", || {
        let site1 = site1.clone();
        async move {
            site1
                .power_budget_watts()
                .await
                .is_ok_and(|w| w == 550_000.0)
        }
    })
    .await;
}
