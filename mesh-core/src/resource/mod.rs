//! Kubernetes-style resources, read from multi-document YAML.
//!
//! Users of a mesh already write its configuration as Kubernetes resources:
//! Linkerd's `Server` and `AuthorizationPolicy`, the Gateway API's
//! `HTTPRoute`. The mesh reads those same manifests, so a file that works
//! with `kubectl apply` works here. This module holds what every reader of
//! them shares:
//!
//! - [`Documents`] splits a YAML text into documents and reads each one's
//!   [`Envelope`] (`apiVersion`, `kind`, `metadata.name`), so the caller can
//!   choose the type to read the rest as;
//! - [`Document::read`] reads a document as a [`Resource`] type, and lists
//!   the fields that type does not read ([`IgnoredField`]), so they can be
//!   reported rather than dropped;
//! - a document of a kind the caller does not read becomes an
//!   [`OtherResource`], named in a warning;
//! - every failure is a [`ResourceError`] naming the origin, the document
//!   (counted from 1), its kind, namespace and name (`Server shop/web`, as
//!   kubectl names a resource), the field path and the line;
//! - [`HttpRoute`] is the routing resource both authorization (routes under
//!   a `Server`) and outbound routing (routes under a `Service`) read;
//!   [`TlsRoute`] and [`TcpRoute`] route connections rather than requests
//!   (by SNI, or by port), as Linkerd 2.17 reads them for the traffic an
//!   `EgressNetwork` captures;
//! - [`Timestamp`] reads `metadata.creationTimestamp`, which both of them
//!   use to break ties between routes: the oldest wins.
//!
//! A document without a namespace belongs to whichever namespace the reader
//! applies it to, as with `kubectl apply -n`.
//!
//! # Validation
//!
//! There is no API server between the file and the mesh, so the reader
//! refuses what the API server would: a value it refuses here would
//! otherwise apply to nothing, silently (a route named `Books` that no
//! reference names, a hostname with a port that no request's host
//! equals). [`ObjectMeta`] requires a DNS-1123 name and namespace;
//! [`HttpRoute`] and [`GrpcRoute`] require the Gateway API's hostnames,
//! ports, weights and list limits (16 rules, 64 matches per rule and 128
//! per route, ...), and a filter that holds only its own type's field.
//! Errors point at the value itself, not at the mapping that holds it.
//!
//! YAML merge keys (`<<: *defaults`) are applied, as Kubernetes' YAML
//! reader applies them: keys written beside a merge key win over the
//! merged ones, and an anchor that merges another (`&b {<<: *a, ...}`)
//! brings both. serde alone would read `<<` as one more field and drop
//! what it merges. A text that holds `<<` is read a document at a time
//! into a tree, the merges applied ([`apply_merge_keys`], which the
//! sidecar's configuration and `sidecar inject` apply too), then read as
//! its resource type; a mistake in a merged value is reported at the line
//! of the mapping that merges it, and a merge key whose value is not a
//! mapping (or a list of them) is an error naming that mapping and the
//! line of its `<<`.
//!
//! # Limits
//!
//! The text is trusted as configuration is: whoever writes it decides the
//! policy anyway. But a policy file is often written by one hand and read
//! by a sidecar that reloads it, so a mistake in it must be refused with
//! an error, not take the reader's time or memory: a reload that fails
//! keeps the last good state only if the reader survives it.
//!
//! The parser (libyaml's scanner) spends time in proportion to the flow
//! nesting depth for every token it reads: 64,000 nested `{a: ` take it
//! most of a minute. So before anything is parsed, [`check_yaml_shape`]
//! refuses a text larger than [`MAX_TEXT_LEN`] (16 MiB), nesting flow
//! collections deeper than [`MAX_FLOW_DEPTH`] (128), or holding more in
//! them than [`MAX_FLOW_WORK`] allows, in one linear pass.
//!
//! Aliases (`*name`) are bounded twice. The parser refuses a document
//! whose aliases are followed more than a hundred times per event it
//! holds, so a "billion laughs" of nested aliases fails at once. But that
//! bounds how often they are followed, not how much each one stands for:
//! one anchored list of ten thousand items referred to ten thousand times
//! is 50 KB of text and a hundred million values, gigabytes once read
//! into a tree (as a text with merge keys is) or into typed lists. So
//! [`check_yaml_aliases`] then counts the values each document stands
//! for, aliases followed, without building any, and refuses a text whose
//! count goes past its size in bytes plus [`ALIAS_ALLOWANCE`] (100,000),
//! naming the document and the line where it does, as Kubernetes' YAML
//! reader refuses "excessive aliasing". The count covers fields that are
//! not read too: Kubernetes' reader converts a whole document before it
//! reads any field, so such a file would not apply with `kubectl` either.
//!
//! [`Documents`] and [`load`](fn@load) call both checks; a reader that parses YAML
//! some other way should call them first.
//!
//! ```
//! use mesh_core::resource::{self, HttpRoute};
//!
//! let text = r#"
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: HTTPRoute
//! metadata: { name: books, namespace: shop }
//! spec:
//!   parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]
//!   rules:
//!     - matches: [{ path: { type: PathPrefix, value: /books } }]
//!       timeouts: { request: 10s }
//! ---
//! apiVersion: linkerd.io/v1alpha2
//! kind: ServiceProfile
//! metadata: { name: books.shop.svc.cluster.local }
//! "#;
//! let loaded = resource::load::<HttpRoute>("routes.yaml", text)?;
//! assert_eq!(loaded.resources[0].metadata.name, "books");
//! assert!(loaded.resources[0].spec.parent_refs[0].is_service());
//! assert_eq!(loaded.other[0].kind, "ServiceProfile");
//!
//! let matches = loaded.resources[0].rule_matches().unwrap();
//! let req = http::Request::get("/books/1").body(())?;
//! assert!(matches[0][0].matches_request(&req));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aliases;
mod duration;
mod error;
mod http_route;
mod ignored;
mod load;
mod locate;
mod merge;
mod meta;
mod scalar;
mod shape;
mod timestamp;

