use std::{error::Error, fmt, io};

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::*;
use crate::BoxError;

fn http(status: u16) -> Response<()> {
    Response::builder().status(status).body(()).unwrap()
}

fn grpc(grpc_status: Option<&str>) -> Response<()> {
    let mut b = Response::builder().header(header::CONTENT_TYPE, "application/grpc");
    if let Some(s) = grpc_status {
        b = b.header("grpc-status", s);
    }
    b.body(()).unwrap()
}

fn trailers(grpc_status: Option<&str>) -> HeaderMap {
    let mut t = HeaderMap::new();
    if let Some(s) = grpc_status {
        t.insert("grpc-status", HeaderValue::from_str(s).unwrap());
    }
    t
}

fn http_failure(status: u16) -> Classification {
    Classification::Final(ResponseClass::Failure(FailureReason::HttpStatus(
        StatusCode::from_u16(status).unwrap(),
    )))
}

fn grpc_failure(code: GrpcCode) -> ResponseClass {
    ResponseClass::Failure(FailureReason::GrpcStatus(code))
}

const SUCCESS: Classification = Classification::Final(ResponseClass::Success);

#[test]
fn http_5xx_is_a_failure_by_default() {
    let c = Classify::default();
    for status in [500, 502, 503, 504, 599] {
        assert_eq!(c.classify_response(&http(status)), http_failure(status));
    }
}

#[test]
fn http_1xx_to_4xx_is_a_success_by_default() {
    let c = Classify::default();
    for status in [101, 200, 204, 301, 304, 400, 403, 404, 429, 499] {
        assert_eq!(c.classify_response(&http(status)), SUCCESS, "{status}");
    }
}

#[test]
fn http_failures_are_configurable() {
    let c = Classify::new().with_http_failures("429,502-504".parse().unwrap());
    assert_eq!(c.classify_response(&http(429)), http_failure(429));
    assert_eq!(c.classify_response(&http(503)), http_failure(503));
    assert_eq!(c.classify_response(&http(500)), SUCCESS);
    assert_eq!(c.classify_response(&http(505)), SUCCESS);
}

#[test]
fn parts_classify_like_responses() {
    let c = Classify::default();
    let (parts, ()) = http(503).into_parts();
    assert_eq!(c.classify_parts(&parts), http_failure(503));
}

#[test]
fn grpc_status_in_headers_is_final() {
    let c = Classify::default();
    assert_eq!(c.classify_response(&grpc(Some("0"))), SUCCESS);
    assert_eq!(
        c.classify_response(&grpc(Some("14"))),
        Classification::Final(grpc_failure(GrpcCode::UNAVAILABLE))
    );
    // A request error, like a 4xx.
    assert_eq!(c.classify_response(&grpc(Some("5"))), SUCCESS);
}

#[test]
fn grpc_without_status_in_headers_waits_for_trailers() {
    let c = Classify::default();
    assert_eq!(c.classify_response(&grpc(None)), Classification::Pending);
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("0")))),
        ResponseClass::Success
    );
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("13")))),
        grpc_failure(GrpcCode::INTERNAL)
    );
}

#[test]
fn grpc_stream_without_status_in_trailers_is_a_failure() {
    let c = Classify::default();
    let missing = ResponseClass::Failure(FailureReason::GrpcStatusMissing);
    assert_eq!(c.classify_trailers(None), missing);
    assert_eq!(c.classify_trailers(Some(&trailers(None))), missing);
}

#[test]
fn grpc_status_zero_is_a_success_even_with_every_error_a_failure() {
    let c = Classify::new().with_grpc_failures(GrpcCodes::all_errors());
    assert_eq!(c.classify_response(&grpc(Some("0"))), SUCCESS);
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("0")))),
        ResponseClass::Success
    );
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("5")))),
        grpc_failure(GrpcCode::NOT_FOUND)
    );
}

