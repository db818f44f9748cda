//! `sidecar await` asks an admin server's `GET /ready` until it answers
//! 200, and past its timeout warns, naming the address and the last
//! answer, and exits 0 as linkerd-await does; the `postStart` hook of an
//! injected sidecar runs it. These run the real binary against real HTTP
//! servers on loopback. A timeout that should not pass is long, as a busy
//! machine may take seconds over a few requests between two processes; one
//! that should pass is a few seconds, long enough for several tries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http::{Response, StatusCode};
use support::{full, serve, sidecar_cli};

struct Run {
    code: Option<i32>,
    stderr: String,
}

async fn run_await(args: &[&str]) -> Run {
    let args: Vec<String> = ["await"]
        .iter()
        .chain(args)
        .map(|arg| (*arg).to_owned())
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sidecar_cli(&args)
    })
    .await
    .unwrap();
    Run {
        code: output.status.code(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// An admin server whose `/ready` answers 503 `not ready` to its first
/// `not_ready` requests, then 200; and the count of requests to it.
async fn admin(not_ready: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    serve(listener, move |request| {
        let count = count.clone();
        async move {
            assert_eq!(request.uri().path(), "/ready");
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (status, text) = if n < not_ready {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            } else {
                (StatusCode::OK, "ready\n")
            };
            Ok(Response::builder().status(status).body(full(text)).unwrap())
        }
    });
    (addr, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_exits_zero_once_ready_answers_200() {
    let (addr, asked) = admin(2).await;
    let run = run_await(&["--admin", &addr, "--timeout", "30s"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // It asked through the 503s, and stopped at the 200.
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_warns_past_its_timeout_naming_the_address_and_the_last_answer_and_exits_zero() {
    let (addr, asked) = admin(usize::MAX).await;
    let run = run_await(&["--admin", &addr, "--timeout", "3s"]).await;
    // As linkerd-await: the application starts anyway, so the hook says why
    // and succeeds.
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "warning: the sidecar's admin server at {addr} was not ready within 3s"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("GET /ready last answered 503 Service Unavailable: not ready"),
        "{}",
        run.stderr
    );
    assert!(asked.load(Ordering::SeqCst) >= 2, "it tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_keeps_trying_a_port_nothing_listens_on_until_its_timeout() {
    let refused = support::refused_addr().await.to_string();
    let run = run_await(&["--admin", &refused, "--timeout", "2s"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("going on, as linkerd-await does"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "the sidecar's admin server at {refused} was not ready within 2s: \
             GET /ready last failed: cannot connect:"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    // A server that starts listening once it has begun is found. (The
    // timeout is generous: a loaded machine may start the binary slowly.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let waiting = tokio::spawn(async move {
        run_await(&["--admin", &addr.to_string(), "--timeout", "30s"]).await
    });
    let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
        // Another test took the port meanwhile: the first half stands.
        return;
    };
    serve(listener, |_| async { Ok(Response::new(full("ready\n"))) });
    let run = waiting.await.unwrap();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_refuses_bad_flags_clearly() {
    let run = run_await(&["--admin", "localhost:4191"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--admin") && run.stderr.contains("expected IP:PORT"),
        "{}",
        run.stderr
    );
    let run = run_await(&["--admin", "127.0.0.1:0"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("port 0"), "{}", run.stderr);
    let run = run_await(&["--timeout", "0s"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--timeout") && run.stderr.contains("greater than zero"),
        "{}",
        run.stderr
    );
    let run = run_await(&["--timeout", "soon"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--timeout"), "{}", run.stderr);
}
