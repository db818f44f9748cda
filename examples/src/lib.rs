//! The reference sidecar proxy and the demo mesh, assembled from the mesh
//! crates. The binaries in this package (`sidecar`, `hello`) are thin mains
//! over this library, so that integration tests can drive the same code.

pub mod demo;
pub mod sidecar;

/// The errors behind `error`, nearest first: what the command-line tools
/// print as `caused by:` lines under a failure.
pub fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |cause| cause.source())
}

/// The innermost cause of `error` (`error` itself when it has none): for
/// one-line reports such as `cannot connect: Connection refused`, where
/// the outer errors only say which client failed.
pub fn root_cause<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> &'e (dyn std::error::Error + 'static) {
    causes(error).last().unwrap_or(error)
}

/// The README's Rust examples, compiled and run as doctests so that they
/// stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
