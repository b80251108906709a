//! Scenario tests of admission: pools, permits, the queue and its fairness.

extern crate std;

use std::format;
use std::string::ToString;
use std::vec::Vec;

use super::*;
use crate::time::Duration;

type Adm = Admission<u32, 64, 8>;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn limits(global: u32, chat: u32, stream: u32, embed: u32, background: u32) -> PoolLimits {
    PoolLimits {
        global,
        chat,
        stream,
        embed,
        background,
    }
}

fn adm(l: PoolLimits) -> Adm {
    Adm::new(l).unwrap()
}

/// Grant until `None`, accepting every call.
fn grant_all(a: &mut Adm, now: Instant) -> Vec<Ticket> {
    let mut out = Vec::new();
    while let Some(tk) = a.grant_next(now, |_, _| true) {
        out.push(tk);
    }
    out
}

fn granted(status: TicketStatus) -> Permit {
    match status {
        TicketStatus::Granted(p) => p,
        other => panic!("expected Granted, got {other:?}"),
    }
}

#[test]
fn limits_are_validated() {
    assert_eq!(PoolLimits::default().validate(), Ok(()));
    assert_eq!(
        limits(0, 0, 0, 0, 0).validate(),
        Err(LimitsError::ZeroGlobal)
    );
    assert_eq!(
        limits(4, 4, 5, 0, 0).validate(),
        Err(LimitsError::PoolExceedsGlobal {
            pool: Pool::Stream,
            limit: 5,
            global: 4
        })
    );
    assert!(
        limits(4, 0, 0, 0, 0).validate().is_ok(),
        "zero class pools are allowed"
    );
    assert_eq!(
        Admission::<u32, 8, 0>::new(PoolLimits::uniform(9)).err(),
        Some(LimitsError::GlobalExceedsCapacity {
            global: 9,
            capacity: 8
        })
    );
    let mut a = adm(PoolLimits::uniform(4));
    assert_eq!(
        a.set_limits(limits(2, 3, 0, 0, 0)),
        Err(LimitsError::PoolExceedsGlobal {
            pool: Pool::Chat,
            limit: 3,
            global: 2
        })
    );
    assert_eq!(
        a.limits(),
        PoolLimits::uniform(4),
        "a failed set_limits changes nothing"
    );
    let msg = LimitsError::PoolExceedsGlobal {
        pool: Pool::Embed,
        limit: 9,
        global: 4,
    }
    .to_string();
    assert_eq!(
        msg,
        "the embed pool limit (9) exceeds the global pool limit (4)"
    );
}

#[test]
fn refusals_explain_themselves() {
    assert_eq!(
        Refusal::BusyGlobalPool.to_string(),
        "the global concurrency pool is full"
    );
    assert_eq!(
        Refusal::BusyPool(Pool::Stream).to_string(),
        "the stream concurrency pool is full"
    );
    assert_eq!(
        Refusal::QueueFull.to_string(),
        "the admission queue is full"
    );
    assert_eq!(
        Refusal::QueueWaitExpired.to_string(),
        "the call waited in the admission queue past its deadline"
    );
    assert_eq!(Refusal::BusyPool(Pool::Chat).code(), "busy_pool");
    assert_eq!(
        ReleaseError::AlreadyReleased.to_string(),
        "the permit has already been released"
    );
    let e: &dyn core::error::Error = &Refusal::QueueFull;
    assert!(!e.to_string().is_empty());
}

#[test]
fn double_release_is_detected_and_changes_nothing() {
    let mut a = adm(PoolLimits::uniform(4));
    let p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let keep = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let id = p.id();
    assert_eq!(a.permit_pool(id), Ok(Pool::Chat));
    assert_eq!(a.release(p), Ok(()));
    assert_eq!((a.outstanding(), a.in_use(Pool::Chat)), (1, 1));
    assert_eq!(a.release_id(id), Err(ReleaseError::AlreadyReleased));
    assert_eq!((a.outstanding(), a.in_use(Pool::Chat)), (1, 1));
    // The slot is reused; the old id must not release the new permit.
    let q = a.try_acquire(Pool::Embed, Priority::Interactive).unwrap();
    assert_eq!(q.id().index, id.index);
    assert_eq!(a.release_id(id), Err(ReleaseError::AlreadyReleased));
    assert_eq!(a.outstanding(), 2);
    assert_eq!(a.release_id(q.id()), Ok(Pool::Embed));
    // The permit value itself is now stale too.
    assert_eq!(a.release(q), Err(ReleaseError::AlreadyReleased));
    assert_eq!(a.release(keep), Ok(()));
    assert_eq!(a.outstanding(), 0);
    assert!(Pool::ALL.iter().all(|&p| a.in_use(p) == 0));
}

