use std::collections::BTreeMap;
use std::io::Write;

use super::*;

fn alert(name: &str) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), name.to_owned());
    Alert {
        labels,
        annotations: BTreeMap::new(),
        starts_at: "2026-01-01T00:00:00.000Z".to_owned(),
        ends_at: None,
    }
}

fn names(journal: &Journal) -> Vec<String> {
    journal
        .front(usize::MAX)
        .iter()
        .map(|q| q.alerts[0].labels["alertname"].clone())
        .collect()
}

#[test]
fn queued_notifications_survive_reopening_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    for name in ["a", "b", "c"] {
        journal.append("warning", vec![alert(name)], 10).unwrap();
    }
    drop(journal);
    let (journal, recovery) = Journal::open(dir.path()).unwrap();
    assert_eq!(recovery.discarded_bytes, 0);
    assert_eq!(names(&journal), ["a", "b", "c"]);
}

#[test]
fn delivered_ones_are_gone_after_reopening_and_sequence_numbers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    for name in ["a", "b", "c"] {
        journal.append("warning", vec![alert(name)], 10).unwrap();
    }
    let second = journal.front(2)[1].seq;
    journal.delivered(second).unwrap();
    assert_eq!(names(&journal), ["c"]);
    drop(journal);
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    assert_eq!(names(&journal), ["c"]);
    journal.append("warning", vec![alert("d")], 10).unwrap();
    let seqs: Vec<u64> = journal.front(9).iter().map(|q| q.seq).collect();
    assert!(seqs[0] < seqs[1], "sequence numbers increase: {seqs:?}");
}

#[test]
fn a_fully_delivered_journal_is_rewritten_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    journal.append("info", vec![alert("a")], 10).unwrap();
    let seq = journal.front(1)[0].seq;
    journal.delivered(seq).unwrap();
    let size = std::fs::metadata(dir.path().join(JOURNAL_FILE))
        .unwrap()
        .len();
    assert_eq!(size, 0);
    // Appends after the rewrite land in the new file.
    journal.append("info", vec![alert("b")], 10).unwrap();
    drop(journal);
    let (journal, _) = Journal::open(dir.path()).unwrap();
    assert_eq!(names(&journal), ["b"]);
}

#[test]
fn a_torn_last_record_is_cut_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    journal.append("critical", vec![alert("a")], 10).unwrap();
    journal.append("critical", vec![alert("b")], 10).unwrap();
    drop(journal);
    let path = dir.path().join(JOURNAL_FILE);
    let whole = std::fs::read(&path).unwrap();
    // A third record half written, as a power cut during `write` leaves it.
    let mut third = Vec::new();
    encode(
        &Record::Queued(Queued {
            seq: 3,
            severity: "critical".into(),
            alerts: vec![alert("c")],
        }),
        &mut third,
    );
    let torn = &third[..third.len() / 2];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let (mut journal, recovery) = Journal::open(dir.path()).unwrap();
    assert_eq!(recovery.discarded_bytes, torn.len() as u64);
    assert_eq!(names(&journal), ["a", "b"]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        whole,
        "the file was cut back"
    );
    // And the journal goes on after the cut.
    journal.append("critical", vec![alert("d")], 10).unwrap();
    drop(journal);
    let (journal, recovery) = Journal::open(dir.path()).unwrap();
    assert_eq!(recovery.discarded_bytes, 0);
    assert_eq!(names(&journal), ["a", "b", "d"]);
}

#[test]
fn a_zero_filled_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    journal.append("warning", vec![alert("a")], 10).unwrap();
    drop(journal);
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0u8; 64])
        .unwrap();
    let (journal, recovery) = Journal::open(dir.path()).unwrap();
    assert_eq!(recovery.discarded_bytes, 64);
    assert_eq!(names(&journal), ["a"]);
}

#[test]
fn a_full_queue_drops_the_oldest_info_first_and_never_a_critical() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    journal.append("critical", vec![alert("c1")], 3).unwrap();
    journal.append("info", vec![alert("i1")], 3).unwrap();
    journal.append("info", vec![alert("i2")], 3).unwrap();
    // Full: a warning pushes out the oldest info.
    let admission = journal.append("warning", vec![alert("w1")], 3).unwrap();
    assert_eq!(
        admission,
        Admission::QueuedDropping {
            severity: "info".into()
        }
    );
    assert_eq!(names(&journal), ["c1", "i2", "w1"]);
    // A critical pushes out the last info, then the warning.
    journal.append("critical", vec![alert("c2")], 3).unwrap();
    assert_eq!(names(&journal), ["c1", "w1", "c2"]);
    journal.append("critical", vec![alert("c3")], 3).unwrap();
    assert_eq!(names(&journal), ["c1", "c2", "c3"]);
    // Only criticals left: an info or a warning is the one dropped...
    assert_eq!(
        journal.append("info", vec![alert("i3")], 3).unwrap(),
        Admission::Dropped
    );
    assert_eq!(
        journal.append("warning", vec![alert("w2")], 3).unwrap(),
        Admission::Dropped
    );
    // ...and a critical is kept beyond the limit.
    assert_eq!(
        journal.append("critical", vec![alert("c4")], 3).unwrap(),
        Admission::QueuedOverLimit
    );
    assert_eq!(names(&journal), ["c1", "c2", "c3", "c4"]);
    drop(journal);
    let (journal, _) = Journal::open(dir.path()).unwrap();
    assert_eq!(
        names(&journal),
        ["c1", "c2", "c3", "c4"],
        "drops are durable"
    );
}

#[test]
fn an_info_does_not_push_out_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    journal.append("warning", vec![alert("w1")], 1).unwrap();
    assert_eq!(
        journal.append("info", vec![alert("i1")], 1).unwrap(),
        Admission::Dropped
    );
    assert_eq!(names(&journal), ["w1"]);
}

#[test]
fn many_drops_compact_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path()).unwrap();
    for i in 0..2000 {
        journal
            .append("info", vec![alert(&format!("i{i}"))], 5)
            .unwrap();
    }
    assert_eq!(journal.len(), 5);
    let size = std::fs::metadata(dir.path().join(JOURNAL_FILE))
        .unwrap()
        .len();
    let one = {
        let mut frame = Vec::new();
        encode(&Record::Queued(journal.front(1)[0].clone()), &mut frame);
        frame.len() as u64
    };
    assert!(
        size < one * 2 * (COMPACT_AFTER_DEAD as u64 + 10),
        "the journal stays bounded: {size} bytes"
    );
    drop(journal);
    let (journal, _) = Journal::open(dir.path()).unwrap();
    let expected: Vec<String> = (1995..2000).map(|i| format!("i{i}")).collect();
    assert_eq!(names(&journal), expected);
}
