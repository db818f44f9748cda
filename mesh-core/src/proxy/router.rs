use std::{
    collections::HashMap,
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Request, Response, header};
use tower::{Service, ServiceExt, util::Oneshot};

use crate::error::ProxyErrorKind;

/// Routes each request to the service named by its authority's host: the
/// `:authority` of an HTTP/2 request, or the `Host` header of an HTTP/1
/// request. The port is ignored and the match is case-insensitive, so
/// `Emoji:8080` reaches the service registered as `emoji`. A request for an
/// unknown host gets the mesh's 404 (`mesh-error: no route`).
#[derive(Debug)]
pub struct AuthorityRouter<S> {
    routes: Arc<HashMap<Box<str>, S>>,
}

impl<S> Clone for AuthorityRouter<S> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
        }
    }
}

impl<S> AuthorityRouter<S> {
    /// A router over `(host, service)` pairs. Each host is read as a
    /// request's is ([`authority_host`]: without a port or a trailing
    /// dot) and lowercased here, once, so lookups need not allocate. A
    /// fully qualified name (`emoji.emojivoto.svc.cluster.local.`) is
    /// thus the host requests name without the dot, as they usually do;
    /// kept as written, it could never match, since lookups drop it.
    ///
    /// # Errors
    ///
    /// [`DuplicateHost`] when two pairs name one host so read (`emoji`
    /// and `Emoji.:8080`, say): one of them could never be reached, and
    /// which is a guess, so neither is taken. The error names both, by
    /// their positions among the pairs and as written.
    pub fn new(routes: impl IntoIterator<Item = (String, S)>) -> Result<Self, DuplicateHost> {
        // Each host's position and spelling, for the error that names a
        // repeat of it.
        let mut seen: HashMap<Box<str>, (usize, String, S)> = HashMap::new();
        for (position, (written, svc)) in routes.into_iter().enumerate() {
            let host: Box<str> = authority_host(&written).to_ascii_lowercase().into();
            if let Some((first, first_written, _)) = seen.remove(&host) {
                return Err(DuplicateHost {
                    host: host.into(),
                    first: (first, first_written),
                    second: (position, written),
                });
            }
            seen.insert(host, (position, written, svc));
        }
        Ok(Self {
            routes: Arc::new(
                seen.into_iter()
                    .map(|(host, (_, _, svc))| (host, svc))
                    .collect(),
            ),
        })
    }

    fn route<B>(&self, req: &Request<B>) -> Option<&S> {
        by_host(&self.routes, req)
    }
}

/// The entry of `by_host` for the host `req` is addressed to: its
/// `:authority` (HTTP/2, or an absolute URI), else its `Host` header;
/// without userinfo, port or a trailing dot, and in any case. The keys
/// of `by_host` must be lowercase: a lookup then allocates only for a
/// host written with capitals.
pub fn by_host<'m, V, B>(by_host: &'m HashMap<Box<str>, V>, req: &Request<B>) -> Option<&'m V> {
    let authority = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })?;
    let host = authority_host(authority);
    match by_host.get(host) {
        Some(value) => Some(value),
        None if host.bytes().any(|b| b.is_ascii_uppercase()) => {
            by_host.get(host.to_ascii_lowercase().as_str())
        }
        None => None,
    }
}

/// The host of an authority as [`by_host`] matches it: without userinfo,
/// port or one trailing dot, IPv6 brackets kept, its case unchanged.
/// Anything else that names a service by authority (a destination
/// override header, say) reads it with this, so that both agree.
///
/// An IPv6 address written without brackets (`fe80::1`, not an authority
/// RFC 3986 §3.2.2 allows) is kept whole: no port can be told from its
/// last group, and cut there, every address of one prefix would read as
/// one host (`fe80:`).
pub fn authority_host(authority: &str) -> &str {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port))
                if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Two hosts given to [`AuthorityRouter::new`] that are one host once
/// read as requests' are (in any case, without a port or a trailing dot),
/// so that one of their services could never be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateHost {
    host: String,
    first: (usize, String),
    second: (usize, String),
}

impl DuplicateHost {
    /// The host both name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The first entry, by position among the pairs given, as written.
    pub fn first(&self) -> (usize, &str) {
        (self.first.0, &self.first.1)
    }

    /// The entry that repeats it.
    pub fn second(&self) -> (usize, &str) {
        (self.second.0, &self.second.1)
    }
}

impl std::fmt::Display for DuplicateHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "routes[{}]: {:?} is the same host as routes[{}] ({:?}): hosts match without case, port or a trailing dot",
            self.second.0, self.second.1, self.first.0, self.first.1
        )
    }
}

impl std::error::Error for DuplicateHost {}

