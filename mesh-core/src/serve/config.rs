//! What a [`Server`](super::Server) serves and how: the port's protocol and
//! the limits and timeouts of its connections.

use std::time::Duration;

use super::ConnectionLimit;

/// What a listener's port carries.
///
/// Whatever it carries, a connection the accept hook passed through
/// ([`Tls::Passthrough`](crate::conn::Tls::Passthrough): the
/// application's own TLS) is handed to the opaque handler undetected: its
/// bytes are the application's to read, and are never HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP only: HTTP/1 or HTTP/2, told apart by the first bytes. A
    /// connection that speaks neither is closed.
    Http,
    /// Opaque bytes, never inspected: for databases and protocols where the
    /// server speaks first.
    Opaque,
    /// HTTP when the first bytes look like HTTP, opaque otherwise. A peer
    /// that has not said which within the detection timeout (it sent
    /// nothing, as the client of a server-speaks-first protocol does, or
    /// a request line it has not finished) is served as opaque too, with
    /// the bytes read so far replayed, as Linkerd's proxy continues after
    /// a detection timeout: see [`detect`](crate::detect). Such a client
    /// gets none of what the HTTP stack does to requests, whatever it
    /// sends after the timeout; the opaque handler's authorization of the
    /// connection is what applies to it.
    #[default]
    Detect,
}