#[test]
fn stale_and_foreign_ids_are_unknown() {
    let mut a = adm(PoolLimits::uniform(4));
    let mut other = adm(PoolLimits::uniform(4));
    let p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    for forged in [
        PermitId {
            index: 64,
            generation: 1,
        },
        PermitId {
            index: u32::MAX,
            generation: 1,
        },
        PermitId {
            index: p.id().index,
            generation: p.id().generation + 2,
        },
        PermitId {
            index: p.id().index,
            generation: 0,
        },
        PermitId {
            index: 5,
            generation: 1,
        },
    ] {
        assert_eq!(
            a.release_id(forged),
            Err(ReleaseError::UnknownPermit),
            "{forged:?}"
        );
    }
    // A permit from another admission whose slot is unused there.
    assert_eq!(other.release(p), Err(ReleaseError::UnknownPermit));
    assert_eq!(a.outstanding(), 1);
    assert_eq!(other.outstanding(), 0);
}

#[test]
fn each_class_pool_exhausts_with_its_own_reason() {
    for pool in Pool::ALL {
        let mut l = PoolLimits::uniform(4);
        l.set(pool, 2);
        let mut a = adm(l);
        let p1 = a.try_acquire(pool, Priority::Interactive).unwrap();
        let _p2 = a.try_acquire(pool, Priority::Background).unwrap();
        assert_eq!(
            a.try_acquire(pool, Priority::Interactive).err(),
            Some(Refusal::BusyPool(pool))
        );
        assert_eq!(
            a.check(pool, Priority::Background),
            Err(Refusal::BusyPool(pool))
        );
        assert_eq!(a.in_use(pool), 2);
        // Another class still has room in the global pool.
        let other = Pool::ALL[(pool.index() + 1) % 4];
        let _o1 = a.try_acquire(other, Priority::Interactive).unwrap();
        let _o2 = a.try_acquire(other, Priority::Interactive).unwrap();
        assert_eq!(a.outstanding(), 4);
        assert_eq!(
            a.try_acquire(other, Priority::Interactive).err(),
            Some(Refusal::BusyGlobalPool)
        );
        // Both full: the global pool is named.
        assert_eq!(
            a.try_acquire(pool, Priority::Interactive).err(),
            Some(Refusal::BusyGlobalPool)
        );
        a.release(p1).unwrap();
        assert!(a.try_acquire(pool, Priority::Interactive).is_ok());
    }
}

#[test]
fn interactive_is_granted_before_background() {
    let mut a = adm(PoolLimits::uniform(1));
    let running = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let bg = a
        .enqueue(1, Pool::Chat, Priority::Background, t(0), t(100))
        .unwrap();
    let fg = a
        .enqueue(2, Pool::Chat, Priority::Interactive, t(1), t(100))
        .unwrap();
    assert_eq!(a.len_by_priority(Priority::Interactive), 1);
    assert_eq!(a.len_by_priority(Priority::Background), 1);
    let order: Vec<u32> = a.iter_waiting().map(|(_, q)| q.payload).collect();
    assert_eq!(order, [2, 1]);
    assert_eq!(a.grant_next(t(2), |_, _| true), None, "pool full");
    a.release(running).unwrap();
    assert_eq!(grant_all(&mut a, t(2)), [fg]);
    let p = granted(a.take(fg, t(2)));
    a.release(p).unwrap();
    assert_eq!(grant_all(&mut a, t(3)), [bg]);
    assert_eq!(a.peek(bg).map(|q| q.state), Some(QueuedState::Granted));
}

