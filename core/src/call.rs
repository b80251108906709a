//! The call lifecycle: admission, attempts, failover, TTFT fast-fail and
//! hedging, ending in exactly one [`Outcome`].
//!
//! A [`Call`] is owned by the driver (one per client request) and advanced
//! only through its router: [`Router::poll`] returns the next [`Action`] and
//! [`Router::handle`] feeds an [`Event`] back. The driver loop is:
//!
//! 1. `poll` until it returns [`Action::Wait`]; execute each `Send` and
//!    `Cancel` as it comes;
//! 2. sleep until the `Wait` deadline, an attempt's event, or a wakeup from
//!    [`Router::poll_wakeup`], then `handle` what happened and go to 1;
//! 3. stop after [`Action::Finish`]; later polls return [`Action::Done`].
//!
//! ```text
//!  New ──admit──▶ Running ──first byte──▶ Streaming ──completed──▶ Done
//!   │  └─no room─▶ Queued ──granted──▶ Running │                   ▲
//!   └──reject──────────────────────────────────┴──fail / cancel────┘
//! ```
//!
//! Rules, as the driver sees them:
//!
//! - **Failover only before the first byte.** A failed attempt is retried on
//!   the next candidate (untried, eligible, not saturated) while fewer than
//!   `max_attempts` have been sent. After [`Event::FirstByte`] the answer is
//!   committed to the client: a failure then ends the call with
//!   `after_first_byte: true` and the failure named.
//! - **Failover goes to untried nodes only.** A retry is sent to a node this
//!   call has not tried; when none is eligible (all tried, ejected, excluded)
//!   the call ends with its last failure rather than repeat a node.
//! - **Retries and hedges are budgeted.** Every attempt after the first
//!   needs the router-wide [`RetryBudget`](crate::config::RetryBudget): a
//!   token and room under its concurrency bound. A denied failover ends the
//!   call with its last failure (trace: [`TraceEvent::RetryDenied`]).
//! - **Timeouts are the router's to notice.** At each poll, an attempt past
//!   `attempt_timeout`, or a stream past `ttft_timeout` with no first byte,
//!   is failed (charging the node), a `Cancel` is issued for it and the call
//!   fails over. The call's own deadline (`call_timeout`) covers every
//!   attempt: no attempt starts at or after it, no `Wait` reaches past it,
//!   and at it the call ends with [`Failure::DeadlineExceeded`] (if a failure
//!   is reported at or after the deadline, the call ends the same way instead
//!   of failing over).
//! - **A client cancel never counts against a node**: attempts are cancelled
//!   as abandoned, releasing half-open probes without a verdict.
//! - **429/503** starts the node's overload cooldown and fails over without
//!   touching its breaker; a **4xx** client error ends the call at once,
//!   uncharged and unretried (it never counts against the node).
//! - **Every node ejected.** When every otherwise eligible node's breaker is
//!   open, a new call fails fast with
//!   [`NoNode::AllBreakersOpen`](crate::reason::NoNode::AllBreakersOpen),
//!   whose `retry_after` is the time until the earliest breaker turns
//!   half-open ([`Reject::retry_after`]). There is no panic mode that tries
//!   ejected nodes anyway: the half-open trial (a call, or a health probe
//!   with [`probe`](crate::probe) on) is what brings a node back.
//! - **Hedging** (off by default): once the first attempt has run for the
//!   hedge delay (a quantile of recent TTFT) without a first byte, and the
//!   budget has a token, a second attempt goes to another node. The first to
//!   produce a first byte (or complete) wins; the other is cancelled.

use heapless::{Deque, Vec};

use crate::admission::{Permit, Pool, Priority, QueuedState, Refusal, Ticket, TicketStatus};
use crate::breaker::BreakerTicket;
use crate::config::{MAX_ATTEMPTS, RouterConfig};
use crate::node::{Node, NodeId, NodeTable};
use crate::reason::{Failure, Reject};
use crate::route::{Op, Plan};
use crate::router::{Router, Waiting};
use crate::time::{Duration, Instant};
use crate::trace::TraceId;

pub use types::{Action, AttemptId, Event, Handled, Outcome, Request, TraceEvent};

