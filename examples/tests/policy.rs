//! Authorization through the sidecar, end to end: real sockets, real mutual
//! TLS between sidecars, policy resources from files and inline, and
//! reloads of the files while connections are open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use http::{Request, StatusCode, Version};
use mesh_examples::sidecar::{self, certs, config::SidecarConfig, policy};
use mesh_policy::ExplainQuery;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const VOTING: &str = "spiffe://example.org/ns/emojivoto/sa/voting";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const GUIDE: &str = include_str!("../../mesh-policy/tests/fixtures/guide-policy.yaml");

/// Servers for the application's HTTP port and its opaque TCP port; HTTP
/// is for `web` only, TCP for whatever `tcp_authn` names.
fn emoji_policy(tcp_authn: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: emoji-http, namespace: emojivoto }}
spec:
  podSelector: {{ matchLabels: {{ app: emoji }} }}
  port: http
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: emoji-tcp, namespace: emojivoto }}
spec:
  podSelector: {{ matchLabels: {{ app: emoji }} }}
  port: tcp
  proxyProtocol: opaque
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{ name: web-only, namespace: emojivoto }}
spec:
  identities: [\"{WEB}\"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{ name: loopback, namespace: emojivoto }}
spec:
  networks: [{{ cidr: 127.0.0.0/8 }}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: emoji-http-from-web, namespace: emojivoto }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: emoji-http }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: emoji-tcp-clients, namespace: emojivoto }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: emoji-tcp }}
  requiredAuthenticationRefs:
    - {tcp_authn}
"
    )
}

const TCP_FROM_LOOPBACK: &str =
    "{ group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback }";
const TCP_FROM_WEB: &str =
    "{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only }";

struct Mesh {
    dir: tempfile::TempDir,
    policy_file: PathBuf,
}

impl Mesh {
    fn new(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        certs::create_ca("example.org", &dir.path().join("ca")).unwrap();
        let policy_file = dir.path().join("policy.yaml");
        std::fs::write(&policy_file, policy).unwrap();
        Self { dir, policy_file }
    }

    fn certs(&self, name: &str, identity: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        certs::issue(
            &self.dir.path().join("ca"),
            identity,
            Duration::from_secs(3600),
            &out,
        )
        .unwrap();
        out
    }

    /// The `emoji` workload's sidecar: HTTP to `app`, opaque TCP to `echo`.
    fn emoji_yaml(&self, app: SocketAddr, echo: SocketAddr) -> String {
        format!(
            "identity:\n  dir: {certs}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  ports:\n\
             \x20   - listen: 127.0.0.1:0\n      app: {echo}\n      protocol: opaque\n\
             outbound:\n  listen: 127.0.0.1:0\n\
             admin:\n  listen: 127.0.0.1:0\n\
             server:\n  threads: 2\n\
             policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
             \x20   ports: {{http: {}, tcp: {}}}\n  files: [{}]\n  watch_interval: 100ms\n",
            app.port(),
            echo.port(),
            self.policy_file.display(),
            certs = self.certs("emoji", EMOJI).display(),
        )
    }

    /// The guide's `web` workload's sidecar in front of `app`, denying what
    /// no policy allows; `ports` (YAML lines) adds inbound ports and
    /// `workload` (YAML lines) adds to the policy's workload.
    fn guide_web_yaml(&self, app: SocketAddr, ports: &str, workload: &str) -> String {
        format!(
            "identity:\n  dir: {}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n{ports}\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
             policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: web}}\n{workload}\
             \x20 default_policy: deny\n  files: [{}]\n",
            self.certs("web-svc", WEB).display(),
            self.policy_file.display(),
        )
    }

    /// A client workload's sidecar with identity `identity`, reaching
    /// `emoji` at `endpoint` over mutual TLS.
    fn client_yaml(&self, name: &str, identity: &str, endpoint: SocketAddr) -> String {
        self.client_of(name, identity, endpoint, EMOJI)
    }

    /// A client workload's sidecar with identity `identity`, reaching
    /// `emoji` at `endpoint` over mutual TLS, expecting `server`.
    fn client_of(&self, name: &str, identity: &str, endpoint: SocketAddr, server: &str) -> String {
        format!(
            "identity:\n  dir: {}\n\
             outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: emoji\n      endpoints: [{endpoint}]\n      identity: {server}\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            self.certs(name, identity).display(),
        )
    }
}

