//! The rules of the SPIFFE ID specification and of DNS names, one check at
//! a time, each failing with the [`InvalidIdentity`] that names it.

use std::borrow::Cow;

use super::{
    InvalidIdentity, MAX_DNS_LABEL_LEN, MAX_DNS_NAME_LEN, MAX_TRUST_DOMAIN_LEN, SPIFFE_SCHEME,
};

/// Whether `s` carries a URI scheme other than `spiffe://`: `http://...`,
/// `SPIFFE://...` or `spiffe:...` without the slashes.
pub(super) fn has_other_scheme(s: &str) -> bool {
    s.contains("://")
        || s.get(..SPIFFE_SCHEME.len() - 2)
            .is_some_and(|p| p.eq_ignore_ascii_case("spiffe:"))
}

/// Splits what follows `spiffe://` into the trust domain and the path (which
/// keeps its leading `/`), after rejecting a query, a fragment and
/// percent-encoding anywhere.
pub(super) fn split_authority(rest: &str) -> Result<(&str, &str), InvalidIdentity> {
    if rest.contains(['?', '#']) {
        return Err(InvalidIdentity::QueryOrFragment);
    }
    if rest.contains('%') {
        return Err(InvalidIdentity::PercentEncoded);
    }
    Ok(rest.find('/').map_or((rest, ""), |i| rest.split_at(i)))
}

pub(super) fn validate_trust_domain(name: &str) -> Result<(), InvalidIdentity> {
    if name.is_empty() {
        return Err(InvalidIdentity::MissingTrustDomain);
    }
    if name.contains('@') {
        return Err(InvalidIdentity::UserinfoPresent);
    }
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            ':' => return Err(InvalidIdentity::PortPresent),
            c => return Err(InvalidIdentity::BadTrustDomainChar(c)),
        }
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(InvalidIdentity::TrustDomainTooLong);
    }
    Ok(())
}

/// Checks a SPIFFE ID path: empty, or `/segment` repeated.
pub(super) fn validate_path(path: &str) -> Result<(), InvalidIdentity> {
    let Some(segments) = path.strip_prefix('/') else {
        // `split_authority` only returns paths that are empty or start with
        // `/`; an empty one names the trust domain itself.
        return Ok(());
    };
    let mut segments = segments.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            return Err(if segments.peek().is_none() {
                InvalidIdentity::TrailingSlash
            } else {
                InvalidIdentity::EmptySegment
            });
        }
        if segment == "." || segment == ".." {
            return Err(InvalidIdentity::DotSegment);
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(InvalidIdentity::BadPathChar(c));
        }
    }
    Ok(())
}

/// Checks a DNS-style name and folds it to lowercase.
pub(super) fn dns_name(s: &str) -> Result<Cow<'_, str>, InvalidIdentity> {
    if s.len() > MAX_DNS_NAME_LEN {
        return Err(InvalidIdentity::DnsNameTooLong);
    }
    let mut labels = 0_usize;
    let mut last = "";
    for label in s.split('.') {
        if label.is_empty() {
            return Err(InvalidIdentity::EmptyDnsLabel);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(InvalidIdentity::BadDnsChar(c));
        }
        if label.len() > MAX_DNS_LABEL_LEN {
            return Err(InvalidIdentity::DnsLabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(InvalidIdentity::DnsLabelHyphen);
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(InvalidIdentity::SingleLabel);
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidIdentity::NumericTopLabel);
    }
    Ok(if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    })
}
