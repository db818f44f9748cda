//! Requests that find no endpoint ready wait for one, for a while, then
//! fail fast, as Linkerd's balancer queue does.
//!
//! # Why
//!
//! A sidecar that has just started has not resolved its services' names
//! yet; during a rolling restart, failure accrual may have every endpoint
//! of a small service out for a second; an endpoint back from its penalty
//! takes one probe at a time. Answering `503` at once in those moments
//! turns a wait of a few hundred milliseconds into an error the
//! application sees. Waiting for ever is worse: a service with no
//! endpoint at all would pile up requests, and their callers, until
//! memory runs out, and nobody would learn that it is down.
//!
//! Linkerd's proxy puts a queue in front of each balancer (linkerd2-proxy
//! `linkerd/stack/src/queue.rs`, `failfast.rs`): a request waits while the
//! balancer has no endpoint ready; when none has become ready within the
//! fail-fast timeout, the service goes into *fail-fast*: the waiting
//! requests fail (`service in fail-fast`), and its gate shuts, so that
//! every new one is shed at once (`service unavailable`) until an
//! endpoint is ready again. Its outbound defaults are a capacity
//! of 10 000 and a timeout of 3 s, for HTTP requests
//! (`LINKERD2_PROXY_OUTBOUND_HTTP_QUEUE_CAPACITY`,
//! `LINKERD2_PROXY_OUTBOUND_HTTP_FAILFAST_TIMEOUT`) and for opaque TCP
//! connections alike (`LINKERD2_PROXY_OUTBOUND_TCP_QUEUE_CAPACITY`,
//! `LINKERD2_PROXY_OUTBOUND_TCP_FAILFAST_TIMEOUT`; linkerd2-proxy
//! `linkerd/app/src/env.rs`), and they are the defaults here. Linkerd's
//! queue is a bounded channel, which cannot have a capacity of 0.
//!
//! The same queue holds the connections of a
//! [`ForwardTcp`](super::ForwardTcp) and the `CONNECT`s it tunnels
//! ([`tcp`](super::tcp)): a connection waits as a request does, and one
//! refused is closed (a `CONNECT` is answered `503`).
//!
//! # How
//!
//! A request that finds an endpoint ready is sent at once, and pays
//! nothing for the queue: it is never read on that path. One that finds
//! none (no endpoint yet, every one out under failure accrual, the one
//! left on probation with its probe in flight) waits, holding one of
//! [`Queue::capacity`] places; a request beyond them gets the mesh's `503`
//! (`mesh-error: service unavailable`) at once. The wait ends when
//! something may have made an endpoint ready: an update of the
//! [`EndpointSet`](super::EndpointSet), a probe's outcome, or the end of
//! a penalty (the waiter sleeps until the earliest). Then the request
//! tries the balancer again, and waits again if it still finds nothing.
//!
//! The fail-fast timeout counts from when the service stopped having an
//! endpoint ready (the first request that found none), as in Linkerd, not
//! from each request's arrival, and it runs on when every request waiting
//! has gone (its caller gave up) before it passed, as Linkerd's does:
//! only an endpoint ready ends it. Otherwise callers that give up sooner
//! than the timeout, one after another (gRPC clients with 1 s deadlines),
//! would keep a service that stays down out of fail-fast, each waiting
//! its whole deadline instead of being answered at once. When it passes with no
//! endpoint ready, every waiting request is answered `503` with
//! `mesh-error: service in fail-fast` ([`IN_FAILFAST`]; gRPC callers:
//! `grpc-status: 14` `UNAVAILABLE`). Every new request that finds no
//! endpoint ready is then answered at once, as one beyond the queue's
//! capacity is: `503` with `mesh-error: service unavailable`. The two
//! are Linkerd's `FailFastError` and `LoadShedError`, which its error
//! metrics count as `failfast` and `loadshed`: its queue fails the
//! requests it holds, and shuts a gate in front of it, where a
//! `LoadShed` turns the new ones away. Fail-fast ends as soon as an
//! endpoint is ready again: an update brings endpoints, an endpoint past
//! its penalty takes its probe, or a probe's connect succeeds.
//!
//! It ends too when an endpoint's penalty ends and no request comes to
//! take its probe: Linkerd's gate opens once its balancer's pool is
//! ready, which a task of its own drives with or without requests
//! (linkerd2-proxy `linkerd/proxy/balance/queue/src/worker.rs`), and a
//! service that gets no traffic (a sidecar runtime no caller reaches)
//! must not read in fail-fast, in its gate metrics, long after its
//! endpoints are back. So while the gate is shut, a task sleeps until
//! the earliest time an endpoint may take a request by time alone, and
//! opens the gate then if one is ready; it looks again whenever the gate
//! hears of a change (a probe's outcome or release, an update), which
//! may bring that time nearer: one task each time the gate shuts, none
//! per request. An endpoint past its connect backoff is not
//! ready until a connect succeeds, as in Linkerd; Linkerd reconnects it
//! in the background, here a request's connect does, so the gate of a
//! service whose endpoints all back off a connect opens only with a
//! request ([`reconnect`](super::balance::reconnect)).
//!
//! A caller that goes away while waiting gives its place back, and leaves
//! nothing behind. A [`Queue`] with a zero timeout waits for nothing:
//! its timeout has passed once a request finds no endpoint, so that
//! request brings fail-fast and is answered `service in fail-fast`, and
//! those after it `service unavailable`, until an endpoint is ready, as
//! in Linkerd. A queue with no places answers each `service
//! unavailable`.
//!
//! The queue and its gate can be counted in Linkerd's metric families
//! (`outbound_http_balancer_queue_length` and the rest:
//! [`QueueMetrics`]): a request that waits pays for them, one that finds
//! an endpoint ready does not.

