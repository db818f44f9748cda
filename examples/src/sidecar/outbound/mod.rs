//! The outbound side: from the local application to other services.

mod upstream;

use hyper::body::Incoming;
use mesh_core::{
    client::ClientConfig,
    proxy::{AuthorityRouter, Forward},
};

pub(crate) use self::upstream::{ServiceConnectors, Upstream};
use super::config::OutboundConfig;

/// The outbound HTTP stack of one runtime: route by authority, forward to
/// the service's endpoints in turn, over mutual TLS or plaintext as the
/// service is configured.
pub(super) fn http_stack(
    config: &OutboundConfig,
    connectors: &[ServiceConnectors],
    client: &ClientConfig,
) -> AuthorityRouter<Forward<Upstream<Incoming>>> {
    AuthorityRouter::new(
        config
            .services
            .iter()
            .zip(connectors)
            .filter_map(|(svc, connectors)| {
                let forward =
                    Forward::new(connectors.client(client), svc.endpoints.iter().copied()).ok()?;
                Some((svc.name.as_str().to_owned(), forward))
            }),
    )
}
