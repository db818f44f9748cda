use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use mesh_core::Identity;

use super::{CredentialStore, SourceTask};
use crate::{
    ca::{self, CaError, CertificateAuthority},
    cert::in_trust_domain,
    creds::{Causes, CredentialFiles, MAX_FILE_SIZE, RejectReason},
};

/// Where a store's credentials come from: the two forms a sidecar's
/// `identity` configuration takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Files another program writes and rotates (cert-manager, SPIRE's
    /// helper, `ca::issue`), read every `interval`, and at once when a
    /// [`ReloadHandle`](super::ReloadHandle) asks.
    Files {
        /// The certificate, key and bundle.
        files: CredentialFiles,
        /// How often they are read. [`DEFAULT_WATCH_INTERVAL`](super::DEFAULT_WATCH_INTERVAL)
        /// suits most uses.
        interval: Duration,
    },
    /// A CA directory, for development: the process issues its own
    /// certificates for `identity`, living `ttl` (or until the issuer or
    /// the trust anchor expires, when that comes first: a warning is
    /// logged when a CA loads whose anchor expires within `ttl`), and
    /// renews them at 70 % of their lifetime. The directory is read again
    /// at each renewal, so that an issuer (or trust anchor) replaced in it
    /// signs the next certificate, and when a
    /// [`ReloadHandle`](super::ReloadHandle) asks, when a CA other than
    /// the one loaded before issues a certificate at once; while it does
    /// not load, its issuer has expired or is not valid yet by the store's
    /// clock, its trust anchor has expired, or its issuer is of another
    /// trust domain than `identity`'s, the CA read before goes on issuing,
    /// and the directory is refused (logged as an error and counted in
    /// `identity_cert_rejected_updates_total`) once for each content it
    /// is refused with, not at every renewal.
    /// `identity_cert_last_update_successful` is 0 from that refusal
    /// until the directory loads again: the renewals by the CA read before
    /// put new certificates in service meanwhile, but the directory stays
    /// refused, and that is what an alert on the gauge must see.
    Ca {
        /// A directory [`ca::write_ca`](crate::ca::write_ca) wrote.
        dir: PathBuf,
        /// The identity to issue for.
        identity: Identity,
        /// How long each certificate lives.
        ttl: Duration,
    },
}

