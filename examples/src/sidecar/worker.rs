//! One runtime: its listeners, and the stacks built for them.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use http::uri::Authority;
use hyper::body::Incoming;
use mesh_core::{
    admin::Admin,
    client::ClientConfig,
    conn::{NoTlsReason, Tls},
    error::BoxError,
    proxy::{ConnectTunnel, orig_proto::DowngradeLayer},
    serve::{
        Accept, Accepted, ConnectionLimit, HTTP2_MAX_CONCURRENT_STREAMS,
        HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME, HTTP2_PREMATURE_RESET_TOTAL_STREAMS,
        PerPeerLimit, PlaintextAccept, Protocol, Retirement, Server, ServerConfig, Shutdown,
    },
};
use mesh_metrics::{
    Direction, HttpMetrics, MetricsLayer, TcpAccept, TcpMetrics,
    access_log::{AccessLog, AccessLogLayer},
    tap::{Tap, TapLayer},
    tcp::CountErrors,
    trace::{TraceLayer, Tracer},
};
use mesh_policy::PolicyStore;
use mesh_tls::{ConnectConfig, TlsAccept};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::counter::ConstCounter,
    registry::Registry,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinSet,
};
use tower::Layer;

use super::{
    config::{InboundPort, OutboundConfig, PortProtocol, SidecarConfig},
    inbound,
    outbound::{EgressConnect, EgressSource, NoHttp, Outbound, ResolveConnect, TcpServices},
};

/// What every runtime shares, built once in [`start`](super::start).
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: SidecarConfig,
    pub(super) admin: Admin,
    /// The admin listener's accept hook, with its per-peer limit, made
    /// once so that its refusals can be exported ([`admin_accept`]).
    pub(super) admin_accept: PerPeerLimit<PlaintextAccept>,
    /// The TLS acceptor of the inbound listeners; `None` without an
    /// identity, when they serve plaintext.
    pub(super) tls_accept: Option<TlsAccept>,
    /// The policy in force, shared with its watcher.
    pub(super) policy: PolicyStore,
    /// Each inbound port's protocol: as configured, or opaque when a
    /// `Server` says so.
    pub(super) inbound_protocols: Vec<PortProtocol>,
    /// The outbound services and their routes, shared with the watcher
    /// that reloads the routes.
    pub(super) outbound: Arc<Outbound>,
    /// Request metrics of the inbound listeners, shared so that label
    /// handles are resolved once for the process.
    pub(super) inbound_metrics: MetricsLayer,
    /// The request families, for the answers given outside a metrics
    /// layer: a `CONNECT` tunnel's `502` or `503`.
    pub(super) http_metrics: HttpMetrics,
    /// Transport metrics of every accepted and opened connection.
    pub(super) tcp_metrics: TcpMetrics,
    /// The most connections the proxy listeners (every inbound port and
    /// the outbound listener, on every runtime) serve at once, together:
    /// `server.max_connections`.
    pub(super) connection_limit: ConnectionLimit,
    /// What `/tap` on the admin port watches: every inbound and outbound
    /// request goes through it first.
    pub(super) tap: Tap,
    /// Where inbound requests are logged, when `inbound.access_log` asks.
    pub(super) access_log: Option<AccessLog>,
    /// Where the spans of traced requests go, when `tracing` asks.
    pub(super) tracer: Option<Tracer>,
    pub(super) client: ClientConfig,
}

/// The most connections the admin listener serves at once: probes,
/// scrapes and the dashboard's polls need a handful.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// The most admin connections one peer address holds at once. The admin
/// port listens on every interface, so that the kubelet can probe it:
/// without a share per peer, anyone who can reach it could hold all
/// [`ADMIN_MAX_CONNECTIONS`] idle and leave the probes waiting until the
/// pod is killed. A quarter leaves three quarters to the rest, and still
/// covers the most one address has reason to open: the kubelet's
/// concurrent probes from the node, or, on loopback, a browser's six
/// connections through `kubectl port-forward` beside `sidecar tap`
/// sessions and the dashboard's own scrapes.
const ADMIN_MAX_CONNECTIONS_PER_PEER: usize = ADMIN_MAX_CONNECTIONS / 4;

