//! Retiring pooled client connections before their credentials go stale.
//!
//! A TLS session is authenticated once, at the handshake. A pooled
//! connection can then live for hours, long after the certificate it was
//! authenticated with has been rotated away or has expired; Envoy users
//! report exactly this (envoy#17999, envoy#28386). The mesh retires such
//! connections instead, without cutting requests that are running on them.
//!
//! Retiring means *poisoning* the connection in hyper-util's pool: the pool
//! never hands it out again, requests in flight on it finish, and the pool
//! drops it once they have (or at its next idle sweep). A client connection
//! is retired
//!
//! - when the local credentials rotate to ones that no longer vouch for it:
//!   at once, when the new trust bundle no longer verifies the server's
//!   chain (for server authentication, through an anchor of the trust
//!   domain of the identity it proved, as at the handshake), or when the
//!   local identity is another (the server authorized requests for the
//!   one it authenticated);
//! - shortly before the local or the server chain expires
//!   ([`ConnectConfig::retire_before_expiry`](crate::ConnectConfig::retire_before_expiry)
//!   ahead of the earliest `notAfter` of the two chains: a workload
//!   certificate's, or an intermediate's that expires before it).
//!
//! A rotation that leaves both in place keeps the connection: a new trust
//! bundle that still verifies the server's chain, a renewed local
//! certificate, or new intermediates. A bundle rollout reaches every
//! workload at once, so retiring on it would have every client of the mesh
//! re-handshake all its connections at the same moment; a renewal would
//! cost a reconnect wave every renewal, for nothing: the server
//! authenticated the old certificate, which stays valid until its
//! `notAfter`, and the connection is retired ahead of that `notAfter`
//! (the second bullet) whatever the rotations in between. The server side
//! keeps a connection across the same rotations
//! ([`AcceptConfig::drain_on_rotation`](crate::AcceptConfig::drain_on_rotation)
//! off), and Linkerd's proxy hands a new identity config to new
//! connections only, never retiring established ones on it.
//!
//! At that `notAfter` itself a connection still open is closed
//! (unless [`ConnectConfig::close_at_expiry`](crate::ConnectConfig::close_at_expiry)
//! is off): no connection outlives the certificates that authenticated it.
//!
//! Both times are read by the store's clock, the one that found the
//! certificates valid, and waited for on a tokio timer that looks at that
//! clock again at least every minute: tokio's clock stands still while the
//! machine sleeps and ignores a wall clock stepped forward, so a timer
//! armed at the handshake for the certificate's remaining hours would,
//! after a resume, keep the connection open past its `notAfter` by as
//! long as the machine slept. A connection is retired and closed within a
//! minute of those times by the store's clock, whichever clock gets there
//! first.
//!
//! hyper-util reaches the pool's handle to a connection only through a
//! request that ran on it, so poisoning needs [`RetireLayer`] around the
//! client. While a connection has not yet answered a request, or no usable
//! connection exists, the layer asks hyper-util to report which connection
//! each request ran on, and the first response on a connection *claims*
//! its handle. Once every connection is claimed, requests pass through
//! untouched. A connection retired before it is claimed is poisoned when
//! claimed, so it can carry one more request; with several targets on one
//! connector, a connection opened while others are usable is claimed by
//! the second request it carries. Without the layer, connections are still
//! closed at expiry, but not retired early.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::client::{Client, ClientConfig};
//! use mesh_tls::{CredentialStore, OutboundTls, TlsConnector, TlsTargets};
//! use tower::ServiceBuilder;
//!
//! let store = CredentialStore::default();
//! let config = ClientConfig::default();
//! let peer = "spiffe://example.org/ns/shop/sa/web".parse()?;
//! let connector = TlsConnector::new(&config, store, TlsTargets::new(OutboundTls::Mtls(peer)))?;
//! let client = ServiceBuilder::new()
//!     .layer(connector.retire_layer())
//!     .service(Client::<mesh_core::body::BoxBody, _>::with_connector(&config, connector));
//! # drop(client);
//! # Ok(()) }
//! ```

pub mod future;
mod layer;
mod state;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, SystemTime},
};

use http::{Request, Response};
use hyper_util::client::legacy::connect::capture_connection;
use tokio::{
    task::coop::unconstrained,
    time::{Instant, Sleep},
};
use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::RetireLayer;
pub(crate) use self::state::{Authenticated, ConnState, RetireList, RetireShared};
use crate::{
    CredentialStore,
    metrics::RetireReason,
    store::{READINESS_RECHECK, Snapshot, vouches_until},
};

