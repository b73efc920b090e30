//! The real `minerd` binary for the daemon tests ([`appliance::testdaemon::ServiceProcess`]).

pub use appliance::testdaemon::{CONVERGE, ServiceProcess as Minerd, eventually, free_port};

/// `minerd` with `config` as its site file.
pub fn minerd(config: &str, bus_address: &str, metrics: std::net::SocketAddr) -> Minerd {
    Minerd::new(
        env!("CARGO_BIN_EXE_minerd"),
        "minerd",
        config,
        bus_address,
        metrics,
    )
}
