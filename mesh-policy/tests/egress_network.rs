//! Linkerd's `EgressNetwork`: read with errors that name the document,
//! field and line, and compiled into the lookup that says which network
//! captures a destination address for the workload's clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::{ResourceError, ResourceErrorKind as Kind};
use mesh_policy::{
    Compiled, DEFAULT_EGRESS_NAMESPACE, Policy, PolicyConfig, PolicyMetrics, PolicySource,
    PolicyStore, Workload,
    egress::{EgressNetworks, TrafficPolicy},
};

/// An `EgressNetwork` named `name` in `namespace` (none when `""`), with
/// `spec` written under `spec:`, indented by two.
fn egress(name: &str, namespace: &str, spec: &str) -> String {
    let meta = if namespace.is_empty() {
        format!("{{name: {name}}}")
    } else {
        format!("{{name: {name}, namespace: {namespace}}}")
    };
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata: {meta}\nspec:\n{spec}"
    )
}

fn docs(docs: &[String]) -> String {
    docs.join("---\n")
}

fn compile_for(text: &str, workload: &Workload, config: &PolicyConfig) -> Compiled {
    Policy::compile(
        &[PolicySource::new("egress.yaml", text)],
        workload,
        config,
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn compile(text: &str) -> Compiled {
    compile_for(text, &Workload::new("app"), &PolicyConfig::default())
}

fn compile_err(text: &str) -> ResourceError {
    Policy::compile(
        &[PolicySource::new("egress.yaml", text)],
        &Workload::new("app"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|_| ())
    .unwrap_err()
}

/// The `namespace/name` of the network that captures `ip`, if any.
fn found(networks: &EgressNetworks, ip: &str) -> Option<String> {
    networks
        .find(ip.parse().unwrap())
        .map(|n| format!("{}/{}", n.namespace(), n.name()))
}

#[track_caller]
fn assert_error(err: &ResourceError, kind: Kind, document: usize, name: &str, field: &str) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.origin(), "egress.yaml", "{err}");
    assert_eq!(err.document(), Some(document), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("EgressNetwork"), Some(name)),
        "{err}"
    );
    assert_eq!(err.field_path(), field, "{err}");
}

#[test]
fn the_walkthroughs_network_is_read_without_warnings_and_captures_what_leaves_the_cluster() {
    // https://linkerd.io/2.17/tasks/managing-egress-traffic/, with the
    // client in the network's namespace.
    let text = egress(
        "all-egress-traffic",
        "egress-test",
        "  trafficPolicy: Allow\n",
    );
    let compiled = compile_for(
        &text,
        &Workload::new("egress-test"),
        &PolicyConfig::default(),
    );
    assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
    let networks = compiled.egress_networks();
    assert!(!networks.is_empty());
    assert_eq!(networks.len(), 1);
    let network = networks.iter().next().unwrap();
    assert_eq!(
        (
            network.name(),
            network.namespace(),
            network.traffic_policy()
        ),
        ("all-egress-traffic", "egress-test", TrafficPolicy::Allow)
    );
    assert!(!network.networks_written());
    // Without `networks`: everything but the cluster networks (Linkerd's
    // defaults: 10/8, 100.64/10, 172.16/12, 192.168/16, fd00::/8), in
    // both families.
    let shown: Vec<String> = network
        .networks()
        .iter()
        .map(|n| {
            let except: Vec<String> = n.except.iter().map(ToString::to_string).collect();
            format!("{} except [{}]", n.cidr, except.join(", "))
        })
        .collect();
    assert_eq!(
        shown,
        [
            "0.0.0.0/0 except [10.0.0.0/8, 100.64.0.0/10, 172.16.0.0/12, 192.168.0.0/16]",
            "::/0 except [fd00::/8]",
        ]
    );
    for outside in ["8.8.8.8", "127.0.0.1", "2001:db8::1", "::ffff:8.8.4.4"] {
        assert_eq!(
            found(networks, outside).as_deref(),
            Some("egress-test/all-egress-traffic"),
            "{outside}"
        );
    }
    for inside in [
        "10.1.2.3",
        "100.64.0.1",
        "172.20.0.1",
        "192.168.1.1",
        "fd00::1",
    ] {
        assert_eq!(found(networks, inside), None, "{inside}");
    }
    // As `policy.yaml` under `sidecar check`, the reader alone accepts it.
    let warnings =
        mesh_policy::resource::read_sources(&[PolicySource::new("egress.yaml", &text)]).unwrap();
    assert!(warnings.is_empty(), "{warnings}");
}