#[test]
fn fifo_within_a_priority() {
    let mut a = adm(PoolLimits::uniform(3));
    let held: Vec<Permit> = (0..3)
        .map(|_| a.try_acquire(Pool::Embed, Priority::Interactive).unwrap())
        .collect();
    let tickets: Vec<Ticket> = (0..5)
        .map(|n| {
            a.enqueue(n, Pool::Embed, Priority::Interactive, t(0), t(100))
                .unwrap()
        })
        .collect();
    let seqs: Vec<u64> = tickets.iter().map(|&tk| a.peek(tk).unwrap().seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let mut served = Vec::new();
    for p in held {
        a.release(p).unwrap();
        served.extend(grant_all(&mut a, t(1)));
    }
    assert_eq!(served, tickets[..3]);
    for tk in &tickets[3..] {
        assert_eq!(a.peek(*tk).unwrap().state, QueuedState::Waiting);
    }
}

#[test]
fn deadline_expires_exactly_at_now() {
    let mut a = adm(PoolLimits::uniform(1));
    let running = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let d = t(100);
    let tk = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), d)
        .unwrap();
    let just_before = d.saturating_sub(Duration::from_nanos(1));
    assert_eq!(
        a.take(tk, just_before),
        TicketStatus::Waiting { deadline: d }
    );
    assert_eq!(a.expire(just_before), 0);
    assert_eq!(a.next_deadline(), Some(d));
    assert_eq!(a.take(tk, d), TicketStatus::Expired);
    assert_eq!(a.take(tk, d), TicketStatus::Unknown);

    // grant_next at now == deadline does not grant; the call becomes Expired.
    let tk = a
        .enqueue(2, Pool::Chat, Priority::Interactive, t(0), d)
        .unwrap();
    a.release(running).unwrap();
    assert_eq!(a.grant_next(d, |_, _| true), None);
    assert_eq!(a.outstanding(), 0);
    assert_eq!(a.waiting(), 0);
    assert_eq!(a.peek(tk).map(|q| q.state), Some(QueuedState::Expired));
    assert_eq!(a.take(tk, d), TicketStatus::Expired);

    // expire(now == deadline) counts it, and its caller still learns Expired.
    let tk = a
        .enqueue(3, Pool::Chat, Priority::Interactive, t(0), d)
        .unwrap();
    assert_eq!(a.expire(d), 1);
    assert_eq!(a.expire(d), 0);
    assert_eq!(a.waiting(), 0);
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.queued(), 1);
    assert_eq!(
        a.take(tk, t(0)),
        TicketStatus::Expired,
        "expired is final even at an earlier now"
    );
    assert_eq!(a.take(tk, d).refusal(), None);
    assert_eq!(a.queued(), 0);
    assert_eq!(
        TicketStatus::Expired.refusal(),
        Some(Refusal::QueueWaitExpired)
    );
}

#[test]
fn time_not_advancing() {
    let mut a = adm(PoolLimits::uniform(1));
    let now = t(5);
    // A deadline of `now` cannot wait at all.
    assert_eq!(
        a.enqueue(1, Pool::Chat, Priority::Interactive, now, now),
        Err(Refusal::QueueWaitExpired)
    );
    assert_eq!(
        a.enqueue(1, Pool::Chat, Priority::Interactive, now, t(1)),
        Err(Refusal::QueueWaitExpired)
    );
    let p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let tk = a
        .enqueue(
            2,
            Pool::Chat,
            Priority::Interactive,
            now,
            now + Duration::from_nanos(1),
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(a.expire(now), 0);
        assert!(matches!(a.take(tk, now), TicketStatus::Waiting { .. }));
        assert_eq!(a.grant_next(now, |_, _| true), None);
    }
    a.release(p).unwrap();
    assert_eq!(a.grant_next(now, |_, _| true), Some(tk));
    let p = granted(a.take(tk, now));
    a.release(p).unwrap();
    // A clock that steps backwards is just an earlier `now`.
    let tk = a
        .enqueue(3, Pool::Chat, Priority::Interactive, t(10), t(20))
        .unwrap();
    assert!(matches!(a.take(tk, t(1)), TicketStatus::Waiting { .. }));
    assert_eq!(a.peek(tk).unwrap().enqueued_at, t(10));
}

#[test]
fn cancel_before_grant_frees_the_entry() {
    let mut a = adm(PoolLimits::uniform(1));
    let p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let tk = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    assert_eq!(a.waiting_for(Pool::Chat, Priority::Interactive), 1);
    assert_eq!(a.cancel(tk), None);
    assert_eq!(a.waiting(), 0);
    assert_eq!(a.queued(), 0);
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.take(tk, t(1)), TicketStatus::Unknown);
    assert_eq!(a.cancel(tk), None);
    a.release(p).unwrap();
    assert_eq!(
        a.grant_next(t(1), |_, _| true),
        None,
        "nothing left to grant"
    );
    assert_eq!(a.outstanding(), 0);
}

