//! What the retry layer did, and why it did not retry.
//!
//! A retry that is refused is as interesting as one that is made: on an
//! outage, `retry_budget_exhausted_total` rising is the budget doing its
//! job. So every retryable failure that is **not** retried is counted under
//! the reason it was not, and the caller still gets the last real response.
//!
//! | metric | type | counts |
//! |---|---|---|
//! | `retry_requests_total` | counter | retries sent (not first attempts); a retry decided but never sent is not one |
//! | `retry_successes_total` | counter | requests that succeeded after at least one retry (a gRPC stream when its head is not a failure) |
//! | `retry_limit_exceeded_total` | counter | retryable failures returned because the request used its attempts |
//! | `retry_budget_exhausted_total` | counter | retryable failures returned because the budget was empty |
//! | `retry_deadline_exceeded_total` | counter | retryable failures returned because the request's deadline was nearer than the backoff, or passed before the retry could be sent (when the backoff ended, while the service was not ready, or while the failed attempt's client still held the request body) |
//! | `retry_not_retryable_total{reason}` | counter | retryable failures of requests that could not be retried: `body_too_large`, `non_idempotent`, `committed`, `streaming_response`, `body_in_use`, `unavailable` |
//! | `retry_budget_balance` | gauge | retries each budget allows now |
//!
//! A retry is taken from the budget when it is decided. One that is then
//! not sent (its deadline passed, its service failed to get ready, or its
//! caller went away while it waited) is given back, so the balance
//! counts only retries that went out; it is counted once under why it
//! stopped when a counter says so (the deadline, the service), and never
//! in `retry_requests_total`.
//!
//! A retry the service fails to get ready for (a balancer left with no
//! endpoints, a client whose connection closed) is counted as
//! `retry_not_retryable_total{reason="unavailable"}`, and the caller gets
//! the response it was to replace. It is a reason of its own, not one of
//! the other counters: the attempts, the budget and the deadline all
//! allowed the retry, and an operator who sees failures returned unretried
//! needs to tell a budget doing its job from a backend with nothing to
//! send to. It is a reason of `retry_not_retryable_total`, rather than a
//! family of its own, because that family already counts retryable
//! failures that something other than the policy's limits kept from being
//! retried. (linkerd2-proxy counts a retry it does not send because its
//! service is not ready at once in
//! `outbound_http_route_retry_overflow_total`, its count of retries a
//! circuit breaker held back; a readiness error there ends the request
//! with that error.) A [`RetryObserver`] is told of it as
//! [`RetryEvent::NotRetryable`]`(`[`NotRetryable::Unavailable`]`)`.
//!
//! Labels are `service` and `route`, both names from configuration (or from
//! the request's [`DstService`] and [`RouteId`] extensions), so the series
//! stay bounded. The balance gauge is labelled by `service` only: a budget
//! belongs to a service, or is shared by several, and is read when scraped.
//!
//! A caller that keeps families of its own for the same events, labelled
//! its own way (a sidecar writing Linkerd's `outbound_http_route_retry_*`
//! beside these), gives a route's metrics a [`RetryObserver`]
//! ([`RouteRetryMetrics::with_observer`]): it is told of each event as it
//! is counted here, and whether the request was a gRPC call. Events are
//! rare (retries, and what stopped them), so a request that is not
//! retried never reaches it.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError, Weak},
};

use mesh_core::{labels::DstService, route::RouteId};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder},
    metrics::{MetricType, counter::Counter, family::Family, gauge::ConstGauge},
    registry::Registry,
};

use crate::Budget;

/// Why a retryable failure of a request could not be retried.
///
/// Reasons may be added: a match on one needs a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotRetryable {
    /// The body's known length was over the replay cap.
    BodyTooLarge,
    /// The method is not idempotent and the route does not mark it
    /// retryable.
    NonIdempotent,
    /// The body outgrew the replay cap while it was sent (or failed).
    Committed,
    /// The response began before the request body had been sent.
    StreamingResponse,
    /// The attempt failed before any response (its connection broke, or
    /// its per-try timeout passed) while the client it was sent through
    /// still held the request body, sending it: it could not be replayed
    /// yet. hyper's HTTP/1 connection keeps a body it is writing after the
    /// call that sent it is dropped.
    BodyInUse,
    /// A retry was decided on, and the service that was to send it failed
    /// to get ready (its `poll_ready` returned an error: a balancer left
    /// with no endpoints, a client whose connection closed). The caller
    /// gets the failed response the retry was to replace, and the budget
    /// gets the retry back.
    Unavailable,
}

impl NotRetryable {
    const ALL: [Self; 6] = [
        Self::BodyTooLarge,
        Self::NonIdempotent,
        Self::Committed,
        Self::StreamingResponse,
        Self::BodyInUse,
        Self::Unavailable,
    ];

