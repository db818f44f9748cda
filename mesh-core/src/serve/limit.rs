//! A connection limit several servers share.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// How many connections several servers serve at once, together: a
/// process with many listeners (and a runtime per core serving each) caps
/// its connections once, however they spread. Cloning shares the limit.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    pub(super) permits: Arc<Semaphore>,
}

impl ConnectionLimit {
    /// A limit of `max` connections (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }

    /// How many more connections may be served now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}
