//! hubd.toml and the peering files as an operator meets them, mistakes with their lines.

use std::fs;
use std::path::Path;

use appliance::config::ConfigPaths;
use tempfile::TempDir;

use super::*;
use crate::testing::{Site, country, hub};

/// A scratch site configuration directory with a peers directory.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let scratch = Self {
            dir: TempDir::new().unwrap(),
        };
        fs::create_dir(scratch.peers()).unwrap();
        scratch
    }

    fn peers(&self) -> std::path::PathBuf {
        self.dir.path().join("peers")
    }

    fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn peer(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.peers().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// A minimal valid hubd.toml for madrid-1 plus `extra`.
    fn hubd_toml(&self, extra: &str) -> std::path::PathBuf {
        self.write(
            "hubd.toml",
            &format!(
                "[hub]\nid = \"madrid-1\"\njurisdiction = \"ES\"\npeers_dir = \"{}\"\n{extra}",
                self.peers().display()
            ),
        )
    }

    fn load(&self, path: &Path) -> Result<HubdSetup, String> {
        load_from(&ConfigPaths::new("/nonexistent/hubd.toml", path, true)).map_err(|e| {
            e.to_string()
                .replace(&self.dir.path().display().to_string(), "DIR")
        })
    }
}

fn peer_toml(hub: &str, code: &str, root: &str) -> String {
    format!(
        "hub = \"{hub}\"\njurisdiction = \"{code}\"\n{root}\n\n[[link]]\nid = 1\naddress = \"198.51.100.7:7400\"\n\n[[link]]\nid = 2\naddress = \"203.0.113.9:7400\"\n\n[grant]\ntransit = true\nprefixes = [\"10.20.0.0/16\"]\n"
    )
}

#[test]
fn the_built_in_defaults_need_the_hub_named() {
    let defaults = HubdConfig::default();
    assert_eq!(defaults.metrics.listen.to_string(), "127.0.0.1:9102");
    assert_eq!(defaults.hub.listen[0].to_string(), "[::]:7400");
    assert_eq!(defaults.hub.peers_dir, Path::new(PEERS_DIR));
    assert_eq!(defaults.certificate, CertificateSource::Trustd);
    let error = ConfigPaths::new("/nonexistent/a.toml", "/nonexistent/b.toml", false)
        .load::<HubdConfig>()
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "built-in default: `hub.id`: must be set to this hub's id, e.g. `madrid-1` (its certificate names it)\n\
         built-in default: `hub.jurisdiction`: must be set to the ISO 3166-1 alpha-2 code of the country this hub stands in, e.g. `ES`"
    );
}

