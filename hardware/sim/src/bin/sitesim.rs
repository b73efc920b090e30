//! sitesim: a simulated EMP-shielded bunker site on Modbus TCP: environment, power, shielding,
//! doors and safety devices on ports counting up from `--listen`, driven by a physical model.
//!
//! `sitesim --listen 127.70.0.1:15020 --spec small --control /run/sitesim.sock`
//! `sitesim --listen 127.70.0.1:15020 --print-map > site-map.toml`
//! `sitesim --control /run/sitesim/control.sock --send "door 1 open"` (a client: one command to a
//! running sitesim, its reply printed; exit 0 on a reply, 1 on an `error:` reply, 2 when the
//! socket cannot be reached: the appliance has no socat)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sim::control::{self as control_socket, ControlServer};
use sim::site::{RegisterMap, Site, SiteSpec, control, planned_addresses};

#[derive(Debug, Parser)]
#[command(
    about = "Simulated bunker site: Modbus TCP sensors and relays driven by a physical model"
)]
struct Args {
    /// The first device's address; the five devices take consecutive ports from here
    /// (port 0: any free ports, logged at start).
    #[arg(long, default_value = "127.70.0.1:15020")]
    listen: SocketAddr,
    /// `small` (the QEMU site), `bench` (over 1,000 sensors) or a TOML spec file.
    #[arg(long, default_value = "small")]
    spec: String,
    /// A Unix socket for control commands (`door 1 open`, `grid off`, `fault site-power lost`,
    /// `relays`…; one per line, one reply line each).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Print the register map as hardware-profile TOML and exit.
    #[arg(long, conflicts_with = "send")]
    print_map: bool,
    /// Start no site: send this one command to the sitesim already listening on `--control`,
    /// print its reply line and exit (1 when the reply is `error: …`).
    #[arg(long, requires = "control", value_name = "COMMAND")]
    send: Option<String>,
}

/// Exit status of `--send` when the control socket cannot be reached or gives no reply (1 is a
/// reply that refuses the command).
const EXIT_UNREACHABLE: u8 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    if let (Some(command), Some(socket)) = (&args.send, &args.control) {
        return Ok(send(socket, command).await);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let spec = SiteSpec::named_or_file(&args.spec).context("site spec")?;
    if args.print_map {
        let map = RegisterMap::new(&spec, &planned_addresses(args.listen));
        print!("{}", map.to_toml().context("rendering the register map")?);
        return Ok(ExitCode::SUCCESS);
    }
    let site = Site::start(spec, args.listen)
        .await
        .with_context(|| format!("starting the site devices at {}", args.listen))?;
    let _control = match &args.control {
        Some(path) => Some(
            ControlServer::bind(path, control::handler(site.handle()))
                .with_context(|| format!("control socket {}", path.display()))?,
        ),
        None => None,
    };
    for (bus, address) in site.register_map().buses.iter().zip(site.addresses()) {
        tracing::info!(device = %bus.name, %address, sensors = bus.registers.len(), relays = bus.relays.len(), "device listening");
    }
    tracing::info!("sitesim running; Ctrl-C or SIGTERM to stop");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
    }
    site.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// The client mode: the reply goes to stdout whatever it says; the exit status says whether the
/// simulator took the command.
async fn send(socket: &Path, command: &str) -> ExitCode {
    match control_socket::send(socket, command).await {
        Ok(reply) => {
            println!("{reply}");
            if reply.starts_with("error:") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sitesim: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}
