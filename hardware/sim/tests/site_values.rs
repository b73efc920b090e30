//! The site simulator's registers against its model: values in their scale and type, inputs set
//! through the control API showing at once, the physics moving them, relay coils recorded.

mod site_common;

use std::time::{Duration, Instant};

use sim::site::{ModbusTable, ModbusType, SiteSpec, WordOrder};
use site_common::{ANSWER_BOUND, client_for, frozen_site, read_raw, read_sensor};
use tokio_modbus::client::{Reader, Writer};

/// Close enough for a value that went through a ×10 integer register.
fn near(read: f64, model: f64, step: f64) -> bool {
    (read - model).abs() <= step / 2.0 + 1e-9
}

#[tokio::test]
async fn every_sensor_reads_its_model_value_in_its_scale() {
    let site = frozen_site([127, 70, 1, 1]).await;
    let handle = site.handle();
    let map = site.register_map().clone();
    assert_eq!(map.sensor_count(), 32, "the small site's sensors");
    for bus in &map.buses {
        for register in &bus.registers {
            let model = handle.value(&register.sensor).unwrap();
            let read = read_sensor(&site, &register.sensor).await;
            let step = match register.value_type {
                ModbusType::F32 => 1e-3 * model.abs().max(1.0),
                ModbusType::Bool => 0.0,
                _ => register.scale,
            };
            assert!(
                near(read, model, step),
                "{}: read {read}, model {model}",
                register.sensor
            );
            if let (Some(min), Some(max)) = (register.min, register.max) {
                assert!(
                    (min..=max).contains(&read),
                    "{}: {read} outside {min}..{max}",
                    register.sensor
                );
            }
        }
    }
    // The environment is what the small spec says: halls at the setpoint, the shield intact.
    let spec = SiteSpec::small();
    assert!((read_sensor(&site, "hall-1.temperature-1").await - spec.setpoint_c).abs() <= 0.6);
    let outside = read_sensor(&site, "shield-1.outside").await;
    let inside = read_sensor(&site, "shield-1.inside").await;
    assert!(
        (outside - inside - spec.shielding_db).abs() <= 1.2,
        "shielding effectiveness {outside} − {inside}"
    );
    assert_eq!(read_sensor(&site, "feed-1.grid-present").await, 1.0);
    let feeds = read_sensor(&site, "feed-1.kw").await + read_sensor(&site, "feed-2.kw").await;
    assert!(
        feeds >= spec.it_load_kw,
        "the feeds carry the miners: {feeds} kW"
    );
}

#[tokio::test]
async fn raw_words_follow_type_and_word_order() {
    let site = frozen_site([127, 70, 1, 2]).await;
    let handle = site.handle();
    for _ in 0..3 {
        handle.set_door(1, true).unwrap();
        handle.set_door(1, false).unwrap();
    }
    let (cycles, mut context) = client_for(&site, "door-1.cycles").await;
    assert_eq!(
        (cycles.value_type, cycles.word_order),
        (ModbusType::U32, WordOrder::Little)
    );
    let words = read_raw(&mut context, &cycles).await.unwrap().unwrap();
    assert_eq!(words, vec![3, 0], "low word first");
    let (temperature, mut context) = client_for(&site, "hall-1.temperature-1").await;
    assert_eq!(
        (temperature.table, temperature.value_type, temperature.scale),
        (ModbusTable::Input, ModbusType::I16, 0.1)
    );
    let raw = read_raw(&mut context, &temperature).await.unwrap().unwrap()[0];
    let model = handle.value("hall-1.temperature-1").unwrap();
    assert_eq!(raw as i16, (model * 10.0).round() as i16, "°C × 10");
}

#[tokio::test]
async fn a_door_opened_shows_at_once_and_counts_a_cycle_on_close() {
    let site = frozen_site([127, 70, 1, 3]).await;
    let handle = site.handle();
    let (open, mut context) = client_for(&site, "door-2.open").await;
    let cycles = site
        .register_map()
        .sensor("door-2.cycles")
        .unwrap()
        .1
        .clone();
    let latched = site
        .register_map()
        .sensor("door-2.latched")
        .unwrap()
        .1
        .clone();
    assert_eq!(
        read_raw(&mut context, &open).await.unwrap().unwrap(),
        vec![0]
    );
    let before = cycles.decode(&read_raw(&mut context, &cycles).await.unwrap().unwrap());

    handle.set_door(2, true).unwrap();
    assert_eq!(
        read_raw(&mut context, &open).await.unwrap().unwrap(),
        vec![1],
        "open at once"
    );
    assert_eq!(
        read_raw(&mut context, &latched).await.unwrap().unwrap(),
        vec![0],
        "unlatched"
    );
    let after_open = cycles.decode(&read_raw(&mut context, &cycles).await.unwrap().unwrap());
    assert_eq!(after_open, before, "opening is half a cycle");

    handle.set_door(2, false).unwrap();
    assert_eq!(
        read_raw(&mut context, &open).await.unwrap().unwrap(),
        vec![0]
    );
    let after_close = cycles.decode(&read_raw(&mut context, &cycles).await.unwrap().unwrap());
    assert_eq!(after_close, before + 1.0, "closing completes the cycle");
    assert_eq!(
        read_sensor(&site, "door-1.open").await,
        0.0,
        "the other door untouched"
    );
}

