use std::time::Duration;

use mesh_core::Identity;

use super::CertificateAuthority;
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
    /// A failed issue is logged and retried after 10 seconds.
    pub async fn renew(self, store: CredentialStore, identity: Identity, ttl: Duration) {
        loop {
            let issued = self
                .issue(&identity, ttl)
                .map_err(|e| Box::new(e) as mesh_core::BoxError)
                .and_then(|issued| Ok(issued.credentials()?))
                .and_then(|creds| Ok(store.update(creds)?));
            let wait = match issued {
                Ok(()) => renew_after(ttl),
                Err(error) => {
                    tracing::error!(%identity, %error, "cannot issue identity credentials");
                    MIN_RENEW
                }
            };
            tokio::time::sleep(wait).await;
        }
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