#[test]
fn default_grpc_failures_are_linkerds_codes() {
    // linkerd2-proxy's default `Codes`: UNKNOWN, DEADLINE_EXCEEDED,
    // PERMISSION_DENIED, INTERNAL, UNAVAILABLE, DATA_LOSS.
    let c = Classify::default();
    let failures: Vec<u16> = (0..=16)
        .filter(|&n| c.classify_grpc_status(GrpcCode::from_u16(n)).is_failure())
        .collect();
    assert_eq!(failures, [2, 4, 7, 13, 14, 15]);
    assert_eq!(c.grpc_failures(), GrpcCodes::linkerd_failures());
    assert_eq!(Classify::new(), c);
}

#[test]
fn by_default_a_denied_call_fails_and_an_unimplemented_one_succeeds() {
    // As `linkerd viz stat` counts them, in the head (trailers-only) and
    // in the trailers alike.
    let c = Classify::default();
    assert_eq!(
        c.classify_response(&grpc(Some("7"))),
        Classification::Final(grpc_failure(GrpcCode::PERMISSION_DENIED))
    );
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("7")))),
        grpc_failure(GrpcCode::PERMISSION_DENIED)
    );
    assert_eq!(c.classify_response(&grpc(Some("12"))), SUCCESS);
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("12")))),
        ResponseClass::Success
    );
}

#[test]
fn grpcs_http_mapping_is_an_opt_in_that_swaps_the_two_codes() {
    let c = Classify::new().with_grpc_failures(GrpcCodes::server_errors());
    assert_eq!(c.classify_response(&grpc(Some("7"))), SUCCESS);
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("7")))),
        ResponseClass::Success
    );
    assert_eq!(
        c.classify_response(&grpc(Some("12"))),
        Classification::Final(grpc_failure(GrpcCode::UNIMPLEMENTED))
    );
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("12")))),
        grpc_failure(GrpcCode::UNIMPLEMENTED)
    );
    // The codes the two sets share fail under both.
    for code in [2, 4, 13, 14, 15] {
        let code = GrpcCode::from_u16(code);
        assert!(c.classify_grpc_status(code).is_failure(), "{code}");
        assert!(
            Classify::default().classify_grpc_status(code).is_failure(),
            "{code}"
        );
    }
}

#[test]
fn undefined_or_garbled_grpc_status_counts_as_unknown() {
    let c = Classify::default();
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("99")))),
        grpc_failure(GrpcCode::from_u16(99))
    );
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("ok")))),
        grpc_failure(GrpcCode::UNKNOWN)
    );
    let lenient = Classify::new().with_grpc_failures(GrpcCodes::empty());
    assert!(
        lenient
            .classify_grpc_status(GrpcCode::from_u16(99))
            .is_success()
    );
}

#[test]
fn grpc_with_an_http_error_status_is_classified_as_its_client_sees_it() {
    let c = Classify::default();
    // 503 becomes UNAVAILABLE: a failure, reported with the HTTP status.
    assert_eq!(c.classify_response(&grpc_http(503)), http_failure(503));
    // 404 becomes UNIMPLEMENTED: not a failure by default.
    assert_eq!(c.classify_response(&grpc_http(404)), SUCCESS);
    // 403 becomes PERMISSION_DENIED: a failure by default.
    assert_eq!(c.classify_response(&grpc_http(403)), http_failure(403));
    // With gRPC's HTTP mapping as the failure set, the other way round.
    let mapping = Classify::new().with_grpc_failures(GrpcCodes::server_errors());
    assert_eq!(
        mapping.classify_response(&grpc_http(404)),
        http_failure(404)
    );
    assert_eq!(mapping.classify_response(&grpc_http(403)), SUCCESS);

    fn grpc_http(status: u16) -> Response<()> {
        let mut res = grpc(None);
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        res
    }
}

