//! The credentials in service, swapped atomically when they rotate.
//!
//! Workload certificates live a day, so a long-running process rotates
//! them many times, and it must do so without dropping a request. The
//! [`CredentialStore`] holds the current credentials together with
//! everything derived from them (the server configs, the trust anchors),
//! built once per rotation. Handshakes read the current set with one
//! lock-free load, so a rotation is one pointer swap: handshakes that began
//! before it finish with the old credentials, and every later one uses the
//! new.
//!
//! Updates come from files ([`CredentialStore::watch_files`], which polls
//! their contents, because Kubernetes swaps a secret volume's `..data`
//! symlink rather than rewriting the files, and at once when a
//! [`ReloadHandle`] asks) or from code ([`CredentialStore::update`]). An update that fails any check is
//! refused: the old credentials stay in service, the refusal is logged and
//! counted, and `identity_cert_last_update_successful` is 0 until an update
//! loads (see [`TlsMetrics::register`]). After a rotation, pooled client
//! connections the new credentials no longer vouch for (another local
//! identity, or a trust bundle that no longer verifies the server's chain)
//! are retired; the others stay (see [`crate::retire`]).

mod files;
mod reload;
// A source is either files or a CA directory, and starting one fails with
// the CA's error: without the CA, `start_files` keeps a store's files in
// service.
#[cfg(feature = "ca")]
mod source;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwapOption;
use mesh_core::{Identity, TrustDomain, admin::ReadinessGate};
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    time_provider::{DefaultTimeProvider, TimeProvider},
};
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

pub use self::reload::ReloadHandle;
#[cfg(feature = "ca")]
pub use self::source::CredentialSource;
use crate::{
    cert::in_trust_domain,
    creds::{Causes, CredentialError, Credentials, OutsideValidity, UnusableCredentials},
    metrics::{Loaded, TlsMetrics},
    retire::RetireList,
};

/// The task that keeps a store's credentials current.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How often [`CredentialStore::watch_files`] reads the files by default:
/// every second.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The longest [`CredentialStore::readiness_task`] sleeps before it looks
/// at the credentials' validity again: a minute.
pub const READINESS_RECHECK: Duration = Duration::from_secs(60);

/// What every set of credentials a store accepts must name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// The trust domain the identity must belong to. Default: none, in
    /// which case the trust domain of the first SPIFFE ID loaded is kept
    /// for every later update.
    pub trust_domain: Option<TrustDomain>,
    /// The exact identity every certificate must name. Default: any.
    pub identity: Option<Identity>,
}

/// The credentials in service. Cloning gives another handle to the same
/// store. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct CredentialStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    provider: Arc<CryptoProvider>,
    /// The clock every check of the credentials' validity reads, and the
    /// rustls configs built on the store.
    time: Arc<dyn TimeProvider>,
    /// Whether `time` was given, rather than the system clock: the store
    /// reads the system clock itself then, to the nanosecond, where a
    /// [`TimeProvider`] tells whole seconds.
    injected: bool,
    /// Refuses every handshake, with rustls's fatal alert for a server that
    /// has no certificate to present: for a ClientHello that arrives before
    /// credentials load, or while those in service are outside their
    /// validity. `None` if rustls refused to build it, which the fixed
    /// mesh provider makes unexpected: such a client is then disconnected
    /// without an alert.
    refusing: Option<Arc<ServerConfig>>,
    current: ArcSwapOption<Snapshot>,
    writer: Mutex<Writer>,
    metrics: TlsMetrics,
    version: watch::Sender<StoreVersion>,
    /// The asks of [`ReloadHandle`]s to read the files now.
    asks: watch::Sender<()>,
}

/// How many credential sets a store has put in service and refused: a
/// value that changes with every update, for code that reacts to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreVersion {
    /// Credential sets put in service, the first load included.
    pub loaded: u64,
    /// Credential sets refused.
    pub rejected: u64,
}