/// The streams one HTTP/2 connection to the admin port may have open at
/// once. Probes and scrapes need few; at the proxy listeners' 200, one
/// peer's [`ADMIN_MAX_CONNECTIONS_PER_PEER`] connections could each hold
/// 200 `/metrics` answers queued for a client that reads none of them.
/// Linkerd's admin server speaks HTTP/1 only.
const ADMIN_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 8;

/// The admin listener's accept hook: at most
/// [`ADMIN_MAX_CONNECTIONS_PER_PEER`] connections per peer address, its
/// refusals counted in `admin_connections_refused_total` in `registry`.
/// A refusal is logged once per run of them; the counter is what shows a
/// peer that keeps crowding the probes out on a dashboard, or in an alert.
pub(super) fn admin_accept(registry: &mut Registry) -> PerPeerLimit<PlaintextAccept> {
    let accept = ConnectionLimit::per_peer(PlaintextAccept, ADMIN_MAX_CONNECTIONS_PER_PEER);
    registry.register_collector(Box::new(AdminRefusals(accept.clone())));
    accept
}

/// Reads the admin listener's refusals at each scrape: the limit counts
/// them itself, on the path it already takes to refuse.
#[derive(Debug)]
struct AdminRefusals(PerPeerLimit<PlaintextAccept>);

