//! The `authz` view's rows and rendering, from scrape text.

use super::*;
use crate::query::Scrape;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";

#[test]
fn each_authorization_has_its_figures_and_denials_a_row_of_their_own() {
    let scrape = |ok: u32, fail: u32, denied: u32| {
        Scrape::parse(&format!(
            "inbound_http_authz_allow_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",tls=\"true\"}} {}\n\
             inbound_http_authz_allow_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"probe\",authz_group=\"\",authz_kind=\"default\",authz_name=\"probe\",tls=\"no_identity\"}} 7\n\
             inbound_http_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"default\",tls=\"no_identity\"}} {denied}\n\
             inbound_http_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"default\",tls=\"true\"}} {denied}\n\
             response_total{{direction=\"inbound\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",tls=\"true\",client_id=\"{WEB}\",classification=\"success\"}} {ok}\n\
             response_total{{direction=\"inbound\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",tls=\"true\",client_id=\"{WEB}\",classification=\"failure\"}} {fail}\n\
             response_latency_ms_bucket{{direction=\"inbound\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",le=\"10.0\"}} {ok}\n\
             response_latency_ms_bucket{{direction=\"inbound\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",le=\"+Inf\"}} {}\n\
             response_total{{direction=\"outbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"x\",classification=\"success\"}} 99\n",
            ok + fail,
            ok + fail,
        ))
        .unwrap()
    };
    let window = Duration::from_secs(10);
    let targets = Target::parse_list("emoji=a:1,gone=b:2").unwrap();
    let deltas = [
        Some(Delta::between(&scrape(0, 0, 0), &scrape(36, 4, 15), window)),
        None,
    ];
    let rows = authz_rows(&targets, &deltas);
    assert_eq!(
        rows,
        [
            AuthzRow {
                workload: "emoji".into(),
                server: "emoji-http".into(),
                server_kind: Some("server".into()),
                route: Some("default".into()),
                route_kind: Some("default".into()),
                authorization: Some("emoji-from-web".into()),
                authorization_kind: Some("authorizationpolicy".into()),
                // Rank 20 of 40 in le=10 (36 of them): 10 × 20/36.
                golden: Golden {
                    success: Some(0.9),
                    rps: 4.0,
                    latency_ms_p50: Some(10.0 * 20.0 / 36.0),
                    latency_ms_p95: Some(10.0),
                    latency_ms_p99: Some(10.0),
                    latency_series_dropped: 0,
                },
                tcp_connections: None,
            },
            AuthzRow {
                workload: "emoji".into(),
                server: "emoji-http".into(),
                server_kind: Some("server".into()),
                route: Some("default".into()),
                route_kind: Some("default".into()),
                authorization: None,
                authorization_kind: None,
                // 15 denied without identity and 15 with, over 10 s.
                golden: Golden {
                    rps: 3.0,
                    ..Golden::default()
                },
                tcp_connections: None,
            },
        ]
    );
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "ROUTE         SERVER    AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN\n\
         default   emoji-http   emoji-from-web    90.00%   4.0rps         5.6ms          10ms          10ms          -\n\
         default   emoji-http   [unauthorized]         -   3.0rps             -             -             -          -\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
    assert!(json[1]["authorization"].is_null());
    assert_eq!(json[1]["rps"], 3.0);
    assert_eq!(json[0]["authorization"], "emoji-from-web");
    assert_eq!(json[0]["authorization_kind"], "authorizationpolicy");
    assert!(json[0]["tcp_connections"].is_null());
}

#[test]
fn a_window_without_requests_has_no_rows_and_says_so() {
    let same = Scrape::parse(
        "inbound_http_authz_allow_total{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"s\",route_group=\"policy.linkerd.io\",route_kind=\"HTTPRoute\",route_name=\"r\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"a\"} 4\n",
    )
    .unwrap();
    let targets = Target::parse_list("emoji=a:1").unwrap();
    let deltas = [Some(Delta::between(&same, &same, Duration::from_secs(1)))];
    let rows = authz_rows(&targets, &deltas);
    assert!(rows.is_empty());
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "No authorized or denied requests or connections found.\n"
    );
}

