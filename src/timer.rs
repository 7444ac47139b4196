//! The timer wheel: the reactor's single source of time-driven work.
//!
//! Everything logcast does because time passed, rather than because a socket
//! became ready, is a timer here: the simulated writers append a line every
//! 500 ms, every followed file is polled for growth every 100 ms, a client that
//! has not sent its request head in time is answered and closed, and an idle
//! connection is dropped. The reactor is the only reader of the clock: it passes
//! milliseconds in, sleeps in `Poll::poll` until [`TimerWheel::next_deadline`],
//! and handles what [`TimerWheel::poll_to`] hands back. This module does no I/O
//! and reads no clock, so its tests and benchmarks need no sleeps.
//!
//! # Design
//!
//! A hierarchical hashed timing wheel (G. Varghese and T. Lauck, "Hashed and
//! hierarchical timing wheels: data structures for the efficient implementation
//! of a timer facility", SOSP 1987), laid out like tokio's
//! `runtime/time/wheel`. Six levels of 64 slots at 1 ms resolution:
//!
//! | level | one slot  | whole level (64 slots)   |
//! |-------|-----------|--------------------------|
//! | 0     | 1 ms      | 64 ms                    |
//! | 1     | 64 ms     | 4.1 s                    |
//! | 2     | 4.1 s     | 4.4 min                  |
//! | 3     | 4.4 min   | 4.7 h                    |
//! | 4     | 4.7 h     | 12.4 days                |
//! | 5     | 12.4 days | 795 days (~2.2 years)    |
//!
//! Write times in base 64: a timer sits at the level of the highest digit in
//! which its deadline differs from the wheel's current time (`level_for`), in
//! the slot named by its deadline's digit at that level (`slot_for`). So every
//! timer at level `L` is due before every timer at level `L + 1`, and within a
//! level the slots are in time order: the next slot to visit is the lowest set
//! bit of the lowest level's `occupied` mask, found without scanning. Visiting a
//! level-0 slot fires its timers (they share one deadline); visiting a higher
//! slot cascades its timers down to the levels that now fit them. Each slot is a
//! doubly linked list threaded through one [`Slab`], so insert and cancel are
//! O(1), and a poll costs what fires or cascades plus six mask tests, never what
//! is merely pending.
//!
//! Two lists live outside the levels. `due` holds timers inserted with a
//! deadline at or before the current time; they fire, sorted, at the next poll.
//! `overflow` holds deadlines beyond the top level's current 2^36 ms block; they
//! are re-placed when the wheel reaches the block of the earliest of them, so
//! they too fire exactly on time (each such pass walks the whole overflow list,
//! which is fine for timers years away).
//!
//! Timers fire in non-decreasing deadline order; equal deadlines fire in
//! insertion order.

use slab::Slab;

/// Bits of time per level: 64 slots.
const SLOT_BITS: usize = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
const LEVELS: usize = 6;
/// Time covered by the whole wheel: 64^6 ms.
const WHEEL_SPAN: u64 = 1 << (SLOT_BITS * LEVELS);

/// Handle to a pending timer; carries the slab key and a generation so a stale
/// handle (timer already fired or cancelled, slot reused) can never cancel another timer.
///
/// Generations come from one wheel-wide `u32` counter, so a stale handle could
/// only match again if the same slab key were handed out a multiple of 2^32
/// inserts later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    key: usize,
    generation: u32,
}

/// A set of timers carrying values of type `T`, driven by [`TimerWheel::poll_to`].
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    levels: [Level; LEVELS],
    due: List,
    overflow: List,
    /// A lower bound on the deadlines in `overflow` (exact after each pass).
    overflow_min: u64,
    /// The wheel's current time, in ms.
    elapsed: u64,
    next_generation: u32,
    /// Reused buffer for sorting `due`.
    scratch: Vec<(u64, usize)>,
}

/// Which list an entry is linked into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Due,
    Slot { level: u8, slot: u8 },
    Overflow,
}

struct Entry<T> {
    deadline: u64,
    generation: u32,
    place: Place,
    prev: Option<usize>,
    next: Option<usize>,
    value: T,
}

