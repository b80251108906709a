//! The [`Driver`]: drover-core's router, simulated nodes and a workload on
//! one virtual [`Clock`], run by the sans-IO loop.
//!
//! The loop, per event taken from the clock (earliest first):
//!
//! 1. apply it: a call arrives ([`Router::start`]), a node produces a first
//!    byte, a completion or an error (fed in with [`Router::handle`]), a
//!    poll timer fires, a client gives up, a node crashes or recovers;
//! 2. drive the call it concerns: [`Router::poll`] until `Wait` or `Finish`,
//!    executing each `Send` (the node schedules the attempt's events) and
//!    each `Cancel` (the node drops the attempt and frees its slot), and
//!    scheduling a poll at `Wait { until }`;
//! 3. drive every call [`Router::poll_wakeup`] names (queued calls that were
//!    granted capacity), and keep a timer at [`Router::poll_timeout`] for
//!    [`Router::handle_timeout`].
//!
//! Nothing reads a wall clock or the OS's randomness: the router, every node
//! and the workload generator draw from streams of one seed
//! ([`seed::derive`](super::seed::derive())).
//!
//! The run stops when no event is left, or, as a guard against a bug that
//! reschedules forever, after an event budget proportional to the workload
//! ([`Report::stalled`]). Every call without an outcome at the end is counted
//! in [`Report::lost`].

use std::collections::BTreeMap;
use std::fmt;

use drover_core::call::{Action, AttemptId, Call, Event, Handled, Outcome, Request};
use drover_core::config::{ConfigError, RouterConfig};
use drover_core::node::{NodeError, NodeId, NodeKind, NodeSpec};
use drover_core::reason::Failure;
use drover_core::route::{Op, Query};
use drover_core::router::Router;
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant};

use super::clock::Clock;
use super::node::{self, BadNode, JobId, NodeState, SimNode};
use super::report::{NodeReport, Report, percentile};
use super::seed;
use super::workload::Arrival;

/// Most simulated nodes in one run.
pub const MAX_NODES: usize = 64;

/// The router the simulator drives: 64 nodes, 4,096 permits, 1,024 queued calls.
pub type SimRouter = Router<MAX_NODES, 4096, 1024>;

/// Actions one drive of a call may execute before it must wait or finish.
/// The core emits at most a handful; hitting this means a bug, and the call
/// is left unfinished (and counted as lost).
const MAX_ACTIONS_PER_DRIVE: usize = 64;
/// Granted calls driven after one event; any left over are driven after the next.
const WAKEUPS_PER_EVENT: usize = 4096;
/// Event budget: fixed part, and per call of the workload.
const BUDGET_BASE: u64 = 10_000;
const BUDGET_PER_CALL: u64 = 512;

/// Why a [`Driver`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// The router refused the configuration.
    Config(ConfigError),
    /// A simulated node's description is invalid.
    Node(BadNode),
    /// The router refused a node (duplicate name, name too long, …).
    Router {
        /// The node's name.
        node: String,
        /// Why.
        error: NodeError,
    },
    /// More than [`MAX_NODES`] nodes, or none.
    NodeCount(usize),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Config(e) => write!(f, "router configuration: {e}"),
            SimError::Node(e) => e.fmt(f),
            SimError::Router { node, error } => write!(f, "simulated node {node:?}: {error}"),
            SimError::NodeCount(n) => {
                write!(f, "a simulation needs 1 to {MAX_NODES} nodes, not {n}")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// Everything that can happen, in virtual time.
#[derive(Clone, Copy, Debug)]
enum Ev {
    /// Call `i` of the workload is sent.
    Arrive(usize),
    /// Poll call `i` (a `Wait { until }` came due).
    Poll(usize),
    /// The client of call `i` gives up.
    ClientCancel(usize),
    /// The router's own timer ([`Router::poll_timeout`]).
    RouterTimer,
    /// Node `i` goes down.
    Crash(usize),
    /// Node `i` comes back.
    Recover(usize),
    /// A job's first byte.
    FirstByte(JobId),
    /// A job's complete answer.
    Completed(JobId),
    /// A job's failure reply (refused, 5xx, reset by a crash).
    Fail(JobId, Failure),
    /// A job's 429 reply.
    Overloaded(JobId, Option<Duration>),
}

/// Where a simulated attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    /// Waiting in the node's queue.
    Queued,
    /// Holding a slot; its first byte and completion are scheduled.
    Serving,
    /// A failure or 429 reply is on its way.
    Replying,
    /// Finished, failed or cancelled: later events for it are ignored.
    Gone,
}

