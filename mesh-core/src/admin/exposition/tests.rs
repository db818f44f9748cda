use http::{HeaderMap, HeaderValue, header};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        exemplar::{CounterWithExemplar, HistogramWithExemplars},
        family::Family,
        gauge::Gauge,
        histogram::Histogram,
        info::Info,
    },
    registry::{Registry, Unit},
};

use super::{ConvertError, Format, to_text_004};

/// The registry's OpenMetrics text and its 0.0.4 conversion.
fn both(registry: &Registry) -> (String, String) {
    let mut openmetrics = String::new();
    encode(&mut openmetrics, registry).unwrap();
    (openmetrics.clone(), convert(&openmetrics))
}

fn convert(openmetrics: &str) -> String {
    let mut out = String::new();
    to_text_004(openmetrics, &mut out).unwrap();
    out
}

#[test]
fn a_counter_is_named_after_its_sample_in_0_0_4() {
    let mut registry = Registry::default();
    let requests = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("request", "Requests seen", requests.clone());
    requests
        .get_or_create(&vec![("route".into(), "vote".into())])
        .inc_by(3);
    let (openmetrics, text) = both(&registry);
    assert_eq!(
        openmetrics,
        "# HELP request Requests seen.\n\
         # TYPE request counter\n\
         request_total{route=\"vote\"} 3\n\
         # EOF\n"
    );
    assert_eq!(
        text,
        "# HELP request_total Requests seen.\n\
         # TYPE request_total counter\n\
         request_total{route=\"vote\"} 3\n"
    );
}

#[test]
fn a_counter_loses_its_unit_and_exemplar() {
    let mut registry = Registry::default();
    let busy = CounterWithExemplar::<Vec<(String, String)>>::default();
    registry.register_with_unit("busy", "Time busy", Unit::Seconds, busy.clone());
    busy.inc_by(2, Some(vec![("trace_id".into(), "4bf9".into())]), None);
    let (openmetrics, text) = both(&registry);
    assert_eq!(
        openmetrics,
        "# HELP busy_seconds Time busy.\n\
         # TYPE busy_seconds counter\n\
         # UNIT busy_seconds seconds\n\
         busy_seconds_total 2 # {trace_id=\"4bf9\"} 2.0\n\
         # EOF\n"
    );
    assert_eq!(
        text,
        "# HELP busy_seconds_total Time busy.\n\
         # TYPE busy_seconds_total counter\n\
         busy_seconds_total 2\n"
    );
}

#[test]
fn a_gauge_is_copied() {
    let mut registry = Registry::default();
    let open = Gauge::<i64>::default();
    registry.register("tcp_open_connections", "Connections open", open.clone());
    open.set(-2);
    let (_, text) = both(&registry);
    assert_eq!(
        text,
        "# HELP tcp_open_connections Connections open.\n\
         # TYPE tcp_open_connections gauge\n\
         tcp_open_connections -2\n"
    );
}

#[test]
fn a_histogram_keeps_buckets_sum_and_count_and_loses_exemplars() {
    let mut registry = Registry::default();
    let latency = Histogram::new([1.0, 10.0]);
    let traced = HistogramWithExemplars::new([5.0].into_iter());
    registry.register("response_latency_ms", "Latency", latency.clone());
    registry.register("traced", "Traced", traced.clone());
    latency.observe(3.0);
    latency.observe(30.0);
    traced.observe(
        1.5,
        Some(vec![("trace_id".to_owned(), "a b".to_owned())]),
        None,
    );
    let (openmetrics, text) = both(&registry);
    assert!(
        openmetrics.contains("traced_bucket{le=\"5.0\"} 1 # {trace_id=\"a b\"} 1.5\n"),
        "{openmetrics}"
    );
    assert_eq!(
        text,
        "# HELP response_latency_ms Latency.\n\
         # TYPE response_latency_ms histogram\n\
         response_latency_ms_sum 33.0\n\
         response_latency_ms_count 2\n\
         response_latency_ms_bucket{le=\"1.0\"} 0\n\
         response_latency_ms_bucket{le=\"10.0\"} 1\n\
         response_latency_ms_bucket{le=\"+Inf\"} 2\n\
         # HELP traced Traced.\n\
         # TYPE traced histogram\n\
         traced_sum 1.5\n\
         traced_count 1\n\
         traced_bucket{le=\"5.0\"} 1\n\
         traced_bucket{le=\"+Inf\"} 1\n"
    );
}