#[test]
fn a_hub_with_peers_and_policies_loads_and_reports_what_it_read() {
    let scratch = Scratch::new();
    let paris = Site::new("paris");
    let lisbon = Site::new("lisbon");
    fs::create_dir(scratch.peers().join("roots")).unwrap();
    fs::write(scratch.peers().join("roots/paris.pem"), paris.root_pem()).unwrap();
    scratch.peer(
        "paris-1.toml",
        &peer_toml("paris-1", "FR", "root = \"roots/paris.pem\""),
    );
    scratch.peer(
        "lisbon-1.toml",
        &peer_toml(
            "lisbon-1",
            "PT",
            &format!("root_pem = \"\"\"\n{}\"\"\"", lisbon.root_pem()),
        ),
    );
    scratch.peer("README", "not a peering file");
    let path = scratch.hubd_toml(
        "listen = [\"[::]:7400\", \"192.0.2.1:7401\"]\n\
         [path_policy.no-france]\nexcluded_jurisdictions = [\"FR\"]\nmax_hops = 4\ndisjoint_backup = true\n\
         [path_policy.iberia]\nallowed_jurisdictions = [\"ES\", \"PT\"]\nmax_latency_ms = 40\n",
    );
    let setup = scratch.load(&path).unwrap();
    assert_eq!(setup.peers.len(), 2);
    let paris_agreement = setup.peers.get(&hub("paris-1")).unwrap();
    assert_eq!(paris_agreement.root_fingerprint(), paris.fingerprint());
    assert_eq!(paris_agreement.links().len(), 2);
    assert!(paris_agreement.grant().allows_transit());
    let anchors = setup.peers.trust_anchors().unwrap();
    assert_eq!(
        anchors.peer_root(&hub("lisbon-1")),
        Some(lisbon.fingerprint())
    );
    let policies = setup.config.path_policies();
    assert_eq!(
        policies["no-france"].excluded_jurisdictions,
        [country("FR")].into()
    );
    assert_eq!(
        policies["iberia"].max_latency,
        Some(Latency::from_millis(40))
    );
    let report = setup
        .report()
        .replace(&scratch.dir.path().display().to_string(), "DIR");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "config OK: read DIR/hubd.toml");
    assert_eq!(
        lines[1],
        "hub madrid-1 (ES, Spain); links accepted on [::]:7400, 192.0.2.1:7401; metrics on 127.0.0.1:9102"
    );
    assert_eq!(lines[2], "certificate: from trustd (profile hub)");
    assert_eq!(lines[3], "peers: 2 in DIR/peers");
    assert!(lines[4].starts_with(
        "  peer lisbon-1 (PT, Portugal): links #1 198.51.100.7:7400, #2 203.0.113.9:7400; root key "
    ));
    assert!(lines[5].contains(&paris.fingerprint().to_string()));
    assert!(lines[5].ends_with("granted transit; 10.20.0.0/16"));
    assert_eq!(
        lines[6],
        "path policy iberia: only in ES, PT, at most 40.0 ms"
    );
    assert_eq!(
        lines[7],
        "path policy no-france: excluding FR, at most 4 hops, a link-disjoint backup"
    );
}

#[test]
fn mistakes_in_hubd_toml_are_reported_at_their_line() {
    let scratch = Scratch::new();
    let load = |extra: &str| scratch.load(&scratch.hubd_toml(extra)).unwrap_err();
    assert_eq!(
        load("prot = 1\n"),
        "DIR/hubd.toml:5:1: unknown key `prot`, expected one of `id`, `jurisdiction`, `listen`, `peers_dir`"
    );
    let bad_country = scratch.write(
        "bad.toml",
        "[hub]\nid = \"madrid-1\"\njurisdiction = \"UK\"\n",
    );
    assert_eq!(
        scratch.load(&bad_country).unwrap_err(),
        "DIR/bad.toml:3:16: `UK` is not an assigned ISO 3166-1 alpha-2 code (the United Kingdom is `GB`)"
    );
    let bad_id = scratch.write("id.toml", "[hub]\nid = \"Madrid\"\njurisdiction = \"ES\"\n");
    assert!(
        scratch
            .load(&bad_id)
            .unwrap_err()
            .starts_with("DIR/id.toml:2:6: \"Madrid\" is not a hub id")
    );
    assert_eq!(
        load("listen = [\"[::]:7400\", \"[::]:7400\"]\n"),
        "DIR/hubd.toml:5:24: `hub.listen[1]`: `[::]:7400` is listed twice"
    );
    assert_eq!(
        load(
            "[path_policy.odd]\nallowed_jurisdictions = [\"FR\", \"ES\"]\nexcluded_jurisdictions = [\"FR\"]\n"
        ),
        "DIR/hubd.toml:7:1: `path_policy.odd.excluded_jurisdictions`: `FR` is both allowed and excluded"
    );
    assert_eq!(
        load("[path_policy.home]\nexcluded_jurisdictions = [\"ES\"]\n"),
        "DIR/hubd.toml:6:1: `path_policy.home.excluded_jurisdictions`: excludes ES, where this hub stands and every path of this hub starts"
    );
    assert_eq!(
        load("[path_policy.away]\nallowed_jurisdictions = [\"PT\"]\n"),
        "DIR/hubd.toml:6:1: `path_policy.away.allowed_jurisdictions`: does not allow ES, where this hub stands and every path of this hub starts"
    );
    assert_eq!(
        load("[path_policy.me]\nexcluded_hubs = [\"madrid-1\"]\n"),
        "DIR/hubd.toml:6:1: `path_policy.me.excluded_hubs`: excludes this hub (madrid-1), where every path of this hub starts"
    );
    assert_eq!(
        load("[path_policy.x]\nmax_hops = 0\n"),
        "DIR/hubd.toml:6:12: value 0 is out of range, expected 1 to 64"
    );
    assert_eq!(
        load("[metrics]\nlisten = \"0.0.0.0:9102\"\n"),
        "DIR/hubd.toml:6:10: `0.0.0.0:9102` is not a loopback address; metrics are served on loopback only (127.0.0.0/8 or [::1])"
    );
    assert_eq!(
        load("[certificate]\nsource = \"vault\"\n"),
        "DIR/hubd.toml:6:10: unknown value `vault`, expected `trustd` or `pem`"
    );
}

