//! Addresses where nothing listens, for connections to be refused at.

use std::{
    hash::{BuildHasher, RandomState},
    net::SocketAddr,
};

/// An address on loopback where nothing listens, drawn below Linux's
/// ephemeral range (32768–60999), where no test binds.
///
/// A port bound to port 0 and closed could be picked again for another
/// test's listener while this one still counts on it being closed: that
/// listener would take the connection meant to be refused, and see one
/// it did not expect.
pub(crate) fn refused_addr() -> SocketAddr {
    let random = RandomState::new();
    let port = (0_u64..)
        .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}