/// State only updates touch, serialized by the mutex.
#[derive(Debug)]
struct Writer {
    trust_domain: Option<TrustDomain>,
    identity: Option<Identity>,
    gate: Option<ReadinessGate>,
}

/// One set of credentials and everything built from it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) creds: Credentials,
    pub(crate) roots: Arc<RootCertStore>,
    /// Client certificates optional (permissive ports).
    pub(crate) server_permissive: Arc<ServerConfig>,
    /// Client certificates required (strict ports).
    pub(crate) server_strict: Arc<ServerConfig>,
    /// Whether a handshake refused because these credentials were outside
    /// their validity was logged as an error: once per credential set, not
    /// once per connection.
    pub(crate) unusable_logged: AtomicBool,
    /// Client connections opened while these credentials were current.
    pub(crate) connections: RetireList,
}

impl Default for CredentialStore {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl CredentialStore {
    /// An empty store: not ready until credentials are loaded.
    pub fn new(config: StoreConfig) -> Self {
        Self::with_clock(config, Arc::new(DefaultTimeProvider), false)
    }

    /// An empty store that tells the time by `time` rather than the system
    /// clock: whether credentials are valid when they load, whether those
    /// in service can still be presented at a handshake, and the time the
    /// peer's certificates are verified at (the rustls configs the store
    /// builds, and the connectors built on it, carry the same clock).
    ///
    /// For tests that move the clock past a certificate's `notAfter`, or
    /// back before its `notBefore`, without waiting; and for a process
    /// whose wall clock is not the one to trust. A clock that cannot tell
    /// the time (`current_time` returns `None`) is read as the system
    /// clock by the store's own checks, while rustls fails the handshake.
    ///
    /// Connections, server and client, are retired, and the readiness gate
    /// closed ([`CredentialStore::readiness_task`]), when this clock says
    /// their certificates expire; of two certificates of one issuer in a
    /// peer's chain, the one valid by this clock is taken.
    ///
    /// A [`CredentialSource::Ca`] goes by this clock too, since the store
    /// checks by it each certificate the CA issues: every certificate,
    /// the first included, is dated by it, each renewal is due at 70 % of
    /// the time the certificate has left by it, and a CA reloaded from the
    /// directory whose issuer has expired or is not valid yet by it is
    /// refused (once for the same contents of the directory), the CA
    /// loaded before going on issuing. The waits between renewals are
    /// tokio's timers, armed for a minute at most, so that a renewal this
    /// clock passes ahead of them (a machine resumed from sleep, a clock
    /// stepped forward) comes within a minute.
    ///
    #[cfg_attr(not(feature = "ca"), doc = "[`CredentialSource::Ca`]: crate#features")]
    pub fn with_time_provider(config: StoreConfig, time: Arc<dyn TimeProvider>) -> Self {
        Self::with_clock(config, time, true)
    }

    fn with_clock(config: StoreConfig, time: Arc<dyn TimeProvider>, injected: bool) -> Self {
        let provider = crate::provider();
        let refusing = crate::provider::refusing_server_config(&provider, &time).ok();
        Self {
            shared: Arc::new(Shared {
                provider,
                time,
                injected,
                refusing,
                current: ArcSwapOption::empty(),
                writer: Mutex::new(Writer {
                    trust_domain: config.trust_domain,
                    identity: config.identity,
                    gate: None,
                }),
                metrics: TlsMetrics::default(),
                version: watch::Sender::new(StoreVersion::default()),
                asks: watch::Sender::new(()),
            }),
        }
    }

    /// A store serving `creds` from the start.
    ///
    /// # Errors
    ///
    /// Any check of [`CredentialStore::update`].
    pub fn with_credentials(
        config: StoreConfig,
        creds: Credentials,
    ) -> Result<Self, CredentialError> {
        let store = Self::new(config);
        store.update(creds)?;
        Ok(store)
    }

