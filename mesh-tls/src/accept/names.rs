//! The server names the local certificate answers to: its DNS SANs, read
//! once per certificate rather than once per connection.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use mesh_core::conn::Sni;
use rustls::sign::CertifiedKey;
use x509_parser::{
    certificate::X509CertificateParser, extensions::GeneralName, nom::Parser,
    oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME, prelude::FromDer,
};

use crate::Credentials;

/// The DNS names of the certificate in service, kept for the credentials
/// they were read from. Shared by every clone of an acceptor.
#[derive(Debug, Default)]
pub(super) struct LocalNames {
    current: ArcSwapOption<Names>,
}

#[derive(Debug)]
struct Names {
    /// The credentials' key and chain: the names are theirs while the
    /// store serves these.
    of: Arc<CertifiedKey>,
    dns: Box<[Sni]>,
}

impl LocalNames {
    /// Whether `creds`' certificate carries `sni` as a DNS name. The
    /// certificate is read on the first question after each rotation.
    pub(super) fn carries(&self, creds: &Credentials, sni: &Sni) -> bool {
        let key = creds.certified_key();
        if let Some(names) = self.current.load().as_deref()
            && Arc::ptr_eq(&names.of, key)
        {
            return names.dns.contains(sni);
        }
        let names = Names {
            of: key.clone(),
            dns: dns_names(creds),
        };
        let carried = names.dns.contains(sni);
        self.current.store(Some(Arc::new(names)));
        carried
    }
}

/// The DNS SANs of `creds`' workload certificate that are host names
/// ([`Sni::parse`]): a wildcard SAN names no one server, and a client
/// cannot ask for it by name.
fn dns_names(creds: &Credentials) -> Box<[Sni]> {
    let Some(leaf) = creds.chain().first() else {
        return Box::default();
    };
    let Ok((_, x509)) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(leaf.as_ref())
    else {
        return Box::default();
    };
    let san = x509
        .extensions()
        .iter()
        .find(|ext| ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
        .and_then(|ext| x509_parser::extensions::SubjectAlternativeName::from_der(ext.value).ok());
    san.iter()
        .flat_map(|(_, san)| san.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Sni::parse(dns).ok(),
            _ => None,
        })
        .collect()
}
