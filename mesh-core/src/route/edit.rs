//! A route's header filters: an `HTTPRoute` rule's
//! `RequestHeaderModifier` and `ResponseHeaderModifier`; and, since a
//! route's filters are layered together, its `RequestRedirect`.
//!
//! A route can change the headers of what it carries: set a header to a
//! value, add a value beside those a header has, or remove a header. The
//! names and values are parsed once, when the route is built
//! ([`HeaderEdit::new`]), so that a request only pays for the edits
//! themselves. [`EditHeaders`] applies one edit to each request on its way
//! in and another to each response on its way out. A route that redirects
//! ([`EditHeadersLayer::with_redirect`]) answers with the redirect in
//! place of its inner service, built from the request as it came, and the
//! response edit applies to that answer as to any other.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    Redirect, RedirectLayer,
    redirect::{RedirectFuture, Redirecting},
};
use crate::resource::HeaderModifier;

/// One header modifier, or several in order, parsed: the headers they
/// set, add and remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdit {
    /// Applied in order: each modifier's sets, then its adds, then its
    /// removes, then the next modifier's.
    ops: Vec<Op>,
}

/// One change to a header map.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Set(HeaderName, HeaderValue),
    Add(HeaderName, HeaderValue),
    Remove(HeaderName),
}

/// A header name or value in a modifier that HTTP does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHeaderEdit {
    /// Where it is in the modifier, such as `set[1].value`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl HeaderEdit {
    /// Parses `modifier`. Names are case-insensitive, as in HTTP.
    ///
    /// # Errors
    ///
    /// The first name or value that is not a valid header name or value,
    /// or is outside the Gateway API's lengths (a name over 256
    /// characters, a value empty or over 4096);
    /// a name set or added that frames the body (`Content-Length`,
    /// `Transfer-Encoding`) or is hop-by-hop (`Connection`, `Keep-Alive`,
    /// `Proxy-Connection`, `TE`, `Upgrade`), which the mesh writes itself;
    /// or the first name that an earlier action of the modifier already
    /// names (in any case: `set: [X-A]` with `remove: [x-a]`, which the
    /// Gateway API refuses), with where it is.
    pub fn new(modifier: &HeaderModifier) -> Result<Self, InvalidHeaderEdit> {
        let name = |name: &str, field: String| {
            if name.len() > MAX_NAME_LEN {
                return Err(InvalidHeaderEdit {
                    field,
                    message: format!(
                        "the header name is {} characters long; the Gateway API allows at most {MAX_NAME_LEN}",
                        name.len()
                    ),
                });
            }
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeaderEdit {
                field,
                message: format!("{name:?} is not a valid header name"),
            })
        };
        let pairs = |list: &[crate::resource::HttpHeader], what: &str| {
            list.iter()
                .enumerate()
                .map(|(i, header)| {
                    if !(1..=MAX_VALUE_LEN).contains(&header.value.len()) {
                        return Err(InvalidHeaderEdit {
                            field: format!("{what}[{i}].value"),
                            message: if header.value.is_empty() {
                                format!(
                                    "the value is empty; the Gateway API requires 1 to {MAX_VALUE_LEN} characters"
                                )
                            } else {
                                format!(
                                    "the value is {} characters long; the Gateway API allows at most {MAX_VALUE_LEN}",
                                    header.value.len()
                                )
                            },
                        });
                    }
                    let value =
                        HeaderValue::from_str(&header.value).map_err(|_| InvalidHeaderEdit {
                            field: format!("{what}[{i}].value"),
                            message: format!("{:?} is not a valid header value", header.value),
                        })?;
                    let field = format!("{what}[{i}].name");
                    let parsed = name(&header.name, field.clone())?;
                    if let Some(why) = owned_by_the_mesh(&parsed) {
                        return Err(InvalidHeaderEdit {
                            field,
                            message: format!(
                                "{:?} {why}: an edit cannot set or add it",
                                header.name
                            ),
                        });
                    }
                    Ok((parsed, value))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let set = pairs(&modifier.set, "set")?;
        let add = pairs(&modifier.add, "add")?;
        let remove = modifier
            .remove
            .iter()
            .enumerate()
            .map(|(i, n)| name(n, format!("remove[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        // The Gateway API allows one action per header name: with two, no
        // order of applying them is more right than another, and the
        // API server's validation refuses the filter.
        let named = (set.iter().zip(&modifier.set).enumerate())
            .map(|(i, ((n, _), h))| (n, &h.name, format!("set[{i}].name")))
            .chain(
                (add.iter().zip(&modifier.add).enumerate())
                    .map(|(i, ((n, _), h))| (n, &h.name, format!("add[{i}].name"))),
            )
            .chain(
                (remove.iter().zip(&modifier.remove).enumerate())
                    .map(|(i, (n, given))| (n, given, format!("remove[{i}]"))),
            );
        let mut seen: Vec<(&HeaderName, String)> = Vec::new();
        for (parsed, given, field) in named {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == parsed) {
                return Err(InvalidHeaderEdit {
                    message: format!(
                        "{given:?} names the header {first} names: a modifier may take one action on a header"
                    ),
                    field,
                });
            }
            seen.push((parsed, field));
        }
        let ops = set
            .into_iter()
            .map(|(n, v)| Op::Set(n, v))
            .chain(add.into_iter().map(|(n, v)| Op::Add(n, v)))
            .chain(remove.into_iter().map(Op::Remove))
            .collect();
        Ok(Self { ops })
    }

    /// This edit, then `other`: what `other` sets, adds or removes
    /// applies to the headers as this edit left them.
    #[must_use]
    pub fn then(mut self, other: Self) -> Self {
        self.ops.extend(other.ops);
        self
    }

    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies the edit to `headers`: for each modifier in order, its
    /// sets, then its adds, then its removes.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for op in &self.ops {
            match op {
                Op::Set(name, value) => {
                    headers.insert(name, value.clone());
                }
                Op::Add(name, value) => {
                    headers.append(name, value.clone());
                }
                Op::Remove(name) => {
                    headers.remove(name);
                }
            }
        }
    }
}

/// The longest header name an edit may name: the Gateway API's
/// `HTTPHeaderName`.
const MAX_NAME_LEN: usize = 256;

/// The longest value an edit may set or add (`HTTPHeader.value`, which
/// may not be empty either).
const MAX_VALUE_LEN: usize = 4096;

/// Why an edit may not set or add `name`, if it may not.
///
/// `Content-Length` and `Transfer-Encoding` say how the body is framed,
/// and the mesh frames it as it is: a length set by an edit that the body
/// does not have cut a request's body short upstream, and on a response
/// hyper wrote the header as given but the body as it was, so the client
/// read the rest as the start of the next response. The others are
/// hop-by-hop (RFC 9110, section 7.6.1): `Forward` strips them from a
/// request, so setting one there did nothing (and a `Connection` that
/// listed a header stripped that header too), and they describe the
/// downstream connection, not a response, which over HTTP/2 cannot carry
/// them at all.
fn owned_by_the_mesh(name: &HeaderName) -> Option<&'static str> {
    use http::header::{CONNECTION, CONTENT_LENGTH, TE, TRANSFER_ENCODING, UPGRADE};
    if *name == CONTENT_LENGTH || *name == TRANSFER_ENCODING {
        Some("frames the body, which the mesh writes as it is")
    } else if *name == CONNECTION
        || *name == TE
        || *name == UPGRADE
        || name == "keep-alive"
        || name == "proxy-connection"
    {
        Some("belongs to one connection, not to the message")
    } else {
        None
    }
}