    /// Opens `gate` once valid credentials are loaded (at once, if those in
    /// service can be presented now), so that `/ready` answers 503 until
    /// then.
    ///
    /// Loading valid credentials opens the gate at once. Closing it again
    /// when the credentials in service leave their validity is the work of
    /// [`CredentialStore::readiness_task`], which must be spawned for it: a
    /// workload whose certificate expired can neither present it nor be
    /// reached over mutual TLS, so it should not be counted ready.
    pub fn set_readiness(&self, gate: ReadinessGate) {
        let mut writer = self.lock();
        writer.gate = Some(gate);
        self.sync_gate(&mut writer);
    }

    /// The task that keeps the gate of [`CredentialStore::set_readiness`]
    /// in step with the validity of the credentials in service, by the
    /// store's clock: it closes the gate when they expire (or when the
    /// clock is before their `notBefore`) and reopens it when they, or new
    /// ones loaded, can be presented. To be spawned once, beside the
    /// [`SourceTask`] that renews the credentials.
    ///
    /// Why a timer: the validity only changes at two kinds of moment, when
    /// credentials load and when the clock crosses one of their dates, so
    /// the task sleeps until the next date (on tokio's clock, so that tests
    /// can move it) and wakes early for every update. A timer armed
    /// to the date by the store's clock fires late if the wall clock is
    /// stepped forward meanwhile, so the task looks again at least every
    /// [`READINESS_RECHECK`].
    pub fn readiness_task(&self) -> SourceTask {
        let store = self.clone();
        Box::pin(async move {
            let mut version = store.subscribe();
            loop {
                let wait = {
                    let mut writer = store.lock();
                    store.sync_gate(&mut writer)
                };
                tokio::select! {
                    () = tokio::time::sleep(wait.min(READINESS_RECHECK)) => {}
                    changed = version.changed() => {
                        if changed.is_err() {
                            // The store is gone: nothing can change.
                            return;
                        }
                    }
                }
            }
        })
    }

    /// Opens or closes the readiness gate as the credentials in service can
    /// be presented now or not, and returns how long until that can change
    /// by the clock alone.
    fn sync_gate(&self, writer: &mut Writer) -> Duration {
        let Some(snapshot) = self.shared.current.load_full() else {
            return READINESS_RECHECK;
        };
        let now = self.now();
        let (usable, next) = match snapshot.creds.usable_at(now) {
            Ok(until) => (true, Some(until)),
            Err(unusable) => match unusable.validity {
                OutsideValidity::NotYetValid { not_before } => (false, Some(not_before)),
                OutsideValidity::Expired { .. } => (false, None),
            },
        };
        if let Some(gate) = writer.gate.as_mut() {
            match (usable, gate.is_open()) {
                (true, false) => {
                    gate.open();
                    tracing::info!(
                        identity = %snapshot.creds.identity(),
                        "the identity certificate is valid; ready"
                    );
                }
                (false, true) => {
                    gate.close();
                    tracing::error!(
                        identity = %snapshot.creds.identity(),
                        "the identity certificate is outside its validity; \
                         not ready until valid credentials load"
                    );
                }
                _ => {}
            }
        }
        next.and_then(|at| at.duration_since(now).ok())
            .unwrap_or(READINESS_RECHECK)
    }

    /// Puts `creds` in service, unless a check fails.
    ///
    /// The checks: the certificate is valid now and chains to the bundle
    /// ([`Credentials::check`]), and its identity is the configured one and
    /// in the store's trust domain. Credentials identical to those in
    /// service change nothing. Otherwise the new set replaces the old for
    /// every later handshake, `identity_cert_info` names its identity
    /// instead of the old one, client connections made with the old set
    /// are retired when the new set no longer vouches for them (another
    /// identity, or a bundle that no longer verifies the server's chain;
    /// see [`crate::retire`]), and `control_identity_cert_refreshes_total{result="ok"}`
    /// counts the certificate when it is another than the one in service
    /// (not for a new trust bundle, or new intermediates, beside the same
    /// workload certificate). Either way the update loaded, and
    /// `identity_cert_last_update_successful` is 1.
    ///
    /// # Errors
    ///
    /// The failed check. The credentials in service stay; the refusal is
    /// logged and counted in `identity_cert_rejected_updates_total` and
    /// `control_identity_cert_refreshes_total{result="error"}`, and
    /// `identity_cert_last_update_successful` is 0 until an update loads.
    pub fn update(&self, creds: Credentials) -> Result<(), CredentialError> {
        self.update_from(creds, true)
    }

