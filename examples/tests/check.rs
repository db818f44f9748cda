//! `sidecar check` on real files: configurations, certificates from the
//! mesh's CA, policy resources, applications listening on 127.0.0.1 and a
//! running sidecar's admin server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_examples::sidecar::check::{self, CheckOptions, Report, Status};
use mesh_tls::ca::{self, CertificateAuthority, IssueRequest};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use tokio::net::TcpListener;

const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A Server on the app's port that only `web` may call: a policy with
/// nothing that is not enforced.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: emoji-http, namespace: emojivoto }
spec:
  podSelector: { matchLabels: { app: emoji } }
  port: http
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: web-only, namespace: emojivoto }
spec:
  identities: [\"spiffe://example.org/ns/emojivoto/sa/web\"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: emoji-from-web, namespace: emojivoto }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: emoji-http }
  requiredAuthenticationRefs:
    - { group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only }
";

/// A temporary directory with a CA for `example.org` in `ca/`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        ca::write_ca(&dir.path().join("ca"), &"example.org".parse().unwrap()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a certificate from the CA in `ca_dir` into `name/`.
    fn issue_from(&self, ca_dir: &str, name: &str, request: &IssueRequest) -> PathBuf {
        let out = self.path(name);
        ca::issue_with(&self.path(ca_dir), request, &out).unwrap();
        out
    }

    fn issue(&self, name: &str, request: &IssueRequest) -> PathBuf {
        self.issue_from("ca", name, request)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A CA for `example.org` whose trust anchor and issuer became valid
/// `age` ago and live a year: what a CA in service for a while looks like.
/// The mesh's CA always starts now, so this one is made with rcgen.
fn ca_made_ago(age: Duration) -> CertificateAuthority {
    ca_made(age, 365 * DAY, 365 * DAY)
}

/// A CA for `example.org` whose trust anchor and issuer became valid
/// `age` ago, the anchor to live `anchor_life` and the issuer
/// `issuer_life`.
fn ca_made(age: Duration, anchor_life: Duration, issuer_life: Duration) -> CertificateAuthority {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let start = (SystemTime::now() - age)
        .duration_since(UNIX_EPOCH)
        .unwrap();
    let start = Duration::from_secs(start.as_secs());
    let params = |name: &str, path_len: u8| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = path_len == 0;
        params.not_before = epoch + start;
        let life = if path_len == 0 {
            issuer_life
        } else {
            anchor_life
        };
        params.not_after = epoch + start + life;
        params
    };
    let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_cert = params("old trust anchor", 1)
        .self_signed(&anchor_key)
        .unwrap();
    let anchor = Issuer::new(params("old trust anchor", 1), anchor_key);
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer_cert = params("old issuer", 0)
        .signed_by(&issuer_key, &anchor)
        .unwrap();
    CertificateAuthority::from_pem(
        &anchor_cert.pem(),
        &issuer_cert.pem(),
        &issuer_key.serialize_pem(),
    )
    .unwrap()
}

fn emoji() -> IssueRequest {
    IssueRequest::new(EMOJI.parse().unwrap())
}

/// The `emoji` workload's configuration.
struct Config<'a> {
    certs: Option<&'a Path>,
    /// The identity the certificate must name, when the file says.
    identity: Option<&'a str>,
    app: SocketAddr,
    inbound: SocketAddr,
    admin: SocketAddr,
    policy: Option<&'a Path>,
    /// The `services` of the `outbound` section, as YAML lines.
    outbound_services: &'a str,
}

impl<'a> Config<'a> {
    fn new(certs: &'a Path, app: SocketAddr) -> Self {
        Self {
            certs: Some(certs),
            identity: None,
            app,
            inbound: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            policy: None,
            outbound_services: "",
        }
    }

    fn yaml(&self) -> String {
        let mut yaml = String::new();
        if let Some(certs) = self.certs {
            yaml.push_str(&format!(
                "identity:\n  dir: {}\n  trust_domain: example.org\n",
                certs.display()
            ));
            if let Some(identity) = self.identity {
                yaml.push_str(&format!("  identity: {identity}\n"));
            }
        }
        yaml.push_str(&format!(
            "inbound:\n  listen: {}\n  app: {}\n  protocol: http\n\
             outbound:\n  listen: 127.0.0.1:0\n{}\
             admin:\n  listen: {}\n\
             server:\n  threads: 1\n\
             policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
             \x20   ports: {{http: {}}}\n",
            self.inbound,
            self.app,
            self.outbound_services,
            self.admin,
            self.app.port()
        ));
        if let Some(policy) = self.policy {
            yaml.push_str(&format!("  files: [{}]\n", policy.display()));
        }
        yaml
    }
}

