//! Who is on each end of a connection: the TLS status of a series, and the
//! identities of the workloads given with `--admin`.
//!
//! A sidecar with an identity says which in its own scrape:
//! `identity_cert_info{identity="spiffe://..."} 1`, one series naming the
//! identity its certificate in service holds (see mesh-tls's `TlsMetrics`).
//! That is the identity of every workload whose scrapes carry the series,
//! whatever the workload is named. Scrapes of one workload (its replicas)
//! that name different identities leave it unknown rather than pick one.
//!
//! Scrapes without that series (a sidecar without identity, an older
//! sidecar, another exporter, a scrape that failed) fall back to what the
//! other workloads' scrapes show. A caller's outbound series carry the
//! identity its sidecar requires of the service (`server_id`; the handshake
//! fails closed on any other), and a server's inbound series the identity
//! the client proved (`client_id`). From that evidence only:
//!
//! 1. a server's is the `server_id` of the mutual-TLS series, in any
//!    scrape, to the service named like the workload (`dst_service="emoji"`
//!    for `--admin emoji=ADDR`), when that is one identity;
//! 2. a client's is found by elimination at each named server: when one
//!    named workload of unknown identity called it over mutual TLS in the
//!    window (by its name, or by a `server_id` only that server holds), and
//!    the server saw one client identity no named workload holds yet call
//!    in the window, that identity is the caller's. Each identity learned
//!    can settle another server, so this repeats until nothing changes.
//!    Series that did not move in the window are no evidence here: a
//!    caller idle in it is not paired with whoever else called.
//!
//! An identity neither the metric nor these rules settle stays unknown, and
//! the views show it as it is rather than guess whose it is. Two workloads
//! may hold one identity (one service account for both): each has it, and
//! a series naming it is then no one workload's.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

use mesh_core::conn::NoTlsReason;

use super::{Delta, Sample, Target};