#[derive(Clone, Copy, Debug)]
struct Attempt {
    id: AttemptId,
    node: NodeId,
    /// Guards against the slot being reused by another node meanwhile.
    node_hash: u64,
    sent: Instant,
    deadline: Instant,
    ttft_deadline: Instant,
    hedge: bool,
    /// The breaker's token for this attempt's verdict.
    ticket: BreakerTicket,
    /// A retry or hedge: counted by the retry budget while in flight.
    budgeted: bool,
}

/// What [`Router::send_next`] managed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Sent,
    /// No untried eligible node with room.
    NoNode,
    /// A node was there; the retry budget refused.
    Denied,
}

#[derive(Debug)]
enum State {
    New,
    Queued { ticket: Ticket, since: Instant },
    Running,
    Streaming { winner: AttemptId },
    Done,
}

/// One client request's journey. See the [module docs](self).
#[derive(Debug)]
pub struct Call {
    req: Request,
    started: Instant,
    deadline: Instant,
    state: State,
    permit: Option<Permit>,
    plan: Plan,
    plan_next: usize,
    tried: Vec<NodeId, MAX_ATTEMPTS>,
    live: Vec<Attempt, 2>,
    sent: u8,
    hedged: bool,
    last_failure: Option<(Failure, NodeId)>,
    pending: Deque<Action, 4>,
}

impl Call {
    pub(crate) fn new(req: Request, now: Instant, cfg: &RouterConfig) -> Self {
        Call {
            req,
            started: now,
            deadline: now + cfg.call_timeout,
            state: State::New,
            permit: None,
            plan: Plan::new(),
            plan_next: 0,
            tried: Vec::new(),
            live: Vec::new(),
            sent: 0,
            hedged: false,
            last_failure: None,
            pending: Deque::new(),
        }
    }
    /// The call's trace id.
    pub fn trace(&self) -> TraceId {
        self.req.trace
    }
    /// The request it was started with.
    pub fn request(&self) -> &Request {
        &self.req
    }
    /// True once the outcome has been produced.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }
    /// True while waiting in the admission queue.
    pub fn is_queued(&self) -> bool {
        matches!(self.state, State::Queued { .. })
    }
    /// True once the first byte has gone to the client.
    pub fn is_committed(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }
    /// Attempts sent so far.
    pub fn attempts(&self) -> u8 {
        self.sent
    }
    /// Nodes tried so far, in order.
    pub fn tried(&self) -> &[NodeId] {
        &self.tried
    }
    fn push(&mut self, a: Action) {
        // At most: two cancels, one send and one finish are queued between polls.
        let _ = self.pending.push_back(a);
    }
}

impl<const N: usize, const C: usize, const Q: usize> Router<N, C, Q> {
    /// The call's next action. See the [`call` module](crate::call) for the loop.
    pub fn poll(&mut self, call: &mut Call, now: Instant) -> Action {
        loop {
            if let Some(a) = call.pending.pop_front() {
                return a;
            }
            match call.state {
                State::Done => return Action::Done,
                State::New => self.admit(call, now),
                State::Queued { ticket, since } => {
                    if now >= call.deadline {
                        self.unreserve(ticket);
                        if let Some(p) = self.admission.cancel(ticket) {
                            self.release(p);
                        }
                        self.give_up(call, Reject::QueueWaitExpired, now);
                        continue;
                    }
                    match self.admission.take(ticket, now) {
                        TicketStatus::Waiting { deadline } => {
                            self.pump(now);
                            if self
                                .admission
                                .peek(ticket)
                                .is_some_and(|q| q.state == QueuedState::Waiting)
                            {
                                return Action::Wait {
                                    until: Some(deadline.min(call.deadline)),
                                };
                            }
                        }
                        TicketStatus::Granted(permit) => {
                            self.unreserve(ticket);
                            self.metrics
                                .op_mut(call.req.query.op)
                                .queue_wait
                                .record(now - since);
                            self.record(call.req.trace, now, TraceEvent::Granted);
                            self.begin(call, permit, now);
                        }
                        TicketStatus::Expired | TicketStatus::Unknown => {
                            self.give_up(call, Reject::QueueWaitExpired, now)
                        }
                    }
                }
                State::Running | State::Streaming { .. } => {
                    if let Some(a) = self.tick(call, now) {
                        return a;
                    }
                }
            }
        }
    }

