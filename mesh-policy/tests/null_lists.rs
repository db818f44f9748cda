//! An optional list written `null` is read as left out, as the API server
//! drops the `null` before it stores the resource, so that a manifest
//! `kubectl apply` takes compiles here too, meaning what it means there:
//! `identities: null` beside `identityRefs`, `serviceAccounts: null`
//! beside `identities`, `overrides: null` beside a `total`. A required
//! list stays required: `null` and nothing else is still refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::PolicyConfig;
use support::{T::*, Want::*, *};

const API: &str = "spiffe://cluster.local/ns/ns/sa/api";
const OTHER: &str = "spiffe://cluster.local/ns/ns/sa/other";

fn policy(authn: &str) -> String {
    format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: who, namespace: ns}}
spec: {authn}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: by-id, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: who}}]
"
    )
}

fn at_80(text: &str, id: &'static str) -> Want {
    let policy = compile(text, &web_workload(), &PolicyConfig::default());
    decide(&policy, 80, Id(id), Some("10.0.0.1"), "GET", "/api", &[])
}

#[test]
fn a_mesh_tls_authentications_null_list_is_left_out() {
    for authn in [
        "{identities: null, identityRefs: [{kind: ServiceAccount, name: api}]}",
        "{identities: [\"spiffe://cluster.local/ns/ns/sa/api\"], identityRefs: null}",
    ] {
        let text = policy(authn);
        assert_eq!(at_80(&text, API), Allow("web", "api", "by-id"), "{authn}");
        assert_eq!(at_80(&text, OTHER), Deny("web"), "{authn}");
    }
    // Both null: no identity at all, refused as when both are left out.
    let err = try_compile_web(&policy("{identities: null, identityRefs: null}")).unwrap_err();
    assert!(
        err.to_string()
            .contains("at least one identity or identityRef is required"),
        "{err}"
    );
}

#[test]
fn a_server_authorizations_null_list_is_left_out() {
    let text = format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: api-only, namespace: ns}}
spec:
  server: {{name: web}}
  client:
    meshTLS: {{identities: null, serviceAccounts: [{{name: api}}]}}
"
    );
    assert_eq!(at_80(&text, API), Allow("web", "api", "api-only"));
    assert_eq!(at_80(&text, OTHER), Deny("web"));
}

#[test]
fn a_rate_limits_null_overrides_are_left_out() {
    let text = format!(
        "{WEB_SERVER_AND_API_ROUTE}---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: limit, namespace: ns}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  total: {{requestsPerSecond: 5}}
  overrides: null
"
    );
    try_compile_web(&text).unwrap();
    // `clientRefs` is required in an override: null is no list there.
    let err = try_compile_web(&text.replace(
        "overrides: null",
        "overrides: [{requestsPerSecond: 1, clientRefs: null}]",
    ))
    .unwrap_err();
    assert_eq!(err.field_path(), "spec.overrides[0].clientRefs", "{err}");
}