#[test]
fn pem_certificates_must_certify_this_hub_up_to_the_site_root() {
    let scratch = Scratch::new();
    let site = Site::new("madrid");
    let write_identity = |name: &str, id: &str| {
        let cert = site.hub(id);
        let chain_path = scratch.write(&format!("{name}.pem"), cert.chain_pem());
        let key_path = scratch.write(&format!("{name}.key"), cert.key_pem());
        (chain_path, key_path)
    };
    let (chain, key) = write_identity("good", "madrid-1");
    let pem = |chain: &Path, key: &Path| {
        format!(
            "[certificate]\nsource = \"pem\"\nchain = \"{}\"\nkey = \"{}\"\n",
            chain.display(),
            key.display()
        )
    };
    let setup = scratch
        .load(&scratch.hubd_toml(&pem(&chain, &key)))
        .unwrap();
    assert!(setup.report().contains("certificate: PEM chain "));
    let (other_chain, other_key) = write_identity("other", "madrid-2");
    assert_eq!(
        scratch
            .load(&scratch.hubd_toml(&pem(&other_chain, &other_key)))
            .unwrap_err(),
        "DIR/hubd.toml:7:1: `certificate.chain`: the certificate is for hub madrid-2, but `hub.id` is madrid-1"
    );
    assert_eq!(
        scratch
            .load(&scratch.hubd_toml(&pem(&chain, &other_key)))
            .unwrap_err(),
        "DIR/hubd.toml:8:1: `certificate.key`: DIR/good.pem and DIR/other.key do not make a hub identity: the signing key does not match the certificate's public key"
    );
    let missing = scratch.dir.path().join("missing.pem");
    assert!(
        scratch
            .load(&scratch.hubd_toml(&pem(&missing, &key)))
            .unwrap_err()
            .starts_with("DIR/hubd.toml:7:1: `certificate.chain`: cannot read DIR/missing.pem: ")
    );
}

