//! `MeshTLSAuthentication.identityRefs` as Linkerd's policy controller
//! reads them: a `ServiceAccount` names one account, a `Namespace` every
//! account in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_policy::{PolicyConfig, Workload};
use support::{T::*, Want::*, *};

const IN: Option<&str> = Some("10.1.2.3");

const POLICY: &str = "
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 80
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: partners}
spec:
  identityRefs: [{kind: Namespace, name: partners}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-partners}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  requiredAuthenticationRefs:
    - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: partners}
";

#[test]
fn a_namespace_identity_ref_matches_every_service_account_in_it() {
    // linkerd2's policy controller turns `kind: Namespace` into the
    // identity `*.<ns>.serviceaccount.identity.<control-plane-ns>.<domain>`.
    let policy = compile(POLICY, &Workload::new("web"), &PolicyConfig::default());
    let allowed = Allow("web", "default", "web-partners");
    for (id, want) in [
        (
            "api.partners.serviceaccount.identity.linkerd.cluster.local",
            allowed,
        ),
        ("spiffe://cluster.local/ns/partners/sa/api", allowed),
        (
            "api.others.serviceaccount.identity.linkerd.cluster.local",
            Deny("web"),
        ),
        ("spiffe://cluster.local/ns/others/sa/api", Deny("web")),
        ("spiffe://cluster.local/ns/partners-x/sa/api", Deny("web")),
        ("spiffe://elsewhere.example/ns/partners/sa/api", Deny("web")),
        ("spiffe://cluster.local/ns/partners/sa/api/x", Deny("web")),
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
            want,
            "{id}"
        );
    }
    assert_eq!(decide(&policy, 80, Plain, IN, "GET", "/", &[]), Deny("web"));
}

#[test]
fn an_identity_ref_of_another_kind_is_an_error_naming_the_field() {
    let text = POLICY.replace("kind: Namespace", "kind: Pod");
    let err = mesh_policy::Policy::compile(
        &[mesh_policy::PolicySource::new("policy.yaml", &text)],
        &Workload::new("web"),
        &PolicyConfig::default(),
        &mesh_policy::PolicyMetrics::default(),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err.field_path(), "spec.identityRefs[0].kind", "{err}");
    assert_eq!(err.name(), Some("partners"), "{err}");
    assert!(
        err.message()
            .contains("expected ServiceAccount or Namespace"),
        "{err}"
    );
}

#[test]
fn linkerd_style_identities_written_out_also_admit_their_spiffe_form() {
    // A policy copied from Linkerd names clients in its DNS-style form; the
    // mesh issues SPIFFE IDs for the same service accounts.
    let policy = POLICY.replace(
        "identityRefs: [{kind: Namespace, name: partners}]",
        "identities:\n    - web.emojivoto.serviceaccount.identity.linkerd.cluster.local\n    \
         - '*.partners.serviceaccount.identity.linkerd.cluster.local'\n    \
         - api.other.serviceaccount.identity.linkerd.elsewhere.example",
    );
    let policy = compile(&policy, &Workload::new("web"), &PolicyConfig::default());
    let allowed = Allow("web", "default", "web-partners");
    for (id, want) in [
        (
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
            allowed,
        ),
        ("spiffe://cluster.local/ns/emojivoto/sa/web", allowed),
        ("spiffe://cluster.local/ns/emojivoto/sa/vote", Deny("web")),
        // The same service account in another trust domain is not it.
        (
            "spiffe://elsewhere.example/ns/emojivoto/sa/web",
            Deny("web"),
        ),
        ("spiffe://elsewhere.example/ns/partners/sa/api", Deny("web")),
        (
            "spiffe://cluster.local.evil/ns/partners/sa/api",
            Deny("web"),
        ),
        ("spiffe://cluster.local/ns/partners/sa/api", allowed),
        ("spiffe://cluster.local/ns/partners/sa/api/x", Deny("web")),
        ("spiffe://cluster.local/ns/partnersx/sa/api", Deny("web")),
        // Another trust domain's name is matched only as written.
        (
            "api.other.serviceaccount.identity.linkerd.elsewhere.example",
            allowed,
        ),
        ("spiffe://elsewhere.example/ns/other/sa/api", Deny("web")),
        ("spiffe://cluster.local/ns/other/sa/api", Deny("web")),
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
            want,
            "{id}"
        );
    }
}

