//! Shared fixtures: a CA, stores, a server that reports how it saw the
//! caller, clients, and a raw rustls client for behaviour the mesh's own
//! client refuses to produce.
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../../../mesh-core/tests/support/refused.rs"]
pub mod refused;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ConnectionInfo, Identity, Tls,
    client::{Client, ClientConfig},
    io::Io,
    serve::{self, Accept, Accepted, Server, ServerConfig, shutdown::ShutdownTrigger},
};
use mesh_tls::{
    AcceptConfig, CredentialStore, Credentials, InboundMode, OutboundTls, ServerIo, ServerTls,
    StoreConfig, TlsAccept, TlsConnector, TlsTargets,
    ca::{CertificateAuthority, IssuedCertificate},
    retire::Retire,
};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceExt};

// One capture for every crate's tests: mesh-core's (its docs say why
// it is one global subscriber).
#[path = "../../../mesh-core/tests/support/log_capture.rs"]
pub mod log_capture;

pub(crate) use self::log_capture::Logs;

pub const HOUR: Duration = Duration::from_secs(3600);

pub fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

pub fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("example.org".parse().unwrap()).unwrap()
}

pub fn creds(ca: &CertificateAuthority, identity: &str) -> Credentials {
    ca.issue(&id(identity), HOUR)
        .unwrap()
        .credentials()
        .unwrap()
}

pub fn store(ca: &CertificateAuthority, identity: &str) -> CredentialStore {
    CredentialStore::with_credentials(StoreConfig::default(), creds(ca, identity)).unwrap()
}

/// Describes how the server saw the caller.
pub fn describe(info: Option<&ConnectionInfo>) -> String {
    match info.map(|i| &i.tls) {
        Some(Tls::Mutual { peer }) => format!("mutual {peer}"),
        Some(Tls::NoClientCert) => "no_client_cert".into(),
        Some(Tls::Plaintext(reason)) => format!("plaintext {}", reason.as_label()),
        Some(Tls::Passthrough { sni }) => format!("passthrough {sni}"),
        None => "no connection info".into(),
    }
}

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<ShutdownTrigger>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.trigger();
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// A server whose every response body says how it saw the caller.
pub async fn serve_with<A>(accept: A) -> Running
where
    A: Accept<TcpStream>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = serve::shutdown::channel();
    let handler = tower::service_fn(|req: Request<Incoming>| async move {
        let body = describe(req.extensions().get::<ConnectionInfo>());
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(body)))
    });
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    let task = tokio::spawn(server.serve_http(listener, handler, shutdown));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn serve(store: CredentialStore, mode: InboundMode) -> Running {
    serve_with(TlsAccept::new(store, AcceptConfig::with_mode(mode))).await
}

pub type MeshClient = Retire<Client<Empty<Bytes>, TlsConnector>>;

pub fn connector(store: CredentialStore, addr: SocketAddr, server: &str) -> TlsConnector {
    let targets =
        TlsTargets::new(OutboundTls::Plaintext).with_endpoint(addr, OutboundTls::Mtls(id(server)));
    TlsConnector::new(&ClientConfig::default(), store, targets).unwrap()
}

pub fn client(connector: TlsConnector) -> MeshClient {
    let layer = connector.retire_layer();
    tower::Layer::layer(
        &layer,
        Client::with_connector(&ClientConfig::default(), connector),
    )
}

pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub server: Option<ServerTls>,
}

pub async fn get<S>(client: &mut S, addr: SocketAddr) -> Result<Reply, BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>>,
    S::Error: Into<BoxError>,
{
    let req = Request::get(format!("http://{addr}/")).body(Empty::new())?;
    let res = client
        .ready()
        .await
        .map_err(Into::into)?
        .call(req)
        .await
        .map_err(Into::into)?;
    let status = res.status();
    let server = res.extensions().get::<ServerTls>().cloned();
    let body = res.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8(body.to_vec())?,
        server,
    })
}

/// A plaintext HTTP/1.1 GET, through hyper-util's client.
pub async fn get_plaintext(addr: SocketAddr) -> Result<Reply, BoxError> {
    let mut client: Client<Empty<Bytes>> = Client::new(&ClientConfig::default());
    get(&mut client, addr).await
}

/// Whether `err`, or an error in its source chain, is a `T`, and which.
pub fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // An `io::Error`'s `source` skips the error it wraps.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// `error` and its causes, joined with `: ` as a log line joins them.
pub fn joined(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        next = cause.source();
    }
    line
}

/// A strict mTLS acceptor of `store`'s that records the client
/// certificate of every TLS connection it accepts: how many handshakes
/// the server made, and with which certificates.
#[derive(Clone)]
pub struct RecordingAccept {
    inner: TlsAccept,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordingAccept {
    pub fn new(store: CredentialStore) -> Self {
        Self {
            inner: TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict)),
            seen: Arc::default(),
        }
    }

    /// How many TLS connections the server accepted.
    pub fn accepts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The client certificate of the last connection accepted.
    pub fn last_client(&self) -> Vec<u8> {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }

    /// Whether a connection was accepted with the client certificate
    /// `leaf` (DER).
    pub fn saw_client(&self, leaf: &[u8]) -> bool {
        self.seen.lock().unwrap().iter().any(|seen| seen == leaf)
    }
}

