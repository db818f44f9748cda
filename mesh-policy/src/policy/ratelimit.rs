//! Compiling `HTTPLocalRateLimitPolicy` resources into each Server's
//! limits, checked as Linkerd's admission webhook checks them.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc};

use mesh_core::{
    Identity,
    resource::{POLICY_GROUP, ResourceError, ResourceErrorKind as Kind},
};

use super::refs::{
    CORE_GROUP, check_group, dangling, find, known_kind, ns, ref_namespace, service_account,
};
use crate::{
    PolicyMetrics, Workload,
    metrics::{ByTls, RateLimitLabels},
    ratelimit::{self, Counters, LocalRateLimit, Override},
    resource::{Entry, HttpLocalRateLimitPolicy, PortRef, Resources, read::error},
    warnings::{PolicyWarnings, WarningKind},
};

/// A policy's limits, before a Server of the workload takes them.
#[derive(Debug)]
pub(super) struct RateLimitSpec {
    name: Arc<str>,
    /// The number of the port the targeted Server covers, which is the
    /// port of every request the limit sees: `srv_port`.
    port: Option<u16>,
    total: Option<NonZeroU32>,
    identity: Option<NonZeroU32>,
    /// With each entry's place in `spec.overrides`.
    overrides: Vec<(usize, NonZeroU32, Vec<Identity>)>,
}

impl RateLimitSpec {
    /// The limits with fresh state and `server`'s counters.
    pub(super) fn build(&self, server: &Arc<str>, metrics: &PolicyMetrics) -> LocalRateLimit {
        let counters = |scope| {
            ByTls::resolve(&metrics.http_ratelimit, |tls| RateLimitLabels {
                srv_name: server.clone(),
                srv_port: self.port,
                ratelimit_name: self.name.clone(),
                ratelimit_scope: scope,
                tls,
            })
        };
        LocalRateLimit::new(
            self.name.clone(),
            self.total,
            self.identity.map(|rps| (rps, ratelimit::DEFAULT_CAPACITY)),
            self.overrides
                .iter()
                .map(|(index, rps, clients)| Override::new(*index, clients, *rps))
                .collect(),
            Counters {
                total: counters("total"),
                identity: counters("identity"),
            },
        )
    }
}