/// The next list the wheel must visit, and the time at which it must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expiration {
    place: Place,
    at: u64,
}

/// A doubly linked list of slab keys.
#[derive(Clone, Copy, Debug, Default)]
struct List {
    head: Option<usize>,
    tail: Option<usize>,
}

/// 64 slots and the mask of the non-empty ones.
struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

impl<T> TimerWheel<T> {
    /// A wheel whose current time is `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        TimerWheel {
            entries: Slab::new(),
            levels: [Level::EMPTY; LEVELS],
            due: List::EMPTY,
            overflow: List::EMPTY,
            overflow_min: u64::MAX,
            elapsed: now_ms,
            next_generation: 0,
            scratch: Vec::new(),
        }
    }

    /// Schedules `value` to expire at `deadline_ms`. A deadline at or before the
    /// wheel's current time expires at the next `poll_to`.
    pub fn insert(&mut self, deadline_ms: u64, value: T) -> TimerId {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let key = self.entries.insert(Entry {
            deadline: deadline_ms,
            generation,
            place: place_for(self.elapsed, deadline_ms),
            prev: None,
            next: None,
            value,
        });
        self.link(key);
        TimerId { key, generation }
    }

    /// Cancels a pending timer and returns its value; a stale or already-fired id returns None.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if self.entries.get(id.key)?.generation != id.generation {
            return None;
        }
        self.unlink(id.key);
        Some(self.entries.remove(id.key).value)
    }

    /// Advances the wheel to `now_ms` (never backwards: a smaller now is treated
    /// as the current time) and appends every value whose deadline <= now_ms to
    /// `expired`, in non-decreasing deadline order.
    pub fn poll_to(&mut self, now_ms: u64, expired: &mut Vec<T>) {
        let now = now_ms.max(self.elapsed);
        while let Some(expiration) = self.next_expiration() {
            if expiration.at > now {
                break;
            }
            self.visit(expiration, expired);
        }
        self.elapsed = now;
    }

    /// The earliest pending deadline (exact, not rounded to a slot), or None when
    /// empty.
    ///
    /// Looks at one list only: the next one to visit. A level-0 slot needs no
    /// walk (its timers share one deadline); any other list is walked.
    pub fn next_deadline(&self) -> Option<u64> {
        let expiration = self.next_expiration()?;
        let head = match expiration.place {
            Place::Slot { level: 0, .. } => return Some(expiration.at),
            Place::Slot { level, slot } => {
                self.levels[usize::from(level)].slots[usize::from(slot)].head
            }
            Place::Due => self.due.head,
            Place::Overflow => self.overflow.head,
        };
        self.min_deadline(head)
    }

    /// The number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next list to visit: `due` now, else the first occupied slot of the
    /// lowest non-empty level, else the block holding the earliest overflow.
    fn next_expiration(&self) -> Option<Expiration> {
        if !self.due.is_empty() {
            return Some(Expiration {
                place: Place::Due,
                at: self.elapsed,
            });
        }
        for (level, slots) in self.levels.iter().enumerate() {
            if let Some(slot) = slots.first_occupied() {
                let place = Place::Slot {
                    level: level as u8,
                    slot: slot as u8,
                };
                let at = slot_start(self.elapsed, level, slot);
                return Some(Expiration { place, at });
            }
        }
        if !self.overflow.is_empty() {
            let at = self.overflow_min & !(WHEEL_SPAN - 1);
            return Some(Expiration {
                place: Place::Overflow,
                at: at.max(self.elapsed),
            });
        }
        None
    }

    /// Moves the wheel to `expiration.at` and fires or cascades that list.
    fn visit(&mut self, expiration: Expiration, expired: &mut Vec<T>) {
        debug_assert!(expiration.at >= self.elapsed, "the wheel never goes back");
        self.elapsed = expiration.at;
        match expiration.place {
            Place::Due => self.fire_due(expired),
            Place::Slot { level: 0, slot } => {
                let head = self.levels[0].take(usize::from(slot));
                self.fire_chain(head, expired);
            }
            Place::Slot { level, slot } => {
                let head = self.levels[usize::from(level)].take(usize::from(slot));
                self.relink_chain(head);
            }
            Place::Overflow => {
                let head = self.overflow.take();
                self.overflow_min = u64::MAX;
                self.relink_chain(head);
            }
        }
    }

    /// Fires a level-0 slot: every entry in it has the same deadline.
    fn fire_chain(&mut self, mut cursor: Option<usize>, expired: &mut Vec<T>) {
        while let Some(key) = cursor {
            let entry = self.entries.remove(key);
            cursor = entry.next;
            expired.push(entry.value);
        }
    }

    /// Fires `due`, whose deadlines were in the past when inserted: sorted, and
    /// stably so that equal deadlines keep their insertion order.
    fn fire_due(&mut self, expired: &mut Vec<T>) {
        let mut due = std::mem::take(&mut self.scratch);
        let mut cursor = self.due.take();
        while let Some(key) = cursor {
            let entry = &self.entries[key];
            due.push((entry.deadline, key));
            cursor = entry.next;
        }
        due.sort_by_key(|&(deadline, _)| deadline);
        expired.extend(due.drain(..).map(|(_, key)| self.entries.remove(key).value));
        self.scratch = due;
    }

    /// Re-places every entry of an unlinked chain relative to the current time.
    fn relink_chain(&mut self, mut cursor: Option<usize>) {
        while let Some(key) = cursor {
            let entry = &mut self.entries[key];
            cursor = entry.next;
            entry.place = place_for(self.elapsed, entry.deadline);
            self.link(key);
        }
    }

    /// Appends `key` to the list its `place` names.
    fn link(&mut self, key: usize) {
        let entries = &mut self.entries;
        match entries[key].place {
            Place::Due => self.due.push_back(entries, key),
            Place::Slot { level, slot } => {
                self.levels[usize::from(level)].push_back(usize::from(slot), entries, key);
            }
            Place::Overflow => {
                self.overflow_min = self.overflow_min.min(entries[key].deadline);
                self.overflow.push_back(entries, key);
            }
        }
    }

    /// Removes `key` from the list its `place` names.
    fn unlink(&mut self, key: usize) {
        let entries = &mut self.entries;
        match entries[key].place {
            Place::Due => self.due.unlink(entries, key),
            Place::Slot { level, slot } => {
                self.levels[usize::from(level)].unlink(usize::from(slot), entries, key);
            }
            Place::Overflow => {
                self.overflow.unlink(entries, key);
                if self.overflow.is_empty() {
                    self.overflow_min = u64::MAX;
                }
            }
        }
    }

    fn min_deadline(&self, mut cursor: Option<usize>) -> Option<u64> {
        let mut min = None;
        while let Some(key) = cursor {
            let entry = &self.entries[key];
            min = Some(min.map_or(entry.deadline, |m: u64| m.min(entry.deadline)));
            cursor = entry.next;
        }
        min
    }
}

