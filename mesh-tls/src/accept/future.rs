use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use mesh_core::{
    BoxError, Tls,
    conn::{NoTlsReason, Sni},
    io::{Io, PrefixedIo},
    serve::{Accepted, HttpVersion, Retirement},
};
use rustls::ServerConfig;
use tokio::{
    io::ReadBuf,
    time::{Sleep, sleep},
};

use super::{
    AcceptConfig, AcceptError, InboundMode, ServerIo, TlsAccept,
    client_hello::{self, ServerName},
    names::LocalNames,
    retirement::HandshakeWith,
};
use crate::{
    ALPN_H2, ALPN_HTTP1, CredentialStore,
    cert::{CertNames, NoIdentity},
    connect::Chain,
    metrics::Direction,
};

/// How much detection reads at first. Three bytes tell TLS from anything
/// else (a TLS record header's content type and protocol version), but
/// whatever else has arrived is read too: a whole ClientHello (about 1.5
/// KiB with an X25519MLKEM768 key share) or HTTP request head then
/// reaches the next reader from memory, without another read from the
/// socket. A TLS client's first record is read whole, for its server
/// name: a longer one grows the buffer, up to the longest record TLS
/// allows ([`client_hello::MAX_RECORD`]).
const FIRST_READ: usize = 2048;

/// The future of [`TlsAccept`](super::TlsAccept) on one connection:
/// detection, then the handshake.
pub struct AcceptFuture<I> {
    state: State<I>,
    deadline: Option<Pin<Box<Sleep>>>,
    store: CredentialStore,
    config: AcceptConfig,
    /// The credentials the handshake runs with, once it has started.
    handshake_with: Option<HandshakeWith>,
    /// Why the handshake is being refused, when there were no local
    /// credentials to present as the ClientHello arrived.
    refusing: Option<AcceptError>,
    /// Whether a peer that sent nothing by the timeout is served as
    /// plaintext rather than closed: on an opaque port in permissive mode.
    silent_is_plaintext: bool,
    /// The server names the certificate in service answers to.
    names: Arc<LocalNames>,
}

// The handshake variant dominates the size, and it is the state the future
// spends its time in; boxing it would cost an allocation per connection.
#[allow(clippy::large_enum_variant)]
enum State<I> {
    Ready(Option<Accepted<ServerIo<I>>>),
    Detect {
        io: Option<I>,
        buf: Vec<u8>,
        len: usize,
    },
    Handshake {
        accept: tokio_rustls::Accept<PrefixedIo<I>>,
    },
    Done,
}

/// What the first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Hello {
    Tls,
    Plaintext,
    NeedMore,
}

/// A TLS connection opens with a handshake record: content type 22
/// (`0x16`), then the record's protocol version, `0x03 0x00` (SSL 3.0) to
/// `0x03 0x04` (RFC 8446 §5.1). HTTP and every text protocol open with a
/// printable byte, so the first byte usually decides.
fn classify(bytes: &[u8]) -> Hello {
    match bytes {
        [] | [0x16] | [0x16, 0x03] => Hello::NeedMore,
        [0x16, 0x03, minor, ..] if *minor <= 0x04 => Hello::Tls,
        _ => Hello::Plaintext,
    }
}

impl<I: Io> AcceptFuture<I> {
    pub(super) fn new(io: I, accept: &TlsAccept) -> Self {
        let TlsAccept {
            store,
            config,
            opaque_port,
            names,
        } = accept;
        let (state, deadline) = match config.mode {
            InboundMode::Disabled => (
                State::Ready(Some(Accepted {
                    io: ServerIo::Plain(PrefixedIo::new(Bytes::new(), io)),
                    tls: Tls::Plaintext(NoTlsReason::Disabled),
                    alpn: None,
                    retire: Retirement::never(),
                })),
                None,
            ),
            InboundMode::Permissive | InboundMode::Strict => (
                State::Detect {
                    io: Some(io),
                    buf: vec![0; FIRST_READ],
                    len: 0,
                },
                Some(Box::pin(sleep(config.handshake_timeout))),
            ),
        };
        Self {
            state,
            deadline,
            store: store.clone(),
            config: config.clone(),
            handshake_with: None,
            refusing: None,
            silent_is_plaintext: *opaque_port && config.mode == InboundMode::Permissive,
            names: names.clone(),
        }
    }

