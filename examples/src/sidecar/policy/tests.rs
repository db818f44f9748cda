use std::{path::Path, sync::Arc};

use mesh_core::client::ClientConfig;
use mesh_metrics::{HttpMetrics, TcpMetrics};
use mesh_retry::RetryMetrics;
use mesh_tls::{CredentialStore, StoreConfig};
use prometheus_client::{encoding::text::encode, registry::Registry};

use mesh_policy::{PolicyMetrics, PolicyStore};

use super::{LoadedTexts, RouteReloads, RoutesWatcher, retry_routes};
use crate::sidecar::config::SidecarConfig;
use crate::sidecar::log::captured::Lines;
use crate::sidecar::outbound::{BackendMetrics, Outbound, OutboundMetrics, ResolveMetrics};

/// A route of `emoji` with a request timeout.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-api}
spec:
  parentRefs: [{kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    timeouts: {request: 5s}
";

fn reloads(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let mut lines: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("outbound_route_reloads_total"))
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// A watcher of `routes` for an outbound service `emoji`, polling every
/// `interval` (a duration in the configuration's words), counting into
/// `registry`.
pub(super) fn watcher(routes: &Path, interval: &str, registry: &mut Registry) -> RoutesWatcher {
    let yaml = format!(
        "outbound:\n  services: [{{name: emoji, endpoints: [127.0.0.1:1]}}]\n\
         policy:\n  files: [{}]\n  watch_interval: {interval}\n",
        routes.display()
    );
    let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let texts = config.policy.sources.read_blocking().unwrap();
    let resources = retry_routes(&texts, &config.policy).unwrap();
    let outbound = Outbound::new(
        &config.outbound,
        &resources,
        &config.policy.workload.namespace,
        &CredentialStore::new(StoreConfig::default()),
        &ClientConfig::default(),
        &OutboundMetrics {
            http: &HttpMetrics::register(registry),
            tcp: &TcpMetrics::register(registry),
            retry: &RetryMetrics::register(registry),
            backend: &BackendMetrics::register(registry),
            resolve: &ResolveMetrics::register(registry),
        },
    )
    .unwrap();
    let reloads = RouteReloads::register(registry);
    let store = PolicyStore::new(
        config.policy.workload.clone(),
        config.policy.config.clone(),
        PolicyMetrics::default(),
    );
    let loaded = LoadedTexts::new(texts, store);
    RoutesWatcher::new(&config.policy, Arc::new(outbound), loaded, reloads).unwrap()
}

#[tokio::test]
async fn routes_caught_between_a_truncation_and_a_write_are_not_put_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, ROUTE).unwrap();
    let mut registry = Registry::default();
    let mut watcher = watcher(&path, "1s", &mut registry);

    // Rewritten in place: empty when a poll reads it, written out while
    // the poll pauses before reading it again.
    std::fs::write(&path, "").unwrap();
    let longer = ROUTE.replace("request: 5s", "request: 10s");
    watcher
        .poll(|| async { std::fs::write(&path, &longer).unwrap() })
        .await;
    // In force, the empty read would have taken the route, its timeout
    // and the service's budget away until the next poll.
    assert_eq!(reloads(&registry), "", "the empty read was put in force");

    watcher.poll(|| async {}).await;
    assert_eq!(
        reloads(&registry),
        "outbound_route_reloads_total{result=\"ok\"} 1"
    );
    // Read again unchanged, the routes in force are not planned again.
    watcher.poll(|| async {}).await;
    assert_eq!(
        reloads(&registry),
        "outbound_route_reloads_total{result=\"ok\"} 1"
    );
}

#[tokio::test]
async fn a_routes_file_still_changing_is_read_again_before_it_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, ROUTE).unwrap();
    let mut registry = Registry::default();
    let mut watcher = watcher(&path, "1s", &mut registry);
    let mut paused = false;
    watcher.poll(|| async { paused = true }).await;
    assert!(!paused, "unchanged files are read once");

    let longer = ROUTE.replace("request: 5s", "request: 10s");
    std::fs::write(&path, &longer).unwrap();
    watcher.poll(|| async { paused = true }).await;
    assert!(paused, "a change is read a second time, after a pause");
    assert_eq!(
        reloads(&registry),
        "outbound_route_reloads_total{result=\"ok\"} 1"
    );
}

#[tokio::test]
async fn routes_are_planned_off_the_thread_that_polls() {
    // The watcher runs on a runtime that serves traffic: planning
    // megabytes of routes there would hold its connections for seconds.
    // The outcome is logged where it was planned, and a subscriber set as
    // this thread's default sees only this thread's events.
    let lines = Lines::default();
    let _default = lines.capture();
    tracing::info!("polling thread");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, ROUTE).unwrap();
    let mut registry = Registry::default();
    let mut watcher = watcher(&path, "1s", &mut registry);
    std::fs::write(&path, ROUTE.replace("request: 5s", "request: 10s")).unwrap();
    watcher.poll(|| async {}).await;
    assert_eq!(
        reloads(&registry),
        "outbound_route_reloads_total{result=\"ok\"} 1"
    );
    let text = lines.text();
    assert!(text.contains("polling thread"), "{text}");
    assert!(
        !text.contains("outbound routes reloaded"),
        "the routes were planned on the thread that polls:\n{text}"
    );
}

