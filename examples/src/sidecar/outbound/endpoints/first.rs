//! The first lookup of every endpoint name, at start.
//!
//! The names are looked up before the runtimes serve, so that a name that
//! resolves is in use from the first request. The system's resolver
//! blocks, and a name server that does not answer holds a lookup for its
//! timeout, once per search domain and attempt: looked up one after the
//! other, a few such names kept the sidecar from serving (its admin port
//! and readiness included) for minutes. So every name is looked up at
//! once, on threads of their own, and the start waits for the answers
//! [`LOOKUP_TIMEOUT`] at most, as the resolver's rounds wait for each
//! lookup. A name not answered by then starts without endpoints, as one
//! that fails does, and the resolver looks it up again at its next round;
//! its thread ends when the system's resolver gives up.

use std::{
    collections::{HashMap, VecDeque},
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use mesh_core::proxy::resolve::{EndpointAddr, LOOKUP_TIMEOUT};

/// The most lookups at once: more names wait for a thread, within the
/// same bound.
const MAX_THREADS: usize = 16;

/// What a name's first lookup said: its addresses, or why not.
type Answer = Result<Vec<SocketAddr>, (io::ErrorKind, String)>;

/// The answers of the first lookup of every name among the services'
/// endpoints.
#[derive(Debug, Default)]
pub(crate) struct FirstAnswers {
    answers: HashMap<(String, u16), Answer>,
}

impl FirstAnswers {
    /// Looks up every name among `endpoints` with the system's resolver,
    /// all at once, waiting [`LOOKUP_TIMEOUT`] at most (see the [module
    /// docs](self)).
    pub(crate) fn look_up<'a>(endpoints: impl IntoIterator<Item = &'a EndpointAddr>) -> Self {
        Self::with_lookup(endpoints, LOOKUP_TIMEOUT, super::lookup::system)
    }

    /// As [`look_up`](Self::look_up), with `lookup`, waiting `bound` at
    /// most.
    pub(super) fn with_lookup<'a, L>(
        endpoints: impl IntoIterator<Item = &'a EndpointAddr>,
        bound: Duration,
        lookup: L,
    ) -> Self
    where
        L: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Clone + Send + 'static,
    {
        let mut names: Vec<(String, u16)> = endpoints
            .into_iter()
            .filter_map(|endpoint| match endpoint {
                EndpointAddr::Name { host, port } => Some((host.clone(), *port)),
                EndpointAddr::Socket(_) => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut answers = HashMap::with_capacity(names.len());
        if names.is_empty() {
            return Self { answers };
        }
        let deadline = tokio::time::Instant::now() + bound;
        let count = names.len();
        let queue = Arc::new(Mutex::new(VecDeque::from(names.clone())));
        let (answered, answers_rx) = mpsc::channel();
        for _ in 0..count.min(MAX_THREADS) {
            let queue = queue.clone();
            let answered = answered.clone();
            let lookup = lookup.clone();
            let looking = std::thread::Builder::new()
                .name("sidecar-dns".into())
                .spawn(move || {
                    // The lock is held only to take the next name.
                    while let Some((host, port)) = queue.lock().ok().and_then(|mut q| q.pop_front())
                    {
                        let answer = lookup(&host, port).map_err(|e| (e.kind(), e.to_string()));
                        if answered.send(((host, port), answer)).is_err() {
                            return;
                        }
                    }
                });
            if looking.is_err() {
                // Without a thread the names wait for the resolver's
                // first round; those of the threads started are answered.
                break;
            }
        }
        drop(answered);
        while answers.len() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match answers_rx.recv_timeout(left) {
                Ok((name, answer)) => {
                    answers.insert(name, answer);
                }
                Err(_) => break,
            }
        }
        // Whatever was not taken yet is left to the resolver.
        if let Ok(mut queue) = queue.lock() {
            queue.clear();
        }
        for (host, port) in names {
            answers
                .entry((host, port))
                .or_insert_with_key(|(host, port)| {
                    tracing::warn!(
                        name = %host,
                        port,
                        bound = ?bound,
                        "no answer at start; looked up again at the next round"
                    );
                    Err((
                        io::ErrorKind::TimedOut,
                        format!("no answer in {}ms", bound.as_millis()),
                    ))
                });
        }
        Self { answers }
    }

    /// The first answer for `host` and `port`: an error when it was not
    /// looked up.
    pub(super) fn answer(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match self.answers.get(&(host.to_owned(), port)) {
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err((kind, message))) => Err(io::Error::new(*kind, message.clone())),
            None => Err(io::Error::other(format!("{host}:{port} was not looked up"))),
        }
    }
}
