//! Linkerd's `ServiceProfile`: per-route retries, timeouts and response
//! classes, the service's retry budget, and its traffic split
//! (`dstOverrides`, read in [`dst_overrides`](super::dst_overrides)).

use std::num::NonZeroU32;

use http::Method;
use mesh_core::{
    classify::{Classify, GrpcCodes, StatusRanges},
    resource::{
        ApiVersion, DocumentContext, ObjectMeta, Resource, ResourceError, ResourceErrorKind,
    },
    route::{PathMatch, RouteMatch},
};
use serde::Deserialize;

use super::{BudgetSpec, DstOverride, GoDuration, RouteRetryPolicy, numbers};
use crate::{Backoff, RetryPolicy, Timeouts};

/// A `ServiceProfile` (`linkerd.io/v1alpha2`; `policy.linkerd.io/v1beta1`,
/// as some guides write it, is read the same way).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProfile {
    /// The `apiVersion`.
    pub api_version: ApiVersion,
    /// Always `ServiceProfile`.
    pub kind: String,
    /// The name is the service's fully qualified name, such as
    /// `emoji.emojivoto.svc.cluster.local`.
    pub metadata: ObjectMeta,
    /// The profile.
    #[serde(default)]
    pub spec: ServiceProfileSpec,
}

impl Resource for ServiceProfile {
    const KIND: &'static str = "ServiceProfile";
    const API_VERSIONS: &'static [&'static str] =
        &["linkerd.io/v1alpha2", "policy.linkerd.io/v1beta1"];
}

/// `spec` of a [`ServiceProfile`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProfileSpec {
    /// `routes`, matched in order.
    #[serde(default)]
    pub routes: Vec<ProfileRoute>,
    /// `retryBudget`, in Linkerd's or the Gateway API's spelling.
    #[serde(default)]
    pub retry_budget: Option<BudgetSpec>,
    /// `dstOverrides`: the services every request of the service goes
    /// to instead, by weight; none when empty or when every weight is 0.
    #[serde(default)]
    pub dst_overrides: Vec<DstOverride>,
}

/// A `routes` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRoute {
    /// `name`: the route's metric label.
    pub name: String,
    /// `condition`: which requests are on the route.
    pub condition: RequestCondition,
    /// `responseClasses`: which responses are failures, first match wins.
    #[serde(default)]
    pub response_classes: Vec<ResponseClassSpec>,
    /// `isRetryable`: whether failures are retried, whatever the method.
    /// As in Linkerd, the responses the route's classes call failures are
    /// retried at once, with no backoff, for as long as the service's retry
    /// budget allows: no attempt limit applies. Connection errors are not
    /// retried. A class that matches a gRPC response's status decides
    /// before its `grpc-status`, as in the route's metrics; where none
    /// does, the `grpc-status` is retried when Linkerd's classifier calls
    /// it a failure (`UNKNOWN`, `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`,
    /// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`), and an answer without one
    /// by its HTTP status.
    #[serde(default)]
    pub is_retryable: bool,
    /// `timeout`: the request timeout.
    #[serde(default)]
    pub timeout: Option<GoDuration>,
}

/// A request `condition`. The set fields must all hold.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCondition {
    /// `method`.
    #[serde(default)]
    pub method: Option<String>,
    /// `pathRegex`, matched against the whole path.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// `all`: every condition holds.
    #[serde(default)]
    pub all: Vec<RequestCondition>,
    /// `any`: at least one condition holds.
    #[serde(default)]
    pub any: Vec<RequestCondition>,
    /// `not`: the condition does not hold. Not supported for routes.
    #[serde(default)]
    pub not: Option<Box<RequestCondition>>,
}

/// A `responseClasses` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseClassSpec {
    /// `condition`.
    pub condition: ResponseCondition,
    /// `isFailure`.
    #[serde(default)]
    pub is_failure: bool,
}

/// A response `condition`. The set fields must all hold.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ResponseCondition {
    /// `status`: a range of statuses.
    #[serde(default)]
    pub status: Option<StatusRange>,
    /// `all`.
    #[serde(default)]
    pub all: Vec<ResponseCondition>,
    /// `any`.
    #[serde(default)]
    pub any: Vec<ResponseCondition>,
    /// `not`.
    #[serde(default)]
    pub not: Option<Box<ResponseCondition>>,
}

