//! The views on documents exactly as hubd's unit tests produce them (`hubd::hub1::tests`: madrid-1
//! (ES) with two cables to lisbon-1 (PT), paris-1 (FR, no transit), sao-paulo-1 (BR) and bogota-1
//! (CO) beyond, quito-1 (EC) no longer vouched for).

use serde_json::{Value, json};

use super::*;

const STATUS: &str = r#"{"advertisement":{"expires_at":"2026-11-21T10:00:00Z","sequence":1795251600000},"certificate":{"not_after":"2026-12-21T09:00:00Z","renewal_error":null,"source":"trustd"},"counters":{"accepted":12,"duplicates":30,"held_back":1,"malformed":{"empty":1},"originated":4,"origination_failures":0,"rejected":{"stale":2,"wrong_root":1}},"held_back":0,"hub":"madrid-1","hubs_trusted":4,"jurisdiction":"ES","links":{"configured":4,"up":3},"taken_at":"2026-11-21T09:00:00Z","transit":true,"transit_reason":"sited reports normal"}"#;

const LINKS: &str = r#"[{"address":"198.51.100.7:7400","jurisdiction":"PT","link":1,"peer":"lisbon-1","rtt_ms":10.0,"up":true},{"address":"203.0.113.9:7400","jurisdiction":"PT","link":2,"peer":"lisbon-1","rtt_ms":14.0,"up":true},{"address":"192.0.2.10:7400","jurisdiction":"FR","link":1,"peer":"paris-1","rtt_ms":20.0,"up":true},{"address":"192.0.2.11:7400","jurisdiction":"FR","link":2,"peer":"paris-1","rtt_ms":null,"up":false}]"#;

const HUBS: &str = r#"[{"expires_at":"2026-11-21T10:00:00Z","id":"bogota-1","jurisdiction":"CO","links":[{"latency_ms":30.0,"link":1,"neighbour":"sao-paulo-1"}],"sequence":1795251600000,"transit":true,"trust":"vouched","vouched_through":["lisbon-1","sao-paulo-1"]},{"expires_at":"2026-11-21T10:00:00Z","id":"lisbon-1","jurisdiction":"PT","links":[{"latency_ms":5.0,"link":1,"neighbour":"madrid-1"},{"latency_ms":7.0,"link":2,"neighbour":"madrid-1"},{"latency_ms":40.0,"link":1,"neighbour":"sao-paulo-1"},{"latency_ms":45.0,"link":2,"neighbour":"sao-paulo-1"}],"sequence":1795251600000,"transit":true,"trust":"pinned","vouched_through":[]},{"expires_at":"2026-11-21T10:00:00Z","id":"madrid-1","jurisdiction":"ES","links":[{"latency_ms":5.0,"link":1,"neighbour":"lisbon-1"},{"latency_ms":7.0,"link":2,"neighbour":"lisbon-1"},{"latency_ms":10.0,"link":1,"neighbour":"paris-1"}],"sequence":1795251600000,"transit":true,"trust":"self","vouched_through":[]},{"expires_at":"2026-11-21T10:00:00Z","id":"paris-1","jurisdiction":"FR","links":[{"latency_ms":10.0,"link":1,"neighbour":"madrid-1"}],"sequence":1795251600000,"transit":false,"trust":"pinned","vouched_through":[]},{"expires_at":"2026-11-21T10:00:00Z","id":"quito-1","jurisdiction":"EC","links":[{"latency_ms":20.0,"link":1,"neighbour":"bogota-1"}],"sequence":1795251600000,"transit":true,"trust":"untrusted","vouched_through":[]},{"expires_at":"2026-11-21T10:00:00Z","id":"sao-paulo-1","jurisdiction":"BR","links":[{"latency_ms":30.0,"link":1,"neighbour":"bogota-1"},{"latency_ms":40.0,"link":1,"neighbour":"lisbon-1"},{"latency_ms":45.0,"link":2,"neighbour":"lisbon-1"}],"sequence":1795251600000,"transit":true,"trust":"vouched","vouched_through":["lisbon-1"]}]"#;

