use std::time::Duration;

use super::*;
use crate::query::Scrape;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const BOT: &str = "spiffe://example.org/ns/emojivoto/sa/bot";

fn delta(text: &str) -> Option<Delta> {
    let after = Scrape::parse(text).unwrap();
    Some(Delta::between(
        &Scrape::default(),
        &after,
        Duration::from_secs(1),
    ))
}

#[test]
fn tls_status_reads_as_linkerd_labels_it() {
    let s = |labels: &str| {
        Scrape::parse(&format!("response_total{{{labels}}} 1\n"))
            .unwrap()
            .samples()[0]
            .clone()
    };
    let mtls = s(&format!("tls=\"true\",client_id=\"{WEB}\""));
    assert_eq!(no_tls_reason(&mtls, "client_id"), None);
    assert_eq!(peer_identity(&mtls, "client_id"), Some(WEB));
    let plain = s("tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"");
    assert_eq!(
        no_tls_reason(&plain, "client_id"),
        Some("no_tls_from_remote")
    );
    assert_eq!(peer_identity(&plain, "client_id"), None);
    // Linkerd 2.8's spelling, from an older proxy, reads as today's.
    let legacy = s("tls=\"no_identity\",no_tls_reason=\"not_provided_by_remote\"");
    assert_eq!(
        no_tls_reason(&legacy, "client_id"),
        Some("no_tls_from_remote")
    );
    assert_eq!(peer_identity(&legacy, "client_id"), None);
    // A reason this mesh never writes is shown as it was scraped.
    let other = s("tls=\"no_identity\",no_tls_reason=\"ingress_non_http\"");
    assert_eq!(no_tls_reason(&other, "server_id"), Some("ingress_non_http"));
    assert_eq!(
        no_tls_reason(&s("tls=\"disabled\""), "server_id"),
        Some("disabled")
    );
    let no_cert = s("tls=\"true\",client_id=\"\"");
    assert_eq!(
        no_tls_reason(&no_cert, "client_id"),
        Some("no_peer_identity")
    );
    assert_eq!(no_tls_reason(&s(""), "client_id"), Some("unknown"));
}

#[test]
fn a_server_is_known_by_its_service_and_a_caller_by_elimination() {
    let targets = Target::parse_list("web=a:1,emoji=b:2,plain=c:3").unwrap();
    let deltas = [
        delta(&format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\"}} 3\n"
        )),
        delta(&format!(
            "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\"}} 3\n\
             tcp_open_total{{direction=\"inbound\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"}} 1\n"
        )),
        delta("response_total{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\"} 3\n"),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(ids.of("emoji"), Some(EMOJI));
    assert_eq!(ids.of("web"), Some(WEB));
    assert_eq!(ids.name_of(WEB), Some("web"));
    // A workload without identity has none to learn.
    assert_eq!(ids.of("plain"), None);
}

#[test]
fn two_unexplained_client_identities_are_left_unknown() {
    // web and a bot nobody named both call emoji: which is web's is
    // not something the scrapes say.
    let targets = Target::parse_list("web=a:1,emoji=b:2").unwrap();
    let deltas = [
        delta(&format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\"}} 3\n"
        )),
        delta(&format!(
            "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\"}} 3\n\
             response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{BOT}\"}} 3\n"
        )),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(ids.of("emoji"), Some(EMOJI));
    assert_eq!(ids.of("web"), None);
    assert_eq!(ids.name_of(BOT), None);
}

