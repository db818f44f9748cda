use std::num::NonZeroU32;

use mesh_core::Identity;

use super::{ClientLimit, Counters, Gcra, LocalRateLimit, Override, PerIdentity, Rate};
use crate::evaluate::{Client, ClientTls};

const SEC: u64 = 1_000_000_000;

fn rate(rps: u32) -> Rate {
    Rate::per_second(NonZeroU32::new(rps).unwrap())
}

fn admitted(limit: &Gcra, now: u64, tries: usize) -> usize {
    (0..tries).filter(|_| limit.check(now)).count()
}

#[test]
fn a_full_limit_admits_one_seconds_worth_at_once() {
    for rps in [1, 3, 5, 7, 10, 100, 1000] {
        let limit = Gcra::new(rate(rps));
        assert_eq!(
            admitted(&limit, 0, 2 * rps as usize),
            rps as usize,
            "rps {rps}"
        );
    }
}

#[test]
fn an_empty_limit_refills_one_request_per_interval() {
    let limit = Gcra::new(rate(5));
    assert_eq!(admitted(&limit, 0, 10), 5);
    // 1/5 s later, one more; just before it, none.
    assert_eq!(admitted(&limit, SEC / 5 - 1, 10), 0);
    assert_eq!(admitted(&limit, SEC / 5, 10), 1);
    // A full second after the burst, the whole burst again.
    assert_eq!(admitted(&limit, 2 * SEC, 10), 5);
}

#[test]
fn a_refused_request_takes_up_nothing() {
    let limit = Gcra::new(rate(2));
    assert_eq!(admitted(&limit, 0, 2), 2);
    assert_eq!(admitted(&limit, 0, 1000), 0);
    assert_eq!(admitted(&limit, SEC / 2, 10), 1);
}

#[test]
fn rates_above_a_billion_per_second_still_admit() {
    let limit = Gcra::new(rate(u32::MAX));
    assert_eq!(admitted(&limit, 0, 1000), 1000);
}

fn id(n: usize) -> Identity {
    Identity::parse(&format!("spiffe://cluster.local/ns/ns/sa/client-{n}")).unwrap()
}

#[test]
fn each_identity_has_its_own_limit_and_anonymous_clients_share_one() {
    let limit = PerIdentity::new(rate(2), 100);
    let (a, b) = (id(1), id(2));
    assert!(limit.check(Some(&a), 0) && limit.check(Some(&a), 0));
    assert!(!limit.check(Some(&a), 0));
    assert!(limit.check(Some(&b), 0) && limit.check(Some(&b), 0));
    assert!(!limit.check(Some(&b), 0));
    assert!(limit.check(None, 0) && limit.check(None, 0));
    assert!(!limit.check(None, 0));
    assert!(limit.check(Some(&a), SEC / 2));
}

#[test]
fn a_full_map_drops_idle_identities_first() {
    let limit = PerIdentity::new(rate(1), 3);
    for n in 0..3 {
        assert!(limit.check(Some(&id(n)), 0));
    }
    assert_eq!(limit.tracked(), 3);
    // A second later every entry is idle: a new identity replaces them.
    assert!(limit.check(Some(&id(3)), SEC));
    assert_eq!(limit.tracked(), 1);
}

#[test]
fn identities_beyond_a_full_active_map_share_one_overflow_limit() {
    let limit = PerIdentity::new(rate(1), 2);
    assert!(limit.check(Some(&id(0)), 0));
    assert!(limit.check(Some(&id(1)), 0));
    // The map is full of active entries: ids 2 and 3 share the overflow.
    assert!(limit.check(Some(&id(2)), 0));
    assert!(!limit.check(Some(&id(3)), 0));
    assert_eq!(limit.tracked(), 2);
    // Tracked identities keep their own limits meanwhile.
    assert!(!limit.check(Some(&id(0)), 0));
}

#[test]
fn an_identity_that_went_idle_since_the_last_sweep_makes_room() {
    // 4 rps: a request takes up 1/4 s; a burst is 4.
    let limit = PerIdentity::new(rate(4), 2);
    let burst = |id: &Identity, now: u64| (0..4).filter(|_| limit.check(Some(id), now)).count();
    // id 0 uses its whole burst (busy for 1 s); id 1 one request (1/4 s).
    assert_eq!(burst(&id(0), 0), 4);
    assert!(limit.check(Some(&id(1)), 0));
    // The map is full of active entries: id 9 takes the overflow's burst.
    assert_eq!(burst(&id(9), 0), 4);
    // At 0.3 s id 1 is idle: id 2 takes its place, idle again at 0.55 s,
    // before id 0 is.
    assert!(limit.check(Some(&id(2)), SEC * 3 / 10));
    assert_eq!(limit.tracked(), 2);
    // At 0.6 s id 2 is idle, so id 3 gets a limit of its own, with its
    // whole burst, rather than what the overflow has left.
    assert_eq!(burst(&id(3), SEC * 6 / 10), 4);
    assert_eq!(limit.tracked(), 2);
}

