//! drover-benches: the harness shared by the `routed_call` criterion bench,
//! the zero-allocation test and the size report.
//!
//! It builds a router of `n` identical streaming nodes (each with its own
//! time to first byte, so the load scores differ), warms every node's
//! peak-EWMA, and drives one routed call the way a transport would:
//! `start`, `poll` (admit, route, `Send`), `handle(FirstByte)`,
//! `handle(Completed)`, `poll` (`Finish`). Time is virtual: the caller passes
//! `now` and the harness derives the event times from it, so runs are
//! deterministic.
//!
//! [`report`] reads criterion's estimates back to print the drover/tower
//! ratios of one run.

use drover_core::call::{Action, Event, Handled, Outcome, Request};
use drover_core::config::RouterConfig;
use drover_core::node::{NodeError, NodeId, NodeKind, NodeSpec};
use drover_core::route::{Op, Query};
use drover_core::router::Router;
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant};

pub mod gateway;
pub mod report;

/// Virtual time between two consecutive routed calls.
pub const STEP: Duration = Duration::from_millis(5);

/// Time from first byte to completion of every simulated attempt.
pub const GENERATION: Duration = Duration::from_millis(1);

/// The simulated time to first byte of `node`: 2 ms plus 0.1 ms per
/// `node % 8`, so neighbouring nodes differ and P2C has something to choose.
/// Always below `STEP - GENERATION`, so one call ends before the next starts.
pub fn ttft(node: NodeId) -> Duration {
    Duration::from_micros(2_000 + 100 * u64::from(node.0 % 8))
}

/// The query every benchmarked call makes: an unconstrained streamed chat.
pub const QUERY: Query = Query::new(Op::Stream);

/// Why setting a harness router up failed.
#[derive(Debug)]
pub enum SetupError {
    /// The router refused the configuration.
    Config(drover_core::config::ConfigError),
    /// A node was refused (name, capacity).
    Node(NodeError),
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetupError::Config(e) => write!(f, "router config refused: {e}"),
            SetupError::Node(e) => write!(f, "node refused: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// A boxed router with `nodes` nodes named `node-0000`, `node-0001`, …,
/// each allowing `max_concurrency` attempts. Boxed because a router with a
/// thousand nodes is close to a megabyte.
pub fn router<const N: usize, const C: usize, const Q: usize>(
    nodes: usize,
    cfg: RouterConfig,
    max_concurrency: u16,
    seed: u64,
) -> Result<Box<Router<N, C, Q>>, SetupError> {
    let mut r = Box::new(Router::new(cfg, seed).map_err(SetupError::Config)?);
    for i in 0..nodes {
        let mut spec =
            NodeSpec::new(&format!("node-{i:04}"), NodeKind::Ollama).map_err(SetupError::Node)?;
        spec.max_concurrency = max_concurrency;
        r.add_node(spec).map_err(SetupError::Node)?;
    }
    Ok(r)
}

/// A call that did not take the expected path, with the action or event
/// result that showed it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unexpected {
    /// `poll` returned something else than the step expected.
    Action(Action),
    /// `handle` reported the event as stale.
    Stale(Event),
}

impl core::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unexpected::Action(a) => write!(f, "unexpected action {a:?}"),
            Unexpected::Stale(e) => write!(f, "event {e:?} reported stale"),
        }
    }
}

impl std::error::Error for Unexpected {}