/// One simulated attempt.
#[derive(Clone, Copy, Debug)]
struct Job {
    call: usize,
    attempt: AttemptId,
    node: usize,
    state: JobState,
    first_byte: bool,
}

/// One call of the workload and what became of it.
#[derive(Debug)]
struct CallSlot {
    arrival: Arrival,
    /// The core's call while it runs; `None` before arrival and after Finish.
    call: Option<Call>,
    /// The time of the one poll timer that counts.
    poll_at: Option<Instant>,
    jobs: Vec<(AttemptId, JobId)>,
    first_byte: Option<Instant>,
    outcome: Option<(Instant, Outcome)>,
}

/// A simulation: a router, simulated nodes and their calls on one clock.
/// See the [`sim` module docs](crate::sim).
pub struct Driver {
    router: Box<SimRouter>,
    clock: Clock<Ev>,
    nodes: Vec<NodeState>,
    /// `NodeId.0` → index in `nodes`.
    by_id: Vec<Option<usize>>,
    calls: Vec<CallSlot>,
    jobs: Vec<Job>,
    timer_at: Option<Instant>,
    events: u64,
    budget: u64,
    stalled: bool,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("now", &self.clock.now())
            .field("nodes", &self.nodes.len())
            .field("calls", &self.calls.len())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A simulation of `nodes` (in order: the router's ids follow it) under
    /// `cfg`. `seed` drives the router and every node.
    pub fn new(cfg: RouterConfig, nodes: Vec<SimNode>, seed: u64) -> Result<Self, SimError> {
        if nodes.is_empty() || nodes.len() > MAX_NODES {
            return Err(SimError::NodeCount(nodes.len()));
        }
        // 340 KB: matched rather than `map_err`ed so it is not copied twice more.
        let router = match SimRouter::new(cfg, seed::derive(seed, seed::ROUTER)) {
            Ok(r) => Box::new(r),
            Err(e) => return Err(SimError::Config(e)),
        };
        let mut d = Driver {
            router,
            clock: Clock::new(),
            nodes: Vec::with_capacity(nodes.len()),
            by_id: Vec::new(),
            calls: Vec::new(),
            jobs: Vec::new(),
            timer_at: None,
            events: 0,
            budget: BUDGET_BASE,
            stalled: false,
        };
        for (i, sim) in nodes.into_iter().enumerate() {
            sim.validate().map_err(SimError::Node)?;
            let refused = |error| SimError::Router {
                node: sim.name.clone(),
                error,
            };
            let mut spec = NodeSpec::new(&sim.name, NodeKind::OpenAiCompat).map_err(refused)?;
            spec.weight = sim.weight;
            spec.max_concurrency = sim.max_concurrency;
            spec.capabilities = sim.capabilities;
            let id = d.router.add_node(spec).map_err(refused)?;
            let slot = usize::from(id.0);
            if d.by_id.len() <= slot {
                d.by_id.resize(slot + 1, None);
            }
            d.by_id[slot] = Some(i);
            if let Some(w) = sim.crash {
                d.clock.schedule(w.from, Ev::Crash(i));
                d.clock.schedule(w.until, Ev::Recover(i));
            }
            let node_seed = seed::derive(seed, seed::NODES + i as u64);
            d.nodes.push(NodeState::new(sim, id, node_seed));
        }
        Ok(d)
    }

    /// The router (for its metrics, node table and trace).
    pub fn router(&self) -> &SimRouter {
        &self.router
    }
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }
    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }
    /// The router's id of the simulated node called `name`.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|n| n.spec.name == name)
            .map(|n| n.id)
    }
    /// Each call of the workload so far, with its outcome and when it came.
    pub fn outcomes(&self) -> impl Iterator<Item = (&Arrival, Option<(Instant, Outcome)>)> {
        self.calls.iter().map(|c| (&c.arrival, c.outcome))
    }

    /// Schedules `workload`, runs until nothing is left to happen, and
    /// reports. Arrivals in the past (after an earlier run) are sent now.
    pub fn run(&mut self, workload: &[Arrival]) -> Report {
        self.load(workload);
        self.run_until_idle();
        self.report()
    }

    /// Schedules the arrivals (and client cancels) of `workload`.
    pub fn load(&mut self, workload: &[Arrival]) {
        for a in workload {
            let i = self.calls.len();
            self.calls.push(CallSlot {
                arrival: *a,
                call: None,
                poll_at: None,
                jobs: Vec::new(),
                first_byte: None,
                outcome: None,
            });
            self.clock.schedule(a.at, Ev::Arrive(i));
            if let Some(after) = a.cancel_after {
                self.clock.schedule(a.at + after, Ev::ClientCancel(i));
            }
        }
        self.budget = self
            .budget
            .saturating_add(BUDGET_PER_CALL.saturating_mul(workload.len() as u64));
    }

    /// Processes events until none is left or the event budget is spent.
    pub fn run_until_idle(&mut self) {
        while let Some((_, ev)) = self.clock.pop() {
            if self.events >= self.budget {
                self.stalled = true;
                return;
            }
            self.events += 1;
            self.step(ev);
            self.wakeups();
            self.arm_router_timer();
        }
    }

    fn step(&mut self, ev: Ev) {
        let now = self.clock.now();
        match ev {
            Ev::Arrive(c) => {
                let a = self.calls[c].arrival;
                let req = Request::new(TraceId(c as u64), Query::new(a.op));
                self.calls[c].call = Some(self.router.start(req, now));
                self.drive(c);
            }
            Ev::Poll(c) => {
                if self.calls[c].poll_at == Some(now) {
                    self.calls[c].poll_at = None;
                    self.drive(c);
                }
            }
            Ev::ClientCancel(c) => self.feed(c, Event::ClientCancelled),
            Ev::RouterTimer => {
                if self.timer_at == Some(now) {
                    self.timer_at = None;
                    self.router.handle_timeout(now);
                }
            }
            Ev::Crash(n) => {
                for job in self.nodes[n].crash() {
                    let failure = if self.jobs[job].first_byte {
                        Failure::BrokenStream
                    } else {
                        Failure::Connect
                    };
                    self.jobs[job].state = JobState::Replying;
                    self.clock.schedule(now, Ev::Fail(job, failure));
                }
            }
            Ev::Recover(n) => self.nodes[n].recover(),
            Ev::FirstByte(job) => {
                if self.jobs[job].state == JobState::Serving {
                    self.jobs[job].first_byte = true;
                    self.feed_job(job, Event::FirstByte(self.jobs[job].attempt));
                }
            }
            Ev::Completed(job) => {
                if self.jobs[job].state == JobState::Serving {
                    self.retire(job);
                    self.feed_job(job, Event::Completed(self.jobs[job].attempt));
                }
            }
            Ev::Fail(job, failure) => {
                if self.jobs[job].state == JobState::Replying {
                    self.jobs[job].state = JobState::Gone;
                    self.feed_job(job, Event::Failed(self.jobs[job].attempt, failure));
                }
            }
            Ev::Overloaded(job, retry_after) => {
                if self.jobs[job].state == JobState::Replying {
                    self.jobs[job].state = JobState::Gone;
                    self.feed_job(job, Event::Overloaded(self.jobs[job].attempt, retry_after));
                }
            }
        }
    }

    /// Feeds an attempt's event to its call, then drives the call.
    fn feed_job(&mut self, job: JobId, event: Event) {
        self.feed(self.jobs[job].call, event);
    }

    /// Feeds `event` to call `c` (if it still runs), then drives it.
    fn feed(&mut self, c: usize, event: Event) {
        let now = self.clock.now();
        let Some(call) = self.calls[c].call.as_mut() else {
            return; // finished already: nothing listens
        };
        let handled = self.router.handle(call, event, now);
        if handled == Handled::Applied
            && matches!(event, Event::FirstByte(_))
            && self.calls[c].first_byte.is_none()
        {
            self.calls[c].first_byte = Some(now);
        }
        self.drive(c);
    }

    /// Polls call `c` until it waits or finishes, executing its actions.
    fn drive(&mut self, c: usize) {
        let Some(mut call) = self.calls[c].call.take() else {
            return;
        };
        let now = self.clock.now();
        for _ in 0..MAX_ACTIONS_PER_DRIVE {
            match self.router.poll(&mut call, now) {
                Action::Send { attempt, node, .. } => self.send(c, attempt, node),
                Action::Cancel { attempt, .. } => self.cancel(c, attempt),
                Action::Wait { until } => {
                    if let Some(t) = until {
                        self.arm_poll(c, t);
                    }
                    break;
                }
                Action::Finish(outcome) => {
                    let slot = &mut self.calls[c];
                    slot.outcome = Some((now, outcome));
                    slot.poll_at = None;
                    return; // the call is over: drop it
                }
                Action::Done => return,
            }
        }
        self.calls[c].call = Some(call);
    }

    /// Keeps one poll timer per call: the earliest asked for. A time in the
    /// past means now (the clock would fire it now; the timer must match).
    fn arm_poll(&mut self, c: usize, at: Instant) {
        let at = at.max(self.clock.now());
        let slot = &mut self.calls[c];
        if slot.poll_at.is_none_or(|p| at < p) {
            slot.poll_at = Some(at);
            self.clock.schedule(at, Ev::Poll(c));
        }
    }

    fn arm_router_timer(&mut self) {
        if let Some(t) = self.router.poll_timeout() {
            let t = t.max(self.clock.now());
            if self.timer_at.is_none_or(|x| t < x) {
                self.timer_at = Some(t);
                self.clock.schedule(t, Ev::RouterTimer);
            }
        }
    }

    /// Drives the calls the router granted capacity to.
    fn wakeups(&mut self) {
        for _ in 0..WAKEUPS_PER_EVENT {
            let Some(TraceId(t)) = self.router.poll_wakeup() else {
                return;
            };
            if let Ok(c) = usize::try_from(t) {
                if c < self.calls.len() {
                    self.drive(c);
                }
            }
        }
    }

    /// Executes a `Send`: the attempt arrives at its node.
    fn send(&mut self, c: usize, attempt: AttemptId, node: NodeId) {
        let job = self.jobs.len();
        let n = self.by_id.get(usize::from(node.0)).copied().flatten();
        self.jobs.push(Job {
            call: c,
            attempt,
            node: n.unwrap_or(usize::MAX),
            state: JobState::Queued,
            first_byte: false,
        });
        self.calls[c].jobs.push((attempt, job));
        let Some(n) = n else {
            // Not a node of ours (cannot happen: every router node was added here).
            self.reply(job, Duration::ZERO, Ev::Fail(job, Failure::Connect));
            return;
        };
        let latency = self.nodes[n].spec.reply_latency;
        match self.nodes[n].arrive(job, self.clock.now()) {
            node::Arrival::Refused => self.reply(job, latency, Ev::Fail(job, Failure::Connect)),
            node::Arrival::Fails => {
                self.reply(job, latency, Ev::Fail(job, Failure::Upstream5xx(500)))
            }
            node::Arrival::Overloaded(ra) => self.reply(job, latency, Ev::Overloaded(job, ra)),
            node::Arrival::Started => self.serve(job),
            node::Arrival::Queued => {}
        }
    }

    fn reply(&mut self, job: JobId, after: Duration, ev: Ev) {
        self.jobs[job].state = JobState::Replying;
        self.clock.schedule_in(after, ev);
    }

    /// A job got a slot: schedule its first byte and completion.
    fn serve(&mut self, job: JobId) {
        let j = &mut self.jobs[job];
        j.state = JobState::Serving;
        let a = self.calls[j.call].arrival;
        let s = self.nodes[j.node].service(a.op, a.prompt_tokens, a.output_tokens);
        if a.op == Op::Stream {
            self.clock.schedule_in(s.first_byte, Ev::FirstByte(job));
        }
        self.clock.schedule_in(s.total, Ev::Completed(job));
    }

    /// Removes a job from its node; the next queued job takes the slot.
    fn retire(&mut self, job: JobId) {
        let j = &mut self.jobs[job];
        let was_held = matches!(j.state, JobState::Queued | JobState::Serving);
        j.state = JobState::Gone;
        if was_held {
            if let Some(next) = self.nodes[j.node].release(job) {
                self.serve(next);
            }
        }
    }

    /// Executes a `Cancel`: the attempt is dropped wherever it is.
    fn cancel(&mut self, c: usize, attempt: AttemptId) {
        let found = self.calls[c].jobs.iter().find(|(a, _)| *a == attempt);
        if let Some(&(_, job)) = found {
            self.retire(job);
        }
    }

    /// Attempts still queued, served or awaiting a reply on some node
    /// (0 after a clean run: the router cancels what it no longer needs).
    pub fn open_attempts(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state != JobState::Gone)
            .count()
    }

    /// The report of everything run so far.
    pub fn report(&self) -> Report {
        let mut failed = BTreeMap::new();
        let mut rejected = BTreeMap::new();
        let (mut succeeded, mut cancelled, mut lost) = (0, 0, 0);
        let mut ok = vec![0u64; self.nodes.len()];
        let mut ttft = Vec::new();
        let mut latency = Vec::new();
        let mut last_outcome = Instant::ZERO;
        for slot in &self.calls {
            let Some((at, outcome)) = slot.outcome else {
                lost += 1;
                continue;
            };
            last_outcome = last_outcome.max(at);
            match outcome {
                Outcome::Succeeded { node, .. } => {
                    succeeded += 1;
                    if let Some(i) = self.by_id.get(usize::from(node.0)).copied().flatten() {
                        ok[i] += 1;
                    }
                    let sent = slot.arrival.at;
                    latency.push(at - sent);
                    ttft.push(slot.first_byte.unwrap_or(at) - sent);
                }
                Outcome::Failed { failure, .. } => *failed.entry(failure.label()).or_insert(0) += 1,
                Outcome::Rejected(r) => *rejected.entry(r.label()).or_insert(0) += 1,
                Outcome::Cancelled { .. } => cancelled += 1,
            }
        }
        ttft.sort_unstable();
        latency.sort_unstable();
        let metrics = self.router.metrics();
        let nodes = self
            .nodes
            .iter()
            .zip(&ok)
            .map(|(n, &ok)| NodeReport {
                name: n.spec.name.clone(),
                ok,
                share: if succeeded == 0 {
                    0.0
                } else {
                    ok as f64 / succeeded as f64
                },
                attempts: n.counters.attempts,
                errors: n.counters.errors,
                refused: n.counters.refused,
                dropped: n.counters.dropped,
                overloads: n.counters.overloads,
                breaker_opens: metrics.node(n.id).map_or(0, |m| m.breaker_opens),
            })
            .collect();
        Report {
            calls: self.calls.len() as u64,
            succeeded,
            failed,
            rejected,
            cancelled,
            lost,
            ttft_p50: percentile(&ttft, 0.5),
            ttft_p99: percentile(&ttft, 0.99),
            latency_p50: percentile(&latency, 0.5),
            latency_p99: percentile(&latency, 0.99),
            failovers: metrics.failovers,
            hedges: metrics.hedges,
            nodes,
            last_outcome,
            stalled: self.stalled,
        }
    }
}
