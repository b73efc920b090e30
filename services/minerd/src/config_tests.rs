use std::net::Ipv4Addr;

use appliance::config::ServiceConfig;

use super::*;

const SITE: &str = r#"
[[layout.range]]
cidr = "10.10.0.0/24"
owner = "acme"
location = "hall A"
[[layout.owner]]
name = "acme"
identity = "{owner}.{ip-dashes}"
[[layout.owner.pools]]
url = "stratum+tcp://pool.acme.example:3333"
user = "acme"

[proxy]
listen = "10.0.0.1:3333"
[sanctioned]
proxy_urls = ["stratum+tcp://10.0.0.1:3333", "stratum+tcp://10.0.0.2:3333"]
"#;

fn parse(text: &str) -> MinerdConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn defaults_are_valid() {
    MinerdConfig::default().validate().unwrap();
}

#[test]
fn a_site_reads_and_gives_each_miner_its_sanctioned_pools() {
    let config = parse(SITE);
    config.validate().unwrap();
    let pools = config.sanctioned_pools_for(Ipv4Addr::new(10, 10, 0, 7));
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0].url, "stratum+tcp://10.0.0.1:3333");
    assert_eq!(pools[0].user, "acme.10-10-0-7");
    assert!(
        config
            .sanctioned_pools_for(Ipv4Addr::new(10, 11, 0, 7))
            .is_empty()
    );
}

#[test]
fn module_complaints_carry_their_section() {
    let mut config = parse(SITE);
    config.layout.ranges[0].owner = "nobody".into();
    config.operations.concurrency = 0;
    config.audit.every_records = 1;
    config.sanctioned.proxy_urls = vec!["http://10.0.0.1".into()];
    let keys: Vec<String> = config
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|i| i.key)
        .collect();
    for key in [
        "layout.range[0].owner",
        "operations.concurrency",
        "audit.every_records",
        "sanctioned.proxy_urls[0]",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
}

#[test]
fn unknown_keys_and_non_loopback_metrics_are_refused() {
    assert!(toml::from_str::<MinerdConfig>("[proxy]\nlisten_on = \"1.2.3.4:1\"\n").is_err());
    assert!(toml::from_str::<MinerdConfig>("[metrics]\nlisten = \"10.0.0.1:9103\"\n").is_err());
    assert!(toml::from_str::<MinerdConfig>("[bogus]\n").is_err());
}
