//! What one request records, from its start to the end of its response.

use std::{error::Error, sync::Arc};

use http::{HeaderMap, HeaderValue, Response};
use mesh_core::{
    classify::{Classification, ErrorKind, GrpcCode},
    error::{GRPC_STATUS, ProxyErrorKind},
};
use tokio::time::Instant;

use super::target::{StatusRef, TargetHandles};
use crate::labels::ResponseKey;

/// The `error` label of a request whose caller went away first.
const CANCEL: &str = "cancel";

/// Records one request's response. It moves from the response future into
/// the response body; whichever holds it when the exchange ends records it,
/// and if neither got that far (the caller dropped the future or the body)
/// dropping it records a cancellation.
#[derive(Debug)]
pub(crate) struct Recorder {
    target: Arc<TargetHandles>,
    start: Instant,
    head: Option<Head>,
    status: Option<StatusRef>,
    done: bool,
}

/// What the response head said.
#[derive(Clone, Copy, Debug)]
struct Head {
    status: u16,
    grpc_status: Option<u16>,
    class: Classification,
    error: Option<&'static str>,
}

impl Recorder {
    /// Starts recording a request that began at `start`.
    pub(crate) fn new(target: Arc<TargetHandles>, start: Instant) -> Self {
        Self {
            target,
            start,
            head: None,
            status: None,
            done: false,
        }
    }

    /// The response head arrived: the latency is measured here, at the first
    /// byte, and the head is classified.
    pub(crate) fn on_response<B>(&mut self, res: &Response<B>) {
        let latency = Instant::now().saturating_duration_since(self.start);
        let status = self.target.status(res.status());
        if let Some(handles) = self.target.status_handles(&status) {
            handles.latency.observe(latency);
        }
        self.status = Some(status);
        self.head = Some(Head {
            status: res.status().as_u16(),
            grpc_status: res.headers().get(GRPC_STATUS).map(grpc_label),
            class: self.target.classify.classify_response(res),
            error: res
                .extensions()
                .get::<ProxyErrorKind>()
                .map(|kind| kind.as_label()),
        });
    }

    /// The response stream ended, with `trailers` if it had any.
    pub(crate) fn on_end(&mut self, trailers: Option<&HeaderMap>) {
        let Some(head) = self.head else {
            return;
        };
        let trailer_status = trailers.and_then(|t| t.get(GRPC_STATUS)).map(grpc_label);
        let class = match head.class {
            Classification::Final(class) => class,
            Classification::Pending => self.target.classify.classify_trailers(trailers),
        };
        self.finish(ResponseKey {
            status: Some(head.status),
            grpc_status: head.grpc_status.or(trailer_status),
            success: class.is_success(),
            error: head.error,
        });
    }

    /// The request or its response body failed with `error`.
    pub(crate) fn on_error(&mut self, error: &(dyn Error + 'static)) {
        self.finish(ResponseKey {
            status: self.head.map(|h| h.status),
            grpc_status: self.head.and_then(|h| h.grpc_status),
            success: false,
            error: Some(ErrorKind::of(error).as_label()),
        });
    }

    fn finish(&mut self, key: ResponseKey) {
        if self.done {
            return;
        }
        self.done = true;
        let status = self.status.as_ref();
        match status.and_then(|s| self.target.status_handles(s)) {
            Some(status) if status.plain_key == key => status.count_plain(&self.target),
            _ => {
                self.target.response(key).inc();
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.done {
            self.finish(ResponseKey {
                status: self.head.map(|h| h.status),
                grpc_status: self.head.and_then(|h| h.grpc_status),
                success: false,
                error: Some(CANCEL),
            });
        }
    }
}

/// The `grpc_status` label of a `grpc-status` value. Values that are not a
/// code gRPC defines read as `UNKNOWN` (2), as gRPC clients read them, so
/// the label keeps to seventeen values whatever a peer sends.
fn grpc_label(value: &HeaderValue) -> u16 {
    GrpcCode::from_header(value)
        .filter(|code| code.is_defined())
        .unwrap_or(GrpcCode::UNKNOWN)
        .as_u16()
}