/// `status` of a response condition, both ends included. Linkerd writes
/// `status: {min, max}`; some guides nest the same bounds under `range`,
/// which is read too, but not beside `min` or `max`. A bound written `0`
/// is unset, as in Linkerd's own types. Loading a profile checks each
/// bound as Linkerd does: within 100 to 599, and `max` not below `min`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusRange {
    /// `min`; 100 when absent or 0.
    #[serde(default, deserialize_with = "numbers::status_bound")]
    pub min: Option<u16>,
    /// `max`; 599 when absent or 0.
    #[serde(default, deserialize_with = "numbers::status_bound")]
    pub max: Option<u16>,
    /// `range: {min, max}`, the nested spelling.
    #[serde(default)]
    pub range: Option<StatusBounds>,
}

/// The bounds of a nested `range`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusBounds {
    /// `min`; 100 when absent or 0.
    #[serde(default, deserialize_with = "numbers::status_bound")]
    pub min: Option<u16>,
    /// `max`; 599 when absent or 0.
    #[serde(default, deserialize_with = "numbers::status_bound")]
    pub max: Option<u16>,
}

/// The statuses a response condition may name, as Linkerd checks them.
const STATUSES: (u16, u16) = (100, 599);

impl StatusRange {
    /// Whether `code` is within the range.
    pub fn contains(&self, code: u16) -> bool {
        let (min, max) = self.bounds();
        (min..=max).contains(&code)
    }

    /// The bounds as written (`range`'s, when it is there), each `None`
    /// when absent or 0, with the field that holds them.
    fn written(&self) -> (&'static str, Option<u16>, Option<u16>) {
        let (field, min, max) = match self.range {
            Some(range) => (".range", range.min, range.max),
            None => ("", self.min, self.max),
        };
        let set = |bound: Option<u16>| bound.filter(|&b| b != 0);
        (field, set(min), set(max))
    }

    fn bounds(&self) -> (u16, u16) {
        let (_, min, max) = self.written();
        (min.unwrap_or(STATUSES.0), max.unwrap_or(STATUSES.1))
    }

    /// Each bound within 100 to 599 and `max` not below `min`, or the
    /// field (relative to `status`) that is not.
    fn check(&self) -> Result<(), ConditionError> {
        // Bounds in both spellings: the nested ones would be read and the
        // others left aside without a word.
        if self.range.is_some() && (self.min.is_some() || self.max.is_some()) {
            return Err((
                ".range".to_owned(),
                "the status range is written both as min and max and under range; write \
                 its bounds once"
                    .to_owned(),
            ));
        }
        let (field, min, max) = self.written();
        for (name, bound) in [("min", min), ("max", max)] {
            if let Some(status) = bound
                && !(STATUSES.0..=STATUSES.1).contains(&status)
            {
                return Err((
                    format!("{field}.{name}"),
                    format!(
                        "status {status} is outside the allowed range {} to {}",
                        STATUSES.0, STATUSES.1
                    ),
                ));
            }
        }
        let (min, max) = self.bounds();
        if min > max {
            return Err((
                field.to_owned(),
                format!("status range {min} to {max} starts after it ends"),
            ));
        }
        Ok(())
    }
}

impl ServiceProfile {
    /// The service the profile is for, from its fully qualified name:
    /// `(emoji, Some(emojivoto))` for `emoji.emojivoto.svc.cluster.local`.
    /// A name outside the cluster domain is the service name as a whole, in
    /// the profile's own namespace.
    pub fn service(&self) -> (String, Option<String>) {
        let name = &self.metadata.name;
        let labels: Vec<&str> = name.split('.').collect();
        match labels.as_slice() {
            [service, namespace, "svc", ..] => {
                ((*service).to_owned(), Some((*namespace).to_owned()))
            }
            _ => (name.clone(), self.metadata.namespace.clone()),
        }
    }

    /// Every route's policy, in order, with the rules its
    /// `responseClasses` classify its responses by when it has any.
    pub(super) fn route_policies(
        &self,
        context: &DocumentContext<'_>,
    ) -> Result<Vec<(RouteRetryPolicy, Option<Classify>)>, ResourceError> {
        self.spec
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| route.policy(context, &format!("spec.routes[{i}]")))
            .collect()
    }
}