impl Collector for AdminRefusals {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let counter = ConstCounter::new(self.0.refused());
        let metric = encoder.encode_descriptor(
            "admin_connections_refused",
            "Admin connections closed unanswered for coming from a peer address that held its \
             most",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// The longest an admin connection may take to send its first request
/// line: Linkerd's admin server detects HTTP within 1 second. Probes and
/// scrapes send theirs at once; a peer that connects and says nothing
/// gives its place back this soon rather than after `detect_timeout`.
const ADMIN_DETECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest the admin server's own requests may take to finish once
/// it stops, if `server.shutdown_grace` is longer. It stops last, after
/// every data-plane runtime has drained, when only probes and scrapes are
/// left, each answered in well under a second: a whole grace period more
/// would let one stalled `/metrics` reader keep the pod up for twice the
/// grace its owner set.
const ADMIN_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Shared {
    /// The configuration of a proxy listener (inbound or outbound): under
    /// the one connection limit every proxy listener of every runtime
    /// shares.
    fn server_config(&self, protocol: Protocol) -> ServerConfig {
        let tuning = &self.config.server;
        ServerConfig {
            protocol,
            header_read_timeout: tuning.header_read_timeout,
            detect_timeout: tuning.detect_timeout,
            max_connections: tuning.max_connections.get(),
            shared_limit: Some(self.connection_limit.clone()),
            shutdown_grace: tuning.shutdown_grace,
            http2_keep_alive_interval: tuning.http2_keep_alive_interval,
            http2_keep_alive_timeout: tuning.http2_keep_alive_timeout,
            write_stall_timeout: tuning.write_stall_timeout,
            stream_idle_timeout: tuning.stream_idle_timeout,
            max_request_head_bytes: tuning.max_request_head_bytes,
            http2_max_concurrent_streams: HTTP2_MAX_CONCURRENT_STREAMS,
            http2_premature_reset_total_streams: Some(HTTP2_PREMATURE_RESET_TOTAL_STREAMS),
            http2_premature_reset_min_stream_lifetime: HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME,
        }
    }

    /// The admin listener's configuration: a limit of its own, so that
    /// probes and scrapes are answered when traffic holds every place of
    /// the proxy listeners', and a short detection timeout (or the
    /// configured one, if shorter). Each peer's share of the limit is
    /// bounded where the server is made ([`ADMIN_MAX_CONNECTIONS_PER_PEER`]).
    fn admin_config(&self) -> ServerConfig {
        admin_server_config(&self.server_config(Protocol::Http))
    }

    /// The outbound HTTP listener's configuration: see
    /// [`outbound_server_config`].
    fn outbound_config(&self) -> ServerConfig {
        outbound_server_config(&self.server_config(Protocol::Http), &self.config.outbound)
    }
}

/// The outbound HTTP listener's configuration, from the proxy listeners'
/// `proxy` and the `outbound` section: without mesh-core's
/// premature-reset bound (paced rapid reset) when the listener's only
/// client is the pod's own application, which the inbound listeners and
/// the admin listener keep.
///
/// The bound protects a server from clients it does not control; an
/// outbound listener on loopback outside ingress mode has only the pod's
/// own application for a client, which by flooding it would only hurt
/// itself: the calls it costs are its own, made through its own proxy.
/// Kept, it hurts the application when it can least afford it: a gRPC
/// client whose calls carry sub-second deadlines cancels half of them or
/// more within a second when an upstream slows down, which trips the
/// bound, and its channel is sent `GOAWAY` and has to reconnect in the
/// middle of the incident, each time it trips it again. The inbound
/// listeners face other pods, and the admin listener, which serves
/// HTTP/2 too, every interface (for the kubelet's probes): both keep the
/// bound. So does an outbound listener in ingress mode, whose client (an
/// ingress controller) relays clients from outside the cluster and
/// passes their resets on, and one off loopback, which other hosts reach.
fn outbound_server_config(proxy: &ServerConfig, outbound: &OutboundConfig) -> ServerConfig {
    let local_only = !outbound.ingress_mode && outbound.listen.ip().to_canonical().is_loopback();
    ServerConfig {
        http2_premature_reset_total_streams: proxy
            .http2_premature_reset_total_streams
            .filter(|_| !local_only),
        ..proxy.clone()
    }
}

/// The admin listener's configuration, from the proxy listeners' `proxy`.
fn admin_server_config(proxy: &ServerConfig) -> ServerConfig {
    ServerConfig {
        max_connections: ADMIN_MAX_CONNECTIONS,
        shared_limit: None,
        detect_timeout: proxy.detect_timeout.min(ADMIN_DETECT_TIMEOUT),
        shutdown_grace: proxy.shutdown_grace.min(ADMIN_SHUTDOWN_GRACE),
        http2_max_concurrent_streams: ADMIN_HTTP2_MAX_CONCURRENT_STREAMS,
        ..proxy.clone()
    }
}

/// The admin server's thread, with a current-thread runtime of its own.
///
/// The kubelet kills a pod whose `/live` goes unanswered and takes one
/// whose `/ready` does out of its Services: on a data-plane runtime, the
/// probes would wait behind proxied traffic, and a pod that is only busy
/// would be restarted or drained. The other way round, encoding a large
/// `/metrics` would hold that runtime's requests. Linkerd's proxy serves
/// its admin on a thread of its own for both reasons (linkerd2-proxy,
/// `linkerd/app/src/lib.rs`, the `admin` thread). What the admin reads,
/// the readiness gates, the registry and the tap, is shared with the
/// data plane; the server stops on a signal of its own, fired once every
/// data-plane runtime has drained (see `Running`).
pub(super) struct AdminThread {
    pub(super) shared: Arc<Shared>,
    pub(super) listener: std::net::TcpListener,
    pub(super) shutdown: Shutdown,
    /// Tasks that feed what the admin serves (the dashboard's poller):
    /// they end with its runtime.
    pub(super) tasks: Vec<Background>,
}

impl AdminThread {
    /// Builds the admin runtime, tells `started` whether it could (as
    /// [`Worker::run`] does), and serves the admin listener on it until
    /// shutdown has drained it.
    pub(super) fn run(self, started: std::sync::mpsc::SyncSender<std::io::Result<()>>) {
        let Some(runtime) = runtime_for(started) else {
            return;
        };
        run_to_end(runtime, self.serve());
    }

    async fn serve(self) {
        for task in self.tasks {
            tokio::spawn(task);
        }
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "the admin listener cannot be served");
                return;
            }
        };
        let shared = &self.shared;
        let server = Server::new(shared.admin_config()).with_accept(shared.admin_accept.clone());
        server
            .serve_http(listener, shared.admin.clone(), self.shutdown)
            .await;
    }
}

/// A task that runs once per process, on the first runtime.
pub(super) type Background = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A task that must outlive serving, on the first runtime: made from the
/// future that resolves once every runtime's servers have drained, it
/// writes out what their last requests left (spans, access log lines)
/// and then ends, before that runtime does.
pub(super) type Flusher = Box<dyn FnOnce(Background) -> Background + Send>;

/// How long the first runtime waits for its flushers once every runtime
/// has drained: a sink that takes nothing (a collector that hangs, a
/// stderr nobody reads) must not keep the process from exiting.
const FLUSH_BOUND: Duration = Duration::from_secs(10);