/// Hands client connections vouched for by the credentials `from` (which an
/// update replaced) over to those now in service, retiring the ones these
/// no longer vouch for: when the local identity is another, or when the
/// new trust bundle no longer verifies the server's chain, for server
/// authentication, through an anchor of the trust domain of the identity
/// its certificate names, as the handshake verified it (or verifies it
/// only through a certificate that expires before the path the connection's
/// retirement is timed by: see [`Snapshot::still_vouches`]). A connection whose
/// server the new bundle still trusts, made with the same identity, stays
/// in the pool, whether the update brought a new bundle, a renewed local
/// certificate or both (see the [module docs](self)).
///
/// A bundle the same as `from`'s trusts every server it trusted, so then
/// no chain is verified again; otherwise each distinct server chain is
/// verified once, by the store's clock. When a later update has replaced
/// the credentials in the meantime, the connections are checked against
/// the newest.
pub(crate) fn carry_over(
    store: &CredentialStore,
    mut from: Arc<Snapshot>,
    mut conns: Vec<Arc<ConnState>>,
) {
    loop {
        let Some(to) = store.snapshot() else {
            // No credentials: nothing vouches for any connection.
            for conn in &conns {
                conn.retire(RetireReason::Rotation);
            }
            return;
        };
        let same_bundle = *to.creds.roots() == *from.creds.roots();
        let mut trusted = HashMap::new();
        let (mut kept, mut lost) = (Vec::with_capacity(conns.len()), 0usize);
        for conn in conns {
            let authenticated = conn.authenticated();
            let keep = authenticated.local == *to.creds.identity()
                && (same_bundle
                    || trusted
                        .entry(authenticated.server_chain.clone())
                        .or_insert_with(|| {
                            to.trusted_until(
                                store,
                                &authenticated.server_chain,
                                webpki::KeyUsage::server_auth(),
                            )
                        })
                        .is_some_and(|until| vouches_until(until, authenticated.server_not_after)));
            if keep {
                kept.push(conn);
            } else {
                conn.retire(RetireReason::Rotation);
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::debug!(
                retired = lost,
                kept = kept.len(),
                "the new credentials no longer vouch for some client connections"
            );
        }
        match to.connections.adopt(kept) {
            Ok(()) => return,
            Err(back) => (from, conns) = (to, back),
        }
    }
}

/// When a connection authenticated with certificates expiring at `expiry`
/// is retired (`retire_before` ahead of it) and when it is closed (at it),
/// as instants of tokio's clock. `now` is the time by the store's clock,
/// the one that found the certificates valid and that `expiry` is read
/// against: a certificate with a minute left by that clock is not used
/// for longer because the system clock is behind it.
pub(crate) fn deadlines(
    expiry: SystemTime,
    retire_before: Duration,
    now: SystemTime,
) -> (Instant, Instant) {
    /// Far enough that no connection lives to see it.
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);
    let remaining = expiry.duration_since(now).unwrap_or_default();
    let now = Instant::now();
    let at = |d| now.checked_add(d).unwrap_or(now + FAR_FUTURE);
    (at(remaining.saturating_sub(retire_before)), at(remaining))
}

/// When, by the store's clock, a connection is retired: `retire_before`
/// ahead of `expiry` (at once, for an `expiry` that close to the epoch).
pub(crate) fn retire_time(expiry: SystemTime, retire_before: Duration) -> SystemTime {
    expiry
        .checked_sub(retire_before)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A connection's retirement or close: a time by the store's clock,
/// waited for on a tokio timer.
///
/// Why not the timer alone: tokio's clock is monotonic, and stands still
/// while the machine sleeps (a suspended laptop, a paused VM) and takes no
/// notice of a wall clock stepped forward, while the certificate expires
/// by the store's clock. A timer armed at the handshake for hours ahead
/// would, after a resume, keep the connection open for as long again as
/// the machine slept, past the certificate's `notAfter`. So the timer is
/// armed for at most [`READINESS_RECHECK`] (a minute), after which the
/// store's clock is read again, as the readiness task and the CA's
/// renewals do: the deadline passes at the tokio instant it was given or
/// when the store's clock reaches its time, whichever comes first, so
/// within a minute of the latter.
///
/// One timer per deadline, re-armed in place (no allocation) at most once
/// a minute while a long wait remains; the store's clock is read only when
/// the timer fires, never when the connection is merely polled.
pub(crate) struct Deadline {
    store: CredentialStore,
    /// The time by the store's clock.
    at: SystemTime,
    /// The same time on tokio's clock, as it stood when the deadline was
    /// set: passes first when the store's clock is stepped back.
    until: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Deadline {
    /// A deadline at `at` by `store`'s clock, or at `until` by tokio's,
    /// whichever comes first.
    pub(crate) fn new(store: CredentialStore, at: SystemTime, until: Instant) -> Self {
        let mut deadline = Self {
            store,
            at,
            until,
            sleep: Box::pin(tokio::time::sleep_until(until)),
        };
        deadline.arm();
        deadline
    }

    /// Sets the deadline anew, at `at` by the store's clock or `until` by
    /// tokio's, on the same timer.
    pub(crate) fn reset(&mut self, at: SystemTime, until: Instant) {
        self.at = at;
        self.until = until;
        self.arm();
    }

    /// Ready once the deadline has passed, and every time polled after.
    pub(crate) fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Unconstrained: a bookkeeping check beside the connection's
            // own work, which should not spend the task's coop budget.
            ready!(Pin::new(&mut unconstrained(self.sleep.as_mut())).poll(cx));
            if self.arm() {
                return Poll::Ready(());
            }
        }
    }

    /// Arms the timer for the least time left by either clock, a minute
    /// at most; says whether none is left.
    fn arm(&mut self) -> bool {
        let now = Instant::now();
        let by_store = self.at.duration_since(self.store.now()).unwrap_or_default();
        let left = self.until.saturating_duration_since(now).min(by_store);
        if left.is_zero() {
            // Stays elapsed: every later poll is ready at once.
            if self.sleep.deadline() > now {
                self.sleep.as_mut().reset(now);
            }
            return true;
        }
        self.sleep.as_mut().reset(now + left.min(READINESS_RECHECK));
        false
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_passed(cx)
    }
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline")
            .field("at", &self.at)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// A client whose TLS connections can be retired. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Retire<S> {
    inner: S,
    shared: Arc<RetireShared>,
}

impl<S, B, R> Service<Request<B>> for Retire<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let capture = self
            .shared
            .wants_capture()
            .then(|| capture_connection(&mut req));
        ResponseFuture::new(self.inner.call(req), capture)
    }
}

impl<S> Retire<S> {
    fn new(inner: S, shared: Arc<RetireShared>) -> Self {
        Self { inner, shared }
    }
}