impl<S, B, RB> Service<Request<B>> for AuthorityRouter<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<Oneshot<S, Request<B>>, Ready<Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each routed service is driven to readiness in its own call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.route(&req) {
            Some(svc) => Either::Left(svc.clone().oneshot(req)),
            None => {
                tracing::debug!(uri = %req.uri(), "no route for authority");
                Either::Right(ready(Ok(ProxyErrorKind::NoRoute.response(&req))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_drops_port_userinfo_and_a_trailing_dot() {
        assert_eq!(authority_host("emoji:8080"), "emoji");
        assert_eq!(authority_host("emoji"), "emoji");
        assert_eq!(authority_host("u:p@emoji:80"), "emoji");
        assert_eq!(authority_host("[::1]:80"), "[::1]");
        assert_eq!(authority_host("[::1]"), "[::1]");
        assert_eq!(
            authority_host("emoji.emojivoto.svc.cluster.local.:80"),
            "emoji.emojivoto.svc.cluster.local"
        );
        assert_eq!(authority_host("EMOJI"), "EMOJI");
        assert_eq!(authority_host("emoji:http"), "emoji:http");
    }

    #[test]
    fn an_ipv6_literal_without_brackets_keeps_its_last_group() {
        // No port can be told from such a literal (RFC 3986 §3.2.2 has
        // one in brackets): cut at its last colon, `fe80::1` and `fe80::2`
        // were both `fe80:`, one host.
        assert_eq!(authority_host("::1"), "::1");
        assert_eq!(authority_host("fe80::1"), "fe80::1");
        assert_eq!(authority_host("u@fe80::1"), "fe80::1");
        let router =
            AuthorityRouter::new([("fe80::1".to_owned(), 1), ("fe80::2".to_owned(), 2)]).unwrap();
        assert_eq!(router.routes.len(), 2);
    }

    #[tokio::test]
    async fn routes_by_host_and_answers_404_otherwise() {
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new("routed".to_string()))
        });
        let mut router = AuthorityRouter::new([("emoji".to_string(), svc)]).unwrap();
        let req = Request::builder()
            .header("host", "EMOJI:8080")
            .body(())
            .unwrap();
        let res = router.call(req).await.unwrap();
        assert_eq!(res.body(), "routed");
        // A fully qualified name, with its trailing dot.
        let req = Request::get("http://emoji./").body(()).unwrap();
        let res = router.call(req).await.unwrap();
        assert_eq!(res.body(), "routed");
        let req = Request::builder()
            .uri("http://voting:8080/")
            .body(())
            .unwrap();
        let res = router.call(req).await.unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()["mesh-error"], "no route");
    }

    #[tokio::test]
    async fn a_host_registered_with_a_trailing_dot_or_a_port_is_routed() {
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new("routed".to_string()))
        });
        let mut router = AuthorityRouter::new([
            ("Emoji.Emojivoto.svc.cluster.local.".to_string(), svc),
            ("voting:8080".to_string(), svc),
        ])
        .unwrap();
        for host in [
            "emoji.emojivoto.svc.cluster.local",
            "emoji.emojivoto.svc.cluster.local.:80",
            "voting",
            "voting:9090",
        ] {
            let req = Request::builder().header("host", host).body(()).unwrap();
            let res = router.call(req).await.unwrap();
            assert_eq!(res.body(), "routed", "{host}");
        }
    }

    #[test]
    fn two_hosts_that_are_one_are_an_error_naming_both() {
        for (first, second) in [
            ("emoji", "Emoji."),
            ("emoji", "EMOJI"),
            ("emoji.", "emoji"),
            ("emoji:8080", "emoji:9090"),
            ("emoji", "emoji"),
        ] {
            let err = AuthorityRouter::new([
                (first.to_owned(), 1),
                ("voting".to_owned(), 2),
                ("web".to_owned(), 3),
                (second.to_owned(), 4),
            ])
            .map(|_| ())
            .unwrap_err();
            assert_eq!(err.host(), "emoji", "{second}");
            assert_eq!(err.first(), (0, first), "{second}");
            assert_eq!(err.second(), (3, second), "{second}");
            assert_eq!(
                err.to_string(),
                format!(
                    "routes[3]: {second:?} is the same host as routes[0] ({first:?}): \
                     hosts match without case, port or a trailing dot"
                )
            );
        }
    }

    #[test]
    fn distinct_hosts_are_kept() {
        let router = AuthorityRouter::new([
            ("emoji".to_owned(), 1),
            ("emoji.emojivoto".to_owned(), 2),
            ("[::1]:80".to_owned(), 3),
            ("[::2]".to_owned(), 4),
        ])
        .unwrap();
        assert_eq!(router.routes.len(), 4);
    }
}