/// How long a runtime that has stopped serving waits for the blocking
/// tasks still running on it (see [`run_to_end`]).
const LEFTOVER_BOUND: Duration = Duration::from_secs(1);

/// One thread's share of the proxy listeners. The admin listener is
/// served on a thread of its own ([`AdminThread`]).
pub(super) struct WorkerListeners {
    pub(super) inbound: Vec<std::net::TcpListener>,
    pub(super) outbound: Option<std::net::TcpListener>,
    /// The `outbound.ports` listeners, in configuration order.
    pub(super) outbound_ports: Vec<std::net::TcpListener>,
}

/// One current-thread runtime and what it serves.
pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) shutdown: Shutdown,
    pub(super) background: Vec<Background>,
    /// The flushers, on the first runtime, with the receiver whose
    /// senders are gone once every runtime's servers have drained.
    pub(super) flushers: Option<(Vec<Flusher>, mpsc::Receiver<()>)>,
    /// Dropped once this runtime's servers have drained.
    pub(super) drained: Option<mpsc::Sender<()>>,
}

impl Worker {
    /// Builds this thread's runtime, tells `started` whether it could,
    /// and serves `listeners` on it until shutdown has drained them.
    ///
    /// [`start`](super::start) waits for `started` before it returns: a
    /// sidecar whose runtime could not be built (out of file descriptors)
    /// would close that thread's listeners and serve nothing, its probes
    /// failing, while the process said it had started.
    pub(super) fn run(
        self,
        listeners: WorkerListeners,
        started: std::sync::mpsc::SyncSender<std::io::Result<()>>,
    ) {
        let Some(runtime) = runtime_for(started) else {
            return;
        };
        run_to_end(runtime, self.serve(listeners));
    }

    /// The configuration of a proxy listener: see
    /// [`Shared::server_config`].
    fn server_config(&self, protocol: Protocol) -> ServerConfig {
        self.shared.server_config(protocol)
    }

    async fn serve(mut self, listeners: WorkerListeners) {
        // Background tasks end with the runtime, when serving has drained.
        for task in self.background.drain(..) {
            tokio::spawn(task);
        }
        let drained = self.drained.take();
        let flushes = self.flushers.take().map(start_flushers).unwrap_or_default();
        let shared = self.shared.clone();
        // Built once per runtime; each inbound port makes its own
        // clients for its application from it.
        let client = inbound::AppClient::new(&shared.client, &shared.tcp_metrics);
        let mut servers = JoinSet::new();
        let tokio_listener = |l: std::net::TcpListener| TcpListener::from_std(l);
        // A connect may take the TCP connect timeout and then the TLS
        // handshake's.
        let connect_timeout =
            shared.client.connect_timeout + ConnectConfig::default().handshake_timeout;
        // Egress reads the EgressNetworks of the policy in force.
        let egress: Arc<dyn EgressSource> = Arc::new(shared.policy.clone());
        let tcp = Arc::new(shared.outbound.tcp_services(
            connect_timeout,
            shared.config.server.detect_timeout,
            egress.clone(),
        ));
        let ports = shared.config.inbound.ports().iter();
        for (index, (port, listener)) in ports.zip(listeners.inbound).enumerate() {
            let Ok(listener) = tokio_listener(listener) else {
                continue;
            };
            let protocol = shared.inbound_protocols[index];
            match &shared.tls_accept {
                Some(accept) => {
                    let accept = accept.clone();
                    self.serve_inbound(&mut servers, accept, port, protocol, listener, &client);
                }
                None => {
                    let accept = mesh_core::serve::PlaintextAccept;
                    self.serve_inbound(&mut servers, accept, port, protocol, listener, &client);
                }
            }
        }
        if let Some(Ok(listener)) = listeners.outbound.map(tokio_listener) {
            // A connection whose HTTP fails (its socket, its protocol) is
            // counted in `outbound_tcp_errors_total`, under the address
            // the application connected to.
            let server = Server::new(self.shared.outbound_config())
                .with_accept(self.local_accept())
                .on_connection_error(inbound::connection_errors(
                    &shared.tcp_metrics,
                    Direction::Outbound,
                    None,
                ));
            let (stack, updates) = shared.outbound.stack(&shared.client, egress);
            let targets = {
                let tcp = tcp.clone();
                move |authority: &Authority| tcp.target(authority)
            };
            // A tunnel holds the lease of the connection it came on (the
            // server gives every CONNECT one), so the server drains it,
            // and cuts it at the end of the grace period, like a
            // WebSocket.
            // A tunnel the proxy could not open is answered outside every
            // metrics layer: counted in `outbound_http_errors_total`, as
            // Linkerd counts a failed CONNECT.
            let http_metrics = shared.http_metrics.clone();
            let stack = ConnectTunnel::new(stack, targets).on_error(move |kind, headers, cause| {
                http_metrics.count_outbound_answer(kind, headers, cause)
            });
            // A CONNECT that is egress is tunnelled by its EgressNetwork's
            // TLS and TCP routes, its first bytes read for at most the
            // detection timeout; its failed connects are counted as the
            // tunnel's are.
            let http_metrics = shared.http_metrics.clone();
            let stack = EgressConnect::new(
                stack,
                tcp.clone(),
                shared.config.server.detect_timeout,
                move |kind, headers, cause| {
                    http_metrics.count_outbound_answer(kind, headers, cause)
                },
            );
            // A CONNECT that may be egress has its host looked up first.
            let stack = ResolveConnect::new(stack, tcp.clone());
            let stack = TapLayer::new(&shared.tap, Direction::Outbound).layer(stack);
            let stack = TraceLayer::outbound(shared.tracer.clone()).layer(stack);
            // Ends with the runtime.
            tokio::spawn(updates.run());
            servers.spawn(server.serve_http(listener, stack, self.shutdown.clone()));
        }
        self.serve_outbound_ports(&mut servers, &tcp, listeners.outbound_ports);
        while servers.join_next().await.is_some() {}
        drop(drained);
        if !flushes.is_empty() {
            let all = futures_util::future::join_all(flushes);
            if tokio::time::timeout(FLUSH_BOUND, all).await.is_err() {
                tracing::warn!(
                    bound = ?FLUSH_BOUND,
                    "spans or access log lines were still being written at exit; the rest are lost"
                );
            }
        }
    }