impl ProfileRoute {
    fn policy(
        &self,
        context: &DocumentContext<'_>,
        at: &str,
    ) -> Result<(RouteRetryPolicy, Option<Classify>), ResourceError> {
        if self.name.trim().is_empty() {
            return Err(context.error(
                ResourceErrorKind::InvalidValue,
                &format!("{at}.name"),
                "a route needs a name: it labels the route's metrics, and Linkerd refuses a \
                 route without one",
            ));
        }
        let matches = self.condition.route_matches().map_err(|(field, message)| {
            let field = format!("{at}.condition{field}");
            context.error(ResourceErrorKind::InvalidValue, &field, message)
        })?;
        for (i, class) in self.response_classes.iter().enumerate() {
            class.condition.check().map_err(|(field, message)| {
                let field = format!("{at}.responseClasses[{i}].condition{field}");
                context.error(ResourceErrorKind::InvalidValue, &field, message)
            })?;
        }
        // Built once here, at load: a request only reads the sets.
        let classify = Classify::new()
            .with_http_failures(failures(&self.response_classes))
            .with_class_statuses(matched(&self.response_classes));
        let retry = if self.is_retryable {
            // Linkerd retries the responses the profile calls a failure,
            // for as long as the budget has a retry to spare, and at once:
            // its profile retry policy (`linkerd/app/outbound/src/http/retry.rs`
            // in linkerd2-proxy) counts no attempts and waits no backoff, so
            // the budget is the only bound. A limit of three attempts here
            // would return a failure that Linkerd's fourth attempt turns
            // into a success. The same policy reads responses only: a call
            // that failed to connect is not retried (nor, here, the mesh's
            // own 502 for it), which with neither a limit nor a backoff
            // would spend the whole reserve at once on an upstream that
            // refuses connections. That policy judges a response by the
            // classifier of the route's metrics, its classes before any
            // `grpc-status`; so does this one. Where no class matches, that
            // classifier fails a `grpc-status` by the default codes of
            // Linkerd's client policy (`Codes` in
            // `linkerd/proxy/client-policy/src/grpc.rs`: UNKNOWN,
            // DEADLINE_EXCEEDED, PERMISSION_DENIED, INTERNAL, UNAVAILABLE,
            // DATA_LOSS), not by the codes `retry.linkerd.io/grpc` retries,
            // and an answer with no `grpc-status` by its HTTP status.
            RetryPolicy::default()
                .with_any_method(true)
                .with_http_statuses(*classify.http_failures())
                .with_class_statuses(*classify.class_statuses())
                .with_grpc_codes(GrpcCodes::linkerd_failures())
                .with_plain_answers_by_status(true)
                .with_max_attempts(NonZeroU32::MAX)
                .with_backoff(Backoff::none())
                .with_connection_errors(false)
                // Nor an attempt the mesh answered as one no endpoint
                // processed (a stream the upstream refused, a request
                // that failed fast): Linkerd's policy sees their errors,
                // never a response.
                .with_unprocessed(false)
        } else {
            RetryPolicy::never()
        };
        // A route without classes leaves its responses to the reader's
        // rules, as Linkerd's default classifier takes them.
        let classes = (!self.response_classes.is_empty()).then(|| classify.clone());
        let policy = RouteRetryPolicy {
            name: self.name.as_str().into(),
            matches,
            retry: retry.with_classify(classify),
            timeouts: Timeouts {
                request: self.timeout.map(GoDuration::get).filter(|d| !d.is_zero()),
                ..Timeouts::default()
            },
            backends: Vec::new(),
            request_headers: Default::default(),
            response_headers: Default::default(),
        };
        Ok((policy, classes))
    }
}

/// The failure statuses of a route: each status takes the class of the
/// first response class that matches it, and 5xx is a failure when none
/// does, as in Linkerd.
fn failures(classes: &[ResponseClassSpec]) -> StatusRanges {
    (100..=999_u16)
        .filter(|&code| {
            classes
                .iter()
                .find(|class| class.condition.matches(code))
                .map_or((500..=599).contains(&code), |class| class.is_failure)
        })
        .filter_map(|code| http::StatusCode::from_u16(code).ok())
        .fold(StatusRanges::empty(), StatusRanges::with_status)
}

/// The statuses some class of a route matches, which its classes decide
/// before any `grpc-status` (mesh-core's `Classify::with_class_statuses`):
/// Linkerd's profile classifier tries a route's classes on the response
/// head first, and only a response none matches is left to its
/// `grpc-status`. Every status a response can carry, 100 to 999, is
/// tried, as [`failures`] tries them: a `not` condition matches statuses
/// past 599 too.
fn matched(classes: &[ResponseClassSpec]) -> StatusRanges {
    (100..=999_u16)
        .filter(|&code| classes.iter().any(|class| class.condition.matches(code)))
        .filter_map(|code| http::StatusCode::from_u16(code).ok())
        .fold(StatusRanges::empty(), StatusRanges::with_status)
}