#[test]
fn synthesized_responses_carry_their_proxy_error_kind() {
    let c = Classify::default();
    for grpc in [false, true] {
        // (kind, a failure for an HTTP caller, for a gRPC caller): a
        // denial is PERMISSION_DENIED to a gRPC caller, a failure by
        // default, and `Unsupported` UNIMPLEMENTED, a success.
        for (kind, fails_http, fails_grpc) in [
            (ProxyErrorKind::Timeout, true, true),
            (ProxyErrorKind::UpstreamUnreachable, true, true),
            (ProxyErrorKind::Unavailable, true, true),
            (ProxyErrorKind::Denied, false, true),
            (ProxyErrorKind::NoRoute, false, false),
            (ProxyErrorKind::RateLimited, false, false),
            (ProxyErrorKind::Unsupported, true, false),
        ] {
            let res: Response<()> = kind.response_for(grpc);
            let failure = if grpc { fails_grpc } else { fails_http };
            let expected = if failure {
                ResponseClass::Failure(FailureReason::Proxy(kind))
            } else {
                ResponseClass::Success
            };
            assert_eq!(
                c.classify_response(&res),
                Classification::Final(expected),
                "{kind:?} grpc={grpc}"
            );
        }
    }
}

#[derive(Debug)]
struct Wrapped(BoxError);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

