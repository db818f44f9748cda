//! A tap's path prefix is compared with request paths in the normal form
//! the mesh serves them in (`/%61pi/vote` is `/api/vote`), while the tap
//! shows each path as it was sent. A prefix in another spelling, such as
//! one copied from a tap's own line, can never be the start of a path in
//! normal form: it would open a tap that stays empty while the requests
//! it names go by. It is refused, naming the prefix that works.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use http::Request;
use mesh_metrics::{
    Direction,
    tap::{Tap, TapEventKind, TapFilter, TapLayer},
};
use tower::{Layer, ServiceExt, service_fn};

#[test]
fn a_path_prefix_not_in_normal_form_is_refused_with_the_one_that_works() {
    // (query, the prefix that works); `%25` is a `%` in a query.
    for (query, normal) in [
        ("path=/%2561pi", "/api"),
        ("path=//admin", "/admin"),
        ("path=/api/./v1", "/api/v1"),
        ("path=/public/../admin/", "/admin/"),
        ("path=/a%252fb", "/a%2Fb"),
    ] {
        let error = TapFilter::from_query(query).unwrap_err();
        assert_eq!(error.parameter, "path", "{query}");
        assert!(
            error.reason.contains(&format!("`{normal}`")),
            "{query}: {error}"
        );
    }
    // Prefixes in normal form, and one that has none (matched as it is
    // sent, as a path that has none is), are taken as they are.
    for prefix in ["/", "/api", "/api/", "/api/v", "/a%2Fb", "/%7", "/a%zz"] {
        let query = format!("path={}", prefix.replace('%', "%25"));
        let filter = TapFilter::from_query(&query).unwrap();
        assert_eq!(filter.path.as_deref(), Some(prefix), "{query}");
    }
}

#[tokio::test]
async fn a_prefix_in_normal_form_sees_every_spelling_of_its_paths() {
    let tap = Tap::new();
    let mut sub = tap
        .subscribe(TapFilter::from_query("path=/api").unwrap())
        .unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(service_fn(|_: Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
        ))
    }));
    for path in ["/%61pi/vote", "//api", "/x/../api/list"] {
        let req = Request::get(path).body(()).unwrap();
        svc.clone().oneshot(req).await.unwrap();
        let event = sub.next().await.unwrap();
        match event.kind {
            TapEventKind::Req { path: shown, .. } => assert_eq!(shown, path),
            other => panic!("{other:?}"),
        }
        sub.next().await.unwrap();
        sub.next().await.unwrap();
    }
}
