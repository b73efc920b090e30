//! Whole ACME flows through the engine with an in-test client, an http-01 responder on
//! 127.0.0.1, and the real CA with its key in a software TPM.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::KeySize;
use serde_json::{Value, json};
use tempfile::TempDir;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::super::encoding::b64url;
use super::*;

/// A CA in a software TPM, an engine over it, and an http-01 responder.
struct Lab {
    dir: TempDir,
    ca: Arc<CaBackend>,
    service: Arc<AcmeService>,
    bodies: Arc<Mutex<HashSet<String>>>,
}

impl Lab {
    async fn start(adjust: impl FnOnce(&mut AcmeConfig)) -> Self {
        let ca = CaBackend::start();
        let bodies = Arc::new(Mutex::new(HashSet::new()));
        let port = http01_responder(Arc::clone(&bodies)).await;
        let mut config = test_config(port);
        for label in ["m1", "m2", "m3", "wrong"] {
            config
                .validation
                .addresses
                .insert(device(label), loopback().ip());
        }
        adjust(&mut config);
        let dir = TempDir::new().unwrap();
        let service = engine(Arc::clone(&ca) as Arc<dyn AcmeBackend>, config, dir.path());
        Self {
            dir,
            ca,
            service,
            bodies,
        }
    }

    async fn client(&self, key: TestKey) -> TestClient {
        let mut client = TestClient::new(&self.service, key);
        client.register().await;
        client
    }

    /// Orders `identifiers`, proves http-01 for each pending authorisation, and returns the
    /// order's path once every authorisation is valid.
    async fn validated_order(&self, client: &TestClient, identifiers: Value) -> (String, Value) {
        let response = client
            .post("/new-order", Some(&json!({"identifiers": identifiers})))
            .await;
        assert_eq!(
            response.status,
            201,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let path = path_of(response.header("Location").unwrap()).to_owned();
        for authz in response.json()["authorizations"].as_array().unwrap() {
            let authz_path = path_of(authz.as_str().unwrap()).to_owned();
            let authz = client.post(&authz_path, None).await.json();
            if authz["status"] == "valid" {
                continue;
            }
            let challenge = http01_challenge(&authz);
            let token = challenge["token"].as_str().unwrap();
            self.bodies
                .lock()
                .unwrap()
                .insert(format!("{token}.{}", client.key.thumbprint()));
            let started = client
                .post(
                    path_of(challenge["url"].as_str().unwrap()),
                    Some(&json!({})),
                )
                .await;
            assert_eq!(
                started.status,
                200,
                "{}",
                String::from_utf8_lossy(&started.body)
            );
            assert_eq!(started.json()["status"], "processing");
            assert!(started.header("Link").is_some());
            let authz = poll(client, &authz_path, |a| a["status"] != "pending").await;
            assert_eq!(authz["status"], "valid", "{authz:#}");
        }
        let order = client.post(&path, None).await.json();
        assert_eq!(order["status"], "ready", "{order:#}");
        (path, order)
    }
}

fn http01_challenge(authz: &Value) -> Value {
    authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .cloned()
        .unwrap()
}

/// POST-as-GET `path` until `done` holds (at most ten seconds).
async fn poll(client: &TestClient, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let value = client.post(path, None).await.json();
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} did not settle");
}

fn dns(name: &str) -> Value {
    json!({"type": "dns", "value": name})
}

/// A CSR (base64url DER) for `names` with a new P-256 key, and the key.
fn csr(names: &[&str]) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (csr_with_key(names, &key), key)
}

fn csr_with_key(names: &[&str], key: &rcgen::KeyPair) -> String {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    b64url(params.serialize_request(key).unwrap().der())
}

