//! Seeded random operation sequences checked against a plain reference model.
//!
//! The model keeps every ticket ever issued and every permit id ever handed
//! out, replays the documented rules (fairness, service order, expiry during
//! the grant walk) and predicts each answer exactly. After every step it
//! checks: per-pool usage never grows past its limit, outstanding ==
//! acquired − released, and no ticket resolves twice. A failure names the
//! seed and step; `ADMISSION_SEED=<n>` reruns one seed.

extern crate std;

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;
use crate::time::Duration;

const C: usize = 16;
const Q: usize = 6;
type Adm = Admission<u8, C, Q>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum M {
    Waiting,
    Granted,
    Expired,
    Gone,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    model: u8,
    pool: Pool,
    priority: Priority,
    deadline: Instant,
    seq: u64,
    state: M,
}

struct Model {
    calls: BTreeMap<Ticket, Call>,
    live: Vec<Permit>,
    dead_ids: Vec<PermitId>,
    acquired: u64,
    released: u64,
    next_seq: u64,
    resolved: u64,
    /// Recently finished tickets (taken or cancelled), replayed as stale.
    gone: Vec<Ticket>,
    finished: u64,
}

impl Model {
    fn waiting(&self) -> impl Iterator<Item = (&Ticket, &Call)> {
        self.calls.iter().filter(|(_, c)| c.state == M::Waiting)
    }

    fn ahead(&self, pool: Pool, priority: Priority) -> u32 {
        self.waiting()
            .filter(|(_, c)| {
                c.pool == pool
                    && (priority == Priority::Background || c.priority == Priority::Interactive)
            })
            .count() as u32
    }

    /// Waiting calls in service order.
    fn order(&self) -> Vec<Ticket> {
        let mut v: Vec<(usize, u64, Ticket)> = self
            .waiting()
            .map(|(tk, c)| (c.priority.index(), c.seq, *tk))
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, tk)| tk).collect()
    }

    fn set(&mut self, tk: Ticket, state: M) {
        if state == M::Gone {
            // Forget finished calls but keep recent tickets to replay as stale.
            if self.calls.remove(&tk).is_some() {
                self.finished += 1;
                if self.gone.len() == 32 {
                    self.gone.remove(0);
                }
                self.gone.push(tk);
            }
        } else if let Some(c) = self.calls.get_mut(&tk) {
            c.state = state;
        }
    }

    fn occupied(&self) -> usize {
        self.calls.len()
    }
}

fn random_limits(rng: &mut fastrand::Rng) -> PoolLimits {
    let global = rng.u32(1..=C as u32);
    let mut l = PoolLimits::uniform(global);
    for p in Pool::ALL {
        l.set(p, rng.u32(0..=global));
    }
    l
}

/// How often the interesting outcomes happened, so a change to the operation
/// mix cannot silently stop exercising them.
#[derive(Default)]
struct Seen {
    granted: u32,
    taken_granted: u32,
    taken_expired: u32,
    cancelled_granted: u32,
    double_release: u32,
    queue_full: u32,
    busy: u32,
}