    /// Serves the `outbound.ports` listeners: opaque, each connection
    /// forwarded to the port's service, under the connection limit and
    /// shutdown of the other proxy listeners.
    fn serve_outbound_ports(
        &self,
        servers: &mut JoinSet<()>,
        tcp: &TcpServices,
        listeners: Vec<std::net::TcpListener>,
    ) {
        let ports = self.shared.config.outbound.ports.iter();
        for (index, (port, listener)) in ports.zip(listeners).enumerate() {
            let Ok(listener) = TcpListener::from_std(listener) else {
                continue;
            };
            let Some(forward) = tcp.port(index) else {
                tracing::error!(
                    listen = %port.listen,
                    service = %port.service,
                    "outbound port not served: its service has no endpoint"
                );
                continue;
            };
            let server =
                Server::new(self.server_config(Protocol::Opaque)).with_accept(self.local_accept());
            // A connection that cannot be forwarded (no endpoint, a
            // connect that failed) or whose pipe fails is counted in
            // `outbound_tcp_errors_total`, under the address the
            // application connected to.
            let forward = CountErrors::new(&self.shared.tcp_metrics, Direction::Outbound, forward);
            servers.spawn(server.serve(listener, NoHttp, forward, self.shutdown.clone()));
        }
    }

    /// The accept hook of the outbound listeners, whose peer is the local
    /// application: each connection is counted as one the application
    /// opened (`direction="outbound",peer="src"`), labelled loopback, as
    /// Linkerd labels them (linkerd2-proxy,
    /// `linkerd/app/core/src/transport/labels.rs`: an outbound server's
    /// connections are `NoServerTls::Loopback`).
    fn local_accept(&self) -> TcpAccept<LoopbackAccept> {
        TcpAccept::outbound(&self.shared.tcp_metrics, LoopbackAccept)
    }

