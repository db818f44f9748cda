//! The demo mesh: the guide's emojivoto on one machine, with no cluster.
//!
//! Three small applications, `web`, `emoji` and `voting`, each run behind
//! its own reference sidecar, and a fourth, `vote-bot`, drives `web` at a
//! steady rate, as in emojivoto:
//!
//! ```text
//! vote-bot ─► sidecar ══mTLS══► sidecar ─► web ─► sidecar ══mTLS══► sidecar ─► emoji
//!                                                        ╚══mTLS══► sidecar ─► voting
//! ```
//!
//! What the demo sets up is what an operator would:
//!
//! - **Identity.** A development CA for the trust domain `cluster.local`
//!   issues each workload a certificate naming its service account
//!   (`spiffe://cluster.local/ns/emojivoto/sa/web`). Sidecars accept mutual
//!   TLS only, and each outbound service names the identity its server must
//!   prove.
//! - **Policy.** Linkerd's `Server`, `MeshTLSAuthentication` and
//!   `AuthorizationPolicy` resources let `web` call `emoji` and `voting`,
//!   and `vote-bot` call `web`; nothing else. Once a second `emoji` tries
//!   to vote on its own, and must get a 403.
//! - **Retries.** `voting` fails one vote in ten. `web`'s sidecar retries
//!   them within a budget, so `web` sees no failures.
//! - **Metrics.** Every two seconds the demo prints what `sidecar stat` and
//!   `sidecar routes` show, from the sidecars' `/metrics`, and `web`'s
//!   admin server serves the live dashboard over `web`, `emoji` and
//!   `voting` (`admin.dashboard`).
//!
//! Everything listens on 127.0.0.1, on ports the system picks, except the
//! admin servers when [`DemoConfig::admin_port`] fixes them. The files
//! (certificates, the policy, one sidecar configuration per workload) go to
//! a temporary directory that is removed at the end. [`run`] checks at the
//! end that the mesh kept its promises: see [`report`].

pub mod apps;
pub mod files;
pub mod mesh;
pub mod output;
pub mod report;
pub mod traffic;

use std::{fmt, io::Write, num::NonZeroU32, sync::Arc, time::Duration};

use mesh_core::serve::shutdown;
use tokio::time::Instant;

use self::{
    apps::Outcomes,
    files::MeshFiles,
    mesh::Mesh,
    report::{Summary, Watch},
    traffic::DeniedCounts,
};
use crate::sidecar::{StartError, certs::CertsError, config::ConfigError, wait_ready::NotReady};

/// How the demo runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoConfig {
    /// Requests a second `vote-bot` sends to `web`. Default 30.
    pub rps: NonZeroU32,
    /// How long to run; `None` runs until the `stop` future of [`run`]
    /// resolves. Default `None`.
    pub duration: Option<Duration>,
    /// How often to print the tables. Default 2 seconds.
    pub interval: Duration,
    /// How often `emoji` makes a call the policy denies. Default 1 second.
    pub denied_every: Duration,
    /// Whether `web`'s sidecar retries failed votes. Default `true`;
    /// without, `voting`'s failures reach `web` and the run fails.
    pub retries: bool,
    /// The port of `web`'s admin server; `emoji`'s, `voting`'s and
    /// `vote-bot`'s take the next three. Default 0: the system picks each.
    pub admin_port: u16,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            rps: NonZeroU32::MIN.saturating_add(29),
            duration: None,
            interval: Duration::from_secs(2),
            denied_every: Duration::from_secs(1),
            retries: true,
            admin_port: 0,
        }
    }
}