/// One successful routed call started at `now`: `start`, `poll` → `Send`,
/// `FirstByte` at `now + ttft(node)`, `Completed` [`GENERATION`] later, and
/// `poll` → `Finish(Succeeded)`. Returns the node that served it.
///
/// Allocates nothing. Every event happens before `now + STEP`.
pub fn routed_call<const N: usize, const C: usize, const Q: usize>(
    router: &mut Router<N, C, Q>,
    req: Request,
    now: Instant,
) -> Result<NodeId, Unexpected> {
    let mut call = router.start(req, now);
    let (attempt, node) = match router.poll(&mut call, now) {
        Action::Send { attempt, node, .. } => (attempt, node),
        other => return Err(Unexpected::Action(other)),
    };
    let first_byte = now + ttft(node);
    let event = Event::FirstByte(attempt);
    if router.handle(&mut call, event, first_byte) != Handled::Applied {
        return Err(Unexpected::Stale(event));
    }
    let event = Event::Completed(attempt);
    if router.handle(&mut call, event, first_byte + GENERATION) != Handled::Applied {
        return Err(Unexpected::Stale(event));
    }
    match router.poll(&mut call, first_byte + GENERATION) {
        Action::Finish(Outcome::Succeeded { node: n, .. }) if n == node => Ok(node),
        other => Err(Unexpected::Action(other)),
    }
}

/// Warms a router built by [`router`] with `nodes` nodes: `per_node` calls
/// pinned to each node (so every node has TTFT samples), then `nodes`
/// unpinned calls. Calls start at `now`, one [`STEP`] apart; returns the
/// time after the last one. `trace` numbers the calls and is advanced.
pub fn warm<const N: usize, const C: usize, const Q: usize>(
    router: &mut Router<N, C, Q>,
    nodes: usize,
    per_node: usize,
    mut now: Instant,
    trace: &mut u64,
) -> Result<Instant, Unexpected> {
    for round in 0..per_node + 1 {
        for i in 0..nodes {
            let mut query = QUERY;
            if round < per_node {
                query.pin = Some(NodeId(i as u16));
            }
            *trace += 1;
            routed_call(router, Request::new(TraceId(*trace), query), now)?;
            now = now + STEP;
        }
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_gives_every_node_samples_and_calls_succeed() {
        let mut r = router::<8, 64, 16>(8, RouterConfig::default(), 64, 1).unwrap();
        let mut trace = 0;
        let now = warm(&mut *r, 8, 2, Instant::ZERO, &mut trace).unwrap();
        assert_eq!(trace, 8 * 3);
        assert_eq!(now, Instant::ZERO + STEP.saturating_mul(24));
        for (_, n) in r.nodes().iter() {
            assert!(n.ttft.samples() >= 2, "{:?}", n.spec.name);
            assert_eq!(n.in_flight, 0);
        }
        assert_eq!(r.active_calls(), 0);
        assert_eq!(r.permits_outstanding(), 0);
        let stream = &r.metrics().ops[Op::Stream.index()];
        assert_eq!(stream.succeeded, 24);
    }

    #[test]
    fn a_full_router_is_reported_not_hidden() {
        // One node with one slot, held by a call that never ends: the next
        // call queues instead of sending, and routed_call says so.
        let mut r = router::<8, 64, 16>(1, RouterConfig::default(), 1, 1).unwrap();
        let mut held = r.start(Request::new(TraceId(1), QUERY), Instant::ZERO);
        assert!(matches!(
            r.poll(&mut held, Instant::ZERO),
            Action::Send { .. }
        ));
        let err = routed_call::<8, 64, 16>(&mut r, Request::new(TraceId(2), QUERY), Instant::ZERO)
            .unwrap_err();
        assert!(
            matches!(err, Unexpected::Action(Action::Wait { .. })),
            "{err}"
        );
    }

    #[test]
    fn setup_errors_are_named() {
        let cfg = RouterConfig {
            max_attempts: 0,
            ..RouterConfig::default()
        };
        let Err(err) = router::<8, 64, 16>(1, cfg, 1, 1) else {
            panic!("max_attempts 0 must be refused");
        };
        assert!(err.to_string().contains("max_attempts"), "{err}");
        let Err(err) = router::<8, 64, 16>(9, RouterConfig::default(), 1, 1) else {
            panic!("a ninth node must not fit");
        };
        assert!(matches!(err, SetupError::Node(NodeError::TableFull)));
    }
}