    fn fail(&mut self, error: AcceptError) -> Poll<Result<Accepted<ServerIo<I>>, BoxError>> {
        self.state = State::Done;
        if let Some(reason) = error.failure() {
            self.store
                .metrics()
                .handshake_failed(Direction::Inbound, reason);
            // With its causes: the variant alone says a handshake failed,
            // not what failed it. The acceptor is handed the stream alone;
            // mesh-core's server logs this in the connection's span, which
            // names the peer and the port.
            tracing::debug!(
                reason = reason.as_label(),
                error = %Chain(&error),
                "inbound tls refused"
            );
        }
        Poll::Ready(Err(error.into()))
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready())
    }

    /// The first bytes are not TLS.
    fn plaintext(&mut self, io: I, prefix: Bytes) -> Poll<Result<Accepted<ServerIo<I>>, BoxError>> {
        if self.config.mode == InboundMode::Strict {
            return self.fail(AcceptError::PlaintextRefused);
        }
        self.state = State::Done;
        Poll::Ready(Ok(Accepted {
            io: ServerIo::Plain(PrefixedIo::new(prefix, io)),
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
            retire: Retirement::never(),
        }))
    }

    /// Nothing arrived by the timeout, on an opaque port in permissive
    /// mode: the client of a server-speaks-first protocol, waiting for the
    /// application's greeting.
    fn silent(&mut self, io: I) -> Poll<Result<Accepted<ServerIo<I>>, BoxError>> {
        tracing::debug!(
            timeout = ?self.config.handshake_timeout,
            "no tls client hello on an opaque port; serving the connection as plaintext"
        );
        self.plaintext(io, Bytes::new())
    }

    /// Whether a ClientHello that asks for `sni` is for another server
    /// than this workload: one the certificate in service carries no DNS
    /// name of, when the workload's identity is DNS-style (see [server
    /// names](super#server-names) for why a SPIFFE ID's is not). Without
    /// credentials no name is known, and the connection is terminated, to
    /// be refused as any TLS client is then: were it passed through, a
    /// mesh client that came before the workload's certificate would
    /// reach the application as TLS it cannot read.
    fn names_another_server(&self, sni: &Sni) -> bool {
        self.store.snapshot().is_some_and(|snapshot| {
            !snapshot.creds.identity().is_spiffe() && !self.names.carries(&snapshot.creds, sni)
        })
    }

    /// The ClientHello asks for another server: the application's own
    /// TLS, passed on untouched, bytes read included, as a plaintext
    /// stream, unless the port is strict.
    fn passthrough(
        &mut self,
        io: I,
        prefix: Bytes,
        sni: Sni,
    ) -> Poll<Result<Accepted<ServerIo<I>>, BoxError>> {
        if self.config.mode == InboundMode::Strict {
            return self.fail(AcceptError::PassthroughRefused(sni));
        }
        self.store.metrics().passed_through();
        tracing::debug!(%sni, "tls client hello names another server; passing it through");
        self.state = State::Done;
        Poll::Ready(Ok(Accepted {
            io: ServerIo::Plain(PrefixedIo::new(prefix, io)),
            tls: Tls::Passthrough { sni },
            alpn: None,
            retire: Retirement::never(),
        }))
    }

    /// The first bytes are a ClientHello: start the handshake with the
    /// credentials in service now.
    ///
    /// Credentials outside their validity by the store's clock are not
    /// presented, as the connector does not present them: the handshake
    /// runs on a config that answers the ClientHello with a fatal alert,
    /// as it does before any credentials load, and the acceptor reports
    /// why.
    fn handshake(&mut self, io: I, prefix: Bytes) -> Option<AcceptError> {
        // The version first: a rotation between the two reads then looks
        // at the connection needlessly, never leaves it on stale
        // credentials.
        let version = self.store.subscribe();
        let loaded = version.borrow().loaded;
        let refusal = match self.store.snapshot() {
            None => AcceptError::NoCredentials,
            Some(snapshot) => match snapshot.creds.usable_at(self.store.now()) {
                Ok(until) => {
                    self.handshake_with =
                        Some(HandshakeWith::new(&snapshot, until, version, loaded));
                    let config = match self.config.mode {
                        InboundMode::Strict => &snapshot.server_strict,
                        _ => &snapshot.server_permissive,
                    };
                    self.start(config, io, prefix);
                    return None;
                }
                Err(unusable) => {
                    snapshot.log_unusable(&unusable, "inbound");
                    AcceptError::CredentialsUnusable(unusable)
                }
            },
        };
        // Nothing to present: rustls reads the ClientHello and answers
        // with its alert, and the refusal is reported once it has.
        let Some(refusing) = self.store.refusing_server_config().cloned() else {
            return Some(refusal);
        };
        self.refusing = Some(refusal);
        self.start(&refusing, io, prefix);
        None
    }

    fn start(&mut self, config: &Arc<ServerConfig>, io: I, prefix: Bytes) {
        let io = PrefixedIo::new(prefix, io);
        self.state = State::Handshake {
            accept: tokio_rustls::TlsAcceptor::from(config.clone()).accept(io),
        };
    }

    fn finish(
        &mut self,
        stream: tokio_rustls::server::TlsStream<PrefixedIo<I>>,
    ) -> Poll<Result<Accepted<ServerIo<I>>, BoxError>> {
        let conn = stream.get_ref().1;
        let tls = match conn.peer_certificates().and_then(|certs| certs.first()) {
            None if self.config.mode == InboundMode::Strict => {
                return self.fail(AcceptError::NoClientCertificate);
            }
            None => Tls::NoClientCert,
            Some(leaf) => {
                let names = CertNames::parse(leaf);
                // The handshake verified the chain through an anchor of
                // the trust domain of the identity it names.
                match names
                    .as_ref()
                    .map_err(|_| NoIdentity::Missing)
                    .and_then(|n| n.identity())
                {
                    Ok(peer) => Tls::Mutual { peer: peer.clone() },
                    Err(e) => return self.fail(AcceptError::NoPeerIdentity(e)),
                }
            }
        };
        let alpn = match conn.alpn_protocol() {
            Some(ALPN_H2) => Some(HttpVersion::Http2),
            Some(ALPN_HTTP1) => Some(HttpVersion::Http1),
            _ => None,
        };
        let peer = conn.peer_certificates().filter(|certs| !certs.is_empty());

        let retire = match self.handshake_with.take() {
            Some(with) => with.retirement(&self.store, &self.config, peer),
            None => Retirement::never(),
        };
        self.state = State::Done;
        Poll::Ready(Ok(Accepted {
            io: ServerIo::Tls(Box::new(stream)),
            tls,
            alpn,
            retire,
        }))
    }
}

