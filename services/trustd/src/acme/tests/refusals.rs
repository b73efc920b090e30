//! Hostile and broken requests: each gets the RFC 8555 error type that names the fault, and
//! changes nothing: no account, order, authorisation or file appears or changes, the backend
//! is never reached, and a request refused on the common path leaves its nonce usable.

use std::path::Path;

use hyper::Method;
use serde_json::json;
use tempfile::TempDir;

use super::*;

/// Everything a refusal must leave as it was (nonces excepted: every response adds one).
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    accounts: usize,
    orders: usize,
    authorizations: usize,
    certificates: usize,
    files: Vec<(String, Vec<u8>)>,
}

fn snapshot(service: &AcmeService, dir: &Path) -> Snapshot {
    let summary = service.summary();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("acme"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    Snapshot {
        accounts: summary.accounts,
        orders: summary.orders,
        authorizations: summary.authorizations,
        certificates: summary.certificates,
        files,
    }
}

struct Lab {
    dir: TempDir,
    backend: Arc<UnreachableBackend>,
    service: Arc<AcmeService>,
}

impl Lab {
    fn new() -> Self {
        Self::with_config(test_config(1))
    }

    fn with_config(config: AcmeConfig) -> Self {
        let dir = TempDir::new().unwrap();
        let backend = Arc::new(UnreachableBackend::default());
        let service = engine(
            Arc::clone(&backend) as Arc<dyn AcmeBackend>,
            config,
            dir.path(),
        );
        Self {
            dir,
            backend,
            service,
        }
    }

    async fn account(&self) -> TestClient {
        let mut client = TestClient::new(&self.service, TestKey::p256());
        client.register().await;
        client
    }

    fn snapshot(&self) -> Snapshot {
        snapshot(&self.service, self.dir.path())
    }

    /// Sends `body` to `path` and checks the refusal: problem `kind`, HTTP `status`, a fresh
    /// nonce in the response, nothing changed, `nonce` (if given) still usable.
    async fn refused(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        kind: &str,
        status: u16,
        nonce: Option<&str>,
    ) {
        let before = self.snapshot();
        let response = self
            .service
            .handle(&Method::POST, path, Some(content_type), body)
            .await;
        assert_eq!(
            problem_type(&response),
            kind,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(response.status, status, "{response:?}");
        assert_eq!(
            response.header("Content-Type"),
            Some("application/problem+json")
        );
        assert!(
            response.header("Replay-Nonce").is_some(),
            "an error on POST carries a fresh nonce"
        );
        assert_eq!(self.snapshot(), before, "a refused request changed state");
        if let Some(nonce) = nonce {
            assert!(
                self.service.nonce_is_outstanding(nonce),
                "a refused request used up its nonce"
            );
        }
        assert_eq!(self.backend.calls(), 0);
    }
}

const JOSE: &str = "application/jose+json";

#[tokio::test]
async fn replayed_unknown_and_missing_nonces_are_bad_nonce() {
    let lab = Lab::new();
    let client = lab.account().await;
    let nonce = client.nonce().await;
    let header = client.header("/new-order", &nonce);
    let order = json!({"identifiers": [{"type": "dns", "value": device("m1")}]});
    let body = jws_bytes(&client.key, &header, Some(&order));
    assert_eq!(client.post_raw("/new-order", &body).await.status, 201);
    // The same request again: a replay.
    lab.refused("/new-order", JOSE, &body, "badNonce", 400, None)
        .await;
    let unknown = jws_bytes(
        &client.key,
        &client.header("/new-order", "AAAAAAAAAAAAAAAAAAAAAA"),
        Some(&order),
    );
    lab.refused("/new-order", JOSE, &unknown, "badNonce", 400, None)
        .await;
    let mut no_nonce = client.header("/new-order", "x");
    no_nonce.as_object_mut().unwrap().remove("nonce");
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&client.key, &no_nonce, Some(&order)),
        "badNonce",
        400,
        None,
    )
    .await;
}

