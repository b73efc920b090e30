use super::*;

#[test]
fn commands_parse() {
    let ip: Ipv4Addr = "127.1.0.5".parse().unwrap();
    assert_eq!(parse("list"), Ok(ControlCommand::List));
    assert_eq!(parse("view 127.1.0.5"), Ok(ControlCommand::View(ip)));
    assert_eq!(
        parse("fault 127.1.0.5 hang"),
        Ok(ControlCommand::Fault(ip, Fault::Hang))
    );
    assert_eq!(
        parse("fault 127.1.0.5 slow 1500"),
        Ok(ControlCommand::Fault(
            ip,
            Fault::Slow(Duration::from_millis(1500))
        ))
    );
    assert_eq!(
        parse("fault 127.1.0.5 devfee stratum+tcp://fee:3333 vendor.fee 600 30"),
        Ok(ControlCommand::Fault(
            ip,
            Fault::DevFee {
                url: "stratum+tcp://fee:3333".into(),
                user: "vendor.fee".into(),
                every: Duration::from_secs(600),
                for_: Duration::from_secs(30),
            }
        ))
    );
    assert_eq!(parse("clear 127.1.0.5"), Ok(ControlCommand::Clear(ip)));
    assert_eq!(
        parse("power 127.1.0.5 2000"),
        Ok(ControlCommand::PowerTarget(ip, 2000.0))
    );
}

#[test]
fn nonsense_is_a_typed_error() {
    assert_eq!(parse(""), Err(ControlError::Empty));
    assert!(matches!(parse("explode"), Err(ControlError::Unknown(_))));
    assert!(matches!(
        parse("view nowhere"),
        Err(ControlError::BadAddress(_))
    ));
    assert!(matches!(
        parse("fault 127.1.0.5 gremlins"),
        Err(ControlError::UnknownFault(_))
    ));
    assert!(matches!(
        parse("fault 127.1.0.5 slow -3"),
        Err(ControlError::BadNumber(_))
    ));
    assert!(matches!(
        parse("fault 127.1.0.5 hijack stratum+tcp://x:1"),
        Err(ControlError::Arguments { .. })
    ));
    let empty = BTreeMap::new();
    assert_eq!(
        execute(&empty, ControlCommand::Clear("127.1.0.9".parse().unwrap())),
        "error: no miner at 127.1.0.9"
    );
}
