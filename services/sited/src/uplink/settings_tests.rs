use super::*;

fn parse(text: &str) -> Result<UplinkSettings, toml::de::Error> {
    toml::from_str(text)
}

fn keys(settings: &UplinkSettings) -> Vec<String> {
    match settings.validate() {
        Ok(()) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| p.key).collect(),
    }
}

/// A CA certificate file, for settings that must read one.
fn ca_file(dir: &std::path::Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("cc-ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let settings = parse(
        r#"
        alertmanager = "https://cc.example.net:9093"
        server_ca = "/etc/cc.pem"
        client = { source = "trustd", name = "sited.bunker-7.example.net" }
        "#,
    )
    .unwrap();
    assert_eq!(settings.retry_first.secs(), 1);
    assert_eq!(settings.retry_max.secs(), 300);
    assert_eq!(settings.resend_every.secs(), 60);
    assert_eq!(settings.queue_limit.get(), 10_000);
    assert_eq!(settings.batch.get(), 100);
    assert_eq!(settings.timeout.secs(), 10);
}

#[test]
fn unknown_keys_and_sources_are_refused() {
    let base = r#"
        alertmanager = "https://cc.example.net"
        server_ca = "/etc/cc.pem"
    "#;
    assert!(
        parse(&format!(
            "{base}\nretry = 5\nclient = {{ source = \"pem\", chain = \"c\", key = \"k\" }}"
        ))
        .is_err()
    );
    assert!(parse(&format!("{base}\nclient = {{ source = \"vault\" }}")).is_err());
    assert!(
        parse(&format!(
            "{base}\nclient = {{ source = \"trustd\", name = \"a.example\", key = \"k\" }}"
        ))
        .is_err()
    );
    assert!(
        parse(&format!(
            "{base}\nqueue_limit = 0\nclient = {{ source = \"trustd\", name = \"a.example\" }}"
        ))
        .is_err()
    );
}

#[test]
fn a_sound_section_validates() {
    let dir = tempfile::tempdir().unwrap();
    let settings = UplinkSettings {
        alertmanager: "https://cc.example.net:9093/alertmanager/".into(),
        server_ca: ca_file(dir.path()),
        client: ClientIdentitySource::Trustd {
            name: "sited.bunker-7.example.net".into(),
        },
        ..parse(
            r#"
            alertmanager = "x"
            server_ca = "x"
            client = { source = "trustd", name = "x" }
            "#,
        )
        .unwrap()
    };
    assert_eq!(keys(&settings), Vec::<String>::new());
    let endpoint = settings.endpoint().unwrap();
    assert_eq!(endpoint.host, "cc.example.net");
    assert_eq!(endpoint.port, 9093);
    assert_eq!(endpoint.prefix, "/alertmanager");
    assert_eq!(endpoint.authority, "cc.example.net:9093");
}

#[test]
fn nonsense_is_refused_with_the_key_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings: UplinkSettings = parse(
        r#"
        alertmanager = "http://cc.example.net:9093"
        server_ca = "/nonexistent/cc.pem"
        retry_first = 600
        retry_max = 60
        client = { source = "trustd", name = "not a name" }
        "#,
    )
    .unwrap();
    assert_eq!(
        keys(&settings),
        [
            "uplink.alertmanager",
            "uplink.retry_first",
            "uplink.server_ca",
            "uplink.client.name"
        ]
    );
    let refusal = settings.validate().unwrap_err();
    assert!(refusal[0].reason.contains("https://"), "{:?}", refusal[0]);

    settings.alertmanager = "https://[::1]:9093".into();
    settings.retry_first = DurationSecs::from_const(1);
    settings.server_ca = ca_file(dir.path());
    settings.client = ClientIdentitySource::Pem {
        chain: dir.path().join("missing-chain.pem"),
        key: dir.path().join("missing-key.pem"),
    };
    assert_eq!(keys(&settings), ["uplink.client"]);
    assert_eq!(settings.endpoint().unwrap().host, "::1");

    // A CA file that holds no certificate is refused too.
    std::fs::write(&settings.server_ca, "not PEM").unwrap();
    assert!(keys(&settings).contains(&"uplink.server_ca".to_owned()));
}
