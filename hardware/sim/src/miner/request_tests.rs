use super::*;

#[test]
fn json_joined_and_parameter() {
    let r = parse(br#"{"command":"summary+Pools"}"#).unwrap();
    assert_eq!(r.commands, vec!["summary", "pools"]);
    assert!(r.is_joined());
    let r = parse(br#"{"command":"switchpool","parameter":1}"#).unwrap();
    assert_eq!(r.parameter.as_deref(), Some("1"));
}

#[test]
fn text_form_with_bar() {
    let r = parse(b"switchpool|1\n").unwrap();
    assert_eq!(r.commands, vec!["switchpool"]);
    assert_eq!(r.parameter.as_deref(), Some("1"));
    assert_eq!(parse(b"summary").unwrap().commands, vec!["summary"]);
}

#[test]
fn addpool_fields_undo_escapes() {
    let r =
        parse(br#"{"command":"addpool","parameter":"stratum+tcp://h:3333,a\\,b,x\\\\y"}"#).unwrap();
    assert_eq!(
        r.parameter_fields(),
        vec!["stratum+tcp://h:3333", "a,b", r"x\y"]
    );
}

#[test]
fn bad_requests_are_typed_errors() {
    assert_eq!(parse(b"  \0"), Err(RequestError::Empty));
    assert_eq!(parse(br#"{"cmd":"x"}"#), Err(RequestError::NoCommand));
    assert!(matches!(
        parse(b"{\"command\":"),
        Err(RequestError::BadJson(_))
    ));
}

#[test]
fn completeness() {
    assert!(!is_complete(br#"{"command":"sum"#));
    assert!(is_complete(br#"{"command":"summary"}"#));
    assert!(is_complete(b"summary"));
    assert!(!is_complete(b""));
}
