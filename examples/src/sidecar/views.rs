//! `sidecar stat`, `sidecar routes` and `sidecar top`: the golden signals
//! of running sidecars, read from their admin servers; `sidecar edges` and
//! `sidecar authz`: who calls whom, and which policy let them in; and
//! `sidecar tap`, the requests themselves.
//!
//! Each scrapes `/metrics` of the admin addresses given, twice a window
//! apart (or every interval, for `top`), and computes what `linkerd viz
//! stat` shows: success rate, requests per second, latency percentiles and
//! the share of traffic on mutual TLS; `edges` and `authz` show what
//! `linkerd viz edges` and `linkerd viz authz` do. The arithmetic is
//! mesh-metrics' [`mesh_metrics::query`]; this module reads the command
//! line's values.
//!
//! `--admin` takes `HOST:PORT` or `NAME=HOST:PORT` (an IPv6 host in
//! brackets), comma-separated: addresses with the same name are replicas
//! of one workload, and make one row. An address is scraped once however
//! often it is listed, and may not be listed under two names. A URL
//! (`http://...`), a path, or an empty item is refused, naming the item.
//! An admin server that cannot be scraped (refused, timed out after
//! [`query::scrape::SCRAPE_TIMEOUT`], unreadable) is named under the table
//! with why, and shows as not meshed; with `-o json`, whose output a
//! script parses, the same goes to standard error instead, a line each
//! (`sidecar: scraping vote (127.0.0.1:4191): cannot connect to ...`).
//! When none can be, the view fails with that error at once, rather than
//! after its window.
//! `tap` reads its `--admin` the same way, and takes one admin server.

use std::{
    fmt,
    io::{IsTerminal, Write},
    num::NonZeroUsize,
    time::Duration,
};

use mesh_metrics::{
    query::{self, Format, InvalidTarget, QueryError, Target},
    tap::{self, TapFilter, WatchError},
};

/// The window `stat` and `routes` measure over when none is given: 10
/// seconds.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Why a view could not be shown.
#[derive(Debug)]
#[non_exhaustive]
pub enum ViewError {
    /// `--admin` is not a list of `HOST:PORT` or `NAME=HOST:PORT`.
    Targets(InvalidTarget),
    /// `--admin` names one admin server as two workloads' replica: its
    /// traffic would be counted in both rows.
    TwoNames {
        /// The admin server, as written.
        addr: String,
        /// The name it has first.
        first: String,
        /// The other name it has.
        second: String,
    },
    /// `--admin` of `tap` names no admin server, or more than one: a tap
    /// watches one.
    OneAdmin {
        /// `--admin`, as written.
        admin: String,
        /// How many admin servers it names.
        count: usize,
    },
    /// No admin server could be scraped, or the view could not be written.
    Query(QueryError),
    /// The tap could not be opened or read.
    Tap(WatchError),
    /// The output could not be written.
    Write(std::io::Error),
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Targets(_) => f.write_str("--admin: invalid admin address"),
            Self::TwoNames {
                addr,
                first,
                second,
            } => write!(
                f,
                "--admin: {addr} is named both {first} and {second}: one admin server is one replica of one workload"
            ),
            Self::OneAdmin { count: 0, .. } => f.write_str("--admin: no admin address given"),
            Self::OneAdmin { admin, count } => write!(
                f,
                "--admin: {admin} names {count} admin servers; a tap watches one"
            ),
            Self::Query(error) => write!(f, "{error}"),
            Self::Tap(error) => write!(f, "{error}"),
            Self::Write(_) => f.write_str("cannot write the output"),
        }
    }
}

impl std::error::Error for ViewError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Targets(error) => Some(error),
            Self::TwoNames { .. } | Self::OneAdmin { .. } => None,
            // Their messages are this one's: the chain goes on with
            // what they have under them, so no line says the same twice.
            Self::Query(error) => error.source(),
            Self::Tap(error) => error.source(),
            Self::Write(error) => Some(error),
        }
    }
}

/// The targets of `--admin`, each admin server once.
///
/// An address written twice under one name is one replica, scraped once:
/// scraped twice, its traffic would count twice in its row and in MESHED
/// (a list built by a script easily repeats a pod). Under two names it is
/// an error, since its traffic would count in both rows. Addresses are
/// compared as written: `localhost:4191` and `127.0.0.1:4191` are two.
fn targets(admin: &str) -> Result<Vec<Target>, ViewError> {
    let mut targets: Vec<Target> = Vec::new();
    for target in Target::parse_list(admin).map_err(ViewError::Targets)? {
        match targets.iter().find(|seen| seen.addr == target.addr) {
            None => targets.push(target),
            Some(seen) if seen.name == target.name => {}
            Some(seen) => {
                return Err(ViewError::TwoNames {
                    addr: target.addr,
                    first: seen.name.clone(),
                    second: target.name,
                });
            }
        }
    }
    Ok(targets)
}

/// The one admin server `tap` watches, from `--admin`: `HOST:PORT`, or
/// `NAME=HOST:PORT` as the other views take it (the name is not used).
/// Read as the other views read an item, so that a URL or a path is
/// refused where it is written, not taken for a host name that DNS does
/// not know.
fn tap_target(admin: &str) -> Result<String, ViewError> {
    let targets = Target::parse_list(admin).map_err(ViewError::Targets)?;
    match <[Target; 1]>::try_from(targets) {
        Ok([target]) => Ok(target.addr),
        Err(targets) => Err(ViewError::OneAdmin {
            admin: admin.trim().to_owned(),
            count: targets.len(),
        }),
    }
}

