//! An `HTTPRoute` rule's retries and timeouts.

use std::{collections::BTreeMap, num::NonZeroU32, time::Duration};

use mesh_core::{
    classify::{GrpcCodes, StatusRanges},
    resource::{
        DocumentContext, GatewayDuration, HttpRoute, HttpRouteFilter, HttpRouteRule, ResourceError,
        ResourceErrorKind,
    },
    route::Redirect,
};
use serde::Deserialize;

use super::{
    BackendKind, ConfigWarning, GoDuration, LinkerdAnnotations, RouteBackend, RouteRetryPolicy,
};
use crate::{Backoff, RetryPolicy, Timeouts};

/// What the `HTTPRoute` model leaves out and this reader needs: the
/// route's `metadata.creationTimestamp`, which orders its matches among
/// other routes' ([`precedence`](super::precedence)); whether
/// `spec.rules` is written at all, which the model reads as the CRD's
/// default rule when it is absent or `null` ([`Rules`]); and a rule's
/// `retries: {numRetries, timeout}`, which the Gateway API does not define
/// but some guides write, read as `retry.attempts` and
/// `timeouts.backendRequest`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct Unmodelled {
    #[serde(default)]
    metadata: UnmodelledMeta,
    #[serde(default)]
    spec: GuideSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnmodelledMeta {
    #[serde(default)]
    creation_timestamp: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct GuideSpec {
    /// `None` when absent or `null`.
    #[serde(default)]
    rules: Option<Vec<GuideRule>>,
}

/// How a route's `spec.rules` is written, which decides what a route
/// without rules takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rules {
    /// At least one rule.
    Written,
    /// Absent or `null`: the cluster stores the CRD's default in its place.
    Absent,
    /// `[]`: kept as written, as the API server defaults only an absent
    /// (or `null`) field.
    Empty,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct GuideRule {
    #[serde(default)]
    retries: Option<GuideRetry>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuideRetry {
    #[serde(default, deserialize_with = "mesh_core::resource::retry_count")]
    num_retries: Option<u32>,
    #[serde(default)]
    timeout: Option<GoDuration>,
}

impl Unmodelled {
    /// The route's `metadata.creationTimestamp`, as written.
    pub(super) fn created(&self) -> Option<&str> {
        self.metadata.creation_timestamp.as_deref()
    }

    /// Whether rule `index` has a `retries` block.
    pub(super) fn has(&self, index: usize) -> bool {
        self.rule(index).is_some()
    }

    /// How `spec.rules` is written.
    pub(super) fn rules(&self) -> Rules {
        match &self.spec.rules {
            None => Rules::Absent,
            Some(rules) if rules.is_empty() => Rules::Empty,
            Some(_) => Rules::Written,
        }
    }

    fn rule(&self, index: usize) -> Option<GuideRetry> {
        self.spec
            .rules
            .as_ref()
            .and_then(|rules| rules.get(index))
            .and_then(|r| r.retries)
    }
}

/// Whether `route` holds the rule the Gateway API gives an `HTTPRoute`
/// written without `rules`, which is then named `spec.rules` rather than
/// `spec.rules[0]`; gives it that rule if it has none.
///
/// The `HTTPRoute` CRD defaults `spec.rules` to
/// `[{matches: [{path: {type: PathPrefix, value: /}}]}]` (the
/// `+kubebuilder:default` of `HTTPRouteSpec.Rules` in
/// `apis/v1/httproute_types.go`, kubernetes-sigs/gateway-api), so the API
/// server stores a route written without `rules`, or with `rules: null`,
/// with one rule taking every request of its parents, and Linkerd's policy
/// controller serves it so. The model reads it so: one rule whose one
/// match is the path prefix `/`, which matches every request; it has no
/// filters, timeouts, retries or backends of its own, so its requests go
/// to the parent, under the route's annotations, and it is named as any
/// rule is (metrics label it with the route's name).
///
/// Two routes without rules are not defaulted, and a warning says that
/// they take no requests. An `HTTPRoute` with `rules: []`: the API server
/// defaults an absent or `null` field only, and the CRD sets no minimum
/// number of rules. A `GRPCRoute`: its CRD has no default for `rules` and
/// no minimum either (`GRPCRouteSpec.Rules` in `apis/v1/grpcroute_types.go`),
/// and Linkerd's policy controller serves such a route without rules.
pub(super) fn default_rules(
    route: &mut HttpRoute,
    guide: &Unmodelled,
    context: &DocumentContext<'_>,
    grpc: bool,
    warnings: &mut Vec<ConfigWarning>,
) -> bool {
    let message = match (grpc, guide.rules()) {
        // The model reads an absent or `null` `rules` as the CRD's default
        // rule already; it is given here only to a route built otherwise.
        (false, Rules::Absent)
            if route.spec.rules.is_empty()
                || route.spec.rules == [HttpRouteRule::crd_default()] =>
        {
            if route.spec.rules.is_empty() {
                route.spec.rules.push(HttpRouteRule::crd_default());
            }
            return true;
        }
        _ if !route.spec.rules.is_empty() => return false,
        (false, _) => {
            "spec.rules is an empty list, so the route takes no requests: the Gateway API gives \
             one rule taking every request to an HTTPRoute written without rules (or with \
             rules: null), not to one with an empty list"
        }
        (true, _) => {
            "the GRPCRoute has no rules, so it takes no calls: the Gateway API gives an \
             HTTPRoute without rules one rule taking every request, but a GRPCRoute none"
        }
    };
    warnings.push(ConfigWarning::new(
        context,
        "spec.rules".to_owned(),
        message.to_owned(),
    ));
    false
}

/// Every rule of `route` as a policy, in order, each with its redirect,
/// with warnings for what the rules hold that is not applied. `grpc` says
/// the route is the `HTTPRoute` a `GRPCRoute` amounts to.
pub(super) fn rule_policies(
    route: &HttpRoute,
    guide: &Unmodelled,
    context: &DocumentContext<'_>,
    grpc: bool,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<(RouteRetryPolicy, Option<Redirect>)>, ResourceError> {
    let without_other;
    let written = match other_kinds_retry(&route.metadata.annotations, grpc) {
        Some((key, message)) => {
            warnings.push(ConfigWarning::new(
                context,
                format!("metadata.annotations.{key}"),
                message,
            ));
            let mut kept = route.metadata.annotations.clone();
            kept.remove(key);
            without_other = kept;
            &without_other
        }
        None => &route.metadata.annotations,
    };
    let annotations = LinkerdAnnotations::parse(written).map_err(|e| {
        context.error(
            ResourceErrorKind::InvalidValue,
            &format!("metadata.annotations.{}", e.key),
            e.message,
        )
    })?;
    for key in &annotations.unknown {
        let message = match key.as_str() {
            // Linkerd's own annotation, "the maximum amount of time a
            // backend response may be in-flight" in its docs; no timeout
            // here bounds that span alone, so it is named, not read as
            // another.
            "timeout.linkerd.io/response" => format!(
                "Linkerd's response timeout is not supported, and {key} is ignored; bound \
                 each attempt with timeouts.backendRequest (or retry.linkerd.io/timeout), or \
                 the whole request with timeouts.request (or timeout.linkerd.io/request)"
            ),
            _ => format!("unknown annotation {key} is ignored"),
        };
        warnings.push(ConfigWarning::new(
            context,
            format!("metadata.annotations.{key}"),
            message,
        ));
    }
    let matches = route.rule_matches().map_err(|e| context.match_error(e))?;
    route
        .spec
        .rules
        .iter()
        .zip(matches)
        .enumerate()
        .map(|(i, (rule, matches))| {
            let at = format!("spec.rules[{i}]");
            let filters = rule
                .route_filters(&matches)
                .map_err(|e| context.filter_error(e.within(&at)))?;
            warn_unsupported_filters(rule, context, &at, warnings);
            let name = rule.name.as_deref().unwrap_or(&route.metadata.name);
            let policy = RouteRetryPolicy {
                name: name.into(),
                matches,
                retry: retry_policy(rule, guide.rule(i), &annotations, grpc, context, &at)?,
                timeouts: timeouts(rule, guide.rule(i), &annotations, context, &at, warnings)?,
                backends: backends(
                    rule,
                    route.metadata.namespace.as_deref(),
                    context,
                    &at,
                    warnings,
                )?,
                request_headers: filters.request_headers,
                response_headers: filters.response_headers,
            };
            Ok((policy, filters.redirect))
        })
        .collect()
}

/// The retry annotation of the other kind of route, if `annotations` hold
/// it, with the warning that it is ignored: Linkerd's policy controller
/// reads `retry.linkerd.io/http` on an `HTTPRoute` only and
/// `retry.linkerd.io/grpc` on a `GRPCRoute` only (its retries reference
/// calls each "not valid" on the other kind), and its proxy retries an
/// `HTTPRoute`'s requests on HTTP statuses alone and a `GRPCRoute`'s calls
/// on gRPC codes alone. Read here, it would turn retries on that a Linkerd
/// user would not get.
fn other_kinds_retry(
    annotations: &BTreeMap<String, String>,
    grpc: bool,
) -> Option<(&'static str, String)> {
    let (key, kind, reads_it, own, retried) = if grpc {
        (
            "retry.linkerd.io/http",
            "a GRPCRoute",
            "HTTPRoutes",
            "retry.linkerd.io/grpc",
            "calls on the gRPC codes",
        )
    } else {
        (
            "retry.linkerd.io/grpc",
            "an HTTPRoute",
            "GRPCRoutes",
            "retry.linkerd.io/http",
            "requests on the HTTP statuses",
        )
    };
    annotations.contains_key(key).then(|| {
        (
            key,
            format!(
                "{key} is ignored on {kind}: Linkerd reads it on {reads_it} only, and retries \
                 {kind}'s {retried} of {own}"
            ),
        )
    })
}

/// The rule's retry policy. Fields of the rule win over the route's
/// annotations; a rule with neither retries nothing. The calls of a
/// `GRPCRoute` (`grpc`), all POSTs, are retried whenever retries are on,
/// as Linkerd retries a `GRPCRoute`'s calls without a
/// `retry.linkerd.io/grpc`, and on gRPC codes only: linkerd2-proxy gives
/// a gRPC route's retries no HTTP statuses (`retryable_http_statuses:
/// None` in `linkerd/app/outbound/src/http/logical/policy/route/extensions.rs`),
/// so a call answered with an HTTP 5xx and no `grpc-status` is not sent
/// again. An `HTTPRoute`'s retries, the other way about, have no gRPC
/// codes (`retryable_grpc_statuses: None` there).
fn retry_policy(
    rule: &HttpRouteRule,
    guide: Option<GuideRetry>,
    annotations: &LinkerdAnnotations,
    grpc: bool,
    context: &DocumentContext<'_>,
    at: &str,
) -> Result<RetryPolicy, ResourceError> {
    let gateway = rule.retry.as_ref();
    if gateway.is_none() && guide.is_none() && !annotations.retries() {
        return Ok(RetryPolicy::never());
    }
    let zero = |field: &str| {
        context.error(
            ResourceErrorKind::InvalidValue,
            &format!("{at}.{field}"),
            "attempts must be at least 1: a rule that should not retry has no retry block",
        )
    };
    let mut policy = RetryPolicy::default();
    if let Some(http) = annotations.http {
        policy = policy.with_http_statuses(http);
    }
    if let Some(codes) = annotations.grpc {
        policy = policy.with_grpc_codes(codes);
    }
    policy = if grpc {
        // The route's calls, all POSTs, may be repeated, on their gRPC
        // codes alone.
        policy
            .with_grpc_requests(true)
            .with_http_statuses(StatusRanges::empty())
    } else {
        // An HTTPRoute's requests, on their HTTP statuses alone.
        policy.with_grpc_codes(GrpcCodes::empty())
    };
    // Annotations that turn retries on without a limit get Linkerd's.
    let mut retries = annotations
        .limit
        .or(annotations
            .retries()
            .then_some(LinkerdAnnotations::DEFAULT_LIMIT))
        .map(NonZeroU32::get);
    if let Some(guide) = guide {
        retries = match guide.num_retries {
            Some(0) => return Err(zero("retries.numRetries")),
            Some(n) => Some(n),
            None => retries,
        };
    }
    if let Some(gateway) = gateway {
        retries = match gateway.attempts {
            Some(0) => return Err(zero("retry.attempts")),
            Some(n) => Some(n),
            None => retries,
        };
        if !gateway.codes.is_empty() {
            policy = policy.with_http_statuses(codes(&gateway.codes, context, at)?);
        }
        if let Some(base) = gateway.backoff.map(GatewayDuration::get) {
            // A minimum wait (GEP-1731): no retry comes sooner, whatever
            // the jitter.
            let max = base.max(Backoff::default().max());
            policy = policy.with_backoff(Backoff::at_least(base, max).unwrap_or_default());
        }
    }
    if let Some(attempts) = retries.and_then(|r| NonZeroU32::new(r.saturating_add(1))) {
        policy = policy.with_max_attempts(attempts);
    }
    Ok(policy)
}

/// Warns about each filter of the rule that outbound routes do not apply:
/// any but the header modifiers and `RequestRedirect`.
fn warn_unsupported_filters(
    rule: &HttpRouteRule,
    context: &DocumentContext<'_>,
    at: &str,
    warnings: &mut Vec<ConfigWarning>,
) {
    for (j, filter) in rule.filters.iter().enumerate() {
        if let HttpRouteFilter::Unsupported { type_name } = filter {
            warnings.push(ConfigWarning::new(
                context,
                format!("{at}.filters[{j}]"),
                format!("{type_name} filters are not supported; the rule applies without it"),
            ));
        }
    }
}

/// The rule's `backendRefs`, checked: each a `Service` or an
/// `EgressNetwork` (the original destination, which the reader checks
/// against each parent of the route), each weight within the Gateway
/// API's limit.
///
/// A rule whose backends all have weight 0 is valid, and kept with its
/// backends: the Gateway API's `BackendRef.weight` sends no traffic to a
/// weight of 0, and its `HTTPRouteRule.backendRefs` has the requests a
/// rule cannot forward answered with a 500 (`apis/v1/httproute_types.go`,
/// `apis/v1/shared_types.go` in kubernetes-sigs/gateway-api), which is
/// what the sidecar does with them. It is most likely a mistake, or a
/// service drained on purpose, so a warning names it.
fn backends(
    rule: &HttpRouteRule,
    namespace: Option<&str>,
    context: &DocumentContext<'_>,
    at: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<RouteBackend>, ResourceError> {
    let backends = rule
        .backend_refs
        .iter()
        .enumerate()
        .map(|(j, backend)| {
            let kind = BackendKind::of(backend, context, || format!("{at}.backendRefs[{j}]"))?;
            // The reader refused a weight above MAX_BACKEND_WEIGHT.
            Ok(RouteBackend {
                name: backend.name.clone(),
                namespace: backend
                    .namespace
                    .as_deref()
                    .or(namespace)
                    .map(str::to_owned),
                weight: backend.weight.unwrap_or(1),
                kind,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !backends.is_empty() && backends.iter().all(|b| b.weight == 0) {
        warnings.push(ConfigWarning::new(
            context,
            format!("{at}.backendRefs"),
            "every backend has weight 0: the rule's requests are answered 500".into(),
        ));
    }
    Ok(backends)
}

/// The statuses `retry.codes` may name: the Gateway API's
/// `HTTPRouteRetryStatusCode` is 400 to 599. A success or a redirect
/// retried would repeat a request that worked.
const RETRY_CODES: (u16, u16) = (400, 599);

/// `retry.codes` as a status set.
fn codes(
    codes: &[u16],
    context: &DocumentContext<'_>,
    at: &str,
) -> Result<StatusRanges, ResourceError> {
    codes
        .iter()
        .enumerate()
        .try_fold(StatusRanges::empty(), |set, (i, &code)| {
            let invalid = |message: String| {
                let field = format!("{at}.retry.codes[{i}]");
                context.error(ResourceErrorKind::InvalidValue, &field, message)
            };
            let (min, max) = RETRY_CODES;
            if !(min..=max).contains(&code) {
                return Err(invalid(format!(
                    "http status {code} is outside the allowed range {min} to {max}"
                )));
            }
            set.with_range(code..=code)
                .map_err(|e| invalid(e.to_string()))
        })
}

/// The rule's timeouts. `timeouts.request: 0s` turns the request timeout
/// off, as GEP-1742 says.
///
/// The route's `timeout.linkerd.io/request` wins over the rule's
/// `timeouts.request`, with a warning naming the field it overrides:
/// Linkerd's policy controller reads the rule's field only when the
/// annotation is absent (`timeouts.request.or_else(..)` in linkerd2's
/// `policy-controller/k8s/index/src/outbound/index/http.rs`), so a route
/// written for Linkerd with both gets the annotation's timeout there. The
/// other timeouts of a rule win over the annotations: Linkerd does not
/// read `backendRequest` at all.
///
/// # Errors
///
/// A `timeouts.backendRequest` longer than a non-zero `timeouts.request`,
/// which the Gateway API refuses: no attempt could use it.
fn timeouts(
    rule: &HttpRouteRule,
    guide: Option<GuideRetry>,
    annotations: &LinkerdAnnotations,
    context: &DocumentContext<'_>,
    at: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Timeouts, ResourceError> {
    let gateway = rule.timeouts.unwrap_or_default();
    if let (Some(request), Some(backend)) = (gateway.request, gateway.backend_request)
        && !request.is_zero()
        && backend.get() > request.get()
    {
        return Err(context.error(
            ResourceErrorKind::InvalidValue,
            &format!("{at}.timeouts.backendRequest"),
            format!(
                "backendRequest timeout {:?} cannot be longer than the request timeout {:?}",
                backend.get(),
                request.get()
            ),
        ));
    }
    if let (Some(annotation), Some(field)) = (annotations.request, gateway.request) {
        warnings.push(ConfigWarning::new(
            context,
            format!("{at}.timeouts.request"),
            format!(
                "timeouts.request ({:?}) is overridden by the route's \
                 timeout.linkerd.io/request ({annotation:?}), which wins as in Linkerd",
                field.get()
            ),
        ));
    }
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    Ok(Timeouts {
        request: annotations
            .request
            .or(gateway.request.map(GatewayDuration::get))
            .and_then(nonzero),
        per_try: gateway
            .backend_request
            .map(GatewayDuration::get)
            .or(guide.and_then(|g| g.timeout).map(GoDuration::get))
            .or(annotations.per_try)
            .and_then(nonzero),
        idle: annotations.idle.and_then(nonzero),
    })
}