#[test]
fn an_info_metric_is_a_gauge_named_after_its_sample() {
    let mut registry = Registry::default();
    registry.register(
        "proxy_build",
        "Build",
        Info::new(vec![("version".to_owned(), "1.2.3".to_owned())]),
    );
    let (openmetrics, text) = both(&registry);
    assert_eq!(
        openmetrics,
        "# HELP proxy_build Build.\n\
         # TYPE proxy_build info\n\
         proxy_build_info{version=\"1.2.3\"} 1\n\
         # EOF\n"
    );
    assert_eq!(
        text,
        "# HELP proxy_build_info Build.\n\
         # TYPE proxy_build_info gauge\n\
         proxy_build_info{version=\"1.2.3\"} 1\n"
    );
}

#[test]
fn created_samples_are_dropped_and_unknown_is_untyped() {
    // prometheus-client writes neither, but an exposition may: the
    // OpenMetrics specification's own shapes.
    let openmetrics = "# TYPE hits counter\n\
                       # HELP hits Hits.\n\
                       hits_total{a=\"1\"} 4\n\
                       hits_created{a=\"1\"} 1700000000.5\n\
                       # TYPE lat histogram\n\
                       lat_bucket{le=\"+Inf\"} 1\n\
                       lat_count 1\n\
                       lat_sum 2\n\
                       lat_created 1700000000\n\
                       # TYPE rpc summary\n\
                       rpc{quantile=\"0.5\"} 3\n\
                       rpc_sum 3\n\
                       rpc_count 1\n\
                       rpc_created 1700000000\n\
                       # TYPE up_created gauge\n\
                       up_created 1\n\
                       # TYPE odd unknown\n\
                       # HELP odd Whatever.\n\
                       odd 7\n\
                       # TYPE flags stateset\n\
                       flags{flags=\"a\"} 1\n\
                       # EOF\n";
    assert_eq!(
        convert(openmetrics),
        "# TYPE hits_total counter\n\
         # HELP hits_total Hits.\n\
         hits_total{a=\"1\"} 4\n\
         # TYPE lat histogram\n\
         lat_bucket{le=\"+Inf\"} 1\n\
         lat_count 1\n\
         lat_sum 2\n\
         # TYPE rpc summary\n\
         rpc{quantile=\"0.5\"} 3\n\
         rpc_sum 3\n\
         rpc_count 1\n\
         # TYPE up_created gauge\n\
         up_created 1\n\
         # TYPE odd untyped\n\
         # HELP odd Whatever.\n\
         odd 7\n\
         # TYPE flags gauge\n\
         flags{flags=\"a\"} 1\n"
    );
}

