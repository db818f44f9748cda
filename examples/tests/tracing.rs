//! `tracing`: two sidecars join the trace a request carries, each as a
//! span of its own, and report them to an OpenTelemetry collector over
//! OTLP/HTTP; the application is the inbound sidecar's child.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mesh_examples::sidecar::config::SidecarConfig;
use serde_json::Value;
use support::*;
use tokio::sync::mpsc;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// A collector on 127.0.0.1:0: every span posted to `/v1/traces`, with
/// the `service.name` of its resource.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (spans, received) = mpsc::unbounded_channel();
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let spans = spans.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            let body = req.into_body().collect().await?.to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            for resource in body["resourceSpans"].as_array().unwrap() {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].as_str().unwrap().to_owned())
                    .unwrap();
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        let _ = spans.send((service.clone(), span.clone()));
                    }
                }
            }
            Ok(Response::new(full("")))
        }
    });
    (addr, received)
}

/// `web`'s sidecar calling `emoji`'s over mutual TLS, both reporting to
/// `collector`; `emoji`'s application is `app`.
fn pair(
    app: SocketAddr,
    collector: SocketAddr,
) -> (
    mesh_examples::sidecar::Running,
    mesh_examples::sidecar::Running,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let emoji_certs = issuer(dir.path())("emoji");
    let ca = dir.path().join("ca");
    let emoji = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         policy:\n  workload:\n    labels: {{app: emoji-svc}}\n\
         tracing:\n  collector: http://{collector}\n  attributes: {{k8s.namespace.name: emojivoto}}\n",
        emoji_certs.display()
    ));
    let web = sidecar(&format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {EMOJI}\n\
         admin:\n  listen: 127.0.0.1:0\n\
         tracing:\n  collector: http://{collector}\n  service_name: web\n",
        ca.display(),
        emoji.inbound[0],
    ));
    (web, emoji, dir)
}

/// Sends `GET /headers` to `emoji` through `web`'s outbound listener with
/// `traceparent`; the headers the application got.
async fn call(outbound: SocketAddr, traceparent: &str) -> String {
    let req = Request::get(format!("http://{outbound}/headers"))
        .header("host", "emoji")
        .header("traceparent", traceparent)
        .header("tracestate", "congo=t61rcWkgMzE")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    String::from_utf8(body_bytes(res).await.to_vec()).unwrap()
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    let attr = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {span}"));
    &attr["value"]
}

#[tokio::test]
async fn both_sidecars_are_spans_of_the_callers_trace_and_the_app_their_child() {
    let (collector, mut spans) = collector().await;
    let (app, _gate) = backend().await;
    let (web, emoji, _dir) = pair(app, collector);

    // Not sampled: passed on as a child, never reported.
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    let seen = call(web.outbound, &format!("00-{unsampled}-{CALLER}-00")).await;
    assert!(header(&seen, "traceparent").starts_with(&format!("00-{unsampled}-")));

    let seen = call(web.outbound, &format!("00-{TRACE}-{CALLER}-01")).await;
    let traceparent = header(&seen, "traceparent");
    let (prefix, rest) = traceparent.split_at(36);
    assert_eq!(prefix, format!("00-{TRACE}-"));
    assert!(rest.ends_with("-01"), "{traceparent}");
    let app_parent = &rest[..16];
    assert_eq!(header(&seen, "tracestate"), "congo=t61rcWkgMzE");

    // Each sidecar sends its span within a second or so.
    let mut by_service = std::collections::BTreeMap::new();
    while by_service.len() < 2 {
        let (service, span) = tokio::time::timeout(Duration::from_secs(30), spans.recv())
            .await
            .expect("both spans reach the collector")
            .unwrap();
        assert_eq!(span["traceId"], TRACE, "the unsampled trace was reported");
        by_service.insert(service, span);
    }
    let client = &by_service["web"];
    let server = &by_service["emoji-svc"];

    // caller → web's sidecar → emoji's sidecar → app.
    assert_eq!(client["parentSpanId"], CALLER);
    assert_eq!(server["parentSpanId"], client["spanId"]);
    assert_eq!(server["spanId"], app_parent);
    assert_eq!(client["kind"], 3);
    assert_eq!(server["kind"], 2);
    for span in [client, server] {
        assert_eq!(span["name"], "GET");
        assert_eq!(attribute(span, "http.request.method")["stringValue"], "GET");
        assert_eq!(
            attribute(span, "http.response.status_code")["intValue"],
            "200"
        );
        assert!(span.get("status").is_none(), "{span}");
        // The caller's `tracestate`, which the app got as it was sent.
        assert_eq!(span["traceState"], "congo=t61rcWkgMzE", "{span}");
        let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && end >= start, "{span}");
    }
    assert_eq!(
        attribute(client, "mesh.direction")["stringValue"],
        "outbound"
    );
    assert_eq!(attribute(client, "server.address")["stringValue"], "emoji");
    assert_eq!(
        attribute(server, "mesh.direction")["stringValue"],
        "inbound"
    );
    assert_eq!(attribute(server, "mesh.client_id")["stringValue"], WEB);

    // The exporter counts a batch once the collector has answered.
    let mut metrics = scrape(web.admin).await;
    for _ in 0..100 {
        if metrics.contains("trace_spans_exported_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = scrape(web.admin).await;
    }
    assert!(
        metrics.contains("trace_spans_exported_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("trace_spans_dropped_total 0"), "{metrics}");
    assert!(metrics.contains("trace_spans_failed_total 0"), "{metrics}");
    stop(web).await;
    stop(emoji).await;
}

/// A gRPC server on 127.0.0.1:0: `/emojivoto.v1.EmojiService/ListAll`
/// answers a message and then `grpc-status: 14` in the trailers; any other
/// method a trailers-only `grpc-status: 0`.
async fn grpc_app() -> SocketAddr {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::{Bytes, Frame};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        let trailers_only = req.uri().path() != "/emojivoto.v1.EmojiService/ListAll";
        let mut res = if trailers_only {
            let mut res = Response::new(full(""));
            res.headers_mut()
                .insert("grpc-status", "0".parse().unwrap());
            res
        } else {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "14".parse().unwrap());
            trailers.insert("grpc-message", "no%20emoji".parse().unwrap());
            let frames = [
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(
                    b"\0\0\0\0\0",
                ))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                frames,
            ))))
        };
        res.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        Ok(res)
    });
    addr
}