#[test]
fn mistakes_in_peering_files_are_reported_at_their_line_and_all_at_once() {
    let scratch = Scratch::new();
    let paris = Site::new("paris");
    fs::write(scratch.peers().join("paris.pem"), paris.root_pem()).unwrap();
    let root = "root = \"paris.pem\"";
    // Named after another hub.
    scratch.peer("paris-2.toml", &peer_toml("paris-1", "FR", root));
    // A link number used twice.
    scratch.peer(
        "lisbon-1.toml",
        &peer_toml("lisbon-1", "PT", root).replace("id = 2", "id = 1"),
    );
    // A prefix with host bits.
    scratch.peer(
        "geneva-1.toml",
        &peer_toml("geneva-1", "CH", root).replace("10.20.0.0/16", "10.20.0.1/16"),
    );
    // This hub itself, and no root.
    scratch.peer("madrid-1.toml", &peer_toml("madrid-1", "ES", ""));
    let error = scratch.load(&scratch.hubd_toml("")).unwrap_err();
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines.len(), 5, "{error}");
    assert_eq!(
        lines[0],
        "DIR/peers/geneva-1.toml:15:12: 10.20.0.1/16 has host bits set; the prefix is 10.20.0.0/16"
    );
    assert_eq!(
        lines[1],
        "DIR/peers/lisbon-1.toml:10:1: `link[1].id`: link #1 is listed twice for peer lisbon-1"
    );
    assert_eq!(
        lines[2],
        "DIR/peers/madrid-1.toml:1:1: `hub`: madrid-1 is this hub; a peering file names another hub"
    );
    assert_eq!(
        lines[3],
        "DIR/peers/madrid-1.toml:1:1: `hub`: the peer site's root certificate is missing: set `root` (a PEM file) or `root_pem`"
    );
    assert_eq!(
        lines[4],
        "DIR/peers/paris-2.toml:1:1: `hub`: names hub paris-1, but the file is not paris-1.toml; name each peering file after its peer"
    );
}

#[test]
fn the_pinned_root_must_be_one_readable_certificate() {
    let scratch = Scratch::new();
    let paris = Site::new("paris");
    let load_peer = |text: &str| {
        scratch.peer("paris-1.toml", text);
        scratch.load(&scratch.hubd_toml("")).unwrap_err()
    };
    assert_eq!(
        load_peer(&peer_toml("paris-1", "FR", "root = \"nowhere.pem\"")),
        "DIR/peers/paris-1.toml:3:1: `root`: cannot read DIR/peers/nowhere.pem: No such file or directory (os error 2)"
    );
    let both = format!(
        "root = \"x.pem\"\nroot_pem = \"\"\"\n{}\"\"\"",
        paris.root_pem()
    );
    assert_eq!(
        load_peer(&peer_toml("paris-1", "FR", &both)),
        "DIR/peers/paris-1.toml:4:1: `root_pem`: give the peer's root either as a file (`root`) or inline (`root_pem`), not both"
    );
    let two = format!("root_pem = \"\"\"\n{0}{0}\"\"\"", paris.root_pem());
    assert_eq!(
        load_peer(&peer_toml("paris-1", "FR", &two)),
        "DIR/peers/paris-1.toml:3:1: `root_pem`: not a usable root certificate: a pinned root must be exactly one certificate; the PEM holds 2"
    );
    assert_eq!(
        load_peer(
            "hub = \"paris-1\"\njurisdiction = \"FR\"\nroot_pem = \"x\"\n[grant]\ntransitt = true\n"
        ),
        "DIR/peers/paris-1.toml:5:1: unknown key `transitt`, expected one of `transit`, `prefixes`, `services`"
    );
    assert_eq!(
        load_peer(
            "hub = \"paris-1\"\njurisdiction = \"FR\"\nroot_pem = \"x\"\n[[link]]\nid = 1\naddress = \"paris.example:7400\"\n"
        ),
        "DIR/peers/paris-1.toml:6:11: invalid socket address syntax"
    );
    let no_links = format!(
        "hub = \"paris-1\"\njurisdiction = \"FR\"\nroot_pem = \"\"\"\n{}\"\"\"\n",
        paris.root_pem()
    );
    assert_eq!(
        load_peer(&no_links),
        "DIR/peers/paris-1.toml:1:1: `hub`: peer paris-1 has no link; list at least one `[[link]]` with its `id` and `address`"
    );
}

#[test]
fn a_missing_peers_directory_means_no_peers() {
    let scratch = Scratch::new();
    fs::remove_dir(scratch.peers()).unwrap();
    let setup = scratch.load(&scratch.hubd_toml("")).unwrap();
    assert!(setup.peers.is_empty());
    assert!(!setup.peers_dir_exists);
    let report = setup
        .report()
        .replace(&scratch.dir.path().display().to_string(), "DIR");
    assert!(
        report.contains("peers: none (DIR/peers does not exist)"),
        "{report}"
    );
}

