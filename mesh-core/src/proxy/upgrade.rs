use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use crate::serve::lease::Lease;

/// Once both sides of an HTTP/1.1 upgrade complete, copies bytes between
/// them until both sides are done or either fails (what one side sent
/// before the other failed still reaching it), or until the `lease` of the server the
/// downstream connection came through is cut; the tunnel holds that
/// server's connection place until then (see
/// [`lease`](crate::serve::lease)).
pub(super) fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade, lease: Option<Lease>) {
    tokio::spawn(async move {
        let cut = async move {
            match lease {
                Some(lease) => lease.cut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = copy(downstream, upstream) => {}
            () = cut => tracing::debug!("upgraded connection cut at the end of shutdown"),
        }
    });
}

async fn copy(downstream: OnUpgrade, upstream: OnUpgrade) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade did not complete");
            return;
        }
    };
    let (down, up): (TokioIo<Upgraded>, TokioIo<Upgraded>) = (TokioIo::new(down), TokioIo::new(up));
    // As a forwarded TCP connection's: what one side sent before the
    // other failed still reaches it.
    match crate::io::copy_both_ways(down, up).await {
        Ok((from_client, from_server)) => {
            tracing::debug!(from_client, from_server, "upgraded connection closed");
        }
        Err(error) => tracing::debug!(%error, "upgraded connection failed"),
    }
}
