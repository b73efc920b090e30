//! Profile rules, policy validation and the value types, without a CA key.

use std::net::IpAddr;

use super::*;
use crate::ca::constraints::NameScope;
use crate::ca::lifetime::MIN_LIFETIME;
use crate::ca::name_rules::{NameRuleError, authorise};
use crate::ca::names::NameError;
use crate::ca::profile::{ExtendedKeyUsage, KeyUsage};
use crate::ca::serial::{CertificateSerial, SerialError, assign_serial, assign_serial_from};

fn names(texts: &[&str]) -> Vec<SubjectName> {
    p256_csr(None, texts).names().to_vec()
}

fn dns(text: &str) -> DnsName {
    DnsName::parse(text).unwrap()
}

fn rule(profile: Profile, cn: Option<&str>, texts: &[&str]) -> Result<(), NameRuleError> {
    authorise(&policy(), profile, cn, &names(texts)).map(|_| ())
}

#[test]
fn hubs_carry_exactly_one_hub_identity() {
    assert_eq!(
        rule(Profile::Hub, None, &["oslo-1.hub.oslo.bunker.example"]),
        Ok(())
    );
    assert_eq!(
        rule(Profile::Hub, None, &["uri:bunkeros:hub:oslo-1"]),
        Ok(())
    );
    assert_eq!(
        rule(
            Profile::Hub,
            Some("oslo-1.hub.oslo.bunker.example"),
            &["oslo-1.hub.oslo.bunker.example"]
        ),
        Ok(())
    );
    assert_eq!(
        rule(
            Profile::Hub,
            None,
            &["a.hub.oslo.bunker.example", "b.hub.oslo.bunker.example"]
        ),
        Err(NameRuleError::HubNeedsOneName(2))
    );
    assert_eq!(
        rule(Profile::Hub, None, &["x.a.hub.oslo.bunker.example"]),
        Err(NameRuleError::BadHubName(dns(
            "x.a.hub.oslo.bunker.example"
        )))
    );
    assert_eq!(
        rule(Profile::Hub, None, &["web.oslo.bunker.example"]),
        Err(NameRuleError::BadHubName(dns("web.oslo.bunker.example")))
    );
    assert!(matches!(
        rule(Profile::Hub, None, &["*.hub.oslo.bunker.example"]),
        Err(NameRuleError::WildcardNotAllowed { .. })
    ));
    assert!(matches!(
        rule(Profile::Hub, None, &["uri:bunkeros:service:x"]),
        Err(NameRuleError::BadIdentityUri { .. })
    ));
    assert!(matches!(
        rule(Profile::Hub, None, &["uri:bunkeros:hub:Oslo"]),
        Err(NameRuleError::BadIdentityUri { .. })
    ));
    assert!(matches!(
        rule(Profile::Hub, None, &["10.20.0.1"]),
        Err(NameRuleError::KindNotAllowed { kind: "IP", .. })
    ));
}

#[test]
fn service_names_stay_under_the_site_and_off_other_profiles_suffixes() {
    assert_eq!(
        rule(
            Profile::Service,
            None,
            &["grafana.oslo.bunker.example", "api.ops.oslo.bunker.example"]
        ),
        Ok(())
    );
    assert_eq!(
        rule(Profile::Service, None, &["bank.example"]),
        Err(NameRuleError::OutsideSuffixes {
            profile: Profile::Service,
            name: dns("bank.example"),
            allowed: SITE.into()
        })
    );
    // The site domain itself is not below the site domain.
    assert!(matches!(
        rule(Profile::Service, None, &[SITE]),
        Err(NameRuleError::OutsideSuffixes { .. })
    ));
    assert_eq!(
        rule(Profile::Service, None, &["oslo-1.hub.oslo.bunker.example"]),
        Err(NameRuleError::ReservedForProfile {
            name: dns("oslo-1.hub.oslo.bunker.example"),
            owner: Profile::Hub
        })
    );
    assert_eq!(
        rule(
            Profile::Service,
            None,
            &["s9-17.devices.oslo.bunker.example"]
        ),
        Err(NameRuleError::ReservedForProfile {
            name: dns("s9-17.devices.oslo.bunker.example"),
            owner: Profile::Device
        })
    );
    assert!(matches!(
        rule(Profile::Service, None, &["*.oslo.bunker.example"]),
        Err(NameRuleError::WildcardNotAllowed { .. })
    ));
    let mut with_wildcards = policy();
    with_wildcards.service.allow_wildcards = true;
    let wildcard = names(&["*.apps.oslo.bunker.example"]);
    assert!(authorise(&with_wildcards, Profile::Service, None, &wildcard).is_ok());
    let hub_wildcard = names(&["*.hub.oslo.bunker.example"]);
    assert!(matches!(
        authorise(&with_wildcards, Profile::Service, None, &hub_wildcard),
        Err(NameRuleError::ReservedForProfile {
            owner: Profile::Hub,
            ..
        })
    ));
    assert!(matches!(
        rule(Profile::Service, None, &["10.20.0.1"]),
        Err(NameRuleError::AddressNotAllowed { .. })
    ));
    assert!(matches!(
        rule(Profile::Service, None, &["email:ops@oslo.bunker.example"]),
        Err(NameRuleError::KindNotAllowed { kind: "e-mail", .. })
    ));
}

