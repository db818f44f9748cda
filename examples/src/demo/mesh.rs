//! The workloads: each application behind its own sidecar, started in the
//! order their addresses are needed.
//!
//! `voting` and `emoji` come first, since `web`'s sidecar names their
//! inbound listeners as its services' endpoints; `vote-bot`, which drives
//! `web`, comes last. Every listener is on 127.0.0.1 port 0, so the demo
//! never collides with anything already running.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use mesh_core::serve::shutdown::{self, ShutdownTrigger};
use tokio::{net::TcpListener, task::JoinHandle};

use super::{
    DemoError, apps,
    files::{MeshFiles, NAMESPACE, identity},
};
use crate::sidecar::{self, Running, config::SidecarConfig, wait_ready::wait_ready};

/// How long the sidecars may take to load their certificates.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The share of votes `voting` fails.
const VOTE_FAILURE_RATE: f64 = 0.1;

/// The seed of `voting`'s failures: every run draws the same sequence,
/// so the nth vote `voting` counts fails in every run or in none.
const VOTE_FAILURE_SEED: u64 = 0x5eed;

/// The retry policy of `web`'s calls to `voting`: up to 3 attempts on a
/// 5xx, for every method (votes are POSTs, which are retried only when the
/// route says so), within a budget of 20 % more requests plus 10 retries a
/// second (Finagle's and Linkerd's defaults). The budget is what keeps
/// retries from piling load on a `voting` that is down.
const VOTING_RETRIES: &str = "      retry: {attempts: 3, http: 5xx, any_method: true}
      budget: {retry_ratio: 0.2, min_retries_per_second: 10, ttl: 10s}
";

/// The running mesh.
#[derive(Debug)]
pub struct Mesh {
    /// The load generator's sidecar; it calls `web`.
    pub vote_bot: Running,
    /// `web`'s sidecar.
    pub web: Running,
    /// `emoji`'s sidecar.
    pub emoji: Running,
    /// `voting`'s sidecar.
    pub voting: Running,
    /// What `web`'s calls to `emoji` and `voting` got, as `web` saw them.
    pub web_calls: Arc<apps::Outcomes>,
    apps: Vec<JoinHandle<()>>,
    stop_apps: ShutdownTrigger,
}

impl Mesh {
    /// Starts the applications and their sidecars. Without `retries`,
    /// `web`'s calls to `voting` are not retried. `web`'s admin server
    /// listens on `admin_port` and the others on the next three, unless it
    /// is 0.
    ///
    /// # Errors
    ///
    /// When a listener cannot be bound, a configuration is refused or a
    /// sidecar cannot start.
    pub async fn start(
        files: &MeshFiles,
        retries: bool,
        admin_port: u16,
    ) -> Result<Self, DemoError> {
        let admin = |offset: u16| {
            if admin_port == 0 {
                0
            } else {
                admin_port.saturating_add(offset)
            }
        };
        // Every application listener is bound before any sidecar starts,
        // so that a failure from here on is a sidecar's, and stops those
        // already started.
        let (voting_listener, voting_app) = bind().await?;
        let (emoji_listener, emoji_app) = bind().await?;
        let (web_listener, web_app) = bind().await?;
        let (stop_apps, _) = shutdown::channel();
        let web_calls = Arc::new(apps::Outcomes::default());
        let apps = vec![
            tokio::spawn(apps::voting(
                voting_listener,
                VOTE_FAILURE_RATE,
                VOTE_FAILURE_SEED,
                stop_apps.subscribe(),
            )),
            tokio::spawn(apps::emoji(emoji_listener, stop_apps.subscribe())),
        ];
        let mut starting = Starting {
            sidecars: Vec::new(),
            apps,
            stop_apps,
        };

        // The sidecars are kept in `starting` in the order they start:
        // voting, emoji, web, vote-bot.
        let voting = Sidecar::new("voting", Some(voting_app), admin(2));
        let voting = starting.start(files, voting).await?;
        // `emoji` may not call `voting`, but its sidecar knows the way, so
        // that the demo can show the policy refusing it.
        let emoji = Sidecar::new("emoji", Some(emoji_app), admin(1)).service("voting", voting, "");
        let emoji = starting.start(files, emoji).await?;
        // `web`'s admin server also serves the dashboard, over its own
        // sidecar and those of `emoji` and `voting`.
        let web = Sidecar::new("web", Some(web_app), admin(0))
            .service("emoji", emoji, "")
            .service("voting", voting, if retries { VOTING_RETRIES } else { "" })
            .dashboard_peer("emoji", emoji)
            .dashboard_peer("voting", voting);
        let web = starting.start(files, web).await?;
        starting.apps.push(tokio::spawn(apps::web(
            web_listener,
            web.outbound,
            web_calls.clone(),
            starting.stop_apps.subscribe(),
        )));
        let vote_bot = Sidecar::new("vote-bot", None, admin(3)).service("web", web, "");
        starting.start(files, vote_bot).await?;

        let Starting {
            sidecars,
            apps,
            stop_apps,
        } = starting;
        // Four started, so four are here; the error is never returned.
        let [voting, emoji, web, vote_bot] = <[Running; 4]>::try_from(sidecars)
            .map_err(|sidecars| DemoError::SidecarCount(sidecars.len()))?;
        Ok(Self {
            vote_bot,
            web,
            emoji,
            voting,
            web_calls,
            apps,
            stop_apps,
        })
    }