    /// [`CredentialStore::update`], from a source that is good (`good`) or
    /// stands refused: credentials a refused source still yields, as a CA
    /// source renews with the CA loaded before while its directory is
    /// refused, load without making the last update successful, since
    /// what the gauge tells is that the source must be mended.
    pub(crate) fn update_from(
        &self,
        creds: Credentials,
        good: bool,
    ) -> Result<(), CredentialError> {
        let result = self.try_update(creds);
        match &result {
            Ok(()) => {
                if good {
                    self.shared.metrics.last_update(true);
                }
            }
            Err(error) => self.reject(error),
        }
        result
    }

    fn try_update(&self, creds: Credentials) -> Result<(), CredentialError> {
        let mut writer = self.lock();
        creds.check(self.now())?;
        let identity = creds.identity();
        if let Some(expected) = &writer.identity
            && identity != expected
        {
            return Err(CredentialError::WrongIdentity {
                expected: expected.clone(),
                found: identity.clone(),
            });
        }
        if let Some(trust_domain) = &writer.trust_domain
            && !in_trust_domain(trust_domain, identity)
        {
            return Err(CredentialError::WrongTrustDomain {
                identity: identity.clone(),
                trust_domain: trust_domain.clone(),
            });
        }
        let current = self.shared.current.load_full();
        if current.as_ref().is_some_and(|c| c.creds.same_as(&creds)) {
            return Ok(());
        }
        // A new trust bundle, or new intermediates, beside the workload
        // certificate in service renew nothing: Linkerd's refresh families
        // tell when the certificate was renewed, and an alert on them
        // must still find a renewal that is stuck.
        let renewed = current
            .as_ref()
            .is_none_or(|c| c.creds.chain().first() != creds.chain().first());
        let snapshot = Snapshot::build(&self.shared.provider, &self.shared.time, creds)?;
        // When the identity ends: the chain's end, which an intermediate
        // can bring before the workload certificate's, and which
        // connections are retired against.
        let (identity, not_after) = (
            snapshot.creds.identity().clone(),
            snapshot
                .creds
                .usable_at(self.now())
                .unwrap_or_else(|_| snapshot.creds.chain_not_after()),
        );
        if writer.trust_domain.is_none() {
            writer.trust_domain = identity.trust_domain();
        }
        let cert_not_after = snapshot.creds.not_after();
        let old = self.shared.current.swap(Some(Arc::new(snapshot)));
        let loaded = Loaded {
            identity: &identity,
            ends: not_after,
            cert_not_after,
            renewed,
        };
        self.shared
            .metrics
            .loaded(&loaded, old.is_some(), self.now());
        self.sync_gate(&mut writer);
        drop(writer);
        self.shared.version.send_modify(|v| v.loaded += 1);
        match old {
            Some(old) => {
                tracing::info!(%identity, ?not_after, "identity credentials rotated");
                let conns = old.connections.close();
                crate::retire::carry_over(self, old, conns);
            }
            None => tracing::info!(%identity, ?not_after, "identity credentials loaded"),
        }
        Ok(())
    }

    fn reject(&self, error: &CredentialError) {
        let reason = error.reason();
        self.shared.metrics.rejected(reason);
        self.shared.version.send_modify(|v| v.rejected += 1);
        // Refused at start, there are no earlier credentials to keep.
        let kept = if self.shared.current.load().is_some() {
            "the previous ones stay in service"
        } else {
            "none are in service yet"
        };
        match error {
            CredentialError::InFiles { paths, source } => tracing::error!(
                error = %Causes(&**source),
                files = ?paths,
                reason = reason.as_label(),
                "rejected identity credentials; {kept}"
            ),
            _ => tracing::error!(
                error = %Causes(error),
                reason = reason.as_label(),
                "rejected identity credentials; {kept}"
            ),
        }
    }

