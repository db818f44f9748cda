use std::{collections::BTreeMap, net::IpAddr};

use http::{HeaderMap, Method, Uri};
use mesh_core::{
    Identity,
    resource::Timestamp,
    route::{PathMatch, RouteMatch},
};

use super::{HostMatch, IdentitySet, MatchEntry, NetworkSet, Requirement, build::tie_ranks};
use crate::{
    evaluate::{Client, ClientTls},
    resource::{Cidr, LabelSelector, LabelSelectorRequirement, Network, SelectorOperator},
};

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

#[test]
fn identity_sets_match_exactly_by_suffix_or_anything() {
    let mut set = IdentitySet::default();
    for p in [
        "web.ns.serviceaccount.identity.linkerd.cluster.local",
        "*.partner.example",
        "spiffe://td/ns/a/sa/b",
    ] {
        set.add_pattern(p).unwrap();
    }
    assert!(set.matches(&id("web.ns.serviceaccount.identity.linkerd.cluster.local")));
    assert!(
        set.matches(&id("Web.NS.serviceaccount.identity.linkerd.cluster.local")),
        "DNS names fold case"
    );
    assert!(set.matches(&id("a.b.partner.example")));
    assert!(!set.matches(&id("partner.example")));
    assert!(!set.matches(&id("evilpartner.example")));
    assert!(set.matches(&id("spiffe://td/ns/a/sa/b")));
    assert!(!set.matches(&id("spiffe://td/ns/a/sa/bb")));
    assert!(!set.matches(&id("spiffe://x.partner.example/ns/a")));
    assert!(IdentitySet::any().matches(&id("spiffe://anything/x")));
    assert!(set.add_pattern("*.spiffe://td").is_err());
    assert!(set.add_pattern("not an identity").is_err());
    assert_eq!(
        set.to_string(),
        "web.ns.serviceaccount.identity.linkerd.cluster.local, *.partner.example, spiffe://td/ns/a/sa/b"
    );
}

#[test]
fn networks_honour_exceptions_in_both_families() {
    let net = |cidr: &str, except: &[&str]| Network {
        cidr: cidr.parse().unwrap(),
        except: except.iter().map(|e| e.parse().unwrap()).collect(),
    };
    let set = NetworkSet::new(vec![
        net("10.0.0.0/8", &["10.1.0.0/16", "10.2.3.4"]),
        net("fd00::/8", &["fd00:1::/32"]),
    ]);
    for (addr, inside) in [
        ("10.0.0.1", true),
        ("10.1.2.3", false),
        ("10.2.3.4", false),
        ("10.2.3.5", true),
        ("11.0.0.1", false),
        ("fd00::1", true),
        ("fd00:1::1", false),
        ("fe80::1", false),
    ] {
        assert_eq!(
            set.contains(&addr.parse::<IpAddr>().unwrap()),
            inside,
            "{addr}"
        );
    }
    assert!(
        "10.0.0.1/8"
            .parse::<Cidr>()
            .unwrap_err()
            .to_string()
            .contains("host bits")
    );
    assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    assert_eq!(
        "192.168.0.1".parse::<Cidr>().unwrap().to_string(),
        "192.168.0.1/32"
    );
}

#[test]
fn requirements_read_the_client() {
    let peer = id("spiffe://td/ns/a/sa/b");
    let mutual = Client {
        tls: ClientTls::Mutual(&peer),
        addr: None,
    };
    let no_cert = Client {
        tls: ClientTls::NoClientCert,
        addr: Some("10.0.0.1".parse().unwrap()),
    };
    let plain = Client {
        tls: ClientTls::Plaintext,
        addr: Some("10.0.0.1".parse().unwrap()),
    };
    assert!(
        Requirement::Tls.allows(&mutual)
            && Requirement::Tls.allows(&no_cert)
            && !Requirement::Tls.allows(&plain)
    );
    let any = Requirement::Identity {
        from: "t".into(),
        set: IdentitySet::any(),
    };
    assert!(any.allows(&mutual) && !any.allows(&no_cert));
    let nets = Requirement::Network {
        from: "n".into(),
        set: NetworkSet::new(Network::all().to_vec()),
    };
    assert!(
        nets.allows(&plain) && !nets.allows(&mutual),
        "no address matches no network"
    );
    assert_eq!(
        nets.explain(&mutual),
        "needs an address in [0.0.0.0/0, ::/0] (n): no client address: failed"
    );
}

#[test]
fn label_selectors_follow_kubernetes() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("env", "prod")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let expr = |key: &str, operator, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    };
    let selector = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: exprs,
    };
    assert!(
        LabelSelector::default().matches(&labels),
        "empty selects all"
    );
    assert!(selector(vec![expr("app", SelectorOperator::In, &["web", "api"])]).matches(&labels));
    assert!(!selector(vec![expr("app", SelectorOperator::NotIn, &["web"])]).matches(&labels));
    assert!(
        selector(vec![expr("tier", SelectorOperator::NotIn, &["x"])]).matches(&labels),
        "NotIn matches an absent label"
    );
    assert!(selector(vec![expr("env", SelectorOperator::Exists, &[])]).matches(&labels));
    assert!(!selector(vec![expr("env", SelectorOperator::DoesNotExist, &[])]).matches(&labels));
    assert!(
        !selector(vec![
            expr("app", SelectorOperator::In, &["web"]),
            expr("env", SelectorOperator::In, &["dev"])
        ])
        .matches(&labels)
    );
    assert!(
        selector(vec![expr("a", SelectorOperator::In, &[])])
            .invalid()
            .is_some()
    );
    assert!(
        selector(vec![expr("a", SelectorOperator::Exists, &["x"])])
            .invalid()
            .is_some()
    );
}