#[tokio::test]
async fn url_key_and_signature_faults_leave_the_nonce_usable() {
    let lab = Lab::new();
    let client = lab.account().await;
    let payload = json!({"identifiers": [{"type": "dns", "value": device("m1")}]});

    let nonce = client.nonce().await;
    let header = client.header("/new-account", &nonce); // signed for another URL
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&client.key, &header, Some(&payload)),
        "unauthorized",
        403,
        Some(&nonce),
    )
    .await;

    let mut header = client.header("/new-order", &nonce);
    header["kid"] = json!(format!("{BASE}/account/AAAAAAAAAAAAAAAAAAAAAA"));
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&client.key, &header, Some(&payload)),
        "accountDoesNotExist",
        400,
        Some(&nonce),
    )
    .await;
    header["kid"] = json!("https://other.example/account/1");
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&client.key, &header, Some(&payload)),
        "accountDoesNotExist",
        400,
        Some(&nonce),
    )
    .await;

    // Signed by a key that is not the account's.
    let header = client.header("/new-order", &nonce);
    let intruder = TestKey::p256();
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&intruder, &header, Some(&payload)),
        "malformed",
        400,
        Some(&nonce),
    )
    .await;

    // A jwk where the account must be named, and a kid where the key must be sent.
    let mut header = client.header("/new-order", &nonce);
    header.as_object_mut().unwrap().remove("kid");
    header["jwk"] = client.key.jwk();
    lab.refused(
        "/new-order",
        JOSE,
        &jws_bytes(&client.key, &header, Some(&payload)),
        "malformed",
        400,
        Some(&nonce),
    )
    .await;
    let header = client.header("/new-account", &nonce);
    lab.refused(
        "/new-account",
        JOSE,
        &jws_bytes(&client.key, &header, Some(&json!({}))),
        "malformed",
        400,
        Some(&nonce),
    )
    .await;

    // Wrong media type, and a body that is no JWS.
    let body = jws_bytes(
        &client.key,
        &client.header("/new-order", &nonce),
        Some(&payload),
    );
    lab.refused(
        "/new-order",
        "application/json",
        &body,
        "malformed",
        415,
        Some(&nonce),
    )
    .await;
    lab.refused(
        "/new-order",
        JOSE,
        b"{\"protected\":",
        "malformed",
        400,
        Some(&nonce),
    )
    .await;
    lab.refused(
        "/new-order",
        JOSE,
        &vec![b'{'; 70 * 1024],
        "malformed",
        413,
        Some(&nonce),
    )
    .await;

    // The nonce was never used up: the real request still works with it.
    assert_eq!(client.post_raw("/new-order", &body).await.status, 201);
}

#[tokio::test]
async fn account_refusals() {
    let mut config = test_config(1);
    config.terms_of_service = Some(format!("{BASE}/terms"));
    let lab = Lab::with_config(config);
    let client = TestClient::new(&lab.service, TestKey::p256());
    let cases = [
        (json!({"onlyReturnExisting": true}), "accountDoesNotExist"),
        (json!({"termsOfServiceAgreed": false}), "malformed"),
        (
            json!({"termsOfServiceAgreed": true, "contact": ["tel:+4712345678"]}),
            "unsupportedContact",
        ),
        (
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:nobody"]}),
            "invalidContact",
        ),
        (
            json!({"termsOfServiceAgreed": true, "contact": ["mailto:a@b.example?subject=x"]}),
            "invalidContact",
        ),
        (
            json!({"termsOfServiceAgreed": true, "contact": "mailto:a@b.example"}),
            "malformed",
        ),
        (json!({"termsOfServiceAgreed": "yes"}), "malformed"),
    ];
    for (payload, kind) in cases {
        let body = jws_bytes(
            &client.key,
            &client.header("/new-account", &client.nonce().await),
            Some(&payload),
        );
        lab.refused("/new-account", JOSE, &body, kind, 400, None)
            .await;
    }
    let directory = lab
        .service
        .handle(&Method::GET, "/directory", None, &[])
        .await
        .json();
    assert_eq!(
        directory["meta"]["termsOfService"],
        json!(format!("{BASE}/terms"))
    );
}

#[tokio::test]
async fn order_refusals() {
    let lab = Lab::new();
    let client = lab.account().await;
    let dns = |name: &str| json!({"type": "dns", "value": name});
    let cases = [
        (
            json!({"identifiers": [dns(&format!("*.devices.{SITE}"))]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [dns("bank.example")]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [dns(&device("m1")), dns(&format!("api.{SITE}"))]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "ip", "value": "10.20.0.5"}]}),
            "rejectedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "email", "value": "a@b.example"}]}),
            "unsupportedIdentifier",
        ),
        (
            json!({"identifiers": [{"type": "ip", "value": "not-an-ip"}]}),
            "malformed",
        ),
        (
            json!({"identifiers": [dns("exa mple")]}),
            "rejectedIdentifier",
        ),
        (json!({"identifiers": []}), "rejectedIdentifier"),
        (
            json!({"identifiers": [dns(&device("m1"))], "notAfter": "2030-01-01T00:00:00Z"}),
            "malformed",
        ),
        (json!({}), "malformed"),
    ];
    for (payload, kind) in cases {
        let body = jws_bytes(
            &client.key,
            &client.header("/new-order", &client.nonce().await),
            Some(&payload),
        );
        lab.refused("/new-order", JOSE, &body, kind, 400, None)
            .await;
    }
}