/// Where a timer due at `deadline` belongs when the wheel's time is `elapsed`.
fn place_for(elapsed: u64, deadline: u64) -> Place {
    if deadline <= elapsed {
        return Place::Due;
    }
    match level_for(elapsed, deadline) {
        level if level < LEVELS => Place::Slot {
            level: level as u8,
            slot: slot_for(deadline, level) as u8,
        },
        _ => Place::Overflow,
    }
}

/// The level of a timer due at `deadline` seen from time `elapsed`: the index
/// of the highest base-64 digit in which the two differ (0 when they differ in
/// the lowest digit only, or not at all). `LEVELS` or more means the deadline
/// lies beyond the top level's current block.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS
}

/// The slot of `deadline` at `level` (below `LEVELS`): its base-64 digit there.
fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline >> (level * SLOT_BITS)) & SLOT_MASK) as usize
}

/// The time at which `slot` of `level` starts, in the level's block holding `elapsed`.
fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    let shift = level * SLOT_BITS;
    let block_mask = (1u64 << (shift + SLOT_BITS)) - 1;
    (elapsed & !block_mask) | ((slot as u64) << shift)
}

impl List {
    const EMPTY: List = List {
        head: None,
        tail: None,
    };

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn push_back<T>(&mut self, entries: &mut Slab<Entry<T>>, key: usize) {
        let entry = &mut entries[key];
        entry.prev = self.tail;
        entry.next = None;
        match self.tail {
            Some(tail) => entries[tail].next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
    }

    fn unlink<T>(&mut self, entries: &mut Slab<Entry<T>>, key: usize) {
        let (prev, next) = (entries[key].prev, entries[key].next);
        match prev {
            Some(prev) => entries[prev].next = next,
            None => self.head = next,
        }
        match next {
            Some(next) => entries[next].prev = prev,
            None => self.tail = prev,
        }
    }

    /// Empties the list and returns its first key; the rest follow by `next`.
    fn take(&mut self) -> Option<usize> {
        std::mem::take(self).head
    }
}

impl Level {
    const EMPTY: Level = Level {
        occupied: 0,
        slots: [List::EMPTY; SLOTS],
    };

