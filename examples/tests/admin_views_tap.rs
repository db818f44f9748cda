//! `sidecar tap`: its failures said once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mesh_examples::sidecar::views::{self, ViewError};
use mesh_metrics::{query::Format, tap::TapFilter};
use support::refused_addr;

/// The lines the command line prints for `error`: the error, then each
/// cause.
fn lines(error: &ViewError) -> Vec<String> {
    std::iter::once(error.to_string())
        .chain(mesh_examples::causes(error).map(ToString::to_string))
        .collect()
}

async fn tap(admin: &str) -> Result<String, ViewError> {
    let mut out = Vec::new();
    views::tap(&mut out, admin, &TapFilter::default(), Format::Table, None).await?;
    Ok(String::from_utf8(out).unwrap())
}

/// "cannot connect to X", caused by "cannot connect to X": each line
/// printed must say something the one before did not.
#[tokio::test]
async fn a_tap_that_cannot_connect_says_so_once() {
    let addr = refused_addr().await.to_string();
    let error = tap(&addr).await.unwrap_err();
    let lines = lines(&error);
    assert!(lines[0].contains(&addr), "{lines:?}");
    for pair in lines.windows(2) {
        assert_ne!(pair[0], pair[1], "{lines:?}");
    }
}