/// An application that accepts connections: the kernel completes them
/// whether or not anyone calls `accept`.
async fn app() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An address on which nothing listens.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::refused_port()))
}

/// Writes `config` and checks it before the sidecar starts, so that the
/// admin server is not asked.
async fn check_pre(files: &Files, config: &Config<'_>) -> Report {
    let path = files.write("sidecar.yaml", &config.yaml());
    check::run(&path, &CheckOptions::default().with_pre(true)).await
}

/// Checks, before start, a sidecar whose identity files are in `certs`
/// and whose application is listening.
async fn check_certs(files: &Files, certs: &Path) -> Report {
    let app = app().await;
    check_pre(files, &Config::new(certs, app.local_addr().unwrap())).await
}

/// The check titled `title` (a prefix), which must be there.
fn status(report: &Report, title: &str) -> Status {
    report
        .find(title)
        .unwrap_or_else(|| panic!("no check {title:?} in\n{report}"))
        .status
}

fn detail<'r>(report: &'r Report, title: &str) -> &'r str {
    report.find(title).unwrap().detail.as_deref().unwrap_or("")
}

fn failures(report: &Report) -> Vec<&str> {
    report
        .checks()
        .filter(|(_, check)| check.status == Status::Fail)
        .map(|(_, check)| check.title.as_str())
        .collect()
}

#[tokio::test]
async fn a_running_sidecar_with_good_files_passes_every_check() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji().with_ttl(DAY));
    let policy = files.write("policy.yaml", POLICY);
    let (app, _) = support::backend().await;
    let mut config = Config::new(&certs, app);
    config.policy = Some(&policy);
    let running = support::sidecar(&config.yaml());
    // The file describes the sidecar as it runs: its bound addresses.
    config.inbound = running.inbound[0];
    config.admin = running.admin;
    let path = files.write("sidecar.yaml", &config.yaml());
    // `/ready` answers 503 until the proxy's runtimes serve and the
    // credentials are loaded, which a busy machine takes its time over;
    // and each admin request then gets longer than the default second.
    mesh_examples::sidecar::wait_ready::wait_ready(running.admin, Duration::from_secs(30))
        .await
        .unwrap();
    let options = CheckOptions::default().with_timeout(Duration::from_secs(10));

    let report = check::run(&path, &options).await;
    support::stop(running).await;

    let text = report.to_string();
    assert_eq!(report.status(), Status::Pass, "{text}");
    assert!(report.is_success());
    let groups: Vec<&str> = report.groups.iter().map(|g| g.name).collect();
    assert_eq!(
        groups,
        [
            "sidecar-config",
            "sidecar-identity",
            "sidecar-policy",
            "sidecar-app",
            "sidecar-admin"
        ]
    );
    for line in [
        format!("✔ config file {} is valid", path.display()),
        "✔ certificate, key and trust bundle can be read".to_owned(),
        "✔ certificate chain verifies against the trust bundle".to_owned(),
        format!("✔ certificate identity {EMOJI} is in trust domain example.org"),
        "✔ workload certificate is within its validity period".to_owned(),
        // A day-long certificate is short-lived by design, not about to
        // expire: it warns only when its renewal is late.
        "✔ workload certificate does not expire soon".to_owned(),
        "✔ CA certificates are within their validity period".to_owned(),
        "✔ CA certificates do not expire soon".to_owned(),
        "✔ policy resources are valid".to_owned(),
        format!("✔ app at {app} accepts connections"),
        format!("✔ sidecar is live ({}/live)", config.admin),
        format!("✔ sidecar is ready ({}/ready)", config.admin),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert_eq!(
        text.lines().last(),
        Some(format!("✔ {} checks passed", report.checks().count()).as_str())
    );
}

