use std::{sync::Arc, time::Duration};

use tokio::time::advance;

use super::*;

fn budget(ratio: f64, min_per_second: u32, ttl_secs: u64) -> Budget {
    Budget::new(BudgetConfig::new(ratio, min_per_second, Duration::from_secs(ttl_secs)).unwrap())
}

fn drain(budget: &Budget) -> usize {
    std::iter::from_fn(|| budget.withdraw().then_some(())).count()
}

#[tokio::test(start_paused = true)]
async fn each_ratio_allows_exactly_its_share_of_retries() {
    // tower's port allows 333 retries for 0.3 and 1000 for 0.6 (tower #857).
    for (ratio, expected) in [(0.1, 100), (0.2, 200), (0.3, 300), (0.6, 600)] {
        let budget = budget(ratio, 0, 10);
        for _ in 0..1000 {
            budget.deposit();
        }
        assert_eq!(drain(&budget), expected, "ratio {ratio}");
        assert!(budget.balance() < 1.0, "ratio {ratio}");
    }
}

#[tokio::test(start_paused = true)]
async fn ratios_above_one_allow_several_retries_per_request() {
    let budget = budget(2.5, 0, 10);
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 10);
}

#[tokio::test(start_paused = true)]
async fn a_zero_ratio_leaves_only_the_reserve() {
    let budget = budget(0.0, 1, 10);
    for _ in 0..1000 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 10);
}

#[tokio::test(start_paused = true)]
async fn the_reserve_is_min_retries_per_second_times_ttl() {
    let budget = budget(0.2, 10, 10);
    assert_eq!(budget.balance(), 100.0);
    assert_eq!(drain(&budget), 100);
    assert!(!budget.withdraw(), "an empty budget refuses");
}

#[tokio::test(start_paused = true)]
async fn the_reserve_refills_as_withdrawals_expire() {
    let budget = budget(0.0, 10, 10);
    assert_eq!(drain(&budget), 100);
    advance(Duration::from_secs(5)).await;
    assert_eq!(drain(&budget), 0, "withdrawals still count within the ttl");
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        drain(&budget),
        100,
        "after the ttl the reserve is whole again"
    );
}

#[tokio::test(start_paused = true)]
async fn deposits_expire_after_the_ttl() {
    let budget = budget(0.2, 0, 10);
    for _ in 0..1000 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 200.0);
    advance(Duration::from_millis(9_900)).await;
    assert_eq!(budget.balance(), 200.0, "still within the window");
    advance(Duration::from_millis(100)).await;
    assert_eq!(budget.balance(), 0.0, "a ttl later the window is empty");
    assert!(!budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn the_window_slides_one_slot_at_a_time() {
    let budget = budget(1.0, 0, 10);
    for _ in 0..10 {
        budget.deposit();
    }
    advance(Duration::from_secs(5)).await;
    for _ in 0..20 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 30.0);
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        budget.balance(),
        20.0,
        "the first deposits expired, the later ones not"
    );
    advance(Duration::from_secs(5)).await;
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_budget_idle_for_many_windows_starts_again_from_its_reserve() {
    let budget = budget(0.5, 1, 1);
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 51);
    advance(Duration::from_secs(3600)).await;
    assert_eq!(budget.balance(), 1.0);
}

#[test]
fn deposits_from_many_threads_are_all_counted() {
    let budget = Arc::new(budget(0.5, 0, 60));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = budget.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    budget.deposit();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(budget.balance(), 20_000.0);
}

#[test]
fn withdrawals_from_many_threads_never_overdraw() {
    let budget = Arc::new(budget(1.0, 0, 60));
    for _ in 0..1000 {
        budget.deposit();
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = budget.clone();
            std::thread::spawn(move || (0..1000).filter(|_| budget.withdraw()).count())
        })
        .collect();
    let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(granted <= 1000, "granted {granted} of 1000");
    assert_eq!(overdrawn_shards(&budget), 0);
}

/// How many shards are below zero: none, while no deposit has expired.
fn overdrawn_shards(budget: &Budget) -> usize {
    let generation = budget.generation(tokio::time::Instant::now());
    let shards = budget.shards.iter();
    shards
        .filter(|shard| shard.available(generation) < 0)
        .count()
}

