//! A `ServerAuthorization` without `networks`, or with `networks: []`,
//! admits clients from the cluster networks only, as Linkerd's policy
//! controller serves it: an authorization written for the cluster's
//! clients must not open the port to every routable address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_policy::{Client, ClientTls, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

fn policy(networks: &str, workload: &Workload) -> mesh_policy::Compiled {
    let text = format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web, namespace: ns}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: 80
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: web-clients, namespace: ns}}
spec:
  server: {{name: web}}
  client: {{unauthenticated: true{networks}}}
"
    );
    Policy::compile(
        &[PolicySource::new("p.yaml", &text)],
        workload,
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn allowed(compiled: &mesh_policy::Compiled, addr: &str) -> bool {
    let client = Client {
        tls: ClientTls::Plaintext,
        addr: Some(addr.parse().unwrap()),
    };
    let request = http::Request::get("/").body(()).unwrap();
    compiled.policy.evaluate(80, &client, &request).is_allowed()
}

fn workload() -> Workload {
    Workload::new("ns").with_label("app", "web")
}

#[test]
fn without_networks_only_the_default_cluster_networks_are_admitted() {
    for networks in ["", ", networks: []"] {
        let compiled = policy(networks, &workload());
        assert!(compiled.warnings.is_empty(), "{}", compiled.warnings);
        for inside in [
            "10.1.2.3",
            "192.168.4.5",
            "172.16.0.9",
            "100.64.1.1",
            "fd00::7",
        ] {
            assert!(allowed(&compiled, inside), "{networks:?}: {inside}");
        }
        for outside in ["203.0.113.9", "8.8.8.8", "127.0.0.1", "2001:db8::1"] {
            assert!(!allowed(&compiled, outside), "{networks:?}: {outside}");
        }
    }
}

#[test]
fn without_networks_the_workloads_cluster_networks_are_admitted() {
    let workload = workload().with_cluster_networks(vec!["203.0.113.0/24".parse().unwrap()]);
    for networks in ["", ", networks: []"] {
        let compiled = policy(networks, &workload);
        assert!(allowed(&compiled, "203.0.113.9"), "{networks:?}");
        assert!(!allowed(&compiled, "10.1.2.3"), "{networks:?}");
    }
}

#[test]
fn networks_written_out_are_used_as_written() {
    let compiled = policy(", networks: [{cidr: 0.0.0.0/0}]", &workload());
    assert!(allowed(&compiled, "203.0.113.9"));
    assert!(allowed(&compiled, "10.1.2.3"));
    assert!(!allowed(&compiled, "2001:db8::1"));
}
