//! `hostnames` of a route, checked as the Gateway API checks them.
//!
//! A route's hostnames are compared with each request's host. One that no
//! host can equal (`books.shop:8080`, `http://books.shop`, a bare `*`)
//! would make the route match nothing, silently; the API server refuses
//! such a route, and so does the reader, naming the entry.

use std::{fmt, net::Ipv4Addr};

use serde::{Deserialize, Deserializer};

/// The longest hostname: a DNS name's limit, and the Gateway API's.
const MAX_LEN: usize = 253;

/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Reads `hostnames`, at most 16, refusing any entry the Gateway API's `Hostname`
/// type refuses, with the entry's index in the error's path.
pub(super) fn hostnames<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let hostnames = super::limits::at_most::<{ super::limits::SIXTEEN }, D, Hostname>(d)?;
    Ok(hostnames.into_iter().map(|h| h.0).collect())
}

struct Hostname(String);

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::resource::scalar::parse_str(deserializer, "a hostname", Self::parse)
    }
}

impl Hostname {
    fn parse(hostname: &str) -> Result<Self, InvalidHostname> {
        match problem(hostname) {
            None => Ok(Self(hostname.to_owned())),
            Some(problem) => Err(InvalidHostname {
                hostname: hostname.to_owned(),
                problem,
            }),
        }
    }
}

/// What is wrong with `hostname`, if anything: the Gateway API's pattern
/// `^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`,
/// at most 253 characters, labels of at most 63 (RFC 1123), and no IP
/// address.
fn problem(hostname: &str) -> Option<&'static str> {
    if hostname.is_empty() {
        return Some("it is empty");
    }
    if hostname.len() > MAX_LEN {
        return Some("it is longer than 253 characters");
    }
    if hostname.parse::<Ipv4Addr>().is_ok() {
        return Some("an IP address is not a hostname");
    }
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    for label in name.split('.') {
        if label.is_empty() {
            return Some("a label between dots is empty");
        }
        if label.len() > MAX_LABEL_LEN {
            return Some("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Some(
                "labels hold lowercase letters, digits and '-' only: no port, scheme or \
                 wildcard other than a leading '*.'",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with '-'");
        }
    }
    None
}

/// A `hostnames` entry that is not a Gateway API `Hostname`.
#[derive(Debug)]
struct InvalidHostname {
    hostname: String,
    problem: &'static str,
}

impl fmt::Display for InvalidHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid hostname {:?}: {}; a hostname is a DNS name such as books.shop.svc.cluster.local, \
             or a wildcard such as *.example.com",
            self.hostname, self.problem
        )
    }
}