impl std::fmt::Display for InvalidHeaderEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidHeaderEdit {}

/// Edits the headers of each request and of each response; and, with a
/// redirect, answers with it rather than calling the inner service.
#[derive(Clone, Debug)]
pub struct EditHeadersLayer {
    edits: Option<Arc<(HeaderEdit, HeaderEdit)>>,
    redirect: RedirectLayer,
}

impl EditHeadersLayer {
    /// Applies `request` to every request and `response` to every
    /// response. With both empty, the services it makes pass everything
    /// through untouched.
    pub fn new(request: HeaderEdit, response: HeaderEdit) -> Self {
        let edits =
            (!request.is_empty() || !response.is_empty()).then(|| Arc::new((request, response)));
        Self {
            edits,
            redirect: RedirectLayer::pass_through(),
        }
    }

    /// Answers every request with `redirect` (a route's `RequestRedirect`)
    /// instead of calling the inner service, which is then never polled
    /// either. The response edit applies to the redirect; the request
    /// edit does not apply at all: it shapes what a backend is sent, and
    /// the redirect is built from the request as the client sent it (a
    /// `Host` the edit set would otherwise become the `Location`'s), as
    /// Envoy answers a redirect before adding a route's request headers.
    #[must_use]
    pub fn with_redirect(mut self, redirect: Option<Redirect>) -> Self {
        if redirect.is_some() {
            self.edits = self.edits.and_then(|edits| {
                let response = edits.1.clone();
                (!response.is_empty()).then(|| Arc::new((HeaderEdit::default(), response)))
            });
        }
        self.redirect = RedirectLayer::from(redirect);
        self
    }
}

