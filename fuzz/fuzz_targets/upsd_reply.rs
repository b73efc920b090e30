//! sited's upsd protocol parser (bytes from a NUT server on the site LAN, possibly not upsd at
//! all): hostile bytes must give a typed error, `ERR`, or a bounded variable list, never a
//! panic, a hang or unbounded memory; and what it reads must survive being quoted back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sited::nut::UpsStatus;
use sited::nut::protocol::{
    Line, MAX_LINE_BYTES, MAX_LIST_VARS, parse_line, parse_list_var_reply, quote,
};

fuzz_target!(|data: &[u8]| {
    // Every line alone, as the client's login reads them.
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_line(line);
    }
    let Ok(Ok(vars)) = parse_list_var_reply("fakeups", data) else {
        return;
    };
    assert!(vars.len() <= MAX_LIST_VARS);
    for (name, value) in &vars {
        assert!(name.len() <= MAX_LINE_BYTES && value.len() <= MAX_LINE_BYTES);
        let line = format!("VAR fakeups {} {}", quote(name), quote(value));
        if line.len() <= MAX_LINE_BYTES {
            assert_eq!(
                parse_line(line.as_bytes()),
                Ok(Line::Var {
                    ups: "fakeups".into(),
                    name: name.clone(),
                    value: value.clone(),
                })
            );
        }
    }
    if let Some(status) = vars.get("ups.status") {
        let status = UpsStatus::parse(status);
        let _ = status.is_waiting();
    }
});