#[tokio::test]
async fn an_expired_certificate_fails_its_validity_check() {
    let files = Files::new();
    let expired = emoji()
        .with_not_before(SystemTime::now() - 3 * HOUR)
        .with_ttl(HOUR);
    let certs = files.path("emoji");
    let issued = ca_made_ago(30 * DAY).issue_with(&expired).unwrap();
    issued.write(&certs).unwrap();
    let report = check_certs(&files, &certs).await;

    assert_eq!(
        failures(&report),
        ["workload certificate is within its validity period"],
        "{report}"
    );
    assert!(!report.is_success());
    let why = detail(&report, "workload certificate is within");
    let named = format!(
        "workload certificate in {} expired at ",
        certs.join("tls.crt").display()
    );
    assert!(
        why.starts_with(&named) && why.ends_with(", 2h 0m ago"),
        "{why}"
    );
    // The chain itself is sound: it verifies as of the certificate's life.
    assert_eq!(status(&report, "certificate chain verifies"), Status::Pass);
    assert!(
        detail(&report, "certificate chain verifies").starts_with("verified as of "),
        "{report}"
    );
    // Expiring soon is moot for a certificate that has expired.
    assert!(
        report
            .find("workload certificate does not expire")
            .is_none()
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "\n✖ workload certificate is within its validity period\n    {named}"
        )),
        "{text}"
    );
    assert!(report.summary().starts_with("✖ 1 of "), "{text}");
}

#[tokio::test]
async fn a_certificate_that_expired_before_its_issuer_existed_has_no_chain_check() {
    let files = Files::new();
    // The issuer was made a minute ago; the certificate expired before.
    let expired = emoji()
        .with_not_before(SystemTime::now() - 3 * HOUR)
        .with_ttl(HOUR);
    let certs = files.issue("emoji", &expired);
    let report = check_certs(&files, &certs).await;

    assert_eq!(
        failures(&report),
        ["workload certificate is within its validity period"],
        "{report}"
    );
    assert!(
        report.find("certificate chain verifies").is_none(),
        "{report}"
    );
}

#[tokio::test]
async fn a_certificate_not_valid_yet_fails_its_validity_check() {
    let files = Files::new();
    let future = emoji()
        .with_not_before(SystemTime::now() + 2 * HOUR)
        .with_ttl(DAY);
    let certs = files.issue("emoji", &future);
    let report = check_certs(&files, &certs).await;

    assert_eq!(
        failures(&report),
        ["workload certificate is within its validity period"],
        "{report}"
    );
    let why = detail(&report, "workload certificate is within");
    let named = format!(
        "workload certificate in {} is not valid until ",
        certs.join("tls.crt").display()
    );
    assert!(why.starts_with(&named), "{why}");
}

#[tokio::test]
async fn a_certificate_within_seven_days_of_expiry_warns_and_succeeds() {
    let files = Files::new();
    // A 30-day certificate with 3 days left.
    let late = emoji()
        .with_not_before(SystemTime::now() - 27 * DAY)
        .with_ttl(30 * DAY);
    let certs = files.issue("emoji", &late);
    let report = check_certs(&files, &certs).await;

    assert_eq!(
        status(&report, "workload certificate does not expire soon"),
        Status::Warn,
        "{report}"
    );
    assert_eq!(report.count(Status::Warn), 1, "{report}");
    assert_eq!(report.count(Status::Fail), 0, "{report}");
    assert!(report.is_success());
    let why = detail(&report, "workload certificate does not expire soon");
    assert!(why.ends_with(", in 2d 23h"), "{why}");
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "\n‼ workload certificate does not expire soon\n    workload certificate in {} \
             expires at ",
            certs.join("tls.crt").display()
        )),
        "{text}"
    );
    assert!(
        report
            .summary()
            .ends_with("checks passed, 1 with a warning"),
        "{text}"
    );
}

