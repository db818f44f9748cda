#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, advance};

use super::{Flooded, ResetBound, Resets};
use crate::serve::ServerConfig;

const SECOND: Duration = Duration::from_secs(1);

/// The streams a client may have open at once, and so open past the
/// bound before it is cut.
const GRACE: u32 = 3;

/// Counts for a bound of `run` streams, with a lifetime of one second.
fn resets(run: u32) -> (Resets, Arc<Flooded>) {
    let config = ServerConfig {
        http2_premature_reset_total_streams: Some(run),
        http2_premature_reset_min_stream_lifetime: SECOND,
        http2_max_concurrent_streams: GRACE,
        ..ServerConfig::default()
    };
    let flooded = Arc::new(Flooded::default());
    let bound = ResetBound::of(&config).unwrap();
    (Resets::new(bound, flooded.clone()), flooded)
}

/// Opens the stream after `last`, now, and serves it: its id.
fn open(resets: &mut Resets, last: &mut u32) -> u32 {
    let below = *last;
    *last += 2;
    assert!(resets.opened(below, Instant::now()));
    resets.flooded.serve();
    *last
}

#[test]
fn the_bound_is_off_for_no_streams_or_no_lifetime() {
    let off = |total, lifetime| {
        ResetBound::of(&ServerConfig {
            http2_premature_reset_total_streams: total,
            http2_premature_reset_min_stream_lifetime: lifetime,
            ..ServerConfig::default()
        })
    };
    assert!(off(None, SECOND).is_none());
    assert!(off(Some(0), SECOND).is_none());
    assert!(off(Some(500), Duration::ZERO).is_none());
    assert!(
        ResetBound::of(&ServerConfig::default()).is_some(),
        "on by default"
    );
}

#[tokio::test(start_paused = true)]
async fn half_a_run_reset_at_once_floods_the_connection() {
    let (mut resets, flooded) = resets(10);
    let mut last = 1;
    for n in 1..=5 {
        assert!(!flooded.is_set(), "after {} resets", n - 1);
        let stream = open(&mut resets, &mut last);
        advance(Duration::from_millis(10)).await;
        resets.reset(stream, Instant::now());
    }
    assert!(flooded.is_set());
    for n in 1..=GRACE {
        let below = last;
        last += 2;
        assert!(resets.opened(below, Instant::now()), "stream {n} after");
    }
    assert!(!flooded.was_cut());
    assert!(
        !resets.opened(last, Instant::now()),
        "a stream is served past the grace"
    );
    assert!(flooded.was_cut());
}

#[test]
fn the_grace_is_the_streams_a_client_may_have_open() {
    let bound = |streams| {
        let config = ServerConfig {
            http2_max_concurrent_streams: streams,
            ..ServerConfig::default()
        };
        ResetBound::of(&config).unwrap().grace
    };
    assert_eq!(bound(200), 200);
    assert_eq!(bound(0), 1, "at least one, as the server takes it");
}

#[tokio::test(start_paused = true)]
async fn resets_after_the_lifetime_do_not_count() {
    let (mut resets, flooded) = resets(10);
    let mut last = 1;
    for _ in 0..50 {
        let stream = open(&mut resets, &mut last);
        advance(SECOND).await;
        resets.reset(stream, Instant::now());
    }
    assert!(!flooded.is_set());
}

#[tokio::test(start_paused = true)]
async fn resets_within_three_quarters_of_the_lifetime_always_count() {
    // Streams opened at every point of a lifetime, each reset just
    // before three quarters of one have passed since.
    let (mut resets, flooded) = resets(1000);
    let mut last = 1;
    let step = Duration::from_millis(30);
    let age = SECOND * 3 / 4 - Duration::from_millis(1);
    let mut open_streams = std::collections::VecDeque::new();
    let start = Instant::now();
    let mut counted = 0;
    while counted < 100 {
        open_streams.push_back((open(&mut resets, &mut last), Instant::now()));
        advance(step).await;
        while let Some(&(stream, at)) = open_streams.front() {
            if Instant::now() - at < age {
                break;
            }
            open_streams.pop_front();
            resets.reset(stream, at + age);
            counted += 1;
        }
        assert_eq!(resets.premature, counted, "at {:?}", start.elapsed());
    }
    assert!(!flooded.is_set(), "100 of 1000");
}

#[tokio::test(start_paused = true)]
async fn each_run_of_streams_is_judged_on_its_own() {
    // A client that cancels a third of its calls at once, for ever,
    // keeps its connection: no run holds half.
    let (mut resets, flooded) = resets(10);
    let mut last = 1;
    for _ in 0..100 {
        for _ in 0..2 {
            open(&mut resets, &mut last);
        }
        let cancelled = open(&mut resets, &mut last);
        resets.reset(cancelled, Instant::now());
        advance(Duration::from_millis(100)).await;
    }
    assert!(!flooded.is_set());
}

#[tokio::test(start_paused = true)]
async fn a_long_quiet_connection_counts_only_its_young_streams() {
    let (mut resets, flooded) = resets(4);
    let mut last = 1;
    let old = open(&mut resets, &mut last);
    advance(Duration::from_secs(3600)).await;
    let young = open(&mut resets, &mut last);
    resets.reset(old, Instant::now());
    assert_eq!(resets.premature, 0);
    resets.reset(young, Instant::now());
    assert_eq!(resets.premature, 1);
    assert!(!flooded.is_set());
}

#[tokio::test(start_paused = true)]
async fn streams_opened_but_never_served_do_not_end_a_run() {
    // Three heads h2 refused before each stream of the flood: two of
    // four served streams reset is half a run all the same.
    let (mut resets, flooded) = resets(4);
    let mut last = 1;
    for _ in 0..2 {
        for _ in 0..3 {
            let below = last;
            last += 2;
            assert!(resets.opened(below, Instant::now()));
        }
        let stream = open(&mut resets, &mut last);
        resets.reset(stream, Instant::now());
    }
    assert!(flooded.is_set());
}

#[tokio::test(start_paused = true)]
async fn streams_near_the_last_id_count_as_any() {
    // A client may open its first stream at any odd id, up to 2^31 - 1.
    let (mut resets, flooded) = resets(4);
    let mut last = 0x7fff_fffb;
    for _ in 0..2 {
        let stream = open(&mut resets, &mut last);
        resets.reset(stream, Instant::now());
    }
    assert_eq!(last, 0x7fff_ffff);
    assert!(flooded.is_set());
}