    /// Feeds an event for `call`.
    pub fn handle(&mut self, call: &mut Call, event: Event, now: Instant) -> Handled {
        if call.is_finished() {
            return Handled::Stale;
        }
        let attempt_of = |call: &Call, id: AttemptId| call.live.iter().position(|a| a.id == id);
        match event {
            Event::ClientCancelled => {
                if let State::Queued { ticket, .. } = call.state {
                    self.unreserve(ticket);
                    if let Some(p) = self.admission.cancel(ticket) {
                        self.release(p);
                    }
                }
                let committed = call.is_committed();
                self.cancel_all(call, now);
                self.finish(
                    call,
                    Outcome::Cancelled {
                        after_first_byte: committed,
                    },
                    now,
                );
            }
            Event::FirstByte(id) => {
                let Some(i) = attempt_of(call, id) else {
                    return Handled::Stale;
                };
                if call.is_committed() {
                    return Handled::Stale;
                }
                let a = call.live[i];
                let ttft = now - a.sent;
                if call.req.query.op == Op::Stream {
                    if let Some(n) = live(&mut self.nodes, &a) {
                        n.ttft.observe(ttft, now, &self.cfg.ewma);
                    }
                    self.baseline.observe(Op::Stream, ttft);
                    if let Some(m) = self.metrics.node_mut(a.node) {
                        m.ttft.record(ttft);
                    }
                }
                self.metrics
                    .op_mut(call.req.query.op)
                    .ttft
                    .record(now - call.started);
                if a.hedge {
                    self.metrics.hedges_won += 1;
                }
                call.state = State::Streaming { winner: id };
                self.record(
                    call.req.trace,
                    now,
                    TraceEvent::FirstByte {
                        attempt: id,
                        node: a.node,
                    },
                );
                self.cancel_others(call, id, now);
            }
            Event::Completed(id) => {
                let Some(i) = attempt_of(call, id) else {
                    return Handled::Stale;
                };
                let a = call.live.swap_remove(i);
                self.attempt_ended(&a);
                let latency = now - a.sent;
                let op = call.req.query.op;
                if let Some(n) = live(&mut self.nodes, &a) {
                    n.in_flight = n.in_flight.saturating_sub(1);
                    n.breaker.on_success(a.ticket, now);
                    match op {
                        Op::Chat => n.chat_latency.observe(latency, now, &self.cfg.ewma),
                        Op::Embed => n.embed_latency.observe(latency, now, &self.cfg.ewma),
                        Op::Stream => {}
                    }
                }
                if op != Op::Stream {
                    self.baseline.observe(op, latency);
                }
                if let Some(m) = self.metrics.node_mut(a.node) {
                    m.succeeded += 1;
                    if op != Op::Stream {
                        m.latency.record(latency);
                    }
                }
                if !call.is_committed() {
                    self.metrics.op_mut(op).ttft.record(now - call.started);
                    if a.hedge {
                        self.metrics.hedges_won += 1;
                    }
                }
                self.cancel_all(call, now);
                self.metrics.op_mut(op).latency.record(now - call.started);
                self.finish(
                    call,
                    Outcome::Succeeded {
                        node: a.node,
                        attempts: call.sent,
                    },
                    now,
                );
            }
            Event::Failed(id, failure) => {
                let Some(i) = attempt_of(call, id) else {
                    return Handled::Stale;
                };
                let a = call.live.swap_remove(i);
                self.attempt_failed(call, a, failure, now);
            }
            Event::Overloaded(id, retry_after) => {
                let Some(i) = attempt_of(call, id) else {
                    return Handled::Stale;
                };
                let a = call.live.swap_remove(i);
                self.attempt_ended(&a);
                let overload_cfg = self.cfg.overload;
                if let Some(n) = live(&mut self.nodes, &a) {
                    n.in_flight = n.in_flight.saturating_sub(1);
                    n.breaker.on_abandoned(a.ticket, now);
                    let _ = n.overload.on_overloaded(retry_after, now, &overload_cfg);
                }
                if let Some(m) = self.metrics.node_mut(a.node) {
                    m.overloads += 1;
                }
                self.after_attempt(call, a, Failure::Overloaded, now);
            }
            Event::ClientError(id, status) => {
                let Some(i) = attempt_of(call, id) else {
                    return Handled::Stale;
                };
                let a = call.live.swap_remove(i);
                self.attempt_ended(&a);
                if let Some(n) = live(&mut self.nodes, &a) {
                    n.in_flight = n.in_flight.saturating_sub(1);
                    // The node answered sensibly; the request was at fault.
                    n.breaker.on_success(a.ticket, now);
                }
                let committed = call.is_committed();
                self.cancel_all(call, now);
                let failure = Failure::ClientError(status);
                self.finish(
                    call,
                    Outcome::Failed {
                        failure,
                        node: Some(a.node),
                        after_first_byte: committed,
                        attempts: call.sent,
                    },
                    now,
                );
            }
        }
        self.pump(now);
        Handled::Applied
    }