#[tokio::test]
async fn the_physics_moves_the_readings() {
    let site = frozen_site([127, 70, 1, 4]).await;
    let handle = site.handle();
    let spec = SiteSpec::small();

    // A door left open loses seal pressure, and regains it once shut.
    let seal = read_sensor(&site, "door-1.seal-kpa").await;
    handle.set_door(1, true).unwrap();
    handle.advance(Duration::from_secs(5));
    let leaking = read_sensor(&site, "door-1.seal-kpa").await;
    assert!(
        leaking < seal - 50.0,
        "seal {seal} → {leaking} kPa with the door open"
    );
    handle.set_door(1, false).unwrap();
    handle.advance(Duration::from_secs(60));
    assert_eq!(read_sensor(&site, "door-1.seal-kpa").await, spec.seal_kpa);

    // Cooling switched off by its relay: the hall heats with the miners' load.
    let (_, mut environment) = client_for(&site, "hall-1.cooling-kw").await;
    let cooling_coil = site
        .register_map()
        .relay("hall-1.cooling")
        .unwrap()
        .1
        .address;
    environment
        .write_single_coil(cooling_coil, false)
        .await
        .unwrap()
        .unwrap();
    let cool = read_sensor(&site, "hall-1.temperature-1").await;
    handle.advance(Duration::from_secs(60));
    let hot = read_sensor(&site, "hall-1.temperature-1").await;
    assert!(
        hot > cool + 2.0,
        "hall 1 without cooling: {cool} → {hot} °C"
    );
    assert_eq!(read_sensor(&site, "hall-1.cooling-kw").await, 0.0);
    assert!(
        read_sensor(&site, "hall-2.cooling-kw").await > 0.0,
        "hall 2 still cooled"
    );
    let hall2 = read_sensor(&site, "hall-2.temperature-1").await;
    assert!(
        (hall2 - spec.setpoint_c).abs() < 1.0,
        "hall 2 held at the setpoint: {hall2}"
    );

    // The grid goes: the generators start after their delay, not before.
    handle.set_grid(None, false).unwrap();
    assert_eq!(read_sensor(&site, "feed-1.grid-present").await, 0.0);
    handle.advance(Duration::from_secs_f64(spec.generator_start_secs / 2.0));
    assert_eq!(read_sensor(&site, "feed-1.generator-running").await, 0.0);
    assert_eq!(
        read_sensor(&site, "feed-1.kw").await,
        0.0,
        "dark until the generator runs"
    );
    handle.advance(Duration::from_secs_f64(spec.generator_start_secs));
    assert_eq!(read_sensor(&site, "feed-1.generator-running").await, 1.0);
    assert!(read_sensor(&site, "feed-1.kw").await > 0.0);
    handle.set_grid(None, true).unwrap();
    assert_eq!(read_sensor(&site, "feed-2.generator-running").await, 0.0);

    // A degraded shield lets the field in: effectiveness falls by the degradation.
    let intact =
        read_sensor(&site, "shield-1.outside").await - read_sensor(&site, "shield-1.inside").await;
    handle.degrade_shielding(Some(1), 30.0).unwrap();
    let degraded =
        read_sensor(&site, "shield-1.outside").await - read_sensor(&site, "shield-1.inside").await;
    assert!(
        (intact - degraded - 30.0).abs() < 2.5,
        "{intact} dB → {degraded} dB"
    );

    // Contacts follow their inputs.
    handle.set_arrester(2, true).unwrap();
    handle.set_filter(1, true).unwrap();
    handle.set_intrusion(1, true).unwrap();
    assert_eq!(read_sensor(&site, "arrester-2.tripped").await, 1.0);
    assert_eq!(read_sensor(&site, "arrester-1.tripped").await, 0.0);
    assert_eq!(read_sensor(&site, "filter-1.tripped").await, 1.0);
    assert_eq!(read_sensor(&site, "intrusion-1.active").await, 1.0);
}

