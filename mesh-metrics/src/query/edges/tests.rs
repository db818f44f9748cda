use super::*;
use crate::query::Scrape;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";

/// Two scrapes of one sidecar, 10 seconds apart.
fn delta(before: &str, after: &str) -> Option<Delta> {
    Some(Delta::between(
        &Scrape::parse(before).unwrap(),
        &Scrape::parse(after).unwrap(),
        Duration::from_secs(10),
    ))
}

/// `web` calls `emoji` over mutual TLS (20 successes, 5 failures) and no
/// longer calls `voting`; `plain`, without identity, calls `emoji` (10
/// requests, denied); `emoji` counts connections from clients without
/// identity (`plain`'s, or a client's without a sidecar).
fn mesh() -> (Vec<Target>, Vec<Option<Delta>>) {
    mesh_as("web=a:1,emoji=b:2,plain=c:3,down=d:4", "")
}

/// [`mesh`] with `admin` for the targets, and `info` (the gauge naming a
/// sidecar's identity, with `{id}` for it) in the scrapes of `web` and
/// `emoji`.
fn mesh_as(admin: &str, info: &str) -> (Vec<Target>, Vec<Option<Delta>>) {
    let info = |id: &str| info.replace("{id}", id);
    let web = |ok: u32, fail: u32| {
        info(WEB)
            + &format!(
                "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",status_code=\"200\",classification=\"success\"}} {ok}\n\
             response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",status_code=\"500\",classification=\"failure\"}} {fail}\n\
             response_total{{direction=\"outbound\",dst_service=\"voting\",tls=\"true\",server_id=\"spiffe://example.org/ns/emojivoto/sa/voting\",classification=\"success\"}} 5\n"
            )
    };
    let emoji = |ok: u32, fail: u32, plain: u32| {
        info(EMOJI)
            + &format!(
                "response_total{{direction=\"inbound\",srv_name=\"emoji-http\",tls=\"true\",client_id=\"{WEB}\",classification=\"success\"}} {ok}\n\
             response_total{{direction=\"inbound\",srv_name=\"emoji-http\",tls=\"true\",client_id=\"{WEB}\",classification=\"failure\"}} {fail}\n\
             tcp_open_total{{direction=\"inbound\",peer=\"src\",tls=\"true\",client_id=\"{WEB}\"}} 1\n\
             tcp_open_total{{direction=\"inbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"}} {plain}\n\
             inbound_http_authz_deny_total{{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-http\",route_group=\"\",route_kind=\"default\",route_name=\"default\",tls=\"no_identity\"}} {plain}\n"
            )
    };
    let plain = |n: u32| {
        format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\",status_code=\"403\",classification=\"success\"}} {n}\n"
        )
    };
    let targets = Target::parse_list(admin).unwrap();
    let deltas = vec![
        delta(&web(10, 0), &web(30, 5)),
        delta(&emoji(10, 0, 1), &emoji(30, 5, 3)),
        delta(&plain(0), &plain(10)),
        None,
    ];
    (targets, deltas)
}

#[test]
fn both_ends_of_an_edge_make_one_row_and_a_caller_without_identity_its_own() {
    let (targets, deltas) = mesh();
    let rows = edge_rows(&targets, &deltas);
    let golden = |success, rps| Golden {
        success,
        rps,
        ..Golden::default()
    };
    assert_eq!(
        rows,
        [
            EdgeRow {
                src: "plain".into(),
                dst: "emoji".into(),
                client_id: None,
                server_id: None,
                no_tls_reason: Some("disabled".into()),
                golden: golden(Some(1.0), 1.0),
            },
            EdgeRow {
                src: "web".into(),
                dst: "emoji".into(),
                client_id: Some(WEB.into()),
                server_id: Some(EMOJI.into()),
                no_tls_reason: None,
                golden: golden(Some(0.8), 2.5),
            },
        ]
    );
    assert_eq!(
        render_edges(&rows, Format::Table).unwrap(),
        "SRC       DST       CLIENT_ID         SERVER_ID    SECURED   SUCCESS      RPS\n\
         plain   emoji               -                 -   Disabled   100.00%   1.0rps\n\
         web     emoji   web.emojivoto   emoji.emojivoto          ✓    80.00%   2.5rps\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_edges(&rows, Format::Json).unwrap()).unwrap();
    assert_eq!(
        json[1],
        serde_json::json!({
            "src": "web",
            "dst": "emoji",
            "client_id": WEB,
            "server_id": EMOJI,
            "no_tls_reason": null,
            "success": 0.8,
            "rps": 2.5,
            "latency_ms_p50": null,
            "latency_ms_p95": null,
            "latency_ms_p99": null,
        })
    );
}

#[test]
fn a_client_identity_no_named_workload_holds_is_its_own_src() {
    // Only emoji was named: web's calls are known by web's identity.
    let (targets, deltas) = mesh();
    let rows = edge_rows(&targets[1..2], &deltas[1..2]);
    let srcs: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.src.as_str(), r.server_id.as_deref()))
        .collect();
    // emoji's own identity is not learned without a caller naming it.
    assert_eq!(srcs, [(WEB, None)]);
    assert_eq!(rows[0].golden.success, Some(0.8));
}

