//! A policy at the scale the issue measures: 50 Servers, 100
//! AuthorizationPolicies and 200 HTTPRoute rules, for the `policy` bench
//! and the allocation test. The bench includes this file by path.
#![allow(dead_code, unreachable_pub)]

use std::fmt::Write;

/// The workload every Server selects.
pub const NAMESPACE: &str = "bench";
/// Its label.
pub const LABEL: (&str, &str) = ("app", "bench");
/// The port of the last Server, which the allowed request goes to.
pub const LAST_PORT: u16 = 8049;
/// A path of the last rule of the last Server.
pub const LAST_PATH: &str = "/s49/r3/items";
/// A client whose identity the route's policy does not name, from a network
/// the Server's policy does: the allow comes from the second rule tried.
pub const CLIENT_IP: &str = "10.1.2.3";
pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/elsewhere/sa/client";

/// The policy's YAML: per Server, one HTTPRoute with 4 rules, one
/// AuthorizationPolicy on the route (a MeshTLSAuthentication) and one on
/// the Server (a NetworkAuthentication shared by all).
pub fn scale_policy() -> String {
    let mut text = String::from(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: cluster}
spec:
  networks: [{cidr: 10.0.0.0/8, except: [10.9.0.0/16]}, {cidr: \"fd00::/8\"}]
",
    );
    for s in 0..50 {
        let port = 8000 + s;
        write!(
            text,
            "---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: s{s}}}
spec:
  podSelector: {{matchLabels: {{app: bench}}}}
  port: {port}
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: s{s}-routes}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: s{s}}}]
  rules:
"
        )
        .unwrap();
        for r in 0..4 {
            write!(
                text,
                "    - matches:
        - path: {{type: PathPrefix, value: /s{s}/r{r}}}
          method: GET
        - path: {{type: Exact, value: /s{s}/r{r}/admin}}
          headers: [{{name: x-admin, value: \"yes\"}}]
"
            )
            .unwrap();
        }
        write!(
            text,
            "---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: s{s}-clients}}
spec:
  identities: [\"client-{s}.bench.serviceaccount.identity.linkerd.cluster.local\", \"*.partners.example\"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: s{s}-route-policy}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: HTTPRoute, name: s{s}-routes}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: s{s}-clients}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: s{s}-server-policy}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: s{s}}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: cluster}}]
"
        )
        .unwrap();
    }
    text
}