async fn echo_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn get(path: &str, version: Version) -> Request<Body> {
    Request::get(format!("http://emoji{path}"))
        .version(version)
        .body(full(""))
        .unwrap()
}

/// An HTTP/1 GET of `path` from `addr`, with `host` as its Host header
/// when given (the authority of the URI otherwise).
async fn http1_get(
    addr: SocketAddr,
    path: &str,
    host: Option<&str>,
) -> http::Response<hyper::body::Incoming> {
    let mut req = Request::get(format!("http://{addr}{path}"));
    if let Some(host) = host {
        req = req.header("host", host);
    }
    http1().request(req.body(full("")).unwrap()).await.unwrap()
}

/// Whether the peer closes `tcp` within 10 seconds: a read returns end of
/// stream or an error instead of data.
async fn closed(tcp: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn an_allowed_identity_gets_200_and_another_gets_403_or_grpc_7() {
    let mesh = Mesh::new(&emoji_policy(TCP_FROM_LOOPBACK));
    let (app, _) = backend().await;
    let emoji = sidecar(&mesh.emoji_yaml(app, echo_backend().await));
    let web = sidecar(&mesh.client_yaml("web", WEB, emoji.inbound[0]));
    let voting = sidecar(&mesh.client_yaml("voting", VOTING, emoji.inbound[0]));

    let res = h2_via(web.outbound, get("/api/list", Version::HTTP_2))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "hello");
    let res = http1_get(voting.outbound, "/api/list", Some("emoji")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().contains_key("mesh-error"));

    // A gRPC caller gets PERMISSION_DENIED in a trailers-only response.
    let grpc = Request::post("http://emoji/emojivoto.v1.EmojiService/ListAll")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(""))
        .unwrap();
    let res = h2_via(voting.outbound, grpc).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "7");

    // A plaintext client straight to the inbound port has no identity.
    let res = http1_get(emoji.inbound[0], "/", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let metrics = scrape(emoji.admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_allow_total{")
                && l.contains("srv_name=\"emoji-http\"")
                && l.contains(
                    "authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",\
                     authz_name=\"emoji-http-from-web\""
                )
                && l.ends_with(" 1")),
        "{metrics}"
    );
    // The request metrics carry the decision's labels, and count only the
    // allowed request: denials have their own counter, below.
    let inbound_responses: Vec<_> = metrics
        .lines()
        .filter(|l| l.starts_with("response_total{") && l.contains("direction=\"inbound\""))
        .collect();
    assert_eq!(inbound_responses.len(), 1, "{metrics}");
    let allowed = inbound_responses[0];
    for label in [
        "srv_name=\"emoji-http\"".to_string(),
        "authz_name=\"emoji-http-from-web\"".to_string(),
        format!("client_id=\"{WEB}\""),
        "status_code=\"200\"".to_string(),
    ] {
        assert!(allowed.contains(&label), "{label} missing from {allowed}");
    }
    assert!(allowed.ends_with(" 1"), "{allowed}");
    // Two denials over mutual TLS (HTTP/1 and gRPC), one over plaintext.
    for (tls, count) in [("true", " 2"), ("no_identity", " 1")] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("inbound_http_authz_deny_total{")
                    && l.contains(&format!(
                        "srv_group=\"policy.linkerd.io\",srv_kind=\"server\",\
                         srv_name=\"emoji-http\",srv_port=\"{}\",route_group=\"\",\
                         route_kind=\"default\",route_name=\"default\",tls=\"",
                        app.port()
                    ))
                    && l.contains(&format!("tls=\"{tls}\""))
                    && l.ends_with(count)),
            "{metrics}"
        );
    }
    for running in [web, voting, emoji] {
        stop(running).await;
    }
}