    /// A receiver that sees every credential set the store loads or
    /// refuses.
    pub fn subscribe(&self) -> watch::Receiver<StoreVersion> {
        self.shared.version.subscribe()
    }

    /// The credentials in service, if any.
    pub fn credentials(&self) -> Option<Credentials> {
        self.shared.current.load().as_ref().map(|s| s.creds.clone())
    }

    /// The identity in service, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.shared
            .current
            .load()
            .as_ref()
            .map(|s| s.creds.identity().clone())
    }

    /// Whether credentials are in service that can be presented now: loaded,
    /// and inside their validity by the store's clock
    /// ([`Credentials::usable_at`]). It turns false when the credentials in
    /// service expire before a renewal replaces them (or the clock steps
    /// back before their `notBefore`), as the connector and the acceptor
    /// then refuse to present them; the next valid set loaded makes it
    /// true again.
    pub fn is_ready(&self) -> bool {
        self.shared
            .current
            .load()
            .as_ref()
            .is_some_and(|s| s.creds.usable_at(self.now()).is_ok())
    }

    /// The time by the store's clock ([`CredentialStore::with_time_provider`]).
    pub(crate) fn now(&self) -> SystemTime {
        if !self.shared.injected {
            return SystemTime::now();
        }
        crate::creds::time_of(&*self.shared.time)
    }

    /// The server config that refuses every handshake with an alert.
    pub(crate) fn refusing_server_config(&self) -> Option<&Arc<ServerConfig>> {
        self.shared.refusing.as_ref()
    }

    /// The store's clock, for the rustls configs built on it.
    pub(crate) fn time_provider(&self) -> &Arc<dyn TimeProvider> {
        &self.shared.time
    }

    /// The trust domain updates must stay in, once known.
    pub fn trust_domain(&self) -> Option<TrustDomain> {
        self.lock().trust_domain.clone()
    }

    /// The metrics of this store and of the acceptors and connectors built
    /// on it. Register them with [`TlsMetrics::register`].
    pub fn metrics(&self) -> &TlsMetrics {
        &self.shared.metrics
    }

    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.shared.provider
    }

    pub(crate) fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.shared.current.load_full()
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // Updates leave the writer state consistent at every step, so a
        // panic elsewhere while holding the lock cannot corrupt it.
        self.shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Snapshot {
    fn build(
        provider: &Arc<CryptoProvider>,
        time: &Arc<dyn TimeProvider>,
        creds: Credentials,
    ) -> Result<Self, CredentialError> {
        let mut roots = RootCertStore::empty();
        for root in creds.roots() {
            roots.add(root.clone()).map_err(CredentialError::Config)?;
        }
        let roots = Arc::new(roots);
        let key = creds.certified_key().clone();
        let domains = creds.anchor_domains().clone();
        let server = |require| {
            crate::provider::server_config(
                provider,
                time,
                key.clone(),
                roots.clone(),
                domains.clone(),
                require,
            )
            .map_err(CredentialError::Config)
        };
        Ok(Self {
            server_permissive: server(false)?,
            server_strict: server(true)?,
            unusable_logged: AtomicBool::new(false),
            roots,
            creds,
            connections: RetireList::default(),
        })
    }
}