#[tokio::test]
async fn a_certificate_outside_the_trust_domain_fails() {
    let files = Files::new();
    ca::write_ca(&files.path("other-ca"), &"other.org".parse().unwrap()).unwrap();
    let stranger = IssueRequest::new("spiffe://other.org/ns/emojivoto/sa/emoji".parse().unwrap());
    let certs = files.issue_from("other-ca", "emoji", &stranger);
    let report = check_certs(&files, &certs).await;

    let title = "certificate identity spiffe://other.org/ns/emojivoto/sa/emoji is in trust domain example.org";
    assert_eq!(failures(&report), [title], "{report}");
    assert_eq!(
        detail(&report, title),
        format!(
            "identity spiffe://other.org/ns/emojivoto/sa/emoji is outside trust domain \
             example.org (the certificate in {})",
            certs.join("tls.crt").display()
        )
    );
    // Its own CA signed it: the chain is fine, the domain is not.
    assert_eq!(status(&report, "certificate chain verifies"), Status::Pass);
    assert!(!report.is_success());
}

#[tokio::test]
async fn a_certificate_for_another_workload_fails() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let app = app().await;
    let web = "spiffe://example.org/ns/emojivoto/sa/web";
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.identity = Some(web);
    let report = check_pre(&files, &config).await;

    let title = format!("certificate names the configured identity {web}");
    assert_eq!(failures(&report), [title.as_str()], "{report}");
    assert_eq!(
        detail(&report, &title),
        format!("certificate names {EMOJI}, expected {web}")
    );

    config.identity = Some(EMOJI);
    let report = check_pre(&files, &config).await;
    assert_eq!(
        status(&report, "certificate names the configured identity"),
        Status::Pass,
        "{report}"
    );
}

#[tokio::test]
async fn a_bundle_from_another_ca_fails_chain_verification() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    ca::write_ca(&files.path("other-ca"), &"example.org".parse().unwrap()).unwrap();
    std::fs::copy(files.path("other-ca/ca.crt"), certs.join("ca.crt")).unwrap();
    let report = check_certs(&files, &certs).await;

    assert_eq!(
        failures(&report),
        ["certificate chain verifies against the trust bundle"],
        "{report}"
    );
    assert!(
        detail(&report, "certificate chain verifies")
            .starts_with("certificate chain does not verify against the trust bundle"),
        "{report}"
    );
}

#[tokio::test]
async fn missing_certificate_files_fail_and_skip_the_other_identity_checks() {
    let files = Files::new();
    let nowhere = files.path("nowhere");
    let report = check_certs(&files, &nowhere).await;

    let identity = report.group("sidecar-identity").unwrap();
    assert_eq!(identity.checks.len(), 1, "{report}");
    assert_eq!(identity.checks[0].status, Status::Fail);
    let why = identity.checks[0].detail.as_deref().unwrap();
    assert!(
        why.starts_with(&format!(
            "cannot read {}",
            nowhere.join("tls.crt").display()
        )),
        "{why}"
    );
}

#[tokio::test]
async fn an_unreachable_app_fails() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let closed = closed_port();
    let report = check_pre(&files, &Config::new(&certs, closed)).await;

    let title = format!("app at {closed} accepts connections");
    assert_eq!(failures(&report), [title.as_str()], "{report}");
    assert!(
        detail(&report, &title).to_lowercase().contains("refused"),
        "{report}"
    );
    assert!(!report.is_success());
}

#[tokio::test]
async fn a_bad_policy_file_fails_with_its_file_field_and_line() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let bad = POLICY.replace("port: http", "port: http\n  proxyProtocol: carrier-pigeon");
    let policy = files.write("policy.yaml", &bad);
    let app = app().await;
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.policy = Some(&policy);
    let report = check_pre(&files, &config).await;

    assert_eq!(
        failures(&report),
        ["policy resources are valid"],
        "{report}"
    );
    let why = detail(&report, "policy resources are valid");
    assert!(why.starts_with(&policy.display().to_string()), "{why}");
    assert!(why.contains("spec.proxyProtocol"), "{why}");
    assert!(why.contains("at line 7 column 18"), "{why}");
}

#[tokio::test]
async fn policy_that_is_read_but_not_enforced_warns() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let with_profile = format!(
        "{POLICY}---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{ name: voting.emojivoto.svc.cluster.local, namespace: emojivoto }}
spec:
  routes:
    - name: vote
      condition: {{ method: POST, pathRegex: /vote }}
      isRetryable: true
"
    );
    let policy = files.write("policy.yaml", &with_profile);
    let app = app().await;
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.policy = Some(&policy);
    let report = check_pre(&files, &config).await;

    let policy_checks = &report.group("sidecar-policy").unwrap().checks;
    assert_eq!(policy_checks[0].status, Status::Pass, "{report}");
    let warnings: Vec<&str> = policy_checks[1..]
        .iter()
        .inspect(|check| assert_eq!(check.status, Status::Warn))
        .map(|check| check.title.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("document 4 (ServiceProfile") && w.contains("not enforced")),
        "{report}"
    );
    assert!(report.is_success(), "{report}");
}