    /// Admission of a new call.
    fn admit(&mut self, call: &mut Call, now: Instant) {
        let limit = self.cfg.max_payload_bytes;
        if call.req.payload_bytes > limit {
            return self.finish(
                call,
                Outcome::Rejected(Reject::PayloadTooLarge { limit }),
                now,
            );
        }
        let pool = Self::priority_pool(&call.req.query, call.req.background);
        let route = self.route(&call.req.query, &[], now);
        let busy = match route {
            Ok(plan) => match self
                .admission
                .try_acquire(pool, Self::priority_of(call.req.background))
            {
                Ok(permit) => {
                    self.record(call.req.trace, now, TraceEvent::Admitted(pool));
                    call.plan = plan;
                    call.permit = Some(permit);
                    call.state = State::Running;
                    // The route just filtered plan[0] at `now`: send without re-checking.
                    call.plan_next = 1;
                    // A route that succeeds returns at least one node.
                    if let Some(first) = call.plan.first().copied() {
                        self.send_to(call, first, now, false);
                    }
                    return;
                }
                Err(refusal) => refusal_reason(refusal),
            },
            Err(Reject::AllNodesSaturated) => Reject::AllNodesSaturated,
            Err(other) => return self.finish(call, Outcome::Rejected(other), now),
        };
        self.enqueue(call, pool, busy, now);
    }

    /// Puts the call in the queue to wait for capacity. A new call that
    /// cannot wait is refused with `busy` (or the queue's own reason); a call
    /// failing over ends with its last failure.
    fn enqueue(&mut self, call: &mut Call, pool: Pool, busy: Reject, now: Instant) {
        if self.cfg.queue_wait == Duration::ZERO {
            return self.give_up(call, busy, now);
        }
        let deadline = (now + self.cfg.queue_wait).min(call.deadline);
        let waiting = Waiting::new(call.req.query, call.req.trace, &call.tried);
        let priority: Priority = Self::priority_of(call.req.background);
        match self
            .admission
            .enqueue(waiting, pool, priority, now, deadline)
        {
            Ok(ticket) => {
                self.record(call.req.trace, now, TraceEvent::Queued(pool));
                call.state = State::Queued { ticket, since: now };
            }
            Err(refusal) => self.give_up(call, refusal_reason(refusal), now),
        }
    }

    /// Ends a call that cannot go on: refused if it never sent an attempt,
    /// otherwise failed with its last failure.
    fn give_up(&mut self, call: &mut Call, reason: Reject, now: Instant) {
        let outcome = match call.last_failure {
            Some((failure, node)) if call.sent > 0 => Outcome::Failed {
                failure,
                node: Some(node),
                after_first_byte: false,
                attempts: call.sent,
            },
            _ => Outcome::Rejected(reason),
        };
        self.finish(call, outcome, now);
    }

    /// A granted call routes afresh (avoiding nodes it already tried); if
    /// the capacity it was granted for is gone again, it goes back to the
    /// queue.
    fn begin(&mut self, call: &mut Call, permit: Permit, now: Instant) {
        let tried = call.tried.clone();
        match self.route(&call.req.query, &tried, now) {
            Ok(_) if call.sent > 0 && !self.retry_admits() => {
                // A failover that waited for capacity is still a retry.
                self.release(permit);
                self.deny_retry(call.req.trace, now, false);
                self.give_up(call, Reject::QueueWaitExpired, now);
            }
            Ok(plan) => {
                call.plan = plan;
                call.plan_next = 1;
                call.permit = Some(permit);
                call.state = State::Running;
                // A route that succeeds returns at least one node.
                if let Some(first) = call.plan.first().copied() {
                    self.send_to(call, first, now, false);
                }
            }
            Err(Reject::AllNodesSaturated) => {
                self.release(permit);
                let pool = Self::priority_pool(&call.req.query, call.req.background);
                self.enqueue(call, pool, Reject::AllNodesSaturated, now);
            }
            Err(other) => {
                self.release(permit);
                self.give_up(call, other, now);
            }
        }
    }

