//! The [`Driver`]: drover-core's routers (one per gateway), simulated nodes,
//! faults and a workload on one virtual [`Clock`], run by the sans-IO loop.
//!
//! The loop takes the earliest of the next scheduled event and the next
//! arrival (an event first when both are due at the same instant, so an
//! arrival sees the state of that instant), then:
//!
//! 1. applies it: a call arrives at its gateway ([`Router::start`]); a node
//!    produces a first byte, a completion, an invalid reply or an error (fed
//!    in with [`Router::handle`]); a poll timer fires; a client gives up; a
//!    fault changes a node; a node sends a heartbeat, which reaches each
//!    gateway's router after that gateway's delay
//!    ([`Router::handle_heartbeat`]);
//! 2. drives the call it concerns: [`Router::poll`] until `Wait` or
//!    `Finish`, executing each `Send` (checked first, see
//!    [`check`](super::check)) and each `Cancel`, and keeping one poll timer
//!    per call at `Wait { until }`;
//! 3. drives every call the touched router's [`Router::poll_wakeup`] names,
//!    and keeps that router's timer at [`Router::poll_timeout`].
//!
//! # Costs
//!
//! Per call, O(log e) per event for the clock's heap (`e` events pending,
//! one or two per call in flight) plus the router's own work; arrivals are
//! taken from a sorted list, not the heap. Nothing allocates per call once
//! the record vectors have grown: live [`Call`]s sit in a slab reused as
//! calls finish and are polled in place, a call's attempts are a linked
//! list through the attempt records, a poll timer enters the heap only when
//! no attempt of the call will report first (see
//! [`World::arm_poll`](super::world::World)), and timers left behind by
//! finished calls are purged when they outnumber the live events.
//!
//! Nothing reads a wall clock or the OS's randomness: routers, nodes, fault
//! draws and the workload draw from streams of one seed
//! ([`seed::derive`](super::seed::derive())).

use std::collections::VecDeque;
use std::fmt;

use drover_core::call::{Action, Call, Event, Handled, Outcome, Request};
use drover_core::config::RouterConfig;
use drover_core::node::{NodeId, NodeKind, NodeSpec};
use drover_core::reason::Failure;
use drover_core::route::{Query, prefix_key};
use drover_core::router::Router;
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant};

use super::check::{Violation, ViolationKind};
use super::clock::Clock;
use super::faults::{self, Change};
use super::node::SimNode;
use super::record::{AttemptEnd, JobState};
use super::report::Report;
use super::seed;
use super::series::TimeSeries;
use super::setup::{NEVER, SimError, SimSetup};
use super::state::{JobId, NodeState};
use super::workload::Arrival;
use super::workload::{Blocks, Calls, Workload};
use super::world::World;

/// Most simulated nodes in one run.
pub const MAX_NODES: usize = 64;

/// The router each simulated gateway runs: 64 nodes, 4,096 permits, 1,024
/// queued calls.
pub type SimRouter = Router<MAX_NODES, 4096, 1024>;

/// Actions one drive of a call may execute before it must wait or finish.
/// The core emits at most a handful; hitting this means a bug, and the call
/// is left unfinished (and reported lost).
const MAX_ACTIONS_PER_DRIVE: usize = 64;
/// Granted calls driven after one event; any left over are driven after the next.
const WAKEUPS_PER_EVENT: usize = 4096;
/// Event budget: fixed part, and per call of the workload.
const BUDGET_BASE: u64 = 10_000;
const BUDGET_PER_CALL: u64 = 512;
/// Dead poll timers tolerated in the heap before a purge.
const PURGE_AT: usize = 4096;

/// Everything that can happen, in virtual time. Indexes are `u32`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ev {
    /// Poll call `c` (a `Wait { until }` came due).
    Poll(u32),
    /// The client of call `c` gives up.
    ClientCancel(u32),
    /// Gateway `g`'s router timer ([`Router::poll_timeout`]).
    Timer(u16),
    /// A job's first byte.
    FirstByte(JobId),
    /// A job's complete, valid answer.
    Completed(JobId),
    /// A job's reply fails validation.
    Invalid(JobId),
    /// A job's failure reply (refused, 5xx, reset by a crash).
    Fail(JobId, Failure),
    /// A job's 429 reply, with its Retry-After in nanoseconds
    /// (`u64::MAX`: none), so that an event is 16 bytes.
    Overloaded(JobId, u64),
    /// Fault timeline entry `i` takes effect.
    Change(u32),
    /// Node `n` sends a heartbeat.
    Beat(u16),
    /// Heartbeat `i` (in [`World::beats`]) reaches gateway `g`.
    Deliver(u32, u16),
    /// Probe `i` (in [`World::probes`]) gets its answer.
    ProbeDone(u32),
}

