//! The driver and its invariant checks.
//!
//! The [`Harness`] owns a router and every call it started. It behaves like
//! a thin driver: each operation that touches a call ends by polling that
//! call until it waits or finishes, executing `Send`s and `Cancel`s by
//! adding to and removing from the attempts it believes live. Because a
//! call's pending actions are always drained before the next operation, the
//! router's counters must then agree exactly with the driver's belief, and
//! [`Harness::check`] asserts that they do after every step.
//!
//! What is checked:
//!
//! - **Per action.** `Finish` comes exactly once per call, with no attempt
//!   live, counts that match the sends, and `after_first_byte` equal to
//!   whether a first byte was applied; after it only `Done`, never a `Send`
//!   or `Cancel`. A `Send` never follows the first byte, numbers attempts in
//!   order, stays within `max_attempts`, never repeats a node for one call,
//!   is a hedge exactly when one attempt is live (and hedging applies), and
//!   targets a node that, at that instant, is not disabled, matches pin,
//!   capability, model (the alias it resolves to is the one sent), scope and
//!   required tags, is not stale or lost, has no open breaker (and at most
//!   the allowed half-open probes), is not cooling down after 429/503, and
//!   stays within `max_concurrency`; a draining node only if no enabled node
//!   was eligible. A `Cancel` names an attempt the driver believes live. A
//!   `Wait` lies in the future; a running call waits with an attempt live, a
//!   queued one with none. Events for live attempts apply, all others are
//!   answered `Stale`.
//! - **Between operations.** Per node, attempts in flight equal the
//!   attempts the driver believes live there, and in flight plus reserved
//!   stays within `max_concurrency`; half-open probes never exceed the
//!   attempts in flight or the limit. Permits outstanding equal the running
//!   calls plus granted, not yet polled queue tickets (which are exactly the
//!   node reservations), within the global pool; active calls equal open
//!   calls; queue depth plus granted tickets stay within the queued calls.
//!   Each call's own view (finished, committed, attempts, tried nodes)
//!   matches the driver's. The metrics agree with the driver's counts:
//!   calls and outcomes per operation, failovers, hedges, attempts per node,
//!   and every attempt in flight or ended exactly once.
//! - **Previews.** Every node's verdict is the oracle's, drained nodes are
//!   excluded exactly when an enabled node is eligible, the plan holds only
//!   eligible nodes, and a call started right after goes where the preview
//!   said (or is queued or refused for capacity, or rejected as previewed).
//! - **At the end** ([`Harness::settle`]): after cancelling every open call,
//!   no active call, permit, attempt, reservation, probe slot, queue entry,
//!   queue deadline or wakeup is left.

use drover_core::Instant;
use drover_core::breaker::BreakerState;
use drover_core::call::{Action, AttemptId, Call, Event, Handled, Outcome, Request};
use drover_core::catalog::{ModelId, ModelSet};
use drover_core::config::RouterConfig;
use drover_core::health::{Freshness, HeartbeatChange, Telemetry};
use drover_core::node::{Capabilities, Mode, NodeError, NodeId, NodeKind, NodeSpec};
use drover_core::reason::Reject;
use drover_core::route::{Plan, Query};
use drover_core::time::Duration;
use drover_core::trace::TraceId;

mod checks;
mod preview;

use super::{
    ALIAS_TARGET, EventKind, MAX_CALLS, MODELS, ModeKind, Op, R, SCOPE, SLOTS, Setup, StartCall,
    Step, TAG,
};

/// Most polls one drain may take before the call must wait or finish.
const MAX_POLLS: usize = 64;

/// One entry of the run's log: everything the router answered, in order.
/// Two runs of the same input must produce equal logs.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// `poll` returned `action` for call `call`.
    Action {
        /// Call index.
        call: usize,
        /// The action.
        action: Action,
    },
    /// `handle` answered `handled` for `event`.
    Handled {
        /// Call index.
        call: usize,
        /// The event.
        event: Event,
        /// The answer.
        handled: Handled,
    },
    /// `poll_wakeup` returned this.
    Wakeup(Option<TraceId>),
    /// `handle_heartbeat` returned this.
    Heartbeat(Result<HeartbeatChange, NodeError>),
    /// `set_mode` returned this.
    SetMode(Result<(), NodeError>),
    /// `preview` returned this.
    Preview(Result<Plan, Reject>),
}

