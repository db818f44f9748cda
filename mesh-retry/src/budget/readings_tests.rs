//! Clock readings that are not the latest, and slots long idle: the
//! generations a budget's slots compare.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, advance};

use super::*;

fn budget(ratio: f64, min_per_second: u32, ttl_secs: u64) -> Budget {
    Budget::new(BudgetConfig::new(ratio, min_per_second, Duration::from_secs(ttl_secs)).unwrap())
}

/// How many of `tries` withdrawals at `now` the budget grants.
fn granted_at(budget: &Budget, now: Instant, tries: usize) -> usize {
    (0..tries).filter(|_| budget.withdraw_at(now)).count()
}

#[tokio::test(start_paused = true)]
async fn a_withdrawal_at_an_older_reading_sees_the_later_slots() {
    // One retry deposited, then two threads of one shard whose readings
    // straddle a slot boundary: the later takes the retry, the earlier
    // must see that it is gone.
    let budget = budget(1.0, 0, 10);
    let earlier = Instant::now();
    budget.deposit_at(earlier);
    advance(Duration::from_secs(1)).await;
    let later = Instant::now();
    assert!(budget.withdraw_at(later));
    assert!(
        !budget.withdraw_at(earlier),
        "one deposit paid for two retries"
    );
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_gathering_withdrawal_at_an_older_reading_sees_the_other_shards_later_slots() {
    // The retry is deposited on another thread, so every withdrawal here
    // gathers it from that thread's shard.
    let budget = Arc::new(budget(1.0, 0, 10));
    let earlier = Instant::now();
    let depositor = budget.clone();
    std::thread::spawn(move || depositor.deposit_at(earlier))
        .join()
        .unwrap();
    advance(Duration::from_secs(1)).await;
    let later = Instant::now();
    let spender = budget.clone();
    let first = std::thread::spawn(move || spender.withdraw_at(later))
        .join()
        .unwrap();
    assert!(first, "the deposit pays for one retry");
    let spender = budget.clone();
    let second = std::thread::spawn(move || spender.withdraw_at(earlier))
        .join()
        .unwrap();
    assert!(!second, "one deposit paid for two retries");
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_reading_a_ttl_old_cannot_withdraw_past_the_balance() {
    // The reading's slot has been moved on by a later deposit: the
    // withdrawals count there, and the check must see them.
    let budget = budget(1.0, 0, 10);
    let old = Instant::now();
    advance(Duration::from_secs(10)).await;
    budget.deposit();
    assert_eq!(granted_at(&budget, old, 5), 1);
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_budget_idle_for_half_its_generations_counts_withdrawals_again() {
    // A slot stores its generation's low 28 bits. At the shortest ttl
    // (slots of 100 ms) 2^27 of them pass in 155 days; a budget idle that
    // long must still count what it is given.
    let budget = budget(0.0, 1, 1);
    advance(Duration::from_millis(100) * (1 << 27) + Duration::from_secs(1)).await;
    assert_eq!(budget.balance(), 1.0);
    assert_eq!(
        granted_at(&budget, Instant::now(), 10),
        1,
        "a reserve of one"
    );
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_budget_idle_for_half_its_generations_counts_deposits_again() {
    let budget = budget(1.0, 0, 1);
    advance(Duration::from_millis(100) * (1 << 27) + Duration::from_secs(1)).await;
    for _ in 0..3 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 3.0);
    advance(Duration::from_secs(1)).await;
    assert_eq!(budget.balance(), 0.0, "and they expire a ttl later");
}

/// Runs `work` on a new thread whose shard is not `shard`, and returns the
/// shard it ran in. Threads are numbered in the order they are created, so
/// the first or second new thread already counts elsewhere.
fn on_another_shard(shard: usize, work: impl Fn() + Send + Clone + 'static) -> usize {
    loop {
        let work = work.clone();
        let ran = std::thread::spawn(move || {
            let own = shards::current();
            (own != shard).then(|| {
                work();
                own
            })
        })
        .join()
        .unwrap();
        if let Some(own) = ran {
            return own;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_balance_is_what_the_shards_can_give() {
    // One thread's shard spends two retries deposited nine seconds before;
    // a second later the deposits have expired and the withdrawals not:
    // that shard is two retries below zero. It gives nothing, and takes
    // nothing from another shard's retry, which any thread can spend.
    let budget = Arc::new(budget(1.0, 0, 10));
    let start = Instant::now();
    let spender = budget.clone();
    let spent = std::thread::spawn(move || {
        spender.deposit_at(start);
        spender.deposit_at(start);
        let granted = (0..2)
            .filter(|_| spender.withdraw_at(start + Duration::from_secs(9)))
            .count();
        (shards::current(), granted)
    });
    let (spent_in, granted) = spent.join().unwrap();
    assert_eq!(granted, 2);
    advance(Duration::from_secs(10)).await;
    let now = Instant::now();
    let depositor = budget.clone();
    on_another_shard(spent_in, move || depositor.deposit_at(now));
    assert_eq!(budget.balance(), 1.0, "the retry the other shard holds");
    assert!(budget.withdraw());
    assert_eq!(budget.balance(), 0.0);
    assert!(!budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn a_reading_older_than_a_ttl_cannot_spend_a_deposit_twice() {
    // Its slot expired a second ago: a withdrawal counted there would not
    // count now, and the deposit it spent could be spent again.
    let budget = budget(1.0, 0, 10);
    let old = Instant::now();
    advance(Duration::from_secs(11)).await;
    budget.deposit();
    let granted = usize::from(budget.withdraw_at(old)) + usize::from(budget.withdraw());
    assert_eq!(granted, 1, "one deposit, one retry");
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_gathering_reading_older_than_a_ttl_cannot_spend_a_deposit_twice() {
    let budget = Arc::new(budget(1.0, 0, 10));
    let old = Instant::now();
    advance(Duration::from_secs(11)).await;
    let now = Instant::now();
    let depositor = budget.clone();
    let deposited_in = std::thread::spawn(move || {
        depositor.deposit_at(now);
        shards::current()
    })
    .join()
    .unwrap();
    let (spender, granted) = (budget.clone(), Arc::new(AtomicUsize::new(0)));
    let count = granted.clone();
    on_another_shard(deposited_in, move || {
        if spender.withdraw_at(old) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let granted = granted.load(Ordering::Relaxed) + usize::from(budget.withdraw_at(now));
    assert_eq!(granted, 1, "one deposit, one retry");
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_withdrawal_writes_to_no_other_shard() {
    // During an outage nearly every retry is refused while every shard
    // holds a fraction of one: a refusal must not write to (or take and
    // give back from) the cache lines of other threads' shards.
    let budget = Arc::new(budget(0.2, 0, 10));
    let then = Instant::now();
    for _ in 0..4 {
        let budget = budget.clone();
        std::thread::spawn(move || budget.deposit_at(then))
            .join()
            .unwrap();
    }
    advance(Duration::from_secs(1)).await;
    let own = shards::current();
    let others = |budget: &Budget| -> Vec<_> {
        let shards = budget.shards.iter().enumerate();
        shards
            .filter(|&(index, _)| index != own)
            .map(|(_, shard)| shard.window.words())
            .collect()
    };
    let before = others(&budget);
    assert!(!budget.withdraw(), "0.8 of a retry is not one");
    assert_eq!(others(&budget), before);
    assert_eq!(budget.balance(), 0.8);
}

#[tokio::test(start_paused = true)]
async fn a_gathered_refund_puts_each_part_back_into_its_own_generation() {
    // Half a retry deposited at 0 s on one thread, half at 3 s on another;
    // a withdrawal at 0 s takes both, one part counted at 0 s and one at
    // 3 s. Refunded at 10 s, the first part has expired with its deposit
    // and gives nothing back; the second comes back and lasts to 13 s.
    let budget = Arc::new(budget(0.5, 0, 10));
    let start = Instant::now();
    for offset in [3, 0] {
        let budget = budget.clone();
        let at = start + Duration::from_secs(offset);
        std::thread::spawn(move || budget.deposit_at(at))
            .join()
            .unwrap();
    }
    let withdrawal = budget.try_withdraw_at(start).expect("two halves");
    advance(Duration::from_secs(10)).await;
    assert_eq!(budget.balance(), 0.0);
    budget.refund(withdrawal);
    assert_eq!(budget.balance(), 0.5, "the part taken at 3 s");
    advance(Duration::from_secs(3)).await;
    assert_eq!(budget.balance(), 0.0, "gone with the deposit it restored");
}
