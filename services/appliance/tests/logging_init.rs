//! `logging::init` installs a process-wide subscriber, so it is tested in its own test binary
//! where it cannot capture the log output of other tests.

use appliance::logging;

#[test]
fn a_second_init_is_harmless() {
    let first = logging::init("logging-test");
    assert!(
        first.is_some(),
        "nothing else installs a subscriber in this test binary"
    );
    assert_eq!(
        logging::init("logging-test"),
        None,
        "the subscriber is already installed"
    );
    tracing::info!("still logging");
}
