//! `TLSRoute`s and `TCPRoute`s attached to a Service, through a real
//! sidecar: the connections to the service's `outbound.ports` listener
//! and its `CONNECT` tunnels are split between backend services by a
//! `TCPRoute`, or sent where the SNI of their ClientHello says by
//! `TLSRoute`s, as Linkerd 2.17 routes a Service's opaque connections,
//! and counted in `outbound_tcp_route_*` and `outbound_tls_route_*`
//! under the service and its port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicUsize, atomic::Ordering},
};

use mesh_examples::sidecar::Running;
use support::egress::assert_lines;
use support::upstreams::reloaded;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The services of the tests, each an echo server counting what it
/// accepts: `pg` (the parent), `pg-old` and `pg-new` (its backends).
struct Echoes {
    pg: (SocketAddr, Arc<AtomicUsize>),
    old: (SocketAddr, Arc<AtomicUsize>),
    new: (SocketAddr, Arc<AtomicUsize>),
}

async fn echoes() -> Echoes {
    Echoes {
        pg: tcp_echo().await,
        old: tcp_echo().await,
        new: tcp_echo().await,
    }
}

impl Echoes {
    fn accepted(&self) -> [usize; 3] {
        [&self.pg, &self.old, &self.new].map(|(_, n)| n.load(Ordering::SeqCst))
    }
}

/// A plaintext sidecar in `emojivoto` with the services of `echoes` and a
/// TCP port for `pg` (`port` written after `service` when not empty),
/// whose policy file in `dir` is `policy`.
fn routed_sidecar(
    dir: &std::path::Path,
    echoes: &Echoes,
    listen: &str,
    port: &str,
    policy: &str,
) -> (Running, std::path::PathBuf) {
    let service =
        |name: &str, addr: SocketAddr| format!("    - name: {name}\n      endpoints: [{addr}]\n");
    let config = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n{}{}{}\
         \x20 ports:\n    - listen: {listen}\n      service: pg\n{port}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n  detect_timeout: 200ms\n",
        service("pg", echoes.pg.0),
        service("pg-old", echoes.old.0),
        service("pg-new", echoes.new.0),
    );
    support::egress::sidecar(dir, &config, policy)
}

/// `port: 5432` for an `outbound.ports` entry.
const PORT_5432: &str = "      port: 5432\n";

/// A `kind` route `name` of `emojivoto` on service `pg` (port `port`, or
/// every port for 0), with `spec` written before its one rule, to
/// `backends`.
fn route(kind: &str, name: &str, port: u16, spec: &str, backends: &str) -> String {
    let port = if port == 0 {
        String::new()
    } else {
        format!(", port: {port}")
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: {kind}\n\
         metadata: {{name: {name}, namespace: emojivoto}}\n\
         spec:\n{spec}\
         \x20 parentRefs: [{{kind: Service, group: core, name: pg{port}}}]\n\
         \x20 rules: [{{backendRefs: {backends}}}]\n"
    )
}

const HALF_AND_HALF: &str =
    "[{name: pg-old, port: 5432, weight: 50}, {name: pg-new, port: 5432, weight: 50}]";

/// The parent and route labels of route `name` (`kind`) of service `pg` on
/// `port`.
fn labels(port: u16, kind: &str, name: &str) -> String {
    format!(
        "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",\
         parent_name=\"pg\",parent_port=\"{port}\",parent_section_name=\"\",\
         route_group=\"gateway.networking.k8s.io\",route_kind=\"{kind}\",\
         route_namespace=\"emojivoto\",route_name=\"{name}\""
    )
}

/// A `TCPRoute`'s open and close lines for `n` connections closed with
/// `error`.
fn tcp_lines(port: u16, name: &str, n: usize, error: &str) -> [String; 2] {
    let labels = format!(
        "{},target_ip=\"\",target_port=\"{port}\"",
        labels(port, "TCPRoute", name)
    );
    [
        format!("outbound_tcp_route_open_total{{{labels}}} {n}"),
        format!("outbound_tcp_route_close_total{{{labels},error=\"{error}\"}} {n}"),
    ]
}

/// The scrape, once every one of `lines` is in it; fails the test if not.
async fn scraped(admin: SocketAddr, lines: &[String]) -> String {
    let metrics = scrape_until(admin, |m| lines.iter().all(|l| m.lines().any(|x| x == l))).await;
    assert_lines(&metrics, lines);
    metrics
}

/// `ping` through `tcp` and its echo back; then the client's close.
async fn echo_through(mut tcp: TcpStream) {
    tcp.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    tokio::time::timeout(WAIT_BOUND, tcp.read_exact(&mut buf))
        .await
        .expect("no echo")
        .unwrap();
    assert_eq!(&buf, b"ping");
}

/// Whether the sidecar closed `tcp` without sending anything.
async fn closed_unanswered(mut tcp: TcpStream) -> bool {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT_BOUND, tcp.read_to_end(&mut got))
        .await
        .expect("the connection was never closed");
    read.is_err() || got.is_empty()
}