    /// Timers of a running call. Returns an action when one is due.
    fn tick(&mut self, call: &mut Call, now: Instant) -> Option<Action> {
        if now >= call.deadline {
            let committed = call.is_committed();
            let node = call
                .live
                .first()
                .map(|a| a.node)
                .or(call.last_failure.map(|f| f.1));
            self.cancel_all(call, now);
            let failure = Failure::DeadlineExceeded;
            self.finish(
                call,
                Outcome::Failed {
                    failure,
                    node,
                    after_first_byte: committed,
                    attempts: call.sent,
                },
                now,
            );
            return None;
        }
        let committed = call.is_committed();
        // Attempt and TTFT timeouts apply before the first byte only.
        if !committed {
            if let Some(i) = call
                .live
                .iter()
                .position(|a| now >= a.deadline || now >= a.ttft_deadline)
            {
                let a = call.live.swap_remove(i);
                let failure = if now >= a.ttft_deadline && a.ttft_deadline < a.deadline {
                    Failure::TtftTimeout
                } else {
                    Failure::Timeout
                };
                call.push(Action::Cancel {
                    attempt: a.id,
                    node: a.node,
                });
                self.attempt_failed(call, a, failure, now);
                self.pump(now);
                return None;
            }
            if call.live.is_empty() {
                // Only reachable if a failover could not be sent; finish with the last failure.
                let (failure, node) = call
                    .last_failure
                    .map_or((Failure::Connect, None), |(f, n)| (f, Some(n)));
                self.finish(
                    call,
                    Outcome::Failed {
                        failure,
                        node,
                        after_first_byte: false,
                        attempts: call.sent,
                    },
                    now,
                );
                return None;
            }
            if let Some(at) = self.hedge_at(call) {
                if now >= at {
                    call.hedged = true;
                    let tokens_ok = self.hedge_tokens_milli >= 1000;
                    if tokens_ok {
                        match self.send_next(call, now, true) {
                            Next::Sent => {
                                self.hedge_tokens_milli -= 1000;
                                self.metrics.hedges += 1;
                                return None;
                            }
                            Next::Denied => self.deny_retry(call.req.trace, now, true),
                            Next::NoNode => {}
                        }
                    }
                    self.metrics.hedges_denied += 1;
                }
            }
        }
        let mut until = call.deadline;
        if !committed {
            for a in &call.live {
                until = until.min(a.deadline).min(a.ttft_deadline);
            }
            if let Some(at) = self.hedge_at(call) {
                until = until.min(at);
            }
        }
        Some(Action::Wait { until: Some(until) })
    }

    /// When the hedge for this call is due, if one may be sent.
    fn hedge_at(&self, call: &Call) -> Option<Instant> {
        let h = &self.cfg.hedge;
        let eligible_op = call.req.query.op == Op::Stream || h.non_stream;
        if !h.enabled || !eligible_op || call.hedged || call.live.len() != 1 || call.is_committed()
        {
            return None;
        }
        if usize::from(call.sent) >= usize::from(self.cfg.max_attempts) {
            return None;
        }
        let delay =
            self.metrics
                .hedge_delay(call.req.query.op, h.quantile, h.min_delay, h.max_delay);
        Some(call.live[0].sent + delay)
    }

    fn attempt_failed(&mut self, call: &mut Call, a: Attempt, failure: Failure, now: Instant) {
        self.attempt_ended(&a);
        let op = call.req.query.op;
        let mut opened = false;
        if let Some(n) = live(&mut self.nodes, &a) {
            n.in_flight = n.in_flight.saturating_sub(1);
            if failure.charges_node() {
                opened = n
                    .breaker
                    .on_failure(a.ticket, now, &self.cfg.breaker, &mut self.rng)
                    .is_some();
                if matches!(failure, Failure::Timeout | Failure::TtftTimeout) {
                    // A timeout is a latency sample of at least this much.
                    let elapsed = now - a.sent;
                    match op {
                        Op::Stream => n.ttft.observe(elapsed, now, &self.cfg.ewma),
                        Op::Chat => n.chat_latency.observe(elapsed, now, &self.cfg.ewma),
                        Op::Embed => n.embed_latency.observe(elapsed, now, &self.cfg.ewma),
                    }
                }
            } else {
                n.breaker.on_abandoned(a.ticket, now);
            }
        }
        if let Some(m) = self.metrics.node_mut(a.node) {
            m.failures += 1;
            m.breaker_opens += u64::from(opened);
        }
        self.after_attempt(call, a, failure, now);
    }

