//! A ServiceProfile in another namespace than its service's, through real
//! sockets: Linkerd's destination controller serves a client the profile
//! of the service's name in the client's own namespace, else the one in
//! the service's namespace. So a profile in `web` of `emoji.emojivoto`
//! serves a workload in `web`, in place of the service's `HTTPRoute`s,
//! and leaves a workload in `emojivoto` to them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path};

use http::{Request, StatusCode};
use support::{
    upstreams::{check, named},
    *,
};

/// The policy file: an `HTTPRoute` of `emoji` in `emojivoto` that sends
/// `/list` to `emoji-v2`, and a ServiceProfile of
/// `emoji.emojivoto.svc.cluster.local` in `web` with a route of its own.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
    backendRefs: [{name: emoji-v2, port: 8080}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: web}
spec:
  routes:
  - name: list
    condition: {pathRegex: '/list'}
";

/// Writes `sidecar.yaml` into `dir` for a workload in `namespace`, with
/// the outbound services `emoji.emojivoto` (at `v1`) and
/// `emoji-v2.emojivoto` (at `v2`), and [`ROUTES`] as its policy file.
fn write_config(dir: &Path, namespace: &str, v1: SocketAddr, v2: SocketAddr) -> String {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, ROUTES).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji.emojivoto\n      endpoints: [{v1}]\n\
         \x20   - name: emoji-v2.emojivoto\n      endpoints: [{v2}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: {namespace}\n  files: [{}]\n",
        file.display()
    )
}

/// GETs `path` of `emoji.emojivoto` through the sidecar at `outbound`:
/// the status and the body.
async fn get(outbound: SocketAddr, path: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", "emoji.emojivoto")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, body)
}

#[tokio::test]
async fn a_profile_in_another_namespace_serves_the_clients_of_that_namespace_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);

    // In emojivoto no profile of the service is served: the HTTPRoute
    // sends /list to emoji-v2, and answers the rest 404.
    let config = write_config(dir.path(), "emojivoto", v1, v2);
    let running = sidecar(&config);
    for _ in 0..3 {
        assert_eq!(
            get(running.outbound, "/list").await,
            (StatusCode::OK, "v2".to_owned())
        );
    }
    assert_eq!(
        get(running.outbound, "/other").await.0,
        StatusCode::NOT_FOUND
    );
    stop(running).await;
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, &config).unwrap();
    let (stdout, _) = check(&path);
    assert!(!stdout.contains("set aside"), "{stdout}");

    // In web its profile serves the service alone: its route, then its
    // default route, both to the service itself; the HTTPRoute is set
    // aside.
    let config = write_config(dir.path(), "web", v1, v2);
    let running = sidecar(&config);
    for path in ["/list", "/other"] {
        assert_eq!(
            get(running.outbound, path).await,
            (StatusCode::OK, "v1".to_owned()),
            "{path}"
        );
    }
    stop(running).await;
    std::fs::write(&path, &config).unwrap();
    let (stdout, _) = check(&path);
    let aside = "document 1 (HTTPRoute emojivoto/emoji-canary): spec.parentRefs[0]: set aside \
                 for";
    let by = "document 2 (ServiceProfile web/emoji.emojivoto.svc.cluster.local), which serves \
              service emojivoto/emoji alone";
    assert!(stdout.contains(aside) && stdout.contains(by), "{stdout}");
}
