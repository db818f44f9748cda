use std::time::{Duration, SystemTime};

use mesh_core::Identity;

use super::{CaError, CertificateAuthority, IssueRequest, IssuedCertificate};
use crate::{CredentialStore, store::READINESS_RECHECK};

/// The shortest wait before renewing, so that a CA issuing very short
/// certificates cannot make the renewal loop spin.
const MIN_RENEW: Duration = Duration::from_secs(10);

/// The longest wait before renewing.
const MAX_RENEW: Duration = Duration::from_secs(86_400);

/// The shortest ttl the renewal loop accepts: 15 seconds. Its 70 % is
/// still above the loop's 10 second floor, so each certificate is replaced
/// before it expires; a shorter ttl would be renewed only after.
pub const MIN_RENEWED_TTL: Duration = Duration::from_secs(15);

/// How long to wait before renewing a certificate that has `left` to live
/// when it is issued: 70 % of that, clamped between 10 seconds and 24
/// hours, as Linkerd's proxy does. The remaining 30 % leaves room for
/// retries when the CA is briefly unavailable.
///
/// Pass what the certificate has left, not the ttl asked for:
/// [`IssuedCertificate::renew_after`] does so from its dates. Since a
/// certificate is valid for its whole ttl from issue (see
/// [validity and renewal](super#validity-and-renewal)), the two agree for
/// a certificate issued just now.
pub fn renew_after(left: Duration) -> Duration {
    left.mul_f64(0.7).clamp(MIN_RENEW, MAX_RENEW)
}

impl CertificateAuthority {
    /// Keeps `store` supplied with certificates for `identity` living
    /// `ttl`: issues one now and a new one at 70 % of the time each has
    /// left ([`IssuedCertificate::renew_after`]). Runs until dropped; spawn
    /// it. This is the development-mode identity of the sidecar, when it is
    /// given a CA directory instead of files.
    ///
    /// In the issuer's last `ttl`, certificates end with the issuer instead
    /// (as Linkerd's CA clamps them), and are renewed at 70 % of that
    /// shorter lifetime, so the workload keeps an identity until the issuer
    /// itself expires; so too in the trust anchor's last `ttl`, when it
    /// expires first (see [validity and
    /// renewal](super#validity-and-renewal)).
    ///
    /// A failed renewal (including a `ttl` under [`MIN_RENEWED_TTL`],
    /// which [`issue_within_issuer`](Self::issue_within_issuer) refuses up
    /// front, or a certificate the store refuses) is logged, the
    /// certificate in service stays, and the renewal is tried again at
    /// 70 % of the time that certificate has left, or after 10 seconds
    /// when there is none: the schedule of Linkerd's proxy, which computes
    /// its next attempt from the expiry of the certificate it holds
    /// (linkerd2-proxy `identity-client`, `refresh_in`). The attempts come
    /// ever closer as the certificate's end nears, rather than every 10
    /// seconds for the hours a day-long certificate has left.
    ///
    /// Every date is read from the store's clock
    /// ([`CredentialStore::with_time_provider`]), not the CA's: when each
    /// certificate is valid from, whether the issuer is valid and when
    /// the next renewal is due. The store checks each certificate by that
    /// clock when it is put in service, so a test that moves it past the
    /// renewal point sees a renewal dated then, without waiting more than
    /// a minute. The waits themselves are tokio's timers, armed for a
    /// minute at most, after which the store's clock is read again: the
    /// timers stand still while the machine sleeps, and a renewal armed
    /// for hours would otherwise come hours after the store's clock passed
    /// it, the certificate in service expired meanwhile.
    pub async fn renew(self, store: CredentialStore, identity: Identity, ttl: Duration) {
        loop {
            let (now, wait) = self.renew_once(&store, &identity, ttl, true);
            wait_until_due(&store, now, wait).await;
        }
    }

    /// One pass of [`renew`](Self::renew): issues, puts the certificate in
    /// service, and says when, by the store's clock, it did so and how long
    /// to wait before the next pass. `good` says whether the CA's source
    /// is good, so that a certificate put in service makes the last update
    /// successful: not while the directory a CA source reloads stands
    /// refused, this CA being the one loaded before.
    pub(crate) fn renew_once(
        &self,
        store: &CredentialStore,
        identity: &Identity,
        ttl: Duration,
        good: bool,
    ) -> (SystemTime, Duration) {
        // The store's clock: it decides whether what is issued is valid
        // when put in service, so the dates and the schedule follow it.
        let now = store.now();
        let issued = self
            .issue_within_issuer_at(identity, ttl, now)
            .map_err(|e| Box::new(e) as mesh_core::BoxError)
            .and_then(|(issued, _)| Ok((issued.credentials()?, issued)))
            .and_then(|(creds, issued)| Ok(store.update_from(creds, good).map(|()| issued)?));
        let wait = match issued {
            Ok(issued) => issued.renew_after(now),
            Err(error) => {
                let wait = retry_after(store, now);
                tracing::error!(
                    %identity,
                    error = %crate::creds::Causes(&*error),
                    retry_in = ?wait,
                    "cannot issue identity credentials; the ones in service stay"
                );
                wait
            }
        };
        (now, wait)
    }
}