#[tokio::test]
async fn a_coil_written_by_a_client_is_recorded_with_its_time() {
    let site = frozen_site([127, 70, 1, 5]).await;
    let handle = site.handle();
    let (bus, siren) = site.register_map().relay("siren").unwrap();
    let address = bus.address.parse().unwrap();
    let mut context =
        tokio_modbus::client::tcp::connect_slave(address, tokio_modbus::Slave(siren.unit))
            .await
            .unwrap();
    let untouched = handle.relay("siren").unwrap();
    assert!(!untouched.on && untouched.changed_at.is_none() && untouched.writes == 0);

    let waiter = tokio::spawn({
        let handle = handle.clone();
        async move { handle.wait_relay("siren", true).await }
    });
    let before = Instant::now();
    tokio::time::timeout(ANSWER_BOUND, context.write_single_coil(siren.address, true))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let after = Instant::now();
    let set = handle.relay("siren").unwrap();
    assert!(set.on);
    let at = set.changed_at.expect("the change is timed");
    assert!(
        before <= at && at <= after,
        "recorded while the write was in flight"
    );
    assert!(set.changed_unix_ms.is_some());
    let woken = tokio::time::timeout(ANSWER_BOUND, waiter)
        .await
        .expect("the waiter wakes on the write")
        .unwrap();
    assert_eq!(woken, Some(set));
    assert_eq!(set.writes, 1);
    assert_eq!(
        context.read_coils(siren.address, 2).await.unwrap().unwrap(),
        vec![true, false]
    );

    // Writing the same state again counts the write but keeps the time it changed.
    context
        .write_single_coil(siren.address, true)
        .await
        .unwrap()
        .unwrap();
    let again = handle.relay("siren").unwrap();
    assert_eq!((again.writes, again.changed_at), (2, Some(at)));

    // The door interlock holds its door shut.
    let (doors, interlock) = site.register_map().relay("door-1.interlock").unwrap();
    let mut doors = tokio_modbus::client::tcp::connect_slave(
        doors.address.parse().unwrap(),
        tokio_modbus::Slave(interlock.unit),
    )
    .await
    .unwrap();
    doors
        .write_multiple_coils(interlock.address, &[true])
        .await
        .unwrap()
        .unwrap();
    assert!(handle.relay("door-1.interlock").unwrap().on);
    assert!(
        handle.set_door(1, true).is_err(),
        "an interlocked door stays shut"
    );
    assert_eq!(read_sensor(&site, "door-1.open").await, 0.0);
    let names: Vec<String> = handle.relays().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "hall-1.cooling",
            "hall-2.cooling",
            "door-1.interlock",
            "door-2.interlock",
            "siren",
            "beacon"
        ]
    );
}

#[tokio::test]
async fn the_model_ticks_by_itself_when_the_clock_runs() {
    let mut spec = SiteSpec::small();
    spec.tick_ms = 20;
    spec.time_scale = 100.0;
    let site = sim::site::Site::start(spec, "127.70.1.6:0".parse().unwrap())
        .await
        .unwrap();
    let handle = site.handle();
    handle.set_door(1, true).unwrap();
    let deadline = Instant::now() + ANSWER_BOUND;
    while read_sensor(&site, "door-1.seal-kpa").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the seal never emptied: the model does not tick"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    site.stop().await;
}

#[tokio::test]
async fn the_bench_spec_has_a_thousand_sensors_on_distinct_addresses() {
    let spec = SiteSpec::bench();
    spec.validate().unwrap();
    let addresses = sim::site::planned_addresses("127.70.1.7:15020".parse().unwrap());
    let map = sim::site::RegisterMap::new(&spec, &addresses);
    assert!(map.sensor_count() >= 1000, "{} sensors", map.sensor_count());
    let mut seen = std::collections::HashSet::new();
    for bus in &map.buses {
        for r in &bus.registers {
            for word in 0..r.value_type.width() {
                assert!(
                    seen.insert((bus.name.clone(), r.unit, r.table, r.address + word)),
                    "{} overlaps another register",
                    r.sensor
                );
            }
        }
    }
    let names: std::collections::HashSet<_> = map
        .buses
        .iter()
        .flat_map(|b| &b.registers)
        .map(|r| &r.sensor)
        .collect();
    assert_eq!(names.len(), map.sensor_count(), "sensor names are unique");
}
