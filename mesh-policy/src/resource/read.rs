//! Reading policy documents of every kind from one or more texts.

use mesh_core::resource::{
    DocumentContext, Documents, GATEWAY_GROUP, GrpcRoute, HttpRoute, Parsed, Resource,
    ResourceError, ResourceErrorKind, TcpRoute, Timestamp, TlsRoute,
};
use serde::Deserialize;

use super::{
    AuthorizationPolicy, EgressNetwork, HttpLocalRateLimitPolicy, MeshTlsAuthentication,
    NetworkAuthentication, Server, ServerAuthorization,
};
use crate::warnings::{PolicyWarnings, WarningKind};

/// A policy text and where it came from (a file name, or `inline[0]` for a
/// document written in the sidecar's own configuration).
#[derive(Clone, Copy, Debug)]
pub struct PolicySource<'a> {
    /// Names the text in errors and warnings.
    pub origin: &'a str,
    /// Multi-document YAML.
    pub text: &'a str,
}

impl<'a> PolicySource<'a> {
    /// A text named `origin`.
    pub fn new(origin: &'a str, text: &'a str) -> Self {
        Self { origin, text }
    }
}

/// A resource and the document it came from.
#[derive(Debug)]
pub(crate) struct Entry<'t, T> {
    pub(crate) value: T,
    pub(crate) context: DocumentContext<'t>,
}

/// Every policy resource of a set of texts, by kind, in document order.
#[derive(Debug, Default)]
pub(crate) struct Resources<'t> {
    pub(crate) servers: Vec<Entry<'t, Server>>,
    pub(crate) server_authorizations: Vec<Entry<'t, ServerAuthorization>>,
    pub(crate) authorization_policies: Vec<Entry<'t, AuthorizationPolicy>>,
    pub(crate) mesh_tls: Vec<Entry<'t, MeshTlsAuthentication>>,
    pub(crate) networks: Vec<Entry<'t, NetworkAuthentication>>,
    /// `HTTPRoute`s and `GRPCRoute`s (as the `HTTPRoute`s they make),
    /// told apart by their documents' kinds.
    pub(crate) routes: Vec<Entry<'t, HttpRoute>>,
    /// The `metadata.creationTimestamp` of each of `routes`, at the same
    /// index: the oldest route wins a tie between equal matches, and the
    /// `HttpRoute` model does not read it.
    pub(crate) route_created: Vec<Option<Timestamp>>,
    /// The `metadata.creationTimestamp` of each of `servers`, at the same
    /// index: of two Servers that select one port, the oldest takes it.
    pub(crate) server_created: Vec<Option<Timestamp>>,
    /// For each of `routes` that is a `GRPCRoute`, at the same index, the
    /// rank of each match of each rule ([`GrpcRouteMatch::precedence`]):
    /// the `GRPCRoute` order, which the `HTTPRoute` matches it is read as
    /// no longer tell (a service alone is a path prefix, a method alone an
    /// expression). `None` for an `HTTPRoute`.
    ///
    /// [`GrpcRouteMatch::precedence`]: mesh_core::resource::GrpcRouteMatch::precedence
    pub(crate) route_grpc: Vec<Option<GrpcRanks>>,
    pub(crate) rate_limits: Vec<Entry<'t, HttpLocalRateLimitPolicy>>,
    pub(crate) egress_networks: Vec<Entry<'t, EgressNetwork>>,
    /// The `metadata.creationTimestamp` of each of `egress_networks`, at
    /// the same index: of two networks that capture an address with
    /// blocks of one size, the older wins.
    pub(crate) egress_created: Vec<Option<Timestamp>>,
    pub(crate) warnings: PolicyWarnings,
}

/// The rank of each match of each rule of a `GRPCRoute`, by index: a
/// service given, a method given, the number of header matches
/// ([`GrpcRouteMatch::precedence`](mesh_core::resource::GrpcRouteMatch::precedence)).
pub(crate) type GrpcRanks = Vec<Vec<(bool, bool, usize)>>;