impl ResponseCondition {
    /// Every status range in the condition, checked; or the first field
    /// (relative to the condition, such as `.all[1].status.min`) that is
    /// wrong.
    fn check(&self) -> Result<(), ConditionError> {
        if self.status.is_none() && self.all.is_empty() && self.any.is_empty() && self.not.is_none()
        {
            return Err((
                String::new(),
                "the condition sets none of status, all, any or not, and would hold for every \
                 response, a 200 as well; Linkerd refuses it too"
                    .into(),
            ));
        }
        let within = |at: String| move |(field, message)| (format!("{at}{field}"), message);
        if let Some(status) = &self.status {
            status.check().map_err(within(".status".into()))?;
        }
        for (i, condition) in self.all.iter().enumerate() {
            condition.check().map_err(within(format!(".all[{i}]")))?;
        }
        for (i, condition) in self.any.iter().enumerate() {
            condition.check().map_err(within(format!(".any[{i}]")))?;
        }
        if let Some(condition) = &self.not {
            condition.check().map_err(within(".not".into()))?;
        }
        Ok(())
    }

    fn matches(&self, code: u16) -> bool {
        self.status.is_none_or(|range| range.contains(code))
            && self.all.iter().all(|c| c.matches(code))
            && (self.any.is_empty() || self.any.iter().any(|c| c.matches(code)))
            && self.not.as_ref().is_none_or(|c| !c.matches(code))
    }
}

/// A field (relative to the condition, such as `.all[1].pathRegex`) and
/// what is wrong with it.
type ConditionError = (String, String);

impl RequestCondition {
    /// The condition as route matches, any of which may hold: `any` becomes
    /// several matches, `all` merges its conditions into each.
    fn route_matches(&self) -> Result<Vec<RouteMatch>, ConditionError> {
        if self.method.is_none()
            && self.path_regex.is_none()
            && self.all.is_empty()
            && self.any.is_empty()
            && self.not.is_none()
        {
            return Err((
                String::new(),
                "the condition sets none of method, pathRegex, all, any or not, and would hold \
                 for every request; Linkerd refuses it too"
                    .into(),
            ));
        }
        if self.not.is_some() {
            return Err((
                ".not".into(),
                "`not` conditions are not supported on routes; use method and pathRegex".into(),
            ));
        }
        let mut matches = vec![RouteMatch::new()];
        if let Some(method) = &self.method {
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| (".method".to_owned(), format!("invalid method {method:?}")))?;
            matches = merge(&matches, &[RouteMatch::new().with_method(method)], "")?;
        }
        if let Some(regex) = &self.path_regex {
            let path =
                PathMatch::regex(regex).map_err(|e| (".pathRegex".to_owned(), e.to_string()))?;
            matches = merge(&matches, &[RouteMatch::new().with_path(path)], "")?;
        }
        for (i, condition) in self.all.iter().enumerate() {
            let at = format!(".all[{i}]");
            let inner = condition
                .route_matches()
                .map_err(|(field, message)| (format!("{at}{field}"), message))?;
            matches = merge(&matches, &inner, &at)?;
        }
        if !self.any.is_empty() {
            let mut alternatives = Vec::new();
            for (i, condition) in self.any.iter().enumerate() {
                let inner = condition
                    .route_matches()
                    .map_err(|(field, message)| (format!(".any[{i}]{field}"), message))?;
                alternatives.extend(inner);
            }
            matches = merge(&matches, &alternatives, ".any")?;
        }
        Ok(matches)
    }
}

/// Every pairing of a match of `left` with one of `right`, as one match
/// that requires both. Two conditions on the path, or two methods, cannot
/// be combined into one match.
fn merge(
    left: &[RouteMatch],
    right: &[RouteMatch],
    at: &str,
) -> Result<Vec<RouteMatch>, ConditionError> {
    let mut merged = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            let mut m = l.clone();
            match (l.path(), r.path()) {
                (Some(_), Some(_)) => return Err(conflict(at, "path")),
                (None, Some(path)) => m = m.with_path(path.clone()),
                _ => {}
            }
            match (l.method(), r.method()) {
                (Some(a), Some(b)) if a != b => return Err(conflict(at, "method")),
                (None, Some(method)) => m = m.with_method(method.clone()),
                _ => {}
            }
            merged.push(m);
        }
    }
    Ok(merged)
}