use std::{
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::HeaderMap;
use tokio::{sync::Notify, time::Instant};

use super::balance::{QueueMetrics, Readiness};
use super::forward::NoEndpoints;
use crate::error::{BoxError, MESH_ERROR, ProxyErrorKind};

#[cfg(test)]
mod tests;

/// How requests (or connections) wait for an endpoint: how many at most,
/// and for how long before the service goes into fail-fast. See the
/// [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    capacity: usize,
    failfast_timeout: Duration,
}

impl Default for Queue {
    /// Linkerd's for outbound HTTP and TCP: 10 000 waiting, 3 s.
    fn default() -> Self {
        Self {
            capacity: 10_000,
            failfast_timeout: Duration::from_secs(3),
        }
    }
}

impl Queue {
    /// At most `capacity` requests wait, for `failfast_timeout` after the
    /// service last had an endpoint ready. A zero timeout (or capacity)
    /// waits for nothing: requests that find no endpoint are answered at
    /// once (see the [module docs](self) for how). One longer than the clock can count (`Duration::MAX`) never
    /// passes: the service never goes into fail-fast.
    pub fn new(capacity: usize, failfast_timeout: Duration) -> Self {
        Self {
            capacity,
            failfast_timeout,
        }
    }

    /// How many requests may wait at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long the service may have no endpoint ready before it goes
    /// into fail-fast.
    pub fn failfast_timeout(&self) -> Duration {
        self.failfast_timeout
    }
}

/// The `mesh-error` of a request answered while the service is in
/// fail-fast: it had no endpoint ready for the fail-fast timeout.
pub const IN_FAILFAST: &str = "service in fail-fast";

/// Which of the balancer queue's two refusals the mesh's
/// [`Unavailable`](ProxyErrorKind::Unavailable) answer is, told by its
/// `mesh-error`: the retry layers retry one and not the other, and the
/// metrics label them apart, as Linkerd's `FailFastError` and
/// `LoadShedError` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRefusal {
    /// Shed at once (`service unavailable`): the queue was full, or the
    /// service was already in fail-fast.
    Shed,
    /// Waited until the service went into fail-fast ([`IN_FAILFAST`]).
    FailedFast,
}

impl QueueRefusal {
    /// The refusal the `headers` of an answer of kind
    /// [`Unavailable`](ProxyErrorKind::Unavailable) say; `None` for the
    /// kind's other answers (a route with no backend to draw, say). The
    /// caller checks the kind, from the response's extensions: a
    /// `mesh-error` alone may be another hop's.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let reason = headers.get(MESH_ERROR)?.as_bytes();
        if reason == ProxyErrorKind::Unavailable.reason().as_bytes() {
            Some(Self::Shed)
        } else if reason == IN_FAILFAST.as_bytes() {
            Some(Self::FailedFast)
        } else {
            None
        }
    }
}