#[test]
fn the_default_networks_follow_the_workloads_cluster_networks() {
    let text = egress("out", "", "  trafficPolicy: Deny\n");
    let workload = Workload::new("app").with_cluster_networks(vec![
        "203.0.113.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
        // As written in a dual-stack listener's logs: read as IPv4.
        "::ffff:198.51.100.0/120".parse().unwrap(),
    ]);
    let compiled = compile_for(&text, &workload, &PolicyConfig::default());
    let networks = compiled.egress_networks();
    let network = networks.iter().next().unwrap();
    // A document without a namespace is in the workload's.
    assert_eq!(network.namespace(), "app");
    assert_eq!(network.traffic_policy(), TrafficPolicy::Deny);
    for (ip, captured) in [
        ("203.0.113.9", false),
        ("198.51.100.7", false),
        ("2001:db8::7", false),
        ("10.1.2.3", true),
        ("fd00::1", true),
        ("2001:db9::1", true),
    ] {
        assert_eq!(found(networks, ip).is_some(), captured, "{ip}");
    }
}

#[test]
fn written_networks_and_their_exceptions_capture_only_what_they_say() {
    let text = egress(
        "partners",
        "app",
        "  trafficPolicy: Allow\n  networks:\n  - cidr: 0.0.0.0/0\n    except: [10.0.0.0/8, 203.0.113.7]\n  - cidr: 2001:db8::/32\n",
    );
    let compiled = compile(&text);
    let networks = compiled.egress_networks();
    assert!(networks.iter().next().unwrap().networks_written());
    for (ip, captured) in [
        ("8.8.8.8", true),
        ("10.1.2.3", false),
        ("203.0.113.7", false),
        ("203.0.113.8", true),
        // A cluster network not excepted is captured: the written
        // networks are the whole of it.
        ("192.168.1.1", true),
        ("2001:db8::1", true),
        ("2001:db9::1", false),
    ] {
        assert_eq!(found(networks, ip).is_some(), captured, "{ip}");
    }
}

#[test]
fn a_null_except_is_no_exceptions_as_the_api_server_reads_it() {
    let text = egress(
        "partners",
        "app",
        "  trafficPolicy: Allow\n  networks:\n  - cidr: 203.0.113.0/24\n    except: null\n",
    );
    let compiled = compile(&text);
    assert_eq!(
        found(compiled.egress_networks(), "203.0.113.7").as_deref(),
        Some("app/partners")
    );
    // NetworkAuthentication's networks are the same type, read alike.
    let authn = "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\n\
                 metadata: {name: office, namespace: app}\nspec:\n  networks:\n  \
                 - cidr: 203.0.113.0/24\n    except: null\n";
    compile(authn);
}

#[test]
fn the_namespaces_own_networks_hide_the_global_ones_even_where_they_capture_nothing() {
    let text = docs(&[
        egress(
            "global",
            DEFAULT_EGRESS_NAMESPACE,
            "  trafficPolicy: Allow\n",
        ),
        egress(
            "local",
            "app",
            "  trafficPolicy: Deny\n  networks: [{cidr: 203.0.113.0/24}]\n",
        ),
        egress("elsewhere", "other", "  trafficPolicy: Allow\n"),
    ]);
    let compiled = compile(&text);
    // Another namespace's network is no mistake: it is for its own
    // clients, and said nothing of.
    assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
    let networks = compiled.egress_networks();
    let names: Vec<&str> = networks.iter().map(|n| n.name()).collect();
    assert_eq!(names, ["local"]);
    assert_eq!(found(networks, "203.0.113.1").as_deref(), Some("app/local"));
    // The global network would capture it; the namespace has one of its
    // own, so it is not considered, as in Linkerd.
    assert_eq!(found(networks, "8.8.8.8"), None);

    // A namespace without networks of its own gets the global ones, never
    // another namespace's.
    let compiled = compile_for(&text, &Workload::new("web"), &PolicyConfig::default());
    let networks = compiled.egress_networks();
    let names: Vec<&str> = networks.iter().map(|n| n.name()).collect();
    assert_eq!(names, ["global"]);
    assert_eq!(
        found(networks, "8.8.8.8").as_deref(),
        Some("linkerd-egress/global")
    );
    assert_eq!(found(networks, "10.0.0.1"), None);

    // The global namespace is the configuration's.
    let config = PolicyConfig::default().with_egress_namespace("other");
    let compiled = compile_for(&text, &Workload::new("web"), &config);
    let names: Vec<&str> = compiled
        .egress_networks()
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(names, ["elsewhere"]);

    // No network of the namespace or the global one: nothing applies.
    let compiled = compile_for(
        &egress("elsewhere", "other", "  trafficPolicy: Allow\n"),
        &Workload::new("web"),
        &PolicyConfig::default(),
    );
    assert!(compiled.egress_networks().is_empty());
    assert_eq!(found(compiled.egress_networks(), "8.8.8.8"), None);
}

