//! Manifests Linkerd's admission webhook refuses are refused here too,
//! with an error naming the field: each would otherwise be read as
//! something its author did not write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::resource::ResourceErrorKind as Kind;
use support::try_compile_web as compile;

const SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: office, namespace: ns}
spec:
  networks: [{cidr: 192.168.0.0/16}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: vpn, namespace: ns}
spec:
  networks: [{cidr: 10.8.0.0/16}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: frontends, namespace: ns}
spec:
  identities: [\"spiffe://cluster.local/ns/ns/sa/frontend\"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: admins, namespace: ns}
spec:
  identities: [\"spiffe://cluster.local/ns/ns/sa/admin\"]
";

/// The document number of the first document after [`SERVER`].
const NEXT: usize = 6;

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} is not in the text"))
}

/// An AuthorizationPolicy on `web` requiring `refs` (YAML flow mappings,
/// one a line), after [`SERVER`].
fn authorization_policy(refs: &[&str]) -> String {
    let mut text = format!(
        "{SERVER}---\napiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: ap, namespace: ns}}\nspec:\n  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}\n  requiredAuthenticationRefs:\n"
    );
    for r in refs {
        text.push_str(&format!("    - {r}\n"));
    }
    text
}

#[track_caller]
fn assert_refused(text: &str, kind: &str, name: &str, field: &str, line: usize, says: &str) {
    let err = compile(text).expect_err("compiles");
    assert_eq!(err.kind(), Kind::InvalidValue, "{err}");
    assert_eq!(err.document(), Some(NEXT), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some(kind), Some(name)),
        "{err}"
    );
    assert_eq!(err.field_path(), field, "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    assert!(err.message().contains(says), "{err}");
}

const OFFICE: &str = "{group: policy.linkerd.io, kind: NetworkAuthentication, name: office}";
const VPN: &str = "{group: policy.linkerd.io, kind: NetworkAuthentication, name: vpn}";
const FRONTENDS: &str = "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: frontends}";
const ADMINS: &str = "{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admins}";
const WEB_SA: &str = "{kind: ServiceAccount, name: web}";
const API_SA: &str = "{kind: ServiceAccount, name: api}";

#[test]
fn an_authorization_policy_requires_at_most_one_network_authentication() {
    // Two networks read as "from either" to their author, but every
    // reference must match, so together they would admit only the
    // addresses in both (here none). Linkerd refuses the policy.
    let text = authorization_policy(&[OFFICE, VPN]);
    assert_refused(
        &text,
        "AuthorizationPolicy",
        "ap",
        "spec.requiredAuthenticationRefs[1]",
        line_of(&text, "name: vpn}"),
        "only one NetworkAuthentication may be required: spec.requiredAuthenticationRefs[0] is NetworkAuthentication office",
    );
}

#[test]
fn an_authorization_policy_requires_at_most_one_identity_authentication() {
    for (refs, needle, says) in [
        (
            [FRONTENDS, ADMINS],
            "name: admins}",
            "spec.requiredAuthenticationRefs[0] is MeshTLSAuthentication frontends",
        ),
        (
            [WEB_SA, API_SA],
            "name: api}",
            "spec.requiredAuthenticationRefs[0] is ServiceAccount web",
        ),
        (
            [FRONTENDS, WEB_SA],
            "kind: ServiceAccount, name: web}",
            "spec.requiredAuthenticationRefs[0] is MeshTLSAuthentication frontends",
        ),
    ] {
        let text = authorization_policy(&refs);
        assert_refused(
            &text,
            "AuthorizationPolicy",
            "ap",
            "spec.requiredAuthenticationRefs[1]",
            line_of(&text, needle),
            says,
        );
        assert!(
            compile(&text)
                .unwrap_err()
                .message()
                .contains("only one MeshTLSAuthentication or ServiceAccount may be required"),
            "{refs:?}"
        );
    }
}

#[test]
fn one_identity_and_one_network_authentication_together_are_read() {
    compile(&authorization_policy(&[FRONTENDS, OFFICE])).unwrap();
    compile(&authorization_policy(&[OFFICE, WEB_SA])).unwrap();
}

fn server_authorization(mesh_tls: &str) -> String {
    format!(
        "{SERVER}---\napiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {{name: sa, namespace: ns}}\nspec:\n  server: {{name: web}}\n  client:\n    meshTLS:\n{mesh_tls}"
    )
}

#[test]
fn unauthenticated_tls_with_identities_or_service_accounts_is_refused() {
    // `unauthenticatedTLS` admits every TLS client: identities beside it
    // would be ignored, so the authorization would admit far more
    // clients than the ones it lists.
    for clients in [
        "      identities: [\"spiffe://cluster.local/ns/ns/sa/frontend\"]\n",
        "      serviceAccounts: [{name: frontend}]\n",
    ] {
        let text = server_authorization(&format!("      unauthenticatedTLS: true\n{clients}"));
        assert_refused(
            &text,
            "ServerAuthorization",
            "sa",
            "spec.client.meshTLS.unauthenticatedTLS",
            line_of(&text, "unauthenticatedTLS"),
            "admits every TLS client, so the identities and serviceAccounts beside it would be ignored",
        );
    }
    compile(&server_authorization("      unauthenticatedTLS: true\n")).unwrap();
    compile(&server_authorization(
        "      unauthenticatedTLS: false\n      identities: [\"*\"]\n",
    ))
    .unwrap();
}

#[test]
fn an_except_that_covers_its_whole_network_is_refused() {
    // Such a network matches no address at all.
    let network_authentication = |except: &str| {
        format!(
            "{SERVER}---\napiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {{name: nobody, namespace: ns}}\nspec:\n  networks:\n    - cidr: 10.0.0.0/8\n    - cidr: 172.16.0.0/12\n      except: [172.16.1.0/24, {except}]\n"
        )
    };
    for except in ["172.16.0.0/12", "172.0.0.0/8"] {
        let text = network_authentication(except);
        assert_refused(
            &text,
            "NetworkAuthentication",
            "nobody",
            "spec.networks[1].except[1]",
            line_of(&text, "except:"),
            &format!("{except} excepts all of 172.16.0.0/12, so the network matches no address"),
        );
    }
    let text = server_authorization("      identities: [\"*\"]\n").replace(
        "    meshTLS:\n",
        "    networks: [{cidr: 10.0.0.0/8, except: [10.0.0.0/8]}]\n    meshTLS:\n",
    );
    assert_refused(
        &text,
        "ServerAuthorization",
        "sa",
        "spec.client.networks[0].except[0]",
        line_of(&text, "except:"),
        "10.0.0.0/8 excepts all of 10.0.0.0/8",
    );
}

#[test]
fn a_namespace_identity_ref_with_a_namespace_is_refused() {
    // A Namespace is not in a namespace: `namespace` beside it is a
    // mistake for a ServiceAccount reference, or for another namespace.
    let text = format!(
        "{SERVER}---\napiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {{name: partners, namespace: ns}}\nspec:\n  identityRefs:\n    - {{kind: Namespace, name: partners, namespace: ns}}\n"
    );
    assert_refused(
        &text,
        "MeshTLSAuthentication",
        "partners",
        "spec.identityRefs[0].namespace",
        line_of(&text, "kind: Namespace"),
        "a Namespace is not in a namespace",
    );
}