#[test]
fn one_caller_learned_at_one_server_settles_another() {
    // emoji saw web and vote-bot and cannot tell them apart; voting saw
    // only web. Once voting settles web's identity, vote-bot's is the
    // one left at emoji.
    let targets = Target::parse_list("emoji=a:1,voting=b:2,web=c:3,vote-bot=d:4").unwrap();
    let call = |service: &str| {
        format!(
            "response_total{{direction=\"outbound\",dst_service=\"{service}\",tls=\"true\",server_id=\"{service}-id\"}} 1\n"
        )
    };
    let seen = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                format!(
                    "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{id}\"}} 1\n"
                )
            })
            .collect::<String>()
    };
    let deltas = [
        delta(&seen(&[WEB, BOT])),
        delta(&seen(&[WEB])),
        delta(&(call("emoji") + &call("voting"))),
        delta(&call("emoji")),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(ids.of("emoji"), Some("emoji-id"));
    assert_eq!(ids.of("voting"), Some("voting-id"));
    assert_eq!(ids.of("web"), Some(WEB));
    assert_eq!(ids.of("vote-bot"), Some(BOT));
}

/// Two scrapes of one sidecar, a second apart.
fn window(before: &str, after: &str) -> Option<Delta> {
    Some(Delta::between(
        &Scrape::parse(before).unwrap(),
        &Scrape::parse(after).unwrap(),
        Duration::from_secs(1),
    ))
}

fn info(id: &str) -> String {
    format!("identity_cert_info{{identity=\"{id}\"}} 1\n")
}

fn pairs(ids: &Identities) -> Vec<(&str, &str)> {
    ids.by_name
        .iter()
        .map(|(n, i)| (n.as_str(), i.as_str()))
        .collect()
}