#[test]
fn the_smallest_matching_block_wins_then_the_older_then_the_name() {
    let text = docs(&[
        // Written first, and its wide block matches everything: a smaller
        // block of another network still wins.
        egress(
            "a-wide",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 0.0.0.0/0}, {cidr: \"::/0\"}]\n",
        ),
        egress(
            "z-narrow",
            "app",
            "  trafficPolicy: Deny\n  networks: [{cidr: 203.0.113.0/24}, {cidr: \"2001:db8::/48\"}]\n",
        ),
        egress(
            "y-narrow",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 203.0.113.0/25, except: [203.0.113.0/26]}]\n",
        ),
    ]);
    let compiled = compile(&text);
    let networks = compiled.egress_networks();
    assert_eq!(found(networks, "8.8.8.8").as_deref(), Some("app/a-wide"));
    assert_eq!(
        found(networks, "203.0.113.200").as_deref(),
        Some("app/z-narrow")
    );
    assert_eq!(
        found(networks, "203.0.113.100").as_deref(),
        Some("app/y-narrow")
    );
    // Excepted from the smallest block: the next smallest takes it.
    assert_eq!(
        found(networks, "203.0.113.10").as_deref(),
        Some("app/z-narrow")
    );
    assert_eq!(
        found(networks, "2001:db8::1").as_deref(),
        Some("app/z-narrow")
    );
    assert_eq!(
        found(networks, "2001:db8:1::1").as_deref(),
        Some("app/a-wide")
    );

    // Blocks of one size: the older by creationTimestamp, whatever the
    // names, and one without a timestamp after those with one.
    let timed = |name: &str, created: Option<&str>| {
        let created = created.map_or(String::new(), |c| format!(", creationTimestamp: \"{c}\""));
        format!(
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata: {{name: {name}, namespace: app{created}}}\nspec:\n  trafficPolicy: Allow\n  networks: [{{cidr: 203.0.113.0/24}}]\n"
        )
    };
    let text = docs(&[
        timed("a-untimed", None),
        timed("b-newer", Some("2024-05-02T00:00:00Z")),
        timed("c-older", Some("2024-05-01T00:00:00Z")),
    ]);
    let compiled = compile(&text);
    assert_eq!(
        found(compiled.egress_networks(), "203.0.113.1").as_deref(),
        Some("app/c-older")
    );
    let order: Vec<&str> = compiled
        .egress_networks()
        .iter()
        .map(|n| n.name())
        .collect();
    assert_eq!(order, ["c-older", "b-newer", "a-untimed"]);
    let text = docs(&[
        timed("b-newer", Some("2024-05-02T00:00:00Z")),
        timed("a-untimed", None),
    ]);
    assert_eq!(
        found(compile(&text).egress_networks(), "203.0.113.1").as_deref(),
        Some("app/b-newer")
    );

    // All else equal, the first by name, not the first written.
    let text = docs(&[timed("beta", None), timed("alpha", None)]);
    assert_eq!(
        found(compile(&text).egress_networks(), "203.0.113.1").as_deref(),
        Some("app/alpha")
    );
}

