//! References between policy resources, read as Linkerd's policy
//! controller reads them: an empty `namespace` is the referring resource's
//! own, a reference names its kind's API group (an absent or empty group
//! is the core group), and kinds are compared without regard to case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceError;
use mesh_policy::{Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload};

const RESOURCES: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: all, namespace: ns}
spec: {networks: [{cidr: 0.0.0.0/0}]}
";

fn compile(doc: &str) -> Result<(), ResourceError> {
    Policy::compile(
        &[PolicySource::new(
            "p.yaml",
            &format!("{RESOURCES}---\n{doc}"),
        )],
        &Workload::new("ns").with_label("app", "web"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|_| ())
}

fn authorization_policy(target: &str, authn: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: ap, namespace: ns}}
spec:
  targetRef: {target}
  requiredAuthenticationRefs: [{authn}]
"
    )
}

const SERVER: &str = "{group: policy.linkerd.io, kind: Server, name: web}";

fn mesh_tls(identity_ref: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: clients, namespace: ns}}
spec:
  identityRefs: [{identity_ref}]
"
    )
}

#[test]
fn an_empty_authentication_ref_namespace_is_the_policys_own() {
    compile(&authorization_policy(
        SERVER,
        "{group: policy.linkerd.io, kind: NetworkAuthentication, name: all, namespace: ''}",
    ))
    .unwrap();
    compile(&authorization_policy(
        SERVER,
        "{kind: ServiceAccount, name: api, namespace: ''}",
    ))
    .unwrap();
}

#[test]
fn an_empty_identity_ref_namespace_is_the_authentications_own() {
    let doc = format!(
        "{}---\n{}",
        mesh_tls("{kind: ServiceAccount, name: api, namespace: ''}"),
        authorization_policy(
            SERVER,
            "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}"
        )
    );
    compile(&doc).unwrap();
    // A Namespace is in no namespace; an empty one beside it is none.
    let doc = doc.replace(
        "{kind: ServiceAccount, name: api, namespace: ''}",
        "{kind: Namespace, name: other, namespace: ''}",
    );
    compile(&doc).unwrap();
}

#[test]
fn an_empty_server_authorization_service_account_namespace_is_its_own() {
    compile(
        "apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: sa, namespace: ns}
spec:
  server: {name: web}
  client:
    meshTLS:
      serviceAccounts: [{name: api, namespace: ''}]
",
    )
    .unwrap();
}