    /// After an attempt ended without success: fail over, keep waiting for a
    /// hedge, or finish.
    fn after_attempt(&mut self, call: &mut Call, a: Attempt, failure: Failure, now: Instant) {
        self.record(
            call.req.trace,
            now,
            TraceEvent::AttemptFailed {
                attempt: a.id,
                node: a.node,
                failure,
            },
        );
        call.last_failure = Some((failure, a.node));
        if let State::Streaming { winner } = call.state {
            if winner == a.id {
                self.cancel_all(call, now);
                let outcome = Outcome::Failed {
                    failure,
                    node: Some(a.node),
                    after_first_byte: true,
                    attempts: call.sent,
                };
                self.finish(call, outcome, now);
            }
            return;
        }
        if !call.live.is_empty() {
            return; // the other attempt (a hedge) may still answer
        }
        if now >= call.deadline {
            // No attempt starts at or after the call's deadline.
            let outcome = Outcome::Failed {
                failure: Failure::DeadlineExceeded,
                node: Some(a.node),
                after_first_byte: false,
                attempts: call.sent,
            };
            return self.finish(call, outcome, now);
        }
        if usize::from(call.sent) < usize::from(self.cfg.max_attempts) {
            let next = self.send_next(call, now, false);
            if next == Next::Sent {
                return;
            }
            if next == Next::Denied {
                self.deny_retry(call.req.trace, now, false);
            }
            // Untried nodes exist but are all full: wait for one in the queue
            // rather than fail a call that a moment's patience would save.
            let tried = call.tried.clone();
            if next == Next::NoNode
                && self.cfg.queue_wait > Duration::ZERO
                && self.route(&call.req.query, &tried, now) == Err(Reject::AllNodesSaturated)
            {
                if let Some(p) = call.permit.take() {
                    self.release(p);
                }
                let pool = Self::priority_pool(&call.req.query, call.req.background);
                return self.enqueue(call, pool, Reject::AllNodesSaturated, now);
            }
        }
        let outcome = Outcome::Failed {
            failure,
            node: Some(a.node),
            after_first_byte: false,
            attempts: call.sent,
        };
        self.finish(call, outcome, now);
    }

    /// Sends the next attempt: the next still-eligible entry of the plan, or
    /// a fresh route that avoids every node tried. False when none exists.
    /// A draining entry is taken only while no enabled node is eligible: a
    /// node may have started draining since the plan was made.
    fn send_next(&mut self, call: &mut Call, now: Instant, hedge: bool) -> Next {
        let mut chosen = None;
        {
            let ctx = self.ctx(now);
            let q = &call.req.query;
            while call.plan_next < call.plan.len() {
                let id = call.plan[call.plan_next];
                call.plan_next += 1;
                if let Some(n) = self.nodes.get(id) {
                    let usable = match ctx.filter(id, n, q, &call.tried) {
                        Ok(false) => true,
                        Ok(true) => !self
                            .nodes
                            .iter()
                            .any(|(j, m)| ctx.filter(j, m, q, &call.tried) == Ok(false)),
                        Err(_) => false,
                    };
                    if usable {
                        chosen = Some(id);
                        break;
                    }
                }
            }
        }
        if chosen.is_none() {
            if let Ok(plan) = self.route(&call.req.query, &call.tried, now) {
                chosen = plan.first().copied();
                call.plan = plan;
                call.plan_next = 1;
            }
        }
        let Some(node_id) = chosen else {
            return Next::NoNode;
        };
        if call.sent > 0 && !self.retry_admits() {
            return Next::Denied;
        }
        if self.send_to(call, node_id, now, hedge) {
            Next::Sent
        } else {
            Next::NoNode
        }
    }

