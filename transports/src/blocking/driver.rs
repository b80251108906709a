//! [`Driver`]: the router, the ureq agent and the clock, shared by every
//! thread that makes calls; and the loop that runs one call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use drover_core::call::{Action, AttemptId, Event, Handled, Outcome, Request};
use drover_core::catalog::ModelId;
use drover_core::config::ConfigError;
use drover_core::node::NodeId;
use drover_core::shared::{CallHandle, SharedRouter};
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant};

use super::attempt::{self, AttemptMsg};
use super::stream::ChunkStream;
use super::{CallError, DriverConfig, Exchange, Reply};

/// The shared part of a [`Driver`].
pub(super) struct Inner<const N: usize, const C: usize, const Q: usize> {
    pub(super) router: SharedRouter<N, C, Q>,
    agent: ureq::Agent,
    cfg: DriverConfig,
    epoch: std::time::Instant,
    /// Queued calls waiting for a grant, by trace id: true once granted.
    waiting: Mutex<HashMap<u64, bool>>,
    granted: Condvar,
}

impl<const N: usize, const C: usize, const Q: usize> Inner<N, C, Q> {
    /// The core's clock: time since the driver was built.
    pub(super) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The wall-clock instant of a core instant.
    fn wall(&self, at: Instant) -> std::time::Instant {
        self.epoch + std::time::Duration::from_nanos(at.as_nanos())
    }

    /// Hands every pending grant of the router to its waiting call.
    pub(super) fn deliver_wakeups(&self) {
        let mut any = false;
        while let Some(trace) = self.router.poll_wakeup() {
            let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            // A grant for a call nobody waits for (it was dropped) is ignored.
            if let Some(g) = w.get_mut(&trace.0) {
                *g = true;
                any = true;
            }
        }
        if any {
            self.granted.notify_all();
        }
    }