    /// The `reason` label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "body_too_large",
            Self::NonIdempotent => "non_idempotent",
            Self::Committed => "committed",
            Self::StreamingResponse => "streaming_response",
            Self::BodyInUse => "body_in_use",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a route's retry layer counted, for a [`RetryObserver`]: one of the
/// counters of the [module](self) docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// A retry was sent (`retry_requests_total`).
    Retry,
    /// A request succeeded after at least one retry
    /// (`retry_successes_total`).
    Success,
    /// A retryable failure was returned because the request used its
    /// attempts (`retry_limit_exceeded_total`).
    LimitExceeded,
    /// A retryable failure was returned because the budget was empty
    /// (`retry_budget_exhausted_total`).
    BudgetExhausted,
    /// A retryable failure was returned because of the request's deadline
    /// (`retry_deadline_exceeded_total`).
    DeadlineExceeded,
    /// A retryable failure of a request that could not be retried
    /// (`retry_not_retryable_total`).
    NotRetryable(NotRetryable),
}

/// Told of each [`RetryEvent`] of one route as its [`RouteRetryMetrics`]
/// count it, and whether the request was a gRPC call (a request with a
/// gRPC `content-type`), so that a caller can count them in families of
/// its own. See the [module](self) docs.
pub trait RetryObserver: fmt::Debug + Send + Sync {
    /// Called once for each event, on the task of the request.
    fn observe(&self, event: RetryEvent, grpc: bool);
}

/// The `service` and `route` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Labels {
    service: Arc<str>,
    route: Arc<str>,
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        [("service", &*self.service), ("route", &*self.route)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ReasonLabels {
    labels: Labels,
    reason: NotRetryable,
}

impl EncodeLabelSet for ReasonLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        [
            ("service", &*self.labels.service),
            ("route", &*self.labels.route),
            ("reason", self.reason.as_label()),
        ]
        .encode(encoder)
    }
}

/// The retry metric families, registered once into the caller's registry.
/// Cloning shares the families.
#[derive(Clone, Debug)]
pub struct RetryMetrics {
    requests: Family<Labels, Counter>,
    successes: Family<Labels, Counter>,
    limit_exceeded: Family<Labels, Counter>,
    budget_exhausted: Family<Labels, Counter>,
    deadline_exceeded: Family<Labels, Counter>,
    not_retryable: Family<ReasonLabels, Counter>,
    budgets: Arc<BudgetGauges>,
}

impl RetryMetrics {
    /// Registers the retry metrics in `registry` (use
    /// `sub_registry_with_prefix` to prefix them).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            successes: Family::default(),
            limit_exceeded: Family::default(),
            budget_exhausted: Family::default(),
            deadline_exceeded: Family::default(),
            not_retryable: Family::default(),
            budgets: Arc::default(),
        };
        registry.register("retry_requests", "Retries sent", metrics.requests.clone());
        registry.register(
            "retry_successes",
            "Requests that succeeded after at least one retry",
            metrics.successes.clone(),
        );
        registry.register(
            "retry_limit_exceeded",
            "Retryable failures returned because the request used all its attempts",
            metrics.limit_exceeded.clone(),
        );
        registry.register(
            "retry_budget_exhausted",
            "Retryable failures returned because the retry budget was empty",
            metrics.budget_exhausted.clone(),
        );
        registry.register(
            "retry_deadline_exceeded",
            "Retryable failures returned because the request deadline was nearer than the backoff, or passed before the retry could be sent",
            metrics.deadline_exceeded.clone(),
        );
        registry.register(
            "retry_not_retryable",
            "Retryable failures of requests that could not be retried, by reason",
            metrics.not_retryable.clone(),
        );
        registry.register_collector(Box::new(metrics.budgets.clone()));
        metrics
    }

    /// The counters of one route of one service, resolved once.
    pub fn route(&self, service: &str, route: &str) -> RouteRetryMetrics {
        self.resolve(Labels {
            service: service.into(),
            route: route.into(),
        })
    }

    /// The counters for a request's [`DstService`] and [`RouteId`]
    /// extensions; a missing name is the empty string.
    pub(crate) fn for_request(
        &self,
        service: Option<&DstService>,
        route: Option<&RouteId>,
    ) -> RouteRetryMetrics {
        self.resolve(Labels {
            service: service.map_or_else(|| "".into(), |s| s.0.clone()),
            route: route.map_or_else(|| "".into(), |r| r.as_str().into()),
        })
    }

    /// Reports `budget`'s balance under `service` on every scrape, for as
    /// long as the budget lives. A service reports one budget: the one it
    /// was given last, which replaces any before it (a reloaded service may
    /// get a new budget while requests still hold the old one), so that the
    /// exposition never holds one series twice.
    pub fn observe_budget(&self, service: &str, budget: &Arc<Budget>) {
        self.budgets.observe(service, budget);
    }

    fn resolve(&self, labels: Labels) -> RouteRetryMetrics {
        let not_retryable = NotRetryable::ALL.map(|reason| {
            self.not_retryable
                .get_or_create(&ReasonLabels {
                    labels: labels.clone(),
                    reason,
                })
                .clone()
        });
        RouteRetryMetrics {
            requests: self.requests.get_or_create(&labels).clone(),
            successes: self.successes.get_or_create(&labels).clone(),
            limit_exceeded: self.limit_exceeded.get_or_create(&labels).clone(),
            budget_exhausted: self.budget_exhausted.get_or_create(&labels).clone(),
            deadline_exceeded: self.deadline_exceeded.get_or_create(&labels).clone(),
            not_retryable,
            service: labels.service,
            budgets: self.budgets.clone(),
            observer: None,
        }
    }
}