#[test]
fn cancel_after_grant_returns_the_parked_permit() {
    let mut a = adm(PoolLimits::uniform(1));
    let tk = a
        .enqueue(1, Pool::Stream, Priority::Interactive, t(0), t(9))
        .unwrap();
    assert_eq!(a.grant_next(t(1), |_, _| true), Some(tk));
    assert_eq!(a.outstanding(), 1, "a parked permit is outstanding");
    assert_eq!(a.in_use(Pool::Stream), 1);
    let p = a.cancel(tk).expect("granted entry returns its permit");
    assert_eq!(p.pool(), Pool::Stream);
    assert_eq!(a.take(tk, t(1)), TicketStatus::Unknown);
    assert_eq!(a.cancel(tk), None);
    assert_eq!(a.outstanding(), 1);
    a.release(p).unwrap();
    assert_eq!(a.outstanding(), 0);
    // Cancelling an expired, untaken entry frees it and returns nothing.
    let tk = a
        .enqueue(2, Pool::Stream, Priority::Interactive, t(0), t(9))
        .unwrap();
    let _hold = a.try_acquire(Pool::Chat, Priority::Interactive);
    assert_eq!(a.expire(t(9)), 1);
    assert_eq!(a.cancel(tk), None);
    assert_eq!(a.queued(), 0);
}

#[test]
fn take_resolves_exactly_once() {
    let mut a = adm(PoolLimits::uniform(2));
    let tk = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    assert_eq!(a.take(tk, t(0)), TicketStatus::Waiting { deadline: t(9) });
    assert_eq!(a.take(tk, t(0)), TicketStatus::Waiting { deadline: t(9) });
    assert_eq!(a.grant_next(t(1), |_, _| true), Some(tk));
    // Granted is final even after the deadline.
    let p = granted(a.take(tk, t(50)));
    assert_eq!(a.take(tk, t(50)), TicketStatus::Unknown);
    assert_eq!(a.cancel(tk), None);
    assert_eq!(a.outstanding(), 1);
    a.release(p).unwrap();
    // A ticket for a reused slot does not see the new entry.
    let tk2 = a
        .enqueue(2, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    assert_eq!(tk2.index, tk.index);
    assert_eq!(a.take(tk, t(0)), TicketStatus::Unknown);
    assert_eq!(a.peek(tk), None);
    let forged = Ticket {
        index: 99,
        generation: 0,
    };
    assert_eq!(a.take(forged, t(0)), TicketStatus::Unknown);
    assert_eq!(a.cancel(forged), None);
    assert!(a.peek(tk2).is_some());
}

#[test]
fn queue_full_until_an_outcome_is_taken() {
    let mut a = Admission::<u32, 4, 2>::new(PoolLimits::uniform(1)).unwrap();
    let _p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let t1 = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(5))
        .unwrap();
    let _t2 = a
        .enqueue(2, Pool::Chat, Priority::Background, t(0), t(9))
        .unwrap();
    assert_eq!(
        a.enqueue(3, Pool::Chat, Priority::Interactive, t(0), t(9)),
        Err(Refusal::QueueFull)
    );
    // Expired but untaken outcomes still hold their slot.
    assert_eq!(a.expire(t(5)), 1);
    assert_eq!(a.waiting(), 1);
    assert_eq!(
        a.enqueue(3, Pool::Chat, Priority::Interactive, t(5), t(9)),
        Err(Refusal::QueueFull)
    );
    assert_eq!(a.take(t1, t(5)), TicketStatus::Expired);
    assert!(
        a.enqueue(3, Pool::Chat, Priority::Interactive, t(5), t(9))
            .is_ok()
    );
}

#[test]
fn zero_capacity_queue_refuses_every_wait() {
    let mut a = Admission::<u32, 4, 0>::new(PoolLimits::uniform(1)).unwrap();
    assert_eq!(
        a.enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9)),
        Err(Refusal::QueueFull)
    );
    assert_eq!(a.grant_next(t(0), |_, _| true), None);
    assert_eq!((a.waiting(), a.queued(), a.expire(t(99))), (0, 0, 0));
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.iter_waiting().count(), 0);
    let p = a.try_acquire(Pool::Chat, Priority::Background).unwrap();
    a.release(p).unwrap();
}