/// The first bytes a rustls client sends for `name`: its ClientHello.
fn client_hello(name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(mesh_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

const N: usize = 40;

#[tokio::test]
async fn a_tcp_route_splits_a_ports_connections_between_two_services_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let policy = route("TCPRoute", "move", 5432, "", HALF_AND_HALF);
    let (running, _) = routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &policy);
    for _ in 0..N {
        let tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
        echo_through(tcp).await;
    }
    scraped(running.admin, &tcp_lines(5432, "move", N, "")).await;
    let [pg, old, new] = echoes.accepted();
    assert_eq!(pg, 0, "the route sends nothing to the parent itself");
    assert_eq!(old + new, N);
    // Each of 40 draws at 50/50 misses one side with a chance of 2^-39.
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    stop(running).await;
}

#[tokio::test]
async fn a_route_on_another_port_leaves_the_port_as_it_was_and_uncounted() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let policy = route("TCPRoute", "move", 6379, "", HALF_AND_HALF);
    let (running, _) = routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &policy);
    let tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
    echo_through(tcp).await;
    assert_eq!(echoes.accepted(), [1, 0, 0]);
    let metrics = scrape(running.admin).await;
    assert!(
        !metrics.contains("outbound_tcp_route_open_total{"),
        "{metrics}"
    );
    stop(running).await;
}

// Without `port`, the listener stands for the port it is bound to.
#[tokio::test]
async fn a_port_entry_without_port_stands_for_its_listeners_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let listen = free_port();
    let backends = "[{name: pg-new, port: 5432}]";
    let policy = route("TCPRoute", "move", listen, "", backends);
    let (running, _) = routed_sidecar(
        dir.path(),
        &echoes,
        &format!("127.0.0.1:{listen}"),
        "",
        &policy,
    );
    let tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
    echo_through(tcp).await;
    scraped(running.admin, &tcp_lines(listen, "move", 1, "")).await;
    assert_eq!(echoes.accepted(), [0, 0, 1]);
    stop(running).await;
}

#[tokio::test]
async fn a_tls_route_takes_a_client_hello_by_its_sni_and_one_no_route_takes_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let policy = [
        route(
            "TLSRoute",
            "to-old",
            5432,
            "  hostnames: [old.pg.test]\n",
            "[{name: pg-old, port: 5432}]",
        ),
        route(
            "TLSRoute",
            "to-new",
            0,
            "  hostnames: ['*.new.test']\n",
            "[{name: pg-new, port: 5432}]",
        ),
    ]
    .join("---\n");
    let (running, _) = routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &policy);
    // The echo sends back what the sidecar read first: the ClientHello,
    // whole, then what follows.
    for (sni, route, accepted) in [
        ("old.pg.test", "to-old", [0, 1, 0]),
        ("a.new.test", "to-new", [0, 1, 1]),
    ] {
        let mut hello = client_hello(sni);
        hello.extend_from_slice(b"after");
        let mut tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
        tcp.write_all(&hello).await.unwrap();
        let mut back = vec![0; hello.len()];
        tokio::time::timeout(WAIT_BOUND, tcp.read_exact(&mut back))
            .await
            .expect("no echo")
            .unwrap();
        assert_eq!(back, hello, "{sni}");
        assert_eq!(echoes.accepted(), accepted, "{sni}");
        drop(tcp);
        let labels = format!("{},hostname=\"\"", labels(5432, "TLSRoute", route));
        scraped(
            running.admin,
            &[
                format!("outbound_tls_route_open_total{{{labels}}} 1"),
                format!("outbound_tls_route_close_total{{{labels},error=\"\"}} 1"),
            ],
        )
        .await;
    }
    // An SNI no route takes, no SNI at all, and bytes that are no TLS:
    // closed, as Linkerd's proxy closes them, and sent nowhere.
    for first in [client_hello("other.test"), b"SELECT 1;\n".to_vec()] {
        let mut tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
        tcp.write_all(&first).await.unwrap();
        assert!(closed_unanswered(tcp).await);
    }
    assert_eq!(echoes.accepted(), [0, 1, 1]);
    let metrics = scrape(running.admin).await;
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("outbound_tls_route_open_total{"))
            .count(),
        2,
        "{metrics}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_connect_to_a_service_with_a_tcp_route_is_split_on_the_connects_port() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let policy = route("TCPRoute", "move", 5432, "", HALF_AND_HALF);
    let (running, _) = routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &policy);
    for _ in 0..N {
        let (tcp, head) = connect_head(running.outbound, "pg:5432").await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        echo_through(tcp).await;
    }
    scraped(running.admin, &tcp_lines(5432, "move", N, "")).await;
    let [pg, old, new] = echoes.accepted();
    assert_eq!((pg, old + new), (0, N));
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    // Another port of the service has no route: tunnelled to the service
    // itself, as before, and not counted under the route.
    let (tcp, head) = connect_head(running.outbound, "pg:6379").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    echo_through(tcp).await;
    assert_eq!(echoes.accepted()[0], 1);
    scraped(running.admin, &tcp_lines(5432, "move", N, "")).await;
    stop(running).await;
}