/// One gateway: its router, its timer and its heartbeat delay.
pub(crate) struct Gateway {
    pub(crate) router: Box<SimRouter>,
    timer_at: Option<Instant>,
    delay: Duration,
}

/// A simulation: gateways, simulated nodes, faults and calls on one clock.
/// See the [`sim` module docs](crate::sim).
pub struct Driver {
    pub(crate) gateways: Vec<Gateway>,
    /// Live calls, polled in place; `None` slots are on `free`.
    live: Vec<Option<Call>>,
    free: Vec<u32>,
    pub(crate) w: World,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("now", &self.w.now())
            .field("gateways", &self.gateways.len())
            .field("nodes", &self.w.nodes.len())
            .field("calls", &self.w.calls.len())
            .field("events", &self.w.events)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A simulation of `nodes` (in order: the router's ids follow it) behind
    /// one gateway under `cfg`, without scheduled faults. `seed` drives the
    /// router and every node. See [`SimSetup`] for more.
    pub fn new(cfg: RouterConfig, nodes: Vec<SimNode>, seed: u64) -> Result<Self, SimError> {
        SimSetup::new(cfg, nodes, seed).build()
    }

    pub(crate) fn build(setup: SimSetup) -> Result<Self, SimError> {
        let mut faults: Vec<_> = setup.crash_windows().collect();
        faults.extend_from_slice(&setup.faults);
        let timeline = faults::timeline(&faults, setup.nodes.len()).map_err(SimError::Fault)?;
        let mut gateways = Vec::with_capacity(setup.gateways);
        for g in 0..setup.gateways {
            let stream = if g == 0 {
                seed::ROUTER
            } else {
                seed::GATEWAYS + g as u64
            };
            // 340 KB: matched rather than `map_err`ed so it is not copied twice more.
            let router = match SimRouter::new(setup.router, seed::derive(setup.seed, stream)) {
                Ok(r) => Box::new(r),
                Err(e) => return Err(SimError::Config(e)),
            };
            gateways.push(Gateway {
                router,
                timer_at: None,
                delay: setup.delay(g),
            });
        }
        let names = setup.nodes.iter().map(|n| n.name.clone()).collect();
        let mut w = World {
            seed: setup.seed,
            clock: Clock::new(),
            nodes: Vec::with_capacity(setup.nodes.len()),
            by_id: Vec::new(),
            changes: Vec::with_capacity(timeline.len()),
            assign: setup.assign,
            assign_salt: seed::derive(setup.seed, seed::ASSIGN),
            arrivals: Workload::new(),
            blocks_dropped: 0,
            calls: Vec::new(),
            pending: VecDeque::new(),
            jobs: Vec::new(),
            series: TimeSeries::new(setup.bucket, names),
            beat_armed: vec![false; setup.nodes.len()],
            beats: Vec::new(),
            finished: 0,
            dead_timers: 0,
            events: 0,
            budget: BUDGET_BASE + timeline.len() as u64,
            stalled: false,
            probes: Vec::new(),
            probe_rng: fastrand::Rng::with_seed(seed::derive(setup.seed, seed::PROBES)),
            violation: None,
            #[cfg(test)]
            accept_invalid: false,
        };
        for (i, sim) in setup.nodes.into_iter().enumerate() {
            let refused = |error| SimError::Router {
                node: sim.name.clone(),
                error,
            };
            let mut spec = NodeSpec::new(&sim.name, NodeKind::OpenAiCompat).map_err(refused)?;
            spec.weight = sim.weight;
            spec.max_concurrency = sim.max_concurrency;
            spec.capabilities = sim.capabilities;
            let mut id = NodeId(0);
            for g in &mut gateways {
                // Every router gets the same nodes in the same order, so the same ids.
                id = g.router.add_node(spec.clone()).map_err(refused)?;
            }
            let slot = usize::from(id.0);
            if w.by_id.len() <= slot {
                w.by_id.resize(slot + 1, None);
            }
            w.by_id[slot] = Some(i as u16);
            let node_seed = seed::derive(setup.seed, seed::NODES + i as u64);
            let reply_seed = seed::derive(setup.seed, seed::REPLIES + i as u64);
            w.nodes.push(NodeState::new(sim, id, node_seed, reply_seed));
        }
        for (i, (at, node, change)) in timeline.into_iter().enumerate() {
            w.changes.push((node, change));
            w.clock.schedule(at, Ev::Change(i as u32));
        }
        Ok(Driver {
            gateways,
            live: Vec::new(),
            free: Vec::new(),
            w,
        })
    }

    /// Gateway 0's router, for its metrics, node table and trace.
    pub fn router(&self) -> &SimRouter {
        &self.gateways[0].router
    }
    /// Gateway `g`'s router, if there is such a gateway.
    pub fn gateway_router(&self, g: usize) -> Option<&SimRouter> {
        self.gateways.get(g).map(|g| &*g.router)
    }
    /// Gateway `g`'s router, to change modes or configuration between runs.
    pub fn gateway_router_mut(&mut self, g: usize) -> Option<&mut SimRouter> {
        self.gateways.get_mut(g).map(|g| &mut *g.router)
    }
    /// Number of gateways.
    pub fn gateway_count(&self) -> usize {
        self.gateways.len()
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.w.seed
    }
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.w.now()
    }
    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.w.events
    }
    /// The routers' id of the simulated node called `name`.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.w
            .nodes
            .iter()
            .find(|n| n.spec.name == name)
            .map(|n| n.id)
    }
    /// The index (in the list given) of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.w.nodes.iter().position(|n| n.spec.name == name)
    }
    /// Each call of the workload so far, with its outcome and when it came.
    pub fn outcomes(&self) -> impl Iterator<Item = (&Arrival, Option<(Instant, Outcome)>)> {
        self.w
            .arrivals
            .arrivals()
            .iter()
            .zip(&self.w.calls)
            .map(|(a, c)| (a, c.outcome.map(|o| (c.end, o))))
    }
    /// Attempts still queued, served, hung or awaiting a reply on some node
    /// (0 after a clean run: the router cancels what it no longer needs).
    pub fn open_attempts(&self) -> usize {
        self.w.open_attempts()
    }
    /// Calls whose prompt block hashes were dropped because the run's block
    /// arena was full (2^32 hashes); 0 in any run that fits in memory.
    pub fn blocks_dropped(&self) -> u64 {
        self.w.blocks_dropped
    }

    /// Schedules `workload`, runs until nothing is left to happen, and
    /// reports. Arrivals in the past (after an earlier run) are sent now.
    ///
    /// # Panics
    ///
    /// On a violated invariant (see [`check`](super::check)), with the seed
    /// and the call in the message. [`try_run`](Driver::try_run) returns it
    /// instead.
    pub fn run<'a>(&mut self, workload: impl Into<Calls<'a>>) -> Report {
        match self.try_run(workload) {
            Ok(r) => r,
            Err(v) => panic!("{v}"),
        }
    }

    /// [`run`](Driver::run), returning a violated invariant as an error.
    pub fn try_run<'a>(&mut self, workload: impl Into<Calls<'a>>) -> Result<Report, Violation> {
        self.load(workload);
        self.run_until_idle()?;
        Ok(self.report())
    }

    /// Adds the calls of `workload` (each arrives at its `at`, or now if
    /// that has passed) and starts the nodes' heartbeats. Heartbeats run
    /// while some call has not finished; they stop when the driver goes
    /// idle, and the next `load` restarts them at once.
    ///
    /// A [`Workload`] keeps its calls' block hashes (prefix affinity and the
    /// nodes' prefix caches see them); a plain slice of arrivals has none.
    pub fn load<'a>(&mut self, workload: impl Into<Calls<'a>>) {
        self.load_workload(Workload::from_calls(workload.into()));
    }

    /// [`load`](Driver::load), taking plain arrivals without copying them.
    pub fn load_owned(&mut self, workload: Vec<Arrival>) {
        self.load_workload(Workload::from(workload));
    }

    /// [`load`](Driver::load), taking a workload without copying it.
    pub fn load_workload(&mut self, workload: Workload) {
        let w = &mut self.w;
        let first = w.calls.len();
        let count = workload.len();
        let now = w.now();
        let horizon = workload
            .arrivals()
            .iter()
            .map(|a| a.at)
            .fold(now, Instant::max);
        let in_order = w.pending.back().is_none_or(|&c| {
            workload
                .first()
                .is_none_or(|a| w.arrivals[c as usize].at <= a.at)
        }) && workload.windows(2).all(|p| p[0].at <= p[1].at);
        if w.arrivals.is_empty() && w.arrivals.hash_count() == 0 {
            w.arrivals = workload;
        } else if w.arrivals.append(&workload).is_err() {
            // More than 2^32 block hashes in one run: keep the calls, drop
            // their blocks (prefix affinity and caches see none), and say so.
            w.blocks_dropped += count as u64;
            for a in workload.arrivals() {
                w.arrivals.push(a.with_blocks(Blocks::NONE));
            }
        }
        w.calls.resize(first + count, super::record::CallRec::new());
        w.pending.extend((first..w.calls.len()).map(|c| c as u32));
        if !in_order {
            let arrivals = &w.arrivals;
            w.pending
                .make_contiguous()
                .sort_by_key(|&c| (arrivals[c as usize].at, c));
        }
        w.budget = w
            .budget
            .saturating_add(BUDGET_PER_CALL.saturating_mul(count as u64));
        // Heartbeats run while calls do: at most one per interval per node
        // until the last call's deadline, each delivered to every gateway.
        let call_timeout = self
            .gateways
            .iter()
            .map(|g| g.router.config().call_timeout)
            .fold(Duration::ZERO, Duration::max);
        let span = (horizon + call_timeout) - now;
        // Probes while calls run: a send, an answer and a timer each.
        for g in &self.gateways {
            let p = g.router.config().probe;
            if p.enabled {
                let every = p.health_interval.min(p.inventory_interval);
                let rounds = span.as_nanos() / every.as_nanos().max(1) + 2;
                let per_round = 2 * 3 * w.nodes.len() as u64;
                w.budget = w.budget.saturating_add(rounds.saturating_mul(per_round));
            }
        }
        let per_beat = 1 + self.gateways.len() as u64;
        for (n, node) in w.nodes.iter().enumerate() {
            let Some(every) = node.spec.heartbeat else {
                continue;
            };
            let beats = span.as_nanos() / every.as_nanos().max(1) + 2;
            w.budget = w.budget.saturating_add(beats.saturating_mul(per_beat));
            if !w.beat_armed[n] {
                w.beat_armed[n] = true;
                w.clock.schedule(now, Ev::Beat(n as u16));
            }
        }
    }

    /// Processes events until none is left. Fails on a violated invariant,
    /// including a call left without an outcome.
    pub fn run_until_idle(&mut self) -> Result<(), Violation> {
        self.run_while(NEVER)?;
        if let Some(c) = self.w.calls.iter().position(|c| c.outcome.is_none()) {
            let kind = if self.w.stalled {
                ViolationKind::Stalled {
                    events: self.w.events,
                }
            } else {
                ViolationKind::Lost
            };
            self.w.fail(c, kind, None);
        }
        self.w.violation.clone().map_or(Ok(()), Err)
    }

    /// Processes the events due by `t`, then moves the clock to `t`.
    pub fn run_until(&mut self, t: Instant) -> Result<(), Violation> {
        self.run_while(t)?;
        self.w.clock.advance_to(t);
        Ok(())
    }

    fn run_while(&mut self, limit: Instant) -> Result<(), Violation> {
        loop {
            if let Some(v) = &self.w.violation {
                return Err(v.clone());
            }
            let w = &mut self.w;
            let now = w.now();
            let arrival = w
                .pending
                .front()
                .map(|&c| w.arrivals[c as usize].at.max(now));
            let (at, is_arrival) = match (w.clock.next_at(), arrival) {
                (None, None) => return Ok(()),
                (Some(e), Some(a)) if a < e => (a, true),
                (Some(e), _) => (e, false),
                (None, Some(a)) => (a, true),
            };
            if at > limit {
                return Ok(());
            }
            if w.events >= w.budget {
                w.stalled = true;
                return Ok(());
            }
            w.events += 1;
            let touched = if is_arrival {
                w.clock.advance_to(at);
                let next = w.pending.pop_front();
                next.map(|c| self.arrive(c as usize))
            } else {
                let next = w.clock.pop();
                next.and_then(|(_, ev)| self.step(ev))
            };
            if let Some(g) = touched {
                self.wakeups(g);
                self.run_probes(g);
                self.arm_router_timer(g);
            }
            let w = &mut self.w;
            if w.dead_timers > PURGE_AT && w.dead_timers * 2 > w.clock.pending() {
                let calls = &w.calls;
                w.clock.retain(|at, ev| match *ev {
                    Ev::Poll(c) => calls[c as usize].poll_at == at,
                    _ => true,
                });
                w.dead_timers = 0;
            }
        }
    }

    /// Call `c` arrives at its gateway. Returns the gateway.
    fn arrive(&mut self, c: usize) -> usize {
        let w = &mut self.w;
        let now = w.now();
        let g = w.gateway_for(c, self.gateways.len());
        let router = &mut self.gateways[g].router;
        let a = &w.arrivals[c];
        let mut q = Query::new(a.op);
        q.session = a.session;
        q.prefix = prefix_key(
            w.arrivals.blocks(a.prefix_blocks),
            router.config().affinity.prefix_key_blocks,
        );
        if let Some(after) = a.cancel_after {
            w.clock.schedule(now + after, Ev::ClientCancel(c as u32));
        }
        let call = router.start(Request::new(TraceId(c as u64), q), now);
        let slot = match self.free.pop() {
            Some(s) => {
                self.live[s as usize] = Some(call);
                s
            }
            None => {
                self.live.push(Some(call));
                (self.live.len() - 1) as u32
            }
        };
        let rec = &mut w.calls[c];
        rec.gateway = g as u16;
        rec.start = now;
        rec.live = slot;
        self.drive(c);
        g
    }

    /// Applies one event. Returns the gateway whose router it touched.
    fn step(&mut self, ev: Ev) -> Option<usize> {
        let w = &mut self.w;
        let now = w.now();
        match ev {
            Ev::Poll(c) => {
                let rec = &mut w.calls[c as usize];
                if rec.poll_at != now {
                    w.dead_timers = w.dead_timers.saturating_sub(1);
                    return None;
                }
                rec.poll_at = NEVER;
                let g = usize::from(rec.gateway);
                self.drive(c as usize);
                Some(g)
            }
            Ev::ClientCancel(c) => self.feed(c as usize, Event::ClientCancelled),
            Ev::Timer(g) => {
                let gw = &mut self.gateways[usize::from(g)];
                if gw.timer_at != Some(now) {
                    return None;
                }
                gw.timer_at = None;
                gw.router.handle_timeout(now);
                Some(usize::from(g))
            }
            Ev::Change(i) => {
                let (n, change) = w.changes[i as usize];
                match change {
                    Change::Down(mode) => w.crash(n, mode),
                    other => w.nodes[n].apply(other),
                }
                None
            }
            Ev::Beat(n) => {
                let i = usize::from(n);
                w.beat_armed[i] = false;
                if w.nodes[i].beats() {
                    let beat = w.beats.len() as u32;
                    w.beats.push((n, w.nodes[i].telemetry()));
                    for (g, gw) in self.gateways.iter().enumerate() {
                        w.clock
                            .schedule(now + gw.delay, Ev::Deliver(beat, g as u16));
                    }
                }
                if let (true, Some(every)) = (w.busy(), w.nodes[i].spec.heartbeat) {
                    w.beat_armed[i] = true;
                    w.clock.schedule(now + every, Ev::Beat(n));
                }
                None
            }
            Ev::Deliver(beat, g) => {
                let (n, t) = w.beats[beat as usize];
                let id = w.nodes[usize::from(n)].id;
                // Every router has every node (added at build).
                let _ = self.gateways[usize::from(g)]
                    .router
                    .handle_heartbeat(id, t, now);
                Some(usize::from(g))
            }
            Ev::ProbeDone(i) => {
                let (g, probe, outcome) = w.probes[i as usize];
                self.gateways[usize::from(g)]
                    .router
                    .handle_probe(probe, outcome, now);
                Some(usize::from(g))
            }
            Ev::FirstByte(job) => {
                let j = &mut w.jobs[job as usize];
                if j.state != JobState::Serving {
                    return None;
                }
                j.first_byte = true;
                let (c, attempt) = (j.call as usize, j.attempt);
                self.feed(c, Event::FirstByte(attempt))
            }
            Ev::Completed(job) => {
                let (c, attempt) = w.conclude(job, JobState::Serving, AttemptEnd::Completed)?;
                w.calls[c].completed_job = job;
                self.feed(c, Event::Completed(attempt))
            }
            Ev::Invalid(job) => {
                let f = Failure::InvalidReply;
                let end = AttemptEnd::Failed(f);
                let (c, attempt) = w.conclude(job, JobState::Serving, end)?;
                self.feed(c, Event::Failed(attempt, f))
            }
            Ev::Fail(job, f) => {
                let end = AttemptEnd::Failed(f);
                let (c, attempt) = w.conclude(job, JobState::Replying, end)?;
                self.feed(c, Event::Failed(attempt, f))
            }
            Ev::Overloaded(job, retry_after) => {
                let retry_after =
                    (retry_after != u64::MAX).then(|| Duration::from_nanos(retry_after));
                let end = AttemptEnd::Overloaded;
                let (c, attempt) = w.conclude(job, JobState::Replying, end)?;
                self.feed(c, Event::Overloaded(attempt, retry_after))
            }
        }
    }

    /// Feeds `event` to call `c` (if it still runs), then drives it.
    /// Returns the call's gateway.
    fn feed(&mut self, c: usize, event: Event) -> Option<usize> {
        let now = self.w.now();
        let rec = &mut self.w.calls[c];
        let g = usize::from(rec.gateway);
        let call = self.live.get_mut(rec.live as usize)?.as_mut()?;
        let handled = self.gateways[g].router.handle(call, event, now);
        if handled == Handled::Applied && matches!(event, Event::FirstByte(_)) {
            rec.committed = true;
            if rec.first_byte == NEVER {
                rec.first_byte = now;
            }
        }
        self.drive(c);
        Some(g)
    }

    /// Polls call `c` until it waits or finishes, executing its actions.
    fn drive(&mut self, c: usize) {
        let Driver {
            gateways,
            live,
            free,
            w,
        } = self;
        let slot = w.calls[c].live;
        let Some(call) = live.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let router = &mut gateways[usize::from(w.calls[c].gateway)].router;
        let now = w.now();
        for _ in 0..MAX_ACTIONS_PER_DRIVE {
            match router.poll(call, now) {
                Action::Send {
                    attempt,
                    node,
                    hedge,
                    ..
                } => w.send(router, c, attempt, node, hedge),
                Action::Cancel { attempt, .. } => w.cancel(c, attempt),
                Action::Wait { until } => {
                    if let Some(t) = until {
                        w.arm_poll(c, t);
                    }
                    return;
                }
                Action::Finish(outcome) => {
                    w.finish(c, outcome);
                    break;
                }
                Action::Done => break,
            }
        }
        // Finished (or, after too many actions, abandoned: reported lost).
        if let Some(s) = w.release_slot(c) {
            live[s as usize] = None;
            free.push(s);
        }
    }

    fn arm_router_timer(&mut self, g: usize) {
        // Once every call has ended nothing is queued, and probes stop (as
        // heartbeats do): an idle run ends.
        if !self.w.busy() {
            return;
        }
        let now = self.w.now();
        let gw = &mut self.gateways[g];
        if let Some(t) = gw.router.poll_timeout() {
            let t = t.max(now);
            if gw.timer_at.is_none_or(|x| t < x) {
                gw.timer_at = Some(t);
                self.w.clock.schedule(t, Ev::Timer(g as u16));
            }
        }
    }

    /// Drives the calls gateway `g`'s router granted capacity to.
    fn wakeups(&mut self, g: usize) {
        for _ in 0..WAKEUPS_PER_EVENT {
            let Some(TraceId(t)) = self.gateways[g].router.poll_wakeup() else {
                return;
            };
            if let Ok(c) = usize::try_from(t) {
                if c < self.w.calls.len() {
                    self.drive(c);
                }
            }
        }
    }
}
