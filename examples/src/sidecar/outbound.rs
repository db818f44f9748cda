//! The outbound side: from the local application to other services.

use mesh_core::{
    client::Client,
    proxy::{AuthorityRouter, Forward},
};

use super::config::OutboundConfig;

/// The outbound HTTP stack: route by authority, forward to the service's
/// endpoints in turn.
pub(super) fn http_stack(
    config: &OutboundConfig,
    client: &Client<hyper::body::Incoming>,
) -> AuthorityRouter<Forward<Client<hyper::body::Incoming>>> {
    AuthorityRouter::new(config.services.iter().filter_map(|svc| {
        let forward = Forward::new(client.clone(), svc.endpoints.iter().copied()).ok()?;
        Some((svc.name.as_str().to_owned(), forward))
    }))
}