#[test]
fn config_rejects_values_outside_their_ranges() {
    let ttl = Duration::from_secs(10);
    assert_eq!(
        BudgetConfig::new(-0.1, 10, ttl),
        Err(InvalidBudget::RetryRatio(-0.1))
    );
    assert_eq!(
        BudgetConfig::new(1000.5, 10, ttl),
        Err(InvalidBudget::RetryRatio(1000.5))
    );
    assert!(matches!(
        BudgetConfig::new(f64::NAN, 10, ttl),
        Err(InvalidBudget::RetryRatio(_))
    ));
    assert_eq!(
        BudgetConfig::new(0.2, 10, Duration::from_millis(999)),
        Err(InvalidBudget::Ttl(Duration::from_millis(999)))
    );
    assert_eq!(
        BudgetConfig::new(0.2, 10, Duration::from_secs(61)),
        Err(InvalidBudget::Ttl(Duration::from_secs(61)))
    );
    assert!(BudgetConfig::new(0.0, 0, Duration::from_secs(1)).is_ok());
    assert!(BudgetConfig::new(1000.0, 0, Duration::from_secs(60)).is_ok());
    assert_eq!(
        InvalidBudget::RetryRatio(1200.0).to_string(),
        "retry ratio 1200 is outside the allowed range 0 to 1000"
    );
}

#[tokio::test(start_paused = true)]
async fn the_gateway_spelling_builds_the_same_budget() {
    let config =
        BudgetConfig::from_gateway(20, Duration::from_secs(10), 3, Duration::from_secs(1)).unwrap();
    assert_eq!(config.retry_ratio(), 0.2);
    assert_eq!(config.min_retries_per_second(), 3.0);
    assert_eq!(Budget::new(config).balance(), 30.0);

    // Twelve retries a minute over a ten-second window: a reserve of two.
    let config =
        BudgetConfig::from_gateway(50, Duration::from_secs(10), 12, Duration::from_secs(60))
            .unwrap();
    assert_eq!(Budget::new(config).balance(), 2.0);

    assert_eq!(
        BudgetConfig::from_gateway(20, Duration::from_secs(10), 3, Duration::ZERO),
        Err(InvalidBudget::MinRetryInterval)
    );
    assert_eq!(
        BudgetConfig::from_gateway(20, Duration::from_secs(90), 3, Duration::from_secs(1)),
        Err(InvalidBudget::Ttl(Duration::from_secs(90)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_clock_reading_the_caller_made_counts_in_its_own_slot() {
    let budget = budget(1.0, 0, 10);
    let earlier = tokio::time::Instant::now();
    advance(Duration::from_secs(5)).await;
    budget.deposit_at(earlier);
    budget.deposit();
    assert_eq!(budget.balance(), 2.0);
    advance(Duration::from_secs(5)).await;
    assert_eq!(
        budget.balance(),
        1.0,
        "the deposit made at the earlier reading expires a ttl after it"
    );
    let now = tokio::time::Instant::now();
    assert!(budget.withdraw_at(now));
    assert!(!budget.withdraw_at(now), "one retry, taken once");
    assert_eq!(budget.balance(), 0.0, "the refused withdrawal took nothing");
}

#[tokio::test(start_paused = true)]
async fn a_refund_gives_back_exactly_what_the_withdrawal_took() {
    // 0.3 is 3,000 units a deposit: ten make exactly three retries.
    let budget = budget(0.3, 0, 10);
    for _ in 0..10 {
        budget.deposit();
    }
    let withdrawal = budget.try_withdraw().expect("three retries to spare");
    assert_eq!(budget.balance(), 2.0);
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 3.0);
    assert_eq!(drain(&budget), 3, "no fraction of a retry was lost or made");
}

#[tokio::test(start_paused = true)]
async fn a_refund_counts_in_its_withdrawals_slot_and_expires_with_it() {
    let budget = budget(0.0, 10, 10);
    let withdrawal = budget.try_withdraw().unwrap();
    advance(Duration::from_secs(5)).await;
    assert_eq!(budget.balance(), 99.0);
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 100.0);
    // The withdrawal's slot leaves the window: a refund counted in the slot
    // it was made in would stay five seconds more, a retry too many.
    advance(Duration::from_secs(5)).await;
    assert_eq!(budget.balance(), 100.0);
    assert_eq!(drain(&budget), 100);
}

#[tokio::test(start_paused = true)]
async fn a_refund_after_its_withdrawal_expired_gives_nothing_back() {
    let budget = budget(0.0, 10, 10);
    let withdrawal = budget.try_withdraw().unwrap();
    budget.deposit();
    advance(Duration::from_secs(10)).await;
    assert_eq!(budget.balance(), 100.0, "the withdrawal no longer counts");
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 100.0, "so its refund gives nothing back");
    assert_eq!(drain(&budget), 100);
}

#[tokio::test(start_paused = true)]
async fn a_refused_withdrawal_leaves_nothing_to_refund() {
    let budget = budget(0.0, 1, 1);
    let withdrawal = budget.try_withdraw().unwrap();
    assert!(budget.try_withdraw().is_none());
    assert_eq!(budget.balance(), 0.0);
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 1.0);
}

