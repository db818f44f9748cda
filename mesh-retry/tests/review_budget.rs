//! The budget at the edges of its slots and its ttl, on tokio's paused
//! clock: what a deposit buys, and for how long.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mesh_retry::{Budget, BudgetConfig};
use tokio::time::advance;

/// A budget of `ratio` with no reserve, over a ttl of one second: ten
/// slots of 100 ms, counted from its creation.
fn budget(ratio: f64) -> Budget {
    Budget::new(BudgetConfig::new(ratio, 0, Duration::from_secs(1)).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_deposit_counts_until_its_slot_leaves_the_window() {
    let budget = budget(1.0);
    // The last instant of the first slot, and the first of the second.
    advance(Duration::from_nanos(99_999_999)).await;
    budget.deposit();
    advance(Duration::from_nanos(1)).await;
    budget.deposit();
    assert_eq!(budget.balance(), 2.0);
    // A ttl after the first slot began, it leaves the window: a deposit
    // counts for at most the ttl, and at least the ttl less one slot.
    advance(Duration::from_millis(900) - Duration::from_nanos(1)).await;
    assert_eq!(budget.balance(), 2.0, "the window still holds both slots");
    advance(Duration::from_nanos(1)).await;
    assert_eq!(budget.balance(), 1.0, "the first slot left the window");
    advance(Duration::from_millis(100) - Duration::from_nanos(1)).await;
    assert_eq!(budget.balance(), 1.0);
    advance(Duration::from_nanos(1)).await;
    assert_eq!(budget.balance(), 0.0, "the second slot left it too");
}

#[tokio::test(start_paused = true)]
async fn a_retry_counts_for_a_ttl_after_the_deposits_that_paid_for_it_expire() {
    // As in Finagle: a withdrawal lasts its own ttl, so the deposits of the
    // next requests first pay it off.
    let budget = budget(0.5);
    budget.deposit();
    budget.deposit();
    advance(Duration::from_millis(500)).await;
    assert!(budget.withdraw(), "two requests paid for one retry");
    assert!(!budget.withdraw());
    advance(Duration::from_millis(600)).await;
    // The deposits are gone, the retry still counts: two new requests pay
    // it off, and buy nothing yet.
    budget.deposit();
    budget.deposit();
    assert!(!budget.withdraw());
    advance(Duration::from_millis(400)).await;
    assert_eq!(budget.balance(), 1.0, "the retry left the window");
    assert!(budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn fractions_of_a_retry_add_up_exactly_across_slots() {
    // 0.1 a request, deposited one a slot: ten requests, one retry.
    let budget = budget(0.1);
    for _ in 0..9 {
        budget.deposit();
        advance(Duration::from_millis(100)).await;
    }
    assert!(!budget.withdraw(), "nine tenths are not a retry");
    budget.deposit();
    assert!(budget.withdraw(), "ten tenths are");
    assert!(!budget.withdraw());
}