#[tokio::test]
async fn other_accounts_resources_and_unready_orders_are_refused() {
    let lab = Lab::new();
    let owner = lab.account().await;
    let other = lab.account().await;
    let order = owner
        .post(
            "/new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": device("m1")}]})),
        )
        .await;
    assert_eq!(order.status, 201);
    let order_path = path_of(order.header("Location").unwrap()).to_owned();
    let order = order.json();
    let authz_path = path_of(order["authorizations"][0].as_str().unwrap()).to_owned();
    let finalize_path = path_of(order["finalize"].as_str().unwrap()).to_owned();
    let owner_path = path_of(owner.kid.as_ref().unwrap()).to_owned();

    for path in [&order_path, &authz_path, &owner_path] {
        let body = jws_bytes(&other.key, &other.header(path, &other.nonce().await), None);
        lab.refused(path, JOSE, &body, "unauthorized", 403, None)
            .await;
    }
    // Finalize before the authorisation is valid.
    let body = jws_bytes(
        &owner.key,
        &owner.header(&finalize_path, &owner.nonce().await),
        Some(&json!({"csr": "AAAA"})),
    );
    lab.refused(&finalize_path, JOSE, &body, "orderNotReady", 403, None)
        .await;
    // Resources that do not exist, GET where POST-as-GET is required, unknown paths.
    let missing = "/order/AAAAAAAAAAAAAAAAAAAAAA";
    let body = jws_bytes(
        &owner.key,
        &owner.header(missing, &owner.nonce().await),
        None,
    );
    lab.refused(missing, JOSE, &body, "malformed", 404, None)
        .await;
    let get = lab
        .service
        .handle(&Method::GET, &order_path, None, &[])
        .await;
    assert_eq!(
        (get.status, problem_type(&get).as_str()),
        (405, "malformed")
    );
    assert_eq!(get.header("Allow"), Some("POST"));
    let unknown = lab.service.handle(&Method::GET, "/admin", None, &[]).await;
    assert_eq!(
        (unknown.status, problem_type(&unknown).as_str()),
        (404, "malformed")
    );
}

#[tokio::test]
async fn revocation_refusals() {
    let lab = Lab::new();
    let client = lab.account().await;
    let cases = [
        (json!({"certificate": "AAAA"}), "malformed"),
        (json!({"certificate": "!!"}), "malformed"),
        (json!({}), "malformed"),
        (
            json!({"certificate": "AAAA", "reason": 2}),
            "badRevocationReason",
        ),
        (
            json!({"certificate": "AAAA", "reason": "keyCompromise"}),
            "badRevocationReason",
        ),
    ];
    for (payload, kind) in cases {
        let body = jws_bytes(
            &client.key,
            &client.header("/revoke-cert", &client.nonce().await),
            Some(&payload),
        );
        lab.refused("/revoke-cert", JOSE, &body, kind, 400, None)
            .await;
    }
}

#[tokio::test]
async fn a_deactivated_account_can_do_nothing_more() {
    let lab = Lab::new();
    let client = lab.account().await;
    let kid = client.kid.clone().unwrap();
    let response = client
        .post(path_of(&kid), Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(response.json()["status"], "deactivated");
    let payload = json!({"identifiers": [{"type": "dns", "value": device("m1")}]});
    let body = jws_bytes(
        &client.key,
        &client.header("/new-order", &client.nonce().await),
        Some(&payload),
    );
    lab.refused("/new-order", JOSE, &body, "unauthorized", 403, None)
        .await;
    // Registering again with the same key does not resurrect it.
    let mut again = client.header("/new-account", &client.nonce().await);
    again.as_object_mut().unwrap().remove("kid");
    again["jwk"] = client.key.jwk();
    lab.refused(
        "/new-account",
        JOSE,
        &jws_bytes(&client.key, &again, Some(&json!({}))),
        "unauthorized",
        403,
        None,
    )
    .await;
}

#[tokio::test]
async fn accounts_beyond_the_limit_are_rate_limited() {
    let mut config = test_config(1);
    config.limits.max_accounts = 1;
    let lab = Lab::with_config(config);
    lab.account().await;
    let second = TestClient::new(&lab.service, TestKey::p256());
    let body = jws_bytes(
        &second.key,
        &second.header("/new-account", &second.nonce().await),
        Some(&json!({})),
    );
    lab.refused("/new-account", JOSE, &body, "rateLimited", 429, None)
        .await;
}