/// How often an HTTP/2 connection is pinged by default: see
/// [`ServerConfig::http2_keep_alive_interval`].
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may go unanswered by default: see
/// [`ServerConfig::http2_keep_alive_timeout`].
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an HTTP connection's writes may wait for the peer to read by
/// default: see [`ServerConfig::write_stall_timeout`].
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest request head taken by default: see
/// [`ServerConfig::max_request_head_bytes`]. Envoy's default,
/// `max_request_headers_kb`, is 60 KiB; cookies and bearer tokens fit
/// well within either.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// How a [`Server`](super::Server) treats its connections.
///
/// A timeout longer than about 30 years (`Duration::MAX`, say) never
/// fires.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// What the port carries. Default [`Protocol::Detect`].
    pub protocol: Protocol,
    /// How long an HTTP/1 client may take to send a request's headers.
    /// Default 60 seconds.
    ///
    /// The clock starts when the server waits for a request, including the
    /// next request on a keep-alive connection, so this is also how long an
    /// idle HTTP/1 connection stays open. Keep it above the pool idle timeout
    /// of the clients in front (30 seconds for [`crate::client::Client`]):
    /// a server that closes an idle connection just as a client reuses it
    /// fails that client's request.
    pub header_read_timeout: Duration,
    /// The largest request head taken, in bytes, on either protocol.
    /// Default [`MAX_REQUEST_HEAD_BYTES`], 64 KiB; at least 8 KiB is
    /// taken whatever is set.
    ///
    /// On HTTP/1 the head is the request line and the header lines with
    /// their line ends (and the trailers of a chunked body, which hyper
    /// bounds the same); a larger one is answered
    /// `431 Request Header Fields Too Large` and the connection closed.
    /// On HTTP/2 it is the header list as RFC 9113 §6.5.2 counts it
    /// (each field's name and value plus 32), announced to the client in
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`; a larger one is answered 431 on
    /// its stream, or refused by a client that reads the setting first.
    ///
    /// One bound for both, because a head one hop takes must not be
    /// refused by the next for the protocol between them: a sidecar that
    /// carries HTTP/1 to its peer as HTTP/2 would otherwise refuse what
    /// a direct connection took. Without it HTTP/1 was bounded only by
    /// hyper's ~400 KiB connection buffer and HTTP/2 by hyper's 16 KiB;
    /// a bound above that buffer raises the HTTP/1 buffer with it.
    pub max_request_head_bytes: usize,
    /// How long protocol detection waits for the bytes that decide the
    /// protocol (the HTTP/2 preface, or a whole HTTP/1 request line), and
    /// how long a peer that chose HTTP/2 through ALPN has to send its
    /// preface. Default 10 seconds, Linkerd's. When it passes, a
    /// [`Protocol::Detect`] port serves the connection as opaque; a
    /// [`Protocol::Http`] port, or a peer that chose HTTP/2, is closed.
    pub detect_timeout: Duration,
    /// How many connections are served at once on one listener; further
    /// ones wait in the kernel's accept queue. Default 10,000. Ignored when
    /// [`shared_limit`](Self::shared_limit) is set.
    ///
    /// Each [`serve`](super::Server::serve) call counts its own listener's
    /// connections, as Envoy's per-listener limit does: a server cloned
    /// to serve several listeners (one per runtime thread, say) serves up
    /// to this many on each. To bound them together, share a
    /// [`ConnectionLimit`].
    pub max_connections: usize,
    /// A limit this server shares with others: their connections together
    /// stay within it. Default `None`: each listener the server serves has
    /// its own [`max_connections`](Self::max_connections).
    pub shared_limit: Option<ConnectionLimit>,
    /// How long in-flight requests may run after shutdown starts. Default 30
    /// seconds.
    pub shutdown_grace: Duration,
    /// How long an HTTP/2 connection may be quiet before it is pinged.
    /// Default [`HTTP2_KEEP_ALIVE_INTERVAL`], 10 seconds; `None` never
    /// pings, and neither does `Some` of zero (read literally, it would
    /// ping again as soon as each ping is answered).
    ///
    /// HTTP/1 connections have [`header_read_timeout`](Self::header_read_timeout);
    /// HTTP/2 has no such bound, so without pings a peer that sent the
    /// preface and went silent, or died without a FIN, would hold its
    /// connection and its place under
    /// [`max_connections`](Self::max_connections) forever. Every HTTP/2
    /// stack answers pings on its own, so live clients, idle or not, are
    /// unaffected.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    /// Default [`HTTP2_KEEP_ALIVE_TIMEOUT`], 20 seconds.
    pub http2_keep_alive_timeout: Duration,
    /// How long an HTTP connection's writes may wait for the peer to read
    /// a byte before the connection is closed. Default
    /// [`WRITE_STALL_TIMEOUT`], 60 seconds.
    ///
    /// A client that asks for a large response and never reads it would
    /// otherwise hold its connection, and its place under the limit, for
    /// ever: hyper times only the wait for a request's headers. A client
    /// that reads slowly is not affected, since every byte it takes starts
    /// the clock again. The bound stays with a connection upgraded to a
    /// tunnel: a tunnel whose client reads nothing for this long is closed.
    pub write_stall_timeout: Duration,
    /// How long an HTTP stream may go without activity (a request or
    /// response body frame, or the response head) before it is ended.
    /// Default `None`: streams may be quiet for ever. `Some` of zero is
    /// the same as `None`, as Envoy reads a zero. A service that takes
    /// longer than this to answer, with nothing else moving on the
    /// stream, is quiet too.
    ///
    /// Nothing else bounds a stream that goes quiet: a client that
    /// trickles its request body, or a response that never finishes,
    /// would hold its stream (and on HTTP/1 its connection and its place
    /// under [`max_connections`](Self::max_connections)) for ever.
    /// Envoy's `stream_idle_timeout` bounds the same, at 5 minutes by
    /// default; it is off here by default because quiet long-lived
    /// streams (gRPC watches and subscriptions) are legitimate, and
    /// Linkerd does not cut them.
    ///
    /// A stream that goes quiet before its response head is answered
    /// `408 Request Timeout` with `mesh-error: stream idle timeout` (a
    /// gRPC one trailers-only with `grpc-status: 4`), and the service's
    /// future is dropped; after the head, its response body fails, which
    /// resets an HTTP/2 stream and closes an HTTP/1 connection, so the
    /// client sees a truncated body. An HTTP/2 response waiting for send
    /// window its client does not grant is quiet too: the stream is reset
    /// and the response dropped, as Envoy counts a stream blocked by flow
    /// control idle. That holds until hyper hands the response's last
    /// `DATA` frame to h2, which it does once the client grants a byte of
    /// window (and trailers need none): from then on h2 holds what the
    /// window does not let through, and the stream, until the client
    /// opens its window or the connection ends. So a body of one frame
    /// (a `Full` body, a gRPC unary answer) is not reset once the client
    /// grants a byte; such streams count against
    /// [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams).
    /// On HTTP/2, each stream is timed by its own request
    /// data (its `DATA` frames and trailers), as Envoy's per-stream
    /// `stream_idle_timeout` is, so a silent stream is cut however busy
    /// the other streams of its connection are. `CONNECT`
    /// tunnels, and connections a `101` upgraded, are not timed; a
    /// request that asks for an upgrade is, until its `101`. A timed
    /// stream has one timer, moved only when it fires; when off, streams
    /// have none.
    pub stream_idle_timeout: Option<Duration>,
    /// How many streams one HTTP/2 connection may have open at once,
    /// announced to the client in `SETTINGS_MAX_CONCURRENT_STREAMS`.
    /// Default [`HTTP2_MAX_CONCURRENT_STREAMS`], 200, hyper's (which
    /// hyper's docs say may change, so it is set here); at least 1.
    ///
    /// Each open stream may hold a response queued for a client that
    /// grants no flow-control window, so a port that answers large
    /// responses to few clients (an admin port's `/metrics`) takes few.
    pub http2_max_concurrent_streams: u32,
    /// The run of streams over which an HTTP/2 connection's premature
    /// resets are counted: once its client has reset half this many
    /// streams prematurely (see
    /// [`http2_premature_reset_min_stream_lifetime`](Self::http2_premature_reset_min_stream_lifetime))
    /// within one run of this many the service was called for, the
    /// connection is told to go away. A stream h2 refused (a malformed
    /// head, one past
    /// [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams))
    /// is not in a run: a flood could send such heads, which cost it
    /// nothing, to keep its resets under half of every run. Default [`HTTP2_PREMATURE_RESET_TOTAL_STREAMS`], 500,
    /// Envoy's `overload.premature_reset_total_stream_count`; `None`, or
    /// `Some` of zero, turns the bound off.
    ///
    /// A client that opens a stream, waits for the server to start on it,
    /// and resets it (`RST_STREAM`) costs the service a call for every
    /// stream, while its open streams stay few: the paced form of rapid
    /// reset (CVE-2023-44487), which neither h2's bound on streams reset
    /// before the server took them nor
    /// [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams)
    /// stops. Envoy closes a connection once half of the streams it has
    /// seen were reset within a minimum lifetime of opening, judged from
    /// its 500th stream on, or as soon as such resets alone reach half of
    /// 500, counting over the connection's whole life. Here the count
    /// starts again with each run of this many streams, so a connection's
    /// long good history buys its client no flood later, and its memory
    /// stays the same however long it lives. A client that cancels fewer
    /// than half of its calls within the lifetime is never cut; one that
    /// cancels half or more (a client that hedges every call, say) is.
    ///
    /// Past the bound, the server sends `GOAWAY` and lets the streams
    /// still open finish, as in a graceful shutdown. The streams the
    /// client opens from then on are served too, up to
    /// [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams)
    /// of them: a client that pipelines its calls (gRPC with short
    /// deadlines during an upstream's incident, a hedging client) has
    /// streams on the way that it sent before it could read the `GOAWAY`,
    /// as many as it may have open at once when it keeps to the announced
    /// limit, and its open calls finish. The grace counts streams opened,
    /// not open: a client whose calls keep ending and being replaced
    /// while the `GOAWAY` is on its way can open more than that before it
    /// reads it, and is cut as a flood is. A client that opens one more
    /// is closed at once, before that stream is served, with the streams
    /// it still had open: until it answers the `GOAWAY`'s ping, h2 does
    /// not refuse new streams itself, so without this cut a client past
    /// the bound could go on for as long as it leaves the ping
    /// unanswered. Streams it opens after answering, which h2 ignores,
    /// count too: it had read the `GOAWAY` (RFC 9113 §6.8). A flood thus
    /// gets at most that many calls more. Nothing bounds how long the
    /// streams still open take to finish but
    /// [`stream_idle_timeout`](Self::stream_idle_timeout): a client that
    /// keeps them open, answering pings, holds the connection, as any
    /// client may hold that many streams open without a flood.
    /// The connection ends with an error naming rapid reset, told through
    /// [`Server::on_connection_error`](super::Server::on_connection_error)
    /// as an HTTP/2 connection error whose cause is an I/O error, as the
    /// burst bound's is, however it ends: its client leaving, or going
    /// silent until a keep-alive ping goes unanswered (that timeout is
    /// then the rapid reset's cause).
    pub http2_premature_reset_total_streams: Option<u32>,
    /// How soon after opening a stream a client's reset of it is
    /// premature. Default [`HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME`],
    /// 1 second, Envoy's `overload.premature_reset_min_stream_lifetime_seconds`;
    /// zero counts no reset, which turns the bound off too.
    ///
    /// A flood resets its streams within a round trip; a client cancels a
    /// real call when it gave up waiting, which is most often seconds.
    /// Only the time since the stream opened is judged, not whether its
    /// response had ended: the reads that count see the client's frames,
    /// not the server's. The time is kept per connection, not per stream,
    /// by the highest stream opened at four points of each lifetime, so a
    /// reset within three quarters of the lifetime always counts, one
    /// after the whole lifetime never does, and one between may.
    pub http2_premature_reset_min_stream_lifetime: Duration,
}

/// [`ServerConfig::http2_max_concurrent_streams`] by default: hyper's
/// own default, which Linkerd's proxy keeps too.
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// [`ServerConfig::http2_premature_reset_total_streams`] by default:
/// Envoy's `overload.premature_reset_total_stream_count`.
pub const HTTP2_PREMATURE_RESET_TOTAL_STREAMS: u32 = 500;

/// [`ServerConfig::http2_premature_reset_min_stream_lifetime`] by default:
/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds`.
pub const HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME: Duration = Duration::from_secs(1);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::default(),
            header_read_timeout: Duration::from_secs(60),
            max_request_head_bytes: MAX_REQUEST_HEAD_BYTES,
            detect_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shared_limit: None,
            shutdown_grace: Duration::from_secs(30),
            http2_keep_alive_interval: Some(HTTP2_KEEP_ALIVE_INTERVAL),
            http2_keep_alive_timeout: HTTP2_KEEP_ALIVE_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            stream_idle_timeout: None,
            http2_max_concurrent_streams: HTTP2_MAX_CONCURRENT_STREAMS,
            http2_premature_reset_total_streams: Some(HTTP2_PREMATURE_RESET_TOTAL_STREAMS),
            http2_premature_reset_min_stream_lifetime: HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME,
        }
    }
}
