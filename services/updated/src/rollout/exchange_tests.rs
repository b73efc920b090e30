use super::*;
use crate::rollout::messages::samples;
use crate::rollout::messages::samples::instruction;

fn report(hub: &str) -> Report {
    samples::report("spring", hub)
}

#[test]
fn plans_instructions_and_reports_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    exchange
        .publish_plan("spring", "id = \"spring\"\n")
        .unwrap();
    assert_eq!(
        exchange.read_plan("spring").unwrap().as_deref(),
        Some("id = \"spring\"\n")
    );
    assert_eq!(exchange.read_instruction("spring", "h1").unwrap(), None);
    exchange.write_instruction(&instruction("h1")).unwrap();
    assert_eq!(
        exchange.read_instruction("spring", "h1").unwrap(),
        Some(instruction("h1"))
    );
    exchange.write_report(&report("h1")).unwrap();
    assert_eq!(
        exchange.read_report("spring", "h1").unwrap(),
        Some(report("h1"))
    );
    assert!(dir.path().join("spring/instructions/h1.json").is_file());
    assert!(dir.path().join("spring/reports/h1.json").is_file());
    let found: Vec<Instruction> = exchange
        .instructions_for("h1")
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(found, [instruction("h1")]);
    exchange.remove_instruction("spring", "h1").unwrap();
    exchange.remove_instruction("spring", "h1").unwrap();
    assert_eq!(exchange.read_instruction("spring", "h1").unwrap(), None);
}

#[test]
fn temporary_files_are_never_read_and_no_temp_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    exchange.write_report(&report("h1")).unwrap();
    let reports = dir.path().join("spring/reports");
    let names: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["h1.json"]);
    // A writer killed midway leaves a hidden partial file: readers do not see it.
    std::fs::write(reports.join(".h2.json.77.0.tmp"), b"{\"plan_id\": \"spr").unwrap();
    assert_eq!(exchange.read_report("spring", "h2").unwrap(), None);
    std::fs::create_dir_all(dir.path().join(".spring.tmp/instructions")).unwrap();
    std::fs::write(dir.path().join(".spring.tmp/instructions/h1.json"), b"junk").unwrap();
    assert!(exchange.instructions_for("h1").unwrap().is_empty());
}

#[test]
fn malformed_documents_are_refused_with_the_file_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    let reports = dir.path().join("spring/reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("h1.json"), b"{\"plan_id\": \"spr").unwrap();
    let error = exchange.read_report("spring", "h1").unwrap_err();
    assert!(
        matches!(error, ExchangeError::Malformed { kind: "report", .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("spring/reports/h1.json"),
        "{error}"
    );

    // A report naming another hub than its file is not taken as that hub's.
    let other = serde_json::to_vec(&report("h9")).unwrap();
    std::fs::write(reports.join("h1.json"), other).unwrap();
    let error = exchange.read_report("spring", "h1").unwrap_err();
    assert!(error.to_string().contains("names hub \"h9\""), "{error}");

    let mut extra = serde_json::to_value(report("h1")).unwrap();
    extra["approved_by"] = "mallory".into();
    std::fs::write(reports.join("h1.json"), extra.to_string()).unwrap();
    assert!(matches!(
        exchange.read_report("spring", "h1"),
        Err(ExchangeError::Malformed { .. })
    ));

    std::fs::write(reports.join("h1.json"), vec![b' '; MAX_DOCUMENT_BYTES + 1]).unwrap();
    assert!(matches!(
        exchange.read_report("spring", "h1"),
        Err(ExchangeError::TooLarge { .. })
    ));

    let instructions = dir.path().join("spring/instructions");
    std::fs::create_dir_all(&instructions).unwrap();
    std::fs::write(instructions.join("h1.json"), b"[]").unwrap();
    let found = exchange.instructions_for("h1").unwrap();
    assert!(matches!(
        found.as_slice(),
        [Err(ExchangeError::Malformed {
            kind: "instruction",
            ..
        })]
    ));
}

#[test]
fn names_that_would_leave_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    for name in ["../etc", "a/b", "", ".hidden", "UPPER"] {
        assert!(
            matches!(
                exchange.read_report("spring", name),
                Err(ExchangeError::BadName(_))
            ),
            "{name}"
        );
        assert!(
            matches!(exchange.read_plan(name), Err(ExchangeError::BadName(_))),
            "{name}"
        );
    }
    let mut evil = instruction("h1");
    evil.hub = "../../x".to_owned();
    assert!(matches!(
        exchange.write_instruction(&evil),
        Err(ExchangeError::BadName(_))
    ));
}

#[test]
fn the_parsers_take_any_bytes_without_panicking() {
    let valid = serde_json::to_vec(&report("h1")).unwrap();
    for cut in 0..valid.len() {
        let _ = parse_report(&valid[..cut], "spring", "h1");
        let _ = parse_instruction(&valid[..cut], "spring", "h1");
    }
    for junk in [
        &b"\xff\xfe"[..],
        b"null",
        b"{\"outcome\": {\"kind\": \"exploded\"}}",
        b"[[[[[[[[[[",
    ] {
        assert!(parse_report(junk, "spring", "h1").is_err());
    }
    assert!(parse_report(&valid, "spring", "h1").is_ok());
}