/// The state of the chosen node, and of the swarm, when a `Send` happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendRecord {
    /// Operation number (1-based) that produced the send.
    pub step: usize,
    /// Call index.
    pub call: usize,
    /// The attempt.
    pub attempt: AttemptId,
    /// The node.
    pub node: NodeId,
    /// A hedge.
    pub hedge: bool,
    /// The node's mode.
    pub mode: Mode,
    /// The node's breaker state (after the attempt took its ticket).
    pub breaker: BreakerState,
    /// The node was in overload cooldown.
    pub cooling: bool,
    /// The node's heartbeat freshness.
    pub freshness: Freshness,
    /// The node was draining.
    pub draining: bool,
    /// A non-draining node that was eligible for this attempt, if any.
    pub enabled_alternative: Option<NodeId>,
    /// Nodes disabled at that moment.
    pub disabled_nodes: usize,
    /// Nodes whose breaker was open at that moment.
    pub open_breakers: usize,
}

/// Counters over a run, for properties and for showing that a property
/// test actually reached the states it is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations applied.
    pub steps: usize,
    /// Calls started.
    pub calls_started: usize,
    /// `Send` actions executed.
    pub attempts_sent: usize,
    /// Attempts that ended: `Cancel` actions plus applied terminal events.
    pub attempts_released: usize,
    /// Hedge sends.
    pub hedges: usize,
    /// Sends after the first that were not hedges.
    pub failovers: usize,
    /// Sends to a draining node.
    pub drained_sends: usize,
    /// Drains that left a call queued.
    pub queued: usize,
    /// Wakeups taken.
    pub wakeups: usize,
    /// Events answered `Stale`.
    pub stale_events: usize,
    /// Calls that finished `Succeeded`.
    pub succeeded: usize,
    /// Calls that finished `Failed`.
    pub failed: usize,
    /// Calls that finished `Rejected`.
    pub rejected: usize,
    /// Calls that finished `Cancelled`.
    pub cancelled: usize,
    /// Previews checked.
    pub previews: usize,
    /// Previews whose call was admitted at once and went where promised.
    pub previews_kept: usize,
}

/// The driver's view of one call.
struct Tracked {
    call: Call,
    query: Query,
    /// Polled at least once (left `New`).
    polled: bool,
    finished: Option<Outcome>,
    /// A first byte was applied.
    committed: bool,
    /// Attempts sent and not yet cancelled or ended, in send order.
    live: Vec<(AttemptId, NodeId)>,
    /// Attempts that ended or were cancelled.
    ended: Vec<AttemptId>,
    /// Nodes sent to, in order.
    tried: Vec<NodeId>,
    /// The last `Wait` deadline.
    wake: Option<Instant>,
}

/// A router driven by operations, checking invariants after each. See the
/// [module docs](self).
pub struct Harness {
    router: Box<R>,
    cfg: RouterConfig,
    nodes: usize,
    now: Instant,
    calls: Vec<Tracked>,
    log: Vec<Record>,
    sends: Vec<SendRecord>,
    stats: Stats,
    /// Sends per node slot.
    node_sends: [u64; SLOTS as usize],
    /// Client errors (4xx) applied per node slot: the one way an attempt
    /// ends without a per-node counter.
    node_client_errors: [u64; SLOTS as usize],
}

impl Harness {
    /// A router with `setup`'s configuration and nodes, at time zero.
    pub fn new(setup: Setup) -> Self {
        let cfg = setup.config();
        let mut router =
            Box::new(R::new(cfg, setup.seed).unwrap_or_else(|e| panic!("harness config: {e}")));
        for m in 0..=ALIAS_TARGET.0 {
            let id = router
                .catalog_mut()
                .intern_model(&format!("model-{m}"))
                .unwrap_or_else(|e| panic!("interning model {m}: {e:?}"));
            assert_eq!(id, ModelId(m), "models intern in order");
        }
        let nodes = setup.node_count();
        for (i, shape) in setup.shapes.iter().take(nodes).enumerate() {
            let kind = if i % 2 == 0 {
                NodeKind::Ollama
            } else {
                NodeKind::OpenAiCompat
            };
            let mut spec = NodeSpec::new(&format!("node-{i}"), kind)
                .unwrap_or_else(|e| panic!("node spec {i}: {e}"));
            spec.max_concurrency = 1 + u16::from(shape.max_concurrency % 3);
            spec.weight = 1 + u16::from(shape.weight % 4);
            if shape.capabilities >= 224 {
                spec.capabilities = Capabilities(shape.capabilities & 0x0f);
            }
            if shape.models >= 192 {
                let bits = shape.models;
                let mut set = ModelSet::EMPTY;
                for m in (0..MODELS).filter(|m| bits >> m & 1 == 1) {
                    set.insert(ModelId(m));
                }
                spec.models = set;
            }
            if shape.alias {
                spec.add_alias(ModelId(0), ALIAS_TARGET)
                    .unwrap_or_else(|e| panic!("alias on node {i}: {e}"));
            }
            if shape.tagged {
                spec.tags = TAG;
            }
            if shape.scope >= 224 {
                spec.scope = Some(SCOPE);
            }
            let id = router
                .add_node(spec)
                .unwrap_or_else(|e| panic!("adding node {i}: {e}"));
            assert_eq!(id, NodeId(i as u16), "nodes fill slots in order");
        }
        let h = Harness {
            router,
            cfg,
            nodes,
            now: Instant::ZERO,
            calls: Vec::new(),
            log: Vec::new(),
            sends: Vec::new(),
            stats: Stats::default(),
            node_sends: [0; SLOTS as usize],
            node_client_errors: [0; SLOTS as usize],
        };
        h.check();
        h
    }

