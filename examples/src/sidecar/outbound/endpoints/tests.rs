use std::{
    collections::HashMap,
    convert::Infallible,
    future::Ready,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use mesh_core::{
    client::ForEndpoint,
    proxy::{Forward, Queue, resolve::EndpointAddr},
};
use prometheus_client::registry::Registry;
use tower::Service;

use super::{FirstAnswers, Queues, ResolveMetrics, ServiceEndpoints};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 8080))
}

fn emoji() -> EndpointAddr {
    EndpointAddr::Name {
        host: "emoji".into(),
        port: 8080,
    }
}

/// A DNS the test writes the answers of; a name without one fails.
#[derive(Clone, Default)]
struct Dns(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl Dns {
    fn answer(&self, host: &str, hosts: &[u8]) {
        self.0.lock().unwrap().insert(host.into(), hosts.to_vec());
    }

    fn fail(&self, host: &str) {
        self.0.lock().unwrap().remove(host);
    }

    fn lookup_now(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match self.0.lock().unwrap().get(host) {
            Some(hosts) => Ok(hosts
                .iter()
                .map(|&i| SocketAddr::from(([10, 0, 0, i], port)))
                .collect()),
            None => Err(io::Error::other("no such name")),
        }
    }

    fn lookup(
        &self,
    ) -> impl FnMut(String, u16) -> Ready<io::Result<Vec<SocketAddr>>> + Send + 'static + use<>
    {
        let dns = self.clone();
        move |host, port| std::future::ready(dns.lookup_now(&host, port))
    }
}

/// A client that answers with the endpoint it was made for, once it
/// agrees with the endpoint the request's URI names.
#[derive(Clone, Debug, Default)]
struct Echo(Option<SocketAddr>);

impl ForEndpoint for Echo {
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self {
        Self(Some(endpoint))
    }
}

impl Service<Request<()>> for Echo {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let endpoint = self.0.expect("called only once made for an endpoint");
        assert_eq!(
            req.uri().authority().unwrap().as_str(),
            endpoint.to_string()
        );
        let res = Response::builder().header("x-endpoint", endpoint.to_string());
        std::future::ready(Ok(res.body(()).unwrap()))
    }
}

fn echo() -> Echo {
    Echo::default()
}

/// Where one request through `forward` goes, or the status it gets.
async fn send(forward: &mut Forward<Echo>) -> Result<String, u16> {
    let res = forward.call(Request::new(())).await.unwrap();
    match res.headers().get("x-endpoint") {
        Some(endpoint) => Ok(endpoint.to_str().unwrap().to_owned()),
        None => Err(res.status().as_u16()),
    }
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn a_changed_answer_moves_every_runtimes_requests_and_a_failed_lookup_keeps_them() {
    let dns = Dns::default();
    dns.answer("emoji", &[1]);
    let mut registry = Registry::default();
    let metrics = ResolveMetrics::register(&mut registry);
    let endpoints =
        ServiceEndpoints::with_lookup("emoji", &[emoji()], None, &metrics, |host, port| {
            dns.lookup_now(host, port)
        });
    // Two runtimes, each with its own set.
    let mut first = endpoints.forward(echo()).unwrap();
    let mut second = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut first).await, Ok("10.0.0.1:8080".into()));

    // The rounds `keep_resolving` runs every interval, one by one.
    let mut resolver = endpoints.lookups(dns.lookup()).unwrap();
    dns.answer("emoji", &[2]);
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(send(&mut first).await, Ok("10.0.0.2:8080".into()));
    assert_eq!(send(&mut second).await, Ok("10.0.0.2:8080".into()));
    // A runtime that starts now starts from the latest answer.
    let mut third = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut third).await, Ok("10.0.0.2:8080".into()));

    dns.fail("emoji");
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(send(&mut first).await, Ok("10.0.0.2:8080".into()));
    dns.answer("emoji", &[]);
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(send(&mut second).await, Ok("10.0.0.2:8080".into()));

    let text = exposition(&registry);
    // At start and after the change; then a failure and an empty answer.
    let success = "outbound_endpoint_resolutions_total{service=\"emoji\",result=\"success\"} 2";
    let failure = "outbound_endpoint_resolutions_total{service=\"emoji\",result=\"failure\"} 2";
    assert!(text.contains(success), "{text}");
    assert!(text.contains(failure), "{text}");
    assert!(
        text.contains("outbound_endpoints{service=\"emoji\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_at_start_answers_503_until_it_does() {
    let dns = Dns::default();
    let metrics = ResolveMetrics::default();
    let endpoints =
        ServiceEndpoints::with_lookup("emoji", &[emoji()], None, &metrics, |host, port| {
            dns.lookup_now(host, port)
        });
    let mut forward = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut forward).await, Err(503));
    let mut resolver = endpoints.lookups(dns.lookup()).unwrap();
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(send(&mut forward).await, Err(503));
    dns.answer("emoji", &[3, 4]);
    endpoints.apply(&resolver.resolve().await);
    let to = send(&mut forward).await.unwrap();
    assert!(to == "10.0.0.3:8080" || to == "10.0.0.4:8080", "{to}");
}