impl CredentialStore {
    /// Starts supplying the store from `source`: loads what can be loaded
    /// now and returns the task that keeps the credentials current, to be
    /// spawned once per process.
    ///
    /// Files that cannot be loaded yet (a secret still being mounted) are
    /// not an error: the failure is logged and counted, the store stays
    /// not ready, and the task loads them once they appear. The task also
    /// reads the files, or the CA directory, at once whenever a
    /// [`ReloadHandle`](super::ReloadHandle) of the store asks.
    ///
    /// [`CredentialSource::Files`] starts as
    /// [`CredentialStore::start_files`] does, which a build without the CA
    /// has too.
    ///
    /// # Errors
    ///
    /// For [`CredentialSource::Ca`], when the CA directory cannot be loaded,
    /// its issuer has expired or is not valid yet by the store's clock
    /// (naming `issuer.crt`), its trust anchor has expired (naming
    /// `ca.crt`), or it refuses the identity; nothing is
    /// retried then, since the configuration is wrong.
    pub fn start(&self, source: CredentialSource) -> Result<SourceTask, CaError> {
        match source {
            CredentialSource::Files { files, interval } => Ok(self.start_files(files, interval)),
            CredentialSource::Ca { dir, identity, ttl } => {
                let loaded = fingerprint(&dir);
                let ca = CertificateAuthority::load(&dir)?;
                // The store's clock, which checks the certificate when it
                // is put in service: dated and scheduled by another, it
                // would be refused (or renewed late) whenever the two
                // disagree, as every renewal after it is dated by this one.
                let now = self.now();
                warn_if_anchor_ends_within(&ca, &dir, ttl, now);
                let (first, _) = ca.issue_within_issuer_at(&identity, ttl, now)?;
                self.update(first.credentials().map_err(CaError::Credentials)?)
                    .map_err(CaError::Credentials)?;
                let first_wait = first.renew_after(now);
                let store = self.clone();
                // Subscribed now, so that an ask made before the task
                // first runs is read.
                let mut asks = self.asks();
                Ok(Box::pin(async move {
                    let mut watch = CaWatch {
                        ca,
                        refused: None,
                        loaded,
                    };
                    // Pinned across asks: an ask that issues nothing
                    // leaves the renewal due when it was.
                    let mut due = std::pin::pin!(ca::wait_until_due(&store, now, first_wait));
                    // The store this task holds holds the sender, so the
                    // asks never end; were they to, the renewals go on.
                    let mut listening = true;
                    loop {
                        tokio::select! {
                            () = &mut due => {
                                store.reload_ca(&mut watch, &dir, &identity, ttl).await;
                                // A renewal while the directory stays
                                // refused is no sign that it was mended.
                                let (now, wait) = watch.ca.renew_once(
                                    &store,
                                    &identity,
                                    ttl,
                                    watch.refused.is_none(),
                                );
                                due.set(ca::wait_until_due(&store, now, wait));
                            }
                            changed = asks.changed(), if listening => {
                                if changed.is_err() {
                                    listening = false;
                                    continue;
                                }
                                let renewed =
                                    store.ca_asked(&mut watch, &dir, &identity, ttl).await;
                                if let Some((now, wait)) = renewed {
                                    due.set(ca::wait_until_due(&store, now, wait));
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// What a CA source keeps between its reads of the directory.
struct CaWatch {
    /// The CA that issues.
    ca: CertificateAuthority,
    /// A fingerprint of the directory's contents last refused, while they
    /// stand refused.
    refused: Option<u64>,
    /// A fingerprint of the directory's contents `ca` was loaded from.
    loaded: u64,
}

/// What one read of the CA directory came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaRead {
    /// The directory loaded.
    Loaded,
    /// The directory was refused (reported once for its contents).
    Refused,
    /// The directory changed while it was read, or the read did not
    /// finish: the CA loaded before stays.
    Unsettled,
}

impl CredentialStore {
    /// Reads the CA directory now, because a
    /// [`ReloadHandle`](super::ReloadHandle) asked, and logs what the read
    /// came to. When the directory holds another CA than the one that
    /// issued the certificate in service (an issuer or trust anchor
    /// replaced), that CA issues a certificate at once, which is put in
    /// service, and the next renewal is scheduled from it: returned as
    /// when it was issued and how long until it is due. A directory
    /// unchanged issues nothing: an ask is no reason to retire every
    /// connection. A directory that stands refused is judged again, so
    /// that the refusal is logged (and counted) again for whoever asked.
    async fn ca_asked(
        &self,
        watch: &mut CaWatch,
        dir: &Path,
        identity: &Identity,
        ttl: Duration,
    ) -> Option<(std::time::SystemTime, Duration)> {
        let was = watch.loaded;
        watch.refused = None;
        let dir_at = dir.display();
        match self.reload_ca(watch, dir, identity, ttl).await {
            CaRead::Loaded if watch.loaded != was => {
                let renewed = watch.ca.renew_once(self, identity, ttl, true);
                tracing::info!(
                    dir = %dir_at,
                    %identity,
                    "ca directory reloaded, as asked; its issuer signed the certificate in service"
                );
                Some(renewed)
            }
            CaRead::Loaded => {
                tracing::info!(
                    dir = %dir_at,
                    "ca directory unchanged, as asked; the certificate in service stays"
                );
                None
            }
            CaRead::Refused => {
                tracing::warn!(
                    dir = %dir_at,
                    "ca directory refused, as asked; the ca loaded before is kept and renews"
                );
                None
            }
            CaRead::Unsettled => {
                tracing::info!(
                    dir = %dir_at,
                    "ca directory changed while it was read, as asked; it is read again at \
                     the next renewal"
                );
                None
            }
        }
    }

    /// Takes the CA now in `dir` into `watch`, keeping the one loaded
    /// before when the directory does not load, loads an issuer (or an intermediate above it in `issuer.crt`) that
    /// has expired or is not valid yet by the store's clock, or loads one
    /// of another trust domain than `identity`'s: an issuer
    /// replaced before it expires is used from the next renewal on (or at
    /// once, when a [`ReloadHandle`](super::ReloadHandle) asks), as
    /// Linkerd's identity service reloads its issuer when its files change,
    /// keeping the one it has when the new ones fail their checks.
    ///
    /// An issuer outside its validity loads (its dates are read when it
    /// issues), but could sign nothing that verifies, and the renewals
    /// would fail until the certificate in service expired, though the CA
    /// loaded before could still sign. It is refused as the store refuses
    /// credentials: logged as an error naming `issuer.crt` and why, and
    /// counted in `identity_cert_rejected_updates_total` as `expired` or
    /// `not_yet_valid`. An issuer of another trust domain could sign
    /// nothing for `identity` (the CA refuses to), and is refused alike,
    /// as `wrong_trust_domain`. A directory that does not load is refused alike,
    /// under the reason the store gives the same fault in credential files
    /// ([`CaError::reason`]: `unreadable`, `malformed`, ...).
    ///
    /// The directory is read again at every renewal, every ten seconds
    /// while no valid certificate is in service, so a refusal is reported
    /// once per content of the directory, as the file watcher reports a
    /// refused set of credential files once: `refused` holds a fingerprint
    /// of what was last refused, and the same contents refused again are
    /// logged at debug only. Contents that change while they are read (a
    /// CA being written) are neither taken nor reported: the next renewal
    /// reads them whole.
    ///
    /// The directory is read on tokio's blocking pool, not on the runtime
    /// thread that runs the renewal: a slow disk or a network mount would
    /// otherwise stall every connection that runtime serves for as long as
    /// a read takes.
    ///
    /// The CA is `watch.ca`, replaced when the directory loads; `watch`
    /// also keeps what was last refused, and what the CA was loaded from.
    async fn reload_ca(
        &self,
        watch: &mut CaWatch,
        dir: &Path,
        identity: &Identity,
        ttl: Duration,
    ) -> CaRead {
        let read = {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || {
                let before = fingerprint(&dir);
                let loaded = CertificateAuthority::load(&dir);
                (before, loaded, fingerprint(&dir))
            })
            .await
        };
        let (before, loaded, after) = match read {
            Ok(read) => read,
            Err(error) => {
                // The read never finished: the runtime is shutting down
                // (or the read panicked, which it has no cause to).
                tracing::debug!(
                    dir = %dir.display(),
                    %error,
                    "the ca could not be read; renewing with the one loaded before"
                );
                return CaRead::Unsettled;
            }
        };
        let error = match loaded
            .and_then(|ca| ca.check_issuer_valid(self.now()).map(|()| ca))
            .and_then(|ca| issues_for(ca, dir, identity))
        {
            Ok(ca) => {
                if before != watch.loaded {
                    warn_if_anchor_ends_within(&ca, dir, ttl, self.now());
                }
                watch.refused = None;
                watch.ca = ca;
                watch.loaded = before;
                return CaRead::Loaded;
            }
            Err(error) => error,
        };
        if after != before {
            tracing::debug!(
                dir = %dir.display(),
                error = %Causes(&error),
                "the ca changed while it was read; renewing with the one loaded before"
            );
            return CaRead::Unsettled;
        }
        if watch.refused == Some(before) {
            tracing::debug!(
                dir = %dir.display(),
                error = %Causes(&error),
                "the reloaded ca is still the one refused before; renewing with the one loaded \
                 before"
            );
            return CaRead::Refused;
        }
        watch.refused = Some(before);
        let reason = error.reason();
        match reason {
            Some(reason) => self.shared.metrics.rejected(reason),
            None => self.shared.metrics.refused(),
        }
        self.shared.version.send_modify(|v| v.rejected += 1);
        let why = match reason {
            Some(RejectReason::Expired | RejectReason::NotYetValid) => {
                "its issuer, or trust anchor, is outside its validity by the store's clock"
            }
            Some(RejectReason::WrongTrustDomain) => {
                "its issuer signs for another trust domain than the identity's"
            }
            _ => "it does not load",
        };
        tracing::error!(
            dir = %dir.display(),
            error = %Causes(&error),
            reason = reason.map(RejectReason::as_label),
            "refused the reloaded ca: {why}; the ca loaded before is kept and renews"
        );
        CaRead::Refused
    }
}

/// Warns when the trust anchor of `ca`, loaded from `dir`, expires within
/// `ttl` of `now`: certificates are shortened from then on to end with it
/// (OpenSSL and Go refuse a chain whose root has expired), and once it has
/// expired none is issued, so the workload loses its identity unless the
/// anchor is replaced, and every bundle with it. Said once per load, when
/// there is still time to act, rather than at each shortened renewal.
fn warn_if_anchor_ends_within(
    ca: &CertificateAuthority,
    dir: &Path,
    ttl: Duration,
    now: std::time::SystemTime,
) {
    let anchor_not_after = ca.anchor_not_after();
    if now
        .checked_add(ttl)
        .is_some_and(|end| anchor_not_after < end)
    {
        tracing::warn!(
            file = %dir.join(ca::CA_CERT_FILE).display(),
            anchor_not_after = %crate::creds::Utc(anchor_not_after),
            ?ttl,
            "the ca's trust anchor expires within the certificate ttl: certificates end with it \
             (openssl and go refuse a chain whose root has expired), and none is issued once \
             it has expired; replace the trust anchor, and every trust bundle holding it"
        );
    }
}

/// `ca`, loaded from `dir`, when it can issue for `identity`: when the
/// trust domain its issuer names is the identity's. The error names the
/// issuer's file, which says the trust domain.
fn issues_for(
    ca: CertificateAuthority,
    dir: &Path,
    identity: &Identity,
) -> Result<CertificateAuthority, CaError> {
    if in_trust_domain(ca.trust_domain(), identity) {
        return Ok(ca);
    }
    Err(CaError::InFile {
        path: dir.join(ca::ISSUER_CERT_FILE),
        source: Box::new(CaError::OutsideTrustDomain {
            identity: identity.clone(),
            trust_domain: ca.trust_domain().clone(),
        }),
    })
}

/// A fingerprint of the files of the CA directory `dir` as they are now:
/// of what each holds (as much as the CA reads of it), or of why it cannot
/// be read. It tells whether a directory refused before is still the same;
/// what it sees is written by whoever may write the CA, who could write a
/// valid CA as easily as contents made to collide, so a 64-bit (SipHash)
/// fingerprint does.
fn fingerprint(dir: &Path) -> u64 {
    use std::{
        hash::{Hash, Hasher},
        io::Read,
    };
    let mut hasher = std::hash::DefaultHasher::new();
    for name in [ca::CA_CERT_FILE, ca::ISSUER_CERT_FILE, ca::ISSUER_KEY_FILE] {
        let mut contents = Vec::new();
        let read = std::fs::File::open(dir.join(name))
            .and_then(|file| file.take(MAX_FILE_SIZE + 1).read_to_end(&mut contents));
        match read {
            Ok(_) => contents.hash(&mut hasher),
            Err(error) => error.kind().hash(&mut hasher),
        }
    }
    hasher.finish()
}
