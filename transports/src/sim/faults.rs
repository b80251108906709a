//! Faults: what goes wrong with a simulated node, and when. See [`Fault`].

use std::fmt;

use drover_core::{Duration, Instant};
use fastrand::Rng;

use super::node::{OverloadModel, secs};
use super::seed;

/// Most down/up cycles one flap window may expand to.
pub const MAX_FLAP_CYCLES: u64 = 100_000;

/// What a crashed node does with new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Refused at once (the process is gone; the host answers RST).
    Refuse,
    /// Accepted and never answered (a hung process, a black-holed host):
    /// the attempt ends only at the router's timeout.
    Hang,
}

/// What goes wrong. See [`Fault`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultKind {
    /// Down for the window.
    Crash(CrashMode),
    /// No heartbeats for the window; serving continues.
    StaleHeartbeat,
    /// Service times multiplied by `factor` (> 0; above 1 is slower).
    Slow {
        /// The multiplier.
        factor: f64,
    },
    /// 429 once `queue_limit` requests wait.
    Overload {
        /// Waiting requests that trigger a 429.
        queue_limit: u32,
        /// The Retry-After sent with it.
        retry_after: Option<Duration>,
    },
    /// Each reply fails validation with probability `rate` in `[0, 1]`.
    Corrupt {
        /// The probability.
        rate: f64,
    },
    /// Alternately down (refusing) for `down` and up for `up`.
    Flap {
        /// Length of each down phase (> 0).
        down: Duration,
        /// Length of each up phase (> 0).
        up: Duration,
    },
}

impl FaultKind {
    /// A stable label (`crash`, `hang`, `stale_heartbeat`, `slow`,
    /// `overload`, `corrupt`, `flap`).
    pub fn label(&self) -> &'static str {
        match self {
            FaultKind::Crash(CrashMode::Refuse) => "crash",
            FaultKind::Crash(CrashMode::Hang) => "hang",
            FaultKind::StaleHeartbeat => "stale_heartbeat",
            FaultKind::Slow { .. } => "slow",
            FaultKind::Overload { .. } => "overload",
            FaultKind::Corrupt { .. } => "corrupt",
            FaultKind::Flap { .. } => "flap",
        }
    }
}

/// One fault window `[at, until)` on one node (`until: None` lasts to the
/// end of the run) of one [`FaultKind`]:
///
/// - **crash** ([`FaultKind::Crash`]): the node goes down. Everything it
///   holds is dropped (a stream that had started breaks; the rest see their
///   connection reset), its prefix cache is lost, and it sends no
///   heartbeats. New connections are refused ([`CrashMode::Refuse`]) or
///   accepted and never answered ([`CrashMode::Hang`]: the router's timeouts
///   must notice). It comes back empty at `until`;
/// - **stale heartbeat**: heartbeats stop, while the node keeps serving.
///   (For a node that stops both, add a crash over the same window);
/// - **slow**: service times are multiplied by `factor` for requests that
///   get a slot during the window (requests already being served keep
///   their schedule);
/// - **overload**: the node answers 429 with `retry_after` once
///   `queue_limit` requests wait in its queue;
/// - **corrupt**: each reply is corrupted with probability `rate` and fails
///   the gateway's validation (a digest mismatch, malformed JSON): chat and
///   embeddings when the reply arrives, streams at their first chunk, both
///   before anything reaches the client. The driver reports
///   [`Failure::InvalidReply`](drover_core::reason::Failure::InvalidReply);
/// - **flap**: down for `down`, up for `up`, again and again until `until`.
///
/// Windows may overlap: a node is down while any crash or flap window holds
/// it down, stale while any stale window is open; slow factors multiply,
/// corruption rates add (capped at 1), and the queue bound of the overload
/// window that started last applies while any is open.
///
/// Faults are given explicitly, or drawn ([`draw_faults`]) from rates per
/// hour as a Poisson process per node and rate (exponential gaps, by
/// inversion), each from its own seeded stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// The node's index in the list the driver was given.
    pub node: usize,
    /// When it starts.
    pub at: Instant,
    /// When it ends; `None`: never (not allowed for a flap).
    pub until: Option<Instant>,
    /// What goes wrong.
    pub kind: FaultKind,
}

impl Fault {
    /// `kind` on `node` from `at` on, with no end.
    pub fn new(node: usize, kind: FaultKind, at: Instant) -> Self {
        Fault {
            node,
            at,
            until: None,
            kind,
        }
    }
    /// The same fault, ending at `until`.
    pub fn until(mut self, until: Instant) -> Self {
        self.until = Some(until);
        self
    }