#[tokio::test]
async fn addresses_alone_make_a_fixed_forward_and_no_resolver() {
    let metrics = ResolveMetrics::default();
    let endpoints = Arc::new(ServiceEndpoints::new(
        "emoji",
        &[EndpointAddr::Socket(addr(7))],
        None,
        &metrics,
        &FirstAnswers::default(),
    ));
    assert!(
        endpoints
            .lookups(|_: String, _: u16| std::future::ready(Ok(vec![])))
            .is_none()
    );
    let mut forward = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut forward).await, Ok("10.0.0.7:8080".into()));
    let lookup = |_: String, _: u16| std::future::ready(Ok(vec![addr(8)]));
    assert!(endpoints.resolver(lookup, Duration::from_secs(5)).is_none());
}

/// Where a connection through `forward` would go: its connector refuses
/// every connect, and the error names the endpoint picked.
async fn connect_to<C>(forward: &mut mesh_core::proxy::ForwardTcp<C>) -> Result<String, String>
where
    C: Service<http::Uri, Response = hyper_util::rt::TokioIo<tokio::io::DuplexStream>> + Clone,
    C::Error: Into<mesh_core::BoxError>,
{
    use tower::ServiceExt;
    let (client, server) = tokio::io::duplex(64);
    drop(client);
    let conn = mesh_core::serve::OpaqueConnection {
        io: Box::new(server),
        info: mesh_core::ConnectionInfo::plaintext(addr(99), addr(99)),
    };
    let error = forward.ready().await.unwrap().call(conn).await.unwrap_err();
    match error.downcast_ref::<mesh_core::proxy::ConnectFailed>() {
        Some(failed) => Ok(failed.endpoint().to_string()),
        None => Err(error.to_string()),
    }
}

#[tokio::test]
async fn tcp_connections_follow_the_names_answers_like_requests() {
    let dns = Dns::default();
    let metrics = ResolveMetrics::default();
    let endpoints =
        ServiceEndpoints::with_lookup("db", &[emoji()], None, &metrics, |host, port| {
            dns.lookup_now(host, port)
        })
        .with_queues(Queues {
            tcp: Queue::new(10, Duration::ZERO),
            ..Queues::default()
        });
    let refuse = tower::service_fn(|_: http::Uri| async {
        Err::<hyper_util::rt::TokioIo<tokio::io::DuplexStream>, _>(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        ))
    });
    let mut forward = endpoints.forward_tcp(refuse).unwrap();
    // Not resolved yet: closed, no connect tried (at once, as the TCP
    // queue waits for nothing here: its zero fail-fast timeout has passed,
    // and the connection fails fast).
    assert_eq!(
        connect_to(&mut forward).await,
        Err("service in fail-fast".into())
    );
    let mut resolver = endpoints.lookups(dns.lookup()).unwrap();
    dns.answer("emoji", &[1]);
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(connect_to(&mut forward).await, Ok("10.0.0.1:8080".into()));
    dns.answer("emoji", &[2]);
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(connect_to(&mut forward).await, Ok("10.0.0.2:8080".into()));
    // The HTTP forwarder of the same runtime is kept current alongside.
    let mut http = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut http).await, Ok("10.0.0.2:8080".into()));
}

/// The line of `family` for `service` in `state`, without its value.
fn balancer_line(family: &str, service: &str, state: &str) -> String {
    format!("{family}{{service=\"{service}\",endpoint_state=\"{state}\"}} ")
}