    /// Starts an attempt on `node_id`, which the caller has just found
    /// eligible at `now`. False if the node is gone.
    fn send_to(&mut self, call: &mut Call, node_id: NodeId, now: Instant, hedge: bool) -> bool {
        let Some(node) = self.nodes.get_mut(node_id) else {
            return false;
        };
        node.in_flight += 1;
        let ticket = node.breaker.on_attempt_start(now);
        let budgeted = call.sent > 0;
        let model = call
            .req
            .query
            .model
            .and_then(|m| node.spec.resolve_model(m));
        let attempt = Attempt {
            id: AttemptId(call.sent),
            node: node_id,
            node_hash: node.name_hash,
            sent: now,
            deadline: now + self.cfg.attempt_timeout,
            ttft_deadline: if call.req.query.op == Op::Stream {
                now + self.cfg.ttft_timeout
            } else {
                Instant::MAX
            },
            hedge,
            ticket,
            budgeted,
        };
        if budgeted {
            self.spend_retry();
        }
        if !hedge && call.sent > 0 {
            self.metrics.failovers += 1;
        }
        call.sent += 1;
        // Tried has MAX_ATTEMPTS room and sent <= max_attempts <= MAX_ATTEMPTS; live holds
        // at most the original and one hedge.
        let _ = call.tried.push(node_id);
        let _ = call.live.push(attempt);
        if let Some(m) = self.metrics.node_mut(node_id) {
            m.attempts += 1;
        }
        self.record(
            call.req.trace,
            now,
            TraceEvent::Sent {
                attempt: attempt.id,
                node: node_id,
                hedge,
            },
        );
        call.push(Action::Send {
            attempt: attempt.id,
            node: node_id,
            model,
            hedge,
        });
        true
    }

    /// Cancels every live attempt except `keep`, as abandoned.
    fn cancel_others(&mut self, call: &mut Call, keep: AttemptId, now: Instant) {
        let mut i = 0;
        while i < call.live.len() {
            if call.live[i].id == keep {
                i += 1;
                continue;
            }
            let a = call.live.swap_remove(i);
            self.abandon(call, a, now);
        }
    }

    fn cancel_all(&mut self, call: &mut Call, now: Instant) {
        while let Some(a) = call.live.pop() {
            self.abandon(call, a, now);
        }
    }

    fn abandon(&mut self, call: &mut Call, a: Attempt, now: Instant) {
        self.attempt_ended(&a);
        if let Some(n) = live(&mut self.nodes, &a) {
            n.in_flight = n.in_flight.saturating_sub(1);
            n.breaker.on_abandoned(a.ticket, now);
        }
        if let Some(m) = self.metrics.node_mut(a.node) {
            m.cancelled += 1;
        }
        self.record(
            call.req.trace,
            now,
            TraceEvent::AttemptCancelled {
                attempt: a.id,
                node: a.node,
            },
        );
        call.push(Action::Cancel {
            attempt: a.id,
            node: a.node,
        });
    }

    /// An attempt left `call.live`: the retry budget stops counting it.
    fn attempt_ended(&mut self, a: &Attempt) {
        if a.budgeted {
            self.retry_ended();
        }
    }

    fn release(&mut self, permit: Permit) {
        // A permit held by a call came from this admission and is released once, here.
        let released = self.admission.release(permit);
        debug_assert!(released.is_ok(), "a call's permit is released exactly once");
    }

    fn finish(&mut self, call: &mut Call, outcome: Outcome, now: Instant) {
        if let Some(p) = call.permit.take() {
            self.release(p);
        }
        let m = self.metrics.op_mut(call.req.query.op);
        match outcome {
            Outcome::Succeeded { .. } => m.succeeded += 1,
            Outcome::Failed { failure, .. } => {
                m.failed[crate::metrics::failure_index(failure)] += 1
            }
            Outcome::Rejected(r) => m.rejected[crate::metrics::reject_index(r)] += 1,
            Outcome::Cancelled { .. } => m.cancelled += 1,
        }
        self.record(call.req.trace, now, TraceEvent::Finished(outcome));
        self.active_calls = self.active_calls.saturating_sub(1);
        call.state = State::Done;
        call.push(Action::Finish(outcome));
        self.pump(now);
    }

    fn record(&mut self, trace: TraceId, now: Instant, e: TraceEvent) {
        self.trace.push(trace, now, e);
    }
}

/// The attempt's node, unless its slot now holds a different node.
fn live<'a, const N: usize>(nodes: &'a mut NodeTable<N>, a: &Attempt) -> Option<&'a mut Node> {
    nodes.get_mut(a.node).filter(|n| n.name_hash == a.node_hash)
}

fn refusal_reason(r: Refusal) -> Reject {
    match r {
        Refusal::BusyGlobalPool => Reject::BusyGlobalPool,
        Refusal::BusyPool(p) => Reject::BusyPool(p),
        Refusal::QueueFull => Reject::QueueFull,
        Refusal::QueueWaitExpired => Reject::QueueWaitExpired,
    }
}

mod budget;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_harden;