#[tokio::test]
async fn a_route_whose_backends_all_weigh_zero_closes_the_connection_as_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let backends = "[{name: pg-old, port: 5432, weight: 0}, {name: pg-new, port: 5432, weight: 0}]";
    let policy = route("TCPRoute", "off", 5432, "", backends);
    let (running, _) = routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &policy);
    let mut tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    assert!(closed_unanswered(tcp).await);
    scraped(running.admin, &tcp_lines(5432, "off", 1, "forbidden")).await;
    assert_eq!(echoes.accepted(), [0, 0, 0]);
    stop(running).await;
}

#[tokio::test]
async fn a_bad_route_on_reload_keeps_the_last_good_one_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let to = |name: &str| {
        route(
            "TCPRoute",
            "move",
            5432,
            "",
            &format!("[{{name: {name}, port: 5432}}]"),
        )
    };
    let (running, file) =
        routed_sidecar(dir.path(), &echoes, "127.0.0.1:0", PORT_5432, &to("pg-old"));
    let through = || async {
        let tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
        echo_through(tcp).await;
    };
    through().await;
    assert_eq!(echoes.accepted(), [0, 1, 0]);
    // A Service backend without its port is refused: the routes stay.
    replace_file(
        &file,
        route("TCPRoute", "move", 5432, "", "[{name: pg-new}]"),
    );
    reloaded(running.admin, "error", 1).await;
    through().await;
    assert_eq!(echoes.accepted(), [0, 2, 0]);
    // A good one is put in force.
    replace_file(&file, to("pg-new"));
    reloaded(running.admin, "ok", 1).await;
    through().await;
    assert_eq!(echoes.accepted(), [0, 2, 1]);
    stop(running).await;
}

/// A configuration file in `dir` for service `pg` (at `endpoint`) with a
/// TCP port, whose policy file holds a `TCPRoute` to `pg-gone`, which is
/// no outbound service; and the field the warning names.
fn gone_backend(dir: &std::path::Path, endpoint: SocketAddr) -> (std::path::PathBuf, String) {
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        route(
            "TCPRoute",
            "move",
            5432,
            "",
            "[{name: pg-gone, port: 5432}]",
        ),
    )
    .unwrap();
    let config = dir.join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: pg\n      endpoints: [{endpoint}]\n\
             \x20 ports:\n    - listen: 127.0.0.1:0\n      service: pg\n      port: 5432\n\
             admin:\n  listen: 127.0.0.1:0\n\
             policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
            policy.display()
        ),
    )
    .unwrap();
    let field = format!(
        "{}: document 1 (TCPRoute emojivoto/move): spec.rules[0].backendRefs[0]",
        policy.display()
    );
    (config, field)
}

#[test]
fn check_warns_of_a_connection_routes_backend_that_is_no_outbound_service() {
    let dir = tempfile::tempdir().unwrap();
    let (config, field) = gone_backend(dir.path(), "127.0.0.1:5432".parse().unwrap());
    let (out, passed) = support::upstreams::check(&config);
    assert!(passed, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&field))
        .unwrap_or_else(|| panic!("no warning naming {field} in {out}"));
    assert!(
        line.contains(
            "TCPRoute move sends connections to service pg-gone.emojivoto, which is not in \
             outbound.services; the connections drawn to it are closed"
        ),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_log_warns_of_a_connection_routes_backend_that_is_no_outbound_service() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, _) = tcp_echo().await;
    let (config, field) = gone_backend(dir.path(), endpoint);
    let (mut child, lines) = run_logging(&config, "warn");
    let seen = wait_for(&lines, &field);
    let line = seen.lines().last().unwrap_or_default();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("pg-gone.emojivoto"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}

// A route of a service in another namespace (`pg.other`) names its
// backend `pg-new` without a namespace: the backend is `pg-new` in the
// route's namespace, `other`, not the workload's `pg-new` of
// `emojivoto`, though both are outbound services.
#[tokio::test]
async fn a_backend_of_a_route_in_another_namespace_is_the_service_of_that_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let echoes = echoes().await;
    let service =
        |name: &str, addr: SocketAddr| format!("    - name: {name}\n      endpoints: [{addr}]\n");
    // `pg-new` (of `emojivoto`) comes before `pg-new.other`.
    let config = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n{}{}{}\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: pg.other\n{PORT_5432}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        service("pg.other", echoes.pg.0),
        service("pg-new", echoes.new.0),
        service("pg-new.other", echoes.old.0),
    );
    let policy = "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n\
                  metadata: {name: move, namespace: other}\n\
                  spec:\n  parentRefs: [{kind: Service, group: core, name: pg, port: 5432}]\n\
                  \x20 rules: [{backendRefs: [{name: pg-new, port: 5432}]}]\n";
    let (running, _) = support::egress::sidecar(dir.path(), &config, policy);
    let tcp = TcpStream::connect(running.outbound_ports[0]).await.unwrap();
    echo_through(tcp).await;
    assert_eq!(
        echoes.accepted(),
        [0, 1, 0],
        "[pg.other, pg-new.other, pg-new of emojivoto]"
    );
    stop(running).await;
}