/// The value of `family` for `service` in `state`.
fn balancer_gauge(text: &str, family: &str, service: &str, state: &str) -> Option<i64> {
    let line = balancer_line(family, service, state);
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn balancer_gauges_count_each_endpoint_once_whatever_the_runtimes_and_follow_answers() {
    const HTTP: &str = "outbound_http_balancer_endpoints";
    const TCP: &str = "outbound_tcp_balancer_endpoints";
    let dns = Dns::default();
    dns.answer("emoji", &[1, 2]);
    let mut registry = Registry::default();
    let metrics = ResolveMetrics::register(&mut registry);
    let emoji = ServiceEndpoints::with_lookup("emoji", &[emoji()], None, &metrics, |host, port| {
        dns.lookup_now(host, port)
    });
    let web = ServiceEndpoints::new(
        "web",
        &[EndpointAddr::Socket(addr(7))],
        None,
        &metrics,
        &FirstAnswers::default(),
    );
    let refuse = || {
        tower::service_fn(|_: http::Uri| async {
            Err::<hyper_util::rt::TokioIo<tokio::io::DuplexStream>, io::Error>(
                io::ErrorKind::ConnectionRefused.into(),
            )
        })
    };
    // Three runtimes, each with its HTTP and TCP balancers of each service.
    let runtimes: Vec<_> = (0..3)
        .map(|_| {
            (
                emoji.forward(echo()).unwrap(),
                emoji.forward_tcp(refuse()).unwrap(),
                web.forward(echo()).unwrap(),
                web.forward_tcp(refuse()).unwrap(),
            )
        })
        .collect();
    let text = exposition(&registry);
    for family in [HTTP, TCP] {
        assert_eq!(
            balancer_gauge(&text, family, "emoji", "ready"),
            Some(2),
            "{text}"
        );
        assert_eq!(
            balancer_gauge(&text, family, "emoji", "failing"),
            Some(0),
            "{text}"
        );
        assert_eq!(
            balancer_gauge(&text, family, "emoji", "probing"),
            Some(0),
            "{text}"
        );
        assert_eq!(
            balancer_gauge(&text, family, "web", "ready"),
            Some(1),
            "{text}"
        );
    }

    let mut resolver = emoji.lookups(dns.lookup()).unwrap();
    dns.answer("emoji", &[1, 2, 3]);
    emoji.apply(&resolver.resolve().await);
    let text = exposition(&registry);
    for family in [HTTP, TCP] {
        assert_eq!(
            balancer_gauge(&text, family, "emoji", "ready"),
            Some(3),
            "{text}"
        );
    }
    assert!(
        text.contains("outbound_endpoints{service=\"emoji\"} 3"),
        "{text}"
    );
    dns.answer("emoji", &[3]);
    emoji.apply(&resolver.resolve().await);
    let text = exposition(&registry);
    assert_eq!(
        balancer_gauge(&text, HTTP, "emoji", "ready"),
        Some(1),
        "{text}"
    );

    // Once the runtimes are gone, the fixed balancers are no longer
    // reported; the sets the resolver keeps updating still are.
    drop(runtimes);
    let text = exposition(&registry);
    assert_eq!(balancer_gauge(&text, HTTP, "web", "ready"), None, "{text}");
    assert_eq!(
        balancer_gauge(&text, HTTP, "emoji", "ready"),
        Some(1),
        "{text}"
    );
}

#[tokio::test]
async fn the_sidecars_own_listener_is_never_an_endpoint_whatever_the_dns_says() {
    let dns = Dns::default();
    dns.answer("emoji", &[9, 1]);
    let metrics = ResolveMetrics::default();
    let endpoints =
        ServiceEndpoints::with_lookup("emoji", &[emoji()], None, &metrics, |host, port| {
            dns.lookup_now(host, port)
        })
        .without_listeners(&[addr(9)]);
    let mut forward = endpoints.forward(echo()).unwrap();
    for _ in 0..8 {
        assert_eq!(send(&mut forward).await, Ok("10.0.0.1:8080".into()));
    }
    // An answer of nothing but the listener is no answer: the last good
    // one stays.
    let mut resolver = endpoints.lookups(dns.lookup()).unwrap();
    dns.answer("emoji", &[9]);
    endpoints.apply(&resolver.resolve().await);
    assert_eq!(send(&mut forward).await, Ok("10.0.0.1:8080".into()));
    dns.answer("emoji", &[2, 9]);
    endpoints.apply(&resolver.resolve().await);
    for _ in 0..8 {
        assert_eq!(send(&mut forward).await, Ok("10.0.0.2:8080".into()));
    }

    // Fixed addresses that are all the listener: the mesh's 503.
    let fixed = ServiceEndpoints::new(
        "web",
        &[EndpointAddr::Socket(addr(9))],
        None,
        &metrics,
        &FirstAnswers::default(),
    )
    .without_listeners(&[addr(9)]);
    let mut forward = fixed.forward(echo()).unwrap();
    assert_eq!(send(&mut forward).await, Err(503));
}

/// A name server that never answers for names starting `hung`, until
/// released; other names answer 10.0.0.1.
#[derive(Clone, Default)]
struct Hung(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Hung {
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if host.starts_with("hung") {
            let (released, wake) = &*self.0;
            let mut released = released.lock().unwrap();
            while !*released {
                released = wake.wait(released).unwrap();
            }
            return Err(io::Error::other("answered too late"));
        }
        Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))])
    }

    fn release(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

struct ReleaseOnDrop(Hung);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[tokio::test]
async fn a_name_whose_server_never_answers_holds_up_neither_the_start_nor_the_other_names() {
    let hung = Hung::default();
    let name = |host: &str| EndpointAddr::Name {
        host: host.into(),
        port: 8080,
    };
    // Names of several services, as the sidecar looks them up at start.
    let endpoints = [
        name("hung-a"),
        name("hung-b"),
        name("emoji"),
        name("hung-c"),
        name("web"),
    ];
    let (done, answered) = std::sync::mpsc::channel();
    let dns = hung.clone();
    std::thread::spawn(move || {
        let first =
            FirstAnswers::with_lookup(&endpoints, Duration::from_millis(100), move |h, p| {
                dns.lookup(h, p)
            });
        let _ = done.send(first);
    });
    let first = answered.recv_timeout(Duration::from_secs(3));
    hung.release();
    let first = first.expect("the start waited for a name server that never answers");
    assert_eq!(first.answer("emoji", 8080).unwrap(), [addr(1)]);
    assert_eq!(first.answer("web", 8080).unwrap(), [addr(1)]);
    let late = first.answer("hung-b", 8080).unwrap_err();
    assert_eq!(late.kind(), io::ErrorKind::TimedOut, "{late}");

    // The service starts from the names that answered; the others are
    // the resolver's to look up again.
    let metrics = ResolveMetrics::default();
    let endpoints = ServiceEndpoints::new(
        "emoji",
        &[name("hung-a"), name("emoji")],
        None,
        &metrics,
        &first,
    );
    let mut forward = endpoints.forward(echo()).unwrap();
    assert_eq!(send(&mut forward).await, Ok("10.0.0.1:8080".into()));
    assert!(endpoints.lookups(dns_never()).is_some());
}

fn dns_never() -> impl FnMut(String, u16) -> Ready<io::Result<Vec<SocketAddr>>> {
    |_, _| std::future::ready(Err(io::Error::other("not asked")))
}

#[tokio::test]
async fn a_name_whose_last_lookup_has_not_answered_is_not_looked_up_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::FutureExt;

    let hung = Hung::default();
    // Released however the test ends: the runtime waits for its blocking
    // tasks when it is dropped.
    let _release = ReleaseOnDrop(hung.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let dns = hung.clone();
    let counted = calls.clone();
    let mut lookup = super::lookup::one_at_a_time(move |host: &str, port| {
        counted.fetch_add(1, Ordering::SeqCst);
        if host == "boom" {
            panic!("a lookup that panics");
        }
        dns.lookup(host, port)
    });
    // A round gives the lookup up (LOOKUP_TIMEOUT), but its thread goes on.
    let given_up = lookup("hung-a".into(), 8080);
    assert!(given_up.now_or_never().is_none());
    // The next rounds find it still running, and start no other.
    for _ in 0..3 {
        let again = lookup("hung-a".into(), 8080).now_or_never();
        let again = again
            .expect("a second lookup of the name waits too")
            .unwrap_err();
        assert!(again.to_string().contains("hung-a"), "{again}");
    }
    // The blocking pool starts the first one in its own time.
    for _ in 0..1_000_000 {
        if calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Other names are looked up meanwhile.
    assert_eq!(lookup("emoji".into(), 8080).await.unwrap(), [addr(1)]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Once it has answered, the name is looked up again.
    hung.release();
    let mut again = Err(io::Error::other("not looked up"));
    for _ in 0..100_000 {
        again = lookup("hung-a".into(), 8080).await;
        if calls.load(Ordering::SeqCst) == 3 {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "{again:?}");

    // A lookup that panics does not keep its name from the next rounds.
    assert!(lookup("boom".into(), 8080).await.is_err());
    assert!(lookup("boom".into(), 8080).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}