#[test]
fn rows_of_several_workloads_say_whose_they_are_in_the_table_too() {
    // Two workloads on the default policy: the same Server, route and
    // authorization names, which JSON tells apart by `workload`.
    let scrape = |n: u32| {
        Scrape::parse(&format!(
            "response_total{{direction=\"inbound\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"\",authz_kind=\"default\",authz_name=\"all-unauthenticated\",classification=\"success\"}} {n}\n"
        ))
        .unwrap()
    };
    let window = Duration::from_secs(10);
    let targets = Target::parse_list("emoji=a:1,voting=b:2").unwrap();
    let deltas = [
        Some(Delta::between(&scrape(0), &scrape(10), window)),
        Some(Delta::between(&scrape(0), &scrape(30), window)),
    ];
    let rows = authz_rows(&targets, &deltas);
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "WORKLOAD     ROUTE                        SERVER         AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN\n\
         emoji      default   default:all-unauthenticated   all-unauthenticated   100.00%   1.0rps             -             -             -          -\n\
         voting     default   default:all-unauthenticated   all-unauthenticated   100.00%   3.0rps             -             -             -          -\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
    assert_eq!(json[0]["workload"], "emoji");
    assert_eq!(json[1]["workload"], "voting");
    // The name as the metrics write it, and the kind beside it.
    assert_eq!(json[0]["server"], "all-unauthenticated");
    assert_eq!(json[0]["server_kind"], "default");
}

#[test]
fn opaque_servers_have_rows_of_connections_allowed_and_refused() {
    // An opaque Server with an authorization, one without (all its
    // connections refused), and an HTTP Server beside them.
    let scrape = |allowed: u32, denied: u32, terminated: u32, requests: u32| {
        Scrape::parse(&format!(
            "inbound_tcp_authz_allow_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-tcp\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-tcp-clients\",tls=\"no_identity\"}} {allowed}\n\
             inbound_tcp_authz_allow_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-tcp\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-tcp-clients\",tls=\"true\"}} {allowed}\n\
             inbound_tcp_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-db\",tls=\"no_identity\"}} {denied}\n\
             inbound_tcp_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-idle\",tls=\"no_identity\"}} 5\n\
             inbound_tcp_authz_terminate_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-tcp\",tls=\"no_identity\"}} {terminated}\n\
             inbound_http_authz_allow_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",tls=\"true\"}} {requests}\n\
             response_total{{direction=\"inbound\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"emoji-from-web\",classification=\"success\"}} {requests}\n"
        ))
        .unwrap()
    };
    let window = Duration::from_secs(10);
    let targets = Target::parse_list("emoji=a:1").unwrap();
    let deltas = [Some(Delta::between(
        &scrape(1, 0, 0, 0),
        &scrape(4, 2, 3, 20),
        window,
    ))];
    let rows = authz_rows(&targets, &deltas);
    let tcp_row = |server: &str, authorization: Option<&str>, n| AuthzRow {
        workload: "emoji".into(),
        server: server.into(),
        server_kind: Some("server".into()),
        route: None,
        route_kind: None,
        authorization: authorization.map(Into::into),
        authorization_kind: authorization.map(|_| "authorizationpolicy".into()),
        golden: Golden::default(),
        tcp_connections: Some(n),
    };
    assert_eq!(
        rows,
        [
            tcp_row("emoji-db", None, 2),
            AuthzRow {
                workload: "emoji".into(),
                server: "emoji-http".into(),
                server_kind: Some("server".into()),
                route: Some("default".into()),
                route_kind: Some("default".into()),
                authorization: Some("emoji-from-web".into()),
                authorization_kind: Some("authorizationpolicy".into()),
                golden: Golden {
                    success: Some(1.0),
                    rps: 2.0,
                    ..Golden::default()
                },
                tcp_connections: None,
            },
            // 3 more with identity and 3 more without; the terminations
            // were allowed once, and are not counted again.
            tcp_row("emoji-tcp", Some("emoji-tcp-clients"), 6),
        ]
    );
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "ROUTE         SERVER       AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN\n\
         -           emoji-db      [unauthorized]         -        -             -             -             -          2\n\
         default   emoji-http      emoji-from-web   100.00%   2.0rps             -             -             -          -\n\
         -          emoji-tcp   emoji-tcp-clients         -        -             -             -             -          6\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
    assert!(json[0]["route"].is_null() && json[0]["authorization"].is_null());
    assert_eq!(json[0]["tcp_connections"], 2);
    assert!(json[0]["success"].is_null());
    assert_eq!(json[1]["route"], "default");
    assert!(json[1]["tcp_connections"].is_null());
    assert_eq!(json[2]["authorization"], "emoji-tcp-clients");
    assert_eq!(json[2]["tcp_connections"], 6);
}