    fn serve_inbound<A>(
        &self,
        servers: &mut JoinSet<()>,
        accept: A,
        port: &InboundPort,
        protocol: PortProtocol,
        listener: TcpListener,
        client: &inbound::AppClient<Incoming>,
    ) where
        A: Accept<mesh_metrics::tcp::CountingIo<TcpStream>>,
    {
        let protocol = match protocol {
            PortProtocol::Http => Protocol::Http,
            PortProtocol::Opaque => Protocol::Opaque,
            PortProtocol::Detect => Protocol::Detect,
        };
        // Connections are counted from the first byte, the TLS handshake
        // included, and labelled with the TLS status it settles; those
        // the hook fails, in `inbound_tcp_errors_total` too, and so are
        // those whose detection or HTTP fails (the server tells of them).
        let accept = inbound::CountAcceptErrors::new(
            TcpAccept::inbound(&self.shared.tcp_metrics, accept),
            &self.shared.tcp_metrics,
            listener.local_addr().ok(),
            port.app.port(),
        );
        let http = match inbound::http_stack(
            client.clone(),
            port.app,
            &self.shared.policy,
            &self.shared.inbound_metrics,
            &self.shared.http_metrics,
        ) {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(app = %port.app, %error, "inbound port not served");
                return;
            }
        };
        // HTTP/1.1 requests other sidecars carried as HTTP/2 are turned back
        // first, so that the access log and the tap, like everything after
        // them, see the request the client sent.
        let http = TapLayer::new(&self.shared.tap, Direction::Inbound).layer(http);
        let http = AccessLogLayer::new(self.shared.access_log.clone()).layer(http);
        let http = TraceLayer::inbound(self.shared.tracer.clone()).layer(http);
        let http = DowngradeLayer::new().layer(http);
        let server = Server::new(self.server_config(protocol))
            .with_accept(accept)
            .on_connection_error(inbound::connection_errors(
                &self.shared.tcp_metrics,
                Direction::Inbound,
                Some(port.app.port()),
            ));
        servers.spawn(server.serve(
            listener,
            http,
            inbound::opaque_stack(
                self.shared.client.connect_timeout,
                port.app,
                self.shared.policy.clone(),
                &self.shared.tcp_metrics,
            ),
            self.shutdown.clone(),
        ));
    }
}

/// The [`Accept`] hook of a listener only the local application connects
/// to: plaintext, and the peer is on this host.
#[derive(Clone, Copy, Debug)]
struct LoopbackAccept;

impl<I: mesh_core::io::Io> Accept<I> for LoopbackAccept {
    type Io = I;
    type Future = std::future::Ready<Result<Accepted<I>, BoxError>>;

    fn accept(&self, io: I) -> Self::Future {
        std::future::ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::Loopback),
            alpn: None,
            retire: Retirement::never(),
        }))
    }
}

/// A current-thread runtime, for one worker thread.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Builds this thread's runtime and tells `started` whether it could.
/// The sender is dropped either way: gone, it tells `start` that no word
/// is coming from here, as it learns of a thread that panicked while
/// building its runtime once every other sender is gone too.
fn runtime_for(
    started: std::sync::mpsc::SyncSender<std::io::Result<()>>,
) -> Option<tokio::runtime::Runtime> {
    let (runtime, word) = match runtime() {
        Ok(runtime) => (Some(runtime), Ok(())),
        Err(error) => (None, Err(error)),
    };
    let _ = started.send(word);
    drop(started);
    runtime
}

/// Runs `serve` on `runtime`, the thread's own, until it ends.
fn run_to_end(runtime: tokio::runtime::Runtime, serve: impl Future<Output = ()>) {
    runtime.block_on(serve);
    // Dropped, the runtime would wait for every task on its blocking pool.
    // A DNS lookup is one (the system's resolver blocks), and one whose
    // name server does not answer holds its thread for as long as the
    // resolver retries, tens of seconds, long after the round that asked
    // gave it up: the process would outlive its shutdown by that much,
    // and be killed at the end of the pod's grace period. Serving has
    // ended and the flushers with it, so what is left is given a moment,
    // then left to end with the process.
    runtime.shutdown_timeout(LEFTOVER_BOUND);
}