#[test]
fn help_is_escaped_as_0_0_4_escapes_it() {
    // OpenMetrics escapes `\\`, `\n` and `\"` in HELP; 0.0.4 only `\\`
    // and `\n`, where `\"` is an invalid escape.
    let openmetrics = "# HELP a Say \\\"hi\\\", \\\\ and \\n.\n# TYPE a gauge\na 1\n";
    assert_eq!(
        convert(openmetrics),
        "# HELP a Say \"hi\", \\\\ and \\n.\n# TYPE a gauge\na 1\n"
    );
    // prometheus-client writes help text as given: a backslash that
    // escapes nothing is a backslash, which 0.0.4 must escape.
    let mut registry = Registry::default();
    registry.register("b", r#"C:\dir "quoted""#, Gauge::<i64>::default());
    let (_, text) = both(&registry);
    assert_eq!(
        text,
        "# HELP b C:\\\\dir \"quoted\".\n# TYPE b gauge\nb 0\n"
    );
    // A trailing lone backslash, and HELP of a family with no TYPE.
    assert_eq!(convert("# HELP c x\\\nc 1\n"), "# HELP c x\\\\\nc 1\n");
}

#[test]
fn label_values_are_copied_whatever_they_hold() {
    // Label values are escaped alike in both formats; a `}` or ` # `
    // inside one is neither the end of the labels nor an exemplar.
    let openmetrics = "# TYPE a counter\n\
                       a_total{v=\"x } # {y\\\"z\\\\\",w=\"\"} 1 # {t=\"1\"} 1\n";
    assert_eq!(
        convert(openmetrics),
        "# TYPE a_total counter\n\
         a_total{v=\"x } # {y\\\"z\\\\\",w=\"\"} 1\n"
    );
}

#[test]
fn timestamps_become_milliseconds() {
    // OpenMetrics timestamps are seconds, 0.0.4's integer milliseconds.
    let openmetrics = "# TYPE g gauge\ng{a=\"1\"} 2 1700000000.25\ng 3 17e8 # {x=\"y\"} 1 5\n";
    assert_eq!(
        convert(openmetrics),
        "# TYPE g gauge\ng{a=\"1\"} 2 1700000000250\ng 3 1700000000000\n"
    );
}

#[test]
fn a_line_it_cannot_read_is_named() {
    let err = |text| {
        let mut out = String::new();
        to_text_004(text, &mut out).unwrap_err()
    };
    let e: ConvertError = err("# TYPE a gauge\na{x=\"1} 2\n");
    assert_eq!(
        e.to_string(),
        "OpenMetrics line 2: labels that are never closed"
    );
    assert_eq!(
        err("a 1\n# TYPE b histogramm\n").to_string(),
        "OpenMetrics line 2: a TYPE line without a known metric type"
    );
    assert_eq!(
        err("a\n").to_string(),
        "OpenMetrics line 1: a sample without a value"
    );
    assert_eq!(
        err("a 1 x\n").to_string(),
        "OpenMetrics line 1: a timestamp that is not a number"
    );
    assert_eq!(
        err("# HELP\n").to_string(),
        "OpenMetrics line 1: a metadata line without a metric name"
    );
}

fn negotiate(accept: &[&str]) -> Format {
    let mut headers = HeaderMap::new();
    for value in accept {
        headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
    }
    Format::negotiate(&headers)
}

#[test]
fn accept_chooses_the_format() {
    use Format::{OpenMetrics as Om, Text004 as Text};
    for (accept, want) in [
        // What Prometheus sends: 2.x, 3.x, and 3.x asked for 0.0.4 only.
        (
            &[
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ][..],
            Om,
        ),
        (
            &[
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
            ],
            Om,
        ),
        (&["text/plain;version=0.0.4;q=0.2,*/*;q=0.1"], Text),
        // No Accept, curl's, and anything that names neither format.
        (&[], Text),
        (&["*/*"], Text),
        (&["application/json"], Text),
        (&["text/plain"], Text),
        (&["text/*"], Text),
        (&["application/openmetrics-text"], Om),
        (&["Application/OpenMetrics-Text; Version=\"1.0.0\""], Om),
        (&["application/*"], Om),
        // Weights decide, whatever the order.
        (
            &["text/plain;q=0.9, application/openmetrics-text;q=0.8"],
            Text,
        ),
        (
            &["text/plain;q=0.8, application/openmetrics-text;q=0.9"],
            Om,
        ),
        (&["application/openmetrics-text;q=0.5, */*"], Text),
        (&["text/plain;q=0, */*"], Om),
        (&["application/openmetrics-text;q=0"], Text),
        // A tie goes to the format named rather than reached by `*/*`.
        (&["application/openmetrics-text, text/plain"], Om),
        (&["text/plain, application/openmetrics-text"], Om),
        (&["application/openmetrics-text, */*"], Om),
        (&["text/plain, application/*"], Text),
        // A version we do not write is not ours.
        (&["application/openmetrics-text;version=0.0.1"], Text),
        (
            &["application/openmetrics-text;version=2.0.0, text/plain;q=0.1"],
            Text,
        ),
        (
            &["text/plain;version=1.0.0, application/openmetrics-text;q=0.1"],
            Om,
        ),
        // The most precise range sets the weight.
        (
            &[
                "application/openmetrics-text;version=1.0.0;q=0.1, application/openmetrics-text, text/plain;q=0.5",
            ],
            Text,
        ),
        // Several header lines are one list.
        (&["text/plain;q=0.1", "application/openmetrics-text"], Om),
        // A weight that is not one is skipped, not read as 1.
        (
            &["application/openmetrics-text;q=2, text/plain;q=0.5"],
            Text,
        ),
        (&["application/openmetrics-text;q=0.1234"], Text),
        (&["application/openmetrics-text;q=abc"], Text),
        (&["application/openmetrics-text;q=1.0"], Om),
        // A quoted parameter may hold the separators.
        (
            &["application/openmetrics-text;x=\"a,b;c\";q=0.9, text/plain;q=0.8"],
            Om,
        ),
    ] {
        assert_eq!(negotiate(accept), want, "Accept: {accept:?}");
    }
}

#[test]
fn a_non_ascii_accept_is_skipped() {
    let mut headers = HeaderMap::new();
    headers.append(
        header::ACCEPT,
        HeaderValue::from_bytes(b"application/openmetrics-text;x=\xff").unwrap(),
    );
    assert_eq!(Format::negotiate(&headers), Format::Text004);
    headers.append(
        header::ACCEPT,
        HeaderValue::from_static("application/openmetrics-text"),
    );
    assert_eq!(Format::negotiate(&headers), Format::OpenMetrics);
}