/// A Server for port 3307 that says how to serve it.
fn server(protocol: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: db}}
spec:
  podSelector: {{}}
  port: 3307
  proxyProtocol: {protocol}
"
    )
}

#[test]
fn a_reload_that_would_serve_an_inbound_port_otherwise_is_named_once() {
    use mesh_policy::{PolicyConfig, PolicySource, PolicyStore, Workload};

    use super::ProtocolWatch;
    use crate::sidecar::config::{InboundPort, PortProtocol};

    let store = PolicyStore::new(
        Workload::new("default"),
        PolicyConfig::default(),
        mesh_policy::PolicyMetrics::default(),
    );
    let port = InboundPort::new(
        "0.0.0.0:4143".parse().unwrap(),
        "127.0.0.1:3307".parse().unwrap(),
    );
    assert_eq!(port.protocol, PortProtocol::Detect);
    let mut watch = ProtocolWatch::new(store.clone(), &[port]);
    assert!(watch.changes().is_empty());

    // A Server says opaque after start: the port keeps detecting until a
    // restart, and the operator is told.
    let opaque = server("opaque");
    store
        .reload(&[PolicySource::new("p.yaml", &opaque)])
        .unwrap();
    let notes = watch.changes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("127.0.0.1:3307"), "{}", notes[0]);
    assert!(notes[0].contains("opaque"), "{}", notes[0]);
    assert!(notes[0].contains("restart"), "{}", notes[0]);
    // Said once, not at every reload.
    store
        .reload(&[PolicySource::new("p.yaml", &opaque)])
        .unwrap();
    assert!(watch.changes().is_empty());

    // Back to what is served: nothing to say.
    let unknown = server("unknown");
    store
        .reload(&[PolicySource::new("p.yaml", &unknown)])
        .unwrap();
    assert!(watch.changes().is_empty());
    // A Server that says HTTP/1 makes the port HTTP, after a restart.
    let http = server("HTTP/1");
    store.reload(&[PolicySource::new("p.yaml", &http)]).unwrap();
    let notes = watch.changes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains(" as http,"), "{}", notes[0]);
    store
        .reload(&[PolicySource::new("p.yaml", &unknown)])
        .unwrap();
    assert!(watch.changes().is_empty());
    // Said again when it changes again.
    store
        .reload(&[PolicySource::new("p.yaml", &opaque)])
        .unwrap();
    assert_eq!(watch.changes().len(), 1);
}

/// A `Server`'s `proxyProtocol` decides how its port is served, whatever
/// the port's configured protocol, as it supersedes Linkerd's opaque-ports
/// annotation; `unknown`, and no `Server`, leave the port as configured.
#[test]
fn a_servers_protocol_supersedes_the_ports() {
    use mesh_policy::{Policy, PolicyConfig, PolicySource, Workload};

    use super::served_protocol;
    use crate::sidecar::config::{InboundPort, PortProtocol};

    let listen = "0.0.0.0:4143".parse().unwrap();
    let mut port = InboundPort::new(listen, "127.0.0.1:3307".parse().unwrap());
    let other = InboundPort::new(listen, "127.0.0.1:8080".parse().unwrap());
    for configured in [
        PortProtocol::Detect,
        PortProtocol::Opaque,
        PortProtocol::Http,
    ] {
        port.protocol = configured;
        for (declared, served) in [
            ("HTTP/1", PortProtocol::Http),
            ("HTTP/2", PortProtocol::Http),
            ("gRPC", PortProtocol::Http),
            ("opaque", PortProtocol::Opaque),
            ("TLS", PortProtocol::Opaque),
            ("unknown", configured),
        ] {
            let text = server(declared);
            let policy = Policy::compile(
                &[PolicySource::new("p.yaml", &text)],
                &Workload::new("default"),
                &PolicyConfig::default(),
                &mesh_policy::PolicyMetrics::default(),
            )
            .unwrap()
            .policy;
            assert_eq!(
                served_protocol(&policy, &port),
                served,
                "{configured} port, Server says {declared}"
            );
            // A port no Server selects is served as configured.
            assert_eq!(served_protocol(&policy, &other), other.protocol);
        }
    }
}

#[tokio::test]
async fn an_unreadable_file_is_logged_with_why_each_time_the_reason_changes() {
    let lines = Lines::default();
    let _default = lines.capture();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, ROUTE).unwrap();
    let mut registry = Registry::default();
    let mut watcher = watcher(&path, "1s", &mut registry);

    std::fs::remove_file(&path).unwrap();
    let missing = std::fs::read(&path).unwrap_err().to_string();
    watcher.poll(|| async {}).await;
    watcher.poll(|| async {}).await;
    std::fs::create_dir(&path).unwrap();
    let directory = std::fs::read(&path).unwrap_err().to_string();
    watcher.poll(|| async {}).await;

    let text = lines.text();
    for reason in [&missing, &directory] {
        let line = text.lines().find(|l| l.contains(reason.as_str()));
        let line = line.unwrap_or_else(|| panic!("no {reason:?} in:\n{text}"));
        assert!(line.contains(&path.display().to_string()), "{line}");
    }
    // Told once per reason, not at every poll.
    assert_eq!(
        reloads(&registry),
        "outbound_route_reloads_total{result=\"error\"} 2"
    );
}