/// Every policy's limits, by the index of the Server it targets.
pub(super) fn rate_limits(
    r: &Resources<'_>,
    workload: &Workload,
    warnings: &mut PolicyWarnings,
) -> Result<HashMap<usize, RateLimitSpec>, ResourceError> {
    let mut by_server: HashMap<usize, (RateLimitSpec, &Entry<'_, HttpLocalRateLimitPolicy>)> =
        HashMap::new();
    for entry in &r.rate_limits {
        let HttpLocalRateLimitPolicy { metadata, spec, .. } = &entry.value;
        let namespace = ns(metadata, workload);
        let t = &spec.target_ref;
        if known_kind(&t.kind, &["Server"]).is_none() {
            return Err(error(
                entry,
                Kind::InvalidValue,
                "spec.targetRef.kind",
                format!("cannot target kind {}: expected Server", t.kind),
            ));
        }
        if ref_namespace(t.namespace.as_deref(), namespace) != namespace {
            return Err(error(
                entry,
                Kind::InvalidValue,
                "spec.targetRef.namespace",
                format!("a policy in namespace {namespace} may only target a Server in it"),
            ));
        }
        check_group(
            entry,
            "spec.targetRef.group",
            "Server",
            t.group.as_deref(),
            &[POLICY_GROUP],
        )?;
        let server = find(&r.servers, |s| &s.metadata, namespace, &t.name, workload)
            .ok_or_else(|| dangling(entry, "spec.targetRef.name", "Server", &t.name, namespace))?;
        let target = r.servers.get(server).map(|s| &s.value.spec);
        // A named port is resolved as the Server's own is; one the
        // workload lacks leaves the Server covering nothing.
        let port = target.and_then(|t| match &t.port {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(name) => workload.ports.get(name).copied(),
        });
        if let Some(target) = target
            && target.proxy_protocol.is_opaque()
        {
            warnings.about(
                WarningKind::NotApplied,
                &entry.context,
                "spec.targetRef.name",
                format!(
                    "Server {} is {}: its connections are not HTTP, so no request is limited",
                    t.name, target.proxy_protocol
                ),
            );
        }

        let total = spec
            .total
            .map(|l| rate(entry, "spec.total.requestsPerSecond", l.requests_per_second))
            .transpose()?;
        let identity = spec
            .identity
            .map(|l| {
                rate(
                    entry,
                    "spec.identity.requestsPerSecond",
                    l.requests_per_second,
                )
            })
            .transpose()?;
        at_most_total(entry, "spec.identity.requestsPerSecond", identity, total)?;
        let mut overrides = Vec::new();
        for (i, o) in spec.overrides.iter().enumerate() {
            let path = format!("spec.overrides[{i}]");
            let rps = rate(
                entry,
                &format!("{path}.requestsPerSecond"),
                o.requests_per_second,
            )?;
            at_most_total(
                entry,
                &format!("{path}.requestsPerSecond"),
                Some(rps),
                total,
            )?;
            let mut clients = Vec::new();
            for (j, c) in o.client_refs.iter().enumerate() {
                let path = format!("{path}.clientRefs[{j}]");
                if known_kind(&c.kind, &["ServiceAccount"]).is_none() {
                    return Err(error(
                        entry,
                        Kind::InvalidValue,
                        &format!("{path}.kind"),
                        format!("cannot refer to kind {}: expected ServiceAccount", c.kind),
                    ));
                }
                check_group(
                    entry,
                    &format!("{path}.group"),
                    &c.kind,
                    c.group.as_deref(),
                    &[CORE_GROUP],
                )?;
                let in_namespace = ref_namespace(c.namespace.as_deref(), namespace);
                let ids = service_account(entry, workload, &c.name, in_namespace, &path)?;
                clients.extend(ids);
            }
            if clients.is_empty() {
                warnings.about(
                    WarningKind::NotApplied,
                    &entry.context,
                    &format!("{path}.clientRefs"),
                    "names no client, so this override limits nothing",
                );
                continue;
            }
            overrides.push((i, rps, clients));
        }
        if total.is_none() && identity.is_none() && overrides.is_empty() {
            warnings.about(
                WarningKind::NotApplied,
                &entry.context,
                "spec",
                "sets no total, identity or override limit, so it limits nothing",
            );
        }
        let spec = RateLimitSpec {
            name: metadata.name.as_str().into(),
            port,
            total,
            identity,
            overrides,
        };
        if let Some((_, first)) = by_server.get(&server) {
            let first = &first.context;
            return Err(error(
                entry,
                Kind::Conflict,
                "spec.targetRef.name",
                format!(
                    "Server {} in namespace {namespace} is already limited by HTTPLocalRateLimitPolicy {} ({} document {})",
                    t.name,
                    first.name().unwrap_or_default(),
                    first.origin(),
                    first.index()
                ),
            ));
        }
        by_server.insert(server, (spec, entry));
    }
    Ok(by_server
        .into_iter()
        .map(|(server, (spec, _))| (server, spec))
        .collect())
}

/// A `requestsPerSecond`: 1 to `u32::MAX`, as Linkerd's CRD and webhook
/// accept.
fn rate<T>(entry: &Entry<'_, T>, path: &str, value: i64) -> Result<NonZeroU32, ResourceError> {
    u32::try_from(value)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            let why = if value <= 0 {
                format!("{value} requests per second: must be greater than 0")
            } else {
                format!("{value} requests per second: must be at most {}", u32::MAX)
            };
            error(entry, Kind::InvalidValue, path, why)
        })
}

/// Linkerd's webhook rejects an identity or override rate above the
/// total: no client could reach it.
fn at_most_total<T>(
    entry: &Entry<'_, T>,
    path: &str,
    rps: Option<NonZeroU32>,
    total: Option<NonZeroU32>,
) -> Result<(), ResourceError> {
    match (rps, total) {
        (Some(rps), Some(total)) if rps > total => Err(error(
            entry,
            Kind::InvalidValue,
            path,
            format!(
                "{rps} requests per second is more than spec.total.requestsPerSecond ({total})"
            ),
        )),
        _ => Ok(()),
    }
}
