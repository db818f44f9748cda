use http::Method;
use mesh_core::route::HeaderMatch;
use tower::service_fn;

use super::*;

fn route(name: &str, matches: Vec<RouteMatch>) -> Route<&'static str> {
    Route {
        id: RouteId::new(name),
        hosts: RouteHosts::default(),
        matches: matches.into(),
        service: "",
    }
}

fn router() -> OutboundRouter<&'static str, ()> {
    let routes = ServiceRoutes::new(
        DstService(Arc::from("emoji")),
        vec![route(
            "post-vote",
            vec![RouteMatch::new().with_method(Method::POST)],
        )]
        .into(),
        Some(route("default", Vec::new())),
    );
    OutboundRouter::new(RouteTable::new([("Emoji".to_owned(), routes)]), ())
}

fn labels(
    router: &OutboundRouter<&'static str, ()>,
    req: &Request<()>,
) -> Option<(String, String)> {
    let services = router.table.0.load();
    let service = by_host(&**services, req)?;
    let route = service.route(req)?;
    Some((
        service.dst.as_str().to_owned(),
        route.id.as_str().to_owned(),
    ))
}

#[test]
fn the_authority_picks_the_service_and_the_matches_its_route() {
    let router = router();
    let get = Request::get("/")
        .header("host", "EMOJI:8080")
        .body(())
        .unwrap();
    assert_eq!(
        labels(&router, &get),
        Some(("emoji".into(), "default".into()))
    );
    let post = Request::post("http://emoji./vote").body(()).unwrap();
    assert_eq!(
        labels(&router, &post),
        Some(("emoji".into(), "post-vote".into()))
    );
    let other = Request::get("http://voting/").body(()).unwrap();
    assert_eq!(labels(&router, &other), None);
}

#[tokio::test]
async fn routed_requests_carry_their_labels_and_unknown_ones_get_404() {
    let seen = service_fn(|req: Request<()>| async move {
        let dst = req.extensions().get::<DstService>().cloned();
        let route = req.extensions().get::<RouteId>().cloned();
        let mut res = Response::new(String::new());
        *res.body_mut() = format!("{dst:?} {route:?}");
        Ok::<_, std::convert::Infallible>(res)
    });
    let routes = ServiceRoutes::new(
        DstService(Arc::from("emoji")),
        Box::new([]),
        Some(Route {
            id: RouteId::new("default"),
            hosts: RouteHosts::default(),
            matches: Box::new([]),
            service: seen,
        }),
    );
    let not_found = NoRoute::<String, std::convert::Infallible>::new();
    let router = OutboundRouter::new(RouteTable::new([("emoji".to_owned(), routes)]), not_found);
    let res = router
        .clone()
        .oneshot(Request::get("http://emoji/").body(()).unwrap())
        .await
        .unwrap();
    assert!(res.body().contains("emoji") && res.body().contains("default"));
    let res = router
        .oneshot(Request::get("http://nope/").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["mesh-error"], "no route");
}

/// What the service a request reached saw: its name, its route, and the
/// override headers left on the request.
fn seeing(name: &'static str) -> ServiceRoutes<SeenBy> {
    let service = service_fn(move |req: Request<()>| async move {
        let route = req.extensions().get::<RouteId>().cloned();
        let left: Vec<_> = ["mesh-dst-override", "l5d-dst-override"]
            .into_iter()
            .filter(|h| req.headers().contains_key(*h))
            .collect();
        let text = format!(
            "{name} {} {left:?}",
            route.map_or("-".into(), |r| r.as_str().to_owned())
        );
        Ok::<_, std::convert::Infallible>(Response::new(text))
    });
    ServiceRoutes::new(
        DstService(Arc::from(name)),
        // A route that matches on the override never matches: the header
        // is gone before the routes are tried.
        Box::new([Route {
            id: RouteId::new("by-override-header"),
            hosts: RouteHosts::default(),
            matches: Box::new([RouteMatch::new().with_header(HeaderMatch::exact(
                http::HeaderName::from_static("mesh-dst-override"),
                "voting",
            ))]),
            service: SeenBy::new(service),
        }]),
        Some(Route {
            id: RouteId::new("default"),
            hosts: RouteHosts::default(),
            matches: Box::new([]),
            service: SeenBy::new(service),
        }),
    )
}