fn error_kind(e: impl Into<BoxError>) -> ErrorKind {
    let e: BoxError = e.into();
    match Classify::default().classify_error(&*e) {
        ResponseClass::Failure(FailureReason::Error(kind)) => kind,
        other => panic!("errors are failures, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_are_failures_of_a_kind_found_in_the_source_chain() {
    let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(error_kind(elapsed), ErrorKind::Timeout);

    let io = |kind| -> BoxError { Box::new(io::Error::from(kind)) };
    assert_eq!(error_kind(io(io::ErrorKind::TimedOut)), ErrorKind::Timeout);
    assert_eq!(
        error_kind(io(io::ErrorKind::ConnectionRefused)),
        ErrorKind::Connect
    );
    assert_eq!(
        error_kind(io(io::ErrorKind::ConnectionReset)),
        ErrorKind::Reset
    );
    assert_eq!(error_kind(io(io::ErrorKind::BrokenPipe)), ErrorKind::Reset);
    assert_eq!(error_kind(io(io::ErrorKind::Other)), ErrorKind::Other);
    assert_eq!(error_kind("something else"), ErrorKind::Other);

    // Found through `source()`, and inside a custom `io::Error`.
    let deep = Wrapped(Box::new(Wrapped(io(io::ErrorKind::ConnectionAborted))));
    assert_eq!(error_kind(deep), ErrorKind::Reset);
    let custom = io::Error::other(Wrapped(io(io::ErrorKind::TimedOut)));
    assert_eq!(error_kind(custom), ErrorKind::Timeout);
}

#[tokio::test]
async fn refused_upstream_connections_are_connect_errors() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    // A port nobody listens on, drawn below Linux's ephemeral range, where
    // no test binds: a port bound to port 0 and closed could be picked
    // again for another test's listener, which would take the connection.
    let addr = {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new();
        let port = (0_u64..)
            .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
            .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            .unwrap();
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    };

    let client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let err = client
        .get(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.is_connect());
    // Directly, and wrapped the way the mesh's client wraps it.
    assert_eq!(error_kind(Wrapped(Box::new(err))), ErrorKind::Connect);
}

#[test]
fn classes_have_labels() {
    assert_eq!(ResponseClass::Success.as_label(), "success");
    let failure = ResponseClass::Failure(FailureReason::Error(ErrorKind::Connect));
    assert_eq!(failure.as_label(), "failure");
    assert_eq!(
        failure.failure_reason(),
        Some(FailureReason::Error(ErrorKind::Connect))
    );
    assert_eq!(
        failure.failure_reason().unwrap().to_string(),
        "connect error"
    );
    assert_eq!(
        ErrorKind::ALL.map(ErrorKind::as_label),
        ["timeout", "connect", "reset", "other"]
    );
}

#[test]
fn a_grpc_response_with_another_2xx_status_is_not_a_stream() {
    // gRPC clients read only a `200` as a stream whose status comes in the
    // trailers; any other status without `grpc-status` is UNKNOWN to them.
    let c = Classify::default();
    for status in [201, 204, 206] {
        let res = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert_eq!(c.classify_response(&res), http_failure(status), "{status}");
    }
    // With a `grpc-status` in its headers, it is trailers-only as ever.
    let res = Response::builder()
        .status(204)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("grpc-status", "0")
        .body(())
        .unwrap();
    assert_eq!(c.classify_response(&res), SUCCESS);
}

#[test]
fn a_grpc_call_answered_by_a_response_that_is_not_grpc_is_read_as_its_client_reads_it() {
    // A misrouted gRPC call that an HTTP server answers with a page: gRPC
    // clients read it by gRPC's HTTP mapping (a `200` that is not gRPC
    // is UNKNOWN, a `404` UNIMPLEMENTED, a `403` PERMISSION_DENIED),
    // whatever the status says to an HTTP client, and it fails when that
    // code is a failure: by default, Linkerd's codes.
    let c = Classify::default();
    let page = |status: u16| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/html")
            .body(())
            .unwrap()
    };
    let not_grpc = |status: u16| {
        Classification::Final(ResponseClass::Failure(FailureReason::NotGrpc(
            StatusCode::from_u16(status).unwrap(),
        )))
    };
    assert_eq!(c.classify_response_to(true, &page(200)), not_grpc(200));
    assert_eq!(c.classify_response_to(true, &page(404)), SUCCESS);
    assert_eq!(c.classify_response_to(true, &page(503)), not_grpc(503));
    assert_eq!(c.classify_response_to(true, &page(403)), not_grpc(403));
    // The same pages answering plain HTTP requests.
    assert_eq!(c.classify_response_to(false, &page(200)), SUCCESS);
    assert_eq!(c.classify_response_to(false, &page(404)), SUCCESS);
    assert_eq!(c.classify_response_to(false, &page(503)), http_failure(503));
    assert_eq!(c.classify_response(&page(200)), SUCCESS);
    // A gRPC answer to a gRPC call is classified as before, whoever asked.
    for grpc_call in [false, true] {
        assert_eq!(
            c.classify_response_to(grpc_call, &grpc(None)),
            Classification::Pending
        );
        assert_eq!(c.classify_response_to(grpc_call, &grpc(Some("0"))), SUCCESS);
    }
    // A `grpc-status` in the headers decides, whatever the content-type.
    let mut trailers_only = page(200);
    trailers_only
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static("14"));
    assert_eq!(
        c.classify_response_to(true, &trailers_only),
        Classification::Final(grpc_failure(GrpcCode::UNAVAILABLE))
    );
    // The mesh's own answers keep their reason.
    let res: Response<()> = ProxyErrorKind::UpstreamUnreachable.response_for(false);
    assert_eq!(
        c.classify_response_to(true, &res),
        Classification::Final(ResponseClass::Failure(FailureReason::Proxy(
            ProxyErrorKind::UpstreamUnreachable
        )))
    );
    assert_eq!(
        FailureReason::NotGrpc(StatusCode::OK).to_string(),
        "not a grpc response (http status 200)"
    );
}

/// One HTTP/2 frame on stream `stream`.
fn h2_frame(kind: u8, flags: u8, stream: u8, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap();
    let mut frame = vec![0, 0, len, kind, flags, 0, 0, 0, stream];
    frame.extend_from_slice(payload);
    frame
}

/// HEADERS, END_HEADERS, on stream 1: `:status: 200` (static index 8) and
/// `content-length: 10` (a literal with the name of static index 28).
fn h2_head() -> Vec<u8> {
    h2_frame(1, 4, 1, &[0x88, 0x0f, 0x0d, 0x02, b'1', b'0'])
}

/// DATA on stream 1: 5 of the 10 bytes the head declares.
fn h2_half_body(end_stream: bool) -> Vec<u8> {
    h2_frame(0, u8::from(end_stream), 1, b"hello")
}

fn h2_rst_stream(code: u8) -> Vec<u8> {
    h2_frame(3, 0, 1, &[0, 0, 0, code])
}

