//! Forwarding requests to an upstream.
//!
//! [`Forward`] is the last service of a proxy stack. It points each request
//! at an upstream endpoint, removes the headers that belong to the
//! downstream hop (RFC 9110 §7.6.1), and hands the request to a client.
//! Bodies stream both ways frame by frame, trailers included; nothing is
//! buffered whole. An HTTP/1.1 `Upgrade` (a WebSocket, say) becomes a byte
//! tunnel once the upstream answers `101 Switching Protocols`; a request
//! with no downstream connection to tunnel over goes as a plain one.
//!
//! Nothing is added on the way: no `Via`, `Forwarded` or
//! `X-Forwarded-For`. A sidecar is a hop the application should not have
//! to know about (Linkerd's proxy adds none either), and the peer's
//! address and identity reach in-process layers as a
//! [`ConnectionInfo`](crate::ConnectionInfo) extension, which a client
//! cannot forge as it can a header. `Host` is kept as the client sent it
//! (an absolute-form target's authority replaces it), even when a
//! `Connection` header names it, and `Proxy-Authorization` is the hop's
//! and never sent on. An HTTP/1 request with more than one `Host` is
//! answered `400` with `mesh-error: multiple host headers`
//! ([`MULTIPLE_HOSTS`]), as RFC 9112 §3.2 asks, and not sent: the mesh
//! chose its route by the first, and the application might read another.
//! One whose body is framed with a transfer coding other than `chunked`
//! (`gzip, chunked`) is answered `501` with `mesh-error: transfer coding
//! not supported` ([`UNSUPPORTED_CODING`]), as RFC 9112 §6.1 has a
//! server do: only the chunks are undone here, and sent on without its
//! `Transfer-Encoding`, the coded bytes would pass for the body itself.
//! An upstream response so framed becomes a `502` with `mesh-error:
//! upstream transfer coding not supported` ([`UPSTREAM_CODING`]), and
//! counts against its endpoint as any `502` from it would.
//!
//! When the upstream cannot be reached, the caller gets a `502` with
//! `mesh-error: upstream connect error` (gRPC callers: `grpc-status: 14`)
//! instead of a dropped connection; when it was reached and closed the
//! connection before a response, the same `502` says `mesh-error:
//! upstream connection closed`
//! ([`UPSTREAM_CLOSED`](crate::error::UPSTREAM_CLOSED)); when an HTTP/2
//! upstream reset the request's stream, `upstream reset the stream`
//! ([`UPSTREAM_RESET`](crate::error::UPSTREAM_RESET)); any other failure
//! after the connection was made, `upstream request failed`
//! ([`UPSTREAM_FAILED`](crate::error::UPSTREAM_FAILED)). The first failed
//! connect of an endpoint since it last answered is logged at `warn`, with
//! the endpoint and the cause; the rest of that streak at `debug`. A request that fails on the caller's
//! side before it is sent whole (its body is malformed, say) gets a `400`
//! with `mesh-error: invalid request` ([`INVALID_REQUEST`]; gRPC callers:
//! `grpc-status: 13`, as for every answer of the mesh's), and does
//! not count as a failure of the endpoint: else a client could have
//! [failure accrual](accrual) take healthy endpoints out.
//!
//! A `CONNECT` is answered `501 Not Implemented` with `mesh-error:
//! connect not supported` ([`CONNECT_REFUSED`]), and nothing is sent
//! upstream. Forwarded, it would be a plain request to the endpoint
//! whose tunnel is never set up. RFC 9110 §15.6.2 gives 501 for a
//! method a server supports for no target; 405 would say this target
//! refuses a method others take. A proxy that does tunnel `CONNECT`
//! answers it before `Forward`: [`ConnectTunnel`], with a [`ForwardTcp`]
//! behind ([`connect`]).
//!
//! With several endpoints, each request goes to the cheaper of two drawn
//! at random, by latency and requests in flight ([`balance`]); with
//! [failure accrual](accrual), endpoints that keep failing are taken out
//! for a while.
//!
//! A request that finds no endpoint ready does not fail at once: a
//! sidecar that has just started has not resolved its services yet, and
//! in a rolling restart failure accrual may have a small service's every
//! endpoint out for a moment. It waits for one, as behind Linkerd's
//! balancer queue: at most 10 000 requests, for 3 s (Linkerd's defaults
//! for HTTP, [`Queue`]). When no endpoint has been ready for that long,
//! the service is in fail-fast: the waiting requests are answered `503`
//! with `mesh-error: service in fail-fast` ([`IN_FAILFAST`]; gRPC
//! `UNAVAILABLE`), and every new one that finds no endpoint is shed at
//! once, `503` with `mesh-error: service unavailable`, until an endpoint
//! is ready again ([`queue`]), as Linkerd fails fast the requests its
//! queue holds and sheds those that come to its shut gate. A request that finds an endpoint
//! pays nothing for this. Forwarded TCP connections ([`ForwardTcp`]) and
//! `CONNECT` tunnels wait the same way, in a queue of their own (Linkerd
//! also queues TCP); past it a connection is closed, and a `CONNECT` is
//! answered as an HTTP request is.
//!
//! The endpoints can change while requests flow: a `Forward` built over an
//! [`EndpointSet`] balances each request over the set's latest endpoints,
//! and whoever learns of new ones (the DNS [`resolve`] loop, for one)
//! updates the set. Endpoints that stay keep their load and failure
//! state ([`endpoints`]).
//!
//! Between two mesh proxies, HTTP/1.1 requests can travel as HTTP/2
//! streams on one connection ([`orig_proto`]).
//!
//! A response body the upstream cuts short ends the caller's HTTP/1
//! connection, or resets its HTTP/2 stream, so the caller never takes it
//! for whole; an HTTP/1.0 caller, whose body ends at the close, cannot
//! tell. Informational responses other than `101` are not forwarded
//! (hyper's client reads past them), and a caller's `Expect:
//! 100-continue` is answered by this proxy's server when the body is
//! first read.
//!
//! [`AuthorityRouter`] sits in front of several `Forward`s and picks one by
//! the request's `Host` or `:authority`.
//!
//! Not everything is HTTP. [`ForwardTcp`] is `Forward`'s counterpart for
//! opaque connections (a [`serve::Server`](crate::serve::Server) port
//! with [`Protocol::Opaque`](crate::serve::Protocol::Opaque), say): each
//! connection goes to one endpoint, balanced the same way and over the
//! same kind of connector, so a database client's bytes can travel over
//! mutual TLS too ([`tcp`]). Its failed connects are logged as a
//! request's are: the first of an endpoint since it last took a
//! connection at `warn`, naming the client, the endpoint and the cause,
//! the rest of that streak at `debug`; a `CONNECT` tunnel's too.

pub mod accrual;
pub mod balance;
pub mod connect;
pub mod endpoints;
mod forward;
mod headers;
pub mod orig_proto;
pub mod queue;
pub mod resolve;
mod router;
pub mod tcp;
mod upgrade;

pub use self::{
    accrual::{FailureAccrual, InvalidFailureAccrual},
    balance::{BalancerView, EndpointGauges, EndpointState},
    connect::ConnectTunnel,
    endpoints::EndpointSet,
    forward::{
        CONNECT_REFUSED, Forward, INVALID_REQUEST, MULTIPLE_HOSTS, NoEndpoints, ResponseBody,
        ResponseFuture, TimedOut, UNSUPPORTED_CODING, UPSTREAM_CODING,
    },
    queue::{IN_FAILFAST, InFailFast, Queue},
    router::{AuthorityRouter, DuplicateHost, authority_host, by_host},
    tcp::{ConnectFailed, ForwardTcp},
};