#[test]
fn a_sidecar_that_names_its_identity_is_known_by_it_whatever_its_name() {
    // Neither name is a service name, so no caller's series could tell
    // them; the gauge is unchanged over the window (an increase of 0) and
    // still names its sidecar's identity.
    let targets = Target::parse_list("frontend=a:1,backend=b:2,plain=c:3").unwrap();
    let frontend = |n: u32| {
        info(WEB)
            + &format!(
                "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\"}} {n}\n"
            )
    };
    let backend = |n: u32| {
        info(EMOJI)
            + &format!(
                "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\"}} {n}\n"
            )
    };
    let plain = "response_total{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\"} 3\n";
    let deltas = [
        window(&frontend(1), &frontend(4)),
        window(&backend(1), &backend(4)),
        window(plain, plain),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(pairs(&ids), [("frontend", WEB), ("backend", EMOJI)]);
    assert_eq!(ids.name_of(EMOJI), Some("backend"));

    // The same scrapes without the gauge: inference finds neither.
    let bare = |text: String| text.replace(&info(WEB), "").replace(&info(EMOJI), "");
    let deltas = [
        window(&bare(frontend(1)), &bare(frontend(4))),
        window(&bare(backend(1)), &bare(backend(4))),
        window(plain, plain),
    ];
    assert_eq!(pairs(&Identities::learn(&targets, &deltas)), []);
}

#[test]
fn the_gauge_wins_over_inference_which_fills_in_the_scrapes_without_it() {
    // web says who it is; a caller's server_id for a service named "web"
    // says otherwise and is not taken. emoji and vote export no gauge:
    // emoji is known by its service, and vote by elimination at emoji,
    // where web's identity is already explained.
    let targets = Target::parse_list("web=a:1,emoji=b:2,vote=c:3").unwrap();
    let call = |service: &str, id: &str| {
        format!(
            "response_total{{direction=\"outbound\",dst_service=\"{service}\",tls=\"true\",server_id=\"{id}\"}} 1\n"
        )
    };
    let seen = |id: &str| {
        format!("response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{id}\"}} 1\n")
    };
    let deltas = [
        delta(&(info(WEB) + &call("emoji", EMOJI))),
        delta(&(seen(WEB) + &seen(BOT))),
        delta(&(call("emoji", EMOJI) + &call("web", "spiffe://example.org/ns/other/sa/web"))),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(pairs(&ids), [("web", WEB), ("emoji", EMOJI), ("vote", BOT)]);
}

#[test]
fn a_caller_is_settled_at_a_server_it_reaches_by_the_servers_own_identity() {
    // backend names its identity; bot calls it as service "emoji" and
    // exports no gauge. The server_id ties bot's calls to backend, where
    // one client identity is unexplained.
    let targets = Target::parse_list("backend=a:1,bot=b:2").unwrap();
    let deltas = [
        delta(
            &(info(EMOJI)
                + &format!(
                    "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{BOT}\"}} 1\n"
                )),
        ),
        delta(&format!(
            "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\"}} 1\n"
        )),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(pairs(&ids), [("backend", EMOJI), ("bot", BOT)]);
}

#[test]
fn replicas_naming_different_identities_leave_their_workload_unknown() {
    // web's replicas disagree; emoji saw one client, web's calls, which
    // elimination would otherwise have given to web.
    let targets = Target::parse_list("web=a:1,web=a:2,emoji=b:1").unwrap();
    let call = format!(
        "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\"}} 1\n"
    );
    let deltas = [
        delta(&(info(WEB) + &call)),
        delta(&(info(BOT) + &call)),
        delta(&format!(
            "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\"}} 1\n"
        )),
    ];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(pairs(&ids), [("emoji", EMOJI)]);
    assert_eq!(ids.name_of(WEB), None);
}

#[test]
fn workloads_sharing_an_identity_each_have_it_and_it_names_neither() {
    let targets = Target::parse_list("web=a:1,web-canary=b:1").unwrap();
    let deltas = [delta(&info(WEB)), delta(&info(WEB))];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(pairs(&ids), [("web", WEB), ("web-canary", WEB)]);
    assert_eq!(ids.name_of(WEB), None);
}

#[test]
fn a_caller_idle_in_the_window_is_not_paired_with_another_client() {
    // web called emoji before the window and is idle in it; vote-bot, not
    // given with --admin, calls emoji in the window. Its identity is the
    // only client identity emoji saw move, but nothing says it is web's.
    let targets = Target::parse_list("web=a:1,emoji=b:2").unwrap();
    let idle = format!(
        "response_total{{direction=\"outbound\",dst_service=\"emoji\",tls=\"true\",server_id=\"{EMOJI}\",classification=\"success\"}} 40\n"
    );
    let bot = |n: u32| {
        info(EMOJI)
            + &format!(
                "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{BOT}\",classification=\"success\"}} {n}\n"
            )
    };
    let deltas = [window(&idle, &idle), window(&bot(5), &bot(25))];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(ids.of("web"), None);
    assert_eq!(ids.name_of(BOT), None);

    // Calling in the window, web is the one caller, and BOT the one client.
    let busy = idle.replace(" 40\n", " 60\n");
    let deltas = [window(&idle, &busy), window(&bot(5), &bot(25))];
    let ids = Identities::learn(&targets, &deltas);
    assert_eq!(ids.of("web"), Some(BOT));
}

#[test]
fn thousands_of_identities_in_a_scrape_are_read_in_one_pass() {
    // A scraped server picks how many identities its series name: 20,000
    // server and client identities, and as many of its own. Each looked
    // for among those before it, that was some 10^8 comparisons.
    const N: usize = 20_000;
    let mut web = String::new();
    let mut emoji = String::new();
    for i in 0..N {
        web += &format!(
            "response_total{{direction=\"outbound\",dst_service=\"s{i}\",tls=\"true\",server_id=\"id{i}\"}} 1\n"
        );
        emoji += &format!(
            "response_total{{direction=\"inbound\",tls=\"true\",client_id=\"id{i}\"}} 1\n{}",
            info(&format!("own{i}"))
        );
    }
    emoji +=
        &format!("response_total{{direction=\"inbound\",tls=\"true\",client_id=\"{WEB}\"}} 1\n");
    let targets = Target::parse_list("web=a:1,emoji=b:2,s7=c:3").unwrap();
    let deltas = [delta(&web), delta(&emoji), None];
    let ids = Identities::learn(&targets, &deltas);
    // emoji named 20,000 identities of its own: it has none.
    assert_eq!(ids.of("emoji"), None);
    // s7 is known by the one identity web requires of it.
    assert_eq!(ids.of("s7"), Some("id7"));
    assert_eq!(ids.of("web"), None);
}