#[test]
fn an_authorization_policy_and_a_server_authorization_of_one_name_have_rows_of_their_own() {
    // `web` names an AuthorizationPolicy on the route and a
    // ServerAuthorization; `deny` names an AuthorizationPolicy on the
    // opaque Server and is its accessPolicy too. The responses, from a
    // proxy that does not write the kinds on them, do not say which `web`
    // allowed them.
    let scrape = |policy: u32, server_authz: u32, tcp: u32| {
        let srv = "srv_group=\"policy.linkerd.io\",srv_kind=\"server\"";
        let route = "route_group=\"\",route_kind=\"default\",route_name=\"default\"";
        Scrape::parse(&format!(
            "inbound_http_authz_allow_total{{{srv},srv_name=\"emoji-http\",srv_port=\"8080\",{route},authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"web\",tls=\"true\"}} {policy}\n\
             inbound_http_authz_allow_total{{{srv},srv_name=\"emoji-http\",srv_port=\"8080\",{route},authz_group=\"policy.linkerd.io\",authz_kind=\"serverauthorization\",authz_name=\"web\",tls=\"true\"}} {server_authz}\n\
             response_total{{direction=\"inbound\",srv_name=\"emoji-http\",route_name=\"default\",authz_name=\"web\",classification=\"success\"}} {}\n\
             inbound_tcp_authz_allow_total{{{srv},srv_name=\"emoji-tcp\",srv_port=\"5432\",authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",authz_name=\"deny\",tls=\"true\"}} {tcp}\n\
             inbound_tcp_authz_allow_total{{{srv},srv_name=\"emoji-tcp\",srv_port=\"5432\",authz_group=\"\",authz_kind=\"default\",authz_name=\"deny\",tls=\"true\"}} {tcp}\n",
            policy + server_authz,
        ))
        .unwrap()
    };
    let window = Duration::from_secs(10);
    let targets = Target::parse_list("emoji=a:1").unwrap();
    let deltas = [Some(Delta::between(
        &scrape(0, 0, 0),
        &scrape(30, 10, 4),
        window,
    ))];
    let rows = authz_rows(&targets, &deltas);
    let row = |route: Option<&str>, name: &str, kind: Option<&str>, golden, tcp| AuthzRow {
        workload: "emoji".into(),
        server: if route.is_some() {
            "emoji-http"
        } else {
            "emoji-tcp"
        }
        .into(),
        server_kind: Some("server".into()),
        route: route.map(Into::into),
        route_kind: route.map(|_| "default".into()),
        authorization: Some(name.into()),
        authorization_kind: kind.map(Into::into),
        golden,
        tcp_connections: tcp,
    };
    let rps = |rps| Golden {
        rps,
        ..Golden::default()
    };
    assert_eq!(
        rows,
        [
            // The responses of both, which the series cannot split.
            row(
                Some("default"),
                "web",
                None,
                Golden {
                    success: Some(1.0),
                    rps: 4.0,
                    ..Golden::default()
                },
                None
            ),
            row(
                Some("default"),
                "web",
                Some("authorizationpolicy"),
                rps(3.0),
                None
            ),
            row(
                Some("default"),
                "web",
                Some("serverauthorization"),
                rps(1.0),
                None
            ),
            row(
                None,
                "deny",
                Some("authorizationpolicy"),
                Golden::default(),
                Some(4)
            ),
            row(None, "deny", Some("default"), Golden::default(), Some(4)),
        ]
    );
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "ROUTE         SERVER              AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN\n\
         default   emoji-http                        web   100.00%   4.0rps             -             -             -          -\n\
         default   emoji-http    authorizationpolicy/web         -   3.0rps             -             -             -          -\n\
         default   emoji-http    serverauthorization/web         -   1.0rps             -             -             -          -\n\
         -          emoji-tcp   authorizationpolicy/deny         -        -             -             -             -          4\n\
         -          emoji-tcp               default/deny         -        -             -             -             -          4\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
    assert!(json[0]["authorization_kind"].is_null());
    assert_eq!(json[1]["authorization"], "web");
    assert_eq!(json[1]["authorization_kind"], "authorizationpolicy");
    assert_eq!(json[2]["authorization_kind"], "serverauthorization");
}