const ROUTES: &str = r#"[{"backup":null,"destination":"bogota-1","jurisdiction":"CO","primary":{"hops":3,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"},{"id":"sao-paulo-1","jurisdiction":"BR"},{"id":"bogota-1","jurisdiction":"CO"}],"latency_ms":75.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":1},{"a":"lisbon-1","b":"sao-paulo-1","link":1},{"a":"bogota-1","b":"sao-paulo-1","link":1}]},"refusal":null},{"backup":{"hops":1,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"}],"latency_ms":7.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":2}]},"destination":"lisbon-1","jurisdiction":"PT","primary":{"hops":1,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"}],"latency_ms":5.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":1}]},"refusal":null},{"backup":null,"destination":"paris-1","jurisdiction":"FR","primary":{"hops":1,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"paris-1","jurisdiction":"FR"}],"latency_ms":10.0,"links":[{"a":"madrid-1","b":"paris-1","link":1}]},"refusal":null},{"backup":{"hops":2,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"},{"id":"sao-paulo-1","jurisdiction":"BR"}],"latency_ms":52.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":2},{"a":"lisbon-1","b":"sao-paulo-1","link":2}]},"destination":"sao-paulo-1","jurisdiction":"BR","primary":{"hops":2,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"},{"id":"sao-paulo-1","jurisdiction":"BR"}],"latency_ms":45.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":1},{"a":"lisbon-1","b":"sao-paulo-1","link":1}]},"refusal":null}]"#;

const PATHS: &str = r#"{"backup":{"hops":2,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"},{"id":"sao-paulo-1","jurisdiction":"BR"}],"latency_ms":52.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":2},{"a":"lisbon-1","b":"sao-paulo-1","link":2}]},"destination":"sao-paulo-1","policy":"no-france","primary":{"hops":2,"hubs":[{"id":"madrid-1","jurisdiction":"ES"},{"id":"lisbon-1","jurisdiction":"PT"},{"id":"sao-paulo-1","jurisdiction":"BR"}],"latency_ms":45.0,"links":[{"a":"lisbon-1","b":"madrid-1","link":1},{"a":"lisbon-1","b":"sao-paulo-1","link":1}]},"rules":"excluding FR, a link-disjoint backup"}"#;

fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_status_reads_as_sentences() {
    assert_eq!(
        render_status(&document(STATUS), Palette::Plain),
        "hubd: madrid-1 (ES): 3/4 links up, 4 hubs trusted, transit offered\n\
         \x20 transit       offered (sited reports normal)\n\
         \x20 certificate   from trustd, valid until 2026-12-21T09:00:00Z\n\
         \x20 advertisement sequence 1795251600000, expires 2026-11-21T10:00:00Z\n\
         \x20 held back     0 advertisements waiting for a voucher\n\
         \x20 accepted      12 advertisements, 30 duplicate copies\n\
         \x20 rejected      3: stale 2, wrong_root 1\n\
         \x20 malformed     1: empty 1\n"
    );
}

#[test]
fn a_failing_certificate_renewal_is_shown_under_the_certificate() {
    let mut status = document(STATUS);
    let error = "cannot reach trustd on the system bus: org.bunkeros.Trust1 was not provided";
    status["certificate"]["renewal_error"] = json!(error);
    let out = render_status(&status, Palette::Plain);
    assert!(
        out.contains(&format!(
            "  certificate   from trustd, valid until 2026-12-21T09:00:00Z\n\
             \x20 renewal       failing, the certificate above stays in use: {error}\n\
             \x20 advertisement"
        )),
        "{out}"
    );
    // An older hubd sends no renewal_error: no row.
    status["certificate"]
        .as_object_mut()
        .unwrap()
        .remove("renewal_error");
    assert!(!render_status(&status, Palette::Plain).contains("renewal"));
}

#[test]
fn a_hub_without_links_or_transit_says_so_in_colour() {
    let mut status = document(STATUS);
    status["links"]["up"] = json!(0);
    status["counters"]["rejected"] = json!({});
    let out = render_status(&status, Palette::Ansi);
    assert!(
        out.starts_with("hubd: \x1b[31mmadrid-1 (ES): 0/4 links up"),
        "{out:?}"
    );
    assert!(out.contains("  rejected      0\n"), "{out}");
    assert!(out.contains("No link is up"), "{out}");
    status["links"]["up"] = json!(2);
    status["transit"] = json!(false);
    status["transit_reason"] = json!("sited reports lockdown: door 2 forced");
    let out = render_status(&status, Palette::Ansi);
    assert!(out.starts_with("hubd: \x1b[33m"), "{out:?}");
    assert!(out.contains("no transit"), "{out}");
    assert!(
        out.contains("  transit       withdrawn (sited reports lockdown: door 2 forced)\n"),
        "{out}"
    );
    assert!(!out.contains("No link is up"), "{out}");
}