#[test]
fn predicate_skips_an_entry_and_grants_the_next() {
    let mut a = adm(PoolLimits::uniform(4));
    // Payload = model; only model 2 has a free node.
    let t1 = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    let t2 = a
        .enqueue(2, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    let mut asked = Vec::new();
    let g = a.grant_next(t(1), |model, pool| {
        asked.push((*model, pool));
        *model == 2
    });
    assert_eq!(g, Some(t2));
    assert_eq!(asked, [(1, Pool::Chat), (2, Pool::Chat)]);
    assert_eq!(a.grant_next(t(1), |m, _| *m == 2), None);
    assert_eq!(a.peek(t1).unwrap().state, QueuedState::Waiting);
    assert_eq!(a.iter_waiting().next().map(|(tk, _)| tk), Some(t1));
    // Once model 1 has a node, it is served.
    assert_eq!(a.grant_next(t(2), |_, _| true), Some(t1));
}

#[test]
fn full_class_pool_is_skipped_without_asking() {
    let mut a = adm(limits(4, 1, 4, 4, 4));
    let _chat = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let c = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    let e = a
        .enqueue(2, Pool::Embed, Priority::Background, t(0), t(9))
        .unwrap();
    let mut asked = Vec::new();
    let g = a.grant_next(t(1), |m, _| {
        asked.push(*m);
        true
    });
    assert_eq!(g, Some(e));
    assert_eq!(
        asked,
        [2],
        "the chat call is skipped without consulting the router"
    );
    assert_eq!(a.peek(c).unwrap().state, QueuedState::Waiting);
}

#[test]
fn full_global_pool_grants_nothing_and_asks_nothing() {
    let mut a = adm(limits(2, 2, 2, 2, 2));
    let _p1 = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let _p2 = a.try_acquire(Pool::Embed, Priority::Interactive).unwrap();
    let _tk = a
        .enqueue(1, Pool::Stream, Priority::Interactive, t(0), t(9))
        .unwrap();
    let mut asked = 0;
    assert_eq!(
        a.grant_next(t(1), |_, _| {
            asked += 1;
            true
        }),
        None
    );
    assert_eq!(asked, 0);
}

#[test]
fn immediate_acquire_does_not_overtake_equal_or_higher_waiters() {
    let mut a = adm(limits(8, 2, 8, 8, 8));
    let p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    // One interactive chat call waits (say: no node for its model yet).
    let w = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    // One chat unit is free but reserved for the waiter.
    assert_eq!(
        a.try_acquire(Pool::Chat, Priority::Interactive).err(),
        Some(Refusal::BusyPool(Pool::Chat))
    );
    assert_eq!(
        a.try_acquire(Pool::Chat, Priority::Background).err(),
        Some(Refusal::BusyPool(Pool::Chat))
    );
    // Other classes are not held back by it.
    let _s = a.try_acquire(Pool::Stream, Priority::Background).unwrap();
    // Once the waiter is served (or gone), the pool is open again.
    a.release(p).unwrap();
    assert!(a.cancel(w).is_none());
    let _c = a.try_acquire(Pool::Chat, Priority::Background).unwrap();

    // Background waiters do not hold back interactive calls, only background ones.
    let mut a = adm(limits(8, 2, 8, 8, 8));
    let _bw = a
        .enqueue(1, Pool::Chat, Priority::Background, t(0), t(9))
        .unwrap();
    let _bw2 = a
        .enqueue(2, Pool::Chat, Priority::Background, t(0), t(9))
        .unwrap();
    assert_eq!(
        a.try_acquire(Pool::Chat, Priority::Background).err(),
        Some(Refusal::BusyPool(Pool::Chat))
    );
    let _i1 = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let _i2 = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    assert_eq!(
        a.try_acquire(Pool::Chat, Priority::Interactive).err(),
        Some(Refusal::BusyPool(Pool::Chat))
    );

    // The global pool is reserved the same way for same-class waiters.
    let mut a = adm(limits(2, 2, 2, 2, 2));
    let _x = a.try_acquire(Pool::Embed, Priority::Interactive).unwrap();
    let _w = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(9))
        .unwrap();
    assert_eq!(
        a.try_acquire(Pool::Chat, Priority::Interactive).err(),
        Some(Refusal::BusyGlobalPool)
    );
    // An expired waiter stops reserving.
    assert_eq!(a.expire(t(9)), 1);
    assert!(a.try_acquire(Pool::Chat, Priority::Interactive).is_ok());
}