fn h2_goaway(last_stream: u8, code: u8) -> Vec<u8> {
    h2_frame(7, 0, 0, &[0, 0, 0, last_stream, 0, 0, 0, code])
}

/// An HTTP/2 upstream written frame by frame, so that it can fail a stream
/// as a real server may: it answers the request on stream 1 with
/// `answer`, then closes its side of the connection if `then_close`, and
/// otherwise keeps it open until the client closes it.
async fn raw_h2_upstream(answer: Vec<u8>, then_close: bool) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        tcp.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
        loop {
            let mut head = [0; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            tcp.read_exact(&mut payload).await.unwrap();
            match head[3] {
                // SETTINGS, not an ACK: acknowledge it.
                4 if head[4] & 1 == 0 => tcp.write_all(&h2_frame(4, 1, 0, &[])).await.unwrap(),
                // The request's HEADERS on stream 1.
                1 => break,
                _ => {}
            }
        }
        tcp.write_all(&answer).await.unwrap();
        if then_close {
            // A FIN, not a reset: the client reads every frame first.
            tcp.shutdown().await.unwrap();
        }
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

/// The error hyper's HTTP/2 client fails a request to a
/// [`raw_h2_upstream`] with: the response's, or its body's once its head
/// arrived.
async fn h2_failure(answer: Vec<u8>, then_close: bool) -> hyper::Error {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let addr = raw_h2_upstream(answer, then_close).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}/"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    match sender.send_request(req).await {
        Err(error) => error,
        Ok(res) => res.into_body().collect().await.unwrap_err(),
    }
}

/// The `h2::Error` behind hyper's `error`.
fn h2_cause(error: &hyper::Error) -> &h2::Error {
    error.source().unwrap().downcast_ref::<h2::Error>().unwrap()
}

#[tokio::test]
async fn an_upstream_http2_reset_mid_body_is_a_reset() {
    // RST_STREAM(INTERNAL_ERROR) after half the body.
    let error = h2_failure(
        [h2_head(), h2_half_body(false), h2_rst_stream(2)].concat(),
        false,
    )
    .await;
    let h2 = h2_cause(&error);
    assert!(h2.is_reset() && h2.is_remote(), "{h2}");
    assert_eq!(h2.reason(), Some(h2::Reason::INTERNAL_ERROR));
    // Wrapped, as a layer wraps it.
    assert_eq!(error_kind(Wrapped(Box::new(error))), ErrorKind::Reset);
}

#[tokio::test]
async fn an_upstream_http2_reset_before_the_head_is_a_reset() {
    // RST_STREAM(REFUSED_STREAM): no response at all.
    let error = h2_failure(h2_rst_stream(7), false).await;
    assert!(h2_cause(&error).is_reset(), "{error}");
    assert_eq!(error_kind(error), ErrorKind::Reset);
}

#[tokio::test]
async fn a_goaway_that_leaves_the_stream_out_is_a_reset() {
    // GOAWAY(last stream 0, NO_ERROR): the upstream will not answer
    // stream 1. Linkerd labels a GOAWAY as it does a reset, by its code.
    let error = h2_failure(h2_goaway(0, 0), false).await;
    assert!(h2_cause(&error).is_go_away(), "{error}");
    assert_eq!(error_kind(error), ErrorKind::Reset);
}

#[tokio::test]
async fn an_http2_connection_closed_mid_body_is_read_by_its_io_error() {
    // The upstream closes the connection after half the body: h2 fails
    // the stream with an I/O error (a broken pipe), which hyper keeps as
    // h2's own.
    let error = h2_failure([h2_head(), h2_half_body(false)].concat(), true).await;
    let io = h2_cause(&error).get_io().unwrap();
    assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(error_kind(error), ErrorKind::Reset);
}