/// Why a connection or `CONNECT` that waited for an endpoint is refused
/// when its service goes into fail-fast: no endpoint has been ready for
/// the fail-fast timeout. One that comes while the service is in
/// fail-fast is shed, with [`NoEndpoints`]. A `CONNECT` is answered [`IN_FAILFAST`],
/// as an HTTP request is; a forwarded connection is closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InFailFast;

impl std::fmt::Display for InFailFast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(IN_FAILFAST)
    }
}

impl std::error::Error for InFailFast {}

/// The waiting room of one set of endpoints, shared by its balancers
/// across updates. Only requests that find no endpoint, and the rare
/// events that may make one ready, touch it.
#[derive(Debug)]
pub(crate) struct Gate {
    queue: Queue,
    state: Mutex<State>,
    /// `State::failfast`, written with it under the lock and read without
    /// it: a traffic split asks every request's drawn backend.
    failfast: AtomicBool,
    /// Wakes waiters, and the task that opens a shut gate ([`reopen`]),
    /// which holds it without keeping the gate alive.
    notify: Arc<Notify>,
    /// Where the queue and the gate are counted, once given: set under
    /// the state's lock, for the gate's changes to be counted once.
    metrics: OnceLock<QueueMetrics>,
}

#[derive(Debug, Default)]
struct State {
    /// Requests waiting now.
    waiters: usize,
    /// When fail-fast starts, while no endpoint is ready and someone
    /// waited; `None` after an endpoint was ready.
    deadline: Option<Instant>,
    /// In fail-fast.
    failfast: bool,
    /// Counts the events that may have made an endpoint ready, for a
    /// waiter to tell whether one came between its try and its wait.
    generation: u64,
    /// Counts the times the gate shut, for the task that opens it by
    /// time ([`reopen`]) to tell its own shut from a later one.
    shuts: u64,
    /// The endpoints of the latest balancer in front of which the gate
    /// stands, for it to open when one is ready by time alone.
    readiness: Option<Arc<Readiness>>,
}

/// Why a request that found no endpoint is answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Shed: the queue is full or has no places, or the service is in
    /// fail-fast, its gate shut: `service unavailable` (Linkerd's
    /// `LoadShedError`).
    Unavailable,
    /// The request waited the fail-fast timeout, and fail-fast came:
    /// [`IN_FAILFAST`] (Linkerd's `FailFastError`).
    FailFast,
}

impl Refused {
    /// The error a connection refused for this reason ends with:
    /// [`InFailFast`], or [`NoEndpoints`] when it is shed.
    pub(crate) fn into_error(self) -> BoxError {
        match self {
            Self::FailFast => InFailFast.into(),
            Self::Unavailable => NoEndpoints.into(),
        }
    }
}

/// What a wait ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Something changed: try the balancer again.
    Retry,
    /// The fail-fast timeout passed.
    FailFast,
}

impl Gate {
    pub(crate) fn new(queue: Queue) -> Arc<Self> {
        Arc::new(Self {
            queue,
            state: Mutex::default(),
            failfast: AtomicBool::new(false),
            notify: Arc::new(Notify::new()),
            metrics: OnceLock::new(),
        })
    }

    /// A fresh gate for `queue`, counted where this one is.
    pub(crate) fn renewed(&self, queue: Queue) -> Arc<Self> {
        let gate = Self::new(queue);
        if let Some(metrics) = self.metrics.get() {
            gate.count_in(metrics.clone());
        }
        gate
    }

