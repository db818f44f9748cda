//! Reloads of `policy.files` as a whole: the authorization policy and the
//! outbound routes they hold are one state, so a change refused in one file
//! keeps every file's last good state, for both; a Kubernetes ConfigMap's
//! `..data` symlink swap, and a file removed and written again, are picked
//! up; and a refused change shows in the metrics until a good one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path, time::Duration};

use http::{Request, Response, StatusCode};
use mesh_examples::sidecar;
use support::{
    policy::{AUTHZ, DANGLING, authz_closed},
    *,
};

/// An outbound route of `emoji` sending every request to `backend`.
fn route_to(backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: emoji-all, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji, port: 8080}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 8080}}]
"
    )
}

/// A `ServiceProfile` of `emoji` whose route's timeout is not a duration.
const BAD_PROFILE: &str = "---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: /list}
    timeout: soon
";

/// A backend that answers every request with `name`.
async fn named(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(
        listener,
        move |_| async move { Ok(Response::new(full(name))) },
    );
    addr
}

/// A plaintext sidecar in front of `app`, workload `app: emoji` in
/// `emojivoto` under the `deny` default, with the outbound services `emoji`
/// (at `v1`) and `emoji-v2` (at `v2`), reading `files` every 50 ms.
fn config(app: SocketAddr, v1: SocketAddr, v2: SocketAddr, files: &[&Path]) -> String {
    config_every(app, v1, v2, files, "50ms")
}

/// How often the tests that change both files, one after the other, read
/// them. A change is put in force once a read a quarter of this later finds
/// it again: only a stall that long between the two replacements, which a
/// busy machine can make of a few milliseconds but not of a quarter of a
/// second, would put the first file's change in force alone.
const TWO_WRITES_EVERY: &str = "1s";

/// [`config`], reading the files every `interval`.
fn config_every(
    app: SocketAddr,
    v1: SocketAddr,
    v2: SocketAddr,
    files: &[&Path],
    interval: &str,
) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{v1}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{v2}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{http: {}}}\n  default_policy: deny\n  files: [{}]\n  watch_interval: {interval}\n",
        app.port(),
        files.join(", ")
    )
}

/// The status of a GET through the inbound listener at `inbound`.
async fn inbound_status(inbound: SocketAddr) -> StatusCode {
    let req = Request::get(format!("http://{inbound}/list"))
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap().status()
}

/// Which backend of `emoji` answers a GET through the outbound listener.
async fn outbound_backend(outbound: SocketAddr) -> String {
    let req = Request::get(format!("http://{outbound}/list"))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    String::from_utf8(body_bytes(res).await.to_vec()).unwrap()
}

/// The value of the sample `line` (a metric and its labels) in `metrics`.
pub(crate) fn sample(metrics: &str, line: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until the sidecar at `admin` shows `line` with the value `n`.
pub(crate) async fn shows(admin: SocketAddr, line: &str, n: f64) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while sample(&scrape(admin).await, line) != Some(n) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    if waited.is_err() {
        panic!("no {line} {n}: {}", scrape(admin).await);
    }
}

const POLICY_ERRORS: &str = "inbound_policy_reloads_total{result=\"error\"}";
const POLICY_OKS: &str = "inbound_policy_reloads_total{result=\"ok\"}";
const ROUTE_ERRORS: &str = "outbound_route_reloads_total{result=\"error\"}";
const ROUTE_OKS: &str = "outbound_route_reloads_total{result=\"ok\"}";
const SUCCESSFUL: &str = "policy_last_reload_successful";

