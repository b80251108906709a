//! Route previews: every verdict against the oracle, and the call started
//! right after against what the preview promised.

use drover_core::call::{Action, Outcome, TraceEvent};
use drover_core::node::NodeId;
use drover_core::reason::{Exclusion, Reject};
use drover_core::route::{Plan, Query, Verdict};

use super::{Harness, Record};
use crate::ops::StartCall;
use crate::ops::oracle::filter;

impl Harness {
    /// Previews a route, checks every verdict against the oracle, then starts
    /// that very call and checks it went where the preview said.
    pub(super) fn preview(&mut self, s: StartCall) {
        let (now, cfg) = (self.now, self.cfg);
        let q = s.query();
        let mut verdicts: Vec<(NodeId, Verdict)> = Vec::new();
        let before = (
            self.router.attempts_in_flight(),
            self.router.permits_outstanding(),
            self.router.queue_depth(),
        );
        let plan = self
            .router
            .preview(&q, now, &mut |id, v| verdicts.push((id, v)));
        self.log.push(Record::Preview(plan.clone()));
        let after = (
            self.router.attempts_in_flight(),
            self.router.permits_outstanding(),
            self.router.queue_depth(),
        );
        assert_eq!(before, after, "preview changed the router");
        let expected: Vec<_> = self
            .router
            .nodes()
            .iter()
            .map(|(id, n)| (id, filter(&cfg, id, n, &q, &[], now)))
            .collect();
        check_verdicts(&q, &verdicts, &expected, &plan, cfg.max_attempts);
        self.stats.previews += 1;

        let Some(k) = self.start(StartCall { poll: false, ..s }) else {
            return;
        };
        let from = self.log.len();
        self.drain(k);
        let first = match self.log.get(from) {
            Some(Record::Action { action, .. }) => *action,
            other => panic!("preview call {k}: expected an action, got {other:?}"),
        };
        let trace = self.calls[k].call.trace();
        let admitted = self
            .router
            .trace()
            .for_trace(trace)
            .any(|r| matches!(r.event, TraceEvent::Admitted(_)));
        let what = format!("preview call {k}: preview {plan:?}, first action {first:?}");
        if s.oversized() {
            let limit = cfg.max_payload_bytes;
            assert_eq!(
                first,
                Action::Finish(Outcome::Rejected(Reject::PayloadTooLarge { limit })),
                "{what}"
            );
            return;
        }
        match plan {
            Ok(p) if admitted => {
                assert!(
                    matches!(first, Action::Send { node, .. } if node == p[0]),
                    "{what}: admitted at once but not sent to the previewed node"
                );
                self.stats.previews_kept += 1;
            }
            Ok(_) => assert!(
                matches!(
                    first,
                    Action::Wait { .. }
                        | Action::Send { .. }
                        | Action::Finish(Outcome::Rejected(
                            Reject::BusyGlobalPool | Reject::BusyPool(_) | Reject::QueueFull
                        ))
                ),
                "{what}: routable call neither admitted, queued nor refused for capacity"
            ),
            Err(Reject::AllNodesSaturated) => assert!(
                !admitted
                    && matches!(
                        first,
                        Action::Wait { .. }
                            | Action::Finish(Outcome::Rejected(
                                Reject::AllNodesSaturated | Reject::QueueFull
                            ))
                    ),
                "{what}: saturated route must queue or be refused"
            ),
            Err(r) => assert_eq!(
                first,
                Action::Finish(Outcome::Rejected(r)),
                "{what}: preview rejection not kept"
            ),
        }
    }
}

/// Checks preview verdicts against the oracle's `expected` (slot order) and
/// the plan against the routing rules.
fn check_verdicts(
    q: &Query,
    verdicts: &[(NodeId, Verdict)],
    expected: &[(NodeId, Result<bool, Exclusion>)],
    plan: &Result<Plan, Reject>,
    max_attempts: u8,
) {
    let what = format!("preview of {q:?}: verdicts {verdicts:?}, plan {plan:?}");
    assert!(
        verdicts.len() >= expected.len(),
        "{what}: a node has no verdict"
    );
    for (&(id, want), &(vid, got)) in expected.iter().zip(verdicts) {
        assert_eq!(vid, id, "{what}: verdicts out of slot order");
        match (want, got) {
            (Ok(d), Verdict::Candidate(score)) => {
                assert_eq!(score.draining, d, "{what}: {id} draining flag")
            }
            (Err(x), Verdict::Excluded(y)) => assert_eq!(x, y, "{what}: {id} exclusion"),
            _ => panic!("{what}: {id} should be {want:?}"),
        }
    }
    let any_enabled = expected.iter().any(|e| e.1 == Ok(false));
    let drained: Vec<NodeId> = expected
        .iter()
        .filter(|e| e.1 == Ok(true))
        .map(|e| e.0)
        .collect();
    let extra: Vec<_> = verdicts[expected.len()..].to_vec();
    if any_enabled {
        let want: Vec<_> = drained
            .iter()
            .map(|&id| (id, Verdict::Excluded(Exclusion::Draining)))
            .collect();
        assert_eq!(
            extra, want,
            "{what}: drained nodes are excluded when an enabled node is eligible"
        );
    } else {
        assert!(extra.is_empty(), "{what}: extra verdicts");
    }
    match plan {
        Ok(p) => {
            assert!(!p.is_empty(), "{what}: empty plan");
            assert!(
                p.len() <= usize::from(max_attempts),
                "{what}: plan too long"
            );
            for (i, id) in p.iter().enumerate() {
                assert!(!p[..i].contains(id), "{what}: {id} twice in plan");
                let want = expected.iter().find(|e| e.0 == *id).map(|e| e.1);
                match want {
                    Some(Ok(d)) => assert!(
                        !(d && any_enabled),
                        "{what}: drained {id} planned while an enabled node is eligible"
                    ),
                    _ => panic!("{what}: ineligible {id} planned ({want:?})"),
                }
            }
            if let Some(pin) = q.pin {
                assert_eq!(&p[..], &[pin], "{what}: pinned plan");
            }
        }
        Err(r) => {
            assert!(
                expected.iter().all(|e| e.1.is_err()),
                "{what}: rejected with an eligible node"
            );
            assert!(
                matches!(
                    r,
                    Reject::AllNodesSaturated
                        | Reject::AllNodesOverloaded { .. }
                        | Reject::NoEligibleNode(_)
                ),
                "{what}: routing can only fail for node reasons"
            );
            if *r == Reject::AllNodesSaturated {
                assert!(
                    expected.iter().any(|e| e.1 == Err(Exclusion::Saturated)),
                    "{what}: saturated with no saturated node"
                );
            }
        }
    }
}
