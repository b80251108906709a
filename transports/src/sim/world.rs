//! The simulated side of a run: the clock, the nodes and every call's and
//! attempt's record. The [`Driver`](super::Driver) owns the gateways and
//! the live calls and hands this world each action to execute, so a live
//! `Call` is polled where it lies, never moved.

use std::collections::VecDeque;

use drover_core::call::{AttemptId, Outcome};
use drover_core::health::Telemetry;
use drover_core::node::NodeId;
use drover_core::probe::{Probe, ProbeOutcome};
use drover_core::reason::Failure;
use drover_core::route::Op;
use drover_core::{Duration, Instant};

use super::check::{self, CallFacts, Violation, ViolationKind};
use super::clock::Clock;
use super::driver::{Ev, SimRouter};
use super::faults::{Change, CrashMode};
use super::record::{AttemptEnd, CallRec, Job, JobState, NIL};
use super::series::TimeSeries;
use super::setup::{Assign, NEVER};
use super::state::{self, JobId, NodeState};
use super::workload::Workload;

/// Clock, nodes and records. See the [module docs](self).
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) clock: Clock<Ev>,
    pub(crate) nodes: Vec<NodeState>,
    /// `NodeId.0` → index in `nodes` (the same in every gateway).
    pub(crate) by_id: Vec<Option<u16>>,
    pub(crate) changes: Vec<(usize, Change)>,
    pub(crate) assign: Assign,
    pub(crate) assign_salt: u64,
    pub(crate) arrivals: Workload,
    /// Calls whose block hashes did not fit the arena (2^32 hashes).
    pub(crate) blocks_dropped: u64,
    pub(crate) calls: Vec<CallRec>,
    /// Calls not yet arrived, in time order.
    pub(crate) pending: VecDeque<u32>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) series: TimeSeries,
    pub(crate) beat_armed: Vec<bool>,
    /// Every heartbeat sent: the node and its report (delivered by index).
    pub(crate) beats: Vec<(u16, Telemetry)>,
    /// Calls with an outcome.
    pub(crate) finished: usize,
    /// Poll timers in the clock that no longer count.
    pub(crate) dead_timers: usize,
    pub(crate) events: u64,
    pub(crate) budget: u64,
    pub(crate) stalled: bool,
    /// Every probe a router sent: its gateway, the probe and its answer
    /// (delivered by index; a hung node's probe is never answered).
    pub(crate) probes: Vec<(u16, Probe, ProbeOutcome)>,
    /// Probe reply latencies.
    pub(crate) probe_rng: fastrand::Rng,
    pub(crate) violation: Option<Violation>,
    /// Test only: deliver corrupted replies as if valid (a transport that
    /// skips validation), so the checker's catch can be tested.
    #[cfg(test)]
    pub(crate) accept_invalid: bool,
}

impl World {
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// True while some call has not arrived or not finished.
    pub(crate) fn busy(&self) -> bool {
        !self.pending.is_empty() || self.finished < self.calls.len()
    }

