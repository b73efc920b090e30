use super::*;

#[test]
fn commands_parse_into_what_they_say() {
    assert_eq!(
        parse("door 2 open"),
        Ok(SiteCommand::Door {
            door: 2,
            open: true
        })
    );
    assert_eq!(
        parse("grid off"),
        Ok(SiteCommand::Grid {
            feed: None,
            present: false
        })
    );
    assert_eq!(
        parse("grid on 2"),
        Ok(SiteCommand::Grid {
            feed: Some(2),
            present: true
        })
    );
    assert_eq!(parse("load 350.5"), Ok(SiteCommand::ItLoad { kw: 350.5 }));
    assert_eq!(
        parse("arrester 1 trip"),
        Ok(SiteCommand::Arrester {
            arrester: 1,
            tripped: true
        })
    );
    assert_eq!(
        parse("degrade 30 1"),
        Ok(SiteCommand::DegradeShielding {
            zone: Some(1),
            db: 30.0
        })
    );
    assert_eq!(
        parse("fault site-power lost"),
        Ok(SiteCommand::Fault {
            target: FaultTarget::Device("site-power".into()),
            fault: Fault::Lost
        })
    );
    assert_eq!(
        parse("fault door-1.seal-kpa exception server-device-failure"),
        Ok(SiteCommand::Fault {
            target: FaultTarget::Sensor("door-1.seal-kpa".into()),
            fault: Fault::Exception(tokio_modbus::ExceptionCode::ServerDeviceFailure),
        })
    );
    assert_eq!(
        parse("fault hall-1.humidity-1 noisy 2.5"),
        Ok(SiteCommand::Fault {
            target: FaultTarget::Sensor("hall-1.humidity-1".into()),
            fault: Fault::Noisy(2.5)
        })
    );
    assert_eq!(parse("clear all"), Ok(SiteCommand::Clear(None)));
    assert_eq!(parse("relays"), Ok(SiteCommand::Relays));
}

#[test]
fn nonsense_is_refused_with_a_reason() {
    assert_eq!(parse(""), Err(ControlError::Empty));
    assert!(matches!(parse("explode"), Err(ControlError::Unknown(_))));
    assert!(matches!(
        parse("door 0 open"),
        Err(ControlError::BadNumber(_))
    ));
    assert!(matches!(
        parse("door 1 ajar"),
        Err(ControlError::Arguments { .. })
    ));
    assert!(matches!(parse("load -5"), Err(ControlError::BadValue(_))));
    assert!(matches!(parse("load NaN"), Err(ControlError::BadValue(_))));
    assert!(matches!(
        parse("fault site-power melt"),
        Err(ControlError::UnknownFault(_))
    ));
    assert!(matches!(
        parse("fault siren exception 200"),
        Err(ControlError::BadException(_))
    ));
    assert!(matches!(
        parse("relays now"),
        Err(ControlError::Trailing(_))
    ));
}