    /// The sidecars with their workload names, in the order they started.
    fn sidecars(&self) -> [(&'static str, &Running); 4] {
        [
            ("voting", &self.voting),
            ("emoji", &self.emoji),
            ("web", &self.web),
            ("vote-bot", &self.vote_bot),
        ]
    }

    /// Waits until every sidecar's `/ready` answers 200: its certificate is
    /// loaded and it can take mTLS traffic.
    ///
    /// # Errors
    ///
    /// [`DemoError::NotReady`] when one is not ready within 10
    /// seconds, one deadline for all four, with its last answer or error.
    pub async fn ready(&self) -> Result<(), DemoError> {
        let admins = self.sidecars().map(|(name, running)| (name, running.admin));
        ready_within(admins, READY_TIMEOUT).await
    }

    /// Shuts every sidecar down and waits until each has drained (the
    /// traffic has stopped by then); then stops the applications.
    pub async fn stop(self) {
        let mut whole = Starting {
            sidecars: vec![self.vote_bot, self.web, self.emoji, self.voting],
            apps: self.apps,
            stop_apps: self.stop_apps,
        };
        whole.abandon().await;
    }
}

/// The addresses of a sidecar that started: what the sidecars started
/// after it need to reach it.
#[derive(Clone, Copy, Debug)]
struct Addrs {
    inbound: Option<SocketAddr>,
    outbound: SocketAddr,
    admin: SocketAddr,
}

/// The part of the mesh started so far; when the rest fails to start, it
/// is stopped, as [`Mesh::stop`] stops a whole mesh: a sidecar whose
/// handle is dropped keeps running, its admin server holding a trigger.
struct Starting {
    sidecars: Vec<Running>,
    apps: Vec<JoinHandle<()>>,
    stop_apps: ShutdownTrigger,
}

impl Starting {
    /// Starts `sidecar`, keeping its handle, and returns its addresses;
    /// when it cannot start, stops everything started so far and returns
    /// the error.
    async fn start(&mut self, files: &MeshFiles, sidecar: Sidecar) -> Result<Addrs, DemoError> {
        match sidecar.start(files) {
            Ok(running) => {
                let addrs = Addrs {
                    inbound: running.inbound.first().copied(),
                    outbound: running.outbound,
                    admin: running.admin,
                };
                self.sidecars.push(running);
                Ok(addrs)
            }
            Err(error) => {
                self.abandon().await;
                Err(error)
            }
        }
    }

