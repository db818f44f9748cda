//! Starting and stopping the sidecar's runtimes.

use std::{net::SocketAddr, sync::Arc, thread};

use mesh_core::{
    admin::{Admin, Environment, LogLevel, Readiness},
    client::ClientConfig,
    serve::{self, ConnectionLimit, Shutdown, shutdown::ShutdownTrigger},
};
use mesh_metrics::{
    BuildInfo, HttpMetrics, MetricsLayer, TcpMetrics, access_log::AccessLog, dashboard::Dashboard,
    register_process_metrics, tap::Tap, trace::Tracer,
};
use mesh_policy::PolicyMetrics;
use mesh_retry::RetryMetrics;
use mesh_tls::{AcceptConfig, CredentialSource, TlsAccept};
use prometheus_client::registry::Registry;

use super::start_error::StartError;
use super::{
    admin::AdminExtras,
    config::SidecarConfig,
    identity::Identity,
    outbound::{BackendMetrics, Outbound, OutboundMetrics, ResolveMetrics},
    policy::{self, IdentityReads, Reload, RouteReloads, RoutesWatcher},
    worker::{self, AdminThread, Background, Flusher, Shared, Worker, WorkerListeners},
};

/// What a process hands the sidecar besides its configuration.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The process's log filter, served at the admin's `/proxy-log-level`
    /// (see [`log::init`](super::log::init)). Without one, that path
    /// answers 404.
    pub log_level: Option<Arc<dyn LogLevel>>,
}

/// A started sidecar: its bound addresses, and the handle that stops it.
///
/// Dropping it starts a graceful shutdown, as [`Running::shutdown`] does,
/// without waiting for it: the admin server keeps a trigger of its own (for
/// `POST /shutdown`), so without this a dropped handle would leave the
/// sidecar serving for the rest of the process. [`Running::join`] waits.
///
/// The admin server stops last. Through the drain it keeps answering:
/// `/live` 200, `/ready` 503 (`not ready: shutting down`), and `/metrics`,
/// so that a scrape during the drain still sees the requests finishing
/// and what the shutdown cut. Once every data-plane runtime has drained,
/// it stops accepting and drains its own requests. Linkerd's proxy closes
/// its admin listener with its proxy listeners (linkerd2-proxy,
/// `linkerd/app/admin/src/stack.rs` serves it on the same drain signal),
/// so a probe or scrape during its drain is refused.
#[derive(Debug)]
pub struct Running {
    /// The address of each inbound listener, in configuration order.
    pub inbound: Vec<SocketAddr>,
    /// The outbound listener's address.
    pub outbound: SocketAddr,
    /// The address of each `outbound.ports` listener, in configuration
    /// order.
    pub outbound_ports: Vec<SocketAddr>,
    /// The admin listener's address.
    pub admin: SocketAddr,
    trigger: ShutdownTrigger,
    /// Stops the admin server: fired once every data-plane runtime has
    /// drained (see [`admin_stops_after`]).
    admin_trigger: ShutdownTrigger,
    /// Asks for the policy files and the certificate files to be read now.
    reload: Reload,
    /// The data-plane runtimes' threads.
    threads: Vec<thread::JoinHandle<()>>,
    admin_thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    /// Starts a graceful shutdown: listeners close, in-flight requests finish
    /// within the grace period.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// The trigger that shuts the sidecar down; also fired by the admin
    /// server's `POST /shutdown`.
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Reads the policy files now (the authorization policy and the
    /// outbound routes), rather than at the next `policy.watch_interval`,
    /// and puts a change in force or refuses it as a change found by
    /// polling is ([`Reload`]); `sidecar run` asks on SIGHUP. The
    /// identity's certificate files are read now too, rather than at the
    /// next `identity.watch_interval`: a new certificate is in service for
    /// the next handshake, and a bad set is refused, named and counted
    /// while the one in service stays ([`mesh_tls::ReloadHandle`]); an
    /// `identity.ca` directory is read now, and a CA replaced in it issues
    /// the certificate in service at once. Returns whether there are files
    /// to read: without `policy.files` or an identity, nothing is read
    /// again.
    pub fn reload(&self) -> bool {
        self.reload.ask()
    }

    /// A handle that asks what [`Running::reload`] does, from anywhere.
    pub fn reloader(&self) -> Reload {
        self.reload.clone()
    }

    /// A signal that resolves once shutdown has started.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.trigger.subscribe()
    }