/// The retry counters of one route, resolved from [`RetryMetrics`] once so
/// that counting is an atomic add.
#[derive(Clone, Debug)]
pub struct RouteRetryMetrics {
    requests: Counter,
    successes: Counter,
    limit_exceeded: Counter,
    budget_exhausted: Counter,
    deadline_exceeded: Counter,
    not_retryable: [Counter; NotRetryable::ALL.len()],
    service: Arc<str>,
    budgets: Arc<BudgetGauges>,
    /// Told of each event, if the route has one: see
    /// [`with_observer`](Self::with_observer).
    observer: Option<Observer>,
}

/// A route's observer, and the same metrics telling it of gRPC calls.
#[derive(Clone, Debug)]
struct Observer {
    observer: Arc<dyn RetryObserver>,
    grpc: bool,
    /// The metrics of the route's gRPC calls: these, whose observer is
    /// told `grpc`. Set on the metrics of its other requests only.
    of_grpc: Option<Box<RouteRetryMetrics>>,
}

impl RouteRetryMetrics {
    /// Also tells `observer` of every event counted here. See the
    /// [module](self) docs.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn RetryObserver>) -> Self {
        let mut of_grpc = self.clone();
        of_grpc.observer = Some(Observer {
            observer: observer.clone(),
            grpc: true,
            of_grpc: None,
        });
        self.observer = Some(Observer {
            observer,
            grpc: false,
            of_grpc: Some(Box::new(of_grpc)),
        });
        self
    }

    /// The metrics of a request, a gRPC call when `grpc`: these, or for a
    /// gRPC call the copy whose observer is told so. Counters are shared.
    pub(crate) fn of_call(&self, grpc: bool) -> &Self {
        match &self.observer {
            Some(Observer {
                of_grpc: Some(of_grpc),
                ..
            }) if grpc => of_grpc,
            _ => self,
        }
    }

    fn tell(&self, event: RetryEvent) {
        if let Some(o) = &self.observer {
            o.observer.observe(event, o.grpc);
        }
    }

    pub(crate) fn retry(&self) {
        self.requests.inc();
        self.tell(RetryEvent::Retry);
    }

    pub(crate) fn success(&self) {
        self.successes.inc();
        self.tell(RetryEvent::Success);
    }

    pub(crate) fn limit_exceeded(&self) {
        self.limit_exceeded.inc();
        self.tell(RetryEvent::LimitExceeded);
    }

    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.inc();
        self.tell(RetryEvent::BudgetExhausted);
    }

    pub(crate) fn deadline_exceeded(&self) {
        self.deadline_exceeded.inc();
        self.tell(RetryEvent::DeadlineExceeded);
    }

    pub(crate) fn not_retryable(&self, reason: NotRetryable) {
        let i = NotRetryable::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        self.not_retryable[i].inc();
        self.tell(RetryEvent::NotRetryable(reason));
    }

    /// Reports `budget`'s balance under this route's service.
    pub(crate) fn observe_budget(&self, budget: &Arc<Budget>) {
        self.budgets.observe(&self.service, budget);
    }
}

/// The balance of every observed budget, read at scrape time.
#[derive(Debug, Default)]
struct BudgetGauges {
    budgets: Mutex<Vec<(Arc<str>, Weak<Budget>)>>,
}

impl BudgetGauges {
    fn observe(&self, service: &str, budget: &Arc<Budget>) {
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        budgets.retain(|(s, b)| b.strong_count() > 0 && &**s != service);
        budgets.push((service.into(), Arc::downgrade(budget)));
    }
}