#[test]
fn shrinking_limits_keeps_counters_and_defers_new_work() {
    let mut a = adm(PoolLimits::uniform(4));
    let held: Vec<Permit> = (0..4)
        .map(|_| a.try_acquire(Pool::Chat, Priority::Interactive).unwrap())
        .collect();
    a.set_limits(limits(2, 1, 2, 2, 2)).unwrap();
    assert_eq!((a.outstanding(), a.in_use(Pool::Chat)), (4, 4));
    assert_eq!(
        a.try_acquire(Pool::Embed, Priority::Interactive).err(),
        Some(Refusal::BusyGlobalPool)
    );
    let tk = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(99))
        .unwrap();
    let mut held = held.into_iter();
    for expected_in_use in [3, 2, 1] {
        a.release(held.next().unwrap()).unwrap();
        assert_eq!(a.in_use(Pool::Chat), expected_in_use);
        assert_eq!(a.grant_next(t(1), |_, _| true), None);
    }
    a.release(held.next().unwrap()).unwrap();
    assert_eq!((a.outstanding(), a.in_use(Pool::Chat)), (0, 0));
    assert_eq!(a.grant_next(t(1), |_, _| true), Some(tk));
    let p = granted(a.take(tk, t(1)));
    assert_eq!(a.in_use(Pool::Chat), 1);
    // Raising again lets queued work through on the next grant.
    let tk2 = a
        .enqueue(2, Pool::Chat, Priority::Interactive, t(1), t(99))
        .unwrap();
    assert_eq!(a.grant_next(t(2), |_, _| true), None);
    a.set_limits(PoolLimits::uniform(4)).unwrap();
    assert_eq!(a.grant_next(t(2), |_, _| true), Some(tk2));
    a.release(p).unwrap();
}

#[test]
fn next_deadline_is_the_earliest_waiting_one() {
    let mut a = adm(PoolLimits::uniform(1));
    assert_eq!(a.next_deadline(), None);
    let _p = a.try_acquire(Pool::Chat, Priority::Interactive).unwrap();
    let _a1 = a
        .enqueue(1, Pool::Chat, Priority::Interactive, t(0), t(30))
        .unwrap();
    let b = a
        .enqueue(2, Pool::Chat, Priority::Background, t(0), t(10))
        .unwrap();
    let _c = a
        .enqueue(3, Pool::Chat, Priority::Interactive, t(0), t(20))
        .unwrap();
    assert_eq!(a.next_deadline(), Some(t(10)));
    assert_eq!(a.cancel(b), None);
    assert_eq!(a.next_deadline(), Some(t(20)));
    assert_eq!(a.expire(t(25)), 1);
    assert_eq!(a.next_deadline(), Some(t(30)));
}

#[test]
fn debug_is_a_summary() {
    let mut a = adm(PoolLimits::uniform(2));
    let _p = a.try_acquire(Pool::Embed, Priority::Interactive).unwrap();
    let s = format!("{a:?}");
    assert!(s.starts_with("Admission {"), "{s}");
    assert!(s.contains("outstanding: 1"), "{s}");
    assert!(s.contains("in_use: [0, 0, 1, 0]"), "{s}");
}

#[test]
fn sizes() {
    use core::mem::size_of;
    let big = size_of::<Admission<(u64, u64), 1024, 256>>();
    std::println!(
        "Admission<(u64,u64),1024,256> = {big} B, permit slot = {} B, queue entry<(u64,u64)> = {} B",
        size_of::<permits::Slot>(),
        size_of::<queue::Entry<(u64, u64)>>()
    );
    assert_eq!(size_of::<permits::Slot>(), 8);
    assert_eq!(size_of::<queue::Entry<(u64, u64)>>(), 64);
    assert!(big <= 1024 * 8 + 256 * 64 + 256, "{big}");
    assert_eq!(size_of::<Permit>(), 12);
    assert_eq!(size_of::<Ticket>(), 8);
}

#[test]
fn usable_in_a_const_context() {
    const A: Result<Admission<u8, 4, 2>, LimitsError> = Admission::new(PoolLimits::uniform(4));
    assert!(A.is_ok());
    const B: Result<Admission<u8, 2, 2>, LimitsError> = Admission::new(PoolLimits::uniform(4));
    assert!(B.is_err());
}
