//! A credential store supplied by a CA directory
//! ([`CredentialSource::Ca`]) on the store's own clock
//! ([`CredentialStore::with_time_provider`]): the first certificate is dated
//! and scheduled by it, and a reloaded CA whose issuer is outside its
//! validity by it is refused, the CA loaded before going on issuing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;
use crate::validity::TestClock;

use mesh_tls::{CredentialStore, StoreConfig};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// A clock that says a time `SystemTime` cannot hold is read as the system
/// clock, as the CA reads it, rather than panicking.
#[test]
fn a_clock_beyond_what_system_time_holds_is_read_as_the_system_clock() {
    let store =
        CredentialStore::with_time_provider(StoreConfig::default(), TestClock::at(u64::MAX));
    store.update(creds(&ca(), WEB)).unwrap();
    assert!(store.is_ready());
}