fn run(seed: u64, steps: usize, seen: &mut Seen) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut a = Adm::new(random_limits(&mut rng)).map_err(|e| format!("{e}"))?;
    let mut m = Model {
        calls: BTreeMap::new(),
        live: Vec::new(),
        dead_ids: Vec::new(),
        acquired: 0,
        released: 0,
        next_seq: 0,
        resolved: 0,
        gone: Vec::new(),
        finished: 0,
    };
    let mut now = Instant::from_millis(1_000);
    macro_rules! check {
        ($cond:expr, $($msg:tt)*) => {
            if !$cond {
                return Err(format!($($msg)*));
            }
        };
    }
    for step in 0..steps {
        let before: [u32; 4] = Pool::ALL.map(|p| a.in_use(p));
        let op = rng.u8(0..100);
        let what;
        match op {
            0..=14 => {
                what = "try_acquire";
                let pool = Pool::ALL[rng.usize(0..4)];
                let prio = Priority::ALL[rng.usize(0..2)];
                let ahead = m.ahead(pool, prio);
                let l = a.limits();
                let expect = if a.outstanding() + ahead >= l.global {
                    Err(Refusal::BusyGlobalPool)
                } else if a.in_use(pool) + ahead >= l.get(pool) {
                    Err(Refusal::BusyPool(pool))
                } else {
                    Ok(())
                };
                check!(
                    a.check(pool, prio) == expect,
                    "check disagrees at step {step}"
                );
                match a.try_acquire(pool, prio) {
                    Ok(p) => {
                        check!(
                            expect.is_ok(),
                            "acquire should be {expect:?} at step {step}"
                        );
                        m.acquired += 1;
                        m.live.push(p);
                    }
                    Err(r) => {
                        seen.busy += 1;
                        check!(
                            Err(r) == expect,
                            "got {r:?}, want {expect:?} at step {step}"
                        );
                    }
                }
            }
            15..=29 => {
                what = "release";
                if !m.live.is_empty() {
                    let p = m.live.swap_remove(rng.usize(0..m.live.len()));
                    let id = p.id();
                    if rng.bool() {
                        check!(a.release(p).is_ok(), "release failed at step {step}");
                    } else {
                        check!(
                            a.release_id(id) == Ok(p.pool()),
                            "release_id failed at step {step}"
                        );
                    }
                    m.released += 1;
                    m.dead_ids.push(id);
                }
            }
            30..=34 => {
                what = "double release";
                if !m.dead_ids.is_empty() {
                    seen.double_release += 1;
                    let id = m.dead_ids[rng.usize(0..m.dead_ids.len())];
                    check!(
                        a.release_id(id) == Err(ReleaseError::AlreadyReleased),
                        "double release of {id:?} not detected at step {step}"
                    );
                }
            }
            35..=49 => {
                what = "enqueue";
                let pool = Pool::ALL[rng.usize(0..4)];
                let prio = Priority::ALL[rng.usize(0..2)];
                let model = rng.u8(0..4);
                let wait = Duration::from_millis(rng.u64(0..50));
                let deadline = now + wait;
                let res = a.enqueue(model, pool, prio, now, deadline);
                if wait == Duration::ZERO {
                    check!(
                        res == Err(Refusal::QueueWaitExpired),
                        "zero wait at step {step}"
                    );
                } else if m.occupied() >= Q {
                    check!(
                        res == Err(Refusal::QueueFull),
                        "want QueueFull at step {step}"
                    );
                    seen.queue_full += 1;
                } else {
                    let Ok(tk) = res else {
                        return Err(format!("enqueue refused {res:?} at step {step}"));
                    };
                    check!(
                        !m.calls.contains_key(&tk) && !m.gone.contains(&tk),
                        "ticket {tk:?} reissued at step {step}"
                    );
                    m.calls.insert(
                        tk,
                        Call {
                            model,
                            pool,
                            priority: prio,
                            deadline,
                            seq: m.next_seq,
                            state: M::Waiting,
                        },
                    );
                    m.next_seq += 1;
                }
            }
            50..=64 => {
                what = "grant_next";
                let mask = rng.u8(0..16);
                let fits = |model: u8| mask & (1 << model) != 0;
                // Predict: replay the walk.
                let mut expect = None;
                if a.outstanding() < a.limits().global {
                    for tk in m.order() {
                        let c = m.calls[&tk];
                        if c.deadline <= now {
                            m.set(tk, M::Expired);
                        } else if before[c.pool.index()] < a.limits().get(c.pool) && fits(c.model) {
                            expect = Some(tk);
                            break;
                        }
                    }
                }
                let got = a.grant_next(now, |model, _| fits(*model));
                check!(
                    got == expect,
                    "granted {got:?}, want {expect:?} at step {step}"
                );
                if let Some(tk) = got {
                    seen.granted += 1;
                    m.set(tk, M::Granted);
                    m.acquired += 1;
                }
            }
            65..=79 => {
                what = "take";
                if let Some((tk, c)) = pick_ticket(&mut rng, &m) {
                    let state = c.map_or(M::Gone, |c| c.state);
                    let want_deadline = c.map_or(Instant::MAX, |c| c.deadline);
                    let got = a.take(tk, now);
                    match (state, got) {
                        (M::Waiting, TicketStatus::Waiting { deadline }) if want_deadline > now => {
                            check!(deadline == want_deadline, "wrong deadline at step {step}");
                        }
                        (M::Waiting, TicketStatus::Expired) if want_deadline <= now => {
                            seen.taken_expired += 1;
                            m.set(tk, M::Gone);
                            m.resolved += 1;
                        }
                        (M::Expired, TicketStatus::Expired) => {
                            seen.taken_expired += 1;
                            m.set(tk, M::Gone);
                            m.resolved += 1;
                        }
                        (M::Granted, TicketStatus::Granted(p)) => {
                            seen.taken_granted += 1;
                            check!(
                                Some(p.pool()) == c.map(|c| c.pool),
                                "wrong pool at step {step}"
                            );
                            m.set(tk, M::Gone);
                            m.resolved += 1;
                            m.live.push(p);
                        }
                        (M::Gone, TicketStatus::Unknown) => {}
                        (state, got) => {
                            return Err(format!(
                                "take({tk:?}) in model state {state:?} (deadline {want_deadline:?}, now {now:?}) gave {got:?} at step {step}"
                            ));
                        }
                    }
                }
            }
            80..=87 => {
                what = "cancel";
                if let Some((tk, c)) = pick_ticket(&mut rng, &m) {
                    let got = a.cancel(tk);
                    match (c.map_or(M::Gone, |c| c.state), got) {
                        (M::Granted, Some(p)) => {
                            seen.cancelled_granted += 1;
                            m.live.push(p);
                            m.resolved += 1;
                        }
                        (M::Waiting | M::Expired, None) => m.resolved += 1,
                        (M::Gone, None) => {}
                        (state, got) => {
                            return Err(format!("cancel in {state:?} gave {got:?} at step {step}"));
                        }
                    }
                    m.set(tk, M::Gone);
                }
            }
            88..=92 => {
                what = "expire";
                let want: Vec<Ticket> = m
                    .waiting()
                    .filter(|(_, c)| c.deadline <= now)
                    .map(|(tk, _)| *tk)
                    .collect();
                check!(a.expire(now) == want.len(), "expire count at step {step}");
                for tk in want {
                    m.set(tk, M::Expired);
                }
            }
            93..=95 => {
                what = "set_limits";
                let l = random_limits(&mut rng);
                check!(
                    a.set_limits(l).is_ok(),
                    "valid limits refused at step {step}"
                );
            }
            _ => {
                what = "advance";
                // Often not at all: time standing still must be fine.
                now = now + Duration::from_millis(rng.u64(0..3) * rng.u64(0..10));
            }
        }

        // Invariants after every step.
        let l = a.limits();
        for p in Pool::ALL {
            let u = a.in_use(p);
            check!(
                u <= before[p.index()] || u <= l.get(p),
                "{what}: {p} in use {u} grew past limit {} at step {step}",
                l.get(p)
            );
        }
        check!(
            u64::from(a.outstanding()) == m.acquired - m.released,
            "{what}: outstanding {} != acquired {} - released {} at step {step}",
            a.outstanding(),
            m.acquired,
            m.released
        );
        check!(
            Pool::ALL.iter().map(|&p| a.in_use(p)).sum::<u32>() == a.outstanding(),
            "{what}: pools do not sum to outstanding at step {step}"
        );
        let parked = m.calls.values().filter(|c| c.state == M::Granted).count();
        check!(
            m.calls.len() <= Q,
            "{what}: model holds more live calls than Q at step {step}"
        );
        check!(
            a.outstanding() as usize == m.live.len() + parked,
            "{what}: outstanding is not live + parked at step {step}"
        );
        check!(
            a.waiting() == m.waiting().count(),
            "{what}: waiting at step {step}"
        );
        check!(a.queued() == m.occupied(), "{what}: queued at step {step}");
        let order: Vec<Ticket> = a.iter_waiting().map(|(tk, _)| tk).collect();
        check!(order == m.order(), "{what}: service order at step {step}");
        for prio in Priority::ALL {
            let n = m.waiting().filter(|(_, c)| c.priority == prio).count();
            check!(
                a.len_by_priority(prio) == n,
                "{what}: len_by_priority at step {step}"
            );
        }
        let nd = m.waiting().map(|(_, c)| c.deadline).min();
        check!(
            a.next_deadline() == nd,
            "{what}: next_deadline at step {step}"
        );
        check!(
            m.finished == m.resolved,
            "{what}: a ticket resolved twice at step {step}"
        );
    }
    // Drain: everything releases cleanly and counters return to zero.
    for tk in m.calls.keys().copied().collect::<Vec<_>>() {
        if let Some(p) = a.cancel(tk) {
            m.live.push(p);
        }
    }
    for p in m.live.drain(..) {
        check!(a.release(p).is_ok(), "drain release failed");
    }
    check!(
        a.outstanding() == 0 && a.queued() == 0,
        "not drained: {a:?}"
    );
    Ok(())
}