/// Waits until the next renewal, due `wait` after `from` by the store's
/// clock: until tokio's clock has moved on by `wait`, or the store's clock
/// has reached `from + wait`, whichever comes first.
///
/// Why not tokio's timer alone: it runs on a monotonic clock, which stands
/// still while the machine sleeps (a suspended laptop, a paused VM) and
/// takes no notice of a wall clock stepped forward. The certificate in
/// service expires by the store's clock, so a timer armed for its renewal
/// would fire hours after it expired, and the workload would have no
/// identity meanwhile. So the wait is cut into steps of at most
/// [`READINESS_RECHECK`] (a minute), after each of which the store's clock
/// is read again, as the readiness task does.
pub(crate) async fn wait_until_due(store: &CredentialStore, from: SystemTime, wait: Duration) {
    let start = tokio::time::Instant::now();
    let due = from.checked_add(wait);
    loop {
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() || due.is_some_and(|due| store.now() >= due) {
            return;
        }
        tokio::time::sleep(left.min(READINESS_RECHECK)).await;
    }
}

/// How long after a failed renewal at `now` to try again: 70 % of what the
/// chain in service has left, within [`renew_after`]'s bounds, or the
/// shortest wait when nothing valid is in service.
fn retry_after(store: &CredentialStore, now: SystemTime) -> Duration {
    store
        .credentials()
        .and_then(|creds| creds.chain_not_after().duration_since(now).ok())
        .map_or(MIN_RENEW, renew_after)
}

impl CertificateAuthority {
    /// Issues for `identity` living `ttl`, or less when the issuer or the
    /// trust anchor expires sooner, and returns the lifetime given: what
    /// [`renew`](Self::renew) issues, where [`issue`](Self::issue) would
    /// refuse the request.
    ///
    /// # Errors
    ///
    /// [`CaError::UnrenewableTtl`] for a `ttl` under [`MIN_RENEWED_TTL`]
    /// or over [`MAX_LIFETIME`](super::MAX_LIFETIME), which the renewal
    /// loop could not keep valid; [`CaError::IssuerNotYetValid`] before
    /// the issuer is valid; [`CaError::IssuerExpired`] once the
    /// issuer has expired, [`CaError::AnchorExpired`] once the trust anchor
    /// has (each named by its file as in
    /// [`issue_with`](Self::issue_with)), and [`CaError::OutlivesIssuer`]
    /// or [`CaError::OutlivesAnchor`] while the first of them to expire has
    /// less than a second left; otherwise as
    /// [`CertificateAuthority::issue`].
    pub fn issue_within_issuer(
        &self,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<(IssuedCertificate, Duration), CaError> {
        self.issue_within_issuer_at(identity, ttl, self.now())
    }

    /// [`issue_within_issuer`](Self::issue_within_issuer) at `now`.
    pub(crate) fn issue_within_issuer_at(
        &self,
        identity: &Identity,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(IssuedCertificate, Duration), CaError> {
        if !(MIN_RENEWED_TTL..=super::MAX_LIFETIME).contains(&ttl) {
            return Err(CaError::UnrenewableTtl {
                ttl,
                min: MIN_RENEWED_TTL,
                max: super::MAX_LIFETIME,
            });
        }
        // Whole seconds, from now: the certificate is valid until `ttl`
        // after now, so with what the issuer (or the trust anchor, when it
        // expires first) has left it ends with it.
        self.check_issuer_valid(now)?;
        let (until, outlives) = self.signs_until(now + super::MIN_LIFETIME);
        let left = until.duration_since(now).unwrap_or_default();
        let ttl = ttl.min(Duration::from_secs(left.as_secs()));
        if ttl < super::MIN_LIFETIME {
            // Not even a second is left: the shortest certificate would
            // still end after the issuer (or the anchor).
            return Err(outlives);
        }
        Ok((
            self.issue_with_at(&IssueRequest::new(identity.clone()).with_ttl(ttl), now)?,
            ttl,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_renewed_ttl_is_renewed_before_it_expires() {
        assert!(renew_after(MIN_RENEWED_TTL) < MIN_RENEWED_TTL);
        assert!(renew_after(MIN_RENEWED_TTL) >= MIN_RENEWED_TTL.mul_f64(0.7));
    }

    #[test]
    fn renews_at_seventy_percent_within_bounds() {
        assert_eq!(
            renew_after(Duration::from_secs(86_400)),
            Duration::from_secs(60_480)
        );
        assert_eq!(renew_after(Duration::from_secs(5)), MIN_RENEW);
        assert_eq!(renew_after(Duration::from_secs(30 * 86_400)), MAX_RENEW);
    }
}