#[test]
fn device_names_are_under_the_device_suffix_or_in_its_ranges() {
    assert_eq!(
        rule(
            Profile::Device,
            None,
            &[
                "s9-17.devices.oslo.bunker.example",
                "10.20.3.17",
                "10.20.255.1"
            ]
        ),
        Ok(())
    );
    let err = rule(Profile::Device, None, &["10.21.0.1"]).unwrap_err();
    assert_eq!(
        err,
        NameRuleError::AddressNotAllowed {
            profile: Profile::Device,
            address: "10.21.0.1".parse::<IpAddr>().unwrap(),
            allowed: "10.20.0.0/16".into()
        }
    );
    assert!(matches!(
        rule(Profile::Device, None, &["fd00::1"]),
        Err(NameRuleError::AddressNotAllowed { .. })
    ));
    assert!(matches!(
        rule(Profile::Device, None, &["web.oslo.bunker.example"]),
        Err(NameRuleError::OutsideSuffixes { .. })
    ));
}

#[test]
fn operators_are_named_by_the_cn_and_every_name_repeats_it() {
    assert_eq!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["uri:bunkeros:operator:alice"]
        ),
        Ok(())
    );
    assert_eq!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["email:alice@oslo.bunker.example"]
        ),
        Ok(())
    );
    assert_eq!(
        rule(
            Profile::Operator,
            Some("alice"),
            &[
                "uri:bunkeros:operator:alice",
                "email:alice@oslo.bunker.example"
            ]
        ),
        Ok(())
    );
    assert_eq!(
        rule(Profile::Operator, None, &["uri:bunkeros:operator:alice"]),
        Err(NameRuleError::MissingOperatorName)
    );
    assert_eq!(
        rule(Profile::Operator, Some("alice"), &[]),
        Err(NameRuleError::OperatorWithoutIdentity)
    );
    assert!(matches!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["uri:bunkeros:operator:bob"]
        ),
        Err(NameRuleError::OperatorMismatch { .. })
    ));
    assert!(matches!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["email:bob@oslo.bunker.example"]
        ),
        Err(NameRuleError::OperatorMismatch { .. })
    ));
    assert!(matches!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["email:alice@gmail.example"]
        ),
        Err(NameRuleError::EmailDomainNotAllowed { .. })
    ));
    assert!(matches!(
        rule(
            Profile::Operator,
            Some("Alice Smith"),
            &["uri:bunkeros:operator:alice"]
        ),
        Err(NameRuleError::BadOperatorName(_))
    ));
    assert!(matches!(
        rule(
            Profile::Operator,
            Some("alice"),
            &["uri:bunkeros:operator:alice", "alice.oslo.bunker.example"]
        ),
        Err(NameRuleError::KindNotAllowed { kind: "DNS", .. })
    ));
}

#[test]
fn the_cn_must_repeat_a_name_and_stands_in_when_there_are_none() {
    assert_eq!(
        rule(
            Profile::Service,
            Some("other.oslo.bunker.example"),
            &["web.oslo.bunker.example"]
        ),
        Err(NameRuleError::CommonNameNotAName(
            "other.oslo.bunker.example".into()
        ))
    );
    let subject = authorise(
        &policy(),
        Profile::Service,
        Some("web.oslo.bunker.example"),
        &[],
    )
    .unwrap();
    assert_eq!(
        subject.names,
        vec![SubjectName::Dns(dns("web.oslo.bunker.example"))]
    );
    assert_eq!(
        rule(Profile::Service, Some("My Service"), &[]),
        Err(NameRuleError::NoNames)
    );
    assert_eq!(
        rule(Profile::Device, None, &[]),
        Err(NameRuleError::NoNames)
    );
}