    /// Checks the fault against a swarm of `nodes` nodes.
    pub fn validate(&self, nodes: usize) -> Result<(), &'static str> {
        if self.node >= nodes {
            return Err("node index is out of range");
        }
        if self.until.is_some_and(|u| u <= self.at) {
            return Err("a fault window must end after it starts");
        }
        match self.kind {
            FaultKind::Slow { factor } if !(factor.is_finite() && factor > 0.0) => {
                Err("slow factor must be a finite number above 0")
            }
            FaultKind::Corrupt { rate } if !(0.0..=1.0).contains(&rate) => {
                Err("corrupt rate must be in [0, 1]")
            }
            FaultKind::Flap { down, up } => {
                let Some(until) = self.until else {
                    return Err("a flap must end");
                };
                if down == Duration::ZERO || up == Duration::ZERO {
                    return Err("flap phases must be longer than zero");
                }
                let cycle = down.as_nanos().saturating_add(up.as_nanos());
                if (until - self.at).as_nanos() / cycle > MAX_FLAP_CYCLES {
                    return Err("a flap may have at most 100,000 cycles");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Why a fault was refused: its index in the list, and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFault {
    /// Index of the fault in the list given.
    pub fault: usize,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for BadFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault #{}: {}", self.fault, self.problem)
    }
}

impl std::error::Error for BadFault {}

/// One change to a node's state, at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Change {
    Down(CrashMode),
    Up,
    StaleOn,
    StaleOff,
    SlowOn(f64),
    SlowOff(f64),
    OverloadOn(OverloadModel),
    OverloadOff,
    CorruptOn(f64),
    CorruptOff(f64),
}

/// The faults as a timeline of changes, in time order (ties keep the order
/// of the list: a fault's start before its end, earlier faults first).
pub(crate) fn timeline(
    faults: &[Fault],
    nodes: usize,
) -> Result<Vec<(Instant, usize, Change)>, BadFault> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        f.validate(nodes)
            .map_err(|problem| BadFault { fault: i, problem })?;
        let n = f.node;
        let (on, off) = match f.kind {
            FaultKind::Crash(mode) => (Change::Down(mode), Change::Up),
            FaultKind::StaleHeartbeat => (Change::StaleOn, Change::StaleOff),
            FaultKind::Slow { factor } => (Change::SlowOn(factor), Change::SlowOff(factor)),
            FaultKind::Overload {
                queue_limit,
                retry_after,
            } => (
                Change::OverloadOn(OverloadModel {
                    queue_limit,
                    retry_after,
                }),
                Change::OverloadOff,
            ),
            FaultKind::Corrupt { rate } => (Change::CorruptOn(rate), Change::CorruptOff(rate)),
            FaultKind::Flap { down, up } => {
                // Validated: a flap has an end and non-zero phases.
                let until = f.until.unwrap_or(f.at);
                let mut t = f.at;
                while t < until {
                    out.push((t, n, Change::Down(CrashMode::Refuse)));
                    let back = (t + down).min(until);
                    out.push((back, n, Change::Up));
                    t = back + up;
                }
                continue;
            }
        };
        out.push((f.at, n, on));
        if let Some(u) = f.until {
            out.push((u, n, off));
        }
    }
    out.sort_by_key(|&(t, _, _)| t);
    Ok(out)
}

/// Faults of one kind arriving at a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRate {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Mean windows per node per hour (≥ 0).
    pub per_hour: f64,
    /// How long each window lasts (> 0).
    pub lasting: Duration,
}

