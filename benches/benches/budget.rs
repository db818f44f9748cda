//! The cost of the retry budget's operations, alone and under contention.
//!
//! - `budget/deposit` and `budget/withdraw`: one operation, on one thread;
//!   `_contended_2_cores`, on both cores at once against one shared budget.
//!   `deposit_at` and `withdraw_at` are the same with a clock reading the
//!   caller already has, as the route stack passes the one it reads for its
//!   deadlines: the operation without its clock read.
//!
//! The budget operations run in chunks of [`CHUNK`], a fresh budget per
//! sample, so that they take the path a request's do: an atomic add to a
//! slot holding a small balance. A slot whose balance grows past 2^33
//! units (a budget of a few hundred thousand requests in one tenth of its
//! ttl) is updated by a compare-and-swap loop instead, which no real budget
//! reaches and which a bench hammering one slot would reach after a few
//! hundred operations. So a deposit adds one unit (a ratio of 0.0001);
//! `withdraw_at` is passed a reading one slot later for each chunk, as
//! time passing would; and `withdraw`, which reads the clock itself, is
//! followed after each chunk by as many `deposit_at`s, untimed, that put
//! the retries back. In the `_contended_2_cores` ones both threads start
//! each chunk together (a barrier, untimed).
//!
//! A budget counts in eight shards, and each thread in the one its thread
//! number picks (mesh-retry's `budget/shards.rs`). The two threads of a
//! `_contended_2_cores` bench are created one after the other, as a
//! runtime's workers are, so they count in different shards: what the
//! benches measure is two cores depositing into and withdrawing from one
//! shared budget, not two threads sharing one shard.
//!
//! ```text
//! cargo bench -p mesh-benches --bench budget
//! ```
//!
//! With `MESH_BENCH_COUNT=<n>` in the environment, the binary instead runs
//! each operation named in `MESH_BENCH_ONLY` (`deposit`, `withdraw`,
//! `deposit_at`, `withdraw_at`, and each of them with `_contended`; all by
//! default) `n` times and exits. Under `valgrind --tool=callgrind` with two
//! values of `n`, the difference in instructions divided by the difference
//! in `n` is an operation's count, which load on the machine cannot
//! disturb. The `_contended` ones run `n` operations on each of two
//! threads; under `perf stat -e task-clock` they give the CPU time per
//! operation while both cores contend, which time slices lost to other
//! processes do not inflate. Each operation's timed part is `budget::ops`:
//! for the `withdraw` variants, whose count includes the `deposit_at`s that
//! put the retries back, read its inclusive count (`callgrind_annotate
//! --inclusive=yes`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{hint::black_box, sync::Barrier, time::Duration};

use criterion::{Criterion, criterion_group};
use mesh_benches::Counting;
use mesh_retry::{Budget, BudgetConfig};
use tokio::time::Instant;

/// Operations per chunk of a budget bench. A slot takes the atomic add
/// while its balance stays under 2^33 units: a chunk of withdrawals of
/// 10,000 units each, on both threads, moves it by 1.3 × 10^9 at most.
const CHUNK: u64 = 1 << 16;

/// A budget operation, as the `budget` benches run it.
#[derive(Clone, Copy, Debug)]
enum Op {
    Deposit,
    Withdraw,
    DepositAt,
    WithdrawAt,
}

impl Op {
    /// A budget that never refuses a withdrawal (a reserve of billions of
    /// retries), whose deposits add one unit (the least; the same code as
    /// the default's 2,000) and, for withdrawals, a whole retry, so that
    /// one `deposit_at` puts back what one withdrawal took.
    fn budget(self) -> Budget {
        let ratio = match self {
            Op::Deposit | Op::DepositAt => 0.0001,
            Op::Withdraw | Op::WithdrawAt => 1.0,
        };
        Budget::new(BudgetConfig::new(ratio, u32::MAX, Duration::from_secs(60)).unwrap())
    }

    /// The reading the `_at` operations are passed in chunk `i`: one slot
    /// (a tenth of the ttl) later per chunk, so each chunk of withdrawals
    /// starts a slot of its own, as time passing would.
    fn now(budget: &Budget, origin: Instant, i: u32) -> Instant {
        origin + budget.config().ttl() / 10 * i
    }