fn leaf_der(chain_pem: &[u8]) -> Vec<u8> {
    pem::parse(chain_pem).unwrap().into_contents()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_order_finalize_download_and_revoke() {
    let lab = Lab::start(|_| {}).await;
    let client = lab.client(TestKey::p256()).await;
    // Registering the same key again finds the same account, unchanged.
    let mut header = client.header("/new-account", &client.nonce().await);
    header.as_object_mut().unwrap().remove("kid");
    header["jwk"] = client.key.jwk();
    let existing = client
        .post_raw(
            "/new-account",
            &jws_bytes(&client.key, &header, Some(&json!({"contact": []}))),
        )
        .await;
    assert_eq!(existing.status, 200);
    assert_eq!(existing.header("Location"), client.kid.as_deref());
    assert_eq!(
        existing.json()["contact"],
        json!(["mailto:ops@oslo.bunker.example"])
    );

    let (m1, m2) = (device("m1"), device("m2"));
    let (order_path, order) = lab
        .validated_order(&client, json!([dns(&m2), dns(&m1), dns(&m1)]))
        .await;
    assert_eq!(
        order["identifiers"],
        json!([dns(&m1), dns(&m2)]),
        "sorted, without duplicates"
    );
    let finalize = path_of(order["finalize"].as_str().unwrap()).to_owned();

    // CSRs that do not match the order, or certify the account key, are refused; the order
    // stays ready.
    let account_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut same_key = lab.client(TestKey::from_rcgen(&account_key)).await;
    let (same_key_order, same_key_ready) = lab.validated_order(&same_key, json!([dns(&m1)])).await;
    let same_key_finalize = path_of(same_key_ready["finalize"].as_str().unwrap()).to_owned();
    let refused = same_key
        .post(
            &same_key_finalize,
            Some(&json!({"csr": csr_with_key(&[&m1], &account_key)})),
        )
        .await;
    assert_eq!(problem_type(&refused), "badCSR", "{:?}", refused.json());
    assert_eq!(
        same_key.post(&same_key_order, None).await.json()["status"],
        "ready"
    );
    same_key.kid = None;

    for (bad, why) in [
        (csr(&[&m1]).0, "a name missing"),
        (csr(&[&m1, &m2, &device("m3")]).0, "a name too many"),
        ("AAAA".to_owned(), "not DER"),
    ] {
        let response = client.post(&finalize, Some(&json!({"csr": bad}))).await;
        assert_eq!(
            problem_type(&response),
            "badCSR",
            "{why}: {:?}",
            response.json()
        );
        assert_eq!(
            client.post(&order_path, None).await.json()["status"],
            "ready",
            "{why}"
        );
    }
    assert!(
        lab.ca.issued.lock().unwrap().is_empty(),
        "nothing reached the CA"
    );

    let (good, _key) = csr(&[&m1, &m2]);
    let finalized = client.post(&finalize, Some(&json!({"csr": good}))).await;
    assert_eq!(finalized.status, 200, "{:?}", finalized.json());
    let order = finalized.json();
    assert_eq!(order["status"], "valid");
    let again = client
        .post(&finalize, Some(&json!({"csr": csr(&[&m1, &m2]).0})))
        .await;
    assert_eq!(problem_type(&again), "orderNotReady");

    let download = client
        .post(path_of(order["certificate"].as_str().unwrap()), None)
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("Content-Type"),
        Some("application/pem-certificate-chain")
    );
    let der = leaf_der(&download.body);
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    let names: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, [format!("DNSName({m1})"), format!("DNSName({m2})")]);
    let issued = lab.ca.issued.lock().unwrap().clone();
    assert_eq!(
        issued,
        [(
            Profile::Device,
            format!("acme:{}", client.kid.as_ref().unwrap())
        )]
    );

    // Another account may not download or revoke it.
    let stranger = lab.client(TestKey::p384()).await;
    let stolen = stranger
        .post(path_of(order["certificate"].as_str().unwrap()), None)
        .await;
    assert_eq!(problem_type(&stolen), "unauthorized");
    let revoke = json!({"certificate": b64url(&der), "reason": 4});
    assert_eq!(
        problem_type(&stranger.post("/revoke-cert", Some(&revoke)).await),
        "unauthorized"
    );
    assert!(!lab.ca.was_revoked(&der));

    let revoked = client.post("/revoke-cert", Some(&revoke)).await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.json());
    assert!(lab.ca.was_revoked(&der));
    assert_eq!(lab.ca.revoked.lock().unwrap()[0].1, 4);
    assert_eq!(
        problem_type(&client.post("/revoke-cert", Some(&revoke)).await),
        "alreadyRevoked"
    );

    // The account's order list shows its order.
    let kid = client.kid.clone().unwrap();
    let list = client
        .post(&format!("{}/orders", path_of(&kid)), None)
        .await
        .json();
    assert_eq!(list["orders"].as_array().unwrap().len(), 1);
    assert!(
        lab.dir.path().join("acme").read_dir().unwrap().count() >= 3,
        "three accounts on disk"
    );

    // Two hours on, orders and authorisations are forgotten; the certificate is remembered
    // (for revocation by its account) until it expires, but no longer offered for download.
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(2 * 3600 + 60);
    lab.service.lock().prune(later);
    let summary = lab.service.summary();
    assert_eq!(
        (summary.orders, summary.authorizations, summary.certificates),
        (0, 0, 1)
    );
    let gone = client
        .post(path_of(order["certificate"].as_str().unwrap()), None)
        .await;
    assert_eq!(
        (gone.status, problem_type(&gone).as_str()),
        (404, "malformed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_names_are_reused_and_let_another_account_or_the_key_revoke() {
    let lab = Lab::start(|_| {}).await;
    let first = lab.client(TestKey::rsa(KeySize::Rsa2048)).await;
    let m3 = device("m3");
    let (_, order) = lab.validated_order(&first, json!([dns(&m3)])).await;
    let (request, key) = csr(&[&m3]);
    let order = first
        .post(
            path_of(order["finalize"].as_str().unwrap()),
            Some(&json!({"csr": request})),
        )
        .await
        .json();
    let chain = first
        .post(path_of(order["certificate"].as_str().unwrap()), None)
        .await
        .body;
    let der = leaf_der(&chain);

    // A second order of the same account is ready at once: the authorisation is reused.
    let reorder = first
        .post("/new-order", Some(&json!({"identifiers": [dns(&m3)]})))
        .await
        .json();
    assert_eq!(reorder["status"], "ready", "{reorder:#}");

    // A second account proves control of the name, and may then revoke the certificate.
    let second = lab.client(TestKey::p256()).await;
    lab.validated_order(&second, json!([dns(&m3)])).await;
    let revoke = json!({"certificate": b64url(&der), "reason": 1});
    let response = second.post("/revoke-cert", Some(&revoke)).await;
    assert_eq!(response.status, 200, "{:?}", response.json());
    assert!(lab.ca.was_revoked(&der));

    // The certificate's own key may revoke the next one, signing with jwk.
    let (_, order) = lab.validated_order(&first, json!([dns(&m3)])).await;
    let (request, key2) = csr(&[&m3]);
    let order = first
        .post(
            path_of(order["finalize"].as_str().unwrap()),
            Some(&json!({"csr": request})),
        )
        .await
        .json();
    let der2 = leaf_der(
        &first
            .post(path_of(order["certificate"].as_str().unwrap()), None)
            .await
            .body,
    );
    let wrong_key = TestClient::new(&lab.service, TestKey::from_rcgen(&key));
    let payload = json!({"certificate": b64url(&der2)});
    assert_eq!(
        problem_type(&wrong_key.post("/revoke-cert", Some(&payload)).await),
        "unauthorized"
    );
    let cert_key = TestClient::new(&lab.service, TestKey::from_rcgen(&key2));
    let response = cert_key.post("/revoke-cert", Some(&payload)).await;
    assert_eq!(response.status, 200, "{:?}", response.json());
    assert!(lab.ca.was_revoked(&der2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_validations_are_recorded_and_invalidate_the_order() {
    let lab = Lab::start(|_| {}).await;
    let client = lab.client(TestKey::p256()).await;
    for (label, expected) in [("wrong", "incorrectResponse"), ("unmapped", "dns")] {
        let name = device(label);
        let order = client
            .post("/new-order", Some(&json!({"identifiers": [dns(&name)]})))
            .await;
        let order_path = path_of(order.header("Location").unwrap()).to_owned();
        let authz_path = path_of(order.json()["authorizations"][0].as_str().unwrap()).to_owned();
        let challenge = http01_challenge(&client.post(&authz_path, None).await.json());
        if label == "wrong" {
            let token = challenge["token"].as_str().unwrap();
            lab.bodies
                .lock()
                .unwrap()
                .insert(format!("{token}.not-the-thumbprint"));
        }
        client
            .post(
                path_of(challenge["url"].as_str().unwrap()),
                Some(&json!({})),
            )
            .await;
        let authz = poll(&client, &authz_path, |a| a["status"] != "pending").await;
        assert_eq!(authz["status"], "invalid", "{authz:#}");
        let failed = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == "invalid")
            .unwrap();
        assert_eq!(
            failed["error"]["type"],
            format!("urn:ietf:params:acme:error:{expected}"),
            "{failed:#}"
        );
        let order = client.post(&order_path, None).await.json();
        assert_eq!(order["status"], "invalid");
        assert_eq!(
            order["error"]["type"],
            format!("urn:ietf:params:acme:error:{expected}")
        );
        // Answering the challenge again changes nothing.
        let retry = client
            .post(
                path_of(challenge["url"].as_str().unwrap()),
                Some(&json!({})),
            )
            .await;
        assert_eq!(retry.json()["status"], "invalid");
    }
    assert!(lab.ca.issued.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_identifiers_validate_against_the_address_itself() {
    let lab = Lab::start(|config| config.ip_identifier_profile = Some(Profile::Service)).await;
    let client = lab.client(TestKey::p256()).await;
    let (_, order) = lab
        .validated_order(&client, json!([{"type": "ip", "value": "127.0.0.1"}]))
        .await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1]))];
    let request = b64url(params.serialize_request(&key).unwrap().der());
    let order = client
        .post(
            path_of(order["finalize"].as_str().unwrap()),
            Some(&json!({"csr": request})),
        )
        .await
        .json();
    assert_eq!(order["status"], "valid", "{order:#}");
    assert_eq!(lab.ca.issued.lock().unwrap()[0].0, Profile::Service);
}

#[tokio::test]
async fn accounts_survive_a_restart_and_keys_roll_over() {
    let dir = TempDir::new().unwrap();
    let backend: Arc<dyn AcmeBackend> = Arc::new(UnreachableBackend::default());
    let service = engine(Arc::clone(&backend), test_config(1), dir.path());
    let mut client = TestClient::new(&service, TestKey::rsa(KeySize::Rsa2048));
    client.register().await;
    let kid = client.kid.clone().unwrap();
    let updated = client
        .post(
            path_of(&kid),
            Some(&json!({"contact": ["mailto:night-shift@oslo.bunker.example"]})),
        )
        .await
        .json();
    assert_eq!(
        updated["contact"],
        json!(["mailto:night-shift@oslo.bunker.example"])
    );

    // Key rollover: the inner JWS is signed by the new key, the outer by the old one.
    let new_key = TestKey::p256();
    let inner_header =
        json!({"alg": new_key.alg(), "url": format!("{BASE}/key-change"), "jwk": new_key.jwk()});
    let inner_payload = json!({"account": kid, "oldKey": client.key.jwk()});
    let inner: Value =
        serde_json::from_slice(&jws_bytes(&new_key, &inner_header, Some(&inner_payload))).unwrap();
    let response = client.post("/key-change", Some(&inner)).await;
    assert_eq!(response.status, 200, "{:?}", response.json());
    // The old key (RSA) no longer signs for the account (now P-256); the new one does.
    assert_eq!(
        problem_type(&client.post(path_of(&kid), None).await),
        "badSignatureAlgorithm"
    );
    client.key = new_key;
    assert_eq!(client.post(path_of(&kid), None).await.status, 200);

    drop(service);
    let service = engine(backend, test_config(1), dir.path());
    let mut returning = TestClient::new(&service, client.key);
    let found = returning
        .post("/new-account", Some(&json!({"onlyReturnExisting": true})))
        .await;
    assert_eq!(found.status, 200, "{:?}", found.json());
    assert_eq!(found.header("Location"), Some(kid.as_str()));
    assert_eq!(
        found.json()["contact"],
        json!(["mailto:night-shift@oslo.bunker.example"])
    );
    returning.kid = Some(kid);
    assert_eq!(service.summary().accounts, 1);
}