#[test]
fn a_missing_or_unknown_traffic_policy_is_refused_naming_the_values_allowed() {
    let server = "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: web}\nspec:\n  podSelector: {}\n  port: 80\n";
    let err = compile_err(&docs(&[
        server.to_owned(),
        egress("out", "app", "  networks: [{cidr: 8.8.8.8}]\n"),
    ]));
    assert_error(&err, Kind::MissingField, 2, "out", "spec.trafficPolicy");
    assert!(
        err.message()
            .contains("trafficPolicy is required: Allow or Deny"),
        "{err}"
    );
    // Document 2 starts on line 8 (after the Server and `---`); the
    // error is where its `spec`'s value begins, on its fifth.
    assert_eq!(err.line(), Some(12), "{err}");

    for written in ["allow", "Audit", "\"\""] {
        let err = compile_err(&docs(&[
            server.to_owned(),
            egress("out", "app", &format!("  trafficPolicy: {written}\n")),
        ]));
        assert_error(&err, Kind::InvalidValue, 2, "out", "spec.trafficPolicy");
        assert!(
            err.message().contains("is not one of Allow and Deny"),
            "{err}"
        );
        // Document 2 starts on line 8; `trafficPolicy` is its fifth.
        assert_eq!(err.line(), Some(12), "{err}");
    }
}

#[test]
fn bad_networks_are_refused_naming_the_entry_and_line() {
    // (spec, kind, field, line of the document's own, what the message says)
    let cases = [
        (
            "  trafficPolicy: Allow\n  networks:\n  - cidr: 10.1.2.3/8\n",
            Kind::InvalidValue,
            "spec.networks[0].cidr",
            7,
            "host bits are set",
        ),
        (
            "  trafficPolicy: Allow\n  networks:\n  - cidr: not-a-network\n",
            Kind::InvalidValue,
            "spec.networks[0].cidr",
            7,
            "invalid cidr \"not-a-network\"",
        ),
        (
            "  trafficPolicy: Allow\n  networks:\n  - cidr: 8.8.8.0/24\n  - cidr: 203.0.113.0/24\n    except: [198.51.100.0/24]\n",
            Kind::InvalidValue,
            "spec.networks[1].except[0]",
            9,
            "198.51.100.0/24 is not within 203.0.113.0/24",
        ),
        (
            "  trafficPolicy: Allow\n  networks:\n  - cidr: 203.0.113.0/24\n    except: [203.0.0.0/16]\n",
            Kind::InvalidValue,
            "spec.networks[0].except[0]",
            8,
            "so the network matches no address",
        ),
        (
            "  trafficPolicy: Allow\n  networks: []\n",
            Kind::InvalidValue,
            "spec.networks",
            6,
            "at least one network is required",
        ),
        (
            // A misspelt `networks` would capture everything outside the
            // cluster.
            "  trafficPolicy: Allow\n  network:\n  - cidr: 203.0.113.0/24\n",
            Kind::InvalidValue,
            "spec.network",
            // The line of its value.
            7,
            "unknown field: a EgressNetwork is not read with a field it does not know, which could capture addresses it was not meant to",
        ),
    ];
    for (spec, kind, field, line, says) in cases {
        let err = compile_err(&egress("out", "app", spec));
        assert_error(&err, kind, 1, "out", field);
        assert!(err.message().contains(says), "{err}");
        assert_eq!(err.line(), Some(line), "{err}");
    }
}

#[test]
fn two_networks_of_one_namespace_and_name_are_refused() {
    let text = docs(&[
        egress("out", "", "  trafficPolicy: Allow\n"),
        egress("out", "app", "  trafficPolicy: Deny\n"),
    ]);
    let err = compile_err(&text);
    assert_error(&err, Kind::DuplicateName, 2, "out", "metadata.name");
    assert!(
        err.message().contains(
            "EgressNetwork out in namespace app is already defined in egress.yaml document 1"
        ),
        "{err}"
    );
    // One name in two namespaces is two networks.
    let text = docs(&[
        egress("out", "", "  trafficPolicy: Allow\n"),
        egress("out", DEFAULT_EGRESS_NAMESPACE, "  trafficPolicy: Deny\n"),
    ]);
    assert_eq!(compile(&text).egress_networks().len(), 1);
}

#[test]
fn a_creation_timestamp_that_is_not_a_time_is_refused() {
    let text = "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata: {name: out, creationTimestamp: yesterday}\nspec: {trafficPolicy: Allow}\n";
    let err = compile_err(text);
    assert_error(
        &err,
        Kind::InvalidValue,
        1,
        "out",
        "metadata.creationTimestamp",
    );
}