impl<I: Io> Future for AcceptFuture<I> {
    type Output = Result<Accepted<ServerIo<I>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Ready(accepted) => {
                    let accepted = accepted.take();
                    this.state = State::Done;
                    return Poll::Ready(accepted.ok_or_else(polled_after_completion));
                }
                State::Detect { io, buf, len } => {
                    let Some(inner) = io.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let mut read = ReadBuf::new(&mut buf[*len..]);
                    match Pin::new(inner).poll_read(cx, &mut read) {
                        Poll::Pending => {
                            let timed_out = this
                                .deadline
                                .as_mut()
                                .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                            if !timed_out {
                                return Poll::Pending;
                            }
                            // Not a byte: not a TLS client, and not known to
                            // be anything else. Bytes that may begin a
                            // ClientHello are a TLS client that stalled.
                            if *len == 0
                                && this.silent_is_plaintext
                                && let Some(io) = io.take()
                            {
                                return this.silent(io);
                            }
                            return this.fail(AcceptError::Timeout(this.config.handshake_timeout));
                        }
                        Poll::Ready(Err(e)) => return this.fail(AcceptError::Io(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    let n = read.filled().len();
                    if n == 0 && *len == 0 {
                        return this.fail(AcceptError::Closed);
                    }
                    *len += n;
                    let eof = n == 0;
                    let hello = match classify(&buf[..*len]) {
                        // The peer closed mid-header: not a TLS client.
                        Hello::NeedMore if eof => Hello::Plaintext,
                        hello => hello,
                    };
                    if hello == Hello::NeedMore {
                        continue;
                    }
                    // A TLS client: its first record, whole, says which
                    // server it asks for. One that closes before it is
                    // whole goes to the handshake, which fails it.
                    let sni = match hello {
                        Hello::Tls => match client_hello::server_name(&buf[..*len]) {
                            ServerName::NeedMore(need) if !eof => {
                                if need > buf.len() {
                                    buf.resize(need, 0);
                                }
                                continue;
                            }
                            ServerName::Named(sni) => Some(sni),
                            ServerName::NeedMore(_) | ServerName::Unnamed => None,
                        },
                        _ => None,
                    };
                    let prefix = Bytes::copy_from_slice(&buf[..*len]);
                    let Some(io) = io.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    if hello == Hello::Plaintext {
                        return this.plaintext(io, prefix);
                    }
                    if let Some(sni) = sni
                        && this.names_another_server(&sni)
                    {
                        return this.passthrough(io, prefix, sni);
                    }
                    if let Some(error) = this.handshake(io, prefix) {
                        return this.fail(error);
                    }
                }
                State::Handshake { accept } => match Pin::new(accept).poll(cx) {
                    Poll::Ready(result) => {
                        // The refusing config finishes no handshake; were
                        // one to finish, it would be refused all the same.
                        if let Some(refusal) = this.refusing.take() {
                            return this.fail(refusal);
                        }
                        return match result {
                            Ok(stream) => this.finish(stream),
                            Err(e) => this.fail(AcceptError::handshake(e)),
                        };
                    }
                    Poll::Pending => {
                        if this.timed_out(cx) {
                            return this.fail(AcceptError::Timeout(this.config.handshake_timeout));
                        }
                        return Poll::Pending;
                    }
                },
                State::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

fn polled_after_completion() -> BoxError {
    "accept future polled after completion".into()
}

impl<I> std::fmt::Debug for AcceptFuture<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Ready(_) => "ready",
            State::Detect { .. } => "detect",
            State::Handshake { .. } => "handshake",
            State::Done => "done",
        };
        f.debug_struct("AcceptFuture")
            .field("state", &state)
            .field("mode", &self.config.mode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_record_header_is_tls() {
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Hello::Tls);
        assert_eq!(classify(&[0x16, 0x03, 0x03]), Hello::Tls);
        assert_eq!(classify(&[0x16]), Hello::NeedMore);
        assert_eq!(classify(&[0x16, 0x03]), Hello::NeedMore);
    }

    #[test]
    fn text_and_other_records_are_plaintext() {
        assert_eq!(classify(b"GET"), Hello::Plaintext);
        assert_eq!(classify(b"PRI"), Hello::Plaintext);
        assert_eq!(classify(&[0x16, 0x02, 0x00]), Hello::Plaintext);
        assert_eq!(classify(&[0x16, 0x03, 0x09]), Hello::Plaintext);
        assert_eq!(classify(&[0x17, 0x03, 0x03]), Hello::Plaintext);
    }
}