#[test]
fn workloads_named_otherwise_than_their_services_are_known_by_their_own_gauge() {
    // The same traffic, but emoji is `backend` and web is `frontend`: no
    // series names a service like either, and each sidecar says who it is.
    let info = "identity_cert_info{identity=\"{id}\"} 1\n";
    let (targets, deltas) = mesh_as("frontend=a:1,backend=b:2,plain=c:3,down=d:4", info);
    let rows = edge_rows(&targets, &deltas);
    let keys: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.src.as_str(),
                r.dst.as_str(),
                r.client_id.as_deref(),
                r.server_id.as_deref(),
                r.no_tls_reason.as_deref(),
                r.golden.success,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (
                "frontend",
                "backend",
                Some(WEB),
                Some(EMOJI),
                None,
                Some(0.8)
            ),
            // plain's calls required no identity: DST is the service.
            ("plain", "emoji", None, None, Some("disabled"), Some(1.0)),
        ]
    );

    // Without the gauge, neither identity is learned and the two ends of
    // frontend's calls stay apart.
    let (targets, deltas) = mesh_as("frontend=a:1,backend=b:2,plain=c:3,down=d:4", "");
    let rows = edge_rows(&targets, &deltas);
    let ends: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.src.as_str(), r.dst.as_str()))
        .collect();
    assert_eq!(
        ends,
        [("frontend", "emoji"), ("plain", "emoji"), (WEB, "backend")]
    );
}

#[test]
fn a_window_without_traffic_has_no_edges_and_says_so() {
    let (targets, _) = mesh();
    let same = "response_total{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"x\"} 4\n";
    let deltas = vec![delta(same, same), None, None, None];
    let rows = edge_rows(&targets, &deltas);
    assert!(rows.is_empty());
    assert_eq!(
        render_edges(&rows, Format::Table).unwrap(),
        "No edges found.\n"
    );
    assert_eq!(render_edges(&rows, Format::Json).unwrap(), "[]\n");
}

#[test]
fn identities_and_reasons_read_as_linkerd_prints_them() {
    assert_eq!(short_identity(WEB), "web.emojivoto");
    assert_eq!(
        short_identity("web.emojivoto.serviceaccount.identity.linkerd.cluster.local"),
        "web.emojivoto"
    );
    assert_eq!(
        short_identity("spiffe://example.org/vm/7"),
        "spiffe://example.org/vm/7"
    );
    assert_eq!(short_identity("web"), "web");
    assert_eq!(secured(None), "✓");
    assert_eq!(secured(Some("no_tls_from_remote")), "No Tls From Remote");
    assert_eq!(secured(Some("disabled")), "Disabled");
}

#[test]
fn overflow_series_name_no_peer_and_make_no_edge() {
    // Past its series limit, emoji's sidecar folds label sets into series
    // that keep the direction and TLS status but not the client's identity:
    // mutual-TLS traffic from some client, not traffic without one.
    let (targets, mut deltas) = mesh();
    let folded = |n: u32| {
        format!(
            "response_total{{direction=\"inbound\",tls=\"true\",overflow=\"true\",classification=\"success\"}} {n}\n\
             response_latency_ms_bucket{{direction=\"inbound\",tls=\"true\",overflow=\"true\",le=\"+Inf\"}} {n}\n\
             tcp_open_total{{direction=\"inbound\",peer=\"src\",tls=\"true\",overflow=\"true\"}} {n}\n"
        )
    };
    deltas.push(delta(&folded(0), &folded(40)));
    let targets: Vec<Target> = targets
        .into_iter()
        .chain(Target::parse_list("emoji=e:5").unwrap())
        .collect();
    let rows = edge_rows(&targets, &deltas);
    let (plain_targets, plain_deltas) = mesh();
    assert_eq!(rows, edge_rows(&plain_targets, &plain_deltas));
    assert!(
        rows.iter()
            .all(|r| r.no_tls_reason.as_deref() != Some("no_peer_identity"))
    );
}