#[test]
fn a_list_of_egress_networks_is_refused_as_other_lists_are() {
    let text = "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetworkList\nitems:\n- apiVersion: policy.linkerd.io/v1alpha1\n  kind: EgressNetwork\n  metadata: {name: out}\n  spec: {trafficPolicy: Deny}\n";
    let err = compile_err(text);
    assert_eq!(err.resource_kind(), Some("EgressNetworkList"), "{err}");
    assert_eq!(err.field_path(), "items", "{err}");
}

#[test]
fn a_bad_reload_keeps_the_last_good_networks() {
    let store = PolicyStore::new(
        Workload::new("app"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    assert!(store.load().egress_networks().is_empty());
    let policy = |traffic: &str| egress("out", "app", &format!("  trafficPolicy: {traffic}\n"));
    let traffic = |store: &PolicyStore| {
        store
            .load()
            .egress_networks()
            .find("8.8.8.8".parse().unwrap())
            .map(|n| n.traffic_policy())
    };
    store
        .reload(&[PolicySource::new("egress.yaml", &policy("Allow"))])
        .unwrap();
    assert_eq!(traffic(&store), Some(TrafficPolicy::Allow));
    let err = store
        .reload(&[PolicySource::new("egress.yaml", &policy("deny"))])
        .unwrap_err();
    assert_eq!(err.field_path(), "spec.trafficPolicy", "{err}");
    assert_eq!(traffic(&store), Some(TrafficPolicy::Allow));
    store
        .reload(&[PolicySource::new("egress.yaml", &policy("Deny"))])
        .unwrap();
    assert_eq!(traffic(&store), Some(TrafficPolicy::Deny));
    // A policy without networks takes them away.
    store.reload(&[]).unwrap();
    assert!(store.load().egress_networks().is_empty());
}

#[test]
fn a_blocks_size_leaves_out_its_exceptions_as_linkerds_does() {
    // The network without `networks` is `0.0.0.0/0` and `::/0` less the
    // cluster networks: smaller than a written `0.0.0.0/0`, so it wins
    // whatever the age and names, as in Linkerd.
    let text = docs(&[
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata: {name: a-everything, namespace: app, creationTimestamp: \"2024-05-01T00:00:00Z\"}\nspec:\n  trafficPolicy: Allow\n  networks: [{cidr: 0.0.0.0/0}, {cidr: \"::/0\"}]\n".to_owned(),
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: EgressNetwork\nmetadata: {name: z-outside, namespace: app, creationTimestamp: \"2024-05-02T00:00:00Z\"}\nspec:\n  trafficPolicy: Deny\n".to_owned(),
    ]);
    let compiled = compile(&text);
    let networks = compiled.egress_networks();
    for outside in ["8.8.8.8", "2001:db8::1", "::ffff:8.8.4.4"] {
        assert_eq!(
            found(networks, outside).as_deref(),
            Some("app/z-outside"),
            "{outside}"
        );
    }
    // The cluster networks are the written one's alone.
    for inside in ["10.1.2.3", "fd00::1"] {
        assert_eq!(
            found(networks, inside).as_deref(),
            Some("app/a-everything"),
            "{inside}"
        );
    }

    // A shorter prefix whose exceptions leave fewer addresses than a
    // longer one's block is the smaller block.
    let text = docs(&[
        egress(
            "a-slash18",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 10.0.192.0/18}, {cidr: \"2001:db8:c000::/34\"}]\n",
        ),
        egress(
            "b-last-eighth",
            "app",
            "  trafficPolicy: Deny\n  networks:\n  - cidr: 10.0.0.0/16\n    except: [10.0.0.0/17, 10.0.128.0/18, 10.0.192.0/19]\n  - cidr: 2001:db8::/32\n    except: [\"2001:db8::/33\", \"2001:db8:8000::/34\", \"2001:db8:c000::/35\"]\n",
        ),
    ]);
    let compiled = compile(&text);
    let networks = compiled.egress_networks();
    for (ip, network) in [
        ("10.0.224.1", "app/b-last-eighth"),
        ("10.0.200.1", "app/a-slash18"),
        ("10.0.1.1", "none"),
        ("2001:db8:e000::1", "app/b-last-eighth"),
        ("2001:db8:c000::1", "app/a-slash18"),
    ] {
        assert_eq!(
            found(networks, ip).as_deref().unwrap_or("none"),
            network,
            "{ip}"
        );
    }

    // An exception inside another is counted once: what is left of the
    // /24 is a /25, the size of the other network's block, and the two
    // tie, going to the first by name.
    let text = docs(&[
        egress(
            "b-overlap",
            "app",
            "  trafficPolicy: Deny\n  networks:\n  - cidr: 203.0.113.0/24\n    except: [203.0.113.0/25, 203.0.113.0/26]\n",
        ),
        egress(
            "a-half",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 203.0.113.128/25}]\n",
        ),
    ]);
    assert_eq!(
        found(compile(&text).egress_networks(), "203.0.113.200").as_deref(),
        Some("app/a-half")
    );
}

#[test]
fn edge_blocks_exceptions_and_cluster_networks() {
    // One resource's smaller block excepted from its wider one: the
    // smaller block still captures for it, the rest of the wider one is
    // sized without the exception.
    let text = docs(&[
        egress(
            "carved",
            "app",
            "  trafficPolicy: Deny\n  networks:\n  - cidr: 10.0.0.0/8\n    except: [10.1.0.0/16]\n  - cidr: 10.1.0.0/16\n",
        ),
        egress(
            "middle",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 10.0.0.0/12}]\n",
        ),
        // Single addresses, each family's as written and IPv4-mapped.
        egress(
            "hosts",
            "app",
            "  trafficPolicy: Allow\n  networks: [{cidr: 203.0.113.7}, {cidr: \"2001:db8::7/128\"}, {cidr: \"::ffff:198.51.100.0/120\"}]\n",
        ),
    ]);
    let compiled = compile(&text);
    let networks = compiled.egress_networks();
    for (ip, network) in [
        ("10.1.2.3", "app/carved"),
        ("10.2.0.1", "app/middle"),
        ("10.16.0.1", "app/carved"),
        ("203.0.113.7", "app/hosts"),
        ("::ffff:203.0.113.7", "app/hosts"),
        ("203.0.113.8", "none"),
        ("2001:db8::7", "app/hosts"),
        ("2001:db8::8", "none"),
        ("198.51.100.9", "app/hosts"),
        ("::ffff:198.51.100.9", "app/hosts"),
    ] {
        assert_eq!(
            found(networks, ip).as_deref().unwrap_or("none"),
            network,
            "{ip}"
        );
    }

    // An exception equal to its cidr leaves nothing: refused, at /0, /32
    // and /128 alike.
    for (cidr, except) in [
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("\"::/0\"", "\"::/0\""),
        ("203.0.113.7/32", "203.0.113.7"),
        ("\"2001:db8::7/128\"", "\"2001:db8::7\""),
    ] {
        let err = compile_err(&egress(
            "out",
            "app",
            &format!(
                "  trafficPolicy: Allow\n  networks: [{{cidr: {cidr}, except: [{except}]}}]\n"
            ),
        ));
        assert_error(
            &err,
            Kind::InvalidValue,
            1,
            "out",
            "spec.networks[0].except[0]",
        );
        assert!(err.message().contains("matches no address"), "{err}");
    }

    // Without `networks`, the cluster networks of each family are left
    // out of that family alone: none at all leaves every address.
    let outside = |cluster: &[&str], ip: &str| {
        let workload = Workload::new("app")
            .with_cluster_networks(cluster.iter().map(|n| n.parse().unwrap()).collect());
        let compiled = compile_for(
            &egress("out", "", "  trafficPolicy: Deny\n"),
            &workload,
            &PolicyConfig::default(),
        );
        found(compiled.egress_networks(), ip).is_some()
    };
    for ip in ["10.1.2.3", "8.8.8.8", "fd00::1", "2001:db8::1"] {
        assert!(outside(&[], ip), "{ip}");
    }
    assert!(!outside(&["10.0.0.0/8"], "10.1.2.3"));
    assert!(outside(&["10.0.0.0/8"], "fd00::1"));
    assert!(!outside(&["fd00::/8"], "fd00::1"));
    assert!(outside(&["fd00::/8"], "10.1.2.3"));
    // A cluster of every IPv4 address leaves IPv6 captured.
    assert!(!outside(&["0.0.0.0/0"], "8.8.8.8"));
    assert!(outside(&["0.0.0.0/0"], "2001:db8::1"));
}