impl Snapshot {
    /// Whether this trust bundle still vouches for a connection made with
    /// the peer's `chain` (leaf first) and timed by a path ending at
    /// `timed_by`: it verifies the chain for `usage` now
    /// ([`Snapshot::trusted_until`]), through a path that lasts at least as
    /// long.
    ///
    /// A new bundle can end the path further up than the handshake's did:
    /// one that held an issuing CA's certificate as an anchor, whose dates
    /// webpki never reads, and no longer does, trusts the chain through
    /// that certificate as an intermediate. A connection timed by the old
    /// path's end would then outlive the certificate its peer is now
    /// trusted through.
    pub(crate) fn still_vouches(
        &self,
        store: &CredentialStore,
        chain: &[CertificateDer<'static>],
        usage: webpki::KeyUsage,
        timed_by: Option<SystemTime>,
    ) -> bool {
        self.trusted_until(store, chain, usage)
            .is_some_and(|until| vouches_until(until, timed_by))
    }

    /// When this trust bundle verifies `chain` (a peer's, leaf first) for
    /// `usage` now, as the handshake did with the bundle of its day:
    /// through an anchor of the trust domain of the identity the leaf
    /// names. `None` when it does not, else the `notAfter` of the path it
    /// verifies the chain through (`None` within when a certificate of
    /// the path cannot be read). Connections made under earlier
    /// credentials are kept or retired by it, on both ends.
    pub(crate) fn trusted_until(
        &self,
        store: &CredentialStore,
        chain: &[CertificateDer<'static>],
        usage: webpki::KeyUsage,
    ) -> Option<Option<SystemTime>> {
        let (leaf, intermediates) = chain.split_first()?;
        let names = crate::cert::CertNames::parse(leaf);
        let identity = names.as_ref().ok().and_then(|n| n.identity().ok());
        let domains = self.creds.anchor_domains();
        crate::verify::ChainCheck {
            end_entity: leaf,
            intermediates,
            anchors: domains.anchors(),
            now: crate::creds::unix_time(store.now()),
            usage,
            algs: store.provider().signature_verification_algorithms.all,
            scope: identity.map(|identity| (identity, &**domains)),
        }
        .until()
        .ok()
    }

    /// When the path that a handshake with these credentials verified the
    /// peer's `chain` (leaf first) through for `usage` stops verifying:
    /// what the connection's retirement is timed by. Read by name
    /// ([`path_validity`](crate::cert::path_validity)), with no second
    /// search of the chain, unless the chain sends a certificate with a
    /// trust anchor's name that is not that anchor
    /// ([`names_an_anchor_it_is_not`](crate::cert::names_an_anchor_it_is_not)):
    /// then only the signatures tell the path, and it is searched for
    /// again ([`Snapshot::trusted_until`]). `None` when the chain cannot
    /// be read.
    pub(crate) fn peer_path_until(
        &self,
        store: &CredentialStore,
        chain: &[CertificateDer<'static>],
        usage: webpki::KeyUsage,
    ) -> Option<SystemTime> {
        let anchor_subjects = self.creds.anchor_subjects();
        if crate::cert::names_an_anchor_it_is_not(chain, anchor_subjects, self.creds.roots())
            && let Some(Some(until)) = self.trusted_until(store, chain, usage)
        {
            return Some(until);
        }
        crate::cert::path_validity(chain, anchor_subjects, store.now())
            .map(|(_, not_after)| not_after)
    }
}

/// Whether a path verified until `until` covers a connection timed by a
/// path ending at `timed_by` (see [`Snapshot::still_vouches`]).
pub(crate) fn vouches_until(until: Option<SystemTime>, timed_by: Option<SystemTime>) -> bool {
    until.is_none_or(|until| timed_by.is_some_and(|at| until >= at))
}

impl Snapshot {
    /// Logs, as an error, the first handshake refused because these
    /// credentials are `unusable`: the workload cannot be reached over
    /// mutual TLS, nor reach anyone, until new credentials load. Later
    /// refusals are not logged again, so that a busy port does not flood
    /// the log; they are counted in `tls_handshake_failures_total`.
    pub(crate) fn log_unusable(&self, unusable: &UnusableCredentials, direction: &str) {
        if !self.unusable_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %unusable,
                identity = %unusable.identity,
                direction,
                "refusing tls: the local identity certificate is outside its validity; \
                 connections fail until valid credentials load"
            );
        }
    }
}