    /// Sleeps until `trace` is granted or `until` passes.
    fn wait_for_grant(&self, trace: TraceId, until: std::time::Instant) {
        self.deliver_wakeups();
        let mut w = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        w.entry(trace.0).or_insert(false);
        loop {
            if w.get(&trace.0).copied().unwrap_or(true) {
                break;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            w = self
                .granted
                .wait_timeout(w, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        w.remove(&trace.0);
    }
}

/// Runs calls of one router synchronously; cheap to clone (an `Arc`),
/// `Send + Sync`, so one driver serves many threads. See the
/// [module docs](super).
pub struct Driver<const N: usize, const C: usize = 1024, const Q: usize = 256> {
    inner: Arc<Inner<N, C, Q>>,
}

impl<const N: usize, const C: usize, const Q: usize> Clone for Driver<N, C, Q> {
    fn clone(&self) -> Self {
        Driver {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<const N: usize, const C: usize, const Q: usize> std::fmt::Debug for Driver<N, C, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("router", &self.inner.router)
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

/// What the call loop ends with.
pub(super) enum Won<D> {
    Full(Reply),
    Stream {
        head: Vec<u8>,
        reader: ureq::BodyReader<'static>,
        decoder: D,
        done: bool,
        attempt: AttemptId,
        node: NodeId,
    },
}

impl<const N: usize, const C: usize, const Q: usize> Driver<N, C, Q> {
    /// A driver for `router`. Hedging is turned off in the router's config
    /// (a blocking driver runs one attempt at a time).
    ///
    /// # Errors
    ///
    /// The router refused its config with hedging off (it never should).
    pub fn new(router: SharedRouter<N, C, Q>, cfg: DriverConfig) -> Result<Self, ConfigError> {
        router.with_mut(|r| {
            let mut rc = *r.config();
            if rc.hedge.enabled {
                rc.hedge.enabled = false;
                r.set_config(rc)?;
            }
            Ok::<(), ConfigError>(())
        })?;
        let agent_cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .no_delay(true)
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(cfg.max_idle_per_node.saturating_mul(N).max(1))
            .max_idle_connections_per_host(cfg.max_idle_per_node.max(1))
            .build();
        Ok(Driver {
            inner: Arc::new(Inner {
                router,
                agent: ureq::Agent::new_with_config(agent_cfg),
                cfg,
                epoch: std::time::Instant::now(),
                waiting: Mutex::new(HashMap::new()),
                granted: Condvar::new(),
            }),
        })
    }

    /// The ureq agent (shared keep-alive pool).
    pub(super) fn agent(&self) -> &ureq::Agent {
        &self.inner.agent
    }

    /// Hands pending queue grants to their waiting calls.
    pub(super) fn deliver_wakeups(&self) {
        self.inner.deliver_wakeups();
    }

    /// The router (metrics, nodes, trace, permits).
    pub fn router(&self) -> &SharedRouter<N, C, Q> {
        &self.inner.router
    }

    /// The driver's settings.
    pub fn config(&self) -> &DriverConfig {
        &self.inner.cfg
    }

    /// The core's clock (time since the driver was built), for the `now`
    /// of router calls made beside the driver (heartbeats, modes, probes).
    pub fn now(&self) -> Instant {
        self.inner.now()
    }

    /// Runs a non-streamed call (`ex.is_stream()` false) to its end.
    ///
    /// # Errors
    ///
    /// The call was rejected, every attempt failed, or a node refused the
    /// request as invalid.
    pub fn call<E: Exchange>(&self, req: Request, ex: &E) -> Result<Reply, CallError> {
        let (h, won) = self.run(req, ex)?;
        drop(h);
        match won {
            Won::Full(reply) => Ok(reply),
            // The loop only returns a stream for a streamed exchange.
            Won::Stream { .. } => Err(CallError::Internal("a stream for a non-streamed call")),
        }
    }

    /// Runs a streamed call (`ex.is_stream()` true) until its first token,
    /// failing over before it as needed; the rest comes from the returned
    /// iterator.
    ///
    /// # Errors
    ///
    /// As [`call`](Driver::call), before the first token.
    pub fn stream<E: Exchange>(
        &self,
        req: Request,
        ex: &E,
    ) -> Result<ChunkStream<E::Decoder, N, C, Q>, CallError> {
        let (h, won) = self.run(req, ex)?;
        match won {
            Won::Stream {
                head,
                reader,
                decoder,
                done,
                attempt,
                node,
            } => Ok(ChunkStream::new(
                self.inner.clone(),
                h,
                attempt,
                node,
                head,
                reader,
                decoder,
                done,
            )),
            Won::Full(_) => Err(CallError::Internal("a whole answer for a streamed call")),
        }
    }

    /// The call loop: poll, run attempts one at a time, feed their events,
    /// until the first token of a stream or the call's outcome.
    #[allow(clippy::type_complexity)] // the handle and what won, once per call
    fn run<E: Exchange>(
        &self,
        req: Request,
        ex: &E,
    ) -> Result<(CallHandle<N, C, Q>, Won<E::Decoder>), CallError> {
        let inner = &*self.inner;
        let started = inner.now();
        let call_timeout: Duration = inner.router.with(|r| r.config().call_timeout);
        let body_end = inner.wall(started + call_timeout);
        let trace = req.trace;
        let mut h = inner.router.begin(req, started);
        let mut queued: VecDeque<(AttemptId, NodeId, Option<ModelId>)> = VecDeque::new();
        let mut won: Option<Won<E::Decoder>> = None;
        let mut client_error: Option<(u16, String)> = None;
        let mut detail = String::new();
        loop {
            let now = inner.now();
            match h.poll(now) {
                Action::Send {
                    attempt,
                    node,
                    model,
                    ..
                } => queued.push_back((attempt, node, model)),
                Action::Cancel { attempt, .. } => queued.retain(|(a, _, _)| *a != attempt),
                Action::Wait { until } => {
                    if matches!(won, Some(Won::Stream { .. })) {
                        if let Some(w) = won.take() {
                            return Ok((h, w));
                        }
                    }
                    let until_wall = until.map(|u| inner.wall(u));
                    if let Some((id, node, model)) = queued.pop_front() {
                        let deadline = until_wall.unwrap_or(body_end);
                        let msg = attempt::run(
                            &inner.agent,
                            &inner.cfg,
                            ex,
                            node,
                            model,
                            deadline,
                            body_end,
                        );
                        if matches!(msg, AttemptMsg::TimedOut(_)) {
                            // ureq's timeouts are relative to the attempt's
                            // phases; should one fire a hair before the
                            // core's deadline, wait for it, so that the core
                            // fails the attempt with the right timeout.
                            let left =
                                deadline.saturating_duration_since(std::time::Instant::now());
                            std::thread::sleep(left);
                        }
                        self.report(
                            &mut h,
                            id,
                            node,
                            msg,
                            &mut won,
                            &mut client_error,
                            &mut detail,
                        );
                        continue;
                    }
                    match until_wall {
                        Some(u) if h.call().is_queued() => inner.wait_for_grant(trace, u),
                        Some(u) => std::thread::sleep(
                            u.saturating_duration_since(std::time::Instant::now()),
                        ),
                        // Nothing could ever wake this call: answer rather
                        // than hang (the core does not do this).
                        None => {
                            return Err(CallError::Internal(
                                "the router waits with nothing in flight",
                            ));
                        }
                    }
                }
                Action::Finish(outcome) => {
                    inner.deliver_wakeups();
                    return match outcome {
                        Outcome::Succeeded { .. } => match won.take() {
                            Some(w) => Ok((h, w)),
                            None => Err(CallError::Internal("success without an answer")),
                        },
                        Outcome::Rejected(r) => Err(CallError::Rejected(r)),
                        Outcome::Failed {
                            failure: drover_core::reason::Failure::ClientError(status),
                            ..
                        } => {
                            let message = client_error
                                .filter(|(s, _)| *s == status)
                                .map(|(_, m)| m)
                                .unwrap_or_default();
                            Err(CallError::UpstreamRejected { status, message })
                        }
                        Outcome::Failed {
                            failure,
                            node,
                            attempts,
                            ..
                        } => Err(CallError::Failed {
                            failure,
                            attempts,
                            node,
                            detail,
                        }),
                        Outcome::Cancelled { .. } => {
                            Err(CallError::Internal("the call was cancelled while running"))
                        }
                    };
                }
                Action::Done => {
                    return Err(CallError::Internal("the call ended without an outcome"));
                }
            }
        }
    }

    /// Feeds what one attempt produced to the core.
    #[allow(clippy::too_many_arguments)] // the loop's state, passed by reference once per attempt
    fn report<D>(
        &self,
        h: &mut CallHandle<N, C, Q>,
        id: AttemptId,
        node: NodeId,
        msg: AttemptMsg<D>,
        won: &mut Option<Won<D>>,
        client_error: &mut Option<(u16, String)>,
        detail: &mut String,
    ) {
        let now = self.inner.now();
        match msg {
            AttemptMsg::Full(body) => {
                if h.handle(Event::FirstByte(id), now) == Handled::Applied
                    && h.handle(Event::Completed(id), now) == Handled::Applied
                {
                    *won = Some(Won::Full(Reply {
                        body,
                        node,
                        attempts: h.call().attempts(),
                    }));
                }
            }
            AttemptMsg::FirstToken {
                head,
                reader,
                decoder,
                done,
            } => {
                if h.handle(Event::FirstByte(id), now) == Handled::Applied {
                    *won = Some(Won::Stream {
                        head,
                        reader,
                        decoder,
                        done,
                        attempt: id,
                        node,
                    });
                }
            }
            AttemptMsg::Failed(f, d) => {
                *detail = d;
                let _ = h.handle(Event::Failed(id, f), now);
            }
            AttemptMsg::TimedOut(d) => {
                // The core's deadline has passed: its next poll fails the
                // attempt with the timeout it was (attempt or TTFT).
                *detail = d;
            }
            AttemptMsg::Overloaded(after) => {
                *detail = "the node is overloaded (429/503)".into();
                let _ = h.handle(Event::Overloaded(id, after), now);
            }
            AttemptMsg::ClientError(status, message) => {
                if h.handle(Event::ClientError(id, status), now) == Handled::Applied {
                    *client_error = Some((status, message));
                }
            }
        }
    }
}
