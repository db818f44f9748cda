//! HTTP/2 frames written by hand, for tests that must send what no
//! well-behaved client sends, or read what the server writes frame by
//! frame.
#![allow(dead_code)] // Not every test binary sends every frame.

/// Frame types (RFC 9113, section 6).
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

/// Flags: `END_STREAM` on HEADERS and DATA, `ACK` on SETTINGS and PING.
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// `GET http://a/`, HPACK-coded with the static table only.
pub(crate) const GET: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x01, b'a'];

/// Appends one frame to `out`: its 9-byte head, then `payload`.
pub(crate) fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}
