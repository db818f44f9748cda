//! References between policy resources, read as Linkerd's policy
//! controller reads them: an empty `namespace` is the referring resource's
//! own, a reference names its kind's API group (an absent or empty group
//! is the core group), and kinds are compared without regard to case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::{ResourceError, ResourceErrorKind as Kind};
use support::{ALL_NETWORKS, WEB_SERVER_AND_API_ROUTE, try_compile_web};

fn compile(doc: &str) -> Result<(), ResourceError> {
    try_compile_web(&format!(
        "{WEB_SERVER_AND_API_ROUTE}---\n{ALL_NETWORKS}---\n{doc}"
    ))
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

const ALL: &str = "{group: policy.linkerd.io, kind: NetworkAuthentication, name: all}";

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

fn rate_limit(target: &str, client_ref: &str) -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{name: rl, namespace: ns}}
spec:
  targetRef: {target}
  total: {{requestsPerSecond: 10}}
  overrides:
    - requestsPerSecond: 5
      clientRefs: [{client_ref}]
"
    )
}

fn assert_group_error(err: &ResourceError, path: &str, name: &str, group: &str, what: &str) {
    assert_eq!(err.kind(), Kind::InvalidValue, "{what}: {err}");
    assert_eq!(err.field_path(), path, "{what}: {err}");
    assert_eq!(err.name(), Some(name), "{what}: {err}");
    assert!(err.line().is_some(), "{what}: {err}");
    assert!(
        err.to_string().contains(&format!("group {group}")),
        "{what}: {err}"
    );
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
#[test]
fn an_empty_target_namespace_is_the_policys_own() {
    let target = "{group: policy.linkerd.io, kind: Server, name: web, namespace: ''}";
    compile(&authorization_policy(target, ALL)).unwrap();
    compile(&rate_limit(target, "{kind: ServiceAccount, name: vip}")).unwrap();
}

#[test]
fn authentication_refs_in_their_kinds_group_are_accepted() {
    for authn in [
        ALL,
        "{kind: ServiceAccount, name: api}",
        "{group: '', kind: ServiceAccount, name: api}",
        "{group: core, kind: ServiceAccount, name: api}",
    ] {
        compile(&authorization_policy(SERVER, authn)).unwrap_or_else(|e| panic!("{authn}: {e}"));
    }
}

#[test]
fn an_authentication_ref_in_another_group_is_refused() {
    for (authn, group) in [
        ("{kind: NetworkAuthentication, name: all}", "core"),
        (
            "{group: example.com, kind: NetworkAuthentication, name: all}",
            "example.com",
        ),
        (
            "{group: policy.linkerd.io, kind: ServiceAccount, name: api}",
            "policy.linkerd.io",
        ),
    ] {
        let err = compile(&authorization_policy(SERVER, authn)).unwrap_err();
        assert_group_error(
            &err,
            "spec.requiredAuthenticationRefs[0].group",
            "ap",
            group,
            authn,
        );
    }
    let doc = format!(
        "{}---\n{}",
        mesh_tls("{kind: ServiceAccount, name: api}"),
        authorization_policy(SERVER, "{kind: MeshTLSAuthentication, name: clients}")
    );
    let err = compile(&doc).unwrap_err();
    assert_group_error(
        &err,
        "spec.requiredAuthenticationRefs[0].group",
        "ap",
        "core",
        "MeshTLSAuthentication",
    );
}

#[test]
fn an_identity_ref_in_another_group_is_refused() {
    for (identity_ref, group) in [
        (
            "{group: policy.linkerd.io, kind: ServiceAccount, name: api}",
            "policy.linkerd.io",
        ),
        (
            "{group: example.com, kind: Namespace, name: other}",
            "example.com",
        ),
    ] {
        let doc = format!(
            "{}---\n{}",
            mesh_tls(identity_ref),
            authorization_policy(
                SERVER,
                "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}"
            )
        );
        let err = compile(&doc).unwrap_err();
        assert_group_error(
            &err,
            "spec.identityRefs[0].group",
            "clients",
            group,
            identity_ref,
        );
    }
    for identity_ref in [
        "{group: core, kind: ServiceAccount, name: api}",
        "{group: '', kind: Namespace, name: other}",
    ] {
        let doc = format!(
            "{}---\n{}",
            mesh_tls(identity_ref),
            authorization_policy(
                SERVER,
                "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}"
            )
        );
        compile(&doc).unwrap_or_else(|e| panic!("{identity_ref}: {e}"));
    }
}

#[test]
fn a_client_ref_in_another_group_is_refused() {
    compile(&rate_limit(
        SERVER,
        "{group: core, kind: ServiceAccount, name: vip}",
    ))
    .unwrap();
    let err = compile(&rate_limit(
        SERVER,
        "{group: example.com, kind: ServiceAccount, name: vip}",
    ))
    .unwrap_err();
    assert_group_error(
        &err,
        "spec.overrides[0].clientRefs[0].group",
        "rl",
        "example.com",
        "clientRefs",
    );
}
#[test]
fn kinds_are_compared_without_regard_to_case() {
    for (target, authn) in [
        (
            "{group: policy.linkerd.io, kind: server, name: web}",
            "{group: policy.linkerd.io, kind: networkauthentication, name: all}",
        ),
        (
            "{group: gateway.networking.k8s.io, kind: httproute, name: api}",
            "{kind: SERVICEACCOUNT, name: api}",
        ),
        ("{kind: namespace, name: ns}", ALL),
    ] {
        compile(&authorization_policy(target, authn))
            .unwrap_or_else(|e| panic!("{target} {authn}: {e}"));
    }
    for identity_ref in [
        "{kind: serviceaccount, name: api}",
        "{kind: NAMESPACE, name: other}",
    ] {
        let doc = format!(
            "{}---\n{}",
            mesh_tls(identity_ref),
            authorization_policy(
                SERVER,
                "{group: policy.linkerd.io, kind: meshtlsauthentication, name: clients}"
            )
        );
        compile(&doc).unwrap_or_else(|e| panic!("{identity_ref}: {e}"));
    }
    compile(&rate_limit(
        "{group: policy.linkerd.io, kind: SERVER, name: web}",
        "{kind: serviceAccount, name: vip}",
    ))
    .unwrap();
}

#[test]
fn two_network_authentications_are_refused_whatever_the_case_of_their_kind() {
    let err = compile(&authorization_policy(
        SERVER,
        &format!("{ALL}, {{group: policy.linkerd.io, kind: networkAuthentication, name: all}}"),
    ))
    .unwrap_err();
    assert_eq!(
        err.field_path(),
        "spec.requiredAuthenticationRefs[1]",
        "{err}"
    );
    assert!(err.message().contains("only one"), "{err}");
}
#[test]
fn a_target_route_in_the_other_route_group_is_a_dangling_reference() {
    // The only HTTPRoute named api is the Gateway API's: a target naming
    // policy.linkerd.io's matches no route, as in Linkerd.
    let err = compile(&authorization_policy(
        "{group: policy.linkerd.io, kind: HTTPRoute, name: api}",
        ALL,
    ))
    .unwrap_err();
    assert_eq!(err.kind(), Kind::DanglingReference, "{err}");
    assert_eq!(err.field_path(), "spec.targetRef.group", "{err}");
    assert_eq!(err.name(), Some("ap"), "{err}");
    assert!(err.line().is_some(), "{err}");
    assert!(err.message().contains("policy.linkerd.io"), "{err}");
}