    /// Shuts down the sidecars started so far, waits until they have
    /// stopped, then stops the applications.
    async fn abandon(&mut self) {
        let sidecars = std::mem::take(&mut self.sidecars);
        for running in &sidecars {
            running.shutdown();
        }
        let joined =
            tokio::task::spawn_blocking(move || sidecars.into_iter().for_each(Running::join));
        if joined.await.is_err() {
            tracing::error!("a sidecar did not stop cleanly");
        }
        self.stop_apps.trigger();
        for app in self.apps.drain(..) {
            let _ = app.await;
        }
    }
}

/// Waits until each named admin server's `/ready` answers 200, all of
/// them within the one `timeout`, as `sidecar await` does for one: the
/// sidecars start together, so they are asked together, and a mesh that is
/// stuck fails after `timeout` rather than after one `timeout` per sidecar.
/// When one is not ready, the error names the first such in the order
/// given and carries its last answer (`503 not ready: identity`) or why it
/// could not be asked, since "did not become ready" alone leaves the
/// reader to guess.
async fn ready_within(
    admins: impl IntoIterator<Item = (&'static str, SocketAddr)>,
    timeout: Duration,
) -> Result<(), DemoError> {
    let waits = admins.into_iter().map(|(name, admin)| async move {
        wait_ready(admin, timeout)
            .await
            .map_err(|error| DemoError::NotReady(name, error))
    });
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .collect()
}

async fn bind() -> Result<(TcpListener, SocketAddr), DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Bind)?;
    let addr = listener.local_addr().map_err(DemoError::Bind)?;
    Ok((listener, addr))
}

/// One workload's sidecar, as its configuration file will say.
struct Sidecar {
    workload: &'static str,
    /// The application's address; without one, no inbound listener.
    app: Option<SocketAddr>,
    /// The admin server's port on 127.0.0.1; 0 lets the system pick.
    admin_port: u16,
    /// The outbound services: name, the one endpoint, and any settings
    /// after those, as YAML.
    services: Vec<(&'static str, SocketAddr, &'static str)>,
    /// The other sidecars the admin server's dashboard shows; none, no
    /// dashboard.
    dashboard_peers: Vec<(&'static str, SocketAddr)>,
}

impl Sidecar {
    fn new(workload: &'static str, app: Option<SocketAddr>, admin_port: u16) -> Self {
        Self {
            workload,
            app,
            admin_port,
            services: Vec::new(),
            dashboard_peers: Vec::new(),
        }
    }

    /// Routes `name` to the inbound listener of `server`, over mutual TLS.
    fn service(mut self, name: &'static str, server: Addrs, settings: &'static str) -> Self {
        if let Some(inbound) = server.inbound {
            self.services.push((name, inbound, settings));
        }
        self
    }

    /// Shows `peer`, the sidecar of `name`, on the dashboard.
    fn dashboard_peer(mut self, name: &'static str, peer: Addrs) -> Self {
        self.dashboard_peers.push((name, peer.admin));
        self
    }

    /// Writes the configuration to the demo's directory and starts the
    /// sidecar from it, as `sidecar run --config` would, but deaf to the
    /// environment: the demo's four sidecars share one process, and a
    /// `MESH_*_LISTEN_ADDR` or `MESH_INGRESS_MODE` left in the shell would
    /// give them all the same listener or mode.
    fn start(&self, files: &MeshFiles) -> Result<Running, DemoError> {
        let path = files.write_config(self.workload, &self.yaml(files))?;
        let config = SidecarConfig::load_with_env(&path, |_| None)
            .map_err(|e| DemoError::Config(self.workload, e))?;
        sidecar::start(config).map_err(|e| DemoError::Start(self.workload, e))
    }

