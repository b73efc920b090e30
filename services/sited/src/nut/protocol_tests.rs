use super::*;

/// What upsd 2.8.0 sent for `LIST VAR fakeups` (dummy-ups), trimmed.
const REAL_LIST: &[u8] = b"BEGIN LIST VAR fakeups\n\
VAR fakeups battery.charge \"100\"\n\
VAR fakeups device.mfr \"Dummy Manufacturer\"\n\
VAR fakeups driver.parameter.port \"/tmp/nut/etc/fakeups.dev\"\n\
VAR fakeups ups.status \"OL\"\n\
END LIST VAR fakeups\n";

#[test]
fn a_real_list_parses() {
    let vars = parse_list_var_reply("fakeups", REAL_LIST).unwrap().unwrap();
    assert_eq!(vars.len(), 4);
    assert_eq!(vars["battery.charge"], "100");
    assert_eq!(vars["device.mfr"], "Dummy Manufacturer");
    assert_eq!(vars["ups.status"], "OL");
}

#[test]
fn err_instead_of_a_list_is_upsd_refusing() {
    for (line, error) in [
        ("ERR DATA-STALE\n", NutError::DataStale),
        ("ERR DRIVER-NOT-CONNECTED\n", NutError::DriverNotConnected),
        ("ERR UNKNOWN-UPS\n", NutError::UnknownUps),
        ("ERR ACCESS-DENIED\n", NutError::AccessDenied),
        (
            "ERR SOMETHING-NEW extra words\n",
            NutError::Other("SOMETHING-NEW".into()),
        ),
    ] {
        assert_eq!(
            parse_list_var_reply("fakeups", line.as_bytes()),
            Ok(Err(error.clone())),
            "{line}"
        );
    }
    assert!(NutError::DataStale.is_stale());
    assert!(NutError::DriverNotConnected.is_stale());
    assert!(!NutError::UnknownUps.is_stale());
}

#[test]
fn every_known_code_round_trips() {
    for (code, error) in NUT_ERROR_CODES {
        assert_eq!(NutError::from_code(code), error);
        assert_eq!(error.code(), code);
        assert_eq!(error.to_string(), format!("ERR {code}"));
    }
}

#[test]
fn quoted_values_unescape() {
    assert_eq!(
        parse_line(br#"VAR ups ups.alarm "say \"replace\" \\ now""#).unwrap(),
        Line::Var {
            ups: "ups".into(),
            name: "ups.alarm".into(),
            value: r#"say "replace" \ now"#.into(),
        }
    );
    assert_eq!(
        parse_line(b"VAR ups ups.test.result \"\"\r").unwrap(),
        Line::Var {
            ups: "ups".into(),
            name: "ups.test.result".into(),
            value: String::new(),
        }
    );
}

#[test]
fn get_var_answers_and_ok_parse() {
    assert_eq!(
        parse_line(b"VAR fakeups ups.status \"OB LB\"").unwrap(),
        Line::Var {
            ups: "fakeups".into(),
            name: "ups.status".into(),
            value: "OB LB".into(),
        }
    );
    assert_eq!(parse_line(b"OK").unwrap(), Line::Ok);
    assert_eq!(parse_line(b"OK Goodbye").unwrap(), Line::Ok);
}

#[test]
fn malformed_lines_get_typed_errors() {
    let long = vec![b'a'; MAX_LINE_BYTES + 1];
    let cases: [(&[u8], ProtocolError); 10] = [
        (&long, ProtocolError::LineTooLong),
        (b"VAR ups x \"\xff\"", ProtocolError::NotUtf8),
        (b"VAR ups x \"a\x00\"", ProtocolError::ControlCharacter),
        (b"VAR ups x \"open", ProtocolError::UnterminatedQuote),
        (b"VAR ups x \"a\\", ProtocolError::DanglingEscape),
        (b"VAR ups x ab\"c\"", ProtocolError::QuoteInsideWord),
        (b"", ProtocolError::Empty),
        (b"HELLO there", ProtocolError::UnknownLine("HELLO".into())),
        (
            b"VAR ups x",
            ProtocolError::WrongArity {
                keyword: "VAR",
                expected: 4,
                got: 3,
            },
        ),
        (b"a b c d e f g h i", ProtocolError::TooManyWords),
    ];
    for (line, error) in cases {
        assert_eq!(
            parse_line(line),
            Err(error),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn broken_lists_are_refused() {
    let cases: [(&[u8], ProtocolError); 6] = [
        (
            b"BEGIN LIST VAR fakeups\nVAR fakeups a \"1\"\n",
            ProtocolError::Truncated,
        ),
        (
            b"BEGIN LIST VAR fakeups\nVAR fakeups a \"1\"",
            ProtocolError::Truncated,
        ),
        (
            b"BEGIN LIST VAR other\nEND LIST VAR other\n",
            ProtocolError::WrongUps {
                expected: "fakeups".into(),
                got: "other".into(),
            },
        ),
        (
            b"BEGIN LIST VAR fakeups\nVAR fakeups a \"1\"\nVAR fakeups a \"2\"\n",
            ProtocolError::DuplicateVar("a".into()),
        ),
        (
            b"BEGIN LIST VAR fakeups\nEND LIST VAR fakeups\nVAR fakeups a \"1\"\n",
            ProtocolError::TrailingData,
        ),
        (
            b"VAR fakeups a \"1\"\n",
            ProtocolError::Unexpected {
                expected: "`BEGIN LIST VAR fakeups` or `ERR`".into(),
                got: "`VAR`".into(),
            },
        ),
    ];
    for (reply, error) in cases {
        assert_eq!(
            parse_list_var_reply("fakeups", reply),
            Err(error),
            "{:?}",
            String::from_utf8_lossy(reply)
        );
    }
}

#[test]
fn lists_are_bounded() {
    let mut reply = b"BEGIN LIST VAR u\n".to_vec();
    for i in 0..=MAX_LIST_VARS {
        reply.extend_from_slice(format!("VAR u v{i} \"1\"\n").as_bytes());
    }
    reply.extend_from_slice(b"END LIST VAR u\n");
    assert_eq!(
        parse_list_var_reply("u", &reply),
        Err(ProtocolError::TooManyVars)
    );
}

#[test]
fn quoting_for_commands_escapes_what_the_parser_unescapes() {
    let word = r#"pa"ss\word"#;
    let line = format!("VAR u x {}", quote(word));
    assert_eq!(
        parse_line(line.as_bytes()).unwrap(),
        Line::Var {
            ups: "u".into(),
            name: "x".into(),
            value: word.into(),
        }
    );
}
