//! The bulk runner: bounded concurrency, failing and hung targets, progress, audit records.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use appliance::audit_log::{AuditLog, Record, VerifyOptions, verify_file};
use appliance::config::DurationSecs;
use minerd::operations::{BulkLimits, BulkRequest, Progress, SharedAuditLog, run_bulk};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

/// Far above any run here: separates "finished" from "hung".
const HUNG: Duration = Duration::from_secs(20);

async fn audit_log(dir: &std::path::Path) -> SharedAuditLog {
    let (log, _) = AuditLog::open(&dir.join("audit.log"), "minerd")
        .await
        .unwrap();
    Arc::new(Mutex::new(log))
}

fn request() -> BulkRequest {
    BulkRequest {
        actor: "operator:alice".into(),
        action: "miner.reboot".into(),
        parameters: json!({}),
    }
}

fn targets(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("127.1.0.{}", i + 2)).collect()
}

fn limits(concurrency: usize, deadline_s: u64) -> BulkLimits {
    BulkLimits {
        concurrency,
        per_target_deadline: DurationSecs::new(deadline_s).unwrap(),
    }
}

#[tokio::test]
async fn never_more_than_the_limit_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let audit = audit_log(dir.path()).await;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f, m) = (Arc::clone(&in_flight), Arc::clone(&most));
    let run = run_bulk(
        request(),
        targets(20),
        limits(4, 10),
        &audit,
        None,
        move |_t| {
            let (f, m) = (Arc::clone(&f), Arc::clone(&m));
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                Ok("restarting".to_owned())
            }
        },
    );
    let report = tokio::time::timeout(HUNG, run).await.unwrap().unwrap();
    assert_eq!((report.done, report.failed, report.total), (20, 0, 20));
    assert_eq!(
        most.load(Ordering::SeqCst),
        4,
        "the limit is used and never exceeded"
    );
}

#[tokio::test]
async fn failing_and_hung_targets_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let audit = audit_log(dir.path()).await;
    let run = run_bulk(
        request(),
        targets(8),
        limits(2, 1),
        &audit,
        None,
        |t: String| async move {
            match t.as_str() {
                "127.1.0.2" => std::future::pending().await,
                "127.1.0.3" => Err("connection refused".to_owned()),
                _ => Ok("restarting".to_owned()),
            }
        },
    );
    let report = tokio::time::timeout(HUNG, run).await.unwrap().unwrap();
    assert_eq!((report.done, report.failed), (6, 2));
    let hung = report
        .results
        .iter()
        .find(|r| r.target == "127.1.0.2")
        .unwrap();
    assert!(!hung.ok);
    assert!(
        hung.sentence.contains("no result within"),
        "{}",
        hung.sentence
    );
    let refused = report
        .results
        .iter()
        .find(|r| r.target == "127.1.0.3")
        .unwrap();
    assert_eq!(refused.sentence, "connection refused");
}

#[tokio::test]
async fn progress_counts_every_target_once() {
    let dir = tempfile::tempdir().unwrap();
    let audit = audit_log(dir.path()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let run = run_bulk(
        request(),
        targets(10),
        limits(3, 10),
        &audit,
        Some(tx),
        |t: String| async move {
            if t.ends_with(".5") {
                Err("refused".to_owned())
            } else {
                Ok("ok".to_owned())
            }
        },
    );
    let report = tokio::time::timeout(HUNG, run).await.unwrap().unwrap();
    let mut events = Vec::new();
    while let Some(p) = rx.recv().await {
        events.push(p);
    }
    assert_eq!(events.len(), 10);
    for (i, p) in events.iter().enumerate() {
        assert_eq!(p.total, 10);
        assert_eq!(p.done + p.failed, i + 1);
    }
    let last = events.last().unwrap();
    assert_eq!((last.done, last.failed), (9, 1));
    assert_eq!((report.done, report.failed), (9, 1));
}

#[tokio::test]
async fn every_action_is_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = audit_log(dir.path()).await;
    let report = run_bulk(
        request(),
        targets(3),
        limits(2, 10),
        &audit,
        None,
        |t: String| async move {
            if t == "127.1.0.4" {
                Err("access denied".to_owned())
            } else {
                Ok("restarting".to_owned())
            }
        },
    )
    .await
    .unwrap();
    let path = dir.path().join("audit.log");
    let verified = verify_file(&path, &VerifyOptions::default()).await.unwrap();
    assert_eq!(verified.records, 4, "one intent and one result per miner");

    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| Record::parse(l.as_bytes()).unwrap())
        .collect();
    let intent = &records[0];
    assert_eq!(intent.seq, report.bulk_seq);
    assert_eq!(intent.actor, "operator:alice");
    assert_eq!(intent.action, "miner.reboot");
    assert_eq!(
        intent.detail["targets"],
        json!(["127.1.0.2", "127.1.0.3", "127.1.0.4"])
    );
    let mut results: Vec<(String, String)> = records[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.detail["bulk"], json!(report.bulk_seq));
            (
                r.target.clone(),
                r.detail["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            ("127.1.0.2".to_owned(), "ok".to_owned()),
            ("127.1.0.3".to_owned(), "ok".to_owned()),
            ("127.1.0.4".to_owned(), "failed".to_owned()),
        ]
    );
}

#[test]
fn limits_refuse_zero_concurrency() {
    assert!(BulkLimits::default().validate().is_ok());
    let zero = BulkLimits {
        concurrency: 0,
        ..BulkLimits::default()
    };
    assert_eq!(zero.validate().unwrap_err().key, "operations.concurrency");
}
