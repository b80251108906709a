//! `POST /route/preview` and `GET /trace/{id}` as JSON: the router
//! explaining a decision it would make, and one it made.
//!
//! [`preview_json`] runs [`Router::preview`] (which changes nothing) and
//! writes every node's verdict as it comes, then the plan:
//!
//! ```json
//! {"query":{"op":"chat","model":"llama3","pin":null,"session":false,"prefix":false},
//!  "nodes":[
//!    {"name":"a","verdict":"candidate","score":{"load":1.2,"estimate_ms":40.0,"sampled":true,
//!      "in_flight":1,"reported_queue":0,"reported_busy":0,"weight":1,"tags_match":true,"draining":false}},
//!    {"name":"b","verdict":"excluded","reason":"breaker_open","message":"…","remaining_ms":812.0}],
//!  "plan":["a"],"rejected":null}
//! ```
//!
//! `plan` is the failover order (first = where the call would go); when
//! the router would refuse the call, `plan` is empty and `rejected` holds
//! `{"reason": label, "detail": label or null, "message": text}`.
//!
//! [`trace_json`] renders the trace ring's events of one call, oldest
//! first, with `t_ms` relative to the call's first event still in the ring:
//!
//! ```json
//! {"trace":"00000000000000ab","finished":true,"events":[
//!   {"seq":7,"t_ms":0.000,"event":"admitted","pool":"chat"},
//!   {"seq":8,"t_ms":0.000,"event":"sent","attempt":0,"node":"a","hedge":false},
//!   {"seq":9,"t_ms":20.000,"event":"attempt_failed","attempt":0,"node":"a","failure":"upstream_5xx","status":500,"message":"…"},
//!   {"seq":12,"t_ms":70.000,"event":"finished","outcome":"succeeded","node":"b","attempts":2}]}
//! ```
//!
//! Event names: `admitted`, `queued` (with `pool`), `granted`, `sent`,
//! `first_byte`, `attempt_failed`, `attempt_cancelled`, `finished`
//! (outcome `succeeded`, `failed`, `rejected`, `cancelled`). Nodes are
//! named; a node removed since shows as `n<slot>`.

use drover_core::call::{Outcome, TraceEvent};
use drover_core::reason::{Exclusion, Failure, Reject};
use drover_core::route::{Query, Verdict};
use drover_core::trace::TraceId;
use drover_core::{Instant, Router};

use super::json::Json;
use super::with_node_name;

/// Appends the preview of `query` at `now` (see the [module docs](self)).
pub fn preview_json<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    query: &Query,
    now: Instant,
    out: &mut String,
) {
    let mut j = Json::new(out);
    j.open();
    j.key("query");
    j.open();
    j.kv_str("op", query.op.label());
    j.key("model");
    match query.model {
        Some(m) => match router.catalog().model_name(m) {
            Some(name) => j.str(name),
            None => j.u64(u64::from(m.0)),
        },
        None => j.null(),
    }
    j.key("pin");
    match query.pin {
        Some(id) => with_node_name(router, id, &mut j),
        None => j.null(),
    }
    j.kv_bool("session", query.session.is_some());
    j.kv_bool("prefix", query.prefix.is_some());
    j.close();
    j.key("nodes");
    j.open_arr();
    // The router may judge a node twice (a draining node is first a
    // candidate, then left out when an enabled node is eligible): keep the
    // last verdict of each node.
    let mut verdicts: Vec<(drover_core::node::NodeId, Verdict)> = Vec::new();
    let result = router.preview(query, now, &mut |id, verdict| match verdicts
        .iter_mut()
        .find(|(n, _)| *n == id)
    {
        Some(slot) => slot.1 = verdict,
        None => verdicts.push((id, verdict)),
    });
    for (id, verdict) in verdicts {
        j.open();
        j.key("name");
        with_node_name(router, id, &mut j);
        verdict_fields(&mut j, verdict, now);
        j.close();
    }
    j.close_arr();
    j.key("plan");
    j.open_arr();
    if let Ok(plan) = &result {
        for id in plan {
            with_node_name(router, *id, &mut j);
        }
    }
    j.close_arr();
    j.key("rejected");
    match result {
        Ok(_) => j.null(),
        Err(r) => reject_obj(&mut j, r),
    }
    j.close();
}

fn verdict_fields(j: &mut Json<'_>, v: Verdict, now: Instant) {
    match v {
        Verdict::Candidate(s) => {
            j.kv_str("verdict", "candidate");
            j.key("score");
            j.open();
            j.key("load");
            j.f64(s.load);
            j.key("estimate_ms");
            j.f64(s.estimate_ns / 1e6);
            j.kv_bool("sampled", s.sampled);
            j.kv_u64("in_flight", u64::from(s.in_flight));
            j.kv_u64("reported_queue", u64::from(s.reported_queue));
            j.kv_u64("reported_busy", u64::from(s.reported_busy));
            j.kv_u64("weight", u64::from(s.weight));
            j.kv_bool("tags_match", s.tags_match);
            j.kv_bool("draining", s.draining);
            j.close();
        }
        Verdict::Excluded(e) => {
            j.kv_str("verdict", "excluded");
            j.kv_str("reason", e.label());
            match e {
                Exclusion::BreakerOpen { until } | Exclusion::Overloaded { until } => {
                    j.kv_ms("remaining_ms", until.saturating_since(now).as_nanos());
                }
                _ => {}
            }
        }
    }
}