#[tokio::test]
async fn a_route_to_a_service_that_is_not_outbound_warns() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let split = format!(
        "{POLICY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: voting-canary, namespace: emojivoto }}
spec:
  parentRefs: [{{ group: core, kind: Service, name: voting }}]
  rules:
    - backendRefs: [{{ name: voting, weight: 9 }}, {{ name: voting-v2, weight: 1 }}]
"
    );
    let policy = files.write("policy.yaml", &split);
    let app = app().await;
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.policy = Some(&policy);
    config.outbound_services = "  services:\n    - { name: voting, endpoints: [127.0.0.1:9] }\n";
    let report = check_pre(&files, &config).await;

    // A route may be applied before the service it names: the sidecar
    // answers that backend's share 500 and starts, so the check warns.
    assert!(failures(&report).is_empty(), "{report}");
    let policy_checks = &report.group("sidecar-policy").unwrap().checks;
    assert_eq!(policy_checks[0].status, Status::Pass, "{report}");
    // Named where it is written: the route's file, document and backend.
    let warning = format!(
        "{}: document 4 (HTTPRoute emojivoto/voting-canary): spec.rules[0].backendRefs[1]: route \
         voting-canary sends requests to service voting-v2.emojivoto, which is not in \
         outbound.services; the requests drawn to it are answered 500 (gRPC UNAVAILABLE)",
        policy.display()
    );
    assert!(
        policy_checks
            .iter()
            .any(|c| c.status == Status::Warn && c.title == warning),
        "{warning} in {report}"
    );
}

#[tokio::test]
async fn an_invalid_config_fails_alone_with_its_field_path_and_line() {
    let files = Files::new();
    let path = files.write(
        "sidecar.yaml",
        "inbound:\n  listen: 127.0.0.1:0\n  app: 127.0.0.1:99999\n",
    );
    let report = check::run(&path, &CheckOptions::default()).await;

    assert_eq!(report.groups.len(), 1, "{report}");
    let title = format!("config file {} is valid", path.display());
    assert_eq!(failures(&report), [title.as_str()]);
    let why = detail(&report, &title);
    assert!(why.contains("inbound.app"), "{why}");
    assert!(why.contains("at line 3"), "{why}");
    assert!(why.ends_with("the other checks need a valid configuration and did not run"));
    let text = report.to_string();
    assert!(
        text.starts_with(&format!("sidecar-config\n--------------\n✖ {title}\n    ")),
        "{text}"
    );
    assert!(text.ends_with("\n✖ 1 of 1 checks failed\n"), "{text}");
}

#[tokio::test]
async fn without_a_running_sidecar_the_admin_checks_fail() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let app = app().await;
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.admin = closed_port();
    let path = files.write("sidecar.yaml", &config.yaml());
    let report = check::run(&path, &CheckOptions::default()).await;

    let live = format!("sidecar is live ({}/live)", config.admin);
    let ready = format!("sidecar is ready ({}/ready)", config.admin);
    assert_eq!(
        failures(&report),
        [live.as_str(), ready.as_str()],
        "{report}"
    );
    let why = detail(&report, &live);
    assert!(why.starts_with("cannot connect: "), "{why}");
    assert!(why.to_lowercase().contains("refused"), "{why}");
    assert!(
        why.ends_with("`sidecar check --pre` checks one that has not started"),
        "{why}"
    );
    assert!(report.group("sidecar-listeners").is_none());
}

