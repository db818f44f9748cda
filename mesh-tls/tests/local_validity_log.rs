//! What the acceptor logs when it refuses a handshake because its own
//! certificate has expired: an error naming the identity and the
//! `notAfter`, once per certificate rather than once per connection. A test
//! binary of its own, since the log is captured per thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity;

use mesh_tls::{AcceptConfig, TlsAccept, creds::OutsideValidity};
use support::*;
use validity::*;

#[tokio::test]
async fn a_server_whose_certificate_has_expired_refuses_the_handshake() {
    let (events, _log) = Logs::capture();
    let pki = Pki::new();
    let clock = TestClock::at(JAN_1);
    let store = pki.store(&clock, API);
    let accept = TlsAccept::new(store.clone(), AcceptConfig::default());

    // Renewal failed; the day is over.
    clock.set(JAN_1 + DAY + 3600);
    assert!(!store.is_ready(), "an expired identity is no usable one");
    for _ in 0..2 {
        let (verdict, client) = handshake(&accept).await;
        assert_alerted(client);
        let unusable = refusal(verdict);
        assert_eq!(
            unusable.validity,
            OutsideValidity::Expired {
                not_after: at(JAN_1 + DAY)
            }
        );
        assert_eq!(unusable.identity, id(API));
        assert_eq!(
            unusable.to_string(),
            "local identity certificate of spiffe://example.org/ns/shop/sa/api expired at \
             2030-01-02T00:00:00Z (notAfter; it is now 2030-01-02T01:00:00Z) and no renewal \
             replaced it"
        );
    }
    assert!(
        encode(&store).lines().any(|l| l
            == "tls_handshake_failures_total{direction=\"inbound\",reason=\"credentials_expired\"} 2"),
        "{}",
        encode(&store)
    );
    // Logged as an error once, naming the identity and the notAfter; the
    // second refusal is not an error again.
    let errors = events.find_at(tracing::Level::ERROR, "");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(API) && errors[0].contains("expired at 2030-01-02T00:00:00Z"),
        "{errors:?}"
    );
}
