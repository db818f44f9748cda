//! The file as serde reads it, before defaults and checks across fields.
//!
//! Every value is validated while it is read, inside its visitor, so that
//! the YAML parser stamps a failure with the value's own line and column.
//! serde lets a visitor fail only with a message, so the message says what
//! the value is and why it was refused: `invalid timeout "1.5s" (expected
//! ... such as 10s, 1m30s or 500ms)`.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::duration::{InvalidDuration, parse_duration};
use super::identity::{IdentityName, IdentitySection, Mode, TlsKind};
use super::inbound::PortProtocol;
use super::outbound::ServiceName;
use super::policy::PolicySection;
use super::retry::{AccrualSection, BudgetSection, RetrySection, TimeoutsSection};
use super::server::{DashboardSection, ServerTuning};
use super::trace::TracingSection;
use mesh_core::proxy::resolve::EndpointAddr;
use mesh_metrics::access_log::AccessLogFormat;

/// The whole file. Every section may be left out, or left empty.
///
/// A new section is a field here (an `Option` of its own section type, with
/// `deny_unknown_fields` like the others), a field of `SidecarConfig`, and a
/// step in `Document::resolve` that applies its defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of sections: identity, inbound, outbound, admin, server, policy, tracing"
)]
pub(super) struct Document {
    pub(super) identity: Option<IdentitySection>,
    pub(super) inbound: Option<InboundSection>,
    pub(super) outbound: Option<OutboundSection>,
    pub(super) admin: Option<AdminSection>,
    pub(super) server: Option<ServerSection>,
    pub(super) policy: Option<PolicySection>,
    pub(super) tracing: Option<TracingSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with listen, app, protocol, tls, ports and access_log"
)]
pub(super) struct InboundSection {
    pub(super) listen: Option<Addr>,
    pub(super) app: Option<Addr>,
    pub(super) protocol: Option<PortProtocol>,
    pub(super) tls: Option<Mode>,
    pub(super) ports: Option<Vec<InboundPortEntry>>,
    pub(super) access_log: Option<AccessLogEntry>,
}

/// An access log format: `apache` or `json`.
#[derive(Debug, Clone, Copy)]
pub(super) struct AccessLogEntry(pub(super) AccessLogFormat);

impl<'de> Deserialize<'de> for AccessLogEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "access log format",
            expecting: "apache or json",
            parse: |text: &str| text.parse::<AccessLogFormat>().map(AccessLogEntry),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with listen, app and protocol"
)]
pub(super) struct InboundPortEntry {
    pub(super) listen: Addr,
    pub(super) app: Addr,
    pub(super) protocol: Option<PortProtocol>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with listen, services, ingress_mode, ports, http_queue_capacity, http_failfast_timeout, tcp_queue_capacity and tcp_failfast_timeout"
)]
pub(super) struct OutboundSection {
    pub(super) listen: Option<Addr>,
    pub(super) services: Option<Vec<ServiceEntry>>,
    pub(super) ingress_mode: Option<bool>,
    pub(super) ports: Option<Vec<OutboundPortEntry>>,
    pub(super) http_queue_capacity: Option<QueueCapacity>,
    pub(super) http_failfast_timeout: Option<Grace>,
    pub(super) tcp_queue_capacity: Option<QueueCapacity>,
    pub(super) tcp_failfast_timeout: Option<Grace>,
}

/// How many requests or connections may wait for an endpoint: a whole
/// number, at least 1. Linkerd's queue is a bounded channel, which has
/// room for one at least; a queue that should not wait has a zero
/// fail-fast timeout instead.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueCapacity(pub(super) usize);

impl<'de> Deserialize<'de> for QueueCapacity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(QueueCapacityVisitor)
    }
}

struct QueueCapacityVisitor;

impl QueueCapacityVisitor {
    fn invalid<E: de::Error>(value: impl fmt::Display) -> E {
        E::custom(format_args!(
            "invalid queue capacity {value} (expected a whole number, at least 1: \
             a queue that should not wait has a failfast timeout of 0s instead)"
        ))
    }
}

impl Visitor<'_> for QueueCapacityVisitor {
    type Value = QueueCapacity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a queue capacity: a whole number, at least 1, such as 10000")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<QueueCapacity, E> {
        match usize::try_from(value) {
            Ok(capacity) if capacity > 0 => Ok(QueueCapacity(capacity)),
            _ => Err(Self::invalid(value)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<QueueCapacity, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(Self::invalid(value)),
        }
    }
}

