//! The sockets a configuration asks for, checked against each other: two
//! listeners on one port, or an application address that is one of the
//! sidecar's own listeners, are errors found before anything is bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::{ConfigError, ConfigErrorKind, Location};
use super::resolve::Source;

/// A socket the sidecar will bind, and the field that asked for it.
#[derive(Debug)]
pub(super) struct Listener {
    path: String,
    addr: SocketAddr,
    /// Written in the file, as opposed to a default.
    explicit: bool,
}

impl Listener {
    pub(super) fn new(path: impl Into<String>, addr: SocketAddr, explicit: bool) -> Self {
        Listener {
            path: path.into(),
            addr,
            explicit,
        }
    }
}

/// Whether two listeners would fight over a port. Port 0 asks the system
/// for a free port, so it never conflicts. An unspecified address takes
/// the port on every interface: `0.0.0.0` on every IPv4 address, and
/// `[::]` on every IPv6 and IPv4 one (the sidecar binds IPv6 sockets
/// dual-stack, the system's default), so `0.0.0.0:P` and `[::1]:P` are two
/// sockets' while `[::]:P` and `127.0.0.1:P` fight. An IPv4-mapped address
/// is the IPv4 address it maps.
///
/// The sidecar binds with `SO_REUSEPORT` (one listener per core), so the
/// system would not refuse the second bind: connections would be shared
/// between the two listeners at random. Hence this check.
fn conflict(a: SocketAddr, b: SocketAddr) -> bool {
    let (a, b) = (canonical(a), canonical(b));
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
}

/// Whether a listener on `wildcard` takes connections to `ip` as well:
/// an unspecified IPv6 address takes both families, an unspecified IPv4
/// address only IPv4.
fn covers(wildcard: IpAddr, ip: IpAddr) -> bool {
    wildcard.is_unspecified() && (wildcard.is_ipv6() || ip.is_ipv4())
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) written
/// as the IPv4 address it maps, which is what it binds and reaches: the
/// system lets `127.0.0.1:4140` and `[::ffff:127.0.0.1]:4140` both be
/// bound with `SO_REUSEPORT`, and shares the port's connections.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Rejects two listeners on one port. The one reported is the later in the
/// file (a default counts as first), and the message names the other.
pub(super) fn check_listeners(
    listeners: &[Listener],
    source: Source<'_>,
) -> Result<(), ConfigError> {
    let clash = listeners
        .iter()
        .enumerate()
        .any(|(i, a)| listeners[..i].iter().any(|b| conflict(a.addr, b.addr)));
    if !clash {
        return Ok(());
    }
    let mut placed: Vec<(&Listener, Option<Location>)> = listeners
        .iter()
        .map(|listener| {
            let location = listener
                .explicit
                .then(|| source.locate_listener(&listener.path))
                .flatten();
            (listener, location)
        })
        .collect();
    placed.sort_by_key(|(listener, location)| {
        (listener.explicit, location.map(|location| location.index))
    });
    for (i, (second, location)) in placed.iter().enumerate() {
        let Some((first, first_location)) = placed[..i]
            .iter()
            .find(|(first, _)| conflict(first.addr, second.addr))
        else {
            continue;
        };
        let whence = match (first.explicit, first_location) {
            (false, _) => ", the default".to_owned(),
            (true, Some(location)) => format!(", line {}", location.line),
            (true, None) => String::new(),
        };
        let message = format!(
            "port {} is already taken by {} ({}{whence})",
            second.addr.port(),
            first.path,
            first.addr,
        );
        return Err(ConfigError::new(
            ConfigErrorKind::DuplicateListener,
            source.origin,
            &second.path,
            message,
        )
        .at(*location));
    }
    Ok(())
}

/// Whether a connection to `app` (an application's or a dashboard peer's
/// address) would arrive at the sidecar's own `listener`: the same port,
/// and the same address, or a listener on every interface reached through
/// loopback. An IPv4 wildcard takes IPv4 only; `[::]` takes both.
///
/// As a destination, an unspecified address is the loopback address of
/// its family: Linux connects `0.0.0.0` to `127.0.0.1` and `[::]` to
/// `[::1]`, so an application at `0.0.0.0:4140` is the outbound listener
/// on `127.0.0.1:4140`. A listener on every interface also takes this
/// host's other addresses (a pod's own IP): whether `app` is one is asked
/// of the system, and only when the ports are the same.
pub(crate) fn reaches(app: SocketAddr, listener: SocketAddr) -> bool {
    let (app, listener) = (destination(canonical(app)), canonical(listener));
    let family_ok = listener.is_ipv6() || app.is_ipv4();
    listener.port() != 0
        && app.port() == listener.port()
        && (app.ip() == listener.ip()
            || (listener.ip().is_unspecified()
                && family_ok
                && (app.ip().is_loopback() || is_this_hosts(app.ip()))))
}

/// Whether `ip` is an address of this host: a socket can be bound to it
/// (binding a UDP socket sends nothing). A multicast address can be bound
/// for receiving, but no connection goes to it.
fn is_this_hosts(ip: IpAddr) -> bool {
    !ip.is_multicast() && std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Where a connection to `addr` goes: an unspecified address is the
/// loopback address of its family.
fn destination(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Rejects an application address on port 0, which nothing can connect
/// to, and one that is a listener of this sidecar: each connection would
/// be forwarded back to the sidecar, again and again, until every
/// connection slot is taken.
pub(super) fn check_apps(
    apps: &[(String, SocketAddr)],
    listeners: &[Listener],
    source: Source<'_>,
) -> Result<(), ConfigError> {
    for (path, app) in apps {
        if app.port() == 0 {
            return Err(source.error(
                ConfigErrorKind::InvalidValue,
                path,
                path,
                format!("invalid application address {app} (port 0 cannot be connected to)"),
            ));
        }
        let Some(listener) = listeners.iter().find(|l| reaches(*app, l.addr)) else {
            continue;
        };
        let default = if listener.explicit {
            ""
        } else {
            ", the default"
        };
        return Err(source.error(
            ConfigErrorKind::Conflict,
            path,
            path,
            format!(
                "{app} is the sidecar's own {} ({}{default}): every connection would be \
                 forwarded back to the sidecar",
                listener.path, listener.addr
            ),
        ));
    }
    Ok(())
}

/// Rejects a trace collector, at `collector` (an `http://` URL), that is
/// one of the sidecar's own listeners: spans sent to the admin server are
/// refused, and spans sent to an inbound listener go to the application.
/// A collector named by a host name is not looked up.
pub(super) fn check_collector(
    collector: &http::Uri,
    listeners: &[Listener],
    source: Source<'_>,
) -> Result<(), ConfigError> {
    let Some(host) = collector.host() else {
        return Ok(());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = host.parse::<IpAddr>() else {
        return Ok(());
    };
    let addr = SocketAddr::new(ip, collector.port_u16().unwrap_or(80));
    let Some(listener) = listeners.iter().find(|l| reaches(addr, l.addr)) else {
        return Ok(());
    };
    let default = if listener.explicit {
        ""
    } else {
        ", the default"
    };
    let path = "tracing.collector";
    Err(source.error(
        ConfigErrorKind::Conflict,
        path,
        path,
        format!(
            "{addr} is the sidecar's own {} ({}{default}), not a trace collector: the spans \
             would never reach one",
            listener.path, listener.addr
        ),
    ))
}