#[tokio::test]
async fn a_mistake_in_one_file_keeps_the_last_good_policy_and_routes_of_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let (authz, routes) = (
        dir.path().join("authz.yaml"),
        dir.path().join("routes.yaml"),
    );
    std::fs::write(&authz, AUTHZ).unwrap();
    std::fs::write(&routes, route_to("emoji")).unwrap();
    let (app, _) = backend().await;
    let (v1, v2) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&config_every(
        app,
        v1,
        v2,
        &[&authz, &routes],
        TWO_WRITES_EVERY,
    ));
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");

    // One change across both files, with a mistake in the first: neither
    // file's part is put in force, the routes of the second included.
    replace_file(&routes, route_to("emoji-v2"));
    replace_file(&authz, authz_closed() + DANGLING);
    shows(sidecar.admin, ROUTE_ERRORS, 1.0).await;
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, ROUTE_OKS), None, "{metrics}");
    assert_eq!(sample(&metrics, POLICY_OKS), None, "{metrics}");
    assert_eq!(sample(&metrics, POLICY_ERRORS), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, SUCCESSFUL), Some(0.0), "{metrics}");
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);

    // The mistake mended: both files' changes are in force together.
    replace_file(&authz, authz_closed());
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    until_in_force(|| outbound_backend(sidecar.outbound), |b| b == "v2").await;
    assert_eq!(outbound_backend(sidecar.outbound).await, "v2");
    assert_eq!(
        inbound_status(sidecar.inbound[0]).await,
        StatusCode::FORBIDDEN
    );
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, POLICY_OKS), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, SUCCESSFUL), Some(1.0), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_route_that_does_not_read_keeps_the_last_good_authorization_too() {
    let dir = tempfile::tempdir().unwrap();
    let (authz, routes) = (
        dir.path().join("authz.yaml"),
        dir.path().join("routes.yaml"),
    );
    std::fs::write(&authz, AUTHZ).unwrap();
    std::fs::write(&routes, route_to("emoji")).unwrap();
    let (app, _) = backend().await;
    let (v1, v2) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&config_every(
        app,
        v1,
        v2,
        &[&authz, &routes],
        TWO_WRITES_EVERY,
    ));
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);

    // The authorization is taken away, and the other file gets a
    // `ServiceProfile` whose timeout does not read: authorization does not
    // enforce profiles, so only the routes refuse it.
    replace_file(&authz, authz_closed());
    replace_file(&routes, route_to("emoji-v2") + BAD_PROFILE);
    shows(sidecar.admin, ROUTE_ERRORS, 1.0).await;
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, POLICY_OKS), None, "{metrics}");

    replace_file(&routes, route_to("emoji-v2"));
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    until_in_force(|| outbound_backend(sidecar.outbound), |b| b == "v2").await;
    assert_eq!(
        inbound_status(sidecar.inbound[0]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(outbound_backend(sidecar.outbound).await, "v2");
    stop(sidecar).await;
}

/// The two files of the tests, `authz.yaml` and `routes.yaml`, in `dir`.
struct Files {
    authz: std::path::PathBuf,
    routes: std::path::PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Self {
            authz: dir.join("authz.yaml"),
            routes: dir.join("routes.yaml"),
        }
    }
}

/// A sidecar over `files` holding `AUTHZ` and the route to `emoji`, read
/// every `interval`.
async fn started(files: &Files, interval: &str) -> sidecar::Running {
    let (app, _) = backend().await;
    let (v1, v2) = (named("v1").await, named("v2").await);
    let yaml = config_every(app, v1, v2, &[&files.authz, &files.routes], interval);
    let sidecar = sidecar(&yaml);
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");
    sidecar
}

