//! Addresses where nothing listens, for connections to be refused at.
//! mesh-metrics', mesh-tls' and the sidecar's tests share this file.
#![allow(dead_code)] // Not every test binary uses every one.

use std::{
    hash::{BuildHasher, RandomState},
    net::{SocketAddr, TcpListener},
};

/// A listener on loopback, on a port drawn below Linux's ephemeral range
/// (32768–60999), where no test binds: once it is closed, no other test's
/// listener takes the port meanwhile.
///
/// A port bound to port 0 and closed could be picked again for another
/// test's listener while this one still counts on it being closed: that
/// listener would take the connection meant to be refused, and see one
/// it did not expect.
pub(crate) fn low_listener() -> TcpListener {
    let random = RandomState::new();
    (0_u64..)
        .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
        .find_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
        .unwrap()
}

/// A port on loopback where nothing listens: [`low_listener`]'s, closed.
pub(crate) fn refused_port() -> u16 {
    low_listener().local_addr().unwrap().port()
}

/// An address on loopback where nothing listens: [`refused_port`].
pub(crate) fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], refused_port()))
}
