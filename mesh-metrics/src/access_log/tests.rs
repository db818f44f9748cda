#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Full;
use mesh_core::conn::{ConnectionInfo, Tls};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;

/// An app that takes 3 ms to answer 2,160 bytes.
fn app() -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let mut res = Response::new(Full::from(vec![b'x'; 2160]));
        res.headers_mut()
            .insert(http::header::CONTENT_LENGTH, "2160".parse().unwrap());
        Ok::<_, Infallible>(res)
    })
}

fn request() -> Request<()> {
    let mut req = Request::get("/authors?page=2")
        .header("host", "webapp:7000")
        .header("user-agent", "curl/8.5.0")
        .header("x-request-id", "a1b2")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "10.42.0.9:4143".parse().unwrap(),
        remote_addr: "10.42.0.63:51160".parse().unwrap(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/booksapp/sa/traffic"
                .parse()
                .unwrap(),
        },
    });
    req
}

/// The lines `writer` wrote once every handle of its log is gone.
async fn written(writer: AccessLogWriter) -> Vec<String> {
    let mut out = Vec::new();
    writer.run(&mut out).await.unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `line` with the timestamp, which the wall clock sets, replaced by `T`,
/// after checking that it is one.
fn without_timestamp(line: &str, open: &str, close: &str) -> String {
    let start = line.find(open).unwrap() + open.len();
    let end = start + line[start..].find(close).unwrap();
    let stamp = &line[start..end];
    // `2022-08-23T20:28:20Z`, with a fraction of the second when it has
    // one.
    assert!((20..=30).contains(&stamp.len()), "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
    format!("{}T{}", &line[..start], &line[end..])
}

#[tokio::test(start_paused = true)]
async fn apache_lines_name_the_client_its_identity_the_request_and_the_status() {
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    svc.clone().oneshot(request()).await.unwrap();
    let mut plaintext = request();
    plaintext.extensions_mut().insert(ConnectionInfo::plaintext(
        "10.42.0.9:4143".parse().unwrap(),
        "10.42.0.1:43682".parse().unwrap(),
    ));
    *plaintext.version_mut() = Version::HTTP_2;
    svc.oneshot(plaintext).await.unwrap();

    let lines = written(writer).await;
    let lines: Vec<String> = lines
        .iter()
        .map(|l| without_timestamp(l, "[", "]"))
        .collect();
    assert_eq!(
        lines,
        [
            "10.42.0.63:51160 spiffe://cluster.local/ns/booksapp/sa/traffic - [T] \
             \"GET /authors?page=2 HTTP/1.1\" 200",
            "10.42.0.1:43682 - - [T] \"GET /authors?page=2 HTTP/2.0\" 200",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_apache_request_field_escapes_quotes_backslashes_and_controls() {
    // hyper takes `"` and `\` in a request target, and UTF-8 (C1 controls
    // such as NEL included): unescaped, `/x" 200 "GET /admin` would end the
    // request field and forge the rest of the line.
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    let mut req = request();
    *req.uri_mut() = "/x\"\\y\u{85}z\u{9b}?q=\\".parse().unwrap();
    svc.oneshot(req).await.unwrap();
    let lines = written(writer).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        without_timestamp(&lines[0], "[", "]"),
        r#"10.42.0.63:51160 spiffe://cluster.local/ns/booksapp/sa/traffic - [T] "GET /x\"\\y\xc2\x85z\xc2\x9b?q=\\ HTTP/1.1" 200"#
    );
}

#[tokio::test(start_paused = true)]
async fn json_lines_carry_every_field_and_the_time_the_proxy_worked() {
    let (log, writer) = AccessLog::new(AccessLogFormat::Json);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    svc.oneshot(request()).await.unwrap();

    let lines = written(writer).await;
    assert_eq!(lines.len(), 1);
    // The 3 ms the app took are waiting, not processing: on the paused
    // clock, the polls themselves take no time.
    assert_eq!(
        without_timestamp(&lines[0], "\"timestamp\":\"", "\""),
        "{\"client.addr\":\"10.42.0.63:51160\",\
         \"client.id\":\"spiffe://cluster.local/ns/booksapp/sa/traffic\",\
         \"host\":\"webapp:7000\",\"method\":\"GET\",\"processing_ns\":\"0\",\
         \"request_bytes\":\"\",\"response_bytes\":\"2160\",\"status\":200,\
         \"timestamp\":\"T\",\"total_ns\":\"3000000\",\"trace_id\":\"a1b2\",\
         \"uri\":\"/authors?page=2\",\"user_agent\":\"curl/8.5.0\",\"version\":\"HTTP/1.1\"}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(parsed["status"], 200);
}

#[tokio::test(start_paused = true)]
async fn a_quoted_or_broken_header_still_makes_valid_json() {
    let (log, writer) = AccessLog::new(AccessLogFormat::Json);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    let mut req = request();
    req.headers_mut().insert(
        "user-agent",
        http::HeaderValue::from_static("say \"hi\" \\ bye"),
    );
    req.headers_mut().insert(
        "x-b3-traceid",
        http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    );
    svc.oneshot(req).await.unwrap();
    let lines = written(writer).await;
    let parsed: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(parsed["user_agent"], "say \"hi\" \\ bye");
    // Not text: left out, and the next header in order is not read in its
    // place.
    assert_eq!(parsed["trace_id"], "");
}

#[tokio::test(start_paused = true)]
async fn a_json_line_escapes_del_and_c1_controls_as_it_does_c0() {
    // JSON escapes C0 only; a terminal showing the log (`tail -f`) may
    // read U+009B as CSI, so a request target could act on it.
    let (log, writer) = AccessLog::new(AccessLogFormat::Json);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    let mut req = request();
    *req.uri_mut() = "/x\u{9b}2J\u{85}é".parse().unwrap();
    svc.oneshot(req).await.unwrap();
    let lines = written(writer).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(r#""uri":"/x\u009b2J\u0085é""#),
        "{:?}",
        lines[0]
    );
    assert!(!lines[0].contains(['\u{9b}', '\u{85}']));
    let parsed: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(parsed["uri"], "/x\u{9b}2J\u{85}é");
}

#[tokio::test]
async fn a_writer_that_falls_behind_loses_lines_and_counts_them() {
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    for i in 0..QUEUE + 3 {
        let mut entry = Entry::default();
        entry.uri = entry.push(&format!("/line/{i}"));
        log.write(Box::new(entry));
    }
    assert_eq!(log.dropped(), 3);
    let mut registry = prometheus_client::registry::Registry::default();
    log.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("\naccess_log_dropped_lines_total 3\n"),
        "{text}"
    );
    drop(log);
    let lines = written(writer).await;
    assert_eq!(lines.len(), QUEUE);
    assert_eq!(
        lines[QUEUE - 1],
        format!("- - - [] \"GET /line/{} \" -", QUEUE - 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_writer_writes_what_is_queued_though_handles_live_on() {
    // A process keeps a handle in its shared state for as long as it runs,
    // and its servers drain one runtime at a time: the writer must write
    // the last requests' lines when told to stop, not wait for the handles.
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    let svc = AccessLogLayer::new(Some(log.clone())).layer(app());
    for _ in 0..3 {
        svc.clone().oneshot(request()).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut out = Vec::new();
    {
        let run = writer.run_until(&mut out, async {
            let _ = stopped.await;
        });
        tokio::pin!(run);
        // Not stopped: it waits for more lines.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), run.as_mut())
                .await
                .is_err()
        );
        // Two more queued, then the stop: they are written, and it returns.
        for _ in 0..2 {
            svc.clone().oneshot(request()).await.unwrap();
        }
        drop(stop);
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("a stopped writer returns")
            .unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().all(|l| l.ends_with("\" 200")), "{text}");
    // A line logged once the writer has stopped is dropped and counted.
    svc.oneshot(request()).await.unwrap();
    assert_eq!(log.dropped(), 1);
}

#[tokio::test]
async fn the_queue_holds_at_most_its_bytes_whatever_the_size_of_the_requests() {
    // A request head may carry hundreds of kilobytes of URI and headers,
    // and every line waiting for a slow writer holds them: 4,096 such
    // lines would be gigabytes. Past MAX_QUEUED_BYTES, lines are dropped
    // and counted, as when the queue is full.
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    let big = |i: usize| {
        let mut entry = Entry::with_capacity(1 << 20);
        entry.uri = entry.push(&format!("/{i}/{}", "x".repeat((1 << 20) - 16)));
        Box::new(entry)
    };
    for i in 0..64 {
        log.write(big(i));
    }
    let kept = MAX_QUEUED_BYTES / (1 << 20) - 1;
    assert_eq!(log.dropped(), 64 - kept as u64);

    // Once written, their room is free again.
    let writer = tokio::spawn(writer.run(tokio::io::sink()));
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    for i in 0..kept {
        log.write(big(i));
    }
    assert_eq!(log.dropped(), 64 - kept as u64);
    drop(log);
    writer.await.unwrap().unwrap();
}

#[test]
fn an_entry_copies_its_texts_into_one_buffer_sized_at_the_request() {
    let req = request();
    let mut entry = service::entry(&req);
    let capacity = entry.capacity();
    // The response's `content-length` fits in the room left for it.
    entry.response_bytes = Some(entry.push("2160"));
    assert_eq!(entry.capacity(), capacity);
    drop(req);
    let mut line = Vec::new();
    entry.render(AccessLogFormat::Json, &mut line);
    let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(line["uri"], "/authors?page=2");
    assert_eq!(line["host"], "webapp:7000");
    assert_eq!(line["user_agent"], "curl/8.5.0");
    assert_eq!(line["trace_id"], "a1b2");
    assert_eq!(line["request_bytes"], "");
    assert_eq!(line["response_bytes"], "2160");
}

#[test]
fn an_entry_writes_each_form_of_uri_as_it_displays() {
    for uri in [
        "/authors?page=2",
        "/",
        "*",
        "http://webapp:7000",
        "http://webapp:7000/authors?page=2&q=a%20b",
        "webapp:7000",
    ] {
        let req = Request::get(uri).body(()).unwrap();
        let mut line = Vec::new();
        service::entry(&req).render(AccessLogFormat::Json, &mut line);
        let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(line["uri"], req.uri().to_string(), "{uri}");
    }
}

#[test]
fn credentials_in_the_uri_are_never_written() {
    // hyper takes an HTTP/1 request target with userinfo; the log is read
    // by whoever reads the proxy's standard error.
    let req = Request::get("http://alice:s3cr3t@webapp:7000/authors?page=2")
        .body(())
        .unwrap();
    for format in [AccessLogFormat::Apache, AccessLogFormat::Json] {
        let mut line = Vec::new();
        service::entry(&req).render(format, &mut line);
        let line = String::from_utf8(line).unwrap();
        assert!(!line.contains("s3cr3t"), "{line}");
        assert!(!line.contains("alice"), "{line}");
        assert!(
            line.contains("GET http://webapp:7000/authors?page=2 ")
                || line.contains("\"uri\":\"http://webapp:7000/authors?page=2\""),
            "{line}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_apache_line_without_a_client_address_writes_a_dash_in_its_place() {
    // A stack served by something other than mesh-core's server has no
    // `ConnectionInfo`. Apache writes `-` for a field it does not know:
    // an empty one would start the line with a blank, and every reader
    // that splits it on blanks would take the identity for the address.
    let (log, writer) = AccessLog::new(AccessLogFormat::Apache);
    let svc = AccessLogLayer::new(Some(log)).layer(app());
    let mut req = request();
    req.extensions_mut().remove::<ConnectionInfo>();
    svc.oneshot(req).await.unwrap();
    let lines = written(writer).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        without_timestamp(&lines[0], "[", "]"),
        "- - - [T] \"GET /authors?page=2 HTTP/1.1\" 200"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_with_no_response_is_logged_without_a_status() {
    // Linkerd writes a request's line when its span closes, response or
    // not: a client that gave up on a slow app, and a request the stack
    // failed, are what an audit of who called what looks for.
    let slow = service_fn(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let failing = service_fn(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("refused"))
    });
    for format in [AccessLogFormat::Apache, AccessLogFormat::Json] {
        let (log, writer) = AccessLog::new(format);
        let gone = AccessLogLayer::new(Some(log.clone())).layer(slow);
        let given_up = tokio::time::timeout(Duration::from_millis(5), gone.oneshot(request()));
        assert!(given_up.await.is_err());
        let svc = AccessLogLayer::new(Some(log)).layer(failing);
        assert!(svc.oneshot(request()).await.is_err());

        let lines = written(writer).await;
        assert_eq!(lines.len(), 2, "{format:?}: {lines:?}");
        match format {
            AccessLogFormat::Apache => {
                for line in &lines {
                    assert_eq!(
                        without_timestamp(line, "[", "]"),
                        "10.42.0.63:51160 spiffe://cluster.local/ns/booksapp/sa/traffic - [T] \
                         \"GET /authors?page=2 HTTP/1.1\" -"
                    );
                }
            }
            AccessLogFormat::Json => {
                let parsed: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                for (line, waited) in parsed.iter().zip(["5000000", "2000000"]) {
                    assert!(line.get("status").is_none(), "{line}");
                    assert_eq!(line["uri"], "/authors?page=2");
                    assert!(line.get("response_bytes").is_none(), "{line}");
                    // How long the client waited, a string as in every line.
                    assert_eq!(line["total_ns"], waited);
                }
            }
        }
    }
}
