use serde::{Deserialize, de::IntoDeserializer};

use super::*;

/// Valid identities, with the string each one normalizes to.
const VALID: &[(&str, &str)] = &[
    // SPIFFE ID spec §2: a trust domain and a path.
    ("spiffe://example.org/path", "spiffe://example.org/path"),
    // §2: the path is optional; this is the trust domain's own ID (§3.1).
    ("spiffe://example.org", "spiffe://example.org"),
    // §2.2 examples.
    (
        "spiffe://staging.example.com/payments/web-fe",
        "spiffe://staging.example.com/payments/web-fe",
    ),
    (
        "spiffe://k8s-west.example.com/ns/staging/sa/default",
        "spiffe://k8s-west.example.com/ns/staging/sa/default",
    ),
    (
        "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
        "spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453",
    ),
    // Trust domain characters: lowercase, digits, '.', '-', '_'.
    (
        "spiffe://trust_domain-1.example/x",
        "spiffe://trust_domain-1.example/x",
    ),
    ("spiffe://127.0.0.1/x", "spiffe://127.0.0.1/x"),
    // Path characters: both cases, digits, '.', '-', '_'.
    (
        "spiffe://a/Path.With_Mixed-Case9",
        "spiffe://a/Path.With_Mixed-Case9",
    ),
    // Only `.` and `..` are dot segments; `...` and `.hidden` are names.
    (
        "spiffe://example.org/.../.hidden",
        "spiffe://example.org/.../.hidden",
    ),
    // Linkerd's DNS-style names.
    (
        "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
        "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    ),
    ("a-1.b2", "a-1.b2"),
    // DNS names are case-insensitive: folded to lowercase.
    ("Web.EmojiVoto.svc", "web.emojivoto.svc"),
];

/// Invalid identities and the rule each one breaks.
const INVALID: &[(&str, InvalidIdentity)] = &[
    ("", InvalidIdentity::Empty),
    // §2: the scheme must be `spiffe`.
    ("http://example.org/path", InvalidIdentity::WrongScheme),
    ("SPIFFE://example.org/path", InvalidIdentity::WrongScheme),
    ("spiffe:/example.org/path", InvalidIdentity::WrongScheme),
    ("spiffe:example.org", InvalidIdentity::WrongScheme),
    // §2: a non-zero trust domain name.
    ("spiffe://", InvalidIdentity::MissingTrustDomain),
    ("spiffe:///path", InvalidIdentity::MissingTrustDomain),
    // §2.1: only lowercase letters, digits, '.', '-' and '_'.
    (
        "spiffe://Example.org/path",
        InvalidIdentity::BadTrustDomainChar('E'),
    ),
    (
        "spiffe://exa mple.org/path",
        InvalidIdentity::BadTrustDomainChar(' '),
    ),
    (
        "spiffe://[::1]/path",
        InvalidIdentity::BadTrustDomainChar('['),
    ),
    // §2.1: no userinfo, no port, no ':' at all.
    (
        "spiffe://user@example.org/path",
        InvalidIdentity::UserinfoPresent,
    ),
    (
        "spiffe://user:pw@example.org",
        InvalidIdentity::UserinfoPresent,
    ),
    (
        "spiffe://example.org:8443/path",
        InvalidIdentity::PortPresent,
    ),
    ("spiffe://example.org:/path", InvalidIdentity::PortPresent),
    // §2: no query, no fragment.
    (
        "spiffe://example.org/path?q=1",
        InvalidIdentity::QueryOrFragment,
    ),
    (
        "spiffe://example.org/path#frag",
        InvalidIdentity::QueryOrFragment,
    ),
    ("spiffe://example.org?q", InvalidIdentity::QueryOrFragment),
    // Never percent-encoded.
    (
        "spiffe://example.org/a%20b",
        InvalidIdentity::PercentEncoded,
    ),
    ("spiffe://ex%61mple.org/a", InvalidIdentity::PercentEncoded),
    // §2.2: no trailing slash.
    ("spiffe://example.org/", InvalidIdentity::TrailingSlash),
    ("spiffe://example.org/path/", InvalidIdentity::TrailingSlash),
    // Path segments are non-empty.
    ("spiffe://example.org//path", InvalidIdentity::EmptySegment),
    ("spiffe://example.org/a//b", InvalidIdentity::EmptySegment),
    // No dot segments.
    ("spiffe://example.org/.", InvalidIdentity::DotSegment),
    ("spiffe://example.org/..", InvalidIdentity::DotSegment),
    ("spiffe://example.org/a/../b", InvalidIdentity::DotSegment),
    ("spiffe://example.org/a/./b", InvalidIdentity::DotSegment),
    // Path characters: letters, digits, '.', '-', '_'.
    (
        "spiffe://example.org/a b",
        InvalidIdentity::BadPathChar(' '),
    ),
    (
        "spiffe://example.org/a*b",
        InvalidIdentity::BadPathChar('*'),
    ),
    (
        "spiffe://example.org/a:b",
        InvalidIdentity::BadPathChar(':'),
    ),
    (
        "spiffe://example.org/a@b",
        InvalidIdentity::BadPathChar('@'),
    ),
    (
        "spiffe://example.org/caf\u{e9}",
        InvalidIdentity::BadPathChar('\u{e9}'),
    ),
    // DNS-style names.
    ("web", InvalidIdentity::SingleLabel),
    ("web..ns", InvalidIdentity::EmptyDnsLabel),
    (".web.ns", InvalidIdentity::EmptyDnsLabel),
    ("web.ns.", InvalidIdentity::EmptyDnsLabel),
    ("-web.ns", InvalidIdentity::DnsLabelHyphen),
    ("web-.ns", InvalidIdentity::DnsLabelHyphen),
    ("we_b.ns", InvalidIdentity::BadDnsChar('_')),
    ("*.example.com", InvalidIdentity::BadDnsChar('*')),
    ("example.org:8080", InvalidIdentity::BadDnsChar(':')),
    ("10.0.0.1", InvalidIdentity::NumericTopLabel),
];

#[test]
fn valid_identities_parse_to_their_normal_form() {
    for &(input, normal) in VALID {
        let id = Identity::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(id.as_str(), normal, "{input:?}");
        assert_eq!(id.is_spiffe(), input.starts_with("spiffe://"), "{input:?}");
        // Parsing the normal form again is the identity function.
        assert_eq!(Identity::parse(id.as_str()), Ok(id.clone()), "{input:?}");
    }
}

#[test]
fn invalid_identities_name_the_rule_they_break() {
    for &(input, expected) in INVALID {
        assert_eq!(Identity::parse(input), Err(expected), "{input:?}");
    }
}

#[test]
fn the_table_covers_at_least_25_cases() {
    assert!(VALID.len() + INVALID.len() >= 25);
}

#[test]
fn spiffe_ids_up_to_2048_bytes_are_valid() {
    let prefix = "spiffe://example.org/";
    let at_limit = format!("{prefix}{}", "a".repeat(MAX_SPIFFE_ID_LEN - prefix.len()));
    assert_eq!(at_limit.len(), 2048);
    assert!(Identity::parse(&at_limit).is_ok());

    let over = format!("{at_limit}a");
    assert_eq!(Identity::parse(&over), Err(InvalidIdentity::TooLong));
}

#[test]
fn trust_domains_up_to_255_bytes_are_valid() {
    let at_limit = "a".repeat(MAX_TRUST_DOMAIN_LEN);
    assert!(Identity::parse(&format!("spiffe://{at_limit}/x")).is_ok());
    assert!(TrustDomain::parse(&at_limit).is_ok());

    let over = "a".repeat(MAX_TRUST_DOMAIN_LEN + 1);
    assert_eq!(
        Identity::parse(&format!("spiffe://{over}/x")),
        Err(InvalidIdentity::TrustDomainTooLong)
    );
    assert_eq!(
        TrustDomain::parse(&over),
        Err(InvalidIdentity::TrustDomainTooLong)
    );
}

#[test]
fn dns_names_are_limited_to_253_bytes_and_63_byte_labels() {
    let label = "a".repeat(MAX_DNS_LABEL_LEN);
    assert!(Identity::parse(&format!("{label}.ns")).is_ok());
    assert_eq!(
        Identity::parse(&format!("{label}a.ns")),
        Err(InvalidIdentity::DnsLabelTooLong)
    );

    // 4 × 63 + 3 dots = 255 bytes; trim to exactly 253 and one over.
    let long = [label.as_str(); 4].join(".");
    assert!(Identity::parse(&long[..MAX_DNS_NAME_LEN]).is_ok());
    assert_eq!(
        Identity::parse(&long[..=MAX_DNS_NAME_LEN]),
        Err(InvalidIdentity::DnsNameTooLong)
    );
}

#[test]
fn spiffe_ids_expose_trust_domain_and_path() {
    let id = Identity::parse("spiffe://cluster.local/ns/emojivoto/sa/web").unwrap();
    assert_eq!(id.trust_domain_name(), Some("cluster.local"));
    assert_eq!(id.trust_domain().unwrap().as_str(), "cluster.local");
    assert_eq!(id.path(), Some("/ns/emojivoto/sa/web"));

    let root = Identity::parse("spiffe://cluster.local").unwrap();
    assert_eq!(root.trust_domain_name(), Some("cluster.local"));
    assert_eq!(root.path(), Some(""));
}

#[test]
fn dns_names_have_no_trust_domain_or_path() {
    let id =
        Identity::parse("web.emojivoto.serviceaccount.identity.linkerd.cluster.local").unwrap();
    assert!(!id.is_spiffe());
    assert_eq!(id.trust_domain(), None);
    assert_eq!(id.path(), None);
    let td = TrustDomain::parse("cluster.local").unwrap();
    assert!(!td.contains(&id));
}

#[test]
fn trust_domains_parse_bare_or_as_spiffe_ids() {
    let bare = TrustDomain::parse("example.org").unwrap();
    let uri = TrustDomain::parse("spiffe://example.org").unwrap();
    assert_eq!(bare, uri);
    assert_eq!(bare.as_str(), "example.org");
    assert_eq!(bare.id().as_str(), "spiffe://example.org");
    assert_eq!(bare.id().trust_domain(), Some(bare.clone()));

    assert_eq!(
        TrustDomain::parse("spiffe://example.org/web"),
        Err(InvalidIdentity::UnexpectedPath)
    );
    assert_eq!(
        TrustDomain::parse("spiffe://example.org/"),
        Err(InvalidIdentity::UnexpectedPath)
    );
    assert_eq!(TrustDomain::parse(""), Err(InvalidIdentity::Empty));
    assert_eq!(
        TrustDomain::parse("Example.org"),
        Err(InvalidIdentity::BadTrustDomainChar('E'))
    );
    assert_eq!(
        TrustDomain::parse("example.org:443"),
        Err(InvalidIdentity::PortPresent)
    );
    assert_eq!(
        TrustDomain::parse("https://example.org"),
        Err(InvalidIdentity::WrongScheme)
    );
    assert_eq!(
        TrustDomain::parse("spiffe://"),
        Err(InvalidIdentity::MissingTrustDomain)
    );
}

#[test]
fn trust_domains_contain_only_their_own_ids() {
    let td = TrustDomain::parse("example.org").unwrap();
    for (id, inside) in [
        ("spiffe://example.org", true),
        ("spiffe://example.org/web", true),
        ("spiffe://example.org.evil/web", false),
        ("spiffe://sub.example.org/web", false),
        ("spiffe://example.or/web", false),
    ] {
        assert_eq!(td.contains(&Identity::parse(id).unwrap()), inside, "{id}");
    }
}

#[test]
fn identities_display_and_parse_round_trip() {
    let id: Identity = "spiffe://example.org/ns/default/sa/web".parse().unwrap();
    assert_eq!(id.to_string(), "spiffe://example.org/ns/default/sa/web");
    assert_eq!(id.to_string().parse::<Identity>().unwrap(), id);
    let td: TrustDomain = "example.org".parse().unwrap();
    assert_eq!(td.to_string(), "example.org");
    assert_eq!(String::from(id.clone()), id.as_str());
}

#[test]
fn serde_validates_identities() {
    fn de<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, serde::de::value::Error> {
        T::deserialize(s.into_deserializer())
    }
    let id: Identity = de("spiffe://example.org/web").unwrap();
    assert_eq!(id.as_str(), "spiffe://example.org/web");
    let td: TrustDomain = de("example.org").unwrap();
    assert_eq!(td.as_str(), "example.org");

    let err = de::<Identity>("spiffe://example.org/a/../b").unwrap_err();
    assert_eq!(err.to_string(), InvalidIdentity::DotSegment.to_string());
    assert!(de::<TrustDomain>("Example.org").is_err());
}

#[test]
fn error_messages_are_lowercase() {
    for &(input, err) in INVALID {
        let msg = err.to_string();
        let first = msg.chars().next().unwrap();
        assert!(first.is_lowercase(), "{input:?}: {msg}");
    }
}