/// The labels of a Server `name` on port 8080.
fn server(name: &str) -> String {
    format!(
        "srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"{name}\",srv_port=\"8080\""
    )
}

/// The labels of route `name` of `kind`, in `group`.
fn route(group: &str, kind: &str, name: &str) -> String {
    format!("route_group=\"{group}\",route_kind=\"{kind}\",route_name=\"{name}\"")
}

/// The labels of authorization `name` of `kind`.
fn authz(kind: &str, name: &str) -> String {
    let group = if kind == "default" {
        ""
    } else {
        "policy.linkerd.io"
    };
    format!("authz_group=\"{group}\",authz_kind=\"{kind}\",authz_name=\"{name}\"")
}

/// The rows of one workload, `emoji`, from `scrape(0)` to `scrape(1)` over
/// 10 seconds.
fn rows_of(scrape: impl Fn(u32) -> String) -> Vec<AuthzRow> {
    let targets = Target::parse_list("emoji=a:1").unwrap();
    let [before, after] = [0, 1].map(|n| Scrape::parse(&scrape(n)).unwrap());
    let deltas = [Some(Delta::between(
        &before,
        &after,
        Duration::from_secs(10),
    ))];
    authz_rows(&targets, &deltas)
}

#[test]
fn the_default_policy_and_a_server_of_its_name_have_rows_of_their_own() {
    // Port 8080 has a Server named `all-unauthenticated`; port 9090 none,
    // so the default policy of that name decides it. Each has allowed and
    // denied requests.
    let default_srv =
        "srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"9090\"";
    let rows = rows_of(|n| {
        let srv = server("all-unauthenticated");
        let dflt = route("", "default", "default");
        let web = authz("authorizationpolicy", "web");
        let all = authz("default", "all-unauthenticated");
        format!(
            "inbound_http_authz_allow_total{{{srv},{dflt},{web},tls=\"true\"}} {}\n\
             response_total{{direction=\"inbound\",tls=\"true\",{srv},{dflt},{web},classification=\"success\"}} {}\n\
             inbound_http_authz_deny_total{{{srv},{dflt},tls=\"no_identity\"}} {}\n\
             inbound_http_authz_allow_total{{{default_srv},{dflt},{all},tls=\"no_identity\"}} {}\n\
             response_total{{direction=\"inbound\",tls=\"no_identity\",{default_srv},{dflt},{all},classification=\"success\"}} {}\n\
             response_total{{direction=\"inbound\",tls=\"no_identity\",{default_srv},{dflt},{all},classification=\"failure\"}} {}\n\
             inbound_http_authz_deny_total{{{default_srv},{dflt},tls=\"no_identity\"}} {}\n",
            40 * n,
            40 * n,
            10 * n,
            20 * n,
            10 * n,
            10 * n,
            30 * n,
        )
    });
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.server_kind.as_deref(),
                r.authorization.as_deref(),
                r.golden.success,
                r.golden.rps,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("default"), Some("all-unauthenticated"), Some(0.5), 2.0),
            (Some("default"), None, None, 3.0),
            (Some("server"), Some("web"), Some(1.0), 4.0),
            (Some("server"), None, None, 1.0),
        ]
    );
    assert!(rows.iter().all(|r| r.server == "all-unauthenticated"));
    assert_eq!(
        render_authz(&rows, Format::Table).unwrap(),
        "ROUTE                          SERVER         AUTHORIZATION   SUCCESS      RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   TCP_CONN\n\
         default   default:all-unauthenticated   all-unauthenticated    50.00%   2.0rps             -             -             -          -\n\
         default   default:all-unauthenticated        [unauthorized]         -   3.0rps             -             -             -          -\n\
         default           all-unauthenticated                   web   100.00%   4.0rps             -             -             -          -\n\
         default           all-unauthenticated        [unauthorized]         -   1.0rps             -             -             -          -\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_authz(&rows, Format::Json).unwrap()).unwrap();
    assert_eq!(json[0]["server"], "all-unauthenticated");
    assert_eq!(json[0]["server_kind"], "default");
    assert_eq!(json[2]["server_kind"], "server");
    assert_eq!(json[0]["route_kind"], "default");
}