/// Reads every document of `sources`, checking each against its kind's
/// schema. Kinds authorization does not use are kept as warnings.
///
/// This checks each document on its own; references between resources,
/// and what a workload makes of them, are checked by
/// [`Policy::compile`](crate::Policy::compile).
///
/// # Errors
///
/// The first malformed document, naming its index, kind, name, field and
/// line.
pub fn read_sources(sources: &[PolicySource<'_>]) -> Result<PolicyWarnings, ResourceError> {
    read(sources).map(|r| r.warnings)
}

pub(crate) fn read<'t>(sources: &[PolicySource<'t>]) -> Result<Resources<'t>, ResourceError> {
    let mut resources = Resources::default();
    for source in sources {
        let mut again = Again::new(*source);
        for document in Documents::new(source.origin, source.text) {
            let document = document?;
            let r = &mut resources;
            if matches!(document.kind(), HttpRoute::KIND | GrpcRoute::KIND) {
                r.route_created.push(again.created(document.index())?);
            }
            match document.kind() {
                Server::KIND => {
                    let index = document.index();
                    let parsed = document.read()?;
                    strict_selector(&parsed)?;
                    r.server_created.push(again.created(index)?);
                    push(&mut r.servers, &mut r.warnings, parsed);
                }
                ServerAuthorization::KIND => {
                    let parsed = document.read::<ServerAuthorization>()?;
                    strict(&parsed)?;
                    if parsed.value.api_version.as_str() != "policy.linkerd.io/v1beta1" {
                        r.warnings.about(
                            WarningKind::UnservedVersion,
                            &parsed.context,
                            "apiVersion",
                            format!(
                                "Linkerd serves ServerAuthorization at policy.linkerd.io/v1beta1 only; {} is read as v1beta1",
                                parsed.value.api_version
                            ),
                        );
                    }
                    push(&mut r.server_authorizations, &mut r.warnings, parsed);
                }
                AuthorizationPolicy::KIND => {
                    let parsed = document.read()?;
                    strict(&parsed)?;
                    push(&mut r.authorization_policies, &mut r.warnings, parsed);
                }
                MeshTlsAuthentication::KIND => {
                    let parsed = document.read()?;
                    strict(&parsed)?;
                    push(&mut r.mesh_tls, &mut r.warnings, parsed)
                }
                NetworkAuthentication::KIND => {
                    let parsed = document.read()?;
                    strict(&parsed)?;
                    push(&mut r.networks, &mut r.warnings, parsed)
                }
                HttpRoute::KIND => {
                    let parsed = document.read::<HttpRoute>()?;
                    if parsed.value.spec.parent_refs.iter().any(|p| p.is_server()) {
                        strict_route(&parsed)?;
                    }
                    push(&mut r.routes, &mut r.warnings, parsed);
                    r.route_grpc.push(None);
                }
                // A GRPCRoute is kept as the HTTPRoute its method matches
                // make; its document still says GRPCRoute.
                GrpcRoute::KIND => {
                    let parsed = document.read::<GrpcRoute>()?;
                    if parsed.value.spec.parent_refs.iter().any(|p| p.is_server()) {
                        strict_route(&parsed)?;
                    }
                    let value = parsed
                        .value
                        .to_http_route()
                        .map_err(|e| parsed.context.match_error(e))?;
                    let ranks = parsed
                        .value
                        .spec
                        .rules
                        .iter()
                        .map(|rule| rule.matches.iter().map(|m| m.precedence()).collect())
                        .collect();
                    let parsed = Parsed {
                        value,
                        ignored: parsed.ignored,
                        context: parsed.context,
                    };
                    push(&mut r.routes, &mut r.warnings, parsed);
                    r.route_grpc.push(Some(ranks));
                }
                HttpLocalRateLimitPolicy::KIND => {
                    let parsed = document.read()?;
                    strict_limit(&parsed)?;
                    push(&mut r.rate_limits, &mut r.warnings, parsed)
                }
                EgressNetwork::KIND => {
                    let index = document.index();
                    let parsed = document.read()?;
                    strict_egress(&parsed)?;
                    r.egress_created.push(again.created(index)?);
                    push(&mut r.egress_networks, &mut r.warnings, parsed)
                }
                // Outbound routes of connections, which authorization
                // has no use for, as it has none for an HTTPRoute whose
                // parents are Services: the outbound routing reads them,
                // and warns about a parent it does not apply them to.
                TlsRoute::KIND | TcpRoute::KIND
                    if document.api_version().group() == GATEWAY_GROUP => {}
                kind if is_list(kind) => return Err(list_error(document)),
                kind if document.api_version().group() == LINKERD_POLICY
                    && !LINKERD_UNREAD.contains(&kind) =>
                {
                    return Err(document.context().error(
                        ResourceErrorKind::InvalidValue,
                        "kind",
                        format!(
                            "{LINKERD_POLICY} has no kind {kind}: its kinds authorization reads are {}",
                            LINKERD_READ.join(", ")
                        ),
                    ));
                }
                _ => r.warnings.other_kind(document.into_other()),
            }
        }
    }
    Ok(resources)
}

