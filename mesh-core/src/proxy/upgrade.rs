use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

/// Once both sides of an HTTP/1.1 upgrade complete, copies bytes between
/// them until either side closes.
pub(super) fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "upgrade did not complete");
                return;
            }
        };
        let (mut down, mut up): (TokioIo<Upgraded>, TokioIo<Upgraded>) =
            (TokioIo::new(down), TokioIo::new(up));
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((from_client, from_server)) => {
                tracing::debug!(from_client, from_server, "upgraded connection closed");
            }
            Err(error) => tracing::debug!(%error, "upgraded connection failed"),
        }
    });
}