#[test]
fn callers_sharing_an_identity_are_counted_once_by_their_own_ends() {
    // web and web-canary run as one service account: emoji's sidecar sees
    // both as WEB, and cannot tell which sent what. Each caller's own end
    // shows its share; the server's end of the same calls is no third row.
    let info = |id: &str| format!("identity_cert_info{{identity=\"{id}\"}} 1\n");
    let caller = |n: u32| {
        info(WEB)
            + &format!(
                "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",classification=\"success\"}} {n}\n"
            )
    };
    let server = |n: u32| {
        info(EMOJI)
            + &format!(
                "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\",classification=\"success\"}} {n}\n"
            )
    };
    let targets = Target::parse_list("web=a:1,web-canary=b:2,emoji=c:3").unwrap();
    let deltas = vec![
        delta(&caller(0), &caller(20)),
        delta(&caller(0), &caller(10)),
        delta(&server(0), &server(30)),
    ];
    let rows = edge_rows(&targets, &deltas);
    let ends: Vec<(&str, &str, f64)> = rows
        .iter()
        .map(|r| (r.src.as_str(), r.dst.as_str(), r.golden.rps))
        .collect();
    assert_eq!(ends, [("web", "emoji", 2.0), ("web-canary", "emoji", 1.0)]);
}

#[test]
fn a_caller_end_without_responses_in_the_window_does_not_hide_the_servers() {
    // web's replica given with --admin was idle; another replica called
    // emoji, which saw web's identity 30 times. The row has emoji's view
    // rather than 0 RPS and no success rate.
    let info = |id: &str| format!("identity_cert_info{{identity=\"{id}\"}} 1\n");
    let idle = info(WEB)
        + &format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",classification=\"success\"}} 7\n"
        );
    let server = |ok: u32, fail: u32| {
        info(EMOJI)
            + &format!(
                "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\",classification=\"success\"}} {ok}\n\
                 response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\",classification=\"failure\"}} {fail}\n"
            )
    };
    let targets = Target::parse_list("web=a:1,emoji=b:2").unwrap();
    let deltas = vec![delta(&idle, &idle), delta(&server(0, 0), &server(27, 3))];
    let rows = edge_rows(&targets, &deltas);
    let ends: Vec<(&str, &str, Option<f64>, f64)> = rows
        .iter()
        .map(|r| {
            (
                r.src.as_str(),
                r.dst.as_str(),
                r.golden.success,
                r.golden.rps,
            )
        })
        .collect();
    assert_eq!(ends, [("web", "emoji", Some(0.9), 3.0)]);
}

#[test]
fn a_plaintext_edge_is_its_callers_row_and_traffic_from_no_identity_no_edge() {
    // plain calls emoji without TLS; emoji's sidecar counts those calls
    // with every other client's that proved no identity (here, also 5
    // from a client without a sidecar), in series that name no client:
    // nothing there says which are plain's, so the edge is plain's own
    // row, as `linkerd viz edges` builds it, and emoji's end makes none.
    let plain = |n: u32| {
        format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\",classification=\"success\"}} {n}\n"
        )
    };
    let emoji = |n: u32| {
        format!(
            "response_total{{direction=\"inbound\",srv_name=\"emoji-http\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\",classification=\"success\"}} {n}\n\
             tcp_open_total{{direction=\"inbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"}} {n}\n"
        )
    };
    let targets = Target::parse_list("plain=a:1,emoji=b:2").unwrap();
    let deltas = vec![delta(&plain(0), &plain(10)), delta(&emoji(0), &emoji(15))];
    let rows = edge_rows(&targets, &deltas);
    assert_eq!(
        rows,
        [EdgeRow {
            src: "plain".into(),
            dst: "emoji".into(),
            client_id: None,
            server_id: None,
            no_tls_reason: Some("disabled".into()),
            golden: Golden {
                success: Some(1.0),
                rps: 1.0,
                ..Golden::default()
            },
        }]
    );
    assert_eq!(
        render_edges(&rows, Format::Table).unwrap(),
        "SRC       DST   CLIENT_ID   SERVER_ID    SECURED   SUCCESS      RPS\n\
         plain   emoji           -           -   Disabled   100.00%   1.0rps\n"
    );
    // emoji's end alone: traffic from no one it can name.
    let rows = edge_rows(&targets[1..], &deltas[1..]);
    assert!(rows.is_empty(), "{rows:?}");
}

#[test]
fn an_edge_whose_latency_lost_a_histogram_says_so() {
    let mut after = format!(
        "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",classification=\"success\"}} 10\n"
    );
    for i in 0..300 {
        after += &format!(
            "response_latency_ms_bucket{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",le=\"{i}.5\"}} 10\n"
        );
    }
    let targets = Target::parse_list("web=a:1").unwrap();
    let rows = edge_rows(&targets, &[delta("", &after)]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].golden.rps, 1.0);
    assert_eq!(rows[0].golden.latency_ms_p50, None);
    assert_eq!(rows[0].golden.latency_series_dropped, 1);
}