    fn first_occupied(&self) -> Option<usize> {
        (self.occupied != 0).then(|| self.occupied.trailing_zeros() as usize)
    }

    fn push_back<T>(&mut self, slot: usize, entries: &mut Slab<Entry<T>>, key: usize) {
        self.slots[slot].push_back(entries, key);
        self.occupied |= 1 << slot;
    }

    fn unlink<T>(&mut self, slot: usize, entries: &mut Slab<Entry<T>>, key: usize) {
        self.slots[slot].unlink(entries, key);
        if self.slots[slot].is_empty() {
            self.occupied &= !(1 << slot);
        }
    }

    fn take(&mut self, slot: usize) -> Option<usize> {
        self.occupied &= !(1 << slot);
        self.slots[slot].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SECOND: u64 = 1_000;
    const HOUR: u64 = 3_600 * SECOND;
    const DAY: u64 = 24 * HOUR;
    const YEAR: u64 = 365 * DAY;

    /// Knuth's MMIX linear congruential generator; the high half is the output.
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 32
        }

        fn below(&mut self, bound: u64) -> u64 {
            ((self.next_u32() << 32) | self.next_u32()) % bound
        }
    }

    fn poll(wheel: &mut TimerWheel<u64>, now: u64) -> Vec<u64> {
        let mut expired = Vec::new();
        wheel.poll_to(now, &mut expired);
        expired
    }

    /// Walks every list and checks links, places, masks, counts and the
    /// placement rule against the wheel's current time.
    fn check_invariants<T>(wheel: &TimerWheel<T>) {
        let mut seen = 0;
        let mut check_list = |list: &List, place: Place| {
            let (mut cursor, mut prev) = (list.head, None);
            while let Some(key) = cursor {
                let entry = &wheel.entries[key];
                assert_eq!(entry.place, place);
                assert_eq!(entry.prev, prev);
                if place != Place::Due {
                    assert_eq!(place_for(wheel.elapsed, entry.deadline), place);
                }
                if place == Place::Overflow {
                    assert!(wheel.overflow_min <= entry.deadline);
                }
                seen += 1;
                prev = cursor;
                cursor = entry.next;
            }
            assert_eq!(list.tail, prev);
        };
        check_list(&wheel.due, Place::Due);
        check_list(&wheel.overflow, Place::Overflow);
        for (level, slots) in wheel.levels.iter().enumerate() {
            for (slot, list) in slots.slots.iter().enumerate() {
                assert_eq!(slots.occupied & (1 << slot) != 0, !list.is_empty());
                check_list(
                    list,
                    Place::Slot {
                        level: level as u8,
                        slot: slot as u8,
                    },
                );
            }
        }
        assert_eq!(seen, wheel.len());
    }

