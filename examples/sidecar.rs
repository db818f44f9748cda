//! The reference sidecar proxy.
//!
//! It runs next to an application in any language: the inbound listeners
//! forward other workloads' traffic to the application, the outbound listener
//! routes the application's requests to other services by authority, and the
//! admin listener answers `/live`, `/ready`, `/metrics` and `POST /shutdown`.
//!
//! ```text
//! cargo run --release --example sidecar -- run --config sidecar.yaml
//! cargo run --release --example sidecar -- check --config sidecar.yaml
//! cargo run --release --example sidecar -- certs ca --trust-domain example.org --out ca
//! cargo run --release --example sidecar -- certs issue --ca ca \
//!     --identity spiffe://example.org/ns/emojivoto/sa/web --ttl 24h --out web
//! ```
//!
//! `run` logs the addresses it listens on and serves until SIGTERM, Ctrl-C or
//! `POST /shutdown`, then drains. `check` validates a configuration without
//! starting anything and prints `config ok` or the first problem, with its
//! field path and line. See `examples/CONFIG.md` for the file's fields.
//! `certs ca` writes a development CA, and `certs issue` a workload
//! certificate from it in the layout `identity.dir` reads; each prints what
//! it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use mesh_examples::sidecar::{
    self, certs,
    config::{SidecarConfig, parse_duration},
};

/// The reference sidecar proxy of the mesh.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar until SIGTERM, Ctrl-C or `POST /shutdown` on the admin port.
    Run {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file without starting anything.
    Check {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Make a development CA and workload certificates.
    #[command(subcommand)]
    Certs(Certs),
}

#[derive(Debug, Subcommand)]
enum Certs {
    /// Write a trust anchor and an issuer for a trust domain.
    Ca {
        /// The trust domain, such as example.org.
        #[arg(long)]
        trust_domain: String,
        /// The directory to write the CA to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a workload certificate from a CA directory.
    Issue {
        /// A directory `certs ca` wrote.
        #[arg(long)]
        ca: PathBuf,
        /// The identity, such as spiffe://example.org/ns/emojivoto/sa/web.
        #[arg(long)]
        identity: String,
        /// How long the certificate lives, such as 24h or 90m.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// The directory to write tls.crt, tls.key and ca.crt to.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run { config } => run(&config),
        Command::Check { config } => match SidecarConfig::load(&config) {
            Ok(_) => {
                println!("config ok: {}", config.display());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Certs(Certs::Ca { trust_domain, out }) => {
            report(certs::create_ca(&trust_domain, &out))
        }
        Command::Certs(Certs::Issue {
            ca,
            identity,
            ttl,
            out,
        }) => report(certs::issue(&ca, &identity, ttl, &out)),
    }
}

fn report<T: std::fmt::Display, E: std::error::Error>(result: Result<T, E>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match SidecarConfig::load(path) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let running = match sidecar::start(config) {
        Ok(running) => running,
        Err(error) => return fail(&error),
    };
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for signals");
    let shutdown = running.shutdown_signal();
    signals.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: draining"),
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            () = shutdown.wait() => {}
        }
    });
    running.shutdown();
    running.join();
    tracing::info!("sidecar stopped");
    ExitCode::SUCCESS
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::FAILURE
}