#[test]
fn usages_follow_the_profile_table() {
    use ExtendedKeyUsage::{ClientAuth, ServerAuth};
    assert_eq!(
        Profile::Hub.extended_key_usages(),
        &[ServerAuth, ClientAuth]
    );
    assert_eq!(
        Profile::Service.extended_key_usages(),
        &[ServerAuth, ClientAuth]
    );
    assert_eq!(Profile::Operator.extended_key_usages(), &[ClientAuth]);
    assert_eq!(
        Profile::Device.extended_key_usages(),
        &[ServerAuth, ClientAuth]
    );
    assert_eq!(
        Profile::Hub.key_usages(KeyKind::EcdsaP256),
        vec![KeyUsage::DigitalSignature, KeyUsage::KeyAgreement]
    );
    assert_eq!(
        Profile::Hub.key_usages(KeyKind::Ed25519),
        vec![KeyUsage::DigitalSignature]
    );
    assert_eq!(
        Profile::Device.key_usages(KeyKind::EcdsaP384),
        vec![KeyUsage::DigitalSignature]
    );
    assert_eq!("operator".parse::<Profile>(), Ok(Profile::Operator));
    assert!("root".parse::<Profile>().is_err());
}

#[test]
fn inconsistent_policies_are_refused() {
    assert_eq!(policy().validate(), Ok(()));
    let mut outside = policy();
    outside.service.dns_suffixes.push(dns("other.example"));
    assert!(matches!(
        outside.validate(),
        Err(PolicyError::SuffixOutsideSite { .. })
    ));
    let mut hub_ips = policy();
    hub_ips.hub.ip_ranges = vec!["10.0.0.0/8".parse().unwrap()];
    assert_eq!(
        hub_ips.validate(),
        Err(PolicyError::NotApplicable {
            profile: Profile::Hub,
            field: "ip_ranges"
        })
    );
    let mut long = policy();
    long.device.max_lifetime = Lifetime::days(365);
    assert!(matches!(long.validate(), Err(PolicyError::Lifetime { .. })));
    let mut inverted = policy();
    inverted.operator.default_lifetime = Lifetime::days(1);
    assert!(matches!(
        inverted.validate(),
        Err(PolicyError::Lifetime { .. })
    ));
    let mut nothing = policy();
    nothing.device.dns_suffixes.clear();
    nothing.device.ip_ranges.clear();
    assert_eq!(
        nothing.validate(),
        Err(PolicyError::NothingAllowed {
            profile: Profile::Device
        })
    );

    // The policy reads from TOML-like config through serde, with unknown fields refused.
    let json = serde_json::to_string(&policy()).unwrap();
    assert!(json.contains("\"max_lifetime\":\"30d\""), "{json}");
    let back: IssuancePolicy = serde_json::from_str(&json).unwrap();
    assert_eq!(back, policy());
    let typo = json.replace("allow_wildcards", "allow_wildcard");
    assert!(serde_json::from_str::<IssuancePolicy>(&typo).is_err());
}

#[test]
fn names_ranges_and_lifetimes_parse_strictly() {
    assert_eq!(DnsName::parse("localhost"), Err(NameError::SingleLabel));
    assert_eq!(
        DnsName::parse("10.20.0.1"),
        Err(NameError::LooksLikeIpAddress)
    );
    assert_eq!(DnsName::parse("a.example."), Err(NameError::EmptyLabel));
    assert!(DnsName::parse(&format!("{}.example", "a".repeat(64))).is_err());
    assert!(dns("a.b.example").is_below(&dns("b.example")));
    assert!(!dns("ab.example").is_below(&dns("b.example")));
    assert!(!dns("b.example").is_below(&dns("b.example")));
    assert_eq!(
        dns("x.hub.site.example").labels_below(&dns("hub.site.example")),
        Some(1)
    );

    let range: IpRange = "10.20.0.0/16".parse().unwrap();
    assert!(range.contains(&"10.20.9.9".parse().unwrap()));
    assert!(!range.contains(&"10.21.0.0".parse().unwrap()));
    assert!(!range.contains(&"::ffff:10.20.0.1".parse().unwrap()));
    assert!("10.20.1.0/16".parse::<IpRange>().is_err());
    assert!("10.20.0.0/33".parse::<IpRange>().is_err());
    assert_eq!(
        range.constraint_octets(),
        vec![10, 20, 0, 0, 255, 255, 0, 0]
    );
    assert_eq!(
        IpRange::from_constraint_octets(&range.constraint_octets()),
        Some(range)
    );
    assert_eq!(
        IpRange::from_constraint_octets(&[10, 0, 0, 0, 255, 0, 255, 0]),
        None
    );
    let v6: IpRange = "fd00:b0::/32".parse().unwrap();
    assert!(v6.contains(&"fd00:b0::17".parse().unwrap()));
    assert_eq!(
        IpRange::from_constraint_octets(&v6.constraint_octets()),
        Some(v6)
    );
    assert!(
        "0.0.0.0/0"
            .parse::<IpRange>()
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap())
    );

    assert_eq!("30d".parse::<Lifetime>(), Ok(Lifetime::days(30)));
    assert_eq!("12h".parse::<Lifetime>(), Ok(Lifetime::hours(12)));
    assert_eq!("90m".parse::<Lifetime>().unwrap().as_secs(), 5_400);
    for bad in [
        "",
        "d",
        "30",
        "30 d",
        "-1d",
        "1.5h",
        "99999999999999999999d",
    ] {
        assert!(bad.parse::<Lifetime>().is_err(), "{bad:?}");
    }
    assert_eq!(Lifetime::hours(48).to_string(), "2d");
    assert_eq!(MIN_LIFETIME.to_string(), "5m");
}