#[test]
fn hostnames_match_exactly_or_under_a_wildcard() {
    let exact = HostMatch::new("Books.Example.com");
    let wild = HostMatch::new("*.example.com");
    let entry = |host: HostMatch| MatchEntry::new(0, vec![host].into(), RouteMatch::new(), 0);
    let check = |e: &MatchEntry, uri: &str, host: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert("host", h.parse().unwrap());
        }
        e.matches(&Method::GET, &uri.parse::<Uri>().unwrap(), &headers)
    };
    let exact = entry(exact);
    let wild = entry(wild);
    assert!(check(&exact, "http://books.example.com/", None));
    assert!(check(&exact, "/", Some("BOOKS.example.com:8080")));
    assert!(!check(&exact, "/", None));
    assert!(check(&wild, "/", Some("a.b.example.com")));
    assert!(!check(&wild, "/", Some("example.com")));
    assert!(!check(&wild, "/", Some("badexample.com")));
}

#[test]
fn precedence_prefers_exact_then_longer_then_more_conditions_then_order() {
    let entry = |m: RouteMatch, order| MatchEntry::new(0, vec![].into(), m, order);
    let prefix = |p: &str| RouteMatch::new().with_path(PathMatch::prefix(p).unwrap());
    let mut entries = [
        entry(RouteMatch::new(), 0),
        entry(prefix("/a"), 1),
        entry(prefix("/a/b"), 2),
        entry(prefix("/a").with_method(Method::GET), 3),
        entry(
            RouteMatch::new().with_path(PathMatch::regex("/a/.*").unwrap()),
            4,
        ),
        entry(
            RouteMatch::new().with_path(PathMatch::exact("/a").unwrap()),
            5,
        ),
        entry(prefix("/a"), 0),
    ];
    entries.sort_by(MatchEntry::precedence);
    let order: Vec<usize> = entries.iter().map(|e| e.order).collect();
    assert_eq!(order, [5, 4, 2, 3, 0, 1, 0]);
}

#[test]
fn the_path_hint_never_rejects_a_path_the_match_accepts() {
    let patterns = [
        PathMatch::exact("/").unwrap(),
        PathMatch::exact("/a/b").unwrap(),
        PathMatch::prefix("/").unwrap(),
        PathMatch::prefix("/a").unwrap(),
        PathMatch::prefix("/a/").unwrap(),
        PathMatch::prefix("/a/b/").unwrap(),
        PathMatch::regex("/a/.*").unwrap(),
    ];
    let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/", "/a/bc", "/ab", "/b", "/a/b/c", "/x/a/b",
    ];
    for pattern in patterns {
        let entry = MatchEntry::new(
            0,
            vec![].into(),
            RouteMatch::new().with_path(pattern.clone()),
            0,
        );
        for path in paths {
            let uri: Uri = path.parse().unwrap();
            assert_eq!(
                entry.matches(&Method::GET, &uri, &HeaderMap::new()),
                pattern.matches(path),
                "{pattern:?} on {path}"
            );
        }
    }
}

#[test]
fn ties_rank_routes_by_age_then_namespace_and_name_then_reading_order() {
    let at = |t: &str| Some(Timestamp::parse(t).unwrap());
    let ranks = tie_ranks(
        [
            (None, "a", "z"),
            // `{namespace}/{name}` compares as one string: `a-b/c` comes
            // before `a/z`, as `-` sorts before `/`.
            (None, "a-b", "c"),
            (at("2024-01-02T00:00:00Z"), "a", "a"),
            (at("2024-01-01T00:00:00Z"), "z", "z"),
            // The same name twice (an HTTPRoute and a GRPCRoute): the
            // first read first.
            (None, "a", "z"),
        ]
        .into_iter(),
    );
    assert_eq!(ranks, [3, 2, 1, 0, 4]);
}

#[test]
fn a_swap_makes_the_default_servers_the_old_policy_had_made() {
    use crate::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

    let workload = Workload::new("ns").with_label("app", "web");
    let metrics = PolicyMetrics::default();
    let config = PolicyConfig::default();
    let old = Policy::empty(&workload, &config, &metrics);
    // Ports of two blocks, and port 0, no port, whose series have no
    // `srv_port`.
    for port in [0, 80, 9090, 9091] {
        assert_eq!(old.server_for(port).port, (port != 0).then_some(port));
    }
    assert_eq!(
        old.defaults.ports().collect::<Vec<_>>(),
        [0, 80, 9090, 9091]
    );

    // 9090 is covered in the new policy: its Server answers it.
    let text = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: admin, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 9090
  proxyProtocol: HTTP/1
";
    let new = Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &workload,
        &config,
        &metrics,
    )
    .unwrap()
    .policy;
    assert_eq!(new.defaults.ports().count(), 0);
    new.carry_default_servers(&old);
    assert_eq!(new.defaults.ports().collect::<Vec<_>>(), [0, 80, 9091]);
    assert_eq!(&*new.server_for(9090).name, "admin");
    // Asking made none.
    assert_eq!(new.server_at(7777).port, None);
    assert_eq!(new.defaults.ports().collect::<Vec<_>>(), [0, 80, 9091]);
}
