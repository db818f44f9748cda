//! Steps of the tests that time a server on tokio's paused clock: the
//! clock is paused while the server's timers run, and goes only while a
//! step moves bytes over a socket, which the paused clock would jump
//! past.

use std::{future::Future, time::Duration};

/// Runs `step` with the clock going, and pauses it again. A step that
/// takes ten seconds waits for something that will not come.
pub(crate) async fn in_real_time<F: Future>(step: F) -> F::Output {
    tokio::time::resume();
    let out = tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("the step did not end: the stream was cut?");
    tokio::time::pause();
    out
}

/// `lasted` is `expected`, give or take the real time the steps took.
/// On a loaded machine those take more than a tenth of a second; two
/// seconds still tell apart the wrong answers of tests whose timeouts
/// and steps are tens of seconds.
pub(crate) fn about(lasted: Duration, expected: Duration) {
    let slack = Duration::from_secs(2);
    assert!(
        lasted + slack >= expected && lasted <= expected + slack,
        "{lasted:?}, not {expected:?}"
    );
}