/// Usually a live ticket, sometimes a recently finished (stale) one.
fn pick_ticket(rng: &mut fastrand::Rng, m: &Model) -> Option<(Ticket, Option<Call>)> {
    if !m.calls.is_empty() && (m.gone.is_empty() || rng.u8(0..4) != 0) {
        let (tk, c) = m.calls.iter().nth(rng.usize(0..m.calls.len()))?;
        return Some((*tk, Some(*c)));
    }
    let tk = *m.gone.get(rng.usize(0..m.gone.len().max(1)))?;
    Some((tk, None))
}

#[test]
fn random_operations_keep_every_invariant() {
    let seeds: Vec<u64> = match std::env::var("ADMISSION_SEED") {
        Ok(s) => std::vec![s.parse().expect("ADMISSION_SEED must be a u64")],
        Err(_) => (0..40).collect(),
    };
    let mut seen = Seen::default();
    let many = seeds.len() > 1;
    for seed in seeds {
        if let Err(e) = run(seed, 5_000, &mut seen) {
            panic!("seed {seed}: {e}");
        }
    }
    if many {
        for (name, n) in [
            ("granted", seen.granted),
            ("taken granted", seen.taken_granted),
            ("taken expired", seen.taken_expired),
            ("cancelled after grant", seen.cancelled_granted),
            ("double release", seen.double_release),
            ("queue full", seen.queue_full),
            ("busy", seen.busy),
        ] {
            assert!(
                n >= 50,
                "the operation mix rarely reaches {name:?} ({n} times)"
            );
        }
    }
}