#[test]
fn a_linkerd_style_identity_of_a_dotted_service_account_also_admits_its_spiffe_form() {
    // A ServiceAccount's name is a DNS subdomain, so it may hold dots
    // (`build.bot`); its namespace, a DNS label, never does. Linkerd names
    // it `build.bot.ci.serviceaccount.identity.linkerd.<td>`.
    let policy = POLICY.replace(
        "identityRefs: [{kind: Namespace, name: partners}]",
        "identities: [build.bot.ci.serviceaccount.identity.linkerd.cluster.local]",
    );
    let policy = compile(&policy, &Workload::new("web"), &PolicyConfig::default());
    let allowed = Allow("web", "default", "web-partners");
    for (id, want) in [
        (
            "build.bot.ci.serviceaccount.identity.linkerd.cluster.local",
            allowed,
        ),
        ("spiffe://cluster.local/ns/ci/sa/build.bot", allowed),
        ("spiffe://cluster.local/ns/ci/sa/build", Deny("web")),
        ("spiffe://cluster.local/ns/bot.ci/sa/build", Deny("web")),
        ("spiffe://cluster.local/ns/ci/sa/bot", Deny("web")),
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
            want,
            "{id}"
        );
    }
}

#[test]
fn a_suffix_wildcard_over_dotted_service_accounts_gets_no_spiffe_form() {
    // `*.bot.ci...` is every account whose name ends in `.bot` (as Linkerd
    // matches a suffix), which no one SPIFFE prefix says: it is matched
    // as written only, and never read as the namespace `bot.ci`.
    let policy = POLICY.replace(
        "identityRefs: [{kind: Namespace, name: partners}]",
        "identities: ['*.bot.ci.serviceaccount.identity.linkerd.cluster.local']",
    );
    let policy = compile(&policy, &Workload::new("web"), &PolicyConfig::default());
    let allowed = Allow("web", "default", "web-partners");
    for (id, want) in [
        (
            "build.bot.ci.serviceaccount.identity.linkerd.cluster.local",
            allowed,
        ),
        (
            "x.ci.serviceaccount.identity.linkerd.cluster.local",
            Deny("web"),
        ),
        ("spiffe://cluster.local/ns/ci/sa/x", Deny("web")),
        ("spiffe://cluster.local/ns/bot.ci/sa/x", Deny("web")),
    ] {
        assert_eq!(
            decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
            want,
            "{id}"
        );
    }
}

fn compile_error(text: &str) -> mesh_core::resource::ResourceError {
    mesh_policy::Policy::compile(
        &[mesh_policy::PolicySource::new("policy.yaml", text)],
        &Workload::new("web"),
        &PolicyConfig::default(),
        &mesh_policy::PolicyMetrics::default(),
    )
    .map(|_| ())
    .unwrap_err()
}

#[test]
fn a_namespace_with_a_dot_is_refused_rather_than_read_as_another_namespace() {
    // A namespace is a DNS label. In Linkerd's DNS-style form the last
    // label before `.serviceaccount` is the namespace, so a dotted one
    // would name another namespace's accounts: `*.a.b.serviceaccount...`
    // is every account of `b` whose name ends in `.a`, and
    // `x.a.b.serviceaccount...` the account `x.a` of `b`.
    for (refs, field) in [
        (
            "identityRefs: [{kind: Namespace, name: a.b}]",
            "spec.identityRefs[0].name",
        ),
        (
            "identityRefs: [{kind: ServiceAccount, name: x, namespace: a.b}]",
            "spec.identityRefs[0].name",
        ),
    ] {
        let text = POLICY.replace("identityRefs: [{kind: Namespace, name: partners}]", refs);
        let err = compile_error(&text);
        assert_eq!(err.field_path(), field, "{refs}: {err}");
        assert!(err.message().contains("'.'"), "{refs}: {err}");
    }
    let text = POLICY.replace(
        "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: partners}",
        "{kind: ServiceAccount, name: x, namespace: a.b}",
    );
    let err = compile_error(&text);
    assert_eq!(
        err.field_path(),
        "spec.requiredAuthenticationRefs[0].name",
        "{err}"
    );
    assert!(err.message().contains("'.'"), "{err}");
}

#[test]
fn a_reference_written_in_capitals_names_the_lowercase_account_in_both_forms() {
    // Kubernetes names are lowercase, and a DNS-style identity is matched
    // without regard to case, as Linkerd matches it: `Web` in `Partners`
    // is the account `web` of `partners`, whichever form it presents.
    let allowed = Allow("web", "default", "web-partners");
    for refs in [
        "identityRefs: [{kind: ServiceAccount, name: Api, namespace: Partners}]",
        "identityRefs: [{kind: Namespace, name: Partners}]",
    ] {
        let text = POLICY.replace("identityRefs: [{kind: Namespace, name: partners}]", refs);
        let policy = compile(&text, &Workload::new("web"), &PolicyConfig::default());
        for (id, want) in [
            (
                "api.partners.serviceaccount.identity.linkerd.cluster.local",
                allowed,
            ),
            ("spiffe://cluster.local/ns/partners/sa/api", allowed),
            ("spiffe://cluster.local/ns/others/sa/api", Deny("web")),
        ] {
            assert_eq!(
                decide(&policy, 80, Id(id), IN, "GET", "/", &[]),
                want,
                "{refs}: {id}"
            );
        }
    }
}