    /// The router.
    pub fn router(&self) -> &R {
        &self.router
    }
    /// Everything the router answered so far.
    pub fn log(&self) -> &[Record] {
        &self.log
    }
    /// Every send with the node state it was judged against.
    pub fn sends(&self) -> &[SendRecord] {
        &self.sends
    }
    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }
    /// Calls started and not finished, as the driver sees them.
    pub fn open_calls(&self) -> usize {
        self.calls.iter().filter(|t| t.finished.is_none()).count()
    }

    /// Applies one operation, then checks every invariant.
    pub fn apply(&mut self, op: &Op) {
        self.stats.steps += 1;
        match *op {
            Op::Start(s) => {
                self.start(s);
            }
            Op::Poll { call } => {
                if let Some(k) = self.pick(call) {
                    self.drain(k);
                }
            }
            Op::Deliver {
                call,
                attempt,
                event,
            } => {
                if let Some(k) = self.pick(call) {
                    self.deliver(k, attempt, event);
                }
            }
            Op::Advance(step) => self.advance(step),
            Op::Heartbeat {
                node,
                queued,
                drain,
            } => self.heartbeat(node, queued, drain),
            Op::SetMode { node, mode } => self.set_mode(node, mode),
            Op::HandleTimeout => self.router.handle_timeout(self.now),
            Op::PollWakeup => self.wakeup(),
            Op::Preview(s) => self.preview(s),
        }
        self.check();
    }

    /// Ends the run: cancels every open call as its client would, takes the
    /// remaining wakeups, and asserts that every permit, attempt, node
    /// reservation and queue entry is gone.
    pub fn settle(&mut self) {
        for k in 0..self.calls.len() {
            if self.calls[k].finished.is_some() {
                continue;
            }
            let handled =
                self.router
                    .handle(&mut self.calls[k].call, Event::ClientCancelled, self.now);
            assert_eq!(
                handled,
                Handled::Applied,
                "call {k}: a client cancel of an open call must apply"
            );
            self.drain(k);
            assert!(
                matches!(self.calls[k].finished, Some(Outcome::Cancelled { .. })),
                "call {k}: a client cancel must finish the call as Cancelled, got {:?}",
                self.calls[k].finished
            );
        }
        for _ in 0..=self.calls.len() {
            let Some(trace) = self.router.poll_wakeup() else {
                break;
            };
            let k = self.call_of(trace);
            self.drain(k);
        }
        self.router.handle_timeout(self.now);
        self.check();
        let r = &self.router;
        assert_eq!(r.active_calls(), 0, "active calls leaked");
        assert_eq!(r.permits_outstanding(), 0, "permits leaked");
        assert_eq!(r.attempts_in_flight(), 0, "attempts leaked");
        assert_eq!(r.queue_depth(), 0, "queue entries leaked");
        assert_eq!(r.poll_timeout(), None, "a queue deadline is left");
        for (id, n) in r.nodes().iter() {
            assert_eq!(n.reserved, 0, "{id}: reservation leaked");
            assert_eq!(n.breaker.probes_in_flight(), 0, "{id}: probe slot leaked");
        }
        assert_eq!(
            self.router.poll_wakeup(),
            None,
            "wakeups left after settling"
        );
    }

    /// Call `x % open` among the open calls when `x < 224` and some are
    /// open, else call `x % started` among all calls started.
    fn pick(&self, call: u8) -> Option<usize> {
        let x = usize::from(call);
        let open = self.open_calls();
        if call < 224 && open > 0 {
            let mut open_calls = self
                .calls
                .iter()
                .enumerate()
                .filter(|(_, t)| t.finished.is_none());
            return open_calls.nth(x % open).map(|(k, _)| k);
        }
        (!self.calls.is_empty()).then(|| x % self.calls.len())
    }

    fn call_of(&self, trace: TraceId) -> usize {
        let k = usize::try_from(trace.0)
            .unwrap_or(usize::MAX)
            .wrapping_sub(1);
        assert!(
            k < self.calls.len(),
            "wakeup for {trace:?}, which no call of this run has"
        );
        k
    }

    /// Starts a call; returns its index, or `None` past [`MAX_CALLS`].
    fn start(&mut self, s: StartCall) -> Option<usize> {
        if self.calls.len() >= MAX_CALLS {
            return None;
        }
        let k = self.calls.len();
        let trace = TraceId(k as u64 + 1);
        let query = s.query();
        let mut req = Request::new(trace, query);
        req.background = s.background;
        req.payload_bytes = if s.oversized() {
            self.cfg.max_payload_bytes + 1
        } else {
            512
        };
        let call = self.router.start(req, self.now);
        assert_eq!(call.trace(), trace, "a call keeps its trace id");
        assert!(
            !call.is_finished() && !call.is_queued() && call.attempts() == 0,
            "a new call has done nothing yet"
        );
        self.calls.push(Tracked {
            call,
            query,
            polled: false,
            finished: None,
            committed: false,
            live: Vec::new(),
            ended: Vec::new(),
            tried: Vec::new(),
            wake: None,
        });
        self.stats.calls_started += 1;
        if s.poll {
            self.drain(k);
        }
        Some(k)
    }

    /// Polls call `k` until it waits or finishes, executing its actions.
    fn drain(&mut self, k: usize) {
        for _ in 0..MAX_POLLS {
            let action = self.router.poll(&mut self.calls[k].call, self.now);
            self.calls[k].polled = true;
            self.log.push(Record::Action { call: k, action });
            self.observe(k, action);
            if matches!(
                action,
                Action::Wait { .. } | Action::Finish(_) | Action::Done
            ) {
                if self.calls[k].call.is_queued() {
                    self.stats.queued += 1;
                }
                return;
            }
        }
        panic!("call {k}: {MAX_POLLS} polls without a Wait, Finish or Done");
    }

    fn observe(&mut self, k: usize, action: Action) {
        let now = self.now;
        match action {
            Action::Send {
                attempt,
                node,
                model,
                hedge,
            } => self.on_send(k, attempt, node, model, hedge),
            Action::Cancel { attempt, node } => {
                let t = &mut self.calls[k];
                assert!(t.finished.is_none(), "call {k}: Cancel after Finish");
                let Some(i) = t.live.iter().position(|&l| l == (attempt, node)) else {
                    panic!(
                        "call {k}: Cancel of {attempt:?} on {node}, which the driver does not \
                         believe live (live: {:?})",
                        t.live
                    );
                };
                t.live.remove(i);
                t.ended.push(attempt);
                self.stats.attempts_released += 1;
            }
            Action::Wait { until } => {
                let t = &mut self.calls[k];
                assert!(t.finished.is_none(), "call {k}: Wait after Finish");
                if let Some(at) = until {
                    assert!(
                        at > now,
                        "call {k}: Wait until {at:?}, not after now {now:?}"
                    );
                }
                if t.call.is_queued() {
                    assert!(t.live.is_empty(), "call {k}: queued with live attempts");
                } else {
                    assert!(
                        !t.live.is_empty(),
                        "call {k}: a running call waits with no attempt live"
                    );
                }
                t.wake = until;
            }
            Action::Finish(outcome) => self.on_finish(k, outcome),
            Action::Done => assert!(
                self.calls[k].finished.is_some(),
                "call {k}: Done before any Finish"
            ),
        }
    }

    fn deliver(&mut self, k: usize, sel: u8, kind: EventKind) {
        let t = &self.calls[k];
        let sel = usize::from(sel);
        let id = if !t.live.is_empty() {
            t.live[sel % t.live.len()].0
        } else if !t.ended.is_empty() {
            t.ended[sel % t.ended.len()]
        } else {
            AttemptId((sel % 4) as u8)
        };
        let event = match kind {
            EventKind::FirstByte => Event::FirstByte(id),
            EventKind::Completed => Event::Completed(id),
            EventKind::Failed(f) => Event::Failed(id, f.failure()),
            EventKind::Overloaded(r) => {
                Event::Overloaded(id, r.map(|x| Duration::from_millis(100 * u64::from(x))))
            }
            EventKind::ClientError(s) => Event::ClientError(id, 400 + u16::from(s % 29)),
            EventKind::ClientCancelled => Event::ClientCancelled,
        };
        let is_live = t.live.iter().any(|&(a, _)| a == id);
        let expected = match event {
            _ if t.finished.is_some() => Handled::Stale,
            Event::ClientCancelled => Handled::Applied,
            Event::FirstByte(_) if t.committed => Handled::Stale,
            _ if is_live => Handled::Applied,
            _ => Handled::Stale,
        };
        let handled = self.router.handle(&mut self.calls[k].call, event, self.now);
        self.log.push(Record::Handled {
            call: k,
            event,
            handled,
        });
        assert_eq!(
            handled, expected,
            "call {k}: {event:?} answered {handled:?} (driver believes live: {:?}, committed {}, \
             finished {:?})",
            self.calls[k].live, self.calls[k].committed, self.calls[k].finished
        );
        let t = &mut self.calls[k];
        match (handled, event) {
            (Handled::Stale, _) => self.stats.stale_events += 1,
            (_, Event::FirstByte(_)) => t.committed = true,
            (_, Event::ClientCancelled) => {}
            (
                _,
                Event::Completed(a)
                | Event::Failed(a, _)
                | Event::Overloaded(a, _)
                | Event::ClientError(a, _),
            ) => {
                if let (Event::ClientError(..), Some(&(_, n))) =
                    (event, t.live.iter().find(|&&(l, _)| l == a))
                {
                    self.node_client_errors[usize::from(n.0)] += 1;
                }
                t.live.retain(|&(l, _)| l != a);
                t.ended.push(a);
                self.stats.attempts_released += 1;
            }
        }
        self.drain(k);
    }

    fn advance(&mut self, step: Step) {
        let d = match step {
            Step::Millis(x) => Duration::from_millis(u64::from(x)),
            Step::Seconds(x) => Duration::from_secs(u64::from(x % 10)),
            Step::NextDeadline => {
                let next = self
                    .calls
                    .iter()
                    .filter_map(|t| t.wake)
                    .chain(self.router.poll_timeout())
                    .filter(|&at| at > self.now)
                    .min();
                next.map_or(Duration::ZERO, |at| at - self.now)
            }
        };
        self.now = self.now + d;
    }

    /// A heartbeat from slot `x % 8`, or from every node when `x >= 192`
    /// (with the drain flag on the first node only).
    fn heartbeat(&mut self, node: u8, queued: u8, drain: bool) {
        if node >= 192 {
            for i in 0..self.nodes {
                self.heartbeat(i as u8, queued, drain && i == 0);
            }
            return;
        }
        let id = NodeId(u16::from(node % SLOTS));
        let report = Telemetry {
            max_slots: 4,
            free_slots: 2,
            queued: u16::from(queued % 8),
            drain,
            ..Telemetry::default()
        };
        let r = self.router.handle_heartbeat(id, report, self.now);
        assert_eq!(
            r.is_err(),
            usize::from(id.0) >= self.nodes,
            "heartbeat for {id}: {r:?}"
        );
        self.log.push(Record::Heartbeat(r));
    }

    fn set_mode(&mut self, node: u8, mode: ModeKind) {
        let id = NodeId(u16::from(node % SLOTS));
        let r = self.router.set_mode(id, mode.mode(), self.now);
        assert_eq!(
            r.is_err(),
            usize::from(id.0) >= self.nodes,
            "set_mode for {id}: {r:?}"
        );
        if r.is_ok() {
            assert_eq!(self.router.node(id).map(|n| n.mode), Some(mode.mode()));
        }
        self.log.push(Record::SetMode(r));
    }

    fn wakeup(&mut self) {
        let w = self.router.poll_wakeup();
        self.log.push(Record::Wakeup(w));
        if let Some(trace) = w {
            let k = self.call_of(trace);
            self.stats.wakeups += 1;
            self.drain(k);
        }
    }
}