#[tokio::test]
async fn an_opaque_port_closes_a_connection_the_policy_does_not_allow() {
    let mesh = Mesh::new(&emoji_policy(TCP_FROM_WEB));
    let (app, _) = backend().await;
    let emoji = sidecar(&mesh.emoji_yaml(app, echo_backend().await));
    let mut tcp = tokio::net::TcpStream::connect(emoji.inbound[1])
        .await
        .unwrap();
    // The bytes never reach the application, so nothing is echoed.
    let _ = tcp.write_all(b"ping").await;
    assert!(
        closed(&mut tcp).await,
        "an unauthorized connection stayed open"
    );
    let metrics = scrape(emoji.admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("inbound_tcp_authz_deny_total{") && l.ends_with(" 1")),
        "{metrics}"
    );
    stop(emoji).await;
}

#[tokio::test]
async fn a_reload_to_a_stricter_policy_closes_an_open_opaque_connection() {
    let mesh = Mesh::new(&emoji_policy(TCP_FROM_LOOPBACK));
    let (app, _) = backend().await;
    let emoji = sidecar(&mesh.emoji_yaml(app, echo_backend().await));
    let mut tcp = tokio::net::TcpStream::connect(emoji.inbound[1])
        .await
        .unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    // A file that does not compile changes nothing.
    replace_file(&mesh.policy_file, "kind: Server\nspec: [");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !scrape(emoji.admin)
            .await
            .contains("inbound_policy_reloads_total{result=\"error\"} 1")
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the bad reload is counted");
    tcp.write_all(b"pong").await.unwrap();
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"pong");

    // Loopback clients are no longer allowed: the connection is closed.
    replace_file(&mesh.policy_file, emoji_policy(TCP_FROM_WEB));
    assert!(closed(&mut tcp).await, "the connection outlived the policy");
    let metrics = scrape(emoji.admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("inbound_tcp_authz_terminate_total{") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(metrics.contains("inbound_policy_reloads_total{result=\"ok\"} 1"));
    stop(emoji).await;
}

