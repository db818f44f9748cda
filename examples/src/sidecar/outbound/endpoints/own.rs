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
//! An address is the listener's when it has the listener's port and the
//! listener's address, or when either is loopback or unspecified (as a
//! destination, `0.0.0.0` is this host) where the other is unspecified.
//! The listeners are compared at the addresses they were bound to (`run`
//! binds them before the outbound side is built), so one configured on
//! port 0 is compared at the port it got. An address on port 0 given
//! here all the same matches nothing. The host's own non-loopback
//! address is left alone: it would take the list of its interfaces to
//! know.

use std::net::{IpAddr, SocketAddr};

use super::ServiceEndpoints;

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

/// Whether `endpoint` is one of `listeners`.
pub(super) fn is_own(endpoint: SocketAddr, listeners: &[SocketAddr]) -> bool {
    listeners.iter().any(|listener| {
        listener.port() != 0
            && endpoint.port() == listener.port()
            && same_host(endpoint.ip(), listener.ip())
    })
}

fn same_host(endpoint: IpAddr, listener: IpAddr) -> bool {
    // `[::ffff:127.0.0.1]` is 127.0.0.1 to a dual-stack socket.
    let (endpoint, listener) = (endpoint.to_canonical(), listener.to_canonical());
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    endpoint == listener
        || (listener.is_unspecified() && local(endpoint))
        || (endpoint.is_unspecified() && local(listener))
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
    fn only_own_addresses_are_left_out() {
        let kept = without_own(
            "emoji",
            &[addr("127.0.0.1:4140"), addr("10.0.0.7:8080")],
            &[addr("127.0.0.1:4140")],
        );
        assert_eq!(kept, [addr("10.0.0.7:8080")]);
    }
}