impl<I: Io> Accept<I> for RecordingAccept {
    type Io = ServerIo<I>;
    type Future = futures_util::future::BoxFuture<'static, Result<Accepted<ServerIo<I>>, BoxError>>;

    fn accept(&self, io: I) -> Self::Future {
        let (inner, seen) = (self.inner.clone(), self.seen.clone());
        Box::pin(async move {
            let accepted = inner.accept(io).await?;
            let leaf = accepted
                .io
                .tls()
                .and_then(|tls| tls.peer_certificates())
                .and_then(|certs| certs.first())
                .map(|leaf| leaf.to_vec())
                .unwrap_or_default();
            seen.lock().unwrap().push(leaf);
            Ok(accepted)
        })
    }
}

/// A store holding `creds`, with the default configuration.
pub fn loaded(creds: Credentials) -> CredentialStore {
    CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap()
}

/// Accepts one connection on `listener` and runs `accept` on it.
pub fn accept_one<A>(
    listener: TcpListener,
    accept: A,
) -> tokio::task::JoinHandle<Result<mesh_core::serve::Accepted<A::Io>, BoxError>>
where
    A: Accept<TcpStream>,
{
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        accept.accept(tcp).await
    })
}

/// A server verifier that accepts anything: for clients built to provoke
/// the server, whose own verification is not under test.
#[derive(Debug)]
pub struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A raw rustls client config on `provider` and `versions`, trusting any
/// server, presenting `cert` (chain PEM and key PEM) when given.
pub fn raw_client(
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)));
    let mut config = match cert {
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Runs a TLS handshake with `config` to `addr`, then one HTTP/1.1
/// request; the TLS 1.3 server's verdict on the client certificate arrives
/// after the client's handshake, so only the request tells.
pub async fn raw_get(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<Reply, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())?;
    let res = send.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8(body.to_vec())?,
        server: None,
    })
}

/// The store's metrics in the text exposition format.
pub fn encode(store: &CredentialStore) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    store.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// Waits until the store has loaded `loaded` credential sets and refused
/// `rejected`, or fails after ten seconds.
pub async fn wait_for(store: &CredentialStore, loaded: u64, rejected: u64) {
    let mut rx = store.subscribe();
    let reached = rx.wait_for(|v| v.loaded >= loaded && v.rejected >= rejected);
    tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .expect("the store never saw the update")
        .unwrap();
}

/// A CA whose issuer also signs leaf certificates of any shape, for
/// certificates the mesh's CA refuses to produce.
pub struct RawIssuer {
    pub ca: CertificateAuthority,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    issuer_pem: String,
}

impl RawIssuer {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = mesh_tls::ca::write_ca(dir.path(), &"example.org".parse().unwrap()).unwrap();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let issuer_pem = read(mesh_tls::ca::ISSUER_CERT_FILE);
        let key = rcgen::KeyPair::from_pem(&read(mesh_tls::ca::ISSUER_KEY_FILE)).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&issuer_pem, key).unwrap();
        Self {
            ca,
            issuer,
            issuer_pem,
        }
    }

    /// A workload-shaped leaf (not a CA, digitalSignature, both EKUs, an
    /// hour's validity) with `sans`: tests change one thing from here.
    pub fn params(sans: Vec<rcgen::SanType>) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = std::time::SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + HOUR).into();
        params
    }

    /// Signs `params`: the chain PEM (leaf, then issuer) and the key PEM.
    pub fn sign(&self, params: &rcgen::CertificateParams) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem() + &self.issuer_pem, key.serialize_pem())
    }

    pub fn bundle_pem(&self) -> &str {
        self.ca.bundle_pem()
    }
}

pub fn uri_san(s: &str) -> rcgen::SanType {
    rcgen::SanType::URI(s.try_into().unwrap())
}

/// A TLS 1.3 server on 127.0.0.1 presenting `chain` and `key` to every
/// client and asking for no client certificate: a server the mesh's
/// acceptor refuses to be.
pub async fn serve_raw_tls(chain: &str, key: &str) -> SocketAddr {
    let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(mesh_tls::provider())
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let mut tls = tls;
                    let mut buf = [0u8; 1];
                    let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut buf).await;
                }
            });
        }
    });
    addr
}

