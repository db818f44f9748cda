//! `/env.json`: the environment the proxy runs with.
//!
//! When a proxy misbehaves, the first question is often how it was started:
//! which log filter, which identity directory, which variables an injector
//! or an operator set. Linkerd's proxy answers it on its admin port, and
//! so does this admin, in the same shape:
//!
//! - `GET /env.json` answers a JSON object of every variable, name to value;
//! - `GET /env.json?NAME&OTHER` answers only those names, and `null` for a
//!   name that is not set;
//! - a query with `=` in it is a mistake (`400`), an `Accept` header that
//!   rules out JSON gets `406`, and any method but `GET` and `HEAD` `405`.
//!
//! Values that are not valid UTF-8 are shown with the replacement
//! character rather than dropped, so that a variable is never silently
//! missing from the answer.
//!
//! Two decisions differ from Linkerd's, both because an environment often
//! holds secrets (tokens, database passwords) that a library cannot know
//! about:
//!
//! - the endpoint is off unless the process turns it on
//!   ([`Admin::with_env`](super::Admin::with_env)): an application that
//!   embeds the admin did not necessarily mean to publish its environment;
//! - only loopback clients are served, as for `/shutdown` and
//!   `/proxy-log-level`. `kubectl port-forward` connects from loopback, so
//!   the way operators reach the admin port still works.
//!
//! A process that wants to show only some variables hands over an
//! [`Environment::fixed`] instead of [`Environment::process`].

use std::{collections::BTreeMap, ffi::OsString, fmt, sync::Arc};

use http::{Method, Request, Response, StatusCode, header};

use super::text;
use crate::body::{self, BoxBody};

/// Where `/env.json` reads its variables. See the [module docs](self).
#[derive(Clone)]
pub struct Environment {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// The process's environment, read at each request, so that the answer
    /// is what the process has now.
    Process,
    /// A fixed set of variables.
    Fixed(Arc<BTreeMap<String, String>>),
}

impl Environment {
    /// The process's own environment, read afresh for each request.
    pub fn process() -> Self {
        Self {
            source: Source::Process,
        }
    }

    /// Exactly `vars`, whatever the process's environment holds: for a
    /// process that shows a chosen few, and for tests.
    pub fn fixed<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            source: Source::Fixed(Arc::new(vars)),
        }
    }

    /// Every variable, sorted by name.
    fn all(&self) -> BTreeMap<String, Option<String>> {
        match &self.source {
            Source::Process => std::env::vars_os()
                .map(|(name, value)| (lossy(name), Some(lossy(value))))
                .collect(),
            Source::Fixed(vars) => vars
                .iter()
                .map(|(name, value)| (name.clone(), Some(value.clone())))
                .collect(),
        }
    }

    /// The value of `name`, if it is set.
    fn get(&self, name: &str) -> Option<String> {
        match &self.source {
            // A name with `=` or NUL cannot be set, and `var_os` would
            // panic on some platforms for them; the query parser rules out
            // `=` already, and NUL is checked here.
            Source::Process if name.is_empty() || name.contains('\0') => None,
            Source::Process => std::env::var_os(name).map(lossy),
            Source::Fixed(vars) => vars.get(name).cloned(),
        }
    }
}

impl fmt::Debug for Environment {
    /// Names the source only: the values may be secrets, and debug output
    /// ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Process => "process",
            Source::Fixed(_) => "fixed",
        };
        f.debug_struct("Environment")
            .field("source", &source)
            .finish()
    }
}

/// `s` as a string, with the replacement character for what is not UTF-8;
/// valid UTF-8, the usual case, is taken over without a copy.
fn lossy(s: OsString) -> String {
    s.into_string()
        .unwrap_or_else(|s| s.to_string_lossy().into_owned())
}

/// Answers a request for `/env.json` from `env`, or `404` when the process
/// did not turn the endpoint on.
pub(super) fn serve<B>(env: Option<&Environment>, req: &Request<B>) -> Response<BoxBody> {
    let Some(env) = env else {
        return text(StatusCode::NOT_FOUND, "the environment is not served\n");
    };
    if let Some(refused) =
        super::refuse_unless_local(req, "the environment is only served to loopback")
    {
        return refused;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return super::method_not_allowed(req, "GET, HEAD");
    }
    if !accepts_json(req) {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            "/env.json answers application/json only\n",
        );
    }
    let vars = match req.uri().query() {
        None | Some("") => env.all(),
        Some(query) if query.contains('=') => {
            return text(
                StatusCode::BAD_REQUEST,
                "the query of /env.json lists variable names (`?A&B`), not `name=value` pairs\n",
            );
        }
        Some(query) => query
            .split('&')
            .filter(|name| !name.is_empty())
            .map(|name| (name.to_owned(), env.get(name)))
            .collect(),
    };
    json(&vars)
}