    /// Counts the queue and the gate in `metrics` from now on; `false`
    /// when they are counted already.
    pub(crate) fn count_in(&self, metrics: QueueMetrics) -> bool {
        let state = self.lock();
        let timeout = self.queue.failfast_timeout;
        let shut = state.failfast;
        match self.metrics.set(metrics) {
            Ok(()) => {
                if let Some(metrics) = self.metrics.get() {
                    metrics.gate.counted(timeout, shut);
                }
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn queue(&self) -> Queue {
        self.queue
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place in the queue for a request that found no endpoint, or why
    /// it is answered now.
    ///
    /// In fail-fast the service's gate is shut, and a request that comes
    /// is shed ([`Refused::Unavailable`]) rather than failed fast: only
    /// the requests that were waiting when fail-fast came fail fast, as in
    /// linkerd2-proxy, whose queue fails those it holds and shuts its gate
    /// so that the `LoadShed` in front of it turns every new one away. A
    /// zero timeout has passed as soon as a request finds no endpoint:
    /// that request brings fail-fast and fails fast, and those after it
    /// are shed until an endpoint is ready.
    pub(crate) fn admit(self: &Arc<Self>) -> Result<Place, Refused> {
        if self.queue.capacity == 0 {
            return Err(Refused::Unavailable);
        }
        let mut state = self.lock();
        if state.failfast {
            return Err(Refused::Unavailable);
        }
        if self.queue.failfast_timeout.is_zero() {
            // It entered the queue and waited the whole timeout, as it
            // would in Linkerd's: counted so.
            if let Some(metrics) = self.metrics.get() {
                metrics.entered();
                metrics.left(Instant::now());
            }
            self.shut(&mut state);
            return Err(Refused::FailFast);
        }
        if state.waiters >= self.queue.capacity {
            return Err(Refused::Unavailable);
        }
        state.waiters += 1;
        let since = self.metrics.get().map(|metrics| {
            metrics.entered();
            Instant::now()
        });
        Ok(Place {
            gate: self.clone(),
            since,
        })
    }

    /// The endpoints of the balancer now in front of the gate: a
    /// balancer built or updated says, once, not per request.
    pub(crate) fn watch(&self, readiness: Readiness) {
        self.lock().readiness = Some(Arc::new(readiness));
    }

    /// The events seen so far, read before a request tries the balancer.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Whether the service is in fail-fast.
    pub(crate) fn in_failfast(&self) -> bool {
        self.failfast.load(Ordering::Acquire)
    }

    /// An endpoint is ready, or may be (endpoints came, a probe ended):
    /// waiters try again, and `ready` ends fail-fast and its timeout.
    pub(crate) fn wake(&self, ready: bool) {
        {
            let mut state = self.lock();
            state.generation = state.generation.wrapping_add(1);
            if ready {
                if state.failfast {
                    tracing::info!("an endpoint is ready: fail-fast ends");
                    if let Some(metrics) = self.metrics.get() {
                        metrics.gate.opened();
                    }
                }
                state.failfast = false;
                self.failfast.store(false, Ordering::Release);
                state.deadline = None;
            }
        }
        self.notify.notify_waiters();
    }

    /// Waits until something may have made an endpoint ready since
    /// `seen`, `retry_at` passes (a penalty ends), or the fail-fast
    /// timeout does. The timeout starts now if no request was already
    /// waiting for an endpoint.
    pub(crate) async fn wait(self: Arc<Self>, seen: u64, retry_at: Option<Instant>) -> Woken {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let deadline = {
            let mut state = self.lock();
            if state.generation != seen {
                return Woken::Retry;
            }
            if state.failfast {
                return Woken::FailFast;
            }
            *state
                .deadline
                .get_or_insert_with(|| self.deadline_from(Instant::now()))
        };
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut notified => Woken::Retry,
            () = retry => Woken::Retry,
            () = tokio::time::sleep_until(deadline) => self.expire(deadline),
        }
    }

    /// When the fail-fast timeout that starts at `now` ends. A timeout
    /// longer than the clock can add to `now` (`Duration::MAX`, say) is
    /// one that never ends: `Instant + Duration` would panic there, on
    /// the request path, so it ends in thirty years instead, tokio's own
    /// stand-in for a sleep that never wakes.
    fn deadline_from(&self, now: Instant) -> Instant {
        const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
        now.checked_add(self.queue.failfast_timeout)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now)
    }

    /// The fail-fast timeout that ends at `deadline` passed: unless an
    /// endpoint was ready since, the service goes into fail-fast, and
    /// every waiter hears.
    fn expire(self: &Arc<Self>, deadline: Instant) -> Woken {
        {
            let mut state = self.lock();
            if state.deadline != Some(deadline) {
                return Woken::Retry;
            }
            self.shut(&mut state);
        }
        self.notify.notify_waiters();
        Woken::FailFast
    }

    /// The service goes into fail-fast, if it is not in it already: its
    /// gate shuts until an endpoint is ready, which a task of its own
    /// watches for while it is shut ([`reopen`]).
    fn shut(self: &Arc<Self>, state: &mut State) {
        if !state.failfast {
            tracing::warn!(
                timeout = ?self.queue.failfast_timeout,
                waiting = state.waiters,
                "no endpoint ready: the service goes into fail-fast"
            );
            if let Some(metrics) = self.metrics.get() {
                metrics.gate.shut();
            }
            state.shuts = state.shuts.wrapping_add(1);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let notify = self.notify.clone();
                runtime.spawn(reopen(Arc::downgrade(self), notify, state.shuts));
            }
        }
        state.failfast = true;
        self.failfast.store(true, Ordering::Release);
    }

    /// Whether a request is waiting, for tests.
    #[cfg(test)]
    pub(crate) fn waiters(&self) -> usize {
        self.lock().waiters
    }
}

/// Opens `gate`, shut for the `shut`-th time, once an endpoint is ready
/// by time alone (its penalty over), if nothing opened it first: the
/// gate of a service that no request reaches must not read shut for
/// good after its endpoints are back, as Linkerd's opens once its
/// balancer's pool is ready, which a task of its own drives whether or
/// not a request waits (linkerd2-proxy
/// `linkerd/proxy/balance/queue/src/worker.rs`, `PoolDriver::drive`).
///
/// It sleeps until an endpoint may take a request by time, and looks
/// again then, or as soon as the gate hears of a change (`notify`): a
/// probe's outcome or release, or an update, may bring that time
/// nearer (a probe that fails starts a penalty that ends long before
/// the hold it was sleeping for) or open the gate. It reads the latest
/// balancer's endpoints each time, and ends when the gate opens or
/// shuts anew, goes away, or no endpoint will be ready by time alone
/// (one past its connect backoff is ready only once a request's connect
/// succeeds). One task per time the gate shuts, none per request, and
/// it ends at the first look after its gate opens.
async fn reopen(gate: std::sync::Weak<Gate>, notify: Arc<Notify>, shut: u64) {
    loop {
        // Listening before looking: a change between the two is not
        // missed.
        let changed = notify.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let at = {
            let Some(gate) = gate.upgrade() else {
                return;
            };
            let readiness = {
                let state = gate.lock();
                if state.shuts != shut || !state.failfast {
                    return;
                }
                state.readiness.clone()
            };
            let Some(readiness) = readiness else {
                return;
            };
            if readiness.ready() {
                gate.wake(true);
                return;
            }
            let Some(at) = readiness.next_change() else {
                return;
            };
            at
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = &mut changed => {}
        }
    }
}

impl Drop for Gate {
    /// A gate that goes away shut refuses nothing any more: the service's
    /// gate opens if it was the last one shut. The task that would have
    /// opened it ([`reopen`]) hears, and ends, rather than sleep on until
    /// the penalty it was waiting for ends.
    fn drop(&mut self) {
        let shut = self.state.get_mut().map_or_else(
            |poisoned| poisoned.into_inner().failfast,
            |state| state.failfast,
        );
        if let (true, Some(metrics)) = (shut, self.metrics.get()) {
            metrics.gate.opened();
        }
        if shut {
            self.notify.notify_waiters();
        }
    }
}

/// A request's place in the queue, given back when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    gate: Arc<Gate>,
    /// When the request took it, if the queue is counted.
    since: Option<Instant>,
}

impl Place {
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        // The fail-fast timeout runs on when its last waiter leaves, as
        // Linkerd's does (its `Failfast` stays `Waiting` until the pool is
        // ready): callers that give up sooner than the timeout, one after
        // another, must not keep a service that stays down out of
        // fail-fast. Only readiness (`wake(true)`) ends it.
        state.waiters = state.waiters.saturating_sub(1);
        drop(state);
        if let (Some(since), Some(metrics)) = (self.since, self.gate.metrics.get()) {
            metrics.left(since);
        }
    }
}