    /// The definition `level_for` implements with bit tricks.
    fn reference_level(elapsed: u64, deadline: u64) -> usize {
        (0..)
            .find(|&level| {
                let shift = (SLOT_BITS * (level + 1)) as u32;
                elapsed.checked_shr(shift).unwrap_or(0) == deadline.checked_shr(shift).unwrap_or(0)
            })
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn level_for_matches_its_definition_on_a_dense_range() {
        for elapsed in 0..300 {
            for deadline in elapsed + 1..elapsed + 5_000 {
                assert_eq!(
                    level_for(elapsed, deadline),
                    reference_level(elapsed, deadline)
                );
            }
        }
    }

    #[test]
    fn level_for_every_differing_bit() {
        let bases = [
            0,
            1,
            63,
            64,
            4_095,
            12_345_678_901,
            WHEEL_SPAN - 1,
            u64::MAX / 2,
        ];
        for base in bases {
            for bit in 0..64 {
                let deadline = base ^ (1 << bit);
                let (elapsed, deadline) = (base.min(deadline), base.max(deadline));
                let expected = bit / SLOT_BITS;
                assert_eq!(
                    level_for(elapsed, deadline),
                    expected,
                    "{elapsed} {deadline}"
                );
                assert_eq!(reference_level(elapsed, deadline), expected);
            }
        }
    }

    #[test]
    fn level_for_edges() {
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(64, 127), 0);
        assert_eq!(level_for(0, WHEEL_SPAN - 1), LEVELS - 1);
        assert_eq!(level_for(0, WHEEL_SPAN), LEVELS);
        assert_eq!(level_for(WHEEL_SPAN - 1, WHEEL_SPAN), LEVELS);
        assert_eq!(level_for(0, u64::MAX), 10);
    }

    #[test]
    fn slot_for_every_digit_of_every_level() {
        for level in 0..LEVELS {
            for digit in 0..SLOTS as u64 {
                for noise in [0, u64::MAX] {
                    let other_digits = noise & !(SLOT_MASK << (level * SLOT_BITS));
                    let deadline = other_digits | (digit << (level * SLOT_BITS));
                    assert_eq!(slot_for(deadline, level), digit as usize);
                }
            }
        }
    }

    #[test]
    fn slot_start_of_every_slot_of_every_level() {
        let elapsed = 0x0123_4567_89ab_cdef;
        for level in 0..LEVELS {
            let width = 1u64 << (level * SLOT_BITS);
            let block = elapsed - elapsed % (width * SLOTS as u64);
            for slot in 0..SLOTS {
                let start = slot_start(elapsed, level, slot);
                assert_eq!(start, block + slot as u64 * width);
                assert_eq!(slot_for(start, level), slot);
            }
        }
    }

    #[test]
    fn many_random_timers_fire_in_sorted_order() {
        let mut rng = Lcg(7);
        let mut wheel = TimerWheel::new(0);
        let mut reference = Vec::new();
        for seq in 0..20_000 {
            let range = [100, 5 * SECOND, 10 * 60 * SECOND, DAY][rng.below(4) as usize];
            let deadline = rng.below(range);
            wheel.insert(deadline, seq);
            reference.push((deadline, seq));
        }
        reference.sort();
        let (mut now, mut fired) = (0, Vec::new());
        while !wheel.is_empty() {
            now += rng.below(HOUR / 10) + 1;
            let before = fired.len();
            wheel.poll_to(now, &mut fired);
            let expected: Vec<u64> = reference[before..]
                .iter()
                .take_while(|(d, _)| *d <= now)
                .map(|&(_, s)| s)
                .collect();
            assert_eq!(fired[before..], expected[..]);
            check_invariants(&wheel);
        }
        assert_eq!(fired, reference.iter().map(|&(_, s)| s).collect::<Vec<_>>());
    }