/// A CA whose issuer lives `issuer_life`, and a chain (leaf PEM, then the
/// issuer) and key for `identity` whose leaf lives `leaf_life` anyway, as
/// CAs that do not clamp a leaf to their own lifetime sign them.
pub fn leaf_outliving_its_issuer(
    identity: &str,
    issuer_life: Duration,
    leaf_life: Duration,
) -> (CertificateAuthority, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let ca =
        CertificateAuthority::generate_with_lifetime("example.org".parse().unwrap(), issuer_life)
            .unwrap();
    ca.write(dir.path()).unwrap();
    let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let issuer_pem = read(mesh_tls::ca::ISSUER_CERT_FILE);
    let issuer_key = rcgen::KeyPair::from_pem(&read(mesh_tls::ca::ISSUER_KEY_FILE)).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&issuer_pem, issuer_key).unwrap();
    let mut params = RawIssuer::params(vec![uri_san(identity)]);
    params.not_after = (std::time::SystemTime::now() + leaf_life).into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let chain = params.signed_by(&key, &issuer).unwrap().pem() + &issuer_pem;
    (ca, chain, key.serialize_pem())
}

/// Credentials issued by `ca` for `identity`, living `ttl`, trusting the
/// anchors of every CA in `trusted`.
pub fn creds_trusting(
    ca: &CertificateAuthority,
    identity: &str,
    ttl: Duration,
    trusted: &[&CertificateAuthority],
) -> Credentials {
    with_bundle(&ca.issue(&id(identity), ttl).unwrap(), trusted)
}

/// `issued`'s certificate and key, beside a bundle of the anchors of
/// every CA in `trusted`: the same certificate under another bundle, as a
/// bundle rollout leaves a workload's certificate as it was.
pub fn with_bundle(issued: &IssuedCertificate, trusted: &[&CertificateAuthority]) -> Credentials {
    let bundle: String = trusted.iter().map(|ca| ca.bundle_pem()).collect();
    Credentials::from_pem(
        issued.chain_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap()
}

/// A chain for `identity` whose trust anchor expired an hour ago and is
/// sent along (leaf, issuer, anchor), with its key and the anchor as the
/// bundle. webpki ends a path at the first trust anchor and never checks
/// an anchor's dates, so the chain verifies; the copy of the anchor is
/// sent but not part of the path.
pub fn chain_sending_an_expired_anchor(identity: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let now = std::time::SystemTime::now();
    let ca_params = |name: &str, not_before, not_after| {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![uri_san("spiffe://example.org")];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now.checked_sub(not_before).unwrap().into();
        params.not_after = not_after;
        params
    };
    let anchor_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let anchor_params = ca_params(
        "expired anchor",
        48 * HOUR,
        now.checked_sub(HOUR).unwrap().into(),
    );
    let anchor_pem = anchor_params.self_signed(&anchor_key).unwrap().pem();
    let anchor = rcgen::Issuer::new(anchor_params, anchor_key);
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let issuer_params = ca_params("issuer", HOUR, (now + 24 * HOUR).into());
    let issuer_pem = issuer_params.signed_by(&issuer_key, &anchor).unwrap().pem();
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = RawIssuer::params(vec![uri_san(identity)])
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    (
        leaf + &issuer_pem + &anchor_pem,
        key.serialize_pem(),
        anchor_pem,
    )
}

/// Presents `chain` and `key` as a client to a permissive mesh acceptor
/// whose own identity is `server`, and returns its verdict.
pub async fn present_client_cert(
    raw: &RawIssuer,
    server: &str,
    (chain, key): (String, String),
) -> Result<serve::Accepted<mesh_tls::ServerIo<TcpStream>>, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = TlsAccept::new(store(&raw.ca, server), AcceptConfig::default());
    let server = accept_one(listener, accept);
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&chain, &key)),
    );
    // A server that accepts does not answer the request: the verdict is
    // the acceptor's result, not the reply.
    let client = tokio::spawn(raw_get(config, addr));
    let verdict = server.await.unwrap();
    client.abort();
    verdict
}

/// A mesh CA for `domain` whose issuer also signs leaves naming any
/// identity, as a CA that does not hold to its trust domain would.
pub struct Signer {
    pub ca: CertificateAuthority,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    issuer_pem: String,
}

impl Signer {
    pub fn new(domain: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = mesh_tls::ca::write_ca(dir.path(), &domain.parse().unwrap()).unwrap();
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let issuer_pem = read(mesh_tls::ca::ISSUER_CERT_FILE);
        let key = rcgen::KeyPair::from_pem(&read(mesh_tls::ca::ISSUER_KEY_FILE)).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&issuer_pem, key).unwrap();
        Self {
            ca,
            issuer,
            issuer_pem,
        }
    }

    /// A chain (leaf, issuer) and key naming `identity`.
    pub fn sign(&self, identity: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = RawIssuer::params(vec![uri_san(identity)])
            .signed_by(&key, &self.issuer)
            .unwrap();
        (leaf.pem() + &self.issuer_pem, key.serialize_pem())
    }
}

/// The leaf certificate `store` serves now.
pub fn leaf_in_service(store: &CredentialStore) -> CertificateDer<'static> {
    store.credentials().unwrap().chain()[0].clone()
}

/// Replaces the file at `path` in one rename, as certificate writers do.
pub fn replace_file(path: &std::path::Path, contents: &[u8]) {
    let tmp = path.with_extension("replacing");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