fn conflict(at: &str, what: &str) -> ConditionError {
    (
        at.to_owned(),
        format!(
            "the conditions combine two {what} conditions into one route, which is not supported"
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::StatusCode;
    use mesh_core::classify::StatusRanges;

    use super::{super::load, ResponseClassSpec, matched};

    /// The classes of `yaml`, a `responseClasses` list.
    fn classes(yaml: &str) -> Vec<ResponseClassSpec> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn statuses(ranges: &str) -> StatusRanges {
        ranges.parse().unwrap()
    }

    #[test]
    fn matched_holds_the_statuses_some_class_matches_whatever_its_verdict() {
        // Successes and failures alike: a class decides either way.
        let two = classes(
            "- {condition: {status: {min: 200, max: 299}}, isFailure: false}
- {condition: {status: {min: 503, max: 503}}, isFailure: true}",
        );
        assert_eq!(matched(&two), statuses("200-299,503"));
        // A bound left out or written 0 is 100 or 599.
        let open = classes(
            "- {condition: {status: {max: 199}}}\n- {condition: {status: {min: 0, max: 0}}}",
        );
        assert_eq!(matched(&open[..1]), statuses("100-199"));
        assert_eq!(matched(&open[1..]), statuses("100-599"));
        // No classes: nothing is decided before the grpc-status.
        assert!(matched(&[]).is_empty());
    }

    #[test]
    fn matched_reads_any_all_and_not_as_the_classes_are_evaluated() {
        let any = classes(
            "- condition:
    any:
    - status: {min: 200, max: 201}
    - status: {min: 429, max: 429}",
        );
        assert_eq!(matched(&any), statuses("200-201,429"));
        let all = classes(
            "- condition:
    all:
    - status: {min: 500, max: 599}
    - status: {min: 502, max: 504}",
        );
        assert_eq!(matched(&all), statuses("502-504"));
        // `not` matches every status outside its range, past 599 too.
        let not = classes(
            "- condition:
    not: {status: {min: 200, max: 499}}",
        );
        assert_eq!(matched(&not), statuses("100-199,500-999"));
        // Combined: 5xx but 503, and the range's own status beside them.
        let both = classes(
            "- condition:
    status: {min: 500, max: 599}
    not: {status: {min: 503, max: 503}}
- condition:
    any:
    - all:
      - status: {min: 400}
      - not: {status: {min: 405}}",
        );
        assert_eq!(matched(&both), statuses("400-404,500-502,504-599"));
    }

    #[test]
    fn a_routes_classes_decide_before_the_grpc_status_in_its_metrics_and_its_retries() {
        let retryable = PROFILE.replace(
            "condition: {method: GET}\n",
            "condition: {method: GET}\n    isRetryable: true\n",
        );
        assert_ne!(retryable, PROFILE);
        let profile = load("a.yaml", &retryable).unwrap();
        let service = &profile.services[0];
        let at = |name: &str| {
            service
                .routes
                .iter()
                .position(|r| &*r.name == name)
                .unwrap()
        };
        let classes = service.response_classes(at("classes")).unwrap();
        assert_eq!(classes.class_statuses(), &statuses("404,500"));
        let retry = &service.routes[at("classes")].retry;
        assert_eq!(retry.class_statuses(), &statuses("404,500"));
        // A route without classes leaves every status to the grpc-status.
        assert!(service.routes[at("none")].retry.class_statuses().is_empty());
    }

    const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local}
spec:
  routes:
  - name: classes
    condition: {method: GET}
    responseClasses:
    - condition: {status: {min: 500, max: 500}}
      isFailure: false
    - condition: {status: {min: 404, max: 404}}
      isFailure: true
  - name: none
    condition: {method: POST}
";

    #[test]
    fn a_routes_response_classes_are_kept_by_route_and_through_a_merge() {
        let profile = load("a.yaml", PROFILE).unwrap();
        // The HTTPRoute's rule first: the profile's routes come after it.
        let mut merged = load(
            "b.yaml",
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
",
        )
        .unwrap();
        merged.merge(profile.clone());
        for (resources, count) in [(profile, 2), (merged, 3)] {
            let service = resources
                .services
                .iter()
                .find(|s| s.routes.iter().any(|r| &*r.name == "classes"))
                .unwrap();
            assert_eq!(service.routes.len(), count, "{service:?}");
            let at = |name: &str| service.routes.iter().position(|r| &*r.name == name);
            let classes = service.response_classes(at("classes").unwrap()).unwrap();
            assert!(
                classes
                    .classify_status(StatusCode::INTERNAL_SERVER_ERROR)
                    .is_success()
            );
            assert!(classes.classify_status(StatusCode::NOT_FOUND).is_failure());
            assert!(
                classes
                    .classify_status(StatusCode::BAD_GATEWAY)
                    .is_failure()
            );
            assert!(service.response_classes(at("none").unwrap()).is_none());
            for (i, route) in service.routes.iter().enumerate() {
                if !["classes", "none"].contains(&&*route.name) {
                    assert!(service.response_classes(i).is_none());
                }
            }
        }
    }
}
