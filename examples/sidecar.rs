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
//! `POST /shutdown`, then drains. SIGHUP reads the policy files and the
//! identity's certificate files (or CA directory) again at once, rather
//! than at the next `policy.watch_interval` or `identity.watch_interval`
//! (or renewal). See
//! `examples/CONFIG.md` for the file's fields.
//!
//! `check` is `linkerd check` for one sidecar: a ✔ (passed), ‼ (warning)
//! or ✖ (failed) line per check, under a heading per area, then a summary.
//! It checks that the file is valid (a mistake is printed with its field
//! path and line, and the other checks do not run); that the certificate
//! chain verifies against the trust bundle, its identity is in the trust
//! domain and no certificate has expired (‼ when one is close to it); that
//! the policy compiles (‼ for each part not enforced); that each inbound
//! application address accepts connections; that the trace collector
//! does (‼ when it does not); and that the running
//! sidecar's admin server answers `/live` and `/ready`. With `--pre`, for a
//! sidecar not started yet, it checks that the listen addresses are free
//! instead of asking the admin server. It exits non-zero on any ✖:
//!
//! ```text
//! cargo run --release --example sidecar -- check --config sidecar.yaml
//! sidecar-config
//! --------------
//! ✔ config file sidecar.yaml is valid
//! ...
//! ✔ 12 checks passed
//! ```
//!
//! As `linkerd check -o` does, `-o short` prints only the ‼ and ✖ checks
//! and the summary, and `-o json` `linkerd check -o json`'s document, for
//! scripts that read Linkerd's; the exit status is the same.
//!
//! `certs ca` writes a development CA, and `certs issue` a workload
//! certificate from it in the layout `identity.dir` reads; each prints what
//! it wrote.
//!
//! `inject` adds the sidecar to Kubernetes workload manifests, like
//! `linkerd inject` (see `mesh_examples::sidecar::inject` for what it adds):
//!
//! ```text
//! kubectl get -n emojivoto deploy -o yaml \
//!     | cargo run --release --example sidecar -- inject - | kubectl apply -f -
//! cargo run --release --example sidecar -- inject app.yaml --image ghcr.io/mesh/sidecar:0.1.0
//! ```
//!
//! `await` waits until a sidecar's admin server answers `/ready` with
//! `200`, as `linkerd-await` does, and exits non-zero past `--timeout`
//! (2m); an injected sidecar's `postStart` hook runs it:
//!
//! ```text
//! cargo run --release --example sidecar -- await --admin 127.0.0.1:4191 --timeout 2m
//! ```
//!
//! `policy explain` says how the policy would decide one request, and
//! which resources decided:
//!
//! ```text
//! cargo run --release --example sidecar -- policy explain --config sidecar.yaml \
//!     --port 80 --identity spiffe://example.org/ns/emojivoto/sa/web --path /api --method GET
//! decision: allow by web-server-80-auth
//! workload: ...
//! ```
//!
//! `stat`, `routes` and `top` show the golden signals of running sidecars
//! from their admin servers, like `linkerd viz stat`:
//!
//! ```text
//! cargo run --release --example sidecar -- stat --admin web=127.0.0.1:4191,vote=127.0.0.1:4192 --window 10s
//! NAME  MESHED  SUCCESS  RPS  LATENCY_P50  LATENCY_P95  LATENCY_P99  TLS
//! ...
//! cargo run --release --example sidecar -- routes --admin 127.0.0.1:4191 --to emoji -o json
//! cargo run --release --example sidecar -- top --admin 127.0.0.1:4191
//! ```
//!
//! `edges` shows who calls whom, with the identities each end proved and
//! whether the traffic was on mutual TLS (✓, or why not), like `linkerd viz
//! edges`; `authz` shows the traffic each Server, route and authorization
//! let in, and the rate of requests denied, like `linkerd viz authz`.
//! Each sidecar names its identity in its metrics (`identity_cert_info`),
//! so workloads may be named freely; for one without it, `edges` infers the
//! identity from its peers, which needs the workload named after its
//! service. Both take `-o json` for scripts:
//!
//! ```text
//! cargo run --release --example sidecar -- edges \
//!     --admin web=127.0.0.1:4191,emoji=127.0.0.1:4192,plain=127.0.0.1:4193
//! SRC       DST       CLIENT_ID         SERVER_ID                  SECURED   SUCCESS        RPS
//! -       emoji               -   emoji.emojivoto   Not Provided By Remote         -     0.0rps
//! plain   emoji               -                 -                 Disabled   100.00%   410.8rps
//! web     emoji   web.emojivoto   emoji.emojivoto                        ✓    90.12%   410.8rps
//! cargo run --release --example sidecar -- authz --admin emoji=127.0.0.1:4192
//! ROUTE         SERVER    AUTHORIZATION   SUCCESS        RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99
//! default   emoji-http   emoji-from-web    89.96%   321.2rps         0.5ms           1ms           1ms
//! default   emoji-http   [unauthorized]         -   321.2rps             -             -             -
//! ```
//!
//! `tap` shows the requests themselves as they pass, like `linkerd viz
//! tap`:
//!
//! ```text
//! cargo run --release --example sidecar -- tap --admin 127.0.0.1:4191 --path /api
//! req id=0 proxy=in  src=127.0.0.1:50412 dst=127.0.0.1:4143 tls=true :method=GET :authority=web :path=/api/list
//! rsp id=0 proxy=in  src=127.0.0.1:50412 dst=127.0.0.1:4143 tls=true :status=200 latency=812µs
//! end id=0 proxy=in  src=127.0.0.1:50412 dst=127.0.0.1:4143 tls=true duration=41µs response-length=2161B
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{io::Write as _, net::IpAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use mesh_core::admin::LogLevel;
use mesh_examples::sidecar::{
    self, certs,
    config::{SidecarConfig, parse_duration},
    policy, views,
};
use mesh_metrics::query::Format;
use mesh_policy::ExplainQuery;

// The global allocator is glibc's malloc unless a feature picks another
// (examples/CONFIG.md, section Allocator, has the measured trade-off).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The reference sidecar proxy of the mesh.
#[derive(Debug, Parser)]
#[command(name = "sidecar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar until SIGTERM, Ctrl-C or `POST /shutdown` on the admin
    /// port; SIGHUP reads the policy files and the certificate files again.
    Run {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration, its certificates, policy and application, and
    /// the running sidecar, like `linkerd check`; exits non-zero on any ✖.
    Check {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Check before the sidecar starts: that its listen addresses are
        /// free, instead of asking its admin server.
        #[arg(long)]
        pre: bool,
        /// How long to wait for each connection and admin request.
        #[arg(long, default_value = "1s", value_parser = positive_duration)]
        timeout: Duration,
        /// `table`, `short` (only the checks that warned or failed) or
        /// `json` (`linkerd check -o json`'s document); the exit status is
        /// the same for each.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: sidecar::check::Output,
    },
    /// Add the sidecar to Kubernetes workload manifests, like `linkerd inject`.
    Inject {
        /// The manifests: a file, or `-` for standard input (as
        /// `linkerd inject`, it asks for one rather than wait on a
        /// terminal).
        file: PathBuf,
        /// The sidecar's image.
        #[arg(long, default_value_t = sidecar::inject::Image::default())]
        image: sidecar::inject::Image,
    },
    /// Wait until a sidecar is ready: ask its admin server's `/ready`
    /// until it answers 200, like `linkerd-await`; past the timeout it says
    /// so and exits 0, as `linkerd-await` does. An injected sidecar's
    /// `postStart` hook runs it.
    Await {
        /// The admin server, `IP:PORT`.
        #[arg(long, default_value = sidecar::wait_ready::DEFAULT_ADMIN, value_parser = sidecar::wait_ready::parse_admin)]
        admin: std::net::SocketAddr,
        /// How long to wait before giving up.
        #[arg(long, default_value = sidecar::wait_ready::DEFAULT_TIMEOUT, value_parser = positive_duration)]
        timeout: Duration,
    },
    /// Make a development CA and workload certificates.
    #[command(subcommand)]
    Certs(Certs),
    /// Ask the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Success rate, RPS, latency and TLS per workload, from inbound traffic.
    Stat(Measured),
    /// The same per route: inbound, or outbound to one service.
    Routes {
        #[command(flatten)]
        measured: Measured,
        /// Show the outbound routes to this service.
        #[arg(long)]
        to: Option<String>,
    },
    /// Who calls whom, and whether on mutual TLS, like `linkerd viz edges`.
    ///
    /// Identities come from each sidecar's `identity_cert_info`; a workload
    /// without it is named after its service, so that its identity can be
    /// inferred from its peers'.
    Edges(Measured),
    /// Traffic per server, route and authorization, and the rate of denied
    /// requests, like `linkerd viz authz`.
    Authz(Measured),
    /// A live view of workloads and routes, redrawn every interval.
    Top {
        /// Admin servers, `ADDR` or `NAME=ADDR`, comma-separated.
        #[arg(long)]
        admin: String,
        /// How often to redraw.
        #[arg(long, default_value = "2s", value_parser = positive_duration)]
        interval: Duration,
        /// `table` or `json`.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: Format,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<std::num::NonZeroUsize>,
    },
    /// Watch live requests through a sidecar, a line per event, like
    /// `linkerd viz tap`.
    Tap {
        /// The admin server, `ADDR`.
        #[arg(long)]
        admin: String,
        /// Only requests on this side: `inbound` or `outbound`.
        #[arg(long)]
        direction: Option<String>,
        /// Only requests with this method.
        #[arg(long)]
        method: Option<String>,
        /// Only requests for this authority.
        #[arg(long)]
        authority: Option<String>,
        /// Only requests whose path starts with this.
        #[arg(long)]
        path: Option<String>,
        /// At most this many requests a second.
        #[arg(long, default_value_t = mesh_metrics::tap::DEFAULT_MAX_RPS)]
        max_rps: u32,
        /// `table` (Linkerd's lines) or `json`.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: Format,
        /// Stop after this many requests have ended.
        #[arg(long)]
        count: Option<std::num::NonZeroUsize>,
    },
}

/// The flags of the views measured over a window: `stat`, `routes`,
/// `edges` and `authz`.
#[derive(Debug, clap::Args)]
struct Measured {
    /// Admin servers, `ADDR` or `NAME=ADDR`, comma-separated.
    #[arg(long)]
    admin: String,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    window: Duration,
    /// `table` or `json`.
    #[arg(short = 'o', long = "output", default_value = "table")]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print how the policy decides one request, and which resources decide.
    Explain(Explain),
}

#[derive(Debug, clap::Args)]
struct Explain {
    /// The YAML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// The application port the request arrives for.
    #[arg(long)]
    port: u16,
    /// The client's mesh identity; without it the client has none.
    #[arg(long)]
    identity: Option<String>,
    /// A client without an identity that speaks TLS (no certificate).
    #[arg(long, conflicts_with = "identity")]
    tls: bool,
    /// The client's address.
    #[arg(long)]
    client_ip: Option<IpAddr>,
    /// The request path, with any query.
    #[arg(long, default_value = "/")]
    path: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request header, as `name: value`; may be repeated.
    #[arg(long)]
    header: Vec<String>,
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
        #[arg(long, default_value = "24h", value_parser = positive_duration)]
        ttl: Duration,
        /// The directory to write tls.crt, tls.key and ca.crt to.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let log_level = sidecar::log::init("info");
    match Cli::parse().command {
        Command::Run { config } => run(&config, log_level),
        Command::Check {
            config,
            pre,
            timeout,
            output,
        } => check(
            &config,
            &sidecar::check::CheckOptions::default()
                .with_pre(pre)
                .with_timeout(timeout),
            output,
        ),
        Command::Inject { file, image } => inject(&file, image),
        Command::Await { admin, timeout } => {
            // Past the timeout it says why and lets the application
            // start, as `linkerd-await` does: failing the `postStart` hook
            // would not hold the application back (the kubelet starts the
            // next containers anyway) but would have the kubelet kill a
            // sidecar that may be about to become ready.
            if let Err(error) = block_on(sidecar::wait_ready::wait_ready(admin, timeout)) {
                eprintln!("warning: {error}; going on, as linkerd-await does");
                for cause in mesh_examples::causes(&error) {
                    eprintln!("  caused by: {cause}");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Policy(PolicyCommand::Explain(args)) => explain(&args),
        Command::Stat(m) => print_view(views::stat(&m.admin, m.window, m.output)),
        Command::Routes { measured: m, to } => {
            print_view(views::routes(&m.admin, to.as_deref(), m.window, m.output))
        }
        Command::Edges(m) => print_view(views::edges(&m.admin, m.window, m.output)),
        Command::Authz(m) => print_view(views::authz(&m.admin, m.window, m.output)),
        Command::Top {
            admin,
            interval,
            output,
            frames,
        } => {
            let mut out = std::io::stdout();
            let view = views::top(&mut out, &admin, interval, output, frames);
            match block_on(view) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
        Command::Tap {
            admin,
            direction,
            method,
            authority,
            path,
            max_rps,
            output,
            count,
        } => {
            let filter = match tap_filter(direction, method, authority, path, max_rps) {
                Ok(filter) => filter,
                Err(error) => {
                    // Named as the flag the user typed, not as the admin
                    // server's query parameter the flag becomes.
                    let flag = error.parameter.replace('_', "-");
                    eprintln!("error: --{flag}: {}", error.reason);
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout();
            match block_on(views::tap(&mut out, &admin, &filter, output, count)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
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

/// The filter the `tap` flags ask for, checked as the admin server would
/// check its query, so that a mistake is reported before connecting.
fn tap_filter(
    direction: Option<String>,
    method: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    max_rps: u32,
) -> Result<mesh_metrics::tap::TapFilter, mesh_metrics::tap::InvalidTapQuery> {
    let mut query = vec![format!("max_rps={max_rps}")];
    let flags = [
        ("direction", direction),
        ("method", method),
        ("authority", authority),
        ("path", path),
    ];
    for (name, value) in flags {
        if let Some(value) = value {
            let value: String = value
                .bytes()
                .map(|b| match b {
                    b'%' | b'&' | b'+' | b'=' | b'#' => format!("%{b:02X}"),
                    _ => char::from(b).to_string(),
                })
                .collect();
            query.push(format!("{name}={value}"));
        }
    }
    mesh_metrics::tap::TapFilter::from_query(&query.join("&"))
}

/// Runs a view to completion on a runtime of its own and prints it.
fn print_view(view: impl Future<Output = Result<String, views::ViewError>>) -> ExitCode {
    match block_on(view) {
        // A reader that went away (`sidecar stat | head -1`) has what it
        // wanted: not an error, and no panic, which `print!` would give.
        Ok(text) => match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: cannot write the view: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => fail(&error),
    }
}

/// A duration flag that must be above zero: a zero `--interval` would
/// redraw in a busy loop (tokio refuses a zero period), a zero `--window`
/// divides by zero, a zero `--timeout` fails every check and a zero
/// `--ttl` issues a certificate that is already expired.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => {
            Err("expected a duration greater than zero, such as 2s".to_owned())
        }
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

/// Runs a one-shot command's future on a runtime of its own, and leaves
/// without waiting for the runtime's blocking threads.
///
/// tokio looks names up (`lookup_host`, `TcpStream::connect` to a name) on
/// its blocking pool, and a `getaddrinfo` call cannot be cancelled: the
/// future gives up at its timeout, but dropping the runtime would wait
/// for the call to return, which a resolver that does not answer makes
/// its own retries and timeouts long (5 seconds a try by default). With
/// the future done, nothing is left for those threads to do: the process
/// exits, and ends them.
fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the command");
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    output
}

/// Prints the report of every check as `output` asks; fails when any
/// check failed, whatever the format.
fn check(
    path: &std::path::Path,
    options: &sidecar::check::CheckOptions,
    output: sidecar::check::Output,
) -> ExitCode {
    use sidecar::check::Output;
    let report = block_on(sidecar::check::run(path, options));
    let text = match output {
        Output::Table => report.to_string(),
        Output::Short => report.short().to_string(),
        Output::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(error) => {
                eprintln!("error: cannot encode the report as json: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A reader that went away (`sidecar check | head -1`) has what it
        // wanted; the status still says how the checks came out.
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => {
            eprintln!("error: cannot write the report: {error}");
            return ExitCode::FAILURE;
        }
    }
    if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes the manifests of `file` (`-`: standard input) injected to
/// standard output, and a note per object to standard error.
fn inject(file: &std::path::Path, image: sidecar::inject::Image) -> ExitCode {
    let config = sidecar::inject::InjectConfig::new().with_image(image);
    let (mut out, mut notes) = (std::io::stdout().lock(), std::io::stderr());
    match sidecar::inject::inject_file(file, &mut out, &mut notes, &config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn explain(args: &Explain) -> ExitCode {
    let config = match SidecarConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let query = match explain_query(args) {
        Ok(query) => query,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    report(policy::explain(&config.policy, &query))
}

fn explain_query(args: &Explain) -> Result<ExplainQuery, String> {
    let mut query = ExplainQuery::new(args.port);
    if let Some(identity) = &args.identity {
        query.identity = Some(
            identity
                .parse()
                .map_err(|e| format!("--identity {identity:?}: {e}"))?,
        );
    }
    query.tls_without_identity = args.tls;
    query.client_ip = args.client_ip;
    query.method = args
        .method
        .parse()
        .map_err(|_| format!("--method {:?}: not an http method", args.method))?;
    query.uri = args
        .path
        .parse()
        .map_err(|_| format!("--path {:?}: not a path", args.path))?;
    for header in &args.header {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?}: expected name: value"))?;
        let name = http::HeaderName::try_from(name.trim())
            .map_err(|_| format!("--header {header:?}: invalid name"))?;
        let value = http::HeaderValue::try_from(value.trim())
            .map_err(|_| format!("--header {header:?}: invalid value"))?;
        query.headers.append(name, value);
    }
    Ok(query)
}

fn report<T: std::fmt::Display, E: std::error::Error + 'static>(result: Result<T, E>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn run(path: &std::path::Path, log_level: std::sync::Arc<dyn LogLevel>) -> ExitCode {
    // Ready for signals before anything is read or started: SIGHUP's
    // default action would end a sidecar still reading its configuration
    // (a slow mount, a pipe), and a process short of descriptors fails
    // here, with nothing to stop. A SIGHUP that comes before the sidecar
    // serves is read once it does.
    let (signals, mut term, mut hangup) = match listen_for_signals() {
        Ok(listening) => listening,
        Err(error) => return fail(&error),
    };
    // Before the file is read, so that a refused file's error comes after
    // the misspelt variable that may explain it.
    warn_of_unknown_variables(std::env::vars_os().map(|(name, _)| name));
    let config = match SidecarConfig::load(path) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let options = sidecar::StartOptions {
        log_level: Some(log_level),
    };
    let running = match sidecar::start_with(config, options) {
        Ok(running) => running,
        Err(error) => return fail(&error),
    };
    let shutdown = running.shutdown_signal();
    let reload = running.reloader();
    signals.block_on(async {
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        let mut shutdown = std::pin::pin!(shutdown.wait());
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return tracing::info!("Ctrl-C: draining"),
                _ = term.recv() => return tracing::info!("SIGTERM: draining"),
                () = &mut shutdown => return,
                _ = hangup.recv() => hung_up(&reload),
            }
        }
    });
    running.shutdown();
    running.join();
    tracing::info!("sidecar stopped");
    ExitCode::SUCCESS
}

/// Logs a warning for each variable of `names` that starts with `MESH_`
/// (or `mesh_`, close to one it reads) and that the sidecar does not
/// read: the sidecar starts anyway, as
/// Linkerd's proxy does ([`SidecarConfig::unknown_env_variables`] says
/// why), but the value meant for it is not in force.
fn warn_of_unknown_variables(names: impl IntoIterator<Item = std::ffi::OsString>) {
    for (name, meant) in SidecarConfig::unknown_env_variables(names) {
        match meant {
            Some(meant) => tracing::warn!(
                "the sidecar reads no environment variable {name}, and ignores it: \
                 did you mean {meant}?"
            ),
            None => {
                tracing::warn!("the sidecar reads no environment variable {name}, and ignores it")
            }
        }
    }
}

/// SIGHUP: the policy files and the identity's certificate files (or CA
/// directory) are read now ([`policy::Reload`]), as Prometheus reloads its configuration and
/// nginx its own, certificates included, on SIGHUP. Its default action
/// would end the process without a drain. The line logged says what is
/// read; each read then logs what it came to.
fn hung_up(reload: &policy::Reload) {
    let what = match (reload.reads_policy_files(), reload.reads_identity()) {
        (true, Some(identity)) => format!("the policy files and {identity}"),
        (true, None) => "the policy files".to_owned(),
        (false, Some(identity)) => identity.to_string(),
        (false, None) => {
            return tracing::info!(
                "SIGHUP: no policy files to read again, nor certificate files (the \
                 configuration file is read only at start)"
            );
        }
    };
    tracing::info!("SIGHUP: reading {what} again");
    reload.ask();
}

/// A runtime for the main thread to wait for signals on, and its
/// `SIGTERM` stream (Kubernetes stops a pod with it) and `SIGHUP` stream.
type Signals = (
    tokio::runtime::Runtime,
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
);

/// Ready for the signals the sidecar handles: see [`Signals`].
fn listen_for_signals() -> std::io::Result<Signals> {
    let context = |what: &str, error: std::io::Error| {
        std::io::Error::new(error.kind(), format!("cannot {what}: {error}"))
    };
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| context("make a runtime to wait for signals", error))?;
    let term = signals
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .map_err(|error| context("listen for SIGTERM", error))?;
    let hangup = signals
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })
        .map_err(|error| context("listen for SIGHUP", error))?;
    Ok((signals, term, hangup))
}

fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {error}");
    for cause in mesh_examples::causes(error) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}
