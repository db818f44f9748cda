//! A ServiceProfile route needs a name: it is the route's label on every
//! metric, and Linkerd's profile validation refuses a route without one
//! ("has a route with no name").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

fn profile(name: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  routes:
  - name: list
    condition: {{method: GET}}
  - name: {name}
    condition: {{method: POST}}
"
    )
}

#[test]
fn a_route_with_an_empty_name_is_refused_where_it_is() {
    for name in ["''", "\"\"", "'  '"] {
        let err = config::load("profile.yaml", &profile(name)).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{name}: {err}");
        assert_eq!(err.field_path(), "spec.routes[1].name", "{name}: {err}");
        assert_eq!(err.line(), Some(8), "{name}: {err}");
        assert!(
            err.to_string().contains("a route needs a name"),
            "{name}: {err}"
        );
    }
    let loaded = config::load("profile.yaml", &profile("create")).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(&*books.routes[1].name, "create");
}
