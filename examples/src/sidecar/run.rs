//! Starting and stopping the sidecar's runtimes.

use std::{net::SocketAddr, sync::Arc, thread};

use mesh_core::{
    admin::{Admin, Readiness},
    client::{Client, ClientConfig},
    serve::{self, Protocol, Server, ServerConfig, Shutdown, shutdown::ShutdownTrigger},
};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinSet};

use super::{
    config::{PortProtocol, SidecarConfig},
    inbound, outbound,
};

/// A started sidecar: its bound addresses, and the handle that stops it.
#[derive(Debug)]
pub struct Running {
    /// The address of each inbound listener, in configuration order.
    pub inbound: Vec<SocketAddr>,
    /// The outbound listener's address.
    pub outbound: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    trigger: ShutdownTrigger,
    threads: Vec<thread::JoinHandle<()>>,
}

/// The sidecar could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Bind {
        /// The configuration field that names the listener.
        field: String,
        /// The address it asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// A runtime thread could not be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind {
                field,
                addr,
                source,
            } => {
                write!(f, "{field}: cannot listen on {addr}: {source}")
            }
            Self::Thread(_) => f.write_str("cannot start a runtime thread"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } | Self::Thread(source) => Some(source),
        }
    }
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

    /// A signal that resolves once shutdown has started.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.trigger.subscribe()
    }

    /// Blocks until every runtime has drained and stopped.
    pub fn join(self) {
        for handle in self.threads {
            if handle.join().is_err() {
                tracing::error!("a sidecar runtime panicked");
            }
        }
    }
}

/// Binds every listener and starts one runtime per thread.
///
/// Binding happens before this returns, so a taken port is reported here and
/// the returned addresses are ready to connect to.
///
/// # Errors
///
/// When a listener cannot be bound or a thread cannot start.
pub fn start(config: SidecarConfig) -> Result<Running, StartError> {
    let threads = match config.server.threads {
        0 => thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let bind = |field: String, addr: SocketAddr, count: usize| {
        serve::bind_reuseport(addr, count).map_err(|source| StartError::Bind {
            field,
            addr,
            source,
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
    let admin = serve::bind(config.admin.listen).map_err(|source| StartError::Bind {
        field: "admin.listen".into(),
        addr: config.admin.listen,
        source,
    })?;
    let local = |l: &std::net::TcpListener| l.local_addr().unwrap_or(config.admin.listen);
    let inbound_addrs: Vec<SocketAddr> = inbound.iter().map(|ls| local(&ls[0])).collect();
    let outbound_addr = local(&outbound[0]);
    let admin_addr = local(&admin);

    let (trigger, _) = serve::shutdown::channel();
    let (mut inbound, mut outbound, mut admin) = (inbound, outbound, Some(admin));
    let config = Arc::new(config);
    let readiness = Readiness::new();
    let admin_service = Admin::new(Registry::default(), readiness).with_shutdown(trigger.clone());
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let mine = WorkerListeners {
            inbound: inbound.iter_mut().filter_map(Vec::pop).collect(),
            outbound: outbound.pop(),
            admin: admin.take(),
        };
        let worker = Worker {
            config: config.clone(),
            threads,
            admin: admin_service.clone(),
            shutdown: trigger.subscribe(),
        };
        let handle = thread::Builder::new()
            .name(format!("sidecar-{index}"))
            .spawn(move || worker.run(mine))
            .map_err(StartError::Thread)?;
        handles.push(handle);
    }
    tracing::info!(
        inbound = ?describe_inbound(&config, &inbound_addrs),
        outbound = %outbound_addr,
        admin = %admin_addr,
        threads,
        "sidecar started"
    );
    Ok(Running {
        inbound: inbound_addrs,
        outbound: outbound_addr,
        admin: admin_addr,
        trigger,
        threads: handles,
    })
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

struct WorkerListeners {
    inbound: Vec<std::net::TcpListener>,
    outbound: Option<std::net::TcpListener>,
    admin: Option<std::net::TcpListener>,
}

struct Worker {
    config: Arc<SidecarConfig>,
    threads: usize,
    admin: Admin,
    shutdown: Shutdown,
}

impl Worker {
    fn run(self, listeners: WorkerListeners) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(error) => {
                tracing::error!(%error, "cannot build a runtime");
                return;
            }
        };
        runtime.block_on(self.serve(listeners));
    }

    fn server_config(&self, protocol: Protocol) -> ServerConfig {
        let tuning = &self.config.server;
        ServerConfig {
            protocol,
            header_read_timeout: tuning.header_read_timeout,
            detect_timeout: tuning.detect_timeout,
            max_connections: (tuning.max_connections.get() / self.threads).max(1),
            shutdown_grace: tuning.shutdown_grace,
        }
    }

    async fn serve(self, listeners: WorkerListeners) {
        let client_config = ClientConfig::default();
        let client = Client::new(&client_config);
        let mut servers = JoinSet::new();
        let tokio_listener = |l: std::net::TcpListener| TcpListener::from_std(l);
        for (port, listener) in self.config.inbound.ports().iter().zip(listeners.inbound) {
            let Ok(listener) = tokio_listener(listener) else {
                continue;
            };
            let protocol = match port.protocol {
                PortProtocol::Http => Protocol::Http,
                PortProtocol::Opaque => Protocol::Opaque,
                PortProtocol::Detect => Protocol::Detect,
            };
            let server = Server::new(self.server_config(protocol));
            servers.spawn(server.serve(
                listener,
                inbound::http_stack(client.clone(), port.app),
                inbound::opaque_stack(client_config.connect_timeout, port.app),
                self.shutdown.clone(),
            ));
        }
        if let Some(Ok(listener)) = listeners.outbound.map(tokio_listener) {
            let server = Server::new(self.server_config(Protocol::Http));
            let stack = outbound::http_stack(&self.config.outbound, &client);
            servers.spawn(server.serve_http(listener, stack, self.shutdown.clone()));
        }
        if let Some(Ok(listener)) = listeners.admin.map(tokio_listener) {
            let server = Server::new(self.server_config(Protocol::Http));
            servers.spawn(server.serve_http(listener, self.admin.clone(), self.shutdown.clone()));
        }
        while servers.join_next().await.is_some() {}
    }
}
