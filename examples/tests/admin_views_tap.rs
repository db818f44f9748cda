//! `sidecar tap --admin`: read as the other views read it, and its
//! failures said once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http::Response;
use mesh_examples::sidecar::views::{self, ViewError};
use mesh_metrics::{query::Format, tap::TapFilter};
use support::{full, refused_addr, serve};

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

/// An admin server whose tap ends at once, with no event, and the count
/// of the requests it got.
async fn empty_tap() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    serve(listener, move |req| {
        let seen = seen.clone();
        async move {
            assert_eq!(req.uri().path(), "/tap");
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(full("")))
        }
    });
    (addr, requests)
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

/// The module docs: a URL, a path or an empty item is refused, naming the
/// item, before anything is connected to; and tap watches one admin
/// server, so a list is refused too, rather than looked up in DNS as one
/// host name.
#[tokio::test]
async fn tap_refuses_an_admin_that_is_not_one_host_and_port() {
    let (addr, requests) = empty_tap().await;
    for admin in [
        format!("http://{addr}"),
        format!("{addr}/tap"),
        String::new(),
        format!("{addr},{addr}"),
        "emoji".to_owned(),
    ] {
        let error = tap(&admin).await.unwrap_err();
        assert!(
            !matches!(error, ViewError::Tap(_)),
            "{admin:?}: {:?}",
            lines(&error)
        );
        let text = lines(&error).join("\n");
        assert!(text.contains("--admin"), "{admin:?}: {text}");
        if !admin.is_empty() {
            let item = admin.split(',').next().unwrap();
            assert!(text.contains(item), "{admin:?}: {text}");
        }
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0);

    // `NAME=HOST:PORT`, as the other views take it, and blanks around.
    for admin in [format!("web={addr}"), format!(" {addr} ")] {
        assert_eq!(tap(&admin).await.unwrap(), "", "{admin:?}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}