#[test]
fn making_room_in_a_full_map_costs_a_few_steps_not_a_pass_over_it() {
    // 1000 identities at 1000 rps: a request takes up 1 ms, and one
    // entry goes idle every microsecond, the oldest first.
    const N: usize = 1000;
    const NEW: usize = 5000;
    let limit = PerIdentity::new(rate(1000), N);
    let interval = SEC / 1000;
    let step = interval / N as u64;
    for n in 0..N {
        assert!(limit.check(Some(&id(n)), n as u64 * step));
    }
    // Each new identity arrives just as the oldest entry goes idle, so
    // each takes that entry's place and gets a limit of its own.
    for k in 0..NEW {
        let new = id(N + k);
        assert!(limit.check(Some(&new), interval + k as u64 * step), "{k}");
        assert!(limit.is_tracked(&new), "{k}");
        assert_eq!(limit.tracked(), N);
    }
    // A pass over the whole map for each would look at N * NEW entries,
    // five million, under the lock every identity's requests take.
    let examined = limit.examined();
    assert!(
        examined <= 4 * (N + NEW) as u64,
        "{examined} entries looked at to admit {NEW} new identities"
    );
}

#[test]
fn threads_racing_for_one_limit_get_exactly_its_burst_between_them() {
    // The total and overrides are one atomic updated by compare-and-swap,
    // the identity limits a map behind a mutex; a lost update would admit
    // more than the burst. The burst is large, and the threads start
    // together, so that they contend for as long as it lasts.
    const BURST: u32 = 200_000;
    const THREADS: usize = 4;
    let limit = Gcra::new(rate(BURST));
    let per_identity = PerIdentity::new(rate(BURST), 100);
    let shared = id(0);
    let start = std::sync::Barrier::new(THREADS);
    let tries = BURST as usize;
    let (direct, keyed) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let direct = (0..tries).filter(|_| limit.check(SEC)).count();
                    let keyed = (0..tries)
                        .filter(|_| per_identity.check(Some(&shared), SEC))
                        .count();
                    (direct, keyed)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    assert_eq!(direct, BURST as usize);
    assert_eq!(keyed, BURST as usize);
}

/// `n` override entries at 1 rps, entry `i` naming client `i` alone.
fn overrides(n: usize) -> LocalRateLimit {
    let entries = (0..n)
        .map(|i| Override::new(i, &[id(i)], NonZeroU32::MIN))
        .collect();
    LocalRateLimit::new(
        "limit".into(),
        None,
        Some((NonZeroU32::MIN, 100)),
        entries,
        Counters::default(),
    )
}

#[test]
fn a_clients_override_is_found_in_one_lookup_however_many_entries_there_are() {
    // As linkerd2-proxy's map from identity to override: one lookup per
    // request, never a walk over the entries.
    const N: usize = 1000;
    let limit = overrides(N);
    for (k, client) in [id(0), id(N / 2), id(N - 1), id(N + 1)].iter().enumerate() {
        let before = limit.probes();
        let ok = limit.check(&Client {
            tls: ClientTls::Mutual(client),
            addr: None,
        });
        assert!(ok.is_ok(), "{k}");
        assert_eq!(limit.probes() - before, 1, "client {k}");
    }
}

#[test]
fn a_client_named_by_several_overrides_meets_the_last() {
    // linkerd2-proxy collects the entries into a map in order, so a later
    // entry naming a client replaces an earlier one.
    let clients = |ids: &[usize]| ids.iter().map(|&i| id(i)).collect::<Vec<_>>();
    let rps = |n| NonZeroU32::new(n).unwrap();
    let limit = LocalRateLimit::new(
        "limit".into(),
        None,
        None,
        vec![
            Override::new(0, &clients(&[1, 2]), rps(5)),
            Override::new(1, &clients(&[3]), rps(6)),
            Override::new(3, &clients(&[2, 3]), rps(7)),
        ],
        Counters::default(),
    );
    let meets = |i| match limit.applicable(Some(&id(i))).client {
        Some(ClientLimit::Override { index, rps }) => Some((index, rps)),
        _ => None,
    };
    assert_eq!(meets(1), Some((0, 5)));
    assert_eq!(meets(2), Some((3, 7)));
    assert_eq!(meets(3), Some((3, 7)));
    assert_eq!(meets(4), None);
    // Clients 2 and 3 share entry 3's one limit of 7.
    let (two, three) = (id(2), id(3));
    let client = |id| Client {
        tls: ClientTls::Mutual(id),
        addr: None,
    };
    let admitted = (0..10)
        .flat_map(|_| [client(&two), client(&three)])
        .filter(|c| limit.check(c).is_ok())
        .count();
    assert_eq!(admitted, 7);
}