impl Collector for BudgetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<_> = budgets
            .iter()
            .filter_map(|(service, budget)| Some((service.clone(), budget.upgrade()?)))
            .collect();
        drop(budgets);
        if live.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "retry_budget_balance",
            "Retries the budget allows now.",
            None,
            MetricType::Gauge,
        )?;
        for (service, budget) in live {
            let labels = [("service", &*service)];
            let family = metric.encode_family(&labels)?;
            ConstGauge::new(budget.balance()).encode(family)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::BudgetConfig;

    #[tokio::test(start_paused = true)]
    async fn the_exposition_names_every_series_with_bounded_labels() {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let route = metrics.route("emoji", "get");
        route.retry();
        route.retry();
        route.success();
        route.budget_exhausted();
        route.not_retryable(NotRetryable::NonIdempotent);
        let budget = Arc::new(Budget::new(
            BudgetConfig::new(0.2, 1, std::time::Duration::from_secs(10)).unwrap(),
        ));
        route.observe_budget(&budget);
        route.observe_budget(&budget);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let expected = "\
# HELP retry_requests Retries sent.
# TYPE retry_requests counter
retry_requests_total{service=\"emoji\",route=\"get\"} 2
# HELP retry_successes Requests that succeeded after at least one retry.
# TYPE retry_successes counter
retry_successes_total{service=\"emoji\",route=\"get\"} 1
# HELP retry_limit_exceeded Retryable failures returned because the request used all its attempts.
# TYPE retry_limit_exceeded counter
retry_limit_exceeded_total{service=\"emoji\",route=\"get\"} 0
# HELP retry_budget_exhausted Retryable failures returned because the retry budget was empty.
# TYPE retry_budget_exhausted counter
retry_budget_exhausted_total{service=\"emoji\",route=\"get\"} 1
# HELP retry_deadline_exceeded Retryable failures returned because the request deadline was nearer than the backoff, or passed before the retry could be sent.
# TYPE retry_deadline_exceeded counter
retry_deadline_exceeded_total{service=\"emoji\",route=\"get\"} 0
# HELP retry_not_retryable Retryable failures of requests that could not be retried, by reason.
# TYPE retry_not_retryable counter
";
        assert!(text.starts_with(expected), "{text}");
        let reasons: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("retry_not_retryable_total"))
            .collect();
        assert_eq!(reasons.len(), 6, "every reason is registered at once");
        assert!(reasons.contains(
            &"retry_not_retryable_total{service=\"emoji\",route=\"get\",reason=\"non_idempotent\"} 1"
        ));
        assert!(
            text.ends_with(
                "# HELP retry_budget_balance Retries the budget allows now.\n\
             # TYPE retry_budget_balance gauge\n\
             retry_budget_balance{service=\"emoji\"} 10.0\n\
             # EOF\n"
            ),
            "{text}"
        );

        // A new budget for the service replaces the one before, though
        // that one still lives.
        let reloaded = Arc::new(Budget::new(
            BudgetConfig::new(0.2, 5, std::time::Duration::from_secs(10)).unwrap(),
        ));
        metrics.observe_budget("emoji", &reloaded);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let balances: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("retry_budget_balance{"))
            .collect();
        assert_eq!(balances, ["retry_budget_balance{service=\"emoji\"} 50.0"]);

        drop(reloaded);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            !text.contains("retry_budget_balance{"),
            "a dropped budget is no longer reported"
        );
        drop(budget);
    }

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<(RetryEvent, bool)>>);

    impl RetryObserver for Seen {
        fn observe(&self, event: RetryEvent, grpc: bool) {
            self.0.lock().unwrap().push((event, grpc));
        }
    }

    #[test]
    fn an_observer_is_told_each_event_and_whether_the_call_was_grpc() {
        let mut registry = Registry::default();
        let metrics = RetryMetrics::register(&mut registry);
        let seen = Arc::new(Seen::default());
        let route = metrics.route("emoji", "get").with_observer(seen.clone());
        route.of_call(false).retry();
        route.of_call(true).retry();
        route.of_call(true).success();
        route.of_call(false).budget_exhausted();
        route.of_call(false).limit_exceeded();
        route.of_call(true).not_retryable(NotRetryable::Committed);
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                (RetryEvent::Retry, false),
                (RetryEvent::Retry, true),
                (RetryEvent::Success, true),
                (RetryEvent::BudgetExhausted, false),
                (RetryEvent::LimitExceeded, false),
                (RetryEvent::NotRetryable(NotRetryable::Committed), true),
            ]
        );
        // Both copies count into the route's own series.
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains("retry_requests_total{service=\"emoji\",route=\"get\"} 2\n"));

        // Metrics without an observer tell no one, gRPC calls or not.
        let plain = metrics.route("emoji", "list");
        assert!(std::ptr::eq(plain.of_call(true), &plain));
    }
}