#[tokio::test]
async fn grpc_spans_end_with_the_status_in_the_trailers_and_carry_tracestate() {
    let (collector, mut spans) = collector().await;
    let (web, emoji, _dir) = pair(grpc_app().await, collector);
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    for method in ["ListAll", "FindByShortcode"] {
        let req = emoji_call("emoji", method)
            .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
            .header("tracestate", state)
            .body(full(""))
            .unwrap();
        let res = h2_via(web.outbound, req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let collected = res.into_body().collect().await.unwrap();
        let status = match collected.trailers() {
            Some(trailers) => trailers["grpc-status"].clone(),
            None => "0".parse().unwrap(),
        };
        let expected = if method == "ListAll" { "14" } else { "0" };
        assert_eq!(status, expected, "{method}");
    }

    // Two calls, two sidecars: four spans, by service and method.
    let mut by_call = std::collections::BTreeMap::new();
    while by_call.len() < 4 {
        let (service, span) = tokio::time::timeout(Duration::from_secs(30), spans.recv())
            .await
            .expect("every span reaches the collector")
            .unwrap();
        let path = attribute(&span, "url.path")["stringValue"]
            .as_str()
            .unwrap()
            .to_owned();
        let method = path.rsplit('/').next().unwrap().to_owned();
        by_call.insert((service, method), span);
    }
    stop(web).await;
    stop(emoji).await;
    for ((service, method), span) in &by_call {
        let call = format!("{service} {method}: {span}");
        assert_eq!(
            attribute(span, "rpc.system")["stringValue"],
            "grpc",
            "{call}"
        );
        assert_eq!(span["traceState"], state, "{call}");
        let full_method = format!("emojivoto.v1.EmojiService/{method}");
        assert_eq!(span["name"], full_method.as_str(), "{call}");
        assert_eq!(
            attribute(span, "rpc.method")["stringValue"],
            method.as_str()
        );
        let code = &attribute(span, "rpc.grpc.status_code")["intValue"];
        if method == "ListAll" {
            // UNAVAILABLE fails the server's span as well as the client's.
            assert_eq!(code, "14", "{call}");
            assert_eq!(span["status"]["code"], 2, "{call}");
            assert_eq!(attribute(span, "error.type")["stringValue"], "UNAVAILABLE");
        } else {
            assert_eq!(code, "0", "{call}");
            assert!(span.get("status").is_none(), "{call}");
        }
    }
}

#[tokio::test]
async fn a_sidecar_that_stops_sends_its_last_spans_first() {
    let (collector, mut spans) = collector().await;
    let (app, _gate) = backend().await;
    let web = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         tracing:\n  collector: http://{collector}\n  service_name: web\n"
    ));
    call(web.outbound, &format!("00-{TRACE}-{CALLER}-01")).await;
    // Well within the second a batch waits for more spans: the span is
    // still queued when shutdown starts, and must not go down with it.
    stop(web).await;
    let (service, span) = spans.try_recv().expect("the span reached the collector");
    assert_eq!(service, "web");
    assert_eq!(span["parentSpanId"], CALLER);
}