#[tokio::test]
async fn pre_checks_that_the_listen_addresses_are_free() {
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let app = app().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = Config::new(&certs, app.local_addr().unwrap());
    config.admin = taken.local_addr().unwrap();
    let report = check_pre(&files, &config).await;

    assert!(report.group("sidecar-admin").is_none(), "{report}");
    let listeners = report.group("sidecar-listeners").unwrap();
    let titles: Vec<&str> = listeners.checks.iter().map(|c| c.title.as_str()).collect();
    let admin = format!("admin listener {} can be bound", config.admin);
    assert_eq!(
        titles,
        [
            "inbound listener 127.0.0.1:0 can be bound",
            "outbound listener 127.0.0.1:0 can be bound",
            admin.as_str(),
        ]
    );
    assert_eq!(failures(&report), [admin.as_str()], "{report}");
}

#[tokio::test]
async fn a_ca_directory_is_checked_by_issuing_from_it() {
    let files = Files::new();
    let app = app().await;
    let path = files.write(
        "sidecar.yaml",
        &format!(
            "identity:\n  ca: {}\n  identity: {EMOJI}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            files.path("ca").display(),
            app.local_addr().unwrap()
        ),
    );
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;

    let titles: Vec<&str> = report
        .group("sidecar-identity")
        .unwrap()
        .checks
        .iter()
        .inspect(|check| assert_eq!(check.status, Status::Pass, "{report}"))
        .map(|check| check.title.as_str())
        .collect();
    let issues = format!(
        "ca directory {} issues a certificate for {EMOJI}",
        files.path("ca").display()
    );
    assert_eq!(
        titles,
        [
            issues.as_str(),
            "certificate chain verifies against the trust bundle",
            "CA certificates are within their validity period",
            "CA certificates do not expire soon",
        ]
    );

    // Without its issuer key the directory cannot issue.
    std::fs::remove_file(files.path("ca").join(ca::ISSUER_KEY_FILE)).unwrap();
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    assert_eq!(failures(&report), [issues.as_str()], "{report}");
}

/// Checks, before start, a sidecar whose identity is issued from the CA
/// directory `dir` (written by the caller), and returns the detail of the
/// CA's check, which must warn and be the only trouble.
async fn ca_check_warning(files: &Files, dir: &str) -> String {
    let app = app().await;
    let path = files.write(
        "sidecar.yaml",
        &format!(
            "identity:\n  ca: {}\n  identity: {EMOJI}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            files.path(dir).display(),
            app.local_addr().unwrap()
        ),
    );
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    let issues = format!(
        "ca directory {} issues a certificate for {EMOJI}",
        files.path(dir).display()
    );
    assert_eq!(status(&report, &issues), Status::Warn, "{report}");
    assert!(failures(&report).is_empty(), "{report}");
    detail(&report, &issues).to_owned()
}

/// In its issuer's last day, a CA directory issues certificates that end
/// with the issuer, as the sidecar's renewal does: the check warns of the
/// shorter lifetime rather than fail a sidecar that would start.
#[tokio::test]
async fn a_ca_directory_near_its_issuers_end_warns_of_shorter_certificates() {
    let files = Files::new();
    CertificateAuthority::generate_with_lifetime("example.org".parse().unwrap(), 2 * HOUR)
        .unwrap()
        .write(&files.path("short-ca"))
        .unwrap();
    let detail = ca_check_warning(&files, "short-ca").await;
    assert!(detail.contains("the issuer expires first"), "{detail}");
    assert!(detail.contains("not the 24h asked for"), "{detail}");
}

/// A CA directory whose trust anchor ends before its issuer: the
/// certificates end with the anchor (OpenSSL and Go refuse a chain whose
/// root has expired), and the warning names the anchor, which only a new
/// `ca.crt` replaces, not the issuer.
#[tokio::test]
async fn a_ca_directory_near_its_anchors_end_warns_that_the_anchor_ends_first() {
    let files = Files::new();
    ca_made(HOUR, 3 * HOUR, 365 * DAY)
        .write(&files.path("anchor-ca"))
        .unwrap();
    let detail = ca_check_warning(&files, "anchor-ca").await;
    assert!(
        detail.contains("the trust anchor (ca.crt) expires first"),
        "{detail}"
    );
    assert!(
        detail.contains("until the trust anchor is replaced"),
        "{detail}"
    );
    assert!(!detail.contains("issuer"), "{detail}");
}

#[tokio::test]
async fn areas_with_nothing_configured_are_left_out() {
    let files = Files::new();
    let path = files.write(
        "sidecar.yaml",
        "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
    );
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;

    let groups: Vec<&str> = report.groups.iter().map(|g| g.name).collect();
    assert_eq!(
        groups,
        ["sidecar-config", "sidecar-policy", "sidecar-listeners"],
        "{report}"
    );
    assert_eq!(report.status(), Status::Pass, "{report}");
}