/// A TCP listener for one outbound service.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with listen, service and port"
)]
pub(super) struct OutboundPortEntry {
    pub(super) listen: Addr,
    pub(super) service: ServiceName,
    pub(super) port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with name, endpoints, resolve_interval, identity, tls, retry, timeouts, budget, failure_accrual and http2_upgrade"
)]
pub(super) struct ServiceEntry {
    pub(super) name: ServiceName,
    pub(super) endpoints: Endpoints,
    pub(super) resolve_interval: Option<Timeout>,
    pub(super) identity: Option<IdentityName>,
    pub(super) tls: Option<TlsKind>,
    pub(super) retry: Option<RetrySection>,
    pub(super) timeouts: Option<TimeoutsSection>,
    pub(super) budget: Option<BudgetSection>,
    pub(super) failure_accrual: Option<AccrualSection>,
    pub(super) http2_upgrade: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with listen and dashboard")]
pub(super) struct AdminSection {
    pub(super) listen: Option<Addr>,
    pub(super) dashboard: Option<DashboardSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of server settings")]
pub(super) struct ServerSection {
    pub(super) header_read_timeout: Option<Timeout>,
    pub(super) detect_timeout: Option<Timeout>,
    pub(super) max_connections: Option<Whole<1, { u64::MAX }>>,
    pub(super) shutdown_grace: Option<Grace>,
    pub(super) threads: Option<Whole<0, { ServerTuning::MAX_THREADS as u64 }>>,
    pub(super) http2_keep_alive_interval: Option<Grace>,
    pub(super) http2_keep_alive_timeout: Option<Timeout>,
    pub(super) write_stall_timeout: Option<Timeout>,
    pub(super) stream_idle_timeout: Option<Grace>,
    pub(super) max_request_head_bytes: Option<
        Whole<
            { ServerTuning::MIN_REQUEST_HEAD_BYTES as u64 },
            { ServerTuning::MAX_REQUEST_HEAD_BYTES as u64 },
        >,
    >,
}

/// A whole number from `MIN` to `MAX`: a count, a limit, a port.
///
/// Why not serde's own integers: they refuse `-1`, `1.5` or a number too
/// large for them with Rust's names for them (`expected usize`, `a
/// nonzero u32`), which say nothing of what the field takes. This says
/// the range, and a number outside it is an invalid value at its line,
/// whatever its sign or size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Whole<const MIN: u64, const MAX: u64>(pub(super) u64);

impl<const MIN: u64, const MAX: u64> Whole<MIN, MAX> {
    fn allowed(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if MAX == u64::MAX {
            write!(f, "a whole number, at least {MIN}")
        } else {
            write!(f, "a whole number from {MIN} to {MAX}")
        }
    }

    fn invalid<E: de::Error>(value: impl fmt::Display) -> E {
        struct Allowed<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> fmt::Display for Allowed<MIN, MAX> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                Whole::<MIN, MAX>::allowed(f)
            }
        }
        E::custom(format_args!(
            "invalid number {value} (expected {})",
            Allowed::<MIN, MAX>
        ))
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Whole<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any: a negative or oversized number reaches the visitor too,
        // where the u64 path would call it a type mismatch.
        deserializer.deserialize_any(WholeVisitor::<MIN, MAX>)
    }
}

struct WholeVisitor<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Visitor<'_> for WholeVisitor<MIN, MAX> {
    type Value = Whole<MIN, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Whole::<MIN, MAX>::allowed(f)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        if (MIN..=MAX).contains(&value) {
            Ok(Whole(value))
        } else {
            Err(Whole::<MIN, MAX>::invalid(value))
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(Whole::<MIN, MAX>::invalid(value)),
        }
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(Whole::<MIN, MAX>::invalid(value)),
        }
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(Whole::<MIN, MAX>::invalid(value)),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // `{:?}`, so that 1e3 reads 1000.0, not as the whole number 1000.
        Err(Whole::<MIN, MAX>::invalid(format_args!("{value:?}")))
    }
}

/// A number, whole or not, such as `0.2`: a ratio or a share. serde's
/// own `f64` says `expected f64` of a value that is not one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Number(pub(super) f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_f64(NumberVisitor)
    }
}

struct NumberVisitor;

impl Visitor<'_> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number such as 0.2")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
        Ok(Number(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
        Ok(Number(value as f64))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
        Ok(Number(value as f64))
    }
}

/// A whole number, at least 1, that fits `usize`: larger ones are the
/// largest `usize`, which no limit reaches anyway.
pub(super) fn non_zero_usize(value: Whole<1, { u64::MAX }>) -> NonZeroUsize {
    usize::try_from(value.0)
        .ok()
        .and_then(NonZeroUsize::new)
        .unwrap_or(NonZeroUsize::MAX)
}

/// What a value should have been, as its parse error.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expected(pub(super) &'static str);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for Expected {}

/// A string scalar parsed by `parse`; `what` names the value in messages.
pub(super) struct ParseStr<F> {
    pub(super) what: &'static str,
    pub(super) expecting: &'static str,
    pub(super) parse: F,
}

