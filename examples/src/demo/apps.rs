//! The three applications, shaped like the guide's emojivoto. They know
//! nothing of the mesh: plain HTTP/1.1 servers on 127.0.0.1, and `web`
//! reaches the others through its sidecar's outbound listener by name, as
//! an application in any language would.
//!
//! - `emoji`: `GET /api/list` lists the emoji, `GET /api/find?shortcode=S`
//!   finds one (404 when there is none).
//! - `voting`: `POST /api/vote?choice=S` counts a vote, `GET /api/results`
//!   lists the counts. One vote in ten fails with a 500, at random from a
//!   fixed seed, so that retries have something to hide.
//! - `web`: `GET /api/list`, `GET /api/vote?choice=S` (finds the emoji,
//!   then votes) and `GET /api/leaderboard`, each calling `emoji` or
//!   `voting`. When a call fails, web fails too. It counts what its calls
//!   got, which is the success rate the mesh promises to keep high.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header::HOST};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use mesh_core::serve::Shutdown;
use tokio::net::TcpListener;

/// The emoji one can vote for.
pub const EMOJI: &[&str] = &[
    ":joy:",
    ":sunglasses:",
    ":doughnut:",
    ":rocket:",
    ":unicorn:",
    ":taco:",
    ":100:",
    ":see_no_evil:",
];

/// How long an application waits for in-flight requests at shutdown.
const GRACE: Duration = Duration::from_secs(5);

type Body = Full<Bytes>;

/// Answers as their caller saw them: a 2xx, or anything else (another
/// status, or no answer at all).
#[derive(Debug, Default)]
pub struct Outcomes {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Outcomes {
    /// Counts one answer.
    pub fn record(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Relaxed);
    }

    /// The 2xx answers.
    pub fn ok(&self) -> u64 {
        self.ok.load(Relaxed)
    }

    /// The other answers.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// Serves `emoji` on `listener` until `shutdown`.
pub async fn emoji(listener: TcpListener, shutdown: Shutdown) {
    serve(listener, shutdown, |req| async move {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/api/list") => text(StatusCode::OK, EMOJI.join(" ")),
            (&Method::GET, "/api/find") => match query(&req, "shortcode") {
                Some(code) if EMOJI.contains(&code) => text(StatusCode::OK, code.to_owned()),
                _ => text(StatusCode::NOT_FOUND, "no such emoji"),
            },
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    })
    .await;
}

/// `voting`'s state: the counts, and the random source of its failures.
#[derive(Debug)]
struct Ballot {
    votes: BTreeMap<String, u64>,
    rng: fastrand::Rng,
}

/// Serves `voting` on `listener` until `shutdown`. A vote fails with a 500
/// with probability `failure_rate`, drawn from a generator seeded with
/// `seed`.
pub async fn voting(listener: TcpListener, failure_rate: f64, seed: u64, shutdown: Shutdown) {
    let ballot = Arc::new(Mutex::new(Ballot {
        votes: BTreeMap::new(),
        rng: fastrand::Rng::with_seed(seed),
    }));
    serve(listener, shutdown, move |req| {
        let ballot = ballot.clone();
        async move {
            let Ok(mut ballot) = ballot.lock() else {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
            };
            match (req.method(), req.uri().path()) {
                (&Method::POST, "/api/vote") => {
                    if ballot.rng.f64() < failure_rate {
                        return text(StatusCode::INTERNAL_SERVER_ERROR, "the ballot box jammed");
                    }
                    let Some(choice) = query(&req, "choice") else {
                        return text(StatusCode::BAD_REQUEST, "no choice");
                    };
                    *ballot.votes.entry(choice.to_owned()).or_default() += 1;
                    text(StatusCode::OK, "counted")
                }
                (&Method::GET, "/api/results") => {
                    let results: Vec<String> = ballot
                        .votes
                        .iter()
                        .map(|(emoji, n)| format!("{emoji} {n}"))
                        .collect();
                    text(StatusCode::OK, results.join("\n"))
                }
                _ => text(StatusCode::NOT_FOUND, "not found"),
            }
        }
    })
    .await;
}

/// Serves `web` on `listener` until `shutdown`, calling `emoji` and
/// `voting` through the sidecar's outbound listener at `outbound`, and
/// counting what the calls got in `calls`.
pub async fn web(
    listener: TcpListener,
    outbound: SocketAddr,
    calls: Arc<Outcomes>,
    shutdown: Shutdown,
) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    // Calls `method path` on `service`: to the outbound listener, with the
    // service's name as the authority. The sidecar routes by that name.
    let call = move |service: &'static str, method: Method, path: String| {
        let (client, calls) = (client.clone(), calls.clone());
        async move {
            let answer = async {
                let req = Request::builder()
                    .method(method)
                    .uri(format!("http://{outbound}{path}"))
                    .header(HOST, service)
                    .body(Empty::new())
                    .map_err(|e| format!("{service}: {e}"))?;
                let res = client
                    .request(req)
                    .await
                    .map_err(|e| format!("{service}: {e}"))?;
                let status = res.status();
                let body = res.into_body().collect().await;
                let body = body.map_err(|e| format!("{service}: {e}"))?;
                if status.is_success() {
                    Ok(body.to_bytes())
                } else {
                    Err(format!("{service} answered {status}"))
                }
            };
            let answer = answer.await;
            calls.record(answer.is_ok());
            answer
        }
    };
    serve(listener, shutdown, move |req| {
        let call = call.clone();
        async move {
            let answer = match (req.method(), req.uri().path()) {
                (&Method::GET, "/api/list") => call("emoji", Method::GET, "/api/list".into()).await,
                (&Method::GET, "/api/vote") => {
                    let choice = query(&req, "choice").unwrap_or_default().to_owned();
                    let found = call(
                        "emoji",
                        Method::GET,
                        format!("/api/find?shortcode={choice}"),
                    );
                    match found.await {
                        Ok(_) => {
                            let vote = format!("/api/vote?choice={choice}");
                            call("voting", Method::POST, vote).await
                        }
                        Err(error) => Err(error),
                    }
                }
                (&Method::GET, "/api/leaderboard") => {
                    call("voting", Method::GET, "/api/results".into()).await
                }
                _ => return text(StatusCode::NOT_FOUND, "not found"),
            };
            match answer {
                Ok(body) => text(StatusCode::OK, body),
                Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error),
            }
        }
    })
    .await;
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` with `handle`, until
/// `shutdown`; then lets in-flight requests finish, for up to [`GRACE`].
async fn serve<F, Fut>(listener: TcpListener, shutdown: Shutdown, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let handle = handle.clone();
        let svc = hyper::service::service_fn(move |req| {
            let answer = handle(req);
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection(TokioIo::new(tcp), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(conn);
    }
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
}