#[tokio::test]
async fn a_trace_collector_that_is_down_warns_and_one_that_listens_passes() {
    let files = Files::new();
    let collector = app().await;
    let up = collector.local_addr().unwrap();
    let down = closed_port();
    let config = |collector: SocketAddr| {
        format!(
            "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
             tracing:\n  collector: http://{collector}\n"
        )
    };

    let path = files.write("up.yaml", &config(up));
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    let title = format!("trace collector {up} accepts connections");
    assert_eq!(status(&report, &title), Status::Pass, "{report}");
    assert_eq!(
        detail(&report, &title),
        format!("spans go to http://{up}/v1/traces")
    );
    assert!(report.group("sidecar-tracing").is_some(), "{report}");

    let path = files.write("down.yaml", &config(down));
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    let title = format!("trace collector {down} accepts connections");
    assert_eq!(status(&report, &title), Status::Warn, "{report}");
    assert!(
        detail(&report, &title).contains("trace_spans_failed_total"),
        "{report}"
    );
    // A warning, not a failure: the sidecar serves without its collector.
    assert!(report.is_success(), "{report}");
}

/// `POLICY`, an `HTTPRoute` of `voting` in its own namespace, and a
/// `GRPCRoute` of `voting` in `namespace`.
fn voting_routes(namespace: &str) -> String {
    format!(
        "{POLICY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: voting-http, namespace: emojivoto }}
spec:
  parentRefs: [{{ group: core, kind: Service, name: voting, namespace: emojivoto }}]
  rules:
    - matches: [{{ path: {{ type: PathPrefix, value: / }} }}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{ name: voting-grpc, namespace: {namespace} }}
spec:
  parentRefs: [{{ group: core, kind: Service, name: voting, namespace: emojivoto }}]
  rules:
    - matches: [{{ method: {{ service: emojivoto.v1.VotingService }} }}]
"
    )
}

#[tokio::test]
async fn route_warnings_are_those_of_the_routes_this_workload_is_served() {
    // A consumer GRPCRoute of another namespace does not apply to this
    // workload, so it sets none of this workload's HTTPRoutes aside, and
    // check must not say it does; one in the service's own namespace does.
    let files = Files::new();
    let certs = files.issue("emoji", &emoji());
    let app = app().await;
    let set_aside = |report: &Report| {
        report.group("sidecar-policy").unwrap().checks[1..]
            .iter()
            .any(|check| check.title.contains("voting-http") && check.title.contains("set aside"))
    };
    for (namespace, warned) in [("books", false), ("emojivoto", true)] {
        let policy = files.write("policy.yaml", &voting_routes(namespace));
        let mut config = Config::new(&certs, app.local_addr().unwrap());
        config.policy = Some(&policy);
        config.outbound_services =
            "  services:\n    - { name: voting, endpoints: [127.0.0.1:9] }\n";
        let report = check_pre(&files, &config).await;
        assert_eq!(
            set_aside(&report),
            warned,
            "GRPCRoute in {namespace}: {report}"
        );
    }
}

