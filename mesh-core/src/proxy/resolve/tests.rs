use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{EndpointAddr, Outcome, Resolution, Resolver, Round};

fn addr(i: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], port))
}

fn name(host: &str, port: u16) -> EndpointAddr {
    EndpointAddr::Name {
        host: host.into(),
        port,
    }
}

/// A DNS a test writes the answers of: a name it has no answer for fails.
#[derive(Clone, Default)]
struct Dns(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl Dns {
    fn answer(&self, host: &str, hosts: &[u8]) {
        self.0.lock().unwrap().insert(host.into(), hosts.to_vec());
    }

    fn fail(&self, host: &str) {
        self.0.lock().unwrap().remove(host);
    }

    fn lookup(
        &self,
    ) -> impl FnMut(String, u16) -> std::future::Ready<io::Result<Vec<SocketAddr>>> + use<> {
        let answers = self.0.clone();
        move |host, port| {
            let answer = match answers.lock().unwrap().get(&host) {
                Some(hosts) => Ok(hosts.iter().map(|&i| addr(i, port)).collect()),
                None => Err(io::Error::other("no such name")),
            };
            std::future::ready(answer)
        }
    }
}

#[test]
fn addresses_are_kept_as_they_are_and_names_wait_for_an_answer() {
    let endpoints = [EndpointAddr::Socket(addr(9, 80)), name("emoji", 8080)];
    let mut resolution = Resolution::new(&endpoints);
    assert!(resolution.has_names());
    assert_eq!(resolution.names().collect::<Vec<_>>(), [("emoji", 8080)]);
    assert_eq!(resolution.endpoints(), [addr(9, 80)]);
    let answer = Ok(vec![addr(2, 8080), addr(1, 8080), addr(9, 80)]);
    assert_eq!(resolution.record(0, answer), Outcome::Resolved);
    assert_eq!(
        resolution.endpoints(),
        [addr(1, 8080), addr(2, 8080), addr(9, 80)]
    );
    assert!(!Resolution::new(&endpoints[..1]).has_names());
}

#[test]
fn a_failed_or_empty_answer_keeps_the_last_good_one() {
    let mut resolution = Resolution::new(&[name("emoji", 80)]);
    resolution.record(0, Ok(vec![addr(1, 80)]));
    let failed = resolution.record(0, Err(io::Error::other("timed out")));
    assert_eq!(failed, Outcome::Failed);
    assert_eq!(resolution.endpoints(), [addr(1, 80)]);
    assert_eq!(resolution.record(0, Ok(vec![])), Outcome::Failed);
    assert_eq!(resolution.endpoints(), [addr(1, 80)]);
    assert_eq!(resolution.record(7, Ok(vec![addr(2, 80)])), Outcome::Failed);
}

#[tokio::test]
async fn a_round_counts_its_lookups_and_says_whether_the_endpoints_changed() {
    let dns = Dns::default();
    dns.answer("emoji", &[1, 2]);
    let endpoints = [name("emoji", 80), name("voting", 80)];
    let mut resolver = Resolver::new(Resolution::new(&endpoints), dns.lookup());
    let round = resolver.resolve().await;
    let expected = Round {
        endpoints: vec![addr(1, 80), addr(2, 80)],
        changed: true,
        resolved: 1,
        failed: 1,
    };
    assert_eq!(round, expected);
    let again = resolver.resolve().await;
    assert!(!again.changed);
    dns.answer("voting", &[3]);
    let round = resolver.resolve().await;
    assert!(round.changed);
    assert_eq!(round.endpoints, [addr(1, 80), addr(2, 80), addr(3, 80)]);
}

#[tokio::test(start_paused = true)]
async fn run_looks_again_every_interval_and_keeps_the_last_set_through_failures() {
    let dns = Dns::default();
    dns.answer("emoji", &[1]);
    let mut resolver = Resolver::new(Resolution::new(&[name("emoji", 80)]), dns.lookup())
        .with_interval(Duration::from_secs(5));
    assert_eq!(resolver.resolve().await.endpoints, [addr(1, 80)]);
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let seen = rounds.clone();
    let task = tokio::spawn(resolver.run(move |round| seen.lock().unwrap().push(round)));

    let step = async |secs| {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        rounds.lock().unwrap().last().cloned()
    };
    // Nothing before the first interval.
    assert_eq!(step(4).await, None);
    dns.answer("emoji", &[2, 3]);
    let round = step(2).await.unwrap();
    assert!(round.changed);
    assert_eq!(round.endpoints, [addr(2, 80), addr(3, 80)]);
    dns.fail("emoji");
    let round = step(5).await.unwrap();
    assert_eq!((round.changed, round.failed), (false, 1));
    assert_eq!(round.endpoints, [addr(2, 80), addr(3, 80)]);
    assert_eq!(rounds.lock().unwrap().len(), 2);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn an_interval_longer_than_the_clock_holds_waits_a_year() {
    let dns = Dns::default();
    dns.answer("emoji", &[1]);
    let rounds = Arc::new(Mutex::new(0));
    let counted = rounds.clone();
    let resolver = Resolver::new(Resolution::new(&[name("emoji", 80)]), dns.lookup())
        .with_interval(Duration::MAX);
    let run = tokio::spawn(resolver.run(move |_| *counted.lock().unwrap() += 1));
    tokio::time::sleep(Duration::from_secs(364 * 24 * 3600)).await;
    assert!(!run.is_finished(), "the loop ended: {:?}", run.await);
    assert_eq!(*rounds.lock().unwrap(), 0);
    tokio::time::sleep(Duration::from_secs(2 * 24 * 3600)).await;
    assert_eq!(*rounds.lock().unwrap(), 1);
    run.abort();
}

/// A name server that never answers one name costs that name its round,
/// after `LOOKUP_TIMEOUT`, and no other name anything: they are looked
/// up at once, and the round ends.
#[tokio::test(start_paused = true)]
async fn a_name_that_never_answers_times_out_without_holding_up_the_others() {
    let started = tokio::time::Instant::now();
    let lookup = |host: String,
                  port: u16|
     -> std::pin::Pin<
        Box<dyn std::future::Future<Output = io::Result<Vec<SocketAddr>>> + Send>,
    > {
        if host == "silent" {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(vec![addr(1, port)])
            })
        }
    };
    let endpoints = [name("silent", 80), name("emoji", 80), name("voting", 81)];
    let mut resolver = Resolver::new(Resolution::new(&endpoints), lookup);
    let round = resolver.resolve().await;
    assert_eq!(round.endpoints, [addr(1, 80), addr(1, 81)]);
    assert_eq!((round.resolved, round.failed), (2, 1));
    // The two answers came together after a second, not one after the
    // other; the silent name was given up at the timeout.
    assert_eq!(started.elapsed(), super::LOOKUP_TIMEOUT);
}
