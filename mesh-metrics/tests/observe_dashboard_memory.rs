//! What the dashboard's board holds of the scrapes it was fed. dhat
//! counts every allocation of this test binary, which is why this test
//! has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{fmt::Write as _, time::Duration};

use mesh_metrics::{
    dashboard::{Board, DashboardConfig},
    query::{Scrape, Target},
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A scrape of some 2 MiB of text, most of it a family the dashboard
/// does not read (connections by client address, say), every series
/// counting `n`.
fn scrape(n: u32) -> Scrape {
    let mut text = String::new();
    for i in 0..12_000 {
        let _ = writeln!(
            text,
            "tcp_open_total{{direction=\"inbound\",peer=\"src\",client_addr=\"10.{}.{}.{}:4143\",tls=\"true\",client_id=\"spiffe://cluster.local/ns/emojivoto/sa/client-{i}\"}} {n}",
            i / 65_536,
            i / 256 % 256,
            i % 256,
        );
    }
    text.push_str(&format!(
        "response_total{{direction=\"inbound\",tls=\"true\",classification=\"success\"}} {}\n",
        20 * n
    ));
    Scrape::parse(&text).unwrap()
}

#[test]
fn a_board_holds_at_most_its_budget_of_a_sources_scrapes() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // What one parsed scrape holds.
    let before = dhat::HeapStats::get().curr_bytes;
    let one = scrape(0);
    let scrape_bytes = dhat::HeapStats::get().curr_bytes - before;
    drop(one);

    // A budget of about two scrapes: a window of 10 s at 2 s intervals
    // would otherwise hold six.
    let budget = 2 * scrape_bytes;
    let config = DashboardConfig::new(Target::parse_list("web=127.0.0.1:1").unwrap())
        .with_source_bytes(budget);
    let before = dhat::HeapStats::get().curr_bytes;
    let mut board = Board::new(&config);
    let mut most = 0;
    for n in 0..12 {
        let next = scrape(n);
        let fed = dhat::HeapStats::get().curr_bytes;
        board.observe(
            Duration::from_secs(2 * u64::from(n)),
            vec![Ok::<_, &str>(next)],
        );
        // What the board holds once the round is in, the round included.
        let held = dhat::HeapStats::get().curr_bytes - before;
        most = most.max(held);
        let _ = fed;
    }
    eprintln!(
        "one scrape holds {scrape_bytes} B; the board held {most} B at most \
         with a budget of {budget} B"
    );
    // The budget, and the latest scrape, which is always kept; the
    // summaries of this source are small.
    assert!(
        most <= budget + scrape_bytes + (1 << 20),
        "the board held {most} B, over its budget of {budget} B and a scrape of {scrape_bytes} B"
    );
    // The figures still come: 20 responses a round, 10 a second.
    let view = board.view();
    assert_eq!(view.workloads[0].workload.stat.golden.rps, 10.0);
}