    #[test]
    fn random_operations_agree_with_a_sorted_model() {
        let mut rng = Lcg(42);
        let mut wheel = TimerWheel::new(1_000);
        let mut model: BTreeMap<(u64, u64), TimerId> = BTreeMap::new();
        let mut stale = Vec::new();
        let mut now = 1_000;
        for seq in 0..30_000 {
            match rng.below(10) {
                0..=4 => {
                    let range = [2, 70, 5_000, 300_000, 20 * DAY, 3 * YEAR][rng.below(6) as usize];
                    let deadline = (now + rng.below(range)).saturating_sub(rng.below(3));
                    model.insert((deadline, seq), wheel.insert(deadline, seq));
                }
                5 | 6 if !model.is_empty() => {
                    let probe = (now + rng.below(2 * DAY), 0);
                    let key = *model
                        .range(probe..)
                        .chain(model.iter())
                        .next()
                        .expect("not empty")
                        .0;
                    let id = model.remove(&key).expect("key is in the model");
                    assert_eq!(wheel.cancel(id), Some(key.1));
                    stale.push(id);
                }
                7 if !stale.is_empty() => {
                    let id = stale[rng.below(stale.len() as u64) as usize];
                    assert_eq!(wheel.cancel(id), None);
                }
                _ => {
                    now += [1, 10, 100, 10_000, DAY][rng.below(5) as usize];
                    let pending = model.split_off(&(now + 1, 0));
                    let fired = std::mem::replace(&mut model, pending);
                    assert_eq!(
                        poll(&mut wheel, now),
                        fired.keys().map(|&(_, s)| s).collect::<Vec<_>>()
                    );
                    stale.extend(fired.into_values());
                }
            }
            assert_eq!(wheel.len(), model.len());
            assert_eq!(wheel.next_deadline(), model.keys().next().map(|&(d, _)| d));
            if seq % 97 == 0 {
                check_invariants(&wheel);
            }
        }
    }

    #[test]
    fn cancel_returns_the_value_once() {
        let mut wheel = TimerWheel::new(0);
        let a = wheel.insert(10, 1);
        let b = wheel.insert(10, 2);
        assert_eq!(wheel.cancel(a), Some(1));
        assert_eq!(wheel.cancel(a), None, "double cancel");
        assert_eq!(wheel.len(), 1);
        assert_eq!(poll(&mut wheel, 10), [2]);
        assert_eq!(wheel.cancel(b), None, "stale after fire");
        assert!(wheel.is_empty());
    }

    #[test]
    fn stale_id_does_not_cancel_the_timer_that_reuses_its_slot() {
        let mut wheel = TimerWheel::new(0);
        let old = wheel.insert(50, 1);
        assert_eq!(wheel.cancel(old), Some(1));
        let new = wheel.insert(50, 2);
        assert_eq!(new.key, old.key, "the slab reuses the key");
        assert_eq!(wheel.cancel(old), None);
        let fired_old = wheel.insert(5, 3);
        assert_eq!(poll(&mut wheel, 5), [3]);
        let reuser = wheel.insert(60, 4);
        assert_eq!(reuser.key, fired_old.key);
        assert_eq!(wheel.cancel(fired_old), None);
        assert_eq!(poll(&mut wheel, 100), [2, 4]);
    }

    #[test]
    fn cancel_from_every_kind_of_list_keeps_the_others() {
        let mut wheel = TimerWheel::new(10 * YEAR);
        let deadlines = [
            0,
            10 * YEAR,
            10 * YEAR + 1,
            10 * YEAR + 5 * SECOND,
            10 * YEAR + 2 * DAY,
            15 * YEAR,
        ];
        let ids: Vec<TimerId> = deadlines.iter().map(|&d| wheel.insert(d, d)).collect();
        for (i, &id) in ids.iter().enumerate().step_by(2) {
            assert_eq!(wheel.cancel(id), Some(deadlines[i]));
            check_invariants(&wheel);
        }
        let rest: Vec<u64> = deadlines.iter().copied().skip(1).step_by(2).collect();
        assert_eq!(poll(&mut wheel, u64::MAX), rest);
    }