    /// Node index of a router node id.
    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        self.by_id
            .get(usize::from(id.0))
            .copied()
            .flatten()
            .map(usize::from)
    }

    /// Records that call `c` broke an invariant, unless an earlier
    /// violation was recorded (the first one stops the run).
    pub(crate) fn fail(&mut self, c: usize, kind: ViolationKind, node: Option<NodeId>) {
        if self.violation.is_none() {
            self.violation = Some(self.violation_of(c, kind, node));
        }
    }

    pub(crate) fn violation_of(
        &self,
        c: usize,
        kind: ViolationKind,
        node: Option<NodeId>,
    ) -> Violation {
        let name = node
            .and_then(|id| self.index_of(id))
            .map(|i| self.nodes[i].spec.name.clone());
        Violation {
            seed: self.seed,
            call: c as u64,
            gateway: usize::from(self.calls[c].gateway),
            at: self.clock.now(),
            node: name,
            kind,
        }
    }

    /// What the checker needs to know about call `c`.
    pub(crate) fn facts(&self, c: usize) -> CallFacts {
        let rec = &self.calls[c];
        let valid_reply = self
            .jobs
            .get(rec.completed_job as usize)
            .filter(|j| j.end == AttemptEnd::Completed && !j.corrupt)
            .and_then(|j| self.nodes.get(usize::from(j.node)))
            .map(|n| n.id);
        CallFacts {
            committed: rec.committed,
            finished: rec.outcome.is_some(),
            sent: rec.sends,
            valid_reply,
        }
    }

    /// The time-series bucket of now, grown as needed.
    pub(crate) fn bucket(&mut self) -> usize {
        let nodes = &self.nodes;
        self.series.reach(self.clock.now(), |n| nodes[n].holding())
    }

    pub(crate) fn attempt_failed(&mut self) {
        let b = self.bucket();
        self.series.attempt_failed(b);
    }

    /// Records call `c`'s outcome, after checking it.
    pub(crate) fn finish(&mut self, c: usize, outcome: Outcome) {
        if let Err(kind) = check::on_finish(&outcome, self.facts(c)) {
            let node = match outcome {
                Outcome::Succeeded { node, .. } => Some(node),
                Outcome::Failed { node, .. } => node,
                _ => None,
            };
            return self.fail(c, kind, node);
        }
        let now = self.clock.now();
        let rec = &mut self.calls[c];
        rec.outcome = Some(outcome);
        rec.end = now;
        if rec.poll_at != NEVER {
            rec.poll_at = NEVER;
            self.dead_timers += 1;
        }
        self.finished += 1;
        if matches!(outcome, Outcome::Failed { .. }) {
            let b = self.bucket();
            self.series.call_failed(b);
        }
    }

    /// Keeps at most one poll timer per call, at the earliest time asked
    /// for, and none when one of the call's attempts will report (and so
    /// drive the call) by then anyway: in a healthy run timeouts never
    /// fire, and their timers never enter the heap.
    pub(crate) fn arm_poll(&mut self, c: usize, at: Instant) {
        let at = at.max(self.clock.now());
        let rec = self.calls[c];
        if at >= rec.poll_at {
            return;
        }
        let mut j = rec.last_job;
        while let Some(job) = self.jobs.get(j as usize) {
            if matches!(job.state, JobState::Serving | JobState::Replying) && job.due <= at {
                return;
            }
            j = job.prev;
        }
        if rec.poll_at != NEVER {
            self.dead_timers += 1;
        }
        self.calls[c].poll_at = at;
        self.clock.schedule(at, Ev::Poll(c as u32));
    }

    /// Executes a `Send` that `router` (gateway `g`) asked for, after
    /// checking it: the attempt arrives at its node.
    pub(crate) fn send(
        &mut self,
        router: &SimRouter,
        c: usize,
        attempt: AttemptId,
        node: NodeId,
        hedge: bool,
    ) {
        let now = self.clock.now();
        if let Err(kind) = check::on_send(router, node, now, self.facts(c)) {
            self.fail(c, kind, Some(node));
        }
        let n = self.index_of(node);
        let job = self.jobs.len() as JobId;
        if self.jobs.len() == self.jobs.capacity() {
            // Grow by the calls still to come rather than by doubling.
            self.jobs.reserve(self.calls.len().saturating_sub(c) + 1024);
        }
        let rec = &mut self.calls[c];
        rec.sends = rec.sends.saturating_add(1);
        if rec.first_send == NEVER {
            rec.first_send = now;
        }
        self.jobs.push(Job {
            call: c as u32,
            prev: rec.last_job,
            sent: now,
            due: NEVER,
            node: n.map_or(u16::MAX, |n| n as u16),
            slot: u16::MAX,
            attempt,
            state: JobState::Queued,
            hedge,
            first_byte: false,
            corrupt: false,
            crashed: false,
            end: AttemptEnd::Open,
        });
        rec.last_job = job;
        let Some(n) = n else {
            // Not a node of ours (the violation is recorded above).
            return self.reply(job, Duration::ZERO, Ev::Fail(job, Failure::Connect));
        };
        let b = self.bucket();
        self.series.started(b, n);
        let latency = self.nodes[n].spec.reply_latency;
        match self.nodes[n].arrive(job) {
            state::Arrival::Refused => self.reply(job, latency, Ev::Fail(job, Failure::Connect)),
            state::Arrival::Hung => self.jobs[job as usize].state = JobState::Hung,
            state::Arrival::Fails => {
                self.reply(job, latency, Ev::Fail(job, Failure::Upstream5xx(500)))
            }
            state::Arrival::Overloaded(ra) => {
                let ra = ra.map_or(u64::MAX, |d| d.as_nanos().min(u64::MAX - 1));
                self.reply(job, latency, Ev::Overloaded(job, ra))
            }
            state::Arrival::Started(slot) => {
                self.jobs[job as usize].slot = slot;
                self.serve(job)
            }
            state::Arrival::Queued => {}
        }
        self.series.held(b, n, self.nodes[n].holding());
    }

    fn reply(&mut self, job: JobId, after: Duration, ev: Ev) {
        let due = self.clock.now() + after;
        let j = &mut self.jobs[job as usize];
        j.state = JobState::Replying;
        j.due = due;
        self.clock.schedule(due, ev);
    }

    /// A job got a slot: schedule its first byte and completion, or the
    /// moment its corrupted reply is found out.
    pub(crate) fn serve(&mut self, job: JobId) {
        let now = self.clock.now();
        #[cfg(test)]
        let validates = !self.accept_invalid;
        #[cfg(not(test))]
        let validates = true;
        let j = &mut self.jobs[job as usize];
        j.state = JobState::Serving;
        let a = &self.arrivals[j.call as usize];
        let node = &mut self.nodes[usize::from(j.node)];
        let blocks = self.arrivals.blocks(a.prefix_blocks);
        let blocks = (!blocks.is_empty()).then_some(blocks);
        let s = node.service(a.op, a.prompt_tokens, a.output_tokens, blocks);
        j.corrupt = node.corrupts();
        if j.corrupt && validates {
            let found = if a.op == Op::Stream {
                s.first_byte
            } else {
                s.total
            };
            j.due = now + found;
            self.clock.schedule(j.due, Ev::Invalid(job));
            return;
        }
        if a.op == Op::Stream {
            self.clock.schedule(now + s.first_byte, Ev::FirstByte(job));
        }
        j.due = now + s.total;
        self.clock.schedule(j.due, Ev::Completed(job));
    }

    /// Ends a job; if it held a place at its node, the next queued job
    /// takes the freed slot.
    pub(crate) fn retire(&mut self, job: JobId, end: AttemptEnd) {
        let j = &mut self.jobs[job as usize];
        let was_held = matches!(j.state, JobState::Queued | JobState::Serving);
        j.state = JobState::Gone;
        if j.end == AttemptEnd::Open {
            j.end = end;
        }
        let (n, slot) = (usize::from(j.node), j.slot);
        if was_held {
            let slot = (slot != u16::MAX).then_some(slot);
            if let Some((next, s)) = self.nodes[n].release(job, slot) {
                self.jobs[next as usize].slot = s;
                self.serve(next);
            }
        }
    }

    /// Executes a `Cancel`: the attempt is dropped wherever it is.
    pub(crate) fn cancel(&mut self, c: usize, attempt: AttemptId) {
        let mut at = self.calls[c].last_job;
        while let Some(j) = self.jobs.get(at as usize) {
            if j.attempt == attempt {
                if j.state != JobState::Gone {
                    self.retire(at, AttemptEnd::Cancelled);
                }
                return;
            }
            at = j.prev;
        }
    }

    /// Node `n` goes down (again): what it held fails now.
    pub(crate) fn crash(&mut self, n: usize, mode: CrashMode) {
        let now = self.clock.now();
        for job in self.nodes[n].crash(mode) {
            let j = &mut self.jobs[job as usize];
            let failure = if j.first_byte {
                Failure::BrokenStream
            } else {
                Failure::Connect
            };
            j.crashed = true;
            j.state = JobState::Replying;
            j.due = now;
            self.clock.schedule(now, Ev::Fail(job, failure));
        }
    }

    /// A job's final event: `Some((call, attempt))` when it still counts
    /// (and is now over, with `end`), `None` when it was dropped meanwhile.
    pub(crate) fn conclude(
        &mut self,
        job: JobId,
        expect: JobState,
        end: AttemptEnd,
    ) -> Option<(usize, AttemptId)> {
        let j = &self.jobs[job as usize];
        if j.state != expect {
            return None;
        }
        let (c, attempt) = (j.call as usize, j.attempt);
        if expect == JobState::Serving {
            self.retire(job, end);
        } else {
            let j = &mut self.jobs[job as usize];
            j.state = JobState::Gone;
            j.end = end;
        }
        if !matches!(end, AttemptEnd::Completed) {
            self.attempt_failed();
        }
        Some((c, attempt))
    }

    /// Attempts not over yet.
    pub(crate) fn open_attempts(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state != JobState::Gone)
            .count()
    }

    /// The gateway of a call arriving now.
    pub(crate) fn gateway_for(&self, c: usize, gateways: usize) -> usize {
        match self.assign {
            Assign::RoundRobin => c % gateways,
            Assign::Hash => {
                let key = self.arrivals[c].session.unwrap_or(c as u64);
                (super::seed::derive(self.assign_salt, key) % gateways as u64) as usize
            }
        }
    }

    /// Marks a call's live slot free; returns the slot.
    pub(crate) fn release_slot(&mut self, c: usize) -> Option<u32> {
        let rec = &mut self.calls[c];
        let slot = std::mem::replace(&mut rec.live, NIL);
        if rec.poll_at != NEVER {
            rec.poll_at = NEVER;
            self.dead_timers += 1;
        }
        (slot != NIL).then_some(slot)
    }
}