/// Draws fault windows starting in `[from, until)` for each of `nodes`
/// nodes and each rate: a Poisson process of `per_hour` per node, each
/// window lasting `lasting`. Node `n` and rate `r` use stream
/// `seed::FAULTS + 64 × n + r`, so adding a rate or a node leaves the other
/// draws unchanged. Sorted by start time.
pub fn draw_faults(
    rates: &[FaultRate],
    nodes: usize,
    from: Instant,
    until: Instant,
    seed: u64,
) -> Result<Vec<Fault>, BadFault> {
    let mut out = Vec::new();
    for (r, rate) in rates.iter().enumerate() {
        let bad = |problem| BadFault { fault: r, problem };
        if !(rate.per_hour.is_finite() && rate.per_hour >= 0.0) {
            return Err(bad("per_hour must be a finite number, at least 0"));
        }
        if rate.lasting == Duration::ZERO {
            return Err(bad("lasting must be longer than zero"));
        }
        if rate.per_hour == 0.0 {
            continue;
        }
        let per_sec = rate.per_hour / 3600.0;
        for node in 0..nodes {
            let stream = seed::FAULTS + 64 * node as u64 + r as u64;
            let mut rng = Rng::with_seed(seed::derive(seed, stream));
            let mut at = from;
            loop {
                // 1 − U is in (0, 1], so the logarithm is finite.
                at = at + secs(-(1.0 - rng.f64()).ln() / per_sec);
                if at >= until {
                    break;
                }
                let f = Fault::new(node, rate.kind, at).until(at + rate.lasting);
                f.validate(nodes).map_err(bad)?;
                out.push(f);
            }
        }
    }
    out.sort_by_key(|f| (f.at, f.node));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Instant {
        Instant::from_secs(x)
    }

    #[test]
    fn validation_names_the_problem() {
        let crash = FaultKind::Crash(CrashMode::Refuse);
        assert!(Fault::new(0, crash, s(1)).validate(1).is_ok());
        assert!(Fault::new(0, crash, s(1)).until(s(2)).validate(1).is_ok());
        let cases = [
            (Fault::new(1, crash, s(1)), "node index"),
            (Fault::new(0, crash, s(2)).until(s(2)), "a fault window"),
            (
                Fault::new(0, FaultKind::Slow { factor: 0.0 }, s(1)),
                "slow factor",
            ),
            (
                Fault::new(0, FaultKind::Corrupt { rate: 1.5 }, s(1)),
                "corrupt rate",
            ),
            (
                Fault::new(
                    0,
                    FaultKind::Flap {
                        down: Duration::from_secs(1),
                        up: Duration::from_secs(1),
                    },
                    s(1),
                ),
                "a flap must end",
            ),
            (
                Fault::new(
                    0,
                    FaultKind::Flap {
                        down: Duration::ZERO,
                        up: Duration::from_secs(1),
                    },
                    s(1),
                )
                .until(s(9)),
                "flap phases",
            ),
            (
                Fault::new(
                    0,
                    FaultKind::Flap {
                        down: Duration::from_nanos(1),
                        up: Duration::from_nanos(1),
                    },
                    s(0),
                )
                .until(s(1)),
                "a flap may have",
            ),
        ];
        for (f, want) in cases {
            let e = f.validate(1).unwrap_err();
            assert!(e.starts_with(want), "{want}: {e}");
        }
        let e = timeline(&[Fault::new(0, crash, s(1)), Fault::new(3, crash, s(1))], 2);
        assert_eq!(
            e.unwrap_err().to_string(),
            "fault #1: node index is out of range"
        );
    }

    #[test]
    fn timeline_is_sorted_and_flaps_expand_within_their_window() {
        let faults = [
            Fault::new(1, FaultKind::Slow { factor: 3.0 }, s(50)).until(s(60)),
            Fault::new(
                0,
                FaultKind::Flap {
                    down: Duration::from_secs(2),
                    up: Duration::from_secs(3),
                },
                s(10),
            )
            .until(s(21)),
            Fault::new(1, FaultKind::StaleHeartbeat, s(5)),
        ];
        let t = timeline(&faults, 2).unwrap();
        let want = [
            (s(5), 1, Change::StaleOn),
            (s(10), 0, Change::Down(CrashMode::Refuse)),
            (s(12), 0, Change::Up),
            (s(15), 0, Change::Down(CrashMode::Refuse)),
            (s(17), 0, Change::Up),
            // The last down phase is cut at the window's end.
            (s(20), 0, Change::Down(CrashMode::Refuse)),
            (s(21), 0, Change::Up),
            (s(50), 1, Change::SlowOn(3.0)),
            (s(60), 1, Change::SlowOff(3.0)),
        ];
        assert_eq!(t, want);
    }

    #[test]
    fn drawn_faults_are_seeded_within_the_horizon_and_near_the_rate() {
        let rates = [
            FaultRate {
                kind: FaultKind::Crash(CrashMode::Refuse),
                per_hour: 6.0,
                lasting: Duration::from_secs(30),
            },
            FaultRate {
                kind: FaultKind::Corrupt { rate: 0.5 },
                per_hour: 0.0,
                lasting: Duration::from_secs(30),
            },
        ];
        let (from, until) = (s(0), s(100 * 3600));
        let a = draw_faults(&rates, 3, from, until, 1).unwrap();
        assert_eq!(a, draw_faults(&rates, 3, from, until, 1).unwrap());
        assert_ne!(a, draw_faults(&rates, 3, from, until, 2).unwrap());
        // 6 per hour × 100 h × 3 nodes = 1,800 expected.
        assert!((1_600..2_000).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        for f in &a {
            assert!(f.at >= from && f.at < until && f.node < 3);
            assert_eq!(f.until, Some(f.at + Duration::from_secs(30)));
            assert_eq!(f.kind.label(), "crash");
        }
        // Node 0's draws do not depend on how many nodes follow it.
        let one = draw_faults(&rates, 1, from, until, 1).unwrap();
        let node0: Vec<_> = a.iter().filter(|f| f.node == 0).copied().collect();
        assert_eq!(one, node0);
        let bad = FaultRate {
            per_hour: -1.0,
            ..rates[0]
        };
        assert!(draw_faults(&[bad], 1, from, until, 1).is_err());
        let bad = FaultRate {
            lasting: Duration::ZERO,
            ..rates[0]
        };
        assert!(draw_faults(&[bad], 1, from, until, 1).is_err());
    }
}