impl<S> Layer<S> for EditHeadersLayer {
    type Service = EditHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EditHeaders {
            inner: self.redirect.layer(inner),
            edits: self.edits.clone(),
        }
    }
}

/// The service [`EditHeadersLayer`] makes.
#[derive(Clone, Debug)]
pub struct EditHeaders<S> {
    inner: Redirecting<S>,
    /// The request's edit and the response's; `None` when both are empty.
    edits: Option<Arc<(HeaderEdit, HeaderEdit)>>,
}

impl<S, B, RB> Service<Request<B>> for EditHeaders<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = EditFuture<RedirectFuture<S::Future, RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(edits) = &self.edits {
            edits.0.apply(req.headers_mut());
        }
        let response = self.edits.clone().filter(|edits| !edits.1.is_empty());
        EditFuture {
            inner: self.inner.call(req),
            response,
        }
    }
}

pin_project! {
    /// The response future of [`EditHeaders`]: edits the response head.
    #[derive(Debug)]
    pub struct EditFuture<F> {
        #[pin]
        inner: F,
        response: Option<Arc<(HeaderEdit, HeaderEdit)>>,
    }
}

impl<F, RB, E> Future for EditFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(res), Some(edits)) = (&mut result, this.response.as_ref()) {
            edits.1.apply(res.headers_mut());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::resource::HttpHeader;

    fn header(name: &str, value: &str) -> HttpHeader {
        HttpHeader {
            name: name.into(),
            value: value.into(),
        }
    }