/// The API group of Linkerd's policy resources.
const LINKERD_POLICY: &str = "policy.linkerd.io";

/// The kinds of [`LINKERD_POLICY`] read here.
const LINKERD_READ: &[&str] = &[
    Server::KIND,
    ServerAuthorization::KIND,
    AuthorizationPolicy::KIND,
    MeshTlsAuthentication::KIND,
    NetworkAuthentication::KIND,
    HttpRoute::KIND,
    HttpLocalRateLimitPolicy::KIND,
    EgressNetwork::KIND,
];

/// The kinds of [`LINKERD_POLICY`] that authorization does not enforce,
/// which are warned about as other groups' kinds are. Any other kind of
/// the group is refused: the API server would refuse it ("no matches for
/// kind"), and skipped as a kind not enforced, a misspelt `Server` would
/// leave its port to the default policy. `ServiceProfile` is `linkerd.io`'s,
/// but published guides write it in this group, and the same files carry
/// it to the mesh's routing, which reads it either way.
const LINKERD_UNREAD: &[&str] = &["HTTPLocalConcurrencyLimitPolicy", "ServiceProfile"];

/// Whether a document of `kind` is a list of resources: `kubectl get -o
/// yaml` writes a `List` (of `v1`), the API server a `<Kind>List`.
fn is_list(kind: &str) -> bool {
    const READ: &[&str] = &[
        Server::KIND,
        ServerAuthorization::KIND,
        AuthorizationPolicy::KIND,
        MeshTlsAuthentication::KIND,
        NetworkAuthentication::KIND,
        HttpRoute::KIND,
        GrpcRoute::KIND,
        HttpLocalRateLimitPolicy::KIND,
        EgressNetwork::KIND,
    ];
    kind == "List"
        || kind
            .strip_suffix("List")
            .is_some_and(|item| READ.contains(&item))
}

/// The items of a list, for [`list_error`].
#[derive(Debug, Default, Deserialize)]
struct ListDocument {
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

/// The error for a list of resources. Its items are not read: skipped as
/// a kind authorization does not use, as any other kind is, a listed
/// `Server` would not cover its port, which the default policy would then
/// decide (`all-unauthenticated` unless configured otherwise), so a
/// policy exported with `kubectl get -o yaml` would open what it closes.
fn list_error(document: mesh_core::resource::Document<'_>) -> ResourceError {
    let kind = document.kind().to_owned();
    let context = document.context().clone();
    let items = document
        .parse::<ListDocument>()
        .map_or(0, |parsed| parsed.value.items.len());
    context.error(
        ResourceErrorKind::InvalidValue,
        "items",
        format!(
            "a {kind} is not read, and its items ({items}) would be ignored: write each item as a document of its own, separated by ---"
        ),
    )
}

/// A second reading of a text's documents, for what the models leave out:
/// a route's or a Server's `metadata.creationTimestamp`. It starts at the
/// first of them and keeps its place, so a text without routes or Servers
/// is read once and one with them once more from the first on, however
/// many it holds.
struct Again<'t> {
    source: PolicySource<'t>,
    documents: Option<Documents<'t>>,
}

