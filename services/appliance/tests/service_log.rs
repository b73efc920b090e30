//! A service's own log as minerd and sited run it: `service.start` at each open, a torn tail
//! cut, a damaged log refused, and the seal loop's skip record when trustd is not on the bus.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use appliance::audit_log::{
    Entry, Record, SealPolicy, ServiceLogError, VerifyOptions, open_service_log, seal_loop,
    service_log_path, verify_file,
};
use appliance::config::DurationSecs;
use appliance::dbus::Bus;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn records(state_dir: &Path) -> Vec<Record> {
    std::fs::read_to_string(service_log_path(state_dir))
        .unwrap()
        .lines()
        .map(|line| Record::parse(line.as_bytes()).unwrap())
        .collect()
}

#[tokio::test]
async fn each_open_records_the_start_with_the_records_found() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_service_log(dir.path(), "sited").await.unwrap());
    let log = open_service_log(dir.path(), "sited").await.unwrap();
    log.lock()
        .await
        .append(Entry::new("sited", "alarm.raise", "door-1", json!({})))
        .await
        .unwrap();
    drop(log);

    let written = records(dir.path());
    let actions: Vec<&str> = written.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["service.start", "service.start", "alarm.raise"]);
    assert_eq!(written[0].actor, "sited");
    assert_eq!(written[0].target, "sited");
    assert_eq!(written[0].detail["records"], 0);
    assert_eq!(written[1].detail["records"], 1);
    assert_eq!(written[1].detail["version"], env!("CARGO_PKG_VERSION"));
    verify_file(&service_log_path(dir.path()), &VerifyOptions::default())
        .await
        .expect("the chain verifies");
}

#[tokio::test]
async fn a_torn_last_line_is_cut_and_the_start_follows_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_service_log(dir.path(), "minerd").await.unwrap());
    let path = service_log_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":2,\"time\":\"20");
    std::fs::write(&path, &bytes).unwrap();

    drop(open_service_log(dir.path(), "minerd").await.unwrap());
    let written = records(dir.path());
    assert_eq!(written.len(), 2);
    assert_eq!(written[1].seq, 2);
    assert_eq!(written[1].detail["records"], 1);
}

#[tokio::test]
async fn a_damaged_log_is_refused_naming_its_path_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_service_log(dir.path(), "sited").await.unwrap());
    let path = service_log_path(dir.path());
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("service.start", "service.stArt");
    std::fs::write(&path, &edited).unwrap();

    let error = open_service_log(dir.path(), "sited").await.unwrap_err();
    assert!(
        matches!(&error, ServiceLogError::Open { path: p, .. } if *p == path),
        "{error:?}"
    );
    assert!(error.to_string().contains("audit.log"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
}

#[tokio::test]
async fn without_trustd_on_the_bus_a_due_seal_is_a_skip_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_service_log(dir.path(), "sited").await.unwrap();
    log.lock()
        .await
        .append(Entry::new("sited", "alarm.raise", "door-1", json!({})))
        .await
        .unwrap();
    let policy = SealPolicy {
        every_records: 2,
        every: DurationSecs::from_const(86_400),
    };
    // No bus listens here, so there is no trustd to sign.
    let bus = Bus::Address(format!(
        "unix:path={}",
        dir.path().join("no-bus.sock").display()
    ));
    let last_sealed = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(seal_loop(
        Arc::clone(&log),
        policy,
        bus,
        "sited".to_owned(),
        Arc::clone(&last_sealed),
        cancel.clone(),
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while last_sealed.load(Ordering::Relaxed) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no seal record in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop ends when cancelled")
        .unwrap();

    let written = records(dir.path());
    let last = written.last().unwrap();
    assert_eq!(last.action, "audit.seal-skipped");
    assert_eq!(last.seq, last_sealed.load(Ordering::Relaxed));
    assert_eq!(written.len(), 3);
}
