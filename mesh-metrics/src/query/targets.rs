//! The admin servers a view scrapes, as `--admin` names them.
//!
//! A target is written `HOST:PORT`, or `NAME=HOST:PORT` to name the
//! workload it is a replica of: the admin server's address, as
//! `TcpStream::connect` takes it, and nothing else. A URL is refused where
//! it is written rather than where it is used: `http://127.0.0.1:4191`
//! would otherwise be taken as the host `http` and fail at the scrape, as
//! a DNS error that does not say what was wrong. An IPv6 address goes in
//! brackets (`[::1]:4191`): out of them, `::1:4191` may as well be an
//! address without a port. Any other host is a name or an IPv4 address,
//! of letters, digits, `-`, `.` and `_`: `web=a b:1` or `web==a:1`, a
//! typo, is refused rather than looked up.

use std::{fmt, net::Ipv6Addr, str::FromStr};

use serde::Serialize;

use crate::printable::Printable;

/// An admin server to scrape, and the workload it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The workload's name; targets with the same name are its replicas.
    pub name: String,
    /// The admin server's `host:port`.
    pub addr: String,
}

impl Target {
    /// Reads a comma-separated list of targets, as `--admin` takes it.
    /// Blanks around an item are not part of it; a list of nothing but
    /// blanks has no targets.
    ///
    /// # Errors
    ///
    /// When an item is not `HOST:PORT` or `NAME=HOST:PORT`, or is empty
    /// (`a:1,,b:2`, or a comma at either end): the error names the item,
    /// or the place of the empty one.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, InvalidTarget> {
        if list.trim().is_empty() {
            return Ok(Vec::new());
        }
        list.split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, item)| {
                item.parse().map_err(|e: InvalidTarget| InvalidTarget {
                    place: Some(i + 1),
                    ..e
                })
            })
            .collect()
    }
}

impl FromStr for Target {
    type Err = InvalidTarget;

    /// `HOST:PORT` (named after itself) or `NAME=HOST:PORT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |kind| InvalidTarget {
            item: s.to_owned(),
            place: None,
            kind,
        };
        if s.is_empty() {
            return Err(refuse(InvalidTargetKind::Empty));
        }
        // Before the name is split off: the `=` of a query may follow.
        if s.contains("://") {
            return Err(refuse(InvalidTargetKind::Scheme));
        }
        let (name, addr) = s.split_once('=').unwrap_or((s, s));
        if name.is_empty() {
            return Err(refuse(InvalidTargetKind::Name));
        }
        check_addr(addr).map_err(refuse)?;
        Ok(Self {
            name: name.to_owned(),
            addr: addr.to_owned(),
        })
    }
}

/// Checks that `addr` is `HOST:PORT`, with an IPv6 host in brackets.
fn check_addr(addr: &str) -> Result<(), InvalidTargetKind> {
    if addr.contains('/') {
        return Err(InvalidTargetKind::Path);
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(InvalidTargetKind::Port);
    };
    if host.is_empty() {
        return Err(InvalidTargetKind::Host);
    }
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map(|h| h.parse::<Ipv6Addr>().is_ok());
    match bracketed {
        Some(false) => return Err(InvalidTargetKind::Ipv6),
        None if host.contains([':', '[', ']']) => return Err(InvalidTargetKind::Ipv6),
        None if !host.chars().all(is_host_char) => return Err(InvalidTargetKind::HostName),
        _ => {}
    }
    if port.parse::<u16>().is_err() {
        return Err(InvalidTargetKind::Port);
    }
    Ok(())
}

/// Whether `c` may be in a host name or an IPv4 address: DNS names are
/// letters, digits and hyphens between dots, and `_` is common in names
/// that are not hostnames proper. A host with anything else (a blank, a
/// second `=`, a `@`) resolves to nothing.
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')
}

/// An `--admin` item that is not `HOST:PORT` or `NAME=HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTarget {
    item: String,
    /// Its place in a list, counted from 1.
    place: Option<usize>,
    kind: InvalidTargetKind,
}

impl InvalidTarget {
    /// The item, as written (without the blanks around it).
    pub fn item(&self) -> &str {
        &self.item
    }

    /// Its place in the list, counted from 1; `None` for one target parsed
    /// alone.
    pub fn place(&self) -> Option<usize> {
        self.place
    }

    /// What is wrong with it.
    pub fn kind(&self) -> InvalidTargetKind {
        self.kind
    }
}

/// What is wrong with an `--admin` item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTargetKind {
    /// Nothing is written: two commas in a row, or one at either end.
    Empty,
    /// A URL's scheme (`http://`): a target is an address, not a URL.
    Scheme,
    /// A path (any `/` in the address): the views scrape `/metrics`.
    Path,
    /// `=` with no name before it.
    Name,
    /// No host before the port.
    Host,
    /// A host with a character no host name or IPv4 address has: a
    /// blank, a second `=`, a `@`...
    HostName,
    /// An IPv6 host out of brackets, or brackets around no IPv6 address.
    Ipv6,
    /// No `:PORT`, or a port that is not a number from 0 to 65535.
    Port,
}

impl fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            InvalidTargetKind::Empty => "is empty",
            InvalidTargetKind::Scheme => "has a scheme",
            InvalidTargetKind::Path => "has a path",
            InvalidTargetKind::Name => "has an empty name",
            InvalidTargetKind::Host => "has no host",
            InvalidTargetKind::HostName => {
                "has a host with a character no host name or address has"
            }
            InvalidTargetKind::Ipv6 => {
                "has a host that is neither a name nor an ipv6 address in brackets, as [::1]"
            }
            InvalidTargetKind::Port => "has no port from 0 to 65535",
        };
        match (self.item.is_empty(), self.place) {
            (true, Some(place)) => write!(f, "admin target item {place} {what}")?,
            (true, None) => write!(f, "admin target {what}")?,
            (false, _) => write!(f, "admin target `{}` {what}", Printable::new(&self.item))?,
        }
        f.write_str("; expected HOST:PORT or NAME=HOST:PORT")
    }
}

impl std::error::Error for InvalidTarget {}

#[cfg(test)]
mod tests;