    #[test]
    fn cancel_every_timer_of_a_crowded_slot_in_any_order() {
        let mut wheel = TimerWheel::new(0);
        let ids: Vec<TimerId> = (0..100).map(|i| wheel.insert(200 + i % 3, i)).collect();
        for i in (0..100)
            .filter(|i| i % 3 == 1)
            .chain((0..100).rev().filter(|i| i % 3 != 1))
        {
            assert_eq!(wheel.cancel(ids[i as usize]), Some(i));
            check_invariants(&wheel);
        }
        assert_eq!(wheel.levels.iter().map(|l| l.occupied).sum::<u64>(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn every_level_wraps_around() {
        for level in 0..LEVELS {
            let span = 1u64 << (SLOT_BITS * (level + 1));
            for start in [span - 1, 3 * span - span / 3, 5 * span - 2] {
                let mut wheel = TimerWheel::new(start);
                let deadlines = [
                    start + 1,
                    start + span / 2,
                    start + span - 1,
                    start + span,
                    start + 2 * span + 7,
                ];
                for &deadline in &deadlines {
                    wheel.insert(deadline, deadline);
                }
                for &deadline in &deadlines {
                    assert_eq!(wheel.next_deadline(), Some(deadline));
                    assert_eq!(poll(&mut wheel, deadline - 1), [] as [u64; 0]);
                    assert_eq!(poll(&mut wheel, deadline), [deadline]);
                }
                assert!(wheel.is_empty());
            }
        }
    }

    #[test]
    fn many_timers_in_one_slot() {
        let mut wheel = TimerWheel::new(0);
        for i in 0..10_000 {
            wheel.insert(42, i);
        }
        assert_eq!(wheel.levels[0].occupied, 1 << 42);
        assert_eq!(wheel.next_deadline(), Some(42));
        assert!(poll(&mut wheel, 41).is_empty());
        assert_eq!(poll(&mut wheel, 42), (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn many_timers_in_one_high_slot_cascade_in_order() {
        let mut wheel = TimerWheel::new(0);
        let deadlines: Vec<u64> = (0..4_096).rev().map(|i| 4_096 + i).collect();
        for &deadline in &deadlines {
            wheel.insert(deadline, deadline);
        }
        assert_eq!(wheel.levels[2].occupied, 1 << 1);
        assert_eq!(wheel.next_deadline(), Some(4_096));
        let fired = poll(&mut wheel, 10_000);
        assert_eq!(fired, (4_096..8_192).collect::<Vec<_>>());
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order_across_levels() {
        let mut wheel = TimerWheel::new(0);
        let deadline = 3 * HOUR + 17;
        wheel.insert(deadline, 0);
        for (i, now) in [
            HOUR,
            2 * HOUR,
            deadline - 5_000,
            deadline - 60,
            deadline - 1,
        ]
        .into_iter()
        .enumerate()
        {
            poll(&mut wheel, now);
            wheel.insert(deadline, i as u64 + 1);
        }
        assert_eq!(poll(&mut wheel, deadline), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn timers_far_in_the_future_fire_on_time() {
        let start = 123_456_789;
        let offsets = [
            HOUR,
            HOUR + 1,
            DAY,
            30 * DAY,
            YEAR,
            2 * YEAR + DAY,
            3 * YEAR,
            10 * YEAR,
            100 * YEAR,
        ];
        let mut wheel = TimerWheel::new(start);
        for &offset in offsets.iter().rev() {
            wheel.insert(start + offset, start + offset);
        }
        let max = wheel.insert(u64::MAX, u64::MAX);
        for &offset in &offsets {
            let deadline = start + offset;
            assert_eq!(wheel.next_deadline(), Some(deadline));
            assert!(poll(&mut wheel, deadline - 1).is_empty());
            check_invariants(&wheel);
            assert_eq!(poll(&mut wheel, deadline), [deadline]);
        }
        assert_eq!(wheel.next_deadline(), Some(u64::MAX));
        assert!(poll(&mut wheel, u64::MAX - 1).is_empty());
        assert_eq!(poll(&mut wheel, u64::MAX), [u64::MAX]);
        assert_eq!(wheel.cancel(max), None);
    }

    #[test]
    fn overflow_timers_cancelled_leave_no_stale_bound_behind() {
        let mut wheel = TimerWheel::new(0);
        let early = wheel.insert(3 * YEAR, 1);
        wheel.insert(9 * YEAR, 2);
        assert_eq!(wheel.cancel(early), Some(1));
        assert_eq!(wheel.next_deadline(), Some(9 * YEAR));
        assert!(poll(&mut wheel, 9 * YEAR - 1).is_empty());
        assert_eq!(poll(&mut wheel, 9 * YEAR), [2]);
    }

    #[test]
    fn wheel_near_the_end_of_time() {
        let mut wheel = TimerWheel::new(u64::MAX - 100);
        wheel.insert(u64::MAX, 1);
        wheel.insert(u64::MAX - 50, 2);
        wheel.insert(0, 3);
        assert_eq!(wheel.next_deadline(), Some(0));
        assert_eq!(poll(&mut wheel, u64::MAX), [3, 2, 1]);
    }

    #[test]
    fn past_deadlines_fire_at_the_next_poll_sorted() {
        let mut wheel = TimerWheel::new(1_000);
        wheel.insert(1_001, 10);
        wheel.insert(900, 1);
        wheel.insert(1_000, 2);
        wheel.insert(0, 3);
        wheel.insert(900, 4);
        assert_eq!(wheel.next_deadline(), Some(0));
        assert_eq!(
            poll(&mut wheel, 500),
            [3, 1, 4, 2],
            "a smaller now is the current time"
        );
        assert_eq!(wheel.next_deadline(), Some(1_001));
        assert!(poll(&mut wheel, 1_000).is_empty());
        assert_eq!(poll(&mut wheel, 1_001), [10]);
    }

    #[test]
    fn poll_never_goes_backwards() {
        let mut wheel = TimerWheel::new(0);
        assert!(poll(&mut wheel, 5_000).is_empty());
        wheel.insert(4_999, 1);
        wheel.insert(5_001, 2);
        assert_eq!(poll(&mut wheel, 10), [1]);
        assert!(poll(&mut wheel, 5_000).is_empty());
        assert_eq!(poll(&mut wheel, 5_001), [2]);
    }

    #[test]
    fn one_ms_steps_and_big_jumps_fire_identically() {
        let mut rng = Lcg(99);
        let start = 64 * 64 * 64 - 1_000;
        let mut stepped = TimerWheel::new(start);
        let mut jumped = TimerWheel::new(start);
        let mut random = TimerWheel::new(start);
        for seq in 0..5_000 {
            let deadline = start + rng.below(70_000);
            stepped.insert(deadline, seq);
            jumped.insert(deadline, seq);
            random.insert(deadline, seq);
        }
        let end = start + 70_000;
        let mut by_step = Vec::new();
        for now in start..=end {
            stepped.poll_to(now, &mut by_step);
        }
        let mut by_random = Vec::new();
        let mut now = start;
        while now < end {
            now += rng.below(9_000);
            random.poll_to(now, &mut by_random);
        }
        assert_eq!(by_step.len(), 5_000);
        assert_eq!(by_step, poll(&mut jumped, end));
        assert_eq!(by_step, by_random);
    }

    #[test]
    fn next_deadline_is_exact_after_inserts_cancels_and_polls() {
        let mut wheel = TimerWheel::new(0);
        assert_eq!(wheel.next_deadline(), None);
        let a = wheel.insert(5_000, 1);
        assert_eq!(wheel.next_deadline(), Some(5_000));
        let b = wheel.insert(4_321, 2);
        assert_eq!(
            wheel.next_deadline(),
            Some(4_321),
            "exact inside a level-2 slot"
        );
        wheel.insert(4_400, 3);
        let d = wheel.insert(70, 4);
        assert_eq!(wheel.next_deadline(), Some(70));
        assert_eq!(wheel.cancel(d), Some(4));
        assert_eq!(wheel.next_deadline(), Some(4_321));
        assert_eq!(wheel.cancel(b), Some(2));
        assert_eq!(wheel.next_deadline(), Some(4_400));
        assert!(poll(&mut wheel, 4_100).is_empty());
        assert_eq!(wheel.next_deadline(), Some(4_400));
        assert_eq!(poll(&mut wheel, 4_400), [3]);
        assert_eq!(wheel.next_deadline(), Some(5_000));
        assert_eq!(wheel.cancel(a), Some(1));
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn len_counts_pending_timers() {
        let mut wheel = TimerWheel::new(0);
        assert!(wheel.is_empty());
        let ids: Vec<TimerId> = (0..10).map(|i| wheel.insert(i * 100, i)).collect();
        assert_eq!(wheel.len(), 10);
        wheel.cancel(ids[9]);
        wheel.cancel(ids[9]);
        assert_eq!(wheel.len(), 9);
        assert_eq!(poll(&mut wheel, 450).len(), 5);
        assert_eq!(wheel.len(), 4);
        poll(&mut wheel, 10_000);
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
    }
}