/// The demo could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum DemoError {
    /// The temporary files could not be written.
    Files(std::io::Error),
    /// The CA or a certificate could not be made.
    Certs(CertsError),
    /// An application's listener could not be bound.
    Bind(std::io::Error),
    /// The configuration of the named workload's sidecar was refused.
    Config(&'static str, ConfigError),
    /// The named workload's sidecar could not start.
    Start(&'static str, StartError),
    /// The named workload's sidecar did not become ready in time; the
    /// source names its admin address and what its `/ready` last answered
    /// (such as `503 not ready: identity`), or why it could not be asked.
    NotReady(&'static str, NotReady),
    /// The mesh counted this many sidecars, not the four it started: a
    /// defect of the demo itself, never returned in practice.
    SidecarCount(usize),
    /// The output could not be written before the traffic started.
    Output(std::io::Error),
    /// A table could not be written once the traffic had started (the
    /// reader went away, as `demo | head` does): the run stopped there,
    /// and here is what it showed until then, for the caller to put where
    /// it can still be read.
    OutputLost {
        /// What the run showed until it stopped.
        summary: Box<Summary>,
        /// Why the table could not be written.
        source: std::io::Error,
    },
    /// The run ended, and here is what it showed, but its files (the CA's
    /// private key among them) could not be removed from `path`: the
    /// reader is told where they are, and the run still fails, since it
    /// left a key behind.
    Leftover {
        /// What the run showed.
        summary: Box<Summary>,
        /// The demo's directory.
        path: std::path::PathBuf,
        /// Why it could not be removed.
        source: std::io::Error,
    },
    /// The `stop` future of [`run`] resolved before every sidecar was
    /// ready: Ctrl-C while a sidecar is still loading its certificate
    /// ends the demo, rather than waiting out the readiness timeout.
    Stopped,
    /// A [`DemoConfig`] field the demo cannot run with: a zero `interval`
    /// or `denied_every`, an `rps` whose request interval rounds to zero
    /// (above a billion), or an `interval`, `denied_every` or `duration`
    /// too long for the clock to add to the time now (such as
    /// [`Duration::MAX`]; `None` is how to run until stopped). Each would
    /// make a timer panic.
    Invalid(&'static str),
}

impl DemoError {
    /// What the run showed, when it ran and failed only after
    /// ([`DemoError::Leftover`]) or lost its output on the way
    /// ([`DemoError::OutputLost`]).
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Self::Leftover { summary, .. } | Self::OutputLost { summary, .. } => Some(summary),
            _ => None,
        }
    }

    /// The admin address a sidecar could not listen on because something
    /// else already does: the one failure that `--admin-port 0`, letting
    /// the system pick the admin ports, cures. `None` for any other
    /// failure, such as a process out of file descriptors, where other
    /// ports would not help, or a port the system was already picking
    /// (on Linux, a system out of ephemeral ports answers "in use" for
    /// port 0 too).
    pub fn taken_admin_port(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Start(
                _,
                StartError::Bind {
                    field,
                    addr,
                    source,
                    ..
                },
            ) if field == "admin.listen"
                && addr.port() != 0
                && source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                Some(*addr)
            }
            _ => None,
        }
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Files(_) => f.write_str("cannot write the demo's files"),
            Self::Certs(_) => f.write_str("cannot issue the demo's certificates"),
            Self::Bind(_) => f.write_str("cannot bind an application's listener"),
            Self::Config(name, _) => write!(f, "{name}'s sidecar configuration was refused"),
            Self::Start(name, _) => write!(f, "cannot start {name}'s sidecar"),
            Self::NotReady(name, _) => write!(f, "{name}'s sidecar did not become ready"),
            Self::SidecarCount(count) => {
                write!(f, "the mesh counted {count} sidecars, not the 4 it started")
            }
            Self::Output(_) | Self::OutputLost { .. } => f.write_str("cannot write the output"),
            Self::Leftover { path, .. } => write!(
                f,
                "the run ended, but cannot remove its files in {}; remove them by hand",
                path.display()
            ),
            Self::Stopped => f.write_str("stopped before the mesh was ready"),
            Self::Invalid(field) => write!(f, "the demo cannot run with this {field}"),
        }
    }
}

impl std::error::Error for DemoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Files(e) | Self::Bind(e) | Self::Output(e) => Some(e),
            Self::Certs(e) => Some(e),
            Self::Config(_, e) => Some(e),
            Self::Start(_, e) => Some(e),
            Self::NotReady(_, e) => Some(e),
            Self::Leftover { source, .. } | Self::OutputLost { source, .. } => Some(source),
            Self::SidecarCount(_) | Self::Stopped | Self::Invalid(_) => None,
        }
    }
}