/// Why a series' traffic was not on mutual TLS, as Linkerd labels it;
/// `None` when it was. `peer` is the label with the peer's identity.
///
/// `tls="disabled"` (the sidecar was not set up for TLS) reads as
/// `disabled`; `tls="no_identity"` as its `no_tls_reason`; TLS with no
/// peer identity (a client without a certificate) as `no_peer_identity`.
///
/// A reason is read in today's spelling whichever proxy wrote it: an older
/// one's `not_provided_by_remote` (Linkerd 2.8) is `no_tls_from_remote`, so
/// the traffic of old and new sidecars adds up under one reason. A value
/// this mesh never writes is kept as scraped.
pub(crate) fn no_tls_reason<'a>(s: &'a Sample, peer: &str) -> Option<&'a str> {
    match s.label("tls") {
        Some("true") => match s.label(peer) {
            Some(id) if !id.is_empty() => None,
            _ => Some("no_peer_identity"),
        },
        Some("no_identity") => Some(match s.label("no_tls_reason") {
            Some(reason) => NoTlsReason::from_label(reason).map_or(reason, |r| r.as_label()),
            None => "no_identity",
        }),
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

/// The series in which a sidecar names its own identity.
pub(crate) const IDENTITY_INFO: &str = "identity_cert_info";

/// The identities of the named workloads, as far as the scrapes show them.
#[derive(Debug, Default)]
pub(crate) struct Identities {
    /// Each known workload's identity; one identity may have several.
    by_name: Vec<(String, String)>,
    /// Workloads whose scrapes named more than one identity.
    conflicting: Vec<String>,
}

impl Identities {
    /// Learns what the deltas of `targets` show (see the module docs).
    pub(crate) fn learn(targets: &[Target], deltas: &[Option<Delta>]) -> Self {
        let mut names: Vec<&str> = Vec::new();
        for t in targets {
            push_new(&mut names, t.name.as_str());
        }
        let mut known = Self::declared(targets, deltas);
        // What each scrape says: (caller, service, server identity) of the
        // outbound series on mutual TLS, (server, client identity) inbound;
        // and of those, the ones that moved in the window.
        let mut calls = Distinct::default();
        let mut recent_calls = Distinct::default();
        let mut recent_clients = Distinct::default();
        for (target, delta) in targets.iter().zip(deltas) {
            let Some(delta) = delta else { continue };
            for s in delta.samples() {
                match s.label("direction") {
                    Some("outbound") => {
                        let service = s.label("dst_service");
                        if let (Some(service), Some(id)) = (service, peer_identity(s, "server_id"))
                        {
                            let call = (target.name.as_str(), service, id);
                            calls.push(call);
                            if s.value > 0.0 {
                                recent_calls.push(call);
                            }
                        }
                    }
                    Some("inbound") => {
                        if let Some(id) = peer_identity(s, "client_id")
                            && s.value > 0.0
                        {
                            recent_clients.push((target.name.as_str(), id));
                        }
                    }
                    _ => {}
                }
            }
        }
        for &name in &names {
            let mut ids: Vec<&str> = Vec::new();
            for &(_, service, id) in &calls.list {
                if service == name {
                    // Whether there is one is all that counts.
                    push_new(&mut ids, id);
                    if ids.len() > 1 {
                        break;
                    }
                }
            }
            if let [id] = ids[..] {
                known.infer(name, id);
            }
        }
        while known.settle_one_caller(&names, &recent_calls.list, &recent_clients.list) {}
        known
    }

    /// What the scrapes say of themselves in [`IDENTITY_INFO`].
    fn declared(targets: &[Target], deltas: &[Option<Delta>]) -> Self {
        let mut declared = Distinct::default();
        for (target, delta) in targets.iter().zip(deltas) {
            let Some(delta) = delta else { continue };
            for s in delta.samples() {
                if s.name == IDENTITY_INFO
                    && let Some(id) = s.label("identity").filter(|id| !id.is_empty())
                {
                    declared.push((target.name.as_str(), id));
                }
            }
        }
        // How many identities each workload's scrapes named.
        let mut named: HashMap<&str, usize> = HashMap::new();
        for &(name, _) in &declared.list {
            *named.entry(name).or_default() += 1;
        }
        let mut known = Self::default();
        for &(name, id) in &declared.list {
            if named.get(name).is_some_and(|&n| n > 1) {
                push_new(&mut known.conflicting, name.to_owned());
            } else if known.of(name).is_none() {
                known.by_name.push((name.to_owned(), id.to_owned()));
            }
        }
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
            for &(caller, service, id) in calls {
                let to_server = service == server || self.name_of(id) == Some(server);
                if to_server && self.is_open(caller) {
                    push_new(&mut callers, caller);
                }
            }
            // Whether there is one is all that counts: two are enough.
            let mut ids: Vec<&str> = Vec::new();
            for &(at, id) in clients {
                if at == server && !self.is_held(id) {
                    push_new(&mut ids, id);
                    if ids.len() > 1 {
                        break;
                    }
                }
            }
            if let ([caller], [id]) = (&callers[..], &ids[..]) {
                self.infer(caller, id);
                return true;
            }
        }
        false
    }

    /// Records an inferred identity, unless the workload's is settled or
    /// another workload holds this one.
    fn infer(&mut self, name: &str, id: &str) {
        if self.is_open(name) && !self.is_held(id) {
            self.by_name.push((name.to_owned(), id.to_owned()));
        }
    }

    /// Whether the workload `name` may still learn an identity.
    fn is_open(&self, name: &str) -> bool {
        self.of(name).is_none() && !self.conflicting.iter().any(|n| n == name)
    }

    fn is_held(&self, id: &str) -> bool {
        self.by_name.iter().any(|(_, i)| i == id)
    }

    /// The identity of the workload `name`, if known.
    pub(crate) fn of(&self, name: &str) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
    }

    /// Every named workload whose identity is `id`.
    pub(crate) fn holders<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a str> {
        self.by_name
            .iter()
            .filter(move |(_, i)| i == id)
            .map(|(name, _)| name.as_str())
    }

    /// The one workload whose identity is `id`, if exactly one holds it.
    pub(crate) fn name_of(&self, id: &str) -> Option<&str> {
        let mut holders = self.by_name.iter().filter(|(_, i)| i == id);
        match (holders.next(), holders.next()) {
            (Some((name, _)), None) => Some(name.as_str()),
            _ => None,
        }
    }
}

/// Items in the order they first came, each once. A scraped server picks
/// how many distinct ones there are, so they are found by hashing, not by
/// a scan of those before.
struct Distinct<T> {
    list: Vec<T>,
    seen: HashSet<T>,
}

impl<T> Default for Distinct<T> {
    fn default() -> Self {
        Self {
            list: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

impl<T: Copy + Eq + Hash> Distinct<T> {
    fn push(&mut self, item: T) {
        if self.seen.insert(item) {
            self.list.push(item);
        }
    }
}

/// Appends `item` unless `list` has it: for lists of the named workloads,
/// which configuration bounds.
fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests;