#[test]
fn responses_that_carry_the_authorization_kind_split_its_success_rate() {
    // An AuthorizationPolicy and a ServerAuthorization, both `web`: the
    // responses say which allowed them, so each has its own figures.
    let rows = rows_of(|n| {
        let srv = server("emoji-http");
        let dflt = route("", "default", "default");
        let mut text = String::new();
        for (kind, ok, failed) in [
            ("authorizationpolicy", 30, 0),
            ("serverauthorization", 5, 5),
        ] {
            let web = authz(kind, "web");
            text += &format!(
                "inbound_http_authz_allow_total{{{srv},{dflt},{web},tls=\"true\"}} {}\n\
                 response_total{{direction=\"inbound\",{srv},{dflt},{web},classification=\"success\"}} {}\n\
                 response_total{{direction=\"inbound\",{srv},{dflt},{web},classification=\"failure\"}} {}\n\
                 response_latency_ms_bucket{{direction=\"inbound\",{srv},{dflt},{web},le=\"10\"}} {}\n\
                 response_latency_ms_bucket{{direction=\"inbound\",{srv},{dflt},{web},le=\"+Inf\"}} {}\n",
                (ok + failed) * n,
                ok * n,
                failed * n,
                ok * n,
                (ok + failed) * n,
            );
        }
        text
    });
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.authorization_kind.as_deref(),
                r.golden.success,
                r.golden.rps,
                r.golden.latency_ms_p50.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("authorizationpolicy"), Some(1.0), 3.0, true),
            (Some("serverauthorization"), Some(0.5), 1.0, true),
        ]
    );
    let table = render_authz(&rows, Format::Table).unwrap();
    assert!(
        table.contains(" authorizationpolicy/web   100.00%   3.0rps "),
        "{table}"
    );
    assert!(
        table.contains(" serverauthorization/web    50.00%   1.0rps "),
        "{table}"
    );
}

#[test]
fn an_http_route_and_a_grpc_route_of_one_name_have_rows_of_their_own() {
    let rows = rows_of(|n| {
        let srv = server("emoji-http");
        let all = authz("default", "all-unauthenticated");
        let mut text = String::new();
        for (kind, count) in [("HTTPRoute", 10), ("GRPCRoute", 30)] {
            let get = route("gateway.networking.k8s.io", kind, "get");
            text += &format!(
                "inbound_http_authz_allow_total{{{srv},{get},{all},tls=\"true\"}} {}\n\
                 response_total{{direction=\"inbound\",{srv},{get},{all},classification=\"success\"}} {}\n",
                count * n,
                count * n,
            );
        }
        text
    });
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.route_kind.as_deref(), r.golden.rps))
        .collect();
    assert_eq!(
        summary,
        [(Some("GRPCRoute"), 3.0), (Some("HTTPRoute"), 1.0)]
    );
    let table = render_authz(&rows, Format::Table).unwrap();
    let routes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(routes, ["GRPCRoute/get", "HTTPRoute/get"], "{table}");
}
