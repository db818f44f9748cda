//! `identity.identity` against `identity.trust_domain`: a configuration
//! the credential store would refuse every certificate of is refused when
//! it is read, at the field, whatever the identity's form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

#[test]
fn a_dns_style_identity_outside_the_trust_domain_is_rejected() {
    // The store takes a DNS-style identity to be in a trust domain when it
    // ends with `.<domain>` (mesh_tls::in_trust_domain), and refuses every
    // certificate that is not: this sidecar could never start.
    let yaml = "\
identity:
  dir: /var/run/mesh/identity
  identity: web.emojivoto.serviceaccount.identity.linkerd.cluster.local
  trust_domain: example.org
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "identity.identity",
        3,
    );
    let text = error.to_string();
    assert!(text.contains("outside trust_domain example.org"), "{text}");

    // Nor a name that merely ends with the domain's text.
    let yaml = "\
identity:
  ca: /var/run/mesh/ca
  identity: web.evilcluster.local
  trust_domain: cluster.local
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "identity.identity",
        3,
    );
}

#[test]
fn a_dns_style_identity_inside_the_trust_domain_is_accepted() {
    let yaml = "\
identity:
  dir: /var/run/mesh/identity
  identity: web.emojivoto.serviceaccount.identity.linkerd.cluster.local
  trust_domain: cluster.local
";
    let config = parse(yaml).unwrap();
    let identity = config.identity.unwrap();
    assert_eq!(identity.trust_domain().unwrap().as_str(), "cluster.local");
}