type SeenBy =
    tower::util::BoxCloneSyncService<Request<()>, Response<String>, std::convert::Infallible>;

fn two_services(
    ingress_mode: bool,
) -> OutboundRouter<SeenBy, NoRoute<String, std::convert::Infallible>> {
    let table = RouteTable::new([
        ("emoji".to_owned(), seeing("emoji")),
        ("voting".to_owned(), seeing("voting")),
    ]);
    OutboundRouter::new(table, NoRoute::new()).with_ingress_mode(ingress_mode)
}

async fn send(
    router: &OutboundRouter<SeenBy, NoRoute<String, std::convert::Infallible>>,
    headers: &[(&str, &str)],
) -> Response<String> {
    let mut req = Request::get("/").header("host", "shop.example.com");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    router.clone().oneshot(req.body(()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn in_ingress_mode_the_override_picks_the_service_and_is_removed() {
    let router = two_services(true);
    for (header, value) in [
        ("mesh-dst-override", "voting"),
        ("l5d-dst-override", "voting.:8080"),
        ("mesh-dst-override", "VOTING:80"),
    ] {
        let res = send(&router, &[(header, value)]).await;
        assert_eq!(res.body(), "voting default []", "{header}: {value}");
    }
    let both = send(
        &router,
        &[
            ("mesh-dst-override", "voting"),
            ("l5d-dst-override", "voting:80"),
        ],
    )
    .await;
    assert_eq!(both.body(), "voting default []");
}

#[tokio::test]
async fn in_ingress_mode_an_unknown_or_conflicting_override_gets_the_unknown_authority_404() {
    let router = two_services(true);
    for headers in [
        &[("mesh-dst-override", "web")][..],
        &[("l5d-dst-override", "shop.example.com:80")],
        &[
            ("mesh-dst-override", "emoji"),
            ("l5d-dst-override", "voting"),
        ],
        &[("mesh-dst-override", "")],
    ] {
        let res = send(&router, headers).await;
        assert_eq!(res.status(), 404, "{headers:?}");
        assert_eq!(res.headers()["mesh-error"], "no route", "{headers:?}");
    }
}

#[tokio::test]
async fn in_ingress_mode_a_request_without_override_goes_by_its_authority() {
    let router = two_services(true);
    let res = router
        .clone()
        .oneshot(
            Request::get("/")
                .header("host", "emoji:8080")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.body(), "emoji default []");
    assert_eq!(send(&router, &[]).await.status(), 404);
}

#[tokio::test]
async fn outside_ingress_mode_the_override_is_ignored_and_removed() {
    let router = two_services(false);
    let res = router
        .clone()
        .oneshot(
            Request::get("/")
                .header("host", "emoji")
                .header("mesh-dst-override", "voting")
                .header("l5d-dst-override", "voting")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.body(), "emoji default []");
    let res = send(&router, &[("mesh-dst-override", "voting")]).await;
    assert_eq!(
        res.status(),
        404,
        "the authority decides, and it is unknown"
    );
}

#[test]
fn of_routes_whose_hostnames_rank_alike_the_first_in_order_wins() {
    let hosted = |name: &str, hosts: &[&str]| Route {
        hosts: RouteHosts::new(hosts),
        ..route(name, vec![RouteMatch::new()])
    };
    let routes = ServiceRoutes::new(
        DstService(Arc::from("emoji")),
        vec![
            hosted("any", &[]),
            hosted("first", &["*.example"]),
            hosted("second", &["*.example"]),
            hosted("exact", &["emoji.example"]),
        ]
        .into(),
        None,
    );
    let name = |req: &Request<()>| routes.route(req).map(|r| r.id.as_str().to_owned());
    let to = |host: &str| Request::get("/").header("host", host).body(()).unwrap();
    assert_eq!(name(&to("emoji.example")).as_deref(), Some("exact"));
    assert_eq!(name(&to("books.example")).as_deref(), Some("first"));
    assert_eq!(name(&to("emoji")).as_deref(), Some("any"));
    // A request that names no host takes only a route that names none.
    let no_host = Request::get("/").body(()).unwrap();
    assert_eq!(name(&no_host).as_deref(), Some("any"));
}