#[test]
fn services_published_and_reached_load_and_report() {
    let scratch = Scratch::new();
    let path = scratch.hubd_toml(
        "[path_policy.eu-only]\nallowed_jurisdictions = [\"ES\", \"PT\"]\n\
         [[service]]\nname = \"ledger\"\npublish = \"127.0.0.1:5432\"\n\
         [[service]]\nname = \"records\"\nhub = \"lisbon-1\"\nlisten = \"127.0.0.1:17432\"\npath_policy = \"eu-only\"\n\
         [[service]]\nname = \"backup\"\nhub = \"paris-1\"\nlisten = \"127.0.0.1:17433\"\n",
    );
    let setup = scratch.load(&path).unwrap();
    let report = setup.report();
    assert!(
        report.contains("service ledger published here, connecting to 127.0.0.1:5432\n"),
        "{report}"
    );
    assert!(
        report.contains(
            "service records of hub lisbon-1 reached on 127.0.0.1:17432 (path policy eu-only)\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("service backup of hub paris-1 reached on 127.0.0.1:17433 (any path)\n"),
        "{report}"
    );
}

#[test]
fn service_mistakes_are_each_named() {
    let scratch = Scratch::new();
    let cases = [
        (
            "[[service]]\nname = \"a\"\npublish = \"127.0.0.1:1\"\nhub = \"x-1\"\n",
            "service[0].publish",
            "not both",
        ),
        (
            "[[service]]\nname = \"a\"\nlisten = \"127.0.0.1:17432\"\n",
            "service[0].hub",
            "must name the hub",
        ),
        (
            "[[service]]\nname = \"a\"\nhub = \"lisbon-1\"\n",
            "service[0].listen",
            "local address",
        ),
        (
            "[[service]]\nname = \"a\"\nhub = \"madrid-1\"\nlisten = \"127.0.0.1:17432\"\n",
            "service[0].hub",
            "is this hub",
        ),
        (
            "[[service]]\nname = \"a\"\nhub = \"lisbon-1\"\nlisten = \"127.0.0.1:17432\"\npath_policy = \"nope\"\n",
            "service[0].path_policy",
            "no [path_policy.nope]",
        ),
        (
            "[[service]]\nname = \"a\"\npublish = \"127.0.0.1:1\"\n[[service]]\nname = \"a\"\npublish = \"127.0.0.1:2\"\n",
            "service[1].name",
            "published twice",
        ),
        (
            "[[service]]\nname = \"a\"\nhub = \"lisbon-1\"\nlisten = \"127.0.0.1:17432\"\n\
             [[service]]\nname = \"b\"\nhub = \"lisbon-1\"\nlisten = \"127.0.0.1:17432\"\n",
            "service[1].listen",
            "listener of another service",
        ),
        (
            "[[service]]\nname = \"Bad Name\"\npublish = \"127.0.0.1:1\"\n",
            "name",
            "",
        ),
    ];
    for (extra, key, sentence) in cases {
        let error = scratch.load(&scratch.hubd_toml(extra)).unwrap_err();
        assert!(
            error.contains(key) && error.contains(sentence),
            "{extra}: {error}"
        );
    }
}

#[test]
fn a_tun_with_routes_loads_and_reports() {
    let scratch = Scratch::new();
    let path = scratch.hubd_toml(
        "[path_policy.eu-only]\nallowed_jurisdictions = [\"ES\", \"FR\"]\n\
         [tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\", \"2001:db8:77:1::/64\"]\n\
         [[route]]\nprefix = \"10.77.3.0/24\"\nhub = \"paris-1\"\npath_policy = \"eu-only\"\n\
         [[route]]\nprefix = \"10.77.2.0/24\"\n",
    );
    let setup = scratch.load(&path).unwrap();
    let tun = setup.config.tun.as_ref().unwrap();
    assert_eq!(tun.name, "hub0");
    assert_eq!(tun.mtu.get(), 1380);
    assert_eq!(tun.address.network().to_string(), "10.77.0.0/16");
    let report = setup.report();
    assert!(
        report.contains(
            "tun hub0 10.77.1.1/16 mtu 1380; announcing 10.77.1.0/24, 2001:db8:77:1::/64\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("route 10.77.3.0/24: only paris-1 (path policy eu-only)\n"),
        "{report}"
    );
    assert!(
        report.contains("route 10.77.2.0/24: any hub announcing it (any path)\n"),
        "{report}"
    );
    let plain = scratch.load(&scratch.hubd_toml("")).unwrap();
    assert!(plain.config.tun.is_none());
    assert!(!plain.report().contains("tun"), "no TUN, nothing said");
}

#[test]
fn tun_and_route_mistakes_are_each_named() {
    let scratch = Scratch::new();
    let tun = "[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.0/24\"]\n";
    let cases = [
        ("[tun]\nname = \"hub0\"\n", "address", "missing key"),
        (
            "[tun]\naddress = \"10.77.1.1\"\n",
            "address",
            "not an interface address",
        ),
        (
            "[tun]\naddress = \"10.77.1.1/16\"\nmtu = 100\n",
            "hubd.toml:7",
            "576",
        ),
        (
            "[tun]\naddress = \"10.77.1.1/16\"\nname = \"a-name-far-too-long\"\n",
            "tun.name",
            "not an interface name",
        ),
        (
            "[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.0.0/16\", \"10.77.1.0/24\"]\n",
            "tun.announce[1]",
            "overlaps 10.77.0.0/16",
        ),
        (
            "[tun]\naddress = \"10.77.1.1/16\"\nannounce = [\"10.77.1.1/24\"]\n",
            "hubd.toml:7",
            "host bits",
        ),
        (
            "[[route]]\nprefix = \"10.77.3.0/24\"\n",
            "route[0].prefix",
            "need a [tun]",
        ),
        (
            "[[route]]\nprefix = \"10.77.1.128/25\"\n",
            "route[0].prefix",
            "which this hub announces",
        ),
        (
            "[[route]]\nprefix = \"10.77.3.0/24\"\n[[route]]\nprefix = \"10.77.3.0/24\"\n",
            "route[1].prefix",
            "another [[route]]",
        ),
        (
            "[[route]]\nprefix = \"10.77.3.0/24\"\nhub = \"madrid-1\"\n",
            "route[0].hub",
            "is this hub",
        ),
        (
            "[[route]]\nprefix = \"10.77.3.0/24\"\npath_policy = \"nope\"\n",
            "route[0].path_policy",
            "no [path_policy.nope]",
        ),
        (
            "[[route]]\nprefix = \"10.77.3.0/24\"\nvia = \"x\"\n",
            "via",
            "unknown",
        ),
        (
            "[tun]\naddress = \"2001:db8:77::1/48\"\nmtu = 1000\n",
            "tun.mtu",
            "IPv6 needs at least 1280",
        ),
        (
            "[tun]\naddress = \"10.77.0.1/16\"\nannounce = [\"10.77.1.0/24\"]\n",
            "tun.address",
            "10.77.0.1 is inside no prefix of tun.announce",
        ),
    ];
    for (extra, key, sentence) in cases {
        // Routes are checked beside a valid [tun], but for the one that lacks it.
        let extra = if extra.starts_with("[[route]]") && sentence != "need a [tun]" {
            format!("{tun}{extra}")
        } else {
            extra.to_owned()
        };
        let error = scratch.load(&scratch.hubd_toml(&extra)).unwrap_err();
        assert!(
            error.contains(key) && error.contains(sentence),
            "{extra}: {error}"
        );
    }
}