/// The part of a document [`Again`] reads.
#[derive(Debug, Default, Deserialize)]
struct CreatedDocument {
    #[serde(default)]
    metadata: CreatedMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedMeta {
    #[serde(default)]
    creation_timestamp: Option<String>,
}

impl<'t> Again<'t> {
    fn new(source: PolicySource<'t>) -> Self {
        Self {
            source,
            documents: None,
        }
    }

    /// The `metadata.creationTimestamp` of document `index` (counted from
    /// 1, and later than any asked for before), if it has one.
    ///
    /// # Errors
    ///
    /// One naming the document and the field when the timestamp is not an
    /// RFC 3339 time.
    fn created(&mut self, index: usize) -> Result<Option<Timestamp>, ResourceError> {
        let source = self.source;
        let documents = self
            .documents
            .get_or_insert_with(|| Documents::new(source.origin, source.text));
        for document in documents {
            let document = document?;
            if document.index() < index {
                continue;
            }
            if document.index() > index {
                break;
            }
            let parsed = document.parse::<CreatedDocument>()?;
            let Some(text) = parsed.value.metadata.creation_timestamp else {
                return Ok(None);
            };
            return Timestamp::parse(&text).map(Some).map_err(|e| {
                parsed.context.error(
                    ResourceErrorKind::InvalidValue,
                    "metadata.creationTimestamp",
                    e.to_string(),
                )
            });
        }
        Ok(None)
    }
}

fn push<'t, T>(
    entries: &mut Vec<Entry<'t, T>>,
    warnings: &mut PolicyWarnings,
    parsed: Parsed<'t, T>,
) {
    for field in parsed.ignored {
        warnings.ignored_field(field);
    }
    entries.push(Entry {
        value: parsed.value,
        context: parsed.context,
    });
}

/// Fails on a field of `spec` that was not read, where [`push`] would
/// warn: for the kinds that say who may connect (authentications and
/// authorizations), every field narrows who gets in, so one not read (a
/// misspelt `except`, `networks` or `identityRefs`) would silently admit
/// clients the author meant to keep out.
fn strict<T>(parsed: &Parsed<'_, T>) -> Result<(), ResourceError> {
    strict_spec(parsed, "admit clients it was meant to refuse")
}

/// Fails on a field of a rate limit's `spec` that was not read: each of
/// its fields is a limit, so one not read (a misspelt `identity` or
/// `overrides`) would leave requests unlimited that the author meant to
/// limit, as `kubectl apply`'s strict field validation would refuse it.
fn strict_limit<T>(parsed: &Parsed<'_, T>) -> Result<(), ResourceError> {
    strict_spec(parsed, "let through requests it was meant to limit")
}

/// Fails on a field of an `EgressNetwork`'s `spec` that was not read: a
/// misspelt `networks` would leave the network capturing every address
/// outside the cluster, where it was meant to capture a few.
fn strict_egress<T>(parsed: &Parsed<'_, T>) -> Result<(), ResourceError> {
    strict_spec(parsed, "capture addresses it was not meant to")
}

/// Fails on the first field of `spec` that was not read, saying what the
/// resource `could` do if it were read without it.
fn strict_spec<T>(parsed: &Parsed<'_, T>, could: &str) -> Result<(), ResourceError> {
    match parsed.ignored.iter().find(|f| f.path.starts_with("spec")) {
        Some(field) => Err(parsed.context.error(
            ResourceErrorKind::InvalidValue,
            &field.path,
            format!(
                "unknown field: a {} is not read with a field it does not know, which could {could}",
                parsed.context.kind()
            ),
        )),
        None => Ok(()),
    }
}

