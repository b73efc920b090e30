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