/// The text of `view`; with JSON, which does not name the admin servers
/// that could not be scraped, each is written to standard error first, so
/// that a script reading standard output still parses it and a person
/// still learns why a workload is missing.
fn reported(view: query::View, format: Format) -> String {
    if format == Format::Json && !view.unreachable.is_empty() {
        let mut stderr = std::io::stderr().lock();
        for unreachable in &view.unreachable {
            // Nowhere to say that standard error is gone: the view is
            // still worth writing.
            let _ = writeln!(stderr, "sidecar: {unreachable}");
        }
    }
    view.text
}

/// `sidecar stat --admin ADDR[,ADDR...] [--window 10s] [-o json]`: one row
/// per workload, from the inbound traffic of its sidecars: MESHED,
/// SUCCESS, RPS, LATENCY_P50, LATENCY_P95, LATENCY_P99 and TLS.
///
/// # Errors
///
/// An invalid `--admin`, or no admin server could be scraped.
pub async fn stat(admin: &str, window: Duration, format: Format) -> Result<String, ViewError> {
    let view = query::stat::view(&targets(admin)?, window, format)
        .await
        .map_err(ViewError::Query)?;
    Ok(reported(view, format))
}

/// `sidecar routes --admin ADDR [--to SERVICE]`: the same per inbound
/// route, or with `to`, per outbound route to that service, with the retry
/// ratio and the success rate of attempts beside that of requests.
///
/// # Errors
///
/// As [`stat`].
pub async fn routes(
    admin: &str,
    to: Option<&str>,
    window: Duration,
    format: Format,
) -> Result<String, ViewError> {
    let view = query::routes::view(&targets(admin)?, to, window, format)
        .await
        .map_err(ViewError::Query)?;
    Ok(reported(view, format))
}

/// `sidecar edges --admin NAME=ADDR[,NAME=ADDR...]`: one row per caller
/// and callee in the window: SRC, DST, CLIENT_ID, SERVER_ID, SECURED (✓ for
/// mutual TLS, else why not), SUCCESS and RPS. Identities come from each
/// sidecar's `identity_cert_info`, or, without it, are inferred from the
/// peers of a workload named after its service (see [`query::edges`]).
///
/// # Errors
///
/// As [`stat`].
pub async fn edges(admin: &str, window: Duration, format: Format) -> Result<String, ViewError> {
    let view = query::edges::view(&targets(admin)?, window, format)
        .await
        .map_err(ViewError::Query)?;
    Ok(reported(view, format))
}

/// `sidecar authz --admin NAME=ADDR[,NAME=ADDR...]`: one row per Server,
/// route and authorization that let requests in, with SUCCESS, RPS and
/// latency, and a row per route with the RPS of the requests denied. An
/// opaque Server's connections have rows of their own, with no route: per
/// authorization, and for those refused, the TCP_CONN column counts them
/// in the window. With more than one workload, a WORKLOAD column says
/// whose each row is. A port no Server covers shows its default policy
/// as the server, `default:all-unauthenticated`, as `linkerd viz authz`
/// does, apart from a Server that has the policy's name.
///
/// # Errors
///
/// As [`stat`].
pub async fn authz(admin: &str, window: Duration, format: Format) -> Result<String, ViewError> {
    let view = query::authz::view(&targets(admin)?, window, format)
        .await
        .map_err(ViewError::Query)?;
    Ok(reported(view, format))
}

/// `sidecar top --admin ADDR`: writes both views to `out` every
/// `interval`, until `frames` have been written (forever when `None`).
/// On a terminal a table redraws it; into a file or a pipe, each frame
/// follows the one before, with no terminal codes, and the view ends
/// quietly once the pipe's reader has gone.
///
/// # Errors
///
/// An invalid `--admin`, or `out` cannot be written.
pub async fn top<W: Write + IsTerminal>(
    out: &mut W,
    admin: &str,
    interval: Duration,
    format: Format,
    frames: Option<NonZeroUsize>,
) -> Result<(), ViewError> {
    let redraw = format == Format::Table && out.is_terminal();
    match query::top::run_redrawing(out, &targets(admin)?, interval, format, frames, redraw).await {
        // The reader went away (`top | head -1`): there is no one left to
        // draw for, and ending is no failure, as for a pipeline's writer.
        Err(QueryError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        done => done.map_err(ViewError::Query),
    }
}

/// `sidecar tap --admin ADDR [--direction D] [--method M] [--authority A]
/// [--path P] [--max-rps N] [-o json] [--count N]`: writes each event of
/// the requests `filter` matches to `out` as it happens, a line each, in
/// `linkerd viz tap`'s format (or as JSON), until `count` requests have
/// ended (forever when `None`).
///
/// `admin` is one `HOST:PORT` (or `NAME=HOST:PORT`). The tap ends
/// quietly once the reader of a pipe it writes to has gone.
///
/// # Errors
///
/// `admin` is not one admin server, the tap could not be opened (the
/// admin server's reason is in the error), or `out` cannot be written.
pub async fn tap<W: Write>(
    out: &mut W,
    admin: &str,
    filter: &TapFilter,
    format: Format,
    count: Option<NonZeroUsize>,
) -> Result<(), ViewError> {
    let admin = tap_target(admin)?;
    let mut ended = 0;
    let mut failed = None;
    tap::watch(&admin, filter, |event| {
        let written = match format {
            Format::Json => writeln!(out, "{}", event.to_json()),
            _ => writeln!(out, "{event}"),
        };
        if let Err(error) = written.and_then(|()| out.flush()) {
            failed = Some(error);
            return false;
        }
        if matches!(event.kind, tap::TapEventKind::End { .. }) {
            ended += 1;
        }
        count.is_none_or(|n| ended < n.get())
    })
    .await
    .map_err(ViewError::Tap)?;
    match failed {
        // The reader went away (`tap | head -3`), as for `top`.
        Some(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ViewError::Write(error))
        }
        _ => Ok(()),
    }
}