/// Linkerd's `linkerd check` warns while its trust anchors or issuer have
/// less than 60 days left ("trust anchors are valid for at least 60 days",
/// "issuer cert is valid for at least 60 days"): replacing an anchor means
/// giving every workload a bundle with the new one first. A CA's window is
/// not the workload certificate's 7 days.
#[tokio::test]
async fn ca_certificates_with_less_than_60_days_left_warn() {
    let files = Files::new();
    let certs = files.path("emoji");
    let app = app().await;
    let config = Config::new(&certs, app.local_addr().unwrap());
    let issue = |age: Duration| {
        ca_made_ago(age)
            .issue_with(&emoji().with_ttl(DAY))
            .unwrap()
            .write(&certs)
            .unwrap();
    };

    // A year-long CA with 55 days left.
    issue(310 * DAY);
    let report = check_pre(&files, &config).await;
    const TITLE: &str = "CA certificates do not expire soon";
    assert_eq!(status(&report, TITLE), Status::Warn, "{report}");
    let lines: Vec<&str> = detail(&report, TITLE).lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    for (line, (name, file)) in lines
        .iter()
        .zip([("issuer", "tls.crt"), ("trust anchor", "ca.crt")])
    {
        let named = format!("{name} CN=old {name} in {} ", certs.join(file).display());
        assert!(
            line.starts_with(&named) && line.ends_with(", in 54d 23h"),
            "{line}"
        );
    }
    assert_eq!(report.count(Status::Warn), 1, "{report}");
    assert!(report.is_success(), "{report}");
    // The workload certificate's own window is unchanged.
    assert_eq!(
        status(&report, "workload certificate does not expire soon"),
        Status::Pass
    );

    // With 65 days left, nothing to say.
    issue(300 * DAY);
    let report = check_pre(&files, &config).await;
    assert_eq!(status(&report, TITLE), Status::Pass, "{report}");

    // A CA directory's are named with its files.
    let dir = files.path("old-ca");
    ca_made_ago(310 * DAY).write(&dir).unwrap();
    let path = files.write(
        "sidecar-ca.yaml",
        &format!(
            "identity:\n  ca: {}\n  identity: {EMOJI}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            dir.display(),
            app.local_addr().unwrap()
        ),
    );
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    assert_eq!(status(&report, TITLE), Status::Warn, "{report}");
    let lines: Vec<&str> = detail(&report, TITLE).lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    for (line, (name, file)) in lines.iter().zip([
        ("issuer", ca::ISSUER_CERT_FILE),
        ("trust anchor", ca::CA_CERT_FILE),
    ]) {
        let named = format!("{name} CN=old {name} in {} ", dir.join(file).display());
        assert!(line.starts_with(&named), "{line}");
    }
}

/// The detail lines under the config check.
fn config_detail(report: &Report) -> Vec<String> {
    let config = &report.group("sidecar-config").unwrap().checks[0];
    config
        .detail
        .as_deref()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_config_check_says_where_each_listen_address_came_from() {
    // Without the sidecar's logs: an operator reads check's own output.
    let files = Files::new();
    let (app, other_app) = (closed_port(), closed_port());
    let path = files.write(
        "sidecar.yaml",
        &format!(
            "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  ports:\n    \
             - {{listen: '127.0.0.1:0', app: '{other_app}'}}\n\
             outbound:\n  ports:\n    - {{listen: '127.0.0.1:0', service: emoji}}\n  \
             services:\n    - {{name: emoji, endpoints: ['{other_app}']}}\n\
             admin:\n  listen: 127.0.0.1:0\n"
        ),
    );
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;
    let file = path.display();
    assert_eq!(
        config_detail(&report),
        [
            format!("inbound.listen 127.0.0.1:0 (from {file})"),
            format!("inbound.ports[0].listen 127.0.0.1:0 (from {file})"),
            "outbound.listen 127.0.0.1:4140 (default)".to_owned(),
            format!("outbound.ports[0].listen 127.0.0.1:0 (from {file})"),
            format!("admin.listen 127.0.0.1:0 (from {file})"),
        ],
        "{report}"
    );
}

#[test]
fn the_config_check_names_the_variable_that_set_a_listen_address() {
    use mesh_examples::sidecar::config::{
        ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, OUTBOUND_LISTEN_ENV,
    };
    let app = closed_port();
    let (_dir, path) = support::config::file(format!(
        "inbound:\n  listen: 127.0.0.1:1\n  app: {app}\noutbound:\n  listen: 127.0.0.1:0\n"
    ));
    let output = std::process::Command::new(support::sidecar_binary())
        .args(["check", "--pre", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env_remove(OUTBOUND_LISTEN_ENV)
        .env(INBOUND_LISTEN_ENV, "127.0.0.1:0")
        .env(ADMIN_LISTEN_ENV, "127.0.0.1:0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let file = path.display();
    for line in [
        format!(
            "    inbound.listen 127.0.0.1:0 (from {INBOUND_LISTEN_ENV}, over 127.0.0.1:1 in {file})"
        ),
        format!("    outbound.listen 127.0.0.1:0 (from {file})"),
        format!("    admin.listen 127.0.0.1:0 (from {ADMIN_LISTEN_ENV})"),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
}