/// Spawns `flushers`, each stopped once `all_drained` has no sender left.
fn start_flushers(
    (flushers, mut all_drained): (Vec<Flusher>, mpsc::Receiver<()>),
) -> Vec<tokio::task::JoinHandle<()>> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        let _ = all_drained.recv().await;
        let _ = stop.send(true);
    });
    flushers
        .into_iter()
        .map(|flusher| {
            let mut stopped = stopped.clone();
            let stop: Background = Box::pin(async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            });
            tokio::spawn(flusher(stop))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Condvar, Mutex, mpsc};

    use super::*;

    /// A blocking task that runs until released, as a lookup of the
    /// system's resolver runs until its name server answers or it gives up.
    #[derive(Clone, Default)]
    struct Held(Arc<(Mutex<bool>, Condvar)>);

    impl Held {
        fn wait(&self) {
            let (released, wake) = &*self.0;
            let mut released = released.lock().unwrap();
            while !*released {
                released = wake.wait(released).unwrap();
            }
        }

        fn release(&self) {
            *self.0.0.lock().unwrap() = true;
            self.0.1.notify_all();
        }
    }

    #[test]
    fn the_admin_server_drains_for_a_few_seconds_at_most_after_the_proxy() {
        let proxy = |grace| ServerConfig {
            shutdown_grace: grace,
            ..ServerConfig::default()
        };
        let admin = admin_server_config(&proxy(Duration::from_secs(30)));
        assert_eq!(admin.shutdown_grace, ADMIN_SHUTDOWN_GRACE);
        let admin = admin_server_config(&proxy(Duration::from_secs(2)));
        assert_eq!(admin.shutdown_grace, Duration::from_secs(2));
        let admin = admin_server_config(&proxy(Duration::ZERO));
        assert_eq!(admin.shutdown_grace, Duration::ZERO);
        assert_eq!(admin.max_connections, ADMIN_MAX_CONNECTIONS);
    }

    #[test]
    fn only_the_outbound_listener_turns_the_premature_reset_bound_off() {
        let proxy = ServerConfig::default();
        assert!(proxy.http2_premature_reset_total_streams.is_some());
        let outbound = outbound_server_config(&proxy, &OutboundConfig::default());
        assert_eq!(outbound.http2_premature_reset_total_streams, None);
        let v6 = OutboundConfig {
            listen: "[::1]:4140".parse().unwrap(),
            ..OutboundConfig::default()
        };
        let outbound = outbound_server_config(&proxy, &v6);
        assert_eq!(outbound.http2_premature_reset_total_streams, None);
        // A dual-stack socket's name for IPv4 loopback is loopback too.
        let mapped = OutboundConfig {
            listen: "[::ffff:127.0.0.1]:4140".parse().unwrap(),
            ..OutboundConfig::default()
        };
        let outbound = outbound_server_config(&proxy, &mapped);
        assert_eq!(outbound.http2_premature_reset_total_streams, None);
        let admin = admin_server_config(&proxy);
        assert_eq!(
            admin.http2_premature_reset_total_streams,
            proxy.http2_premature_reset_total_streams
        );
    }

    #[test]
    fn an_outbound_listener_whose_clients_are_not_the_local_application_keeps_the_bound() {
        // An ingress controller relays clients from outside the cluster;
        // a listener off loopback takes other hosts' connections.
        let proxy = ServerConfig::default();
        let ingress = OutboundConfig {
            ingress_mode: true,
            ..OutboundConfig::default()
        };
        let exposed = OutboundConfig {
            listen: "0.0.0.0:4140".parse().unwrap(),
            ..OutboundConfig::default()
        };
        let exposed_v6 = OutboundConfig {
            listen: "[::]:4140".parse().unwrap(),
            ..OutboundConfig::default()
        };
        let mapped_exposed = OutboundConfig {
            listen: "[::ffff:10.0.0.7]:4140".parse().unwrap(),
            ..OutboundConfig::default()
        };
        for outbound in [ingress, exposed, exposed_v6, mapped_exposed] {
            let config = outbound_server_config(&proxy, &outbound);
            assert_eq!(
                config.http2_premature_reset_total_streams,
                proxy.http2_premature_reset_total_streams,
                "{outbound:?}"
            );
        }
    }

    #[test]
    fn a_runtime_that_has_drained_does_not_wait_for_a_lookup_left_running() {
        let held = Held::default();
        let (ended, ended_rx) = mpsc::channel();
        let task = held.clone();
        std::thread::spawn(move || {
            run_to_end(runtime().unwrap(), async move {
                // The resolver's task, at shutdown: its lookup was given up
                // (LOOKUP_TIMEOUT), but the thread doing it goes on.
                drop(tokio::task::spawn_blocking(move || task.wait()));
            });
            let _ = ended.send(());
        });
        let result = ended_rx.recv_timeout(Duration::from_secs(3));
        held.release();
        result.expect("the runtime's thread waited for a blocking lookup after serving had ended");
    }
}
