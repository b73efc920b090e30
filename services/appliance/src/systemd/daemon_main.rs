//! [`run_daemon`]: the last step of every service's `main`, once its configuration is read and
//! checked: the async runtime, the daemon, and the exit status systemd acts on.

use std::process::ExitCode;

/// Runs `daemon` on a multi-threaded tokio runtime whose threads are named after `service`.
/// What it returns becomes the exit status through `exit`; an error is logged and printed as
/// `service: error: cause…` and exits 1 (so `Restart=on-failure` applies).
pub fn run_daemon<T>(
    service: &str,
    daemon: impl Future<Output = anyhow::Result<T>>,
    exit: impl FnOnce(T) -> ExitCode,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(service)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{service}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon) {
        Ok(outcome) => exit(outcome),
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("{service}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The first step of every service's `main`: logging (not when only checking), the
/// configuration loaded or refused (every problem printed, exit status 78), and for
/// `--check-config` the report printed and exit 0. `Ok(setup)` when the daemon should start;
/// its report is logged line by line.
pub fn configure<S>(
    service: &str,
    check_config: bool,
    load: impl FnOnce() -> Result<S, crate::config::ConfigError>,
    report: impl Fn(&S) -> String,
) -> Result<S, ExitCode> {
    if !check_config {
        crate::logging::init(service);
    }
    let setup = load().map_err(|error| {
        eprintln!("{error}");
        error.exit_code()
    })?;
    if check_config {
        print!("{}", report(&setup));
        return Err(ExitCode::SUCCESS);
    }
    for line in report(&setup).lines() {
        tracing::info!("{line}");
    }
    Ok(setup)
}
