//! Benchmarks of the timer wheel at the scale the reactor meets: 100,000
//! pending timers spread over a minute (connections' header and idle timeouts,
//! tail polls, simulated writes).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use logcast::timer::{TimerId, TimerWheel};

const TIMERS: u64 = 100_000;
const MINUTE_MS: u64 = 60_000;

/// Deadlines spread over 0..60 s by a fixed linear congruential generator.
fn deadlines() -> Vec<u64> {
    let mut state: u64 = 0x5eed;
    (0..TIMERS)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 32) % MINUTE_MS
        })
        .collect()
}

fn filled_wheel(deadlines: &[u64]) -> (TimerWheel<u64>, Vec<TimerId>) {
    let mut wheel = TimerWheel::new(0);
    let ids = deadlines
        .iter()
        .map(|&deadline| wheel.insert(deadline, deadline))
        .collect();
    (wheel, ids)
}

fn insert(c: &mut Criterion) {
    let deadlines = deadlines();
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(TIMERS));
    group.bench_function("insert_100k_over_60s", |b| {
        b.iter_batched(
            || TimerWheel::new(0),
            |mut wheel| {
                for &deadline in &deadlines {
                    wheel.insert(deadline, deadline);
                }
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("cancel_100k", |b| {
        b.iter_batched(
            || filled_wheel(&deadlines),
            |(mut wheel, ids)| {
                for id in ids {
                    criterion::black_box(wheel.cancel(id));
                }
                wheel
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn poll(c: &mut Criterion) {
    let deadlines = deadlines();
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(TIMERS));
    for step in [1, 100] {
        group.bench_function(format!("poll_60s_in_{step}ms_steps_100k_pending"), |b| {
            b.iter_batched(
                || {
                    (
                        filled_wheel(&deadlines).0,
                        Vec::with_capacity(TIMERS as usize),
                    )
                },
                |(mut wheel, mut expired)| {
                    for now in (step..=MINUTE_MS).step_by(step as usize) {
                        wheel.poll_to(now, &mut expired);
                        expired.clear();
                    }
                    wheel
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Idle timeouts re-armed: with 100,000 timers pending, cancel one and insert
/// its replacement 30 s on, as a connection that received bytes would.
fn churn(c: &mut Criterion) {
    let deadlines = deadlines();
    let (mut wheel, mut ids) = filled_wheel(&deadlines);
    let mut next = 0;
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rearm_one_of_100k", |b| {
        b.iter(|| {
            let slot = next % ids.len();
            let value = wheel.cancel(ids[slot]).unwrap_or_default();
            ids[slot] = wheel.insert(deadlines[slot] + 30_000, value);
            next += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, insert, poll, churn);
criterion_main!(benches);