/// Whether the request's `Accept` headers allow JSON. No `Accept` at all
/// does. The most specific range that matches `application/json` decides
/// (RFC 9110 §12.5.1), and a weight of `q=0` refuses it.
fn accepts_json<B>(req: &Request<B>) -> bool {
    let mut accepts = req.headers().get_all(header::ACCEPT).iter().peekable();
    if accepts.peek().is_none() {
        return true;
    }
    // (specificity, acceptable) of the most specific matching range.
    let mut best: Option<(u8, bool)> = None;
    for range in accepts
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let specificity = if media.eq_ignore_ascii_case("application/json") {
            3
        } else if media.eq_ignore_ascii_case("application/*") {
            2
        } else if media == "*/*" {
            1
        } else {
            continue;
        };
        let refused = parts.any(|param| {
            param.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("q")
                    && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        if best.is_none_or(|(seen, _)| specificity > seen) {
            best = Some((specificity, !refused));
        }
    }
    best.is_some_and(|(_, acceptable)| acceptable)
}

fn json(vars: &BTreeMap<String, Option<String>>) -> Response<BoxBody> {
    let mut out = String::with_capacity(64 * vars.len() + 4);
    out.push('{');
    for (i, (name, value)) in vars.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  ");
        push_json_string(&mut out, name);
        out.push_str(": ");
        match value {
            Some(value) => push_json_string(&mut out, value),
            None => out.push_str("null"),
        }
    }
    out.push_str(if vars.is_empty() { "}\n" } else { "\n}\n" });
    let mut res = Response::new(body::full(out));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// Appends `s` as a JSON string (RFC 8259, section 7): quotes, backslashes
/// and control characters escaped, everything else as it is.
fn push_json_string(out: &mut String, s: &str) {
    use fmt::Write as _;

    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::Request;
    use http_body_util::BodyExt;

    use super::*;
    use crate::conn::ConnectionInfo;

    fn from(addr: [u8; 4], uri: &str) -> Request<()> {
        let mut req = Request::get(uri).body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "127.0.0.1:4191".parse().unwrap(),
            remote_addr: (addr, 50000).into(),
            tls: crate::conn::Tls::Plaintext(crate::conn::NoTlsReason::Loopback),
        });
        req
    }

    async fn answer(env: Option<&Environment>, req: &Request<()>) -> (StatusCode, String) {
        let res = serve(env, req);
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn env() -> Environment {
        Environment::fixed([
            ("MESH_LOG", "info,mesh=debug"),
            ("ODD", "a \"quoted\"\\ line\nand\ttab\u{1}"),
        ])
    }

    #[tokio::test]
    async fn every_variable_as_a_json_object_sorted_by_name() {
        let (status, body) = answer(Some(&env()), &from([127, 0, 0, 1], "/env.json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "{\n  \"MESH_LOG\": \"info,mesh=debug\",\n  \
             \"ODD\": \"a \\\"quoted\\\"\\\\ line\\nand\\ttab\\u0001\"\n}\n"
        );
    }

    #[tokio::test]
    async fn named_variables_only_with_null_for_unset_ones() {
        let req = from([127, 0, 0, 1], "/env.json?MESH_LOG&UNSET");
        let (status, body) = answer(Some(&env()), &req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "{\n  \"MESH_LOG\": \"info,mesh=debug\",\n  \"UNSET\": null\n}\n"
        );
    }

    #[tokio::test]
    async fn the_process_environment_is_read() {
        // Cargo sets this for every test binary it runs.
        let req = from(
            [127, 0, 0, 1],
            "/env.json?CARGO_PKG_NAME&MESH_NOT_SET_ANYWHERE",
        );
        let (status, body) = answer(Some(&Environment::process()), &req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "{\n  \"CARGO_PKG_NAME\": \"mesh-core\",\n  \"MESH_NOT_SET_ANYWHERE\": null\n}\n"
        );
        let (_, all) = answer(
            Some(&Environment::process()),
            &from([127, 0, 0, 1], "/env.json"),
        )
        .await;
        assert!(all.contains("\"CARGO_PKG_NAME\": \"mesh-core\""), "{all}");
    }

    #[tokio::test]
    async fn refused_when_off_from_afar_or_asked_wrongly() {
        let local = from([127, 0, 0, 1], "/env.json");
        assert_eq!(answer(None, &local).await.0, StatusCode::NOT_FOUND);

        let remote = from([10, 0, 0, 7], "/env.json");
        assert_eq!(answer(Some(&env()), &remote).await.0, StatusCode::FORBIDDEN);
        let unknown_peer = Request::get("/env.json").body(()).unwrap();
        assert_eq!(
            answer(Some(&env()), &unknown_peer).await.0,
            StatusCode::FORBIDDEN
        );

        let pairs = from([127, 0, 0, 1], "/env.json?MESH_LOG=debug");
        let (status, body) = answer(Some(&env()), &pairs).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("variable names"), "{body}");

        let mut post = from([127, 0, 0, 1], "/env.json");
        *post.method_mut() = Method::POST;
        assert_eq!(
            answer(Some(&env()), &post).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn accept_must_allow_json() {
        for (accept, status) in [
            ("text/html", StatusCode::NOT_ACCEPTABLE),
            ("text/html, application/json;q=0.5", StatusCode::OK),
            ("application/*", StatusCode::OK),
            ("*/*", StatusCode::OK),
            // q=0 is "not acceptable" (RFC 9110 §12.4.2), and the most
            // specific range that matches decides.
            ("application/json;q=0", StatusCode::NOT_ACCEPTABLE),
            ("application/json; q=0.000, */*", StatusCode::NOT_ACCEPTABLE),
            ("*/*;q=0", StatusCode::NOT_ACCEPTABLE),
            ("application/*;q=0, application/json;q=0.1", StatusCode::OK),
            ("*/*;q=0, application/*", StatusCode::OK),
            ("application/json;Q=0.5", StatusCode::OK),
        ] {
            let mut req = from([127, 0, 0, 1], "/env.json");
            req.headers_mut()
                .insert(header::ACCEPT, accept.parse().unwrap());
            assert_eq!(answer(Some(&env()), &req).await.0, status, "{accept}");
        }
    }

    #[test]
    fn debug_output_shows_no_values() {
        let shown = format!("{:?}", env());
        assert!(!shown.contains("mesh=debug"), "{shown}");
        assert!(shown.contains("fixed"), "{shown}");
    }
}