#[test]
fn links_are_a_table_with_the_rtt_of_those_up() {
    assert_eq!(
        render_links(&document(LINKS), Palette::Plain),
        "PEER      JURISDICTION  LINK  ADDRESS            STATE  RTT\n\
         lisbon-1  PT            #1    198.51.100.7:7400  up     10.0 ms\n\
         lisbon-1  PT            #2    203.0.113.9:7400   up     14.0 ms\n\
         paris-1   FR            #1    192.0.2.10:7400    up     20.0 ms\n\
         paris-1   FR            #2    192.0.2.11:7400    down   -\n"
    );
    assert_eq!(
        render_links(&json!([]), Palette::Plain),
        "no links configured: hubd has no peering files\n"
    );
}

#[test]
fn hubs_say_how_each_is_trusted() {
    let out = render_hubs(&document(HUBS), Palette::Plain);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "HUB          JURISDICTION  TRUST                               TRANSIT  SEQUENCE       EXPIRES               LINKS"
    );
    assert_eq!(
        lines[1],
        "bogota-1     CO            vouched via lisbon-1 → sao-paulo-1  yes      1795251600000  2026-11-21T10:00:00Z  sao-paulo-1 #1 30.0 ms"
    );
    assert!(
        lines[3].starts_with("madrid-1     ES            self "),
        "{out}"
    );
    assert!(
        lines[4].contains(" pinned ") && lines[4].contains(" no "),
        "{out}"
    );
    assert!(lines[5].contains(" untrusted "), "{out}");
    assert_eq!(lines.len(), 7, "{out}");
}

#[test]
fn routes_show_latency_hops_the_hubs_crossed_and_the_backup() {
    assert_eq!(
        render_routes(&document(ROUTES), Palette::Plain),
        "DESTINATION       LATENCY  HOPS  VIA                              BACKUP\n\
         bogota-1 (CO)     75.0 ms  3     lisbon-1 (PT), sao-paulo-1 (BR)  none\n\
         lisbon-1 (PT)     5.0 ms   1     direct                           7.0 ms, direct\n\
         paris-1 (FR)      10.0 ms  1     direct                           none\n\
         sao-paulo-1 (BR)  45.0 ms  2     lisbon-1 (PT)                    52.0 ms, via lisbon-1 (PT)\n"
    );
    let mut with_refusal = document(ROUTES);
    with_refusal[1] = json!({"destination": "quito-1", "jurisdiction": "EC", "primary": null,
        "backup": null, "refusal": "no path from madrid-1 (ES) to quito-1 (EC): no route joins them, whatever the policy"});
    let out = render_routes(&with_refusal, Palette::Plain);
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("bogota-1 (CO)     75.0 ms"),
        "{out}"
    );
    assert!(
        out.ends_with("\nquito-1 (EC): no path: no path from madrid-1 (ES) to quito-1 (EC): no route joins them, whatever the policy\n"),
        "{out}"
    );
    assert_eq!(
        render_routes(&json!([]), Palette::Plain),
        "no other hub is trusted: no routes\n"
    );
}

#[test]
fn paths_show_each_hop_with_its_link() {
    assert_eq!(
        render_paths(&document(PATHS), Palette::Plain),
        "paths to sao-paulo-1 under no-france (excluding FR, a link-disjoint backup)\n\
         \x20 primary  madrid-1 (ES) —#1→ lisbon-1 (PT) —#1→ sao-paulo-1 (BR): 2 hops, 45.0 ms\n\
         \x20 backup   madrid-1 (ES) —#2→ lisbon-1 (PT) —#2→ sao-paulo-1 (BR): 2 hops, 52.0 ms\n"
    );
    let mut direct = document(PATHS);
    direct["policy"] = json!("");
    direct["rules"] = json!("any path");
    direct["primary"] = json!({"hubs": [{"id": "madrid-1", "jurisdiction": "ES"},
        {"id": "paris-1", "jurisdiction": "FR"}], "links": [{"a": "madrid-1", "b": "paris-1", "link": 1}],
        "hops": 1, "latency_ms": 0.25});
    direct["backup"] = Value::Null;
    let out = render_paths(&direct, Palette::Plain);
    assert!(
        out.starts_with("paths to sao-paulo-1 under no policy (any path)\n"),
        "{out}"
    );
    assert!(
        out.contains("primary  madrid-1 (ES) —#1→ paris-1 (FR): 1 hop, 0.25 ms\n"),
        "{out}"
    );
    assert!(out.contains("backup   none: "), "{out}");
}