    /// Blocks until every runtime has drained and stopped: the data
    /// plane's, then the admin server's.
    pub fn join(mut self) {
        for handle in std::mem::take(&mut self.threads) {
            if handle.join().is_err() {
                tracing::error!("a sidecar runtime panicked");
            }
        }
        // The first runtime fires it once the others have drained; a
        // runtime that panicked may not have, and the admin server must
        // not outlive the data plane for it.
        self.admin_trigger.trigger();
        if let Some(handle) = self.admin_thread.take()
            && handle.join().is_err()
        {
            tracing::error!("the admin runtime panicked");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // After `join`, the runtimes have stopped, and this changes nothing.
        self.trigger.trigger();
    }
}

/// Binds every listener and starts one runtime per thread: one per
/// `server.threads` for the proxy listeners, and one more for the admin
/// server, on a thread of its own so that it answers probes and scrapes
/// however busy the others are.
///
/// Binding happens before this returns, so a taken port is reported here and
/// the returned addresses are ready to connect to. What every runtime
/// shares (the credential store, the TLS client configurations, the metric
/// families) is built here, once.
///
/// # Errors
///
/// When a listener cannot be bound, the identity cannot be issued from its
/// CA directory, or a thread or its runtime cannot start.
pub fn start(config: SidecarConfig) -> Result<Running, StartError> {
    start_with(config, StartOptions::default())
}

/// [`start`], with what the process hands over in `options`.
///
/// # Errors
///
/// As [`start`].
pub fn start_with(config: SidecarConfig, options: StartOptions) -> Result<Running, StartError> {
    start_with_tasks(config, options, Vec::new())
}

/// [`start_with`], with `tasks` run on the first data-plane runtime beside
/// its own background tasks: a test holds that runtime's thread with one.
fn start_with_tasks(
    config: SidecarConfig,
    options: StartOptions,
    tasks: Vec<Background>,
) -> Result<Running, StartError> {
    let threads = match config.server.threads {
        0 => thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let bind = |field: String, addr: SocketAddr, count: usize| {
        serve::bind_reuseport(addr, count).map_err(|source| StartError::Bind {
            field,
            addr,
            source,
            sockets: count,
        })
    };
    let mut inbound = Vec::new();
    for (i, port) in config.inbound.ports().iter().enumerate() {
        inbound.push(bind(
            format!("inbound.ports[{i}].listen"),
            port.listen,
            threads,
        )?);
    }
    let outbound = bind("outbound.listen".into(), config.outbound.listen, threads)?;
    let mut outbound_ports = Vec::new();
    for (i, port) in config.outbound.ports.iter().enumerate() {
        outbound_ports.push(bind(
            format!("outbound.ports[{i}].listen"),
            port.listen,
            threads,
        )?);
    }
    let admin = serve::bind(config.admin.listen).map_err(|source| StartError::Bind {
        field: "admin.listen".into(),
        addr: config.admin.listen,
        source,
        sockets: 1,
    })?;
    let local = |l: &std::net::TcpListener| l.local_addr().unwrap_or(config.admin.listen);
    let inbound_addrs: Vec<SocketAddr> = inbound.iter().map(|ls| local(&ls[0])).collect();
    let outbound_addr = local(&outbound[0]);
    let outbound_port_addrs: Vec<SocketAddr> =
        outbound_ports.iter().map(|ls| local(&ls[0])).collect();
    let admin_addr = local(&admin);

    let (trigger, _) = serve::shutdown::channel();
    let (admin_trigger, _) = serve::shutdown::channel();
    let readiness = Readiness::new();
    // The admin server runs on a thread of its own and may answer before
    // the proxy's runtimes serve: `/ready` waits for them, so that a
    // workload is not sent traffic its sidecar does not yet take.
    let mut serving = readiness.gate("proxy");
    let mut registry = Registry::default();
    let identity = Identity::start(config.identity.as_ref(), &readiness, &mut registry)?;
    let policy = policy::load(&config.policy, PolicyMetrics::register(&mut registry))
        .map_err(StartError::Policy)?;
    let inbound_protocols = config
        .inbound
        .ports()
        .iter()
        // A Server's declared protocol (opaque, or HTTP) decides how its port
        // is served; `unknown`, or no Server, leaves the port's own protocol.
        .map(|port| policy::served_protocol(&policy.store.load(), port))
        .collect();
    let protocol_watch = policy::ProtocolWatch::new(policy.store.clone(), config.inbound.ports());
    let client = ClientConfig::default();
    let http_metrics = HttpMetrics::register(&mut registry);
    let tcp_metrics = TcpMetrics::register(&mut registry);
    register_process_metrics(&mut registry, &BuildInfo::new(env!("CARGO_PKG_VERSION")));
    let route_reloads = RouteReloads::register(&mut registry);
    // The loop guard compares endpoints with the bound addresses: one
    // configured on port 0 has its port only now.
    let outbound_listeners: Vec<SocketAddr> = std::iter::once(outbound_addr)
        .chain(outbound_port_addrs.iter().copied())
        .collect();
    // Egress never reaches the admin and inbound listeners either: it
    // would come to them from loopback.
    let others: Vec<SocketAddr> = inbound_addrs
        .iter()
        .copied()
        .chain(std::iter::once(admin_addr))
        .collect();
    let outbound_plan = Arc::new(Outbound::listening_on(
        &config.outbound,
        &outbound_listeners,
        &others,
        config.identity.is_some(),
        &policy.routes,
        &config.policy.workload.namespace,
        &identity.store,
        &client,
        &OutboundMetrics {
            http: &http_metrics,
            tcp: &tcp_metrics,
            retry: &RetryMetrics::register(&mut registry),
            backend: &BackendMetrics::register(&mut registry),
            resolve: &ResolveMetrics::register(&mut registry),
        },
    )?);
    let routes_watcher = RoutesWatcher::new(
        &config.policy,
        outbound_plan.clone(),
        policy.texts,
        route_reloads,
    );
    let reload = match &routes_watcher {
        Some(_) => Reload::watched(),
        None => Reload::default(),
    };
    let reload = match config.identity.as_ref().map(|identity| &identity.source) {
        Some(CredentialSource::Files { .. }) => reload.with_identity(
            identity.store.reload_handle(),
            IdentityReads::CertificateFiles,
        ),
        Some(CredentialSource::Ca { .. }) => {
            reload.with_identity(identity.store.reload_handle(), IdentityReads::CaDirectory)
        }
        None => reload,
    };
    let routes_watcher =
        routes_watcher.map(|watcher| Box::pin(watcher.run(reload.clone())) as Background);
    let tls_accept = config.identity.as_ref().map(|_| {
        let accept = AcceptConfig {
            mode: config.inbound.tls,
            handshake_timeout: config.server.detect_timeout,
            ..AcceptConfig::default()
        };
        TlsAccept::new(identity.store.clone(), accept)
    });
    let (access_log, access_log_writer) = match config.inbound.access_log {
        Some(format) => {
            let (log, writer) = AccessLog::new(format);
            log.register(&mut registry);
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    // Flushers stop once every runtime has drained (each holds a sender
    // until then), and write what the last requests left: the span
    // exporter sends their spans, the access log writes their lines.
    let mut flushers: Vec<Flusher> = Vec::new();
    let tracer = match &config.tracing {
        Some(tracing) => {
            let (tracer, exporter) =
                Tracer::new(tracing.collector.clone(), tracing.resource.clone());
            tracer.register(&mut registry);
            flushers.push(Box::new(|stop| Box::pin(exporter.run_until(stop))));
            Some(tracer)
        }
        None => None,
    };
    if let Some(writer) = access_log_writer {
        flushers.push(Box::new(|stop| {
            Box::pin(async move {
                if let Err(error) = writer.run_until(tokio::io::stderr(), stop).await {
                    tracing::warn!(%error, "the access log cannot be written; it stops");
                }
            })
        }));
    }
    flushers.push(admin_stops_after(admin_trigger.clone()));
    // A tap never ends by itself: without the signal, one left open would
    // hold the admin server's drain for the whole grace period.
    let tap = Tap::new().with_shutdown(trigger.subscribe());
    tap.register(&mut registry);
    let (drained, all_drained) = tokio::sync::mpsc::channel::<()>(1);
    let mut flushers = Some((flushers, all_drained));
    let admin_accept = worker::admin_accept(&mut registry);
    let mut admin_service = Admin::new(registry, readiness)
        .with_shutdown(trigger.clone())
        .with_env(Environment::process());
    if let Some(level) = options.log_level {
        admin_service = admin_service.with_log_level(level);
    }
    let mut background: Vec<Background> = identity
        .task
        .into_iter()
        .chain([Box::pin(protocol_watch.run()) as Background])
        .chain(routes_watcher)
        .chain(outbound_plan.resolvers())
        .chain(tasks)
        .collect();
    // The dashboard's poller runs beside the admin server, which serves
    // what it gathers: it keeps polling while traffic holds the proxy
    // runtimes, and its parsing of the scrapes does not hold them.
    let mut admin_tasks: Vec<Background> = Vec::new();
    let dashboard = match &config.admin.dashboard {
        Some(dashboard) => {
            let (service, poller) = Dashboard::new(dashboard.dashboard_config(admin_addr))
                .map_err(StartError::Dashboard)?;
            admin_tasks.push(Box::pin(poller.run()));
            Some(service)
        }
        None => None,
    };
    let admin_service = admin_service.with_extension(AdminExtras::new(tap.clone(), dashboard));
    let shared = Arc::new(Shared {
        admin: admin_service,
        admin_accept,
        tls_accept,
        policy: policy.store,
        inbound_protocols,
        outbound: outbound_plan,
        inbound_metrics: MetricsLayer::inbound(&http_metrics),
        http_metrics: http_metrics.clone(),
        tcp_metrics,
        connection_limit: ConnectionLimit::new(config.server.max_connections.get()),
        tap,
        access_log,
        tracer,
        client,
        config,
    });

    let (mut inbound, mut outbound) = (inbound, outbound);
    let mut outbound_ports = outbound_ports;
    let mut handles = Vec::with_capacity(threads + 1);
    let stop = Stop {
        trigger: &trigger,
        admin_trigger: &admin_trigger,
    };
    // Each thread, the admin's included, says whether its runtime could be
    // built; once every one has, the sidecar serves.
    let (started, started_rx) = std::sync::mpsc::sync_channel(threads + 1);
    let admin_thread = AdminThread {
        shared: shared.clone(),
        listener: admin,
        // Not the data plane's: it serves through the drain, and stops
        // once the data plane has drained.
        shutdown: admin_trigger.subscribe(),
        tasks: admin_tasks,
    };
    let admin_started = started.clone();
    let spawned = thread::Builder::new()
        .name("sidecar-admin".into())
        .spawn(move || admin_thread.run(admin_started));
    let admin_handle = match spawned {
        Ok(handle) => handle,
        Err(error) => return Err(abandon(&stop, drained, handles, error)),
    };
    handles.push(admin_handle);
    for index in 0..threads {
        let mine = WorkerListeners {
            inbound: inbound.iter_mut().filter_map(Vec::pop).collect(),
            outbound: outbound.pop(),
            outbound_ports: outbound_ports.iter_mut().filter_map(Vec::pop).collect(),
        };
        let worker = Worker {
            shared: shared.clone(),
            shutdown: trigger.subscribe(),
            // Tasks that run once per process go to the first runtime.
            background: std::mem::take(&mut background),
            flushers: flushers.take(),
            drained: Some(drained.clone()),
        };
        let started = started.clone();
        let spawned = thread::Builder::new()
            .name(format!("sidecar-{index}"))
            .spawn(move || worker.run(mine, started));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(error) => return Err(abandon(&stop, drained, handles, error)),
        }
    }
    drop(started);
    for _ in 0..=threads {
        let error = match started_rx.recv() {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            // Its sender is gone without a word: the thread panicked
            // while building its runtime (tokio's signal driver does when
            // it gets no socket).
            Err(_) => std::io::Error::other("the thread stopped while building its runtime"),
        };
        return Err(abandon(&stop, drained, handles, error));
    }
    // The admin's thread was spawned first.
    let admin_thread = Some(handles.remove(0));
    tracing::info!(
        inbound = ?describe_inbound(&shared.config, &inbound_addrs),
        outbound = %outbound_addr,
        outbound_ports = ?describe_outbound_ports(&shared.config, &outbound_port_addrs),
        admin = %admin_addr,
        threads,
        "sidecar started"
    );
    serving.open();
    Ok(Running {
        inbound: inbound_addrs,
        outbound: outbound_addr,
        outbound_ports: outbound_port_addrs,
        admin: admin_addr,
        trigger,
        admin_trigger,
        reload,
        threads: handles,
        admin_thread,
    })
}

/// The triggers [`abandon`] fires.
struct Stop<'a> {
    trigger: &'a ShutdownTrigger,
    admin_trigger: &'a ShutdownTrigger,
}

/// A flusher that stops the admin server, with `admin_trigger`, once every
/// data-plane runtime has drained: it runs on the first runtime, which
/// waits for its flushers after the others' drain ([`Flusher`]). Until then
/// the admin server answers probes and scrapes through the drain
/// ([`Running`]). Should the first runtime give its flushers up before the
/// others have drained, [`Running::join`] fires it once they have, and a
/// dropped [`Running`] lets go of the last clone, which fires it too.
fn admin_stops_after(admin_trigger: ShutdownTrigger) -> Flusher {
    Box::new(move |drained| {
        Box::pin(async move {
            drained.await;
            admin_trigger.trigger();
        })
    })
}

/// Stops the runtime threads started so far, because another could not
/// start (`error`), and waits for them: their listeners are closed when
/// this returns, so that the caller may bind the same ports again.
fn abandon(
    stop: &Stop<'_>,
    drained: tokio::sync::mpsc::Sender<()>,
    handles: Vec<thread::JoinHandle<()>>,
    error: std::io::Error,
) -> StartError {
    // The admin server too: the first runtime, which would stop it once
    // the others have drained, may be the one that did not start.
    stop.trigger.trigger();
    stop.admin_trigger.trigger();
    // The first runtime's flushers wait until every sender is gone.
    drop(drained);
    for handle in handles {
        let _ = handle.join();
    }
    StartError::Thread(error)
}

fn describe_inbound(config: &SidecarConfig, addrs: &[SocketAddr]) -> Vec<String> {
    config
        .inbound
        .ports()
        .iter()
        .zip(addrs)
        .map(|(port, addr)| format!("{addr}->{}", port.app))
        .collect()
}

fn describe_outbound_ports(config: &SidecarConfig, addrs: &[SocketAddr]) -> Vec<String> {
    config
        .outbound
        .ports
        .iter()
        .zip(addrs)
        .map(|(port, addr)| format!("{addr}->{}", port.service))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpStream,
        sync::mpsc,
        time::Duration,
    };

    use super::*;

    /// How long a probe may go unanswered before the test calls it
    /// unanswered: the bound of a hang, not a measure of speed.
    const HANG: Duration = Duration::from_secs(20);

    /// `GET path` on the admin port over HTTP/1.1, on blocking sockets, so
    /// that no runtime of the test's own answers for the sidecar's.
    fn probe(admin: SocketAddr, path: &str) -> String {
        let mut tcp = TcpStream::connect(admin).unwrap();
        tcp.set_read_timeout(Some(HANG)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer)
            .unwrap_or_else(|error| panic!("{path} was not answered: {error}"));
        answer
    }

    /// A sidecar on one data-plane runtime, configured by `yaml`, whose
    /// thread is held once this returns, until the sender is dropped.
    fn held_sidecar(yaml: &str) -> (Running, mpsc::Sender<()>) {
        let config = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap();
        let (holding, held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        // Blocks its thread, not only its task: nothing else on the one
        // data-plane runtime runs until it is released, as when a request's
        // handling keeps the worker busy.
        let hold: Background = Box::pin(async move {
            let _ = holding.send(());
            let _ = released.recv();
        });
        let running = start_with_tasks(config, StartOptions::default(), vec![hold]).unwrap();
        held.recv_timeout(HANG)
            .expect("the data-plane runtime ran the task that holds it");
        (running, release)
    }

    #[test]
    fn probes_are_answered_while_the_data_plane_runtime_is_held() {
        let (running, release) = held_sidecar(
            "outbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: 127.0.0.1:0\n\
             server:\n  threads: 1\n  shutdown_grace: 0s\n",
        );
        let live = probe(running.admin, "/live");
        let ready = probe(running.admin, "/ready");
        // Let the data plane go before asserting, so that a failure still
        // stops the sidecar.
        drop(release);
        running.shutdown();
        running.join();
        assert!(live.starts_with("HTTP/1.1 200"), "{live}");
        assert!(live.ends_with("live\n"), "{live}");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        assert!(ready.ends_with("ready\n"), "{ready}");
    }

    #[test]
    fn the_dashboard_polls_while_the_data_plane_runtime_is_held() {
        let (running, release) = held_sidecar(
            "outbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: 127.0.0.1:0\n  dashboard:\n    name: web\n\
             server:\n  threads: 1\n  shutdown_grace: 0s\n",
        );
        // The poller's first round starts at once and scrapes this
        // sidecar's own admin server; until it ends, the view counts no
        // round. Each look is a round trip to the admin server, so the
        // bound is one of attempts, far past what one local scrape takes.
        let mut view = String::new();
        for _ in 0..10_000 {
            view = probe(running.admin, "/dashboard/api");
            if !view.contains("\"rounds\":0") {
                break;
            }
        }
        drop(release);
        running.shutdown();
        running.join();
        assert!(view.starts_with("HTTP/1.1 200"), "{view}");
        assert!(
            !view.contains("\"rounds\":0"),
            "no round was polled: {view}"
        );
        assert!(view.contains("\"up\":true"), "{view}");
    }
}
