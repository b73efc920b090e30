use super::*;

const GOOD: &str = r#"
[[range]]
cidr = "10.10.0.0/22"
owner = "acme"
location = "hall A"

[[range]]
cidr = "10.10.4.0/24"
owner = "site"
location = "hall B"
port = 4029

[[owner]]
name = "acme"
identity = "{owner}.{ip-dashes}"
[[owner.pools]]
url = "stratum+tcp://pool.acme.example:3333"
user = "acme"
password = "x"
[[owner.pools]]
url = "stratum+tcp://10.0.0.9:3333"
user = "acme-backup"

[[owner]]
name = "site"
identity = "site.{ip}"
[[owner.pools]]
url = "stratum+ssl://pool.site.example:443"
user = "bunker"
"#;

fn parse(text: &str) -> SiteLayout {
    toml::from_str(text).unwrap()
}

fn keys(layout: &SiteLayout) -> Vec<String> {
    layout
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|p| p.key)
        .collect()
}

#[test]
fn a_good_layout_validates_and_enumerates_hosts() {
    let layout = parse(GOOD);
    layout.validate().unwrap();
    assert_eq!(layout.ranges[0].port, DEFAULT_API_PORT);
    assert_eq!(layout.ranges[1].port, 4029);
    // A /22 has 1,022 hosts, a /24 254.
    assert_eq!(layout.api_addresses().count(), 1022 + 254);
    let first = layout.api_addresses().next().unwrap().0;
    assert_eq!(first, "10.10.0.1:4028".parse().unwrap());
    let range = layout.range_of("10.10.4.7".parse().unwrap()).unwrap();
    assert_eq!(range.owner, "site");
    assert!(layout.range_of("10.10.5.1".parse().unwrap()).is_none());
}

#[test]
fn identities_fill_the_template() {
    let layout = parse(GOOD);
    let ip = "10.10.1.2".parse().unwrap();
    assert_eq!(
        layout.owner("acme").unwrap().identity_for(ip),
        "acme.10-10-1-2"
    );
    assert_eq!(
        layout.owner("site").unwrap().identity_for(ip),
        "site.10.10.1.2"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let text = GOOD.replace("location = \"hall A\"", "location = \"hall A\"\nrack = 3");
    assert!(toml::from_str::<SiteLayout>(&text).is_err());
}

#[test]
fn overlapping_ranges_are_refused() {
    let text = GOOD.replace("10.10.4.0/24", "10.10.2.0/24");
    assert_eq!(keys(&parse(&text)), ["range[1].cidr"]);
}

#[test]
fn unknown_owner_is_refused() {
    let text = GOOD.replace("owner = \"site\"", "owner = \"nobody\"");
    let problems = parse(&text).validate().unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "range[1].owner");
    assert!(problems[0].reason.contains("nobody"));
}

#[test]
fn ranges_larger_than_a_slash_16_are_refused() {
    let text = GOOD.replace("10.10.0.0/22", "10.0.0.0/8");
    // Also overlaps the second range, which is reported as well.
    let k = keys(&parse(&text));
    assert!(
        k.iter()
            .all(|k| k == "range[0].cidr" || k == "range[1].cidr")
    );
    let problems = parse(&text).validate().unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.reason.contains("larger than a /16"))
    );
}

#[test]
fn bad_pool_urls_are_refused() {
    for bad in [
        "http://pool.acme.example:3333",
        "stratum+tcp://pool.acme.example",
        "stratum+tcp://:3333",
        "stratum+tcp://pool acme:3333",
        "stratum+tcp://pool.acme.example:99999",
    ] {
        let text = GOOD.replace("stratum+tcp://pool.acme.example:3333", bad);
        assert_eq!(keys(&parse(&text)), ["owner[0].pools[0].url"], "{bad}");
    }
}

#[test]
fn bad_identity_templates_and_empty_pools_are_refused() {
    let text = GOOD.replace("{owner}.{ip-dashes}", "{owner}.{serial}");
    assert_eq!(keys(&parse(&text)), ["owner[0].identity"]);
    let text = GOOD.replace("user = \"bunker\"", "user = \"\"");
    assert_eq!(keys(&parse(&text)), ["owner[1].pools[0].user"]);
}

#[test]
fn host_bits_and_duplicate_owners_are_refused() {
    let text = GOOD.replace("10.10.4.0/24", "10.10.4.1/24");
    assert_eq!(keys(&parse(&text)), ["range[1].cidr"]);
    let text = GOOD.replace("name = \"site\"", "name = \"acme\"");
    let k = keys(&parse(&text));
    assert!(k.contains(&"owner[1].name".to_string()), "{k:?}");
}

#[test]
fn the_config_loader_reads_a_layout_file_and_names_the_bad_key() {
    use appliance::config::ConfigPaths;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minerd-site.toml");
    std::fs::write(&file, GOOD).unwrap();
    let paths = ConfigPaths::new(dir.path().join("absent.toml"), &file, true);
    let layout = paths.load::<SiteLayout>().unwrap().into_inner();
    assert_eq!(layout.ranges.len(), 2);
    std::fs::write(&file, GOOD.replace("10.10.4.0/24", "10.10.2.0/24")).unwrap();
    let error = paths.load::<SiteLayout>().unwrap_err().to_string();
    assert!(error.contains("range[1].cidr"), "{error}");
    assert!(error.contains("minerd-site.toml"), "{error}");
}
