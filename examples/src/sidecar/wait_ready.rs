//! `sidecar await`: wait until a sidecar's admin server says it is ready.
//!
//! A sidecar injected as an ordinary container starts with the
//! application, and the application's first requests to the outbound
//! listener may come before it listens, and be refused. Linkerd closes
//! that race with `linkerd-await` run as the proxy container's
//! `postStart` hook: the kubelet starts a pod's containers in order and
//! does not start the next one until the previous one's `postStart` hook
//! has returned, so with the proxy first the application starts only once
//! the proxy is ready (`linkerd/linkerd2`,
//! `charts/partials/templates/proxy.tpl`). `sidecar inject` writes the same
//! hook with this command.
//!
//! Like `linkerd-await` (`linkerd/linkerd-await`, `src/main.rs`) it asks
//! the admin server's `GET /ready` until it answers, waiting between
//! tries, each try given a few seconds at most. [`wait_ready`] ends with
//! an error once the timeout has passed; `sidecar await` then prints it
//! as a warning and exits 0, as `linkerd-await` prints a line and exits 0.
//! Failing would not keep the application from starting: the kubelet
//! kills a container whose `postStart` hook fails (a
//! `FailedPostStartHook` event) and restarts it after a back-off, but goes
//! on starting the pod's next containers all the same (one container's
//! failure to start does not stop `SyncPod`, in
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go` of
//! `kubernetes/kubernetes`); it would only have a sidecar that may be
//! about to become ready killed.
//! Only a 200 counts as ready, as that is what the sidecar's `/ready`
//! answers once it is.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

/// The admin address asked when none is given: Linkerd's admin port on
/// loopback, which `sidecar inject` gives the sidecar by default.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:4191";

/// How long to wait when no timeout is given: the `--timeout=2m` Linkerd's
/// injector passes to `linkerd-await`.
pub const DEFAULT_TIMEOUT: &str = "2m";

/// The wait after the first failed try. It doubles after each failure up
/// to [`MAX_BACKOFF`]: a sidecar usually gets ready within a few tens of
/// milliseconds of starting, and the application waits for as long as
/// this does.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between tries: `linkerd-await`'s fixed backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long one try may take: `linkerd-await`'s. An admin server that
/// accepts and does not answer is asked again rather than waited on.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer that is read: the sidecar's `/ready` answers a
/// word or a list of what it still waits for.
const MAX_BODY: usize = 4096;

/// The most of an answer's body a message quotes.
const MAX_QUOTED: usize = 200;

/// Parses `--admin`: an `IP:PORT` to connect to, whose port is not zero.
///
/// # Errors
///
/// A message saying what was expected.
pub fn parse_admin(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("expected IP:PORT, such as {DEFAULT_ADMIN}"))?;
    if addr.port() == 0 {
        return Err("port 0 cannot be connected to; give the admin server's port".to_owned());
    }
    Ok(addr)
}

/// Asks `GET http://{admin}/ready` until it answers 200, for at most
/// `timeout`.
///
/// # Errors
///
/// [`NotReady`] when `timeout` passed first, with the last answer or
/// error.
pub async fn wait_ready(admin: SocketAddr, timeout: Duration) -> Result<(), NotReady> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut last = None;
    let tries = async {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match try_once(&client, admin).await {
                Ok(()) => return,
                Err(failure) => last = Some(failure),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    };
    match tokio::time::timeout(timeout, tries).await {
        Ok(()) => Ok(()),
        Err(_) => Err(NotReady {
            admin,
            timeout,
            last,
        }),
    }
}

async fn try_once(
    client: &Client<HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
) -> Result<(), Failure> {
    let request = Request::get(format!("http://{admin}/ready"))
        .body(Empty::new())
        .map_err(|error| Failure::Error(error.to_string()))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|error| {
            Failure::Error(if error.is_connect() {
                // The client's layers add nothing to the system's reason.
                format!("cannot connect: {}", crate::root_cause(&error))
            } else {
                with_causes(&error)
            })
        })?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(());
        }
        let body = match Limited::new(response.into_body(), MAX_BODY).collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Err(Failure::Status(status, quoted(&body)))
    };
    tokio::time::timeout(TRY_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Error(format!(
                "no answer within {}",
                Shown(TRY_TIMEOUT)
            )))
        })
}

/// The body's text on one line, cut to [`MAX_QUOTED`] characters.
fn quoted(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Why the last try did not find the sidecar ready.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// It answered with another status, and this body.
    Status(StatusCode, String),
    /// It did not answer: this is why.
    Error(String),
}

/// The sidecar was not ready before the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    admin: SocketAddr,
    timeout: Duration,
    last: Option<Failure>,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sidecar's admin server at {} was not ready within {}: ",
            self.admin,
            Shown(self.timeout)
        )?;
        match &self.last {
            Some(Failure::Status(status, body)) if body.is_empty() => {
                write!(f, "GET /ready last answered {status}")
            }
            Some(Failure::Status(status, body)) => {
                write!(f, "GET /ready last answered {status}: {body}")
            }
            Some(Failure::Error(error)) => write!(f, "GET /ready last failed: {error}"),
            None => f.write_str("GET /ready had not answered yet"),
        }
    }
}

impl std::error::Error for NotReady {}

/// A duration as the CLI takes one: `2m`, `5s`, `300ms`.
struct Shown(Duration);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, millis) = (self.0.as_secs(), self.0.subsec_millis());
        if millis != 0 || secs == 0 {
            write!(f, "{}ms", self.0.as_millis())
        } else if secs % 3600 == 0 {
            write!(f, "{}h", secs / 3600)
        } else if secs % 60 == 0 {
            write!(f, "{}m", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}

fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for cause in crate::causes(error) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses_are_checked() {
        assert_eq!(
            parse_admin("127.0.0.1:4191"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 4191)))
        );
        assert!(parse_admin("localhost").unwrap_err().contains("IP:PORT"));
        assert!(parse_admin("127.0.0.1:0").unwrap_err().contains("port 0"));
    }

    #[test]
    fn durations_are_shown_as_the_cli_takes_them() {
        let shown = |d| Shown(d).to_string();
        assert_eq!(shown(Duration::from_secs(120)), "2m");
        assert_eq!(shown(Duration::from_secs(5)), "5s");
        assert_eq!(shown(Duration::from_millis(300)), "300ms");
        assert_eq!(shown(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn quoted_bodies_are_one_short_line() {
        assert_eq!(quoted("not ready\n  identity\n"), "not ready identity");
        let long = "x".repeat(500);
        assert_eq!(quoted(&long).chars().count(), MAX_QUOTED + 1);
    }
}