    fn edit(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderEdit {
        HeaderEdit::new(&HeaderModifier {
            set: set.iter().map(|(n, v)| header(n, v)).collect(),
            add: add.iter().map(|(n, v)| header(n, v)).collect(),
            remove: remove.iter().map(|n| (*n).to_owned()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn an_edit_sets_adds_and_removes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-env", "prod".parse().unwrap());
        headers.insert("x-tag", "a".parse().unwrap());
        headers.insert("x-debug", "1".parse().unwrap());
        edit(&[("X-Env", "canary")], &[("x-tag", "b")], &["x-debug"]).apply(&mut headers);
        assert_eq!(headers["x-env"], "canary");
        let tags: Vec<_> = headers.get_all("x-tag").iter().collect();
        assert_eq!(tags, ["a", "b"]);
        assert!(!headers.contains_key("x-debug"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn set_and_remove_act_on_every_value_of_a_repeated_header() {
        // The Gateway API's `set` overwrites the header and `remove`
        // takes it away: neither may leave one of several values behind,
        // whatever case the request or the modifier spells the name in.
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("X-Env", "a"),
            ("x-env", "b"),
            ("x-debug", "1"),
            ("X-DEBUG", "2"),
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        edit(&[("X-ENV", "canary")], &[], &["X-Debug"]).apply(&mut headers);
        let env: Vec<_> = headers.get_all("x-env").iter().collect();
        assert_eq!(env, ["canary"]);
        assert!(!headers.contains_key("x-debug"));
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn edits_joined_with_then_apply_one_after_the_other() {
        // The first removes x-a and adds x-b; the second sets both.
        let joined = edit(&[], &[("x-b", "1")], &["x-a"]).then(edit(
            &[("x-a", "2"), ("x-b", "2")],
            &[],
            &[],
        ));
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "0".parse().unwrap());
        joined.apply(&mut headers);
        assert_eq!(headers["x-a"], "2");
        let b: Vec<_> = headers.get_all("x-b").iter().collect();
        assert_eq!(b, ["2"]);
    }

    #[test]
    fn names_and_values_http_refuses_are_named() {
        let bad = |modifier: HeaderModifier| HeaderEdit::new(&modifier).unwrap_err().to_string();
        let name = HeaderModifier {
            add: vec![header("ok", "1"), header("bad name", "1")],
            ..HeaderModifier::default()
        };
        assert_eq!(
            bad(name),
            "add[1].name: \"bad name\" is not a valid header name"
        );
        let value = HeaderModifier {
            set: vec![header("x-line", "a\nb")],
            ..HeaderModifier::default()
        };
        assert_eq!(
            bad(value),
            "set[0].value: \"a\\nb\" is not a valid header value"
        );
        let remove = HeaderModifier {
            remove: vec![String::new()],
            ..HeaderModifier::default()
        };
        assert_eq!(bad(remove), "remove[0]: \"\" is not a valid header name");
    }

    #[test]
    fn a_header_named_by_two_actions_is_refused() {
        // The Gateway API's HTTPHeaderFilter: "Only one action for a given
        // header name is permitted." Names are compared without case.
        let bad = |set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]| {
            HeaderEdit::new(&HeaderModifier {
                set: set.iter().map(|(n, v)| header(n, v)).collect(),
                add: add.iter().map(|(n, v)| header(n, v)).collect(),
                remove: remove.iter().map(|n| (*n).to_owned()).collect(),
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(&[("X-Env", "canary")], &[], &["x-env"]),
            "remove[0]: \"x-env\" names the header set[0].name names: a modifier may take one action on a header"
        );
        assert_eq!(
            bad(&[("x-a", "1"), ("x-b", "1"), ("X-B", "2")], &[], &[]),
            "set[2].name: \"X-B\" names the header set[1].name names: a modifier may take one action on a header"
        );
        assert_eq!(
            bad(&[], &[("x-tag", "a")], &["x-other", "X-TAG"]),
            "remove[1]: \"X-TAG\" names the header add[0].name names: a modifier may take one action on a header"
        );
        assert_eq!(
            bad(&[("x-a", "1")], &[("x-a", "2")], &[]),
            "add[0].name: \"x-a\" names the header set[0].name names: a modifier may take one action on a header"
        );
        assert_eq!(
            bad(&[], &[], &["x-a", "x-a"]),
            "remove[1]: \"x-a\" names the header remove[0] names: a modifier may take one action on a header"
        );
    }

    #[test]
    fn framing_and_hop_by_hop_headers_cannot_be_set_or_added() {
        // Set on a response, `content-length` disagreed with the body
        // the server wrote (hyper trusts the body's length and writes the
        // header as given: the client reads the rest as the next
        // response); on a request, it cut the body short upstream.
        let bad = |set: &[(&str, &str)], add: &[(&str, &str)]| {
            HeaderEdit::new(&HeaderModifier {
                set: set.iter().map(|(n, v)| header(n, v)).collect(),
                add: add.iter().map(|(n, v)| header(n, v)).collect(),
                remove: Vec::new(),
            })
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(&[("Content-Length", "2")], &[]),
            "set[0].name: \"Content-Length\" frames the body, which the mesh writes as it is: an edit cannot set or add it"
        );
        assert_eq!(
            bad(&[], &[("x-a", "1"), ("transfer-encoding", "chunked")]),
            "add[1].name: \"transfer-encoding\" frames the body, which the mesh writes as it is: an edit cannot set or add it"
        );
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            assert_eq!(
                bad(&[(name, "x")], &[]),
                format!(
                    "set[0].name: {name:?} belongs to one connection, not to the message: an edit cannot set or add it"
                )
            );
            assert!(bad(&[], &[(name, "x")]).starts_with("add[0].name: "));
        }
        // Removing them is harmless, and still allowed.
        let removed = edit(&[], &[], &["content-length", "connection", "te"]);
        assert_eq!(removed.ops.len(), 3);
    }

    #[tokio::test]
    async fn the_service_edits_the_request_and_the_response() {
        let echo = service_fn(|req: Request<()>| async move {
            let mut res = Response::new(());
            *res.headers_mut() = req.headers().clone();
            Ok::<_, Infallible>(res)
        });
        let layer = EditHeadersLayer::new(
            edit(&[("x-route", "canary")], &[], &["cookie"]),
            edit(&[], &[("x-served-by", "mesh")], &["x-route"]),
        );
        let req = Request::get("/")
            .header("cookie", "secret")
            .header("x-kept", "1")
            .body(())
            .unwrap();
        let res = layer.layer(echo).oneshot(req).await.unwrap();
        let mut names: Vec<_> = res.headers().keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        // The request lost its cookie and gained x-route; the response
        // lost x-route again and gained x-served-by.
        assert_eq!(names, ["x-kept", "x-served-by"]);
    }

    #[tokio::test]
    async fn without_edits_nothing_is_touched() {
        let layer = EditHeadersLayer::new(HeaderEdit::default(), HeaderEdit::default());
        let svc = layer.layer(service_fn(|req: Request<()>| async move {
            let mut res = Response::new(());
            *res.headers_mut() = req.headers().clone();
            Ok::<_, Infallible>(res)
        }));
        assert!(svc.edits.is_none());
        let req = Request::get("/").header("x-a", "1").body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-a"], "1");
        assert_eq!(res.headers().len(), 1);
    }

    #[tokio::test]
    async fn a_redirecting_route_answers_itself_and_edits_its_answer() {
        let filter = crate::resource::RequestRedirect {
            scheme: Some("https".into()),
            ..Default::default()
        };
        let redirect = Redirect::new(&filter, &[crate::route::RouteMatch::new()]).unwrap();
        let layer =
            EditHeadersLayer::new(HeaderEdit::default(), edit(&[("x-moved", "1")], &[], &[]))
                .with_redirect(Some(redirect));
        let never = service_fn(|_: Request<()>| async {
            Err::<Response<()>, _>("the route's backend was called")
        });
        let req = Request::get("/a").header("host", "web").body(()).unwrap();
        let res = layer.layer(never).oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::FOUND);
        assert_eq!(res.headers()["location"], "https://web/a");
        assert_eq!(res.headers()["x-moved"], "1");
    }

    #[tokio::test]
    async fn a_redirect_points_where_the_request_asked_not_where_its_edit_would_send_it() {
        // The request edit shapes what goes to a backend; a redirecting
        // rule sends nothing there, so the `Location` is built from the
        // request as the client sent it, as Envoy builds it before the
        // route's request headers are added.
        let filter = crate::resource::RequestRedirect {
            scheme: Some("https".into()),
            ..Default::default()
        };
        let redirect = Redirect::new(&filter, &[crate::route::RouteMatch::new()]).unwrap();
        let layer = EditHeadersLayer::new(
            edit(&[("host", "internal.example")], &[], &[]),
            HeaderEdit::default(),
        )
        .with_redirect(Some(redirect));
        let never = service_fn(|_: Request<()>| async {
            Err::<Response<()>, _>("the route's backend was called")
        });
        let req = Request::get("/a").header("host", "web").body(()).unwrap();
        let res = layer.layer(never).oneshot(req).await.unwrap();
        assert_eq!(res.headers()["location"], "https://web/a");
    }
}
