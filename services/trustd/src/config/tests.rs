//! The configuration as an operator meets it: the image's file, and mistakes with their lines.

use std::fs;
use std::path::{Path, PathBuf};

use appliance::config::{ConfigPaths, ServiceConfig};
use tempfile::TempDir;

use super::*;

/// The file the image installs as `/usr/share/bunkeros/trustd.toml`.
fn image_defaults() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../image/config/trustd.toml")
}

/// Loads the image defaults with `site` as the site layer; the error text on refusal.
fn load_site(site: &str) -> Result<TrustdConfig, String> {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("trustd.toml");
    fs::write(&path, site).unwrap();
    ConfigPaths::new(image_defaults(), &path, true)
        .load::<TrustdConfig>()
        .map(|loaded| loaded.into_inner())
        .map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "SITE")
        })
}

#[test]
fn the_built_in_defaults_are_valid_and_match_the_image_file() {
    let built_in = TrustdConfig::default();
    built_in.validate().expect("built-in defaults validate");
    let loaded = ConfigPaths::new(image_defaults(), "/nonexistent/trustd.toml", false)
        .load::<TrustdConfig>()
        .expect("the image's trustd.toml loads");
    assert_eq!(loaded.files, vec![image_defaults()]);
    // The image file documents the defaults; it must not drift from them.
    let shipped = loaded.into_inner();
    assert_eq!(shipped.issuance_policy(), built_in.issuance_policy());
    assert_eq!(
        TrustdConfig {
            issuance: IssuanceSection::default(),
            ..shipped
        },
        built_in
    );
    assert_eq!(built_in.site.domain.as_str(), "bunker.test");
    assert_eq!(built_in.policy.pcrs, vec![7, 11]);
    assert_eq!(built_in.policy.selection_text(), "7+11");
    assert_eq!(built_in.metrics.listen.to_string(), "127.0.0.1:9101");
    assert_eq!(built_in.http.listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn the_issuance_policy_is_the_site_default_with_overrides() {
    let config = load_site(
        "[site]\ndomain = \"oslo.bunker.example\"\n\
         [issuance.device]\nip_ranges = [\"10.20.0.0/16\"]\nmax_lifetime = \"14d\"\n",
    )
    .unwrap();
    let policy = config.issuance_policy();
    assert_eq!(policy.site_domain.as_str(), "oslo.bunker.example");
    assert_eq!(policy.device.ip_ranges.len(), 1);
    assert_eq!(policy.device.max_lifetime, Lifetime::days(14));
    assert_eq!(
        policy.device.dns_suffixes[0].as_str(),
        "devices.oslo.bunker.example",
        "keys not overridden keep the site default"
    );
    // the image's [issuance.service] merges with the default, key by key
    assert_eq!(policy.service.max_lifetime, Lifetime::days(7));
}

#[test]
fn an_unknown_key_is_refused_at_its_line() {
    let err = load_site("[policy]\nmode = \"pcr\"\npcr = [7]\n").unwrap_err();
    assert!(
        err.starts_with("SITE/trustd.toml:3:1: unknown key `pcr`"),
        "{err}"
    );
}

#[test]
fn a_bad_policy_mode_and_pcr_are_refused() {
    let err = load_site("[policy]\nmode = \"software\"\n").unwrap_err();
    assert!(err.contains("SITE/trustd.toml:2:8"), "{err}");
    assert!(err.contains("unknown value `software`"), "{err}");
    let err = load_site("[policy]\npcrs = [7, 24]\n").unwrap_err();
    assert!(err.contains("SITE/trustd.toml:2:1: `policy.pcrs`"), "{err}");
    let err = load_site("[policy]\npcrs = []\n").unwrap_err();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn authorized_mode_reads_the_images_release_key_and_signed_policy() {
    let defaults = load_site("").unwrap();
    assert_eq!(defaults.policy.mode, PolicyKind::Authorized);
    assert_eq!(defaults.policy.release_key, Path::new(RELEASE_KEY));
    assert_eq!(defaults.policy.signed_policy, Path::new(SIGNED_POLICY));
    let err = load_site("[policy]\nrelease_key = \"release.pem\"\n").unwrap_err();
    assert!(
        err.contains("SITE/trustd.toml:2:1: `policy.release_key`: must be an absolute path"),
        "{err}"
    );
    // A site that switches to `pcr` mode cannot unset the image's keys; they are ignored.
    let pcr = load_site("[policy]\nmode = \"pcr\"\nrelease_key = \"relative.pem\"\n").unwrap();
    assert_eq!(pcr.policy.mode, PolicyKind::Pcr);
}

#[test]
fn signed_pcrs_must_be_some_of_the_pcrs() {
    let authorized = "[policy]\nmode = \"authorized\"\nrelease_key = \"/r.pem\"\n\
                      signed_policy = \"/p.json\"\npcrs = [7, 11]\n";
    let ok = load_site(authorized).unwrap();
    assert_eq!(ok.policy.signed_pcrs, vec![11], "the default");
    assert_eq!(TrustdConfig::default().policy.signed_pcrs, vec![11]);

    let err = load_site(&format!("{authorized}signed_pcrs = [11, 16]\n")).unwrap_err();
    assert!(
        err.contains(
            "SITE/trustd.toml:6:1: `policy.signed_pcrs`: lists PCR 16 outside `policy.pcrs` [7, 11]"
        ),
        "{err}"
    );
    let err = load_site(&format!("{authorized}signed_pcrs = []\n")).unwrap_err();
    assert!(err.contains("`policy.signed_pcrs`"), "{err}");
    assert!(err.contains("empty"), "{err}");
    let err = load_site(&format!("{authorized}signed_pcrs = [11, 11]\n")).unwrap_err();
    assert!(err.contains("PCR 11 is listed twice"), "{err}");

    // All of them signed, none fixed: the `authorized` mode of before.
    let all = load_site(&format!("{authorized}signed_pcrs = [11, 7]\n")).unwrap();
    assert_eq!(all.policy.signed_pcrs, vec![11, 7]);
}

#[test]
fn an_empty_prediction_path_means_the_value_at_enrolment() {
    let config = load_site("[policy]\npcr11_prediction = \"\"\n").unwrap();
    assert_eq!(config.policy.prediction_file(), None);
    assert_eq!(
        TrustdConfig::default().policy.prediction_file(),
        Some(Path::new(PCR11_PREDICTION))
    );
}

#[test]
fn issuance_overrides_that_leave_the_site_are_refused_at_their_key() {
    let err =
        load_site("[issuance.service]\ndns_suffixes = [\"elsewhere.example\"]\n").unwrap_err();
    assert!(
        err.contains("SITE/trustd.toml:2:1: `issuance.service.dns_suffixes`"),
        "{err}"
    );
    assert!(
        err.contains("not within the site domain `bunker.test`"),
        "{err}"
    );

    let err = load_site("[issuance.operator]\nmax_lifetime = \"2h\"\n").unwrap_err();
    assert!(err.contains("`issuance.operator.max_lifetime`"), "{err}");
    assert!(
        err.contains("default_lifetime 8h is longer than max_lifetime 2h"),
        "{err}"
    );

    let err = load_site("[issuance.hub]\nallow_wildcards = true\n").unwrap_err();
    assert!(
        err.contains("SITE/trustd.toml:2:1: `issuance.hub.allow_wildcards`"),
        "{err}"
    );

    let err = load_site("[issuance.device]\nmax_lifetime = \"forever\"\n").unwrap_err();
    assert!(err.contains("SITE/trustd.toml:2:16"), "{err}");
    assert!(err.contains("is not a lifetime"), "{err}");
}

#[test]
fn site_names_are_checked() {
    let err = load_site("[site]\nsite_name = \"\"\n").unwrap_err();
    assert!(
        err.contains("SITE/trustd.toml:2:1: `site.site_name`"),
        "{err}"
    );
    let err = load_site("[site]\norganisation = \" padded\"\n").unwrap_err();
    assert!(err.contains("`site.organisation`"), "{err}");
    let err = load_site("[site]\ndomain = \"Bunker.Test\"\n").unwrap_err();
    assert!(err.contains("SITE/trustd.toml:2:10"), "{err}");
    let err = load_site("[site]\ndomain = \"*.bunker.test\"\n").unwrap_err();
    assert!(err.contains("`site.domain`"), "{err}");
}

#[test]
fn crl_validity_and_listeners_are_checked() {
    let err = load_site("[crl]\nvalidity = \"30m\"\n").unwrap_err();
    assert!(
        err.contains(
            "SITE/trustd.toml:2:1: `crl.validity`: 30m is out of range, expected 1h to 7d"
        ),
        "{err}"
    );
    let err = load_site("[http]\nlisten = \"127.0.0.1:9101\"\n").unwrap_err();
    assert!(err.contains("`http.listen`"), "{err}");
    assert!(err.contains("takes the port of `metrics.listen`"), "{err}");
    let err = load_site("[acme]\nlisten = \"127.0.0.1:8080\"\n").unwrap_err();
    assert!(
        err.contains(
            "SITE/trustd.toml:2:1: `acme.listen`: `127.0.0.1:8080` takes the port of `http.listen`"
        ),
        "{err}"
    );
    let err = load_site("[metrics]\nlisten = \"0.0.0.0:9101\"\n").unwrap_err();
    assert!(err.contains("not a loopback address"), "{err}");
    // a disabled listener may keep any address
    load_site("[http]\nenabled = false\nlisten = \"127.0.0.1:9101\"\n").unwrap();
}

#[test]
fn the_acme_table_is_the_acme_servers_configuration() {
    let config = load_site(
        "[acme]\nbase_url = \"https://ca.bunker.test:8443\"\n\
         [acme.validation.addresses]\n\"miner-1.devices.bunker.test\" = \"10.20.0.11\"\n",
    )
    .unwrap();
    let acme = config.acme.to_acme_config(&config.site.domain);
    assert_eq!(acme.listen.to_string(), "[::]:8443");
    assert_eq!(
        acme.base_url.as_deref(),
        Some("https://ca.bunker.test:8443")
    );
    assert_eq!(acme.validation.addresses.len(), 1);
    let default = TrustdConfig::default()
        .acme
        .to_acme_config(&config.site.domain);
    assert_eq!(
        default.base_url.as_deref(),
        Some("https://acme.bunker.test:8443")
    );

    let err = load_site("[acme]\nbase_url = \"http://acme.bunker.test\"\n").unwrap_err();
    assert!(
        err.contains("SITE/trustd.toml:2:1: `acme.base_url`: "),
        "{err}"
    );
    let err = load_site("[[acme.profiles]]\nsuffix = \"hub.bunker.test\"\nprofile = \"hub\"\n")
        .unwrap_err();
    assert!(err.contains("`acme.profiles`"), "{err}");
    assert!(err.contains("ACME issues only"), "{err}");
    let err = load_site("[acme.validation]\nattempts = 0\n").unwrap_err();
    assert!(err.contains("`acme.validation.attempts`"), "{err}");
    assert!(err.contains("SITE/trustd.toml:2:1"), "{err}");
    let err = load_site("[acme]\nlisten = \"[::]:9101\"\n").unwrap_err();
    assert!(err.contains("takes the port of `metrics.listen`"), "{err}");
    // a disabled ACME server is not checked
    load_site("[acme]\nenabled = false\nbase_url = \"http://x\"\n").unwrap();
}

#[test]
fn the_ca_is_a_root_unless_the_site_asks_for_an_intermediate() {
    assert_eq!(TrustdConfig::default().site.ca, CaKind::Root);
    let config = load_site("[site]\nca = \"intermediate\"\n").unwrap();
    let setup = config.site.ca_setup().unwrap();
    assert_eq!(setup.kind, CaKind::Intermediate);
    assert_eq!(setup.site.ca_common_name(), "bunker BunkerOS Site CA");

    let err = load_site("[site]\nsite_name = \"Oslo-1\"\nca = \"offline\"\n").unwrap_err();
    assert!(
        err.starts_with(
            "SITE/trustd.toml:3:6: unknown value `offline`, expected `root` or `intermediate`"
        ),
        "{err}"
    );
}
