//! The sidecar's own outbound listeners, which are never an endpoint.
//!
//! A request sent to the sidecar's outbound listener is routed by its
//! `Host`, which it keeps: an endpoint that is that listener (a name
//! such as `localhost:4140`, or a DNS record that points back at the
//! sidecar) sends it round again, and again, each time on a new
//! connection, until the connection limit is reached. Every connection
//! of the loop then waits on the next, which is never accepted: the
//! request hangs, and with it every other request the sidecar would
//! have served under that limit. So such an address is left out of a
//! service's endpoints, with an error in the log that names it.
//!
//! An address is the listener's when a connection to it would arrive
//! there, which is what `sidecar check` asks of the same endpoints
//! (`config::reaches`), so the two agree: the listener's port, and the
//! listener's address, or a listener on every interface reached through
//! loopback or another address of this host. As a destination, an
//! unspecified address is the loopback address of its family (Linux
//! connects `0.0.0.0` to `127.0.0.1` and `[::]` to `[::1]`). A listener on
//! `0.0.0.0` takes IPv4 connections only, so `[::1]` on its port is not
//! it: a connection there is refused, or reaches whatever listens on
//! `[::1]`, which may be a real endpoint; `[::]` takes both families.
//! The listeners are compared at the addresses they were bound to (`run`
//! binds them before the outbound side is built), so one configured on
//! port 0 is compared at the port it got. An address on port 0 given
//! here all the same matches nothing.

use std::net::SocketAddr;

use super::ServiceEndpoints;
use crate::sidecar::config::reaches;

impl ServiceEndpoints {
    /// Leaves the sidecar's own outbound `listeners` out of the endpoints,
    /// now and in every answer to come (see the [module docs](self)): a
    /// request sent there would loop.
    pub(crate) fn without_listeners(mut self, listeners: &[SocketAddr]) -> Self {
        self.listeners = listeners.to_vec();
        if let Ok(state) = self.state.get_mut() {
            state.endpoints = without_own(&self.service, &state.endpoints, listeners);
            if state.endpoints.is_empty() {
                tracing::warn!(
                    service = %self.service,
                    "no endpoint left; requests get 503 until one resolves"
                );
            }
            self.handles.endpoints.set(state.endpoints.len() as i64);
        }
        self
    }
}

/// Whether a connection to `endpoint` would arrive at one of `listeners`.
pub(super) fn is_own(endpoint: SocketAddr, listeners: &[SocketAddr]) -> bool {
    listeners
        .iter()
        .any(|&listener| reaches(endpoint, listener))
}

/// `endpoints` without the addresses of `listeners`, logging each one
/// left out for `service`.
pub(super) fn without_own(
    service: &str,
    endpoints: &[SocketAddr],
    listeners: &[SocketAddr],
) -> Vec<SocketAddr> {
    endpoints
        .iter()
        .copied()
        .filter(|&endpoint| {
            let own = is_own(endpoint, listeners);
            if own {
                tracing::error!(
                    service,
                    %endpoint,
                    "endpoint left out: it is the sidecar's own outbound listener, \
                     where requests would loop"
                );
            }
            !own
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_listeners_address_and_its_loopback_aliases_are_own() {
        let loopback = [addr("127.0.0.1:4140")];
        let any = [addr("0.0.0.0:4140")];
        for (endpoint, listeners, own) in [
            ("127.0.0.1:4140", &loopback, true),
            ("0.0.0.0:4140", &loopback, true),
            ("127.0.0.1:4141", &loopback, false),
            ("10.0.0.7:4140", &loopback, false),
            ("[::1]:4140", &loopback, false),
            ("127.0.0.1:4140", &any, true),
            ("10.0.0.7:4140", &any, false),
            ("127.0.0.1:0", &[addr("127.0.0.1:0")], false),
            ("[::ffff:127.0.0.1]:4140", &loopback, true),
            ("[::ffff:10.0.0.7]:4140", &any, false),
        ] {
            assert_eq!(is_own(addr(endpoint), listeners), own, "{endpoint}");
        }
    }

    #[test]
    fn an_ipv4_wildcard_listener_is_not_reached_at_ipv6_loopback() {
        // A socket bound to 0.0.0.0 takes IPv4 connections only: one to
        // [::1] on its port does not arrive there (it is refused, or goes
        // to whatever listens on [::1]), so that endpoint is no loop.
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let bound = listener.local_addr().unwrap();
        let v4 = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), bound.port());
        let v6 = SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), bound.port());
        assert!(std::net::TcpStream::connect(v4).is_ok());
        assert!(listener.accept().is_ok());
        assert!(std::net::TcpStream::connect(v6).is_err());
        assert!(is_own(v4, &[bound]));
        assert!(!is_own(v6, &[bound]));
        // `[::]` takes both families.
        let dual = SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED), 4140);
        assert!(is_own(addr("[::1]:4140"), &[dual]));
        assert!(is_own(addr("127.0.0.1:4140"), &[dual]));
    }

    #[test]
    fn an_unspecified_endpoint_is_the_loopback_of_its_family() {
        // Linux connects 0.0.0.0 to 127.0.0.1 and [::] to [::1].
        assert!(!is_own(addr("0.0.0.0:4140"), &[addr("[::1]:4140")]));
        assert!(!is_own(addr("[::]:4140"), &[addr("127.0.0.1:4140")]));
        assert!(is_own(addr("[::]:4140"), &[addr("[::1]:4140")]));
    }

    #[test]
    fn only_own_addresses_are_left_out() {
        let kept = without_own(
            "emoji",
            &[addr("127.0.0.1:4140"), addr("10.0.0.7:8080")],
            &[addr("127.0.0.1:4140")],
        );
        assert_eq!(kept, [addr("10.0.0.7:8080")]);
    }
}