/// Fails on a field that was not read, in a route with a Server parent,
/// where it would widen the route, and where [`push`] would warn. Such a
/// route says which requests its authorizations and filters apply to, and
/// a Server with routes refuses the requests none matches; a misspelt
/// `matches` matches every request, a path without its `value` matches
/// `/`, a misspelt `hostnames` matches every host, and a header modifier
/// that does not `remove` lets the client's header through
/// ([`widens`]).
fn strict_route<T>(parsed: &Parsed<'_, T>) -> Result<(), ResourceError> {
    match parsed.ignored.iter().find(|f| widens(&f.path)) {
        Some(field) => Err(parsed.context.error(
            ResourceErrorKind::InvalidValue,
            &field.path,
            format!(
                "unknown field: a {} under a Server is not read with a field it does not know, which could widen it to requests it was not meant for",
                parsed.context.kind()
            ),
        )),
        None => Ok(()),
    }
}

/// Whether an unread field at `path` of a route would widen what the
/// route matches or let through: one of `spec` itself or of a rule (every
/// field the Gateway API gives them is read, but a rule's
/// `sessionPersistence`, which has no meaning under a Server), or one
/// within a rule's `matches`, or within a header modifier or redirect it
/// applies. Fields of `backendRefs` and of filters that are not applied
/// (which are warned about) stay warnings.
fn widens(path: &str) -> bool {
    /// Rule fields the Gateway API has and inbound routes do not read.
    const UNREAD_RULE_FIELDS: &[&str] = &["sessionPersistence"];
    /// The filters whose bodies are applied to the requests they allow.
    const APPLIED_FILTERS: &[&str] = &[
        "requestHeaderModifier.",
        "responseHeaderModifier.",
        "requestRedirect.",
    ];
    let leaf = |s: &str| !s.contains(['.', '[']);
    let Some(in_spec) = path.strip_prefix("spec.") else {
        return false;
    };
    if leaf(in_spec) {
        return true;
    }
    let Some((_, in_rule)) = in_spec
        .strip_prefix("rules[")
        .and_then(|rest| rest.split_once("]."))
    else {
        return false;
    };
    if leaf(in_rule) {
        return !UNREAD_RULE_FIELDS.contains(&in_rule);
    }
    if in_rule.starts_with("matches[") {
        return true;
    }
    in_rule
        .strip_prefix("filters[")
        .and_then(|rest| rest.split_once("]."))
        .is_some_and(|(_, body)| APPLIED_FILTERS.iter().any(|f| body.starts_with(f)))
}

/// Fails on a field of a Server's `spec.podSelector` that was not read,
/// where [`push`] would warn: a misspelt `matchLabels` or
/// `matchExpressions` leaves the selector empty, and an empty selector
/// selects every pod, so the Server (and whatever its `accessPolicy` and
/// authorizations open) would take the port of workloads it was not
/// meant for.
fn strict_selector<T>(parsed: &Parsed<'_, T>) -> Result<(), ResourceError> {
    const SELECTOR: &str = "spec.podSelector";
    let within = |path: &str| {
        path.strip_prefix(SELECTOR)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    match parsed.ignored.iter().find(|f| within(&f.path)) {
        Some(field) => Err(parsed.context.error(
            ResourceErrorKind::InvalidValue,
            &field.path,
            "unknown field: a podSelector is not read with a field it does not know, which could widen it to pods the Server was not meant for",
        )),
        None => Ok(()),
    }
}

/// An error about `field_path` of an entry's document.
pub(crate) fn error<T>(
    entry: &Entry<'_, T>,
    kind: ResourceErrorKind,
    field_path: &str,
    message: impl Into<String>,
) -> ResourceError {
    entry.context.error(kind, field_path, message)
}