fn reject_obj(j: &mut Json<'_>, r: Reject) {
    j.open();
    j.kv_str("reason", r.label());
    j.key("detail");
    match r {
        Reject::NoEligibleNode(why) => j.str(why.label()),
        Reject::BusyPool(pool) => j.str(pool.as_str()),
        _ => j.null(),
    }
    j.key("message");
    j.display(&r);
    if let Reject::AllNodesOverloaded { retry_after } = r {
        j.kv_ms("retry_after_ms", retry_after.as_nanos());
    }
    j.close();
}

/// Appends the decision events of `trace` (see the [module docs](self)).
/// Returns `false`, writing nothing, when the ring holds no event of it
/// (unknown id, or overwritten since).
pub fn trace_json<const N: usize, const C: usize, const Q: usize>(
    router: &Router<N, C, Q>,
    trace: TraceId,
    out: &mut String,
) -> bool {
    let ring = router.trace();
    let mut events = ring.for_trace(trace).peekable();
    let Some(first) = events.peek().map(|r| r.at) else {
        return false;
    };
    let finished = ring
        .for_trace(trace)
        .next_back()
        .is_some_and(|r| matches!(r.event, TraceEvent::Finished(_)));
    let mut j = Json::new(out);
    j.open();
    j.key("trace");
    j.display(&trace);
    j.kv_bool("finished", finished);
    j.key("events");
    j.open_arr();
    for rec in events {
        j.open();
        j.kv_u64("seq", rec.seq);
        j.kv_ms("t_ms", rec.at.saturating_since(first).as_nanos());
        event_fields(&mut j, router, rec.event);
        j.close();
    }
    j.close_arr();
    j.close();
    true
}

fn event_fields<const N: usize, const C: usize, const Q: usize>(
    j: &mut Json<'_>,
    r: &Router<N, C, Q>,
    e: TraceEvent,
) {
    let node = |j: &mut Json<'_>, id| {
        j.key("node");
        with_node_name(r, id, j);
    };
    match e {
        TraceEvent::Admitted(pool) => {
            j.kv_str("event", "admitted");
            j.kv_str("pool", pool.as_str());
        }
        TraceEvent::Queued(pool) => {
            j.kv_str("event", "queued");
            j.kv_str("pool", pool.as_str());
        }
        TraceEvent::Granted => j.kv_str("event", "granted"),
        TraceEvent::Sent {
            attempt,
            node: id,
            hedge,
        } => {
            j.kv_str("event", "sent");
            j.kv_u64("attempt", u64::from(attempt.0));
            node(j, id);
            j.kv_bool("hedge", hedge);
        }
        TraceEvent::FirstByte { attempt, node: id } => {
            j.kv_str("event", "first_byte");
            j.kv_u64("attempt", u64::from(attempt.0));
            node(j, id);
        }
        TraceEvent::AttemptFailed {
            attempt,
            node: id,
            failure,
        } => {
            j.kv_str("event", "attempt_failed");
            j.kv_u64("attempt", u64::from(attempt.0));
            node(j, id);
            failure_fields(j, failure);
        }
        TraceEvent::AttemptCancelled { attempt, node: id } => {
            j.kv_str("event", "attempt_cancelled");
            j.kv_u64("attempt", u64::from(attempt.0));
            node(j, id);
        }
        TraceEvent::Finished(outcome) => {
            j.kv_str("event", "finished");
            outcome_fields(j, r, outcome);
        }
        TraceEvent::RetryDenied { hedge } => {
            j.kv_str("event", "retry_budget_exhausted");
            j.kv_bool("hedge", hedge);
        }
        TraceEvent::ProbeSent { node: id, kind } => {
            j.kv_str("event", "probe_sent");
            j.kv_str("probe", kind.label());
            node(j, id);
        }
        TraceEvent::ProbeEnded {
            node: id,
            kind,
            failure,
        } => {
            j.kv_str("event", "probe_ended");
            j.kv_str("probe", kind.label());
            node(j, id);
            if let Some(f) = failure {
                failure_fields(j, f);
            }
        }
    }
}

fn failure_fields(j: &mut Json<'_>, f: Failure) {
    j.kv_str("failure", f.label());
    if let Failure::Upstream5xx(s) | Failure::ClientError(s) = f {
        j.kv_u64("status", u64::from(s));
    }
    j.key("message");
    j.display(&f);
}

fn outcome_fields<const N: usize, const C: usize, const Q: usize>(
    j: &mut Json<'_>,
    r: &Router<N, C, Q>,
    o: Outcome,
) {
    match o {
        Outcome::Succeeded { node, attempts } => {
            j.kv_str("outcome", "succeeded");
            j.key("node");
            with_node_name(r, node, j);
            j.kv_u64("attempts", u64::from(attempts));
        }
        Outcome::Failed {
            failure,
            node,
            after_first_byte,
            attempts,
        } => {
            j.kv_str("outcome", "failed");
            failure_fields(j, failure);
            j.key("node");
            match node {
                Some(id) => with_node_name(r, id, j),
                None => j.null(),
            }
            j.kv_bool("after_first_byte", after_first_byte);
            j.kv_u64("attempts", u64::from(attempts));
        }
        Outcome::Rejected(rej) => {
            j.kv_str("outcome", "rejected");
            j.key("rejected");
            reject_obj(j, rej);
        }
        Outcome::Cancelled { after_first_byte } => {
            j.kv_str("outcome", "cancelled");
            j.kv_bool("after_first_byte", after_first_byte);
        }
    }
}