#[tokio::test]
async fn every_runtime_drains_before_the_exporter_stops() {
    const HELD: usize = 8;
    let (collector, mut spans) = collector().await;
    // An application that holds each request until released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let (release, released) = tokio::sync::watch::channel(false);
    serve(listener, move |_req: Request<hyper::body::Incoming>| {
        let (arrived, mut released) = (arrived.clone(), released.clone());
        async move {
            let _ = arrived.send(());
            let _ = released.wait_for(|r| *r).await;
            Ok(Response::new(full("held")))
        }
    });
    // Two runtimes: connections land on both.
    let web = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n\
         tracing:\n  collector: http://{collector}\n  service_name: web\n"
    ));
    let outbound = web.outbound;
    let calls: Vec<_> = (0..HELD)
        .map(|_| {
            tokio::spawn(async move {
                let req = Request::get(format!("http://{outbound}/hold"))
                    .header("host", "emoji")
                    .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
                    .body(full(""))
                    .unwrap();
                http1().request(req).await.unwrap().status()
            })
        })
        .collect();
    for _ in 0..HELD {
        arrivals.recv().await.unwrap();
    }
    // Shutdown starts with every request in flight, on whichever runtime;
    // they finish within the grace period, and so must their spans.
    web.shutdown();
    release.send(true).unwrap();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    tokio::task::spawn_blocking(move || web.join())
        .await
        .unwrap();
    let mut reported = 0;
    while spans.try_recv().is_ok() {
        reported += 1;
    }
    assert_eq!(reported, HELD);
}

#[tokio::test]
async fn without_the_section_trace_headers_pass_unchanged() {
    let (app, _gate) = backend().await;
    let web = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\n"
    ));
    let sent = format!("00-{TRACE}-{CALLER}-01");
    let seen = call(web.outbound, &sent).await;
    assert_eq!(header(&seen, "traceparent"), sent);
    assert!(!scrape(web.admin).await.contains("trace_spans"));
    stop(web).await;
}

#[test]
fn the_service_name_comes_from_the_section_the_app_label_or_the_default() {
    let resource = |yaml: &str| {
        SidecarConfig::from_yaml(yaml, "sidecar.yaml")
            .unwrap()
            .tracing
            .unwrap()
            .resource
    };
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        resource("tracing: {collector: 'http://127.0.0.1:4318'}\n"),
        [pair("service.name", "sidecar")]
    );
    assert_eq!(
        resource(
            "policy: {workload: {labels: {app: books}}}\n\
             tracing: {collector: 'http://127.0.0.1:4318', attributes: {b: '2', a: '1'}}\n"
        ),
        [
            pair("service.name", "books"),
            pair("a", "1"),
            pair("b", "2")
        ]
    );
    assert_eq!(
        resource(
            "policy: {workload: {labels: {app: books}}}\n\
             tracing: {collector: 'http://127.0.0.1:4318', service_name: authors}\n"
        ),
        [pair("service.name", "authors")]
    );
}

#[test]
fn bad_tracing_sections_name_the_field_and_the_line() {
    let error = |yaml: &str| {
        SidecarConfig::from_yaml(yaml, "sidecar.yaml")
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            "admin: {listen: 127.0.0.1:0}\ntracing:\n  collector: https://collector:4318\n",
            "tracing.collector",
            "https is not supported",
        ),
        (
            "tracing:\n  collector: collector:4318\n",
            "tracing.collector",
            "expected an http:// URL",
        ),
        ("tracing: {}\n", "tracing", "missing field `collector`"),
        (
            "tracing:\n  collector: http://c:4318\n  service_name: ''\n",
            "tracing.service_name",
            "is empty",
        ),
        (
            "tracing:\n  collector: http://c:4318\n  attributes: {service.name: x}\n",
            "tracing.attributes",
            "set tracing.service_name instead",
        ),
        (
            "tracing:\n  collector: http://c:4318\n  sample: 1\n",
            "tracing",
            "unknown field `sample`",
        ),
    ];
    for (yaml, field, message) in cases {
        let error = error(yaml);
        assert!(error.contains(field), "{yaml}: {error}");
        assert!(error.contains(message), "{yaml}: {error}");
    }
    let error =
        error("admin: {listen: 127.0.0.1:0}\ntracing:\n  collector: https://collector:4318\n");
    assert!(error.contains("line 3"), "{error}");
}

#[tokio::test]
async fn the_check_reaches_collectors_by_ipv6_address_and_by_name() {
    use mesh_examples::sidecar::check::{self, CheckOptions, Status};
    let dir = tempfile::tempdir().unwrap();
    let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cases = vec![format!("localhost:{}", v4.local_addr().unwrap().port())];
    // Where the host has IPv6.
    let v6 = tokio::net::TcpListener::bind("[::1]:0").await;
    if let Ok(v6) = &v6 {
        cases.push(format!("[::1]:{}", v6.local_addr().unwrap().port()));
    }
    for authority in cases {
        let path = dir.path().join("sidecar.yaml");
        std::fs::write(
            &path,
            format!(
                "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
                 tracing:\n  collector: http://{authority}\n"
            ),
        )
        .unwrap();
        // `localhost` is looked up on tokio's blocking pool, which a busy
        // machine can take more than the default second to run.
        let options = CheckOptions::default()
            .with_pre(true)
            .with_timeout(Duration::from_secs(10));
        let report = check::run(&path, &options).await;
        let title = format!("trace collector {authority} accepts connections");
        let check = report.find(&title).unwrap_or_else(|| panic!("{report}"));
        assert_eq!(check.status, Status::Pass, "{report}");
    }
}