#[cfg(test)]
mod tests;

pub use self::{
    aliases::{ALIAS_ALLOWANCE, check_yaml_aliases},
    duration::{GatewayDuration, InvalidDuration},
    error::{Location, ResourceError, ResourceErrorKind, ResourceName},
    http_route::{
        BackendReference, GATEWAY_GROUP, GrpcMethodMatch, GrpcRoute, GrpcRouteMatch, GrpcRouteRule,
        GrpcRouteSpec, HeaderModifier, HttpHeader, HttpHeaderMatch, HttpPathMatch,
        HttpPathModifier, HttpQueryParamMatch, HttpRoute, HttpRouteFilter, HttpRouteMatch,
        HttpRouteRetry, HttpRouteRule, HttpRouteSpec, HttpRouteTimeouts, InvalidMatch,
        InvalidMatchReason, L4RouteRule, MAX_BACKEND_WEIGHT, POLICY_GROUP, ParentReference,
        PathMatchType, PathModifierType, RequestRedirect, TcpRoute, TcpRouteSpec, TlsRoute,
        TlsRouteSpec, ValueMatchType,
    },
    ignored::IgnoredField,
    load::{Document, DocumentContext, Documents, Loaded, OtherResource, Parsed, Resource, load},
    locate::locate,
    merge::{UnmergeableKey, apply_merge_keys, locate_nearest},
    meta::{ApiVersion, Envelope, EnvelopeMeta, ObjectMeta},
    scalar::{WholeNumber, retry_count},
    shape::{MAX_FLOW_DEPTH, MAX_FLOW_WORK, MAX_TEXT_LEN, check_yaml_shape},
    timestamp::{InvalidTimestamp, Timestamp},
};

/// Fields that the Kubernetes API server writes and that never carry
/// configuration. [`Document::parse`] does not report them as ignored, so
/// the output of `kubectl get -o yaml` reads without noise.
pub const SERVER_SET_FIELDS: &[&str] = &[
    "status",
    "metadata.uid",
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.deletionGracePeriodSeconds",
    "metadata.managedFields",
    "metadata.ownerReferences",
    "metadata.finalizers",
    "metadata.generateName",
    "metadata.selfLink",
];