impl<'de, T, E, F> Visitor<'de> for ParseStr<F>
where
    F: FnOnce(&str) -> Result<T, E>,
    E: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<DE: de::Error>(self, text: &str) -> Result<T, DE> {
        (self.parse)(text)
            .map_err(|error| DE::custom(format_args!("invalid {} {text:?} ({error})", self.what)))
    }
}

/// A socket address, `ip:port` (`[ipv6]:port` for IPv6). Host names are not
/// resolved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Addr(pub(super) SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "socket address",
            expecting: "a socket address such as 127.0.0.1:8080",
            parse: |text: &str| {
                text.parse().map(Addr).map_err(|_| {
                    Expected("expected ip:port with a port up to 65535, such as 127.0.0.1:8080")
                })
            },
        })
    }
}

/// A duration that must be greater than zero.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeout(pub(super) Duration);

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "timeout",
            expecting: "a duration such as 10s",
            parse: |text: &str| {
                let duration = parse_duration(text)?;
                if duration.is_zero() {
                    return Err(InvalidDuration::zero());
                }
                Ok(Timeout(duration))
            },
        })
    }
}

/// A duration that may be zero.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grace(pub(super) Duration);

impl<'de> Deserialize<'de> for Grace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "duration",
            expecting: "a duration such as 30s",
            parse: |text: &str| parse_duration(text).map(Grace),
        })
    }
}

impl<'de> Deserialize<'de> for PortProtocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "protocol",
            expecting: "http, opaque or detect",
            parse: str::parse::<PortProtocol>,
        })
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "service name",
            expecting: "a lowercase dns name such as emoji",
            parse: str::parse::<ServiceName>,
        })
    }
}

/// A non-empty list of endpoints, each `ip:port` or `host:port`.
#[derive(Debug)]
pub(super) struct Endpoints(pub(super) Vec<EndpointAddr>);

/// One endpoint: a socket address, `ip:port` (`[ipv6]:port` for IPv6), or
/// a DNS name and a port, `host:port`, whose host follows the rules of
/// service names. Something that looks like an IP address is read as a
/// socket address, and refused as one.
#[derive(Debug)]
struct Endpoint(EndpointAddr);

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(EndpointVisitor)
    }
}

struct EndpointVisitor;

impl Visitor<'_> for EndpointVisitor {
    type Value = Endpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an endpoint such as 127.0.0.1:8080 or emoji.emojivoto.svc.cluster.local:8080")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Endpoint, E> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(E::custom(format_args!(
                    "invalid socket address {text:?} (port 0 cannot be connected to: expected a port from 1 to 65535)"
                )));
            }
            return Ok(Endpoint(EndpointAddr::Socket(addr)));
        }
        let host_port = text.rsplit_once(':');
        let looks_like_ip = text.starts_with('[')
            || text.parse::<IpAddr>().is_ok()
            || host_port.is_some_and(|(host, _)| host.parse::<IpAddr>().is_ok());
        if looks_like_ip {
            return Err(E::custom(format_args!(
                "invalid socket address {text:?} (expected ip:port with a port up to 65535, such as 127.0.0.1:8080)"
            )));
        }
        let fail = |reason: &dyn fmt::Display| {
            E::custom(format_args!("invalid endpoint {text:?} ({reason})"))
        };
        let Some((host, port)) = host_port else {
            return Err(fail(
                &"expected ip:port or host:port, such as emoji.emojivoto.svc.cluster.local:8080; the port is required",
            ));
        };
        let digits = port.bytes().all(|b| b.is_ascii_digit());
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 && digits => port,
            _ => return Err(fail(&"expected a port from 1 to 65535 after the host")),
        };
        if let Err(error) = host.parse::<ServiceName>() {
            return Err(fail(&format_args!(
                "the host is a lowercase dns name, as service names are: {error}"
            )));
        }
        Ok(Endpoint(EndpointAddr::Name {
            host: host.to_owned(),
            port,
        }))
    }
}

impl<'de> Deserialize<'de> for Endpoints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EndpointsVisitor)
    }
}

struct EndpointsVisitor;

impl EndpointsVisitor {
    fn empty<E: de::Error>() -> E {
        E::custom("at least one endpoint is required")
    }
}

impl<'de> Visitor<'de> for EndpointsVisitor {
    type Value = Endpoints;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of endpoints, ip:port or host:port")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Endpoints, A::Error> {
        let mut endpoints = Vec::new();
        while let Some(Endpoint(endpoint)) = seq.next_element()? {
            endpoints.push(endpoint);
        }
        if endpoints.is_empty() {
            return Err(Self::empty());
        }
        Ok(Endpoints(endpoints))
    }

    /// `endpoints:` with nothing after it.
    fn visit_unit<E: de::Error>(self) -> Result<Endpoints, E> {
        Err(Self::empty())
    }

    fn visit_none<E: de::Error>(self) -> Result<Endpoints, E> {
        Err(Self::empty())
    }
}
