//! What the acceptor logs when it refuses a handshake because its own
//! certificate has expired: an error naming the identity and the
//! `notAfter`, once per certificate rather than once per connection. A test
//! binary of its own, since the log is captured per thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod validity;

use std::sync::Mutex;

use mesh_tls::{AcceptConfig, TlsAccept, creds::OutsideValidity};
use support::*;
use validity::*;

/// Captures the events logged on this thread: level and fields.
#[derive(Default)]
struct Events(Mutex<Vec<(tracing::Level, String)>>);

impl tracing::Subscriber for &'static Events {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_server_whose_certificate_has_expired_refuses_the_handshake() {
    let events: &'static Events = Box::leak(Box::default());
    let _log = tracing::subscriber::set_default(events);
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
    let errors: Vec<_> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(level, _)| *level == tracing::Level::ERROR)
        .map(|(_, fields)| fields.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(API) && errors[0].contains("expired at 2030-01-02T00:00:00Z"),
        "{errors:?}"
    );
}