#[tokio::test]
async fn a_removed_file_is_reported_until_it_is_back_and_its_old_contents_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    std::fs::write(&files.authz, AUTHZ).unwrap();
    std::fs::write(&files.routes, route_to("emoji")).unwrap();
    let sidecar = started(&files, "50ms").await;

    std::fs::remove_file(&files.authz).unwrap();
    shows(sidecar.admin, SUCCESSFUL, 0.0).await;
    shows(sidecar.admin, ROUTE_ERRORS, 1.0).await;
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);

    // Back as it was: nothing to load again, and nothing reloaded.
    replace_file(&files.authz, AUTHZ);
    shows(sidecar.admin, SUCCESSFUL, 1.0).await;
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, ROUTE_OKS), None, "{metrics}");
    assert_eq!(sample(&metrics, POLICY_OKS), None, "{metrics}");
    assert_eq!(sample(&metrics, ROUTE_ERRORS), Some(1.0), "{metrics}");

    // Replaced by a directory: refused as well, and a later write loads.
    std::fs::remove_file(&files.authz).unwrap();
    std::fs::create_dir(&files.authz).unwrap();
    shows(sidecar.admin, ROUTE_ERRORS, 2.0).await;
    assert_eq!(sample(&scrape(sidecar.admin).await, SUCCESSFUL), Some(0.0));
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);
    std::fs::remove_dir(&files.authz).unwrap();
    replace_file(&files.authz, authz_closed());
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    assert_eq!(
        inbound_status(sidecar.inbound[0]).await,
        StatusCode::FORBIDDEN
    );
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, SUCCESSFUL), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, POLICY_OKS), Some(1.0), "{metrics}");
    stop(sidecar).await;
}

/// A Kubernetes ConfigMap volume: each file a symlink through `..data`, a
/// symlink to a directory of the contents, which the kubelet replaces by
/// writing a new directory and renaming a new `..data` over the old one.
pub(crate) struct ConfigMapVolume {
    dir: std::path::PathBuf,
    generation: usize,
}

impl ConfigMapVolume {
    pub(crate) fn new(dir: &Path, files: &[(&str, &str)]) -> Self {
        std::fs::create_dir(dir).unwrap();
        let mut volume = Self {
            dir: dir.to_owned(),
            generation: 0,
        };
        volume.update(files);
        for (name, _) in files {
            let link = Path::new("..data").join(name);
            std::os::unix::fs::symlink(link, dir.join(name)).unwrap();
        }
        volume
    }

