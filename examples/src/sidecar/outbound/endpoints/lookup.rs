//! The lookups of the resolver's rounds: one at a time per name.
//!
//! The system's resolver blocks, so each lookup runs on tokio's blocking
//! pool, where the round that gives it up ([`LOOKUP_TIMEOUT`]) cannot stop
//! it: the thread waits for the name server for as long as the system's
//! resolver retries, tens of seconds with a search list. A round every
//! `resolve_interval` would then start one more lookup of the same name
//! while the last ones still wait, until the pool's threads were all
//! taken, and the file reads of the policy and identity watchers, which
//! share that pool, waited behind them. So a name whose last lookup has
//! not ended is not looked up again: the round counts it failed, its last
//! good answer stays, and the next round tries again.
//!
//! [`LOOKUP_TIMEOUT`]: mesh_core::proxy::resolve::LOOKUP_TIMEOUT

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{SocketAddr, ToSocketAddrs},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// A lookup of one name, as the resolver awaits it.
pub(crate) type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Looks names up with the system's resolver.
pub(crate) fn system(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// The lookups of one service's resolver, each on tokio's blocking pool
/// with `blocking`, never two of one name at once (see the [module
/// docs](self)).
pub(crate) fn one_at_a_time<B>(blocking: B) -> impl FnMut(String, u16) -> Lookup + Send + 'static
where
    B: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Clone + Send + Sync + 'static,
{
    let mut running: HashMap<(String, u16), Arc<AtomicBool>> = HashMap::new();
    move |host, port| {
        let flag = running.entry((host.clone(), port)).or_default().clone();
        if flag.swap(true, Ordering::AcqRel) {
            let still = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the last lookup of {host}:{port} has not answered yet"),
            );
            return Box::pin(std::future::ready(Err(still)));
        }
        let blocking = blocking.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Cleared when the lookup ends, however it ends.
            let _running = Running(flag);
            blocking(&host, port)
        });
        Box::pin(async move { task.await.map_err(io::Error::other)? })
    }
}

/// Marks its name's lookup as ended when dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