/// The guide's `web-server-80` Server and `web-server-80-auth`
/// ServerAuthorization, unchanged, in front of an application on port 80
/// (of a loopback address of its own; binding port 80 needs root or
/// `CAP_NET_BIND_SERVICE`, which the test machines have). With `deny` as
/// the default, only they can let a request through.
#[tokio::test]
async fn the_guides_server_and_server_authorization_admit_web_on_port_80() {
    let mesh = Mesh::new(GUIDE);
    let listener = tokio::net::TcpListener::bind("127.0.80.1:80")
        .await
        .expect("binding port 80 needs root or CAP_NET_BIND_SERVICE");
    let app = serve_hello(listener);
    let (other_app, _) = backend().await;
    let yaml = mesh.guide_web_yaml(
        app,
        &format!(
            "  ports:\n    - listen: 127.0.0.1:0\n      app: {other_app}\n      protocol: http\n"
        ),
        "    cluster_networks: [127.0.0.0/8, 10.0.0.0/8]\n",
    );
    // The guide's ServerAuthorization names no networks, so it admits the
    // cluster networks only, as in Linkerd; here the clients are on
    // loopback, so loopback is the cluster.
    let web = sidecar(&yaml);
    let vote_bot = sidecar(&mesh.client_of("vote-bot", VOTING, web.inbound[0], WEB));

    let res = http1_get(vote_bot.outbound, "/api/vote", Some("emoji")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The guide's authorization allows unauthenticated clients too.
    let res = http1_get(web.inbound[0], "/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Any other port falls to the default, deny.
    let res = http1_get(web.inbound[1], "/", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let metrics = scrape(web.admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_allow_total{")
                && l.contains("srv_name=\"web-server-80\"")
                && l.contains("authz_name=\"web-server-80-auth\"")
                && l.contains("tls=\"true\"")),
        "{metrics}"
    );
    stop(vote_bot).await;
    stop(web).await;
}

/// The guide's ServerAuthorization names no networks: under Linkerd's
/// default cluster networks, which do not include loopback, a client on
/// loopback is outside the cluster and is refused, with TLS or without.
#[tokio::test]
async fn the_guides_server_authorization_refuses_a_client_outside_the_cluster_networks() {
    let mesh = Mesh::new(GUIDE);
    let listener = tokio::net::TcpListener::bind("127.0.80.2:80")
        .await
        .expect("binding port 80 needs root or CAP_NET_BIND_SERVICE");
    let app = serve_hello(listener);
    let yaml = mesh.guide_web_yaml(app, "", "");
    let web = sidecar(&yaml);
    let vote_bot = sidecar(&mesh.client_of("vote-bot", VOTING, web.inbound[0], WEB));

    let res = http1_get(web.inbound[0], "/", None).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = http1_get(vote_bot.outbound, "/api/vote", Some("emoji")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    stop(vote_bot).await;
    stop(web).await;
}

/// Answers `hello` on `listener`; returns its address.
fn serve_hello(listener: tokio::net::TcpListener) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    serve(listener, |_req| async {
        Ok(http::Response::new(full("hello")))
    });
    addr
}

#[test]
fn explain_names_the_guides_resources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guide.yaml");
    std::fs::write(&file, GUIDE).unwrap();
    let yaml = format!(
        "policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: web}}\n  files: [{}]\n",
        file.display()
    );
    let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let mut query = ExplainQuery::new(80);
    query.identity = Some(WEB.parse().unwrap());
    query.client_ip = Some("10.0.0.9".parse().unwrap());
    query.uri = "/api/list".parse().unwrap();
    let explanation = policy::explain(&config.policy, &query).unwrap();
    let text = explanation.to_string();
    assert!(
        text.starts_with("decision: allow by web-server-80-auth"),
        "{text}"
    );
    assert!(text.contains("web-server-80"), "{text}");
    // Port 8080 is not the Server's: the default policy decides.
    let explanation = policy::explain(&config.policy, &ExplainQuery::new(8080)).unwrap();
    assert!(explanation.server.contains("default"), "{explanation}");
}

#[test]
fn a_policy_mistake_stops_the_sidecar_from_starting_and_names_its_line() {
    // Inline: the line is the configuration file's.
    let yaml = "admin:\n  listen: 127.0.0.1:0\noutbound:\n  listen: 127.0.0.1:0\n\
                policy:\n  inline: |\n    apiVersion: policy.linkerd.io/v1beta3\n    kind: Server\n\
                \x20   metadata: {name: web}\n    spec:\n      podSelector: {}\n      port: 80\n\
                \x20     proxyProtocol: carrier-pigeon\n";
    let config = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap();
    let error = match sidecar::start(config) {
        Ok(_) => panic!("a bad policy started"),
        Err(error) => error,
    };
    let sidecar::StartError::Policy(error) = error else {
        panic!("{error}");
    };
    assert_eq!(error.line(), Some(13), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(
            "sidecar.yaml: policy.inline: document 1 (Server web): spec.proxyProtocol: "
        ),
        "{text}"
    );
    assert!(text.ends_with("at line 13 column 22"), "{text}");

    // A file: the line is the file's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, GUIDE.replace("port: 80", "port: [80]")).unwrap();
    let yaml = format!("policy:\n  files: [{}]\n", file.display());
    let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let error = policy::compile(&config.policy).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with(&file.display().to_string()), "{text}");
    assert!(text.contains("document 1 (Server web-server-80)"), "{text}");
    assert!(text.contains("spec.port"), "{text}");
    assert_eq!(error.line(), Some(11), "{text}");
}

#[tokio::test]
async fn a_server_that_declares_a_port_opaque_makes_it_opaque() {
    let mesh = Mesh::new(&emoji_policy(TCP_FROM_LOOPBACK));
    let (app, _) = backend().await;
    // The file says http for the echo port; its Server says opaque.
    let yaml = mesh
        .emoji_yaml(app, echo_backend().await)
        .replace("      protocol: opaque\n", "      protocol: http\n");
    assert!(yaml.contains("      protocol: http\n"));
    let emoji = sidecar(&yaml);
    let mut tcp = tokio::net::TcpStream::connect(emoji.inbound[1])
        .await
        .unwrap();
    tcp.write_all(b"\x00not http\r\n").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut echoed))
        .await
        .expect("echoed")
        .unwrap();
    assert_eq!(&echoed, b"\x00not http\r\n");
    drop(tcp);
    stop(emoji).await;
}