    /// Writes `files` into a new directory and swaps `..data` to it, then
    /// removes the old one, as the kubelet's atomic writer does.
    pub(crate) fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let data = format!("..2026_11_30_00_00_0{}", self.generation);
        std::fs::create_dir(self.dir.join(&data)).unwrap();
        for (name, text) in files {
            std::fs::write(self.dir.join(&data).join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            let old = format!("..2026_11_30_00_00_0{}", self.generation - 1);
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_configmaps_symlink_swap_is_put_in_force_whole() {
    let dir = tempfile::tempdir().unwrap();
    let volume_dir = dir.path().join("policy");
    let mut volume = ConfigMapVolume::new(
        &volume_dir,
        &[("authz.yaml", AUTHZ), ("routes.yaml", &route_to("emoji"))],
    );
    let files = Files::in_dir(&volume_dir);
    let sidecar = started(&files, "50ms").await;

    // Both files change in one swap, with a mistake in one: neither is
    // put in force.
    let closed = authz_closed();
    let dangling = closed.clone() + DANGLING;
    volume.update(&[
        ("authz.yaml", &dangling),
        ("routes.yaml", &route_to("emoji-v2")),
    ]);
    shows(sidecar.admin, ROUTE_ERRORS, 1.0).await;
    assert_eq!(inbound_status(sidecar.inbound[0]).await, StatusCode::OK);
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");

    volume.update(&[
        ("authz.yaml", &closed),
        ("routes.yaml", &route_to("emoji-v2")),
    ]);
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    until_in_force(|| outbound_backend(sidecar.outbound), |b| b == "v2").await;
    assert_eq!(
        inbound_status(sidecar.inbound[0]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(outbound_backend(sidecar.outbound).await, "v2");
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, POLICY_OKS), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, SUCCESSFUL), Some(1.0), "{metrics}");

    // A swap to the same contents changes nothing: of it and the change
    // after it, only the change is loaded (the store counts a load before
    // it is in force).
    volume.update(&[
        ("authz.yaml", &closed),
        ("routes.yaml", &route_to("emoji-v2")),
    ]);
    volume.update(&[("authz.yaml", AUTHZ), ("routes.yaml", &route_to("emoji"))]);
    tokio::time::timeout(Duration::from_secs(10), async {
        while inbound_status(sidecar.inbound[0]).await != StatusCode::OK {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the last swap is put in force");
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, POLICY_OKS), Some(2.0), "{metrics}");
    shows(sidecar.admin, ROUTE_OKS, 2.0).await;
    until_in_force(|| outbound_backend(sidecar.outbound), |b| b == "v1").await;
    assert_eq!(outbound_backend(sidecar.outbound).await, "v1");
    stop(sidecar).await;
}

#[tokio::test]
async fn two_files_written_one_after_the_other_are_put_in_force_together() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    std::fs::write(&files.authz, AUTHZ).unwrap();
    std::fs::write(&files.routes, route_to("emoji")).unwrap();
    // Read every second: a change is put in force once a read a quarter
    // of a second later finds it again, and these two writes take
    // microseconds.
    let sidecar = started(&files, TWO_WRITES_EVERY).await;

    replace_file(&files.routes, route_to("emoji-v2"));
    replace_file(&files.authz, authz_closed());
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    until_in_force(|| outbound_backend(sidecar.outbound), |b| b == "v2").await;
    assert_eq!(
        inbound_status(sidecar.inbound[0]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(outbound_backend(sidecar.outbound).await, "v2");
    // One reload: the routes alone were never put in force.
    let metrics = scrape(sidecar.admin).await;
    assert_eq!(sample(&metrics, POLICY_OKS), Some(1.0), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_change_that_leaves_the_routes_as_they_were_keeps_their_connections() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    std::fs::write(&files.authz, AUTHZ).unwrap();
    std::fs::write(&files.routes, route_to("emoji")).unwrap();
    let (app, _) = backend().await;
    let (v1, accepted) = per_connection_app().await;
    let v2 = named("v2").await;
    let sidecar = sidecar(&config(app, v1, v2, &[&files.authz, &files.routes]));
    // One client connection, so one runtime of the sidecar and its pool.
    let client = http1();
    let list = || {
        Request::get(format!("http://{}/list", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap()
    };
    let res = client.request(list()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    body_bytes(res).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Only the authorization changes: the routes are planned again, the
    // same, over the same connections.
    replace_file(&files.authz, authz_closed());
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    let res = client.request(list()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = body_bytes(res).await;
    assert!(body.ends_with(b"\n2"), "{body:?}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    stop(sidecar).await;
}

#[tokio::test]
async fn requests_in_flight_finish_as_they_started_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    std::fs::write(&files.authz, AUTHZ).unwrap();
    std::fs::write(&files.routes, route_to("emoji")).unwrap();
    let (app, app_gate) = backend().await;
    let (v1, v1_gate) = backend().await;
    let v2 = named("v2").await;
    let sidecar = sidecar(&config_every(
        app,
        v1,
        v2,
        &[&files.authz, &files.routes],
        TWO_WRITES_EVERY,
    ));
    let inbound = sidecar.inbound[0];
    let outbound = sidecar.outbound;

    // One request held in the application behind the inbound listener,
    // one held in `emoji`'s endpoint behind the outbound listener.
    let held_in = tokio::spawn(async move {
        let req = Request::get(format!("http://{inbound}/hold"))
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        (res.status(), body_bytes(res).await)
    });
    app_gate.arrived.notified().await;
    let held_out = tokio::spawn(async move {
        let req = Request::get(format!("http://{outbound}/hold"))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        (res.status(), body_bytes(res).await)
    });
    v1_gate.arrived.notified().await;

    replace_file(&files.routes, route_to("emoji-v2"));
    replace_file(&files.authz, authz_closed());
    shows(sidecar.admin, ROUTE_OKS, 1.0).await;
    until_in_force(|| outbound_backend(outbound), |b| b == "v2").await;
    assert_eq!(inbound_status(inbound).await, StatusCode::FORBIDDEN);
    assert_eq!(outbound_backend(outbound).await, "v2");

    app_gate.release.notify_one();
    v1_gate.release.notify_one();
    let (status, body) = held_in.await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"held"[..]));
    let (status, body) = held_out.await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"held"[..]));
    stop(sidecar).await;
}