    /// The configuration: the identity from the workload's certificate
    /// directory; with an `app`, an inbound listener that takes mutual TLS
    /// only, and the mesh's policy; an outbound listener that reaches each
    /// service over mutual TLS, expecting its workload's identity; an admin
    /// server; and one thread.
    fn yaml(&self, files: &MeshFiles) -> String {
        let workload = self.workload;
        let mut yaml = format!(
            "identity:\n  dir: {}\n  identity: {}\n",
            files.certs(workload).display(),
            identity(workload)
        );
        if let Some(app) = self.app {
            yaml += &format!(
                "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  tls: strict\n"
            );
        }
        yaml += "outbound:\n  listen: 127.0.0.1:0\n  services:\n";
        for (name, endpoint, settings) in &self.services {
            let id = identity(name);
            yaml += &format!(
                "    - name: {name}\n      endpoints: [{endpoint}]\n      identity: {id}\n{settings}"
            );
        }
        yaml += &format!("admin:\n  listen: 127.0.0.1:{}\n", self.admin_port);
        if !self.dashboard_peers.is_empty() {
            yaml += &format!("  dashboard:\n    name: {workload}\n    peers:\n");
            for (name, admin) in &self.dashboard_peers {
                yaml += &format!("      - {{name: {name}, admin: {admin}}}\n");
            }
        }
        yaml += "server:\n  threads: 1\n  shutdown_grace: 5s\n";
        if let Some(app) = self.app {
            yaml += &format!(
                "policy:\n  workload:\n    namespace: {NAMESPACE}\n    labels: {{app: {workload}}}\n\
                 \x20   service_account: {workload}\n    ports: {{http: {}}}\n\
                 \x20 default_policy: deny\n  files: [{}]\n",
                app.port(),
                files.policy().display()
            );
        }
        yaml
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers every request with `answer`, raw: an admin
    /// server whose `/ready` says what a sidecar still loading its
    /// certificate says, or a dashboard that is not one.
    pub(in crate::demo) async fn admin_answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// The error and its causes, one line each.
    fn chain(error: &DemoError) -> String {
        let mut text = error.to_string();
        for cause in crate::causes(error) {
            text += &format!("\ncaused by: {cause}");
        }
        text
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sidecar_that_is_not_ready_is_reported_with_its_last_answer() {
        let admin = admin_answering(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\n\
             connection: close\r\n\r\nnot ready: identity\n",
        )
        .await;
        let error = ready_within([("web", admin)], Duration::from_millis(500))
            .await
            .unwrap_err();
        let text = chain(&error);
        assert!(
            text.starts_with("web's sidecar did not become ready"),
            "{text}"
        );
        assert!(text.contains(&admin.to_string()), "{text}");
        assert!(
            text.contains("503 Service Unavailable: not ready: identity"),
            "{text}"
        );
    }

    /// A server that answers every request with what `answer` says then,
    /// raw.
    async fn admin_answering_with(
        answer: impl Fn() -> &'static str + Send + Sync + 'static,
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tcp.write_all(answer().as_bytes()).await;
                });
            }
        });
        addr
    }

    const READY: &str = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\
                         connection: close\r\n\r\nready\n";
    const LOADING: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\n\
                           connection: close\r\n\r\nnot ready: identity\n";

    /// `voting` gets ready only once `emoji`, which never does, has been
    /// asked. Waiting on each in turn, `emoji` would be asked only after
    /// `voting`'s wait, so `voting` would fail; with one deadline for all,
    /// they are asked together and the wait ends with `emoji`'s, after the
    /// one timeout, not two.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sidecars_share_one_deadline() {
        let emoji_asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = emoji_asked.clone();
        let voting = admin_answering_with(move || {
            if asked.load(std::sync::atomic::Ordering::SeqCst) {
                READY
            } else {
                LOADING
            }
        })
        .await;
        let asked = emoji_asked.clone();
        let emoji = admin_answering_with(move || {
            asked.store(true, std::sync::atomic::Ordering::SeqCst);
            LOADING
        })
        .await;
        let error = ready_within(
            [("voting", voting), ("emoji", emoji)],
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        let text = chain(&error);
        assert!(
            text.starts_with("emoji's sidecar did not become ready"),
            "{text}"
        );
        assert!(text.contains(&emoji.to_string()), "{text}");
        assert!(text.contains("within 2s"), "{text}");
    }

    #[test]
    fn a_wrong_count_of_sidecars_says_so() {
        let error = DemoError::SidecarCount(3);
        assert_eq!(
            error.to_string(),
            "the mesh counted 3 sidecars, not the 4 it started"
        );
        assert!(std::error::Error::source(&error).is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sidecar_that_cannot_be_reached_is_reported_with_the_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = listener.local_addr().unwrap();
        drop(listener);
        let error = ready_within([("voting", refused)], Duration::from_millis(300))
            .await
            .unwrap_err();
        let text = chain(&error);
        assert!(
            text.starts_with("voting's sidecar did not become ready"),
            "{text}"
        );
        assert!(text.contains("cannot connect"), "{text}");
    }
}