#[test]
fn name_constraints_follow_the_policy() {
    let scope = NameScope::from_policy(&policy());
    assert!(scope.permits(&SubjectName::Dns(dns("a.oslo.bunker.example"))));
    assert!(!scope.permits(&SubjectName::Dns(dns("bank.example"))));
    assert!(scope.permits(&SubjectName::Ip("10.20.1.1".parse().unwrap())));
    assert!(!scope.permits(&SubjectName::Ip("10.21.1.1".parse().unwrap())));
    // E-mail is left to the operator profile: rustls refuses every e-mail name under an
    // rfc822Name constraint.
    assert!(scope.permits(&SubjectName::Email("alice@oslo.bunker.example".into())));
    assert!(!scope.constrains_email);
    assert_eq!(scope.policy_outside(&policy()), None);
    // Without ranges, every address is excluded outright.
    let no_ips = NameScope::from_policy(&IssuancePolicy::for_site(site_domain()));
    assert!(!no_ips.permits(&SubjectName::Ip("10.20.1.1".parse().unwrap())));
    assert!(!no_ips.permits(&SubjectName::Ip("::1".parse().unwrap())));
    assert_eq!(
        no_ips.policy_outside(&policy()),
        Some("profile `device`: address range 10.20.0.0/16".into())
    );
}

#[test]
fn serials_are_positive_random_and_never_reused() {
    let ledger = MemorySerialLedger::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let serial = assign_serial(&ledger).unwrap();
        assert_eq!(serial.as_bytes()[0] & 0x80, 0);
        assert!(seen.insert(serial));
        assert_eq!(CertificateSerial::from_hex(&serial.to_hex()), Some(serial));
    }
    assert_eq!(ledger.len(), 1000);
    // A random source that repeats itself stops issuance instead of reusing a serial.
    let stuck = CertificateSerial::from_random_bytes([0xff; 16]);
    assert_eq!(stuck.as_bytes()[0], 0x7f);
    assert!(ledger.reserve(&stuck).unwrap());
    let err = assign_serial_from(&ledger, || Ok(stuck)).unwrap_err();
    assert!(matches!(err, SerialError::Exhausted), "{err}");
    assert_eq!(
        CertificateSerial::from_random_bytes([0; 16]).to_integer_bytes(),
        vec![1]
    );
}

#[test]
fn the_site_identity_fits_the_ca_name() {
    let site = site();
    assert_eq!(site.ca_common_name(), "Oslo-1 BunkerOS Site CA");
    assert!(SiteIdentity::new("", "Org").is_err());
    assert!(SiteIdentity::new("a".repeat(48), "Org").is_err());
    assert!(SiteIdentity::new("a".repeat(47), "Org").is_ok());
    assert!(SiteIdentity::new("Oslo\n1", "Org").is_err());
    assert!(SiteIdentity::new("Oslo-1", " Org").is_err());
    // State and configuration go through the same checks.
    let json = serde_json::to_string(&site).unwrap();
    assert_eq!(serde_json::from_str::<SiteIdentity>(&json).unwrap(), site);
    assert!(
        serde_json::from_str::<SiteIdentity>(r#"{"site_name":"","organisation":"x"}"#).is_err()
    );
}