/// Runs the demo, writing its tables to `out`, until `config.duration` has
/// passed or `stop` resolves (Ctrl-C, say); then shuts everything down,
/// removes the files, and returns what the run showed.
///
/// # Errors
///
/// When `config` holds a value it cannot run with
/// ([`DemoError::Invalid`]), the mesh cannot be set up, `out` cannot be
/// written (once the traffic has started, the run stops there:
/// [`DemoError::OutputLost`], which carries its [`Summary`]), or the files
/// cannot be removed ([`DemoError::Leftover`], which carries the run's
/// [`Summary`] all the same). When
/// the run failed and its files then could not be removed either, the
/// run's error is returned, as the first cause, and the removal's is
/// logged with the directory's path. A mesh that runs but breaks a promise is not an error: see
/// [`Summary::passed`].
pub async fn run<W: Write>(
    config: &DemoConfig,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> Result<Summary, DemoError> {
    if config.interval.is_zero() {
        return Err(DemoError::Invalid("interval"));
    }
    if config.denied_every.is_zero() {
        return Err(DemoError::Invalid("denied_every"));
    }
    if (Duration::from_secs(1) / config.rps.get()).is_zero() {
        return Err(DemoError::Invalid("rps"));
    }
    // The timers add these to the clock's reading, and a tick adds its
    // period once more to schedule the next: past what an `Instant` holds,
    // the addition panics (tokio's `Interval` does not saturate).
    let now = Instant::now();
    let fits = |period: Duration| {
        now.checked_add(period)
            .and_then(|then| then.checked_add(period))
            .is_some()
    };
    if !fits(config.interval) {
        return Err(DemoError::Invalid("interval"));
    }
    if !fits(config.denied_every) {
        return Err(DemoError::Invalid("denied_every"));
    }
    if config.duration.is_some_and(|duration| !fits(duration)) {
        return Err(DemoError::Invalid("duration"));
    }
    let files = MeshFiles::create(&["web", "emoji", "voting", "vote-bot"])?;
    // Every sidecar has stopped, and nothing reads or writes the files,
    // by the time they are removed; a mesh that did not start stopped
    // those it had started.
    let summary = match Mesh::start(&files, config.retries, config.admin_port).await {
        Ok(mesh) => {
            let summary = drive(config, &files, &mesh, out, stop).await;
            mesh.stop().await;
            summary
        }
        Err(error) => Err(error),
    };
    let path = files.path().to_owned();
    finish(summary, files.remove(), path)
}

/// What a run that has stopped returns, given what it showed and whether
/// its files could be removed.
fn finish(
    summary: Result<Summary, DemoError>,
    removal: std::io::Result<()>,
    path: std::path::PathBuf,
) -> Result<Summary, DemoError> {
    match (summary, removal) {
        (summary, Ok(())) => summary,
        (Ok(summary), Err(source)) => Err(DemoError::Leftover {
            summary: Box::new(summary),
            path,
            source,
        }),
        // The run's error is the first cause and is returned; the files
        // left behind (the CA's private key among them) are still said.
        (Err(error), Err(removal)) => {
            tracing::error!(
                path = %path.display(),
                error = %removal,
                "cannot remove the demo's files"
            );
            Err(error)
        }
    }
}

/// Sends the traffic and prints the tables until the run ends.
async fn drive<W: Write>(
    config: &DemoConfig,
    files: &MeshFiles,
    mesh: &Mesh,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> Result<Summary, DemoError> {
    tokio::pin!(stop);
    tokio::select! {
        ready = mesh.ready() => ready?,
        () = &mut stop => return Err(DemoError::Stopped),
    }
    let print = |out: &mut W, text: &str| out.write_all(text.as_bytes()).and_then(|()| out.flush());
    print(
        out,
        &format!(
            "the demo mesh: web, emoji and voting behind sidecars on mutual tls; \
             vote-bot drives web at {rps} requests a second\n\
             files: {files} (certificates, policy.yaml, one sidecar config per workload)\n\
             dashboard: http://{web}/dashboard\n\
             try, with the sidecar CLI (cargo install --locked --path examples --example sidecar):\n\
             \x20 sidecar stat --admin web={web},emoji={emoji},voting={voting}\n\
             \x20 sidecar routes --admin web={web} --to voting\n\
             \x20 sidecar tap --admin {voting} --path /api/vote\n\
             \x20 sidecar check --config {files}/web.yaml\n\
             \x20 curl -s -H 'host: web' http://{bot}/api/list                    \
             # through vote-bot's sidecar\n\
             \x20 curl -si -X POST -H 'host: voting' 'http://{emoji_out}/api/vote?choice=:joy:'   \
             # emoji may not vote: 403\n\n",
            rps = config.rps,
            files = files.path().display(),
            web = mesh.web.admin,
            emoji = mesh.emoji.admin,
            voting = mesh.voting.admin,
            bot = mesh.vote_bot.outbound,
            emoji_out = mesh.emoji.outbound,
        ),
    )
    .map_err(DemoError::Output)?;

    let (stop_traffic, _) = shutdown::channel();
    let load = Arc::new(Outcomes::default());
    let denied = Arc::new(DeniedCounts::default());
    let vote_bot = tokio::spawn(traffic::vote_bot(
        mesh.vote_bot.outbound,
        config.rps.get(),
        stop_traffic.subscribe(),
        load.clone(),
    ));
    let trespass = tokio::spawn(traffic::trespass(
        mesh.emoji.outbound,
        config.denied_every,
        stop_traffic.subscribe(),
        denied.clone(),
    ));

    let start = Instant::now();
    let mut watch = Watch::new(mesh, config.interval);
    let mut frames = tokio::time::interval_at(start + config.interval, config.interval);
    // After a stall (Ctrl-Z then `fg`, a machine that slept), one table
    // over the whole gap, then every interval again: the default, Burst,
    // printed every missed table at once, each over the milliseconds
    // since the one before.
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = async {
        match config.duration {
            Some(duration) => tokio::time::sleep_until(start + duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(end);
    // A table nobody can read ends the run, as the end of its duration
    // would: the traffic stops and the summary is made all the same, for
    // the caller to put on standard error. Returned at once, the run lost
    // its verdict and left the traffic to stop behind it.
    let mut lost = None;
    loop {
        tokio::select! {
            _ = frames.tick() => {
                let frame = watch.frame(start.elapsed(), &mesh.web_calls, &denied).await;
                if let Err(error) = print(out, &format!("{frame}\n")) {
                    lost = Some(error);
                    break;
                }
            }
            () = &mut end => break,
            () = &mut stop => break,
        }
    }

    stop_traffic.trigger();
    let _ = tokio::join!(vote_bot, trespass);
    let summary = watch
        .summary(start.elapsed(), &load, &mesh.web_calls, &denied)
        .await;
    match lost {
        None => Ok(summary),
        Some(source) => Err(DemoError::OutputLost {
            summary: Box::new(summary),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn summary() -> Summary {
        Summary {
            elapsed: Duration::from_secs(10),
            requests: 300,
            request_failures: 0,
            web_calls: 600,
            effective_success: Some(1.0),
            retries: Some(30),
            voting_failures: Some(30),
            tls: vec![("web".into(), Some(1.0))],
            denied_forbidden: 10,
            denied_got_through: 0,
            denied_other: 0,
            breaches: Vec::new(),
        }
    }

    #[test]
    fn a_run_whose_files_stay_keeps_its_summary_and_names_the_files() {
        let path = std::path::PathBuf::from("/tmp/mesh-demo-x");
        let removal = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = finish(Ok(summary()), Err(removal), path).unwrap_err();
        assert_eq!(error.summary(), Some(&summary()));
        let text = error.to_string();
        assert!(text.contains("/tmp/mesh-demo-x"), "{text}");
        assert!(text.contains("cannot remove"), "{text}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("ermission denied"), "{cause}");
    }

    #[test]
    fn a_run_whose_files_go_returns_its_summary() {
        let path = std::path::PathBuf::from("/tmp/mesh-demo-x");
        assert_eq!(finish(Ok(summary()), Ok(()), path).unwrap(), summary());
    }
}
