//! Who is on each end of a connection: the TLS status of a series, and the
//! identities of the workloads given with `--admin`.
//!
//! A sidecar does not export its own identity: no metric and no admin
//! endpoint carries it. Its peers do. A caller's outbound series carry the
//! identity its sidecar requires of the service (`server_id`; the handshake
//! fails closed on any other), and a server's inbound series the identity
//! the client proved (`client_id`). So a workload's identity
//! is learned from the other workloads' scrapes, from evidence only:
//!
//! 1. a server's is the `server_id` of the mutual-TLS series, in any
//!    scrape, to the service named like the workload (`dst_service="emoji"`
//!    for `--admin emoji=ADDR`), when that is one identity;
//! 2. a client's is found by elimination at each named server: when one
//!    named workload of unknown identity called it over mutual TLS, and the
//!    server saw one client identity no named workload holds yet, that
//!    identity is the caller's. Each identity learned can settle another
//!    server, so this repeats until nothing changes.
//!
//! An identity neither rule settles stays unknown, and the views show it
//! as it is rather than guess whose it is.

use super::{Delta, Sample, Target};

/// Why a series' traffic was not on mutual TLS, as Linkerd labels it;
/// `None` when it was. `peer` is the label with the peer's identity.
///
/// `tls="disabled"` (the sidecar was not set up for TLS) reads as
/// `disabled`; `tls="no_identity"` as its `no_tls_reason`; TLS with no
/// peer identity (a client without a certificate) as `no_peer_identity`.
pub(crate) fn no_tls_reason<'a>(s: &'a Sample, peer: &str) -> Option<&'a str> {
    match s.label("tls") {
        Some("true") => match s.label(peer) {
            Some(id) if !id.is_empty() => None,
            _ => Some("no_peer_identity"),
        },
        Some("no_identity") => Some(s.label("no_tls_reason").unwrap_or("no_identity")),
        Some(other) => Some(other),
        None => Some("unknown"),
    }
}

/// The identity a mutual-TLS series names under `peer`, if it does.
pub(crate) fn peer_identity<'a>(s: &'a Sample, peer: &str) -> Option<&'a str> {
    if no_tls_reason(s, peer).is_some() {
        return None;
    }
    s.label(peer)
}

/// The identities of the named workloads, as far as the scrapes show them.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    by_name: Vec<(String, String)>,
}

impl Identities {
    /// Learns what the deltas of `targets` show (see the module docs).
    pub(crate) fn learn(targets: &[Target], deltas: &[Option<Delta>]) -> Self {
        let mut names: Vec<&str> = Vec::new();
        for t in targets {
            if !names.contains(&t.name.as_str()) {
                names.push(&t.name);
            }
        }
        // What each scrape says: (caller, service, server identity) of the
        // outbound series on mutual TLS, (server, client identity) inbound.
        let mut calls: Vec<(&str, &str, &str)> = Vec::new();
        let mut clients: Vec<(&str, &str)> = Vec::new();
        for (target, delta) in targets.iter().zip(deltas) {
            let Some(delta) = delta else { continue };
            for s in delta.samples() {
                match s.label("direction") {
                    Some("outbound") => {
                        let service = s.label("dst_service");
                        if let (Some(service), Some(id)) = (service, peer_identity(s, "server_id"))
                        {
                            push_new(&mut calls, (target.name.as_str(), service, id));
                        }
                    }
                    Some("inbound") => {
                        if let Some(id) = peer_identity(s, "client_id") {
                            push_new(&mut clients, (target.name.as_str(), id));
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut known = Self::default();
        for &name in &names {
            let mut ids: Vec<&str> = Vec::new();
            for &(_, service, id) in &calls {
                if service == name {
                    push_new(&mut ids, id);
                }
            }
            if let [id] = ids[..] {
                known.insert(name, id);
            }
        }
        while known.settle_one_caller(&names, &calls, &clients) {}
        known
    }

    /// Finds one server where one unknown caller meets one unexplained
    /// client identity, and pairs them; whether it found one.
    fn settle_one_caller(
        &mut self,
        names: &[&str],
        calls: &[(&str, &str, &str)],
        clients: &[(&str, &str)],
    ) -> bool {
        for &server in names {
            let mut callers: Vec<&str> = Vec::new();
            for &(caller, service, _) in calls {
                if service == server && self.of(caller).is_none() {
                    push_new(&mut callers, caller);
                }
            }
            let mut ids: Vec<&str> = Vec::new();
            for &(at, id) in clients {
                if at == server && self.name_of(id).is_none() {
                    push_new(&mut ids, id);
                }
            }
            if let ([caller], [id]) = (&callers[..], &ids[..]) {
                self.insert(caller, id);
                return true;
            }
        }
        false
    }

    fn insert(&mut self, name: &str, id: &str) {
        if self.of(name).is_none() && self.name_of(id).is_none() {
            self.by_name.push((name.to_owned(), id.to_owned()));
        }
    }

    /// The identity of the workload `name`, if learned.
    pub(crate) fn of(&self, name: &str) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
    }

    /// The workload whose identity is `id`, if learned.
    pub(crate) fn name_of(&self, id: &str) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(_, i)| i == id)
            .map(|(n, _)| n.as_str())
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
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
        let plain = s("tls=\"no_identity\",no_tls_reason=\"not_provided_by_remote\"");
        assert_eq!(
            no_tls_reason(&plain, "client_id"),
            Some("not_provided_by_remote")
        );
        assert_eq!(peer_identity(&plain, "client_id"), None);
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
                 tcp_open_total{{direction=\"inbound\",tls=\"no_identity\",no_tls_reason=\"not_provided_by_remote\"}} 1\n"
            )),
            delta(
                "response_total{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\"} 3\n",
            ),
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
}