    /// Untimed, after a chunk of `k`: `withdraw` reads the clock itself,
    /// so its withdrawals all land in the present slot; the same number of
    /// deposits puts them back.
    fn settle(self, budget: &Budget, k: u64) {
        if let Op::Withdraw = self {
            let now = Instant::now();
            for _ in 0..k {
                budget.deposit_at(now);
            }
        }
    }
}

impl Op {
    /// Untimed, after a run: the withdrawals were all granted, so each did
    /// the whole of a withdrawal's work (one refused puts its retry back),
    /// and the budget could grant more.
    fn check(self, budget: &Budget) {
        if let Op::Withdraw | Op::WithdrawAt = self {
            assert!(
                budget.balance() > 1e9,
                "{self:?}: the budget never refuses, yet its balance is {}",
                budget.balance()
            );
        }
    }
}

/// The timed part of a chunk: `k` operations, the `_at` ones at `now`.
#[inline(never)]
fn ops(op: Op, budget: &Budget, now: Instant, k: u64) {
    match op {
        Op::Deposit => (0..k).for_each(|_| black_box(budget).deposit()),
        Op::Withdraw => (0..k).for_each(|_| {
            black_box(black_box(budget).withdraw());
        }),
        Op::DepositAt => (0..k).for_each(|_| black_box(budget).deposit_at(black_box(now))),
        Op::WithdrawAt => (0..k).for_each(|_| {
            black_box(black_box(budget).withdraw_at(black_box(now)));
        }),
    }
}

/// `iters` operations on one thread, on a fresh budget; the time they
/// took.
fn solo(op: Op, iters: u64) -> Duration {
    let budget = op.budget();
    let origin = Instant::now();
    let (mut total, mut done, mut i) = (Duration::ZERO, 0, 0);
    while done < iters {
        let k = CHUNK.min(iters - done);
        let now = Op::now(&budget, origin, i);
        let start = Instant::now();
        ops(op, &budget, now, k);
        total += start.elapsed();
        op.settle(&budget, k);
        (done, i) = (done + k, i + 1);
    }
    op.check(&budget);
    total
}

/// `iters` operations on each of two threads at once, against one fresh
/// budget, both starting each chunk together; the mean of the time each
/// thread took: the latency of one operation while the other core
/// contends for the same budget.
fn contended(op: Op, iters: u64) -> Duration {
    let budget = &op.budget();
    let origin = Instant::now();
    let barrier = &Barrier::new(2);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(move || {
                    let (mut total, mut done, mut i) = (Duration::ZERO, 0, 0);
                    while done < iters {
                        let k = CHUNK.min(iters - done);
                        let now = Op::now(budget, origin, i);
                        barrier.wait();
                        let start = Instant::now();
                        ops(op, budget, now, k);
                        total += start.elapsed();
                        op.settle(budget, k);
                        (done, i) = (done + k, i + 1);
                    }
                    total
                })
            })
            .collect();
        let total: Duration = threads.into_iter().map(|t| t.join().unwrap()).sum();
        op.check(budget);
        total / 2
    })
}

fn budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget");
    for (name, op) in [
        ("deposit", Op::Deposit),
        ("withdraw", Op::Withdraw),
        ("deposit_at", Op::DepositAt),
        ("withdraw_at", Op::WithdrawAt),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| solo(op, iters)));
    }
    for (name, op) in [
        ("deposit_contended_2_cores", Op::Deposit),
        ("withdraw_contended_2_cores", Op::Withdraw),
        ("deposit_at_contended_2_cores", Op::DepositAt),
        ("withdraw_at_contended_2_cores", Op::WithdrawAt),
    ] {
        group.bench_function(name, |b| b.iter_custom(|iters| contended(op, iters)));
    }
    group.finish();
}

/// Runs the operations named in `MESH_BENCH_ONLY` `n` times each, outside
/// criterion: see the module docs.
fn count(counting: &Counting) {
    let n = counting.n;
    let wanted = |name: &str| counting.wants(name);
    for (name, op) in [
        ("deposit", Op::Deposit),
        ("withdraw", Op::Withdraw),
        ("deposit_at", Op::DepositAt),
        ("withdraw_at", Op::WithdrawAt),
    ] {
        if wanted(name) {
            solo(op, n);
        }
        // Under `perf stat -e task-clock`, CPU time per operation on both
        // cores, which time slices lost to other processes do not inflate.
        if wanted(&format!("{name}_contended")) {
            contended(op, n);
        }
    }
}

criterion_group!(benches, budget);

fn main() {
    if let Some(counting) = Counting::from_env() {
        count(&counting);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
