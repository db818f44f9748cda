//! The server name a ClientHello asks for, read before any handshake, so
//! that the acceptor can tell a client of this workload from one of the
//! application's own TLS (see [server names](super#server-names)), and so
//! that a proxy can route a TLS connection it does not terminate by the
//! name its client asked for (Gateway API `TLSRoute`s match it).
//!
//! Only the first record is read, whole: what every TLS client sends (a
//! ClientHello fits one record, and picky servers refuse one that does
//! not), and what rustls needs before it answers anyway, so waiting for
//! it delays no handshake. Linkerd's proxy reads the same
//! (`linkerd/tls/src/server/client_hello.rs` in linkerd2-proxy).

use mesh_core::conn::Sni;

/// The longest TLS record: a header of 5 bytes and a fragment of at most
/// 2^14 (RFC 8446 §5.1).
pub const MAX_RECORD: usize = 5 + (1 << 14);

/// What the first bytes of a TLS connection say of its server name.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerName {
    /// The first record is not all here: it takes this many bytes in all.
    NeedMore(usize),
    /// The ClientHello asks for this server.
    Named(Sni),
    /// The ClientHello asks for none (the `server_name` extension is
    /// absent, or names no host), or cannot be read here: a record that is
    /// no ClientHello, a malformed one, one continued past its first
    /// record, or a name that is no host name. Terminated, so that rustls
    /// decides, and refuses what is malformed.
    Unnamed,
}

/// Reads the server name from `buf`, the first bytes of a connection that
/// opens with a TLS handshake record.
pub fn server_name(buf: &[u8]) -> ServerName {
    let Some(header) = buf.get(..5) else {
        return ServerName::NeedMore(5);
    };
    let fragment = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != 0x16 || fragment > MAX_RECORD - 5 {
        return ServerName::Unnamed;
    }
    let Some(record) = buf.get(5..5 + fragment) else {
        return ServerName::NeedMore(5 + fragment);
    };
    match hello_server_name(record) {
        Some(sni) => ServerName::Named(sni),
        None => ServerName::Unnamed,
    }
}

/// The host name of the `server_name` extension (RFC 6066 §3) of the
/// ClientHello that `record`, a handshake record's fragment, holds.
fn hello_server_name(record: &[u8]) -> Option<Sni> {
    let mut record = Reader(record);
    // HandshakeType client_hello, and a 24-bit length (RFC 8446 §4).
    if record.u8()? != 1 {
        return None;
    }
    let [a, b, c] = *record.take(3)? else {
        return None;
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let mut hello = Reader(record.take(len)?);
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec8()?; // legacy_session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // legacy_compression_methods
    let mut extensions = Reader(hello.vec16()?);
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != 0 {
            continue;
        }
        // server_name: a list of (NameType, name); host_name is 0, and
        // the only type ever defined.
        let mut names = Reader(Reader(data).vec16()?);
        while !names.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type == 0 {
                return Sni::parse(std::str::from_utf8(name).ok()?).ok();
            }
        }
        return None;
    }
    None
}

/// Reads big-endian integers and length-prefixed vectors off a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let [hi, lo] = *self.take(2)? else {
            return None;
        };
        Some(u16::from_be_bytes([hi, lo]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The first bytes a rustls client sends for `name` (`None`: an
    /// address, for which no `server_name` extension goes out).
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_client_hello_names_its_server_once_its_record_is_whole() {
        let hello = client_hello("App.Example");
        let want = ServerName::Named(Sni::parse("app.example").unwrap());
        assert_eq!(server_name(&hello), want);
        for cut in 0..hello.len() {
            let need = if cut < 5 { 5 } else { hello.len() };
            assert_eq!(
                server_name(&hello[..cut]),
                ServerName::NeedMore(need),
                "{cut}"
            );
        }
        // What follows the record is not read.
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03 anything");
        assert_eq!(server_name(&more), want);
    }

    #[test]
    fn a_client_hello_to_an_address_names_nothing() {
        assert_eq!(server_name(&client_hello("127.0.0.1")), ServerName::Unnamed);
    }

    #[test]
    fn what_is_no_readable_client_hello_names_nothing() {
        let hello = client_hello("app.example");
        // Not a ClientHello (a ServerHello's type).
        let mut other = hello.clone();
        other[5] = 2;
        assert_eq!(server_name(&other), ServerName::Unnamed);
        // A hello longer than its record: continued in the next one.
        let mut long = hello.clone();
        long[7] = long[7].wrapping_add(1);
        assert_eq!(server_name(&long), ServerName::Unnamed);
        // A record longer than TLS allows.
        assert_eq!(
            server_name(&[0x16, 0x03, 0x01, 0x40, 0x01]),
            ServerName::Unnamed
        );
        // A name that is no host name.
        let at = hello.windows(11).position(|w| w == b"app.example").unwrap();
        let mut bad = hello.clone();
        bad[at + 3] = b'/';
        assert_eq!(server_name(&bad), ServerName::Unnamed);
    }
}
