use std::time::{Duration, SystemTime};

use mesh_core::Identity;

use super::{CaError, CertificateAuthority, IssuedCertificate};
use crate::CredentialStore;

/// The shortest wait before renewing, so that a CA issuing very short
/// certificates cannot make the renewal loop spin.
const MIN_RENEW: Duration = Duration::from_secs(10);

/// The longest wait before renewing.
const MAX_RENEW: Duration = Duration::from_secs(86_400);

/// How long after issuing a certificate living `ttl` it is renewed: at 70 %
/// of its lifetime, clamped between 10 seconds and 24 hours, as Linkerd's
/// proxy does. The remaining 30 % leaves room for retries when the CA is
/// briefly unavailable.
pub fn renew_after(ttl: Duration) -> Duration {
    ttl.mul_f64(0.7).clamp(MIN_RENEW, MAX_RENEW)
}

impl CertificateAuthority {
    /// Keeps `store` supplied with certificates for `identity` living
    /// `ttl`: issues one now and a new one after every [`renew_after`].
    /// Runs until dropped; spawn it. This is the development-mode identity
    /// of the sidecar, when it is given a CA directory instead of files.
    ///
    /// In the issuer's last `ttl`, certificates end with the issuer instead
    /// (as Linkerd's CA clamps them), and are renewed at 70 % of that
    /// shorter lifetime, so the workload keeps an identity until the issuer
    /// itself expires. A failed issue is logged and retried after 10
    /// seconds.
    pub async fn renew(self, store: CredentialStore, identity: Identity, ttl: Duration) {
        loop {
            let issued = self
                .issue_within_issuer(&identity, ttl)
                .map_err(|e| Box::new(e) as mesh_core::BoxError)
                .and_then(|(issued, ttl)| Ok((issued.credentials()?, ttl)))
                .and_then(|(creds, ttl)| Ok(store.update(creds).map(|()| ttl)?));
            let wait = match issued {
                Ok(ttl) => renew_after(ttl),
                Err(error) => {
                    tracing::error!(%identity, %error, "cannot issue identity credentials");
                    MIN_RENEW
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl CertificateAuthority {
    /// Issues for `identity` living `ttl`, or less when the issuer expires
    /// sooner, and returns the lifetime given: what [`renew`](Self::renew)
    /// issues, where [`issue`](Self::issue) would refuse the request.
    ///
    /// # Errors
    ///
    /// As [`CertificateAuthority::issue`]; [`CaError::InvalidLifetime`]
    /// once the issuer has expired.
    pub fn issue_within_issuer(
        &self,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<(IssuedCertificate, Duration), CaError> {
        // Whole seconds, from now: the certificate starts a minute earlier,
        // so it ends a minute before the issuer.
        let left = self
            .issuer_not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let ttl = ttl.min(Duration::from_secs(left.as_secs()));
        Ok((self.issue(identity, ttl)?, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