/// A Server that declares its port HTTP has it served as HTTP, not left to
/// detection: bytes that are not HTTP are refused, not handed to the
/// application under the connection's authorization, past the Server's
/// routes. The port's configured protocol is detection (the default).
#[tokio::test]
async fn a_server_that_declares_a_port_http_makes_it_http() {
    let policy = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: emoji}}
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  rules: [{matches: [{path: {type: PathPrefix, value: /public}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec:
  networks: [{cidr: 127.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: emoji-http-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: emoji-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}
";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let (app, accepted) = tcp_echo().await;
    let emoji = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{http: {}}}\n  files: [{}]\n",
        app.port(),
        file.display()
    ));
    let inbound = emoji.inbound[0];
    let mut tcp = tokio::net::TcpStream::connect(inbound).await.unwrap();
    tcp.write_all(b"\x00\x01not http\r\n").await.unwrap();
    let mut answer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("neither answered nor closed");
    let answer = &answer[..read.unwrap_or(0)];
    assert!(
        !answer.starts_with(b"\x00\x01"),
        "bytes that are not HTTP were forwarded: {:?}",
        String::from_utf8_lossy(answer)
    );
    // And a request no route matches is answered by the sidecar.
    let answer = raw_exchange(
        inbound,
        "GET /admin HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the application was reached"
    );
    stop(emoji).await;
}

#[test]
fn what_authorization_and_routing_do_not_apply_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in [
        (
            "route.yaml",
            include_str!("../../mesh-retry/tests/fixtures/guide-httproute.yaml"),
        ),
        (
            "profile.yaml",
            include_str!("../../mesh-retry/tests/fixtures/guide-serviceprofile.yaml"),
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        files.push(file.display().to_string());
    }
    let yaml = format!(
        "policy:\n  workload: {{namespace: emojivoto}}\n  files: [{}]\n",
        files.join(", ")
    );
    let config = SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let checked = policy::compile(&config.policy).unwrap();
    let warnings = checked.compiled.warnings.to_string();
    assert!(warnings.contains("ServiceProfile"), "{warnings}");
    let routes: Vec<String> = checked
        .routes
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        routes.iter().any(|w| w.contains("RequestMirror")),
        "{routes:?}"
    );
    // And the routes themselves are read for the emoji service.
    let emoji = checked.routes.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(emoji.routes.len(), 3);
}

/// A Server on the application's port with an open `PathPrefix /` route
/// and an `Exact /admin` route nobody is authorized for.
fn admin_closed(port: u16) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: app, namespace: emojivoto}}
spec: {{podSelector: {{}}, port: {port}}}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: everything, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: app}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /}}}}]}}]
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: admin, namespace: emojivoto}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: app}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /admin}}}}]}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback, namespace: emojivoto}}
spec: {{networks: [{{cidr: 127.0.0.0/8}}]}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: everything-from-loopback, namespace: emojivoto}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: HTTPRoute, name: everything}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
"
    )
}

#[tokio::test]
async fn another_spelling_of_a_closed_path_is_authorized_and_served_as_that_path() {
    // An application that answers with the path it was asked for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        Ok(http::Response::new(full(req.uri().path().to_owned())))
    });
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, admin_closed(app.port())).unwrap();
    let emoji = sidecar(&format!(
        "inbound: {{listen: 127.0.0.1:0, app: {app}, protocol: http}}\n\
         outbound: {{listen: 127.0.0.1:0}}\nadmin: {{listen: 127.0.0.1:0}}\n\
         policy:\n  workload: {{namespace: emojivoto}}\n  files: [{}]\n",
        policy.display()
    ));
    let client = http1();
    let call = |path: &str| {
        let req = Request::get(format!("http://{}{path}", emoji.inbound[0]))
            .body(full(""))
            .unwrap();
        client.request(req)
    };
    let res = call("/api/./list").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "/api/list", "sent on normalized");
    for path in [
        "/admin",
        "//admin",
        "/%61dmin",
        "/api/../admin",
        "/./admin",
        "/%2e%2e/admin",
    ] {
        let res = call(path).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let res = call("/api/%zz").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["mesh-error"], "invalid path");
    stop(emoji).await;
}