#[test]
fn refunds_from_many_threads_leave_the_balance_as_it_was() {
    let budget = Arc::new(budget(0.5, 0, 60));
    for _ in 0..100 {
        budget.deposit();
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = budget.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    if let Some(withdrawal) = budget.try_withdraw() {
                        budget.refund(withdrawal);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(budget.balance(), 50.0);
}

#[test]
fn a_thread_spends_what_other_threads_deposited() {
    // Five threads each deposit a fifth of a retry, into their own shards.
    let budget = Arc::new(budget(0.2, 0, 60));
    for _ in 0..5 {
        let budget = budget.clone();
        std::thread::spawn(move || budget.deposit()).join().unwrap();
    }
    assert_eq!(budget.balance(), 1.0);
    let withdrawal = budget.try_withdraw().expect("the fifths add up to a retry");
    assert_eq!(budget.balance(), 0.0);
    assert!(!budget.withdraw(), "one retry, taken once");
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 1.0, "every fifth went back");
    assert!(budget.withdraw());
    assert_eq!(budget.balance(), 0.0);
}

#[test]
fn concurrent_drains_leave_no_fraction_of_a_retry_behind() {
    // 0.3 a deposit: 8,000 deposits are exactly 2,400 retries.
    let budget = Arc::new(budget(0.3, 0, 60));
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (budget, start) = (budget.clone(), start.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    budget.deposit();
                }
                start.wait();
                drain(&budget)
            })
        })
        .collect();
    let raced: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(raced <= 2400, "granted {raced} of 2,400");
    // A withdrawal that lost a race is refused; what it could not take is
    // still there, and one thread alone takes all of it.
    assert_eq!(raced + drain(&budget), 2400);
    assert_eq!(budget.balance(), 0.0);
}

#[test]
fn more_threads_than_shards_neither_lose_nor_make_a_fraction() {
    // Seventeen threads share eight shards, at least two to a shard. Each
    // deposits, withdraws as soon as its deposits allow (gathering from
    // the others most of the time) and refunds every other retry it gets.
    // 17 × 2,000 deposits of 0.3 are exactly 10,200 retries.
    const THREADS: usize = 17;
    let budget = Arc::new(budget(0.3, 0, 60));
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (budget, start) = (budget.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut kept = 0;
                for _ in 0..2000 {
                    budget.deposit();
                    if let Some(withdrawal) = budget.try_withdraw() {
                        if kept % 2 == 0 {
                            budget.refund(withdrawal);
                        }
                        kept += 1;
                    }
                }
                kept / 2
            })
        })
        .collect();
    let kept: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(overdrawn_shards(&budget), 0);
    assert_eq!(kept + drain(&budget), 10_200);
    assert_eq!(budget.balance(), 0.0);
}

#[test]
fn a_refused_gather_gives_back_every_fraction_it_took() {
    // Three threads deposit 0.3 each: 0.9 of a retry, spread over shards.
    let budget = Arc::new(budget(0.3, 0, 60));
    for _ in 0..3 {
        let budget = budget.clone();
        std::thread::spawn(move || budget.deposit()).join().unwrap();
    }
    assert!(!budget.withdraw(), "0.9 of a retry is not one");
    assert_eq!(budget.balance(), 0.9, "every fraction went back");
    budget.deposit();
    assert!(budget.withdraw());
    assert_eq!(budget.balance(), 0.2);
}