#[tokio::test]
async fn an_http2_body_that_ends_short_of_its_content_length_is_a_reset() {
    // END_STREAM after 5 of 10 bytes: h2 resets the stream itself
    // (PROTOCOL_ERROR), and the message is cut short, as hyper's HTTP/1
    // `IncompleteMessage` is.
    let error = h2_failure([h2_head(), h2_half_body(true)].concat(), false).await;
    let h2 = h2_cause(&error);
    assert!(h2.is_reset() && h2.is_library(), "{h2}");
    assert_eq!(error_kind(error), ErrorKind::Reset);
}

/// A ServiceProfile route's classes, as mesh-retry builds them: `2xx` a
/// success and `500` a failure by its classes, 5xx a failure when none
/// matches.
fn profile_classes() -> Classify {
    Classify::new()
        .with_http_failures("500-599".parse().unwrap())
        .with_class_statuses("200-299,500".parse().unwrap())
}

#[test]
fn a_routes_class_decides_a_grpc_response_before_its_grpc_status() {
    // Linkerd's profile classifier tries the route's classes on the head
    // first (`classify::Response::Profile`): a gRPC call answered `200`
    // with `grpc-status: 13` is a success on a route whose class calls
    // `2xx` one, in the head (trailers-only) and with the status still
    // to come in the trailers alike.
    let c = profile_classes();
    assert_eq!(c.classify_response(&grpc(Some("13"))), SUCCESS);
    assert_eq!(c.classify_response_to(true, &grpc(Some("14"))), SUCCESS);
    assert_eq!(c.classify_response_to(true, &grpc(None)), SUCCESS);
    // A class that calls the status a failure fails it, whatever the
    // `grpc-status` says, and by its HTTP status.
    let res = Response::builder()
        .status(500)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("grpc-status", "0")
        .body(())
        .unwrap();
    assert_eq!(c.classify_response_to(true, &res), http_failure(500));
    // A gRPC call answered by a page whose status a class matches.
    let page = Response::builder().status(200).body(()).unwrap();
    assert_eq!(c.classify_response_to(true, &page), SUCCESS);
}

#[test]
fn a_status_no_class_matches_is_left_to_the_grpc_status_as_before() {
    // No class matches 503 or 204: the `grpc-status` decides, or the
    // trailers, or gRPC's reading of the HTTP status, as on a route
    // without classes.
    let c = profile_classes().with_class_statuses("500".parse().unwrap());
    assert_eq!(
        c.classify_response(&grpc(Some("13"))),
        Classification::Final(grpc_failure(GrpcCode::INTERNAL))
    );
    assert_eq!(c.classify_response(&grpc(Some("0"))), SUCCESS);
    assert_eq!(c.classify_response(&grpc(None)), Classification::Pending);
    assert_eq!(
        c.classify_trailers(Some(&trailers(Some("14")))),
        grpc_failure(GrpcCode::UNAVAILABLE)
    );
    let page = Response::builder().status(200).body(()).unwrap();
    assert_eq!(
        c.classify_response_to(true, &page),
        Classification::Final(ResponseClass::Failure(FailureReason::NotGrpc(
            StatusCode::OK
        )))
    );
    // Plain HTTP is decided by the status, with classes or without.
    assert_eq!(c.classify_response(&http(503)), http_failure(503));
    assert_eq!(c.classify_response(&http(200)), SUCCESS);
}

#[test]
fn without_classes_nothing_changes() {
    let c = Classify::default();
    assert!(c.class_statuses().is_empty());
    assert_eq!(
        c.classify_response(&grpc(Some("13"))),
        Classification::Final(grpc_failure(GrpcCode::INTERNAL))
    );
    assert_eq!(c.classify_response(&grpc(None)), Classification::Pending);
    // The mesh's own answer on a route whose class matches its status
    // keeps its reason.
    let res: Response<()> = ProxyErrorKind::Unavailable.response_for(true);
    let c = profile_classes().with_class_statuses("503".parse().unwrap());
    assert_eq!(
        c.classify_response_to(true, &res),
        Classification::Final(ResponseClass::Failure(FailureReason::Proxy(
            ProxyErrorKind::Unavailable
        )))
    );
}
