//! Routing tests: filters, policies, affinity, previews.

extern crate std;
use std::vec::Vec;

use super::*;
use crate::call::{Action, Event, Request};
use crate::catalog::ModelSet;
use crate::config::TagMode;
use crate::health::Telemetry;
use crate::node::{NodeKind, NodeSpec};
use crate::router::Router;
use crate::trace::TraceId;

type R = Router<16, 64, 16>;

fn router_with(names: &[&str], cfg: RouterConfig, seed: u64) -> R {
    let mut r = R::new(cfg, seed).unwrap();
    for n in names {
        r.add_node(NodeSpec::new(n, NodeKind::Ollama).unwrap())
            .unwrap();
    }
    r
}

fn now() -> Instant {
    Instant::from_secs(100)
}

fn plan_of(r: &R, q: &Query) -> Result<Plan, Reject> {
    r.preview(q, now(), &mut |_, _| {})
}

/// Sends one call and returns the node it went to, leaving it in flight.
fn send(r: &mut R, q: Query, id: u64) -> NodeId {
    let mut c = r.start(Request::new(TraceId(id), q), now());
    match r.poll(&mut c, now()) {
        Action::Send { node, .. } => node,
        other => panic!("{other:?}"),
    }
}

#[test]
fn plan_has_no_duplicates_and_is_bounded() {
    for policy in Policy::ALL {
        let mut cfg = RouterConfig::default();
        cfg.policy = policy;
        cfg.max_attempts = 5;
        let r = router_with(&["a", "b", "c", "d", "e", "f", "g"], cfg, 1);
        let p = plan_of(&r, &Query::new(Op::Chat)).unwrap();
        // Sampled P2C plans [winner, loser]; further failovers route afresh.
        let want = if policy == Policy::P2c { 2 } else { 5 };
        assert_eq!(p.len(), want, "{policy:?}");
        let mut ids: Vec<_> = p.iter().map(|n| n.0).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), want, "{policy:?} has duplicates");
        let r = router_with(&["a", "b"], cfg, 1);
        assert_eq!(
            plan_of(&r, &Query::new(Op::Chat)).unwrap().len(),
            2,
            "{policy:?}"
        );
    }
}

#[test]
fn preview_explains_every_node() {
    let mut r = router_with(&["a", "b", "c"], RouterConfig::default(), 1);
    r.set_mode(NodeId(1), crate::node::Mode::Disabled, now())
        .unwrap();
    let mut spec = r.node(NodeId(2)).unwrap().spec.clone();
    spec.capabilities = Capabilities::EMBED;
    r.update_node(NodeId(2), spec).unwrap();
    let mut seen = Vec::new();
    let plan = r
        .preview(&Query::new(Op::Stream), now(), &mut |id, v| {
            seen.push((id, v))
        })
        .unwrap();
    assert_eq!(plan.as_slice(), &[NodeId(0)]);
    assert_eq!(seen.len(), 3);
    assert!(matches!(seen[0], (NodeId(0), Verdict::Candidate(s)) if s.load > 0.0 && !s.sampled));
    assert_eq!(seen[1], (NodeId(1), Verdict::Excluded(Exclusion::Disabled)));
    assert_eq!(
        seen[2],
        (NodeId(2), Verdict::Excluded(Exclusion::MissingCapability))
    );
}

#[test]
fn preview_does_not_change_state() {
    let r = router_with(&["a", "b", "c", "d"], RouterConfig::default(), 9);
    let a = plan_of(&r, &Query::new(Op::Chat)).unwrap();
    let b = plan_of(&r, &Query::new(Op::Chat)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn round_robin_rotates() {
    let mut cfg = RouterConfig::default();
    cfg.policy = Policy::RoundRobin;
    let mut r = router_with(&["a", "b", "c"], cfg, 1);
    let firsts: Vec<_> = (0..6)
        .map(|i| send(&mut r, Query::new(Op::Chat), i).0)
        .collect();
    assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn least_loaded_prefers_idle_and_breaks_ties_by_id() {
    let mut cfg = RouterConfig::default();
    cfg.policy = Policy::LeastLoaded;
    let mut r = router_with(&["a", "b", "c"], cfg, 1);
    // All equal: lowest id first, then the next lowest as load grows.
    assert_eq!(send(&mut r, Query::new(Op::Chat), 1), NodeId(0));
    assert_eq!(send(&mut r, Query::new(Op::Chat), 2), NodeId(1));
    assert_eq!(send(&mut r, Query::new(Op::Chat), 3), NodeId(2));
    assert_eq!(send(&mut r, Query::new(Op::Chat), 4), NodeId(0));
}

#[test]
fn p2c_spreads_load_and_avoids_the_slow_node() {
    let mut r = router_with(&["fast", "slow"], RouterConfig::default(), 3);
    for i in 0..2 {
        let mut spec = r.node(NodeId(i)).unwrap().spec.clone();
        spec.max_concurrency = 100;
        r.update_node(NodeId(i), spec).unwrap();
    }
    let t = now();
    let cfg = r.cfg.ewma;
    r.nodes
        .get_mut(NodeId(0))
        .unwrap()
        .chat_latency
        .observe(Duration::from_millis(100), t, &cfg);
    r.nodes
        .get_mut(NodeId(1))
        .unwrap()
        .chat_latency
        .observe(Duration::from_millis(2000), t, &cfg);
    let mut counts = [0u32; 2];
    for i in 0..15 {
        counts[usize::from(send(&mut r, Query::new(Op::Chat), i).0)] += 1;
    }
    // The slow node is 20x slower: it only wins once fast has ~20 in flight.
    assert_eq!(counts, [15, 0], "{counts:?}");
    for i in 15..40 {
        counts[usize::from(send(&mut r, Query::new(Op::Chat), i).0)] += 1;
    }
    assert!(counts[1] >= 1 && counts[0] >= 30, "{counts:?}");
}

#[test]
fn weighted_random_follows_weights() {
    let mut cfg = RouterConfig::default();
    cfg.policy = Policy::WeightedRandom;
    let mut r = router_with(&["heavy", "light"], cfg, 5);
    let mut spec = r.node(NodeId(0)).unwrap().spec.clone();
    spec.weight = 9;
    r.update_node(NodeId(0), spec).unwrap();
    let mut heavy = 0;
    for i in 0..1000 {
        let mut rng = fastrand::Rng::with_seed(i);
        let mut rr = 0;
        let p = r
            .ctx(now())
            .plan(&Query::new(Op::Chat), &[], &mut rng, &mut rr, None)
            .unwrap();
        heavy += usize::from(p[0] == NodeId(0));
    }
    assert!((850..=950).contains(&heavy), "heavy={heavy}");
}

#[test]
fn session_affinity_agrees_across_routers_without_shared_state() {
    // Same node set, different insertion order and seeds.
    let r1 = router_with(&["a", "b", "c", "d", "e"], RouterConfig::default(), 1);
    let r2 = router_with(&["e", "d", "c", "b", "a"], RouterConfig::default(), 99);
    let mut q = Query::new(Op::Chat);
    let mut hits = [0u32; 5];
    for key in 0..200u64 {
        q.session = Some(mix(key));
        let n1 = plan_of(&r1, &q).unwrap()[0];
        let n2 = plan_of(&r2, &q).unwrap()[0];
        let name1 = &r1.node(n1).unwrap().spec.name;
        assert_eq!(name1, &r2.node(n2).unwrap().spec.name, "key {key}");
        hits[usize::from(n1.0)] += 1;
    }
    // Rendezvous hashing spreads sessions over every node.
    assert!(hits.iter().all(|&h| h > 15), "{hits:?}");
}

#[test]
fn session_moves_only_past_the_promote_ratio() {
    let mut r = router_with(&["a", "b"], RouterConfig::default(), 1);
    let mut q = Query::new(Op::Chat);
    let key = (0..).map(mix).find(|&k| {
        q.session = Some(k);
        plan_of(&r, &q).unwrap()[0] == NodeId(0)
    });
    q.session = key;
    // Load a up to 2x b's score (ratio 2.0): it stays preferred...
    r.nodes.get_mut(NodeId(0)).unwrap().in_flight = 1;
    assert_eq!(plan_of(&r, &q).unwrap()[0], NodeId(0));
    // ...and beyond it the session is promoted elsewhere.
    r.nodes.get_mut(NodeId(0)).unwrap().in_flight = 2;
    assert_eq!(plan_of(&r, &q).unwrap()[0], NodeId(1));
}

#[test]
fn prefix_affinity_is_bounded_by_load() {
    let mut r = router_with(&["a", "b", "c", "d"], RouterConfig::default(), 1);
    for i in 0..4 {
        let mut spec = r.node(NodeId(i)).unwrap().spec.clone();
        spec.max_concurrency = 100;
        r.update_node(NodeId(i), spec).unwrap();
    }
    let mut q = Query::new(Op::Stream);
    q.prefix = prefix_key(&[11, 22, 33, 44, 55], 4);
    assert_eq!(
        prefix_key(&[11, 22, 33, 44, 55], 4),
        prefix_key(&[11, 22, 33, 44, 99], 4)
    );
    assert_eq!(prefix_key(&[], 4), None);
    assert_eq!(prefix_key(&[1], 0), None);
    let home = plan_of(&r, &q).unwrap()[0];
    let mut on_home = 0;
    for i in 0..40 {
        on_home += usize::from(send(&mut r, q, i) == home);
    }
    // c = 1.5 over 4 equal nodes: the home node takes about 1.5/4 of the calls, not all.
    assert!((12..=20).contains(&on_home), "on_home={on_home}");
    let max = r.nodes().iter().map(|(_, n)| n.in_flight).max().unwrap();
    assert_eq!(max, r.node(home).unwrap().in_flight);
}

#[test]
fn tags_prefer_strict_first_and_require() {
    let mut cfg = RouterConfig::default();
    let mut r = router_with(&["cpu1", "gpu", "cpu2"], cfg, 1);
    let gpu = r.catalog_mut().intern_tag("gpu").unwrap();
    let mut spec = r.node(NodeId(1)).unwrap().spec.clone();
    spec.tags = gpu;
    r.update_node(NodeId(1), spec).unwrap();
    let mut q = Query::new(Op::Chat);
    q.tags = gpu;
    // Prefer: the tagged node wins while idle nodes score the same.
    for _ in 0..5 {
        assert_eq!(plan_of(&r, &q).unwrap()[0], NodeId(1));
    }
    cfg.tag_mode = TagMode::StrictFirst;
    r.set_config(cfg).unwrap();
    r.nodes.get_mut(NodeId(1)).unwrap().in_flight = 3;
    let p = plan_of(&r, &q).unwrap();
    assert_eq!(
        p[0],
        NodeId(1),
        "strict-first keeps the tagged node first even when busier"
    );
    assert_eq!(p.len(), 3);
    cfg.tag_mode = TagMode::Require;
    r.set_config(cfg).unwrap();
    assert_eq!(plan_of(&r, &q).unwrap().as_slice(), &[NodeId(1)]);
    r.set_mode(NodeId(1), crate::node::Mode::Disabled, now())
        .unwrap();
    assert_eq!(
        plan_of(&r, &q),
        Err(Reject::NoEligibleNode(NoNode::MissingTags))
    );
}

#[test]
fn pin_targets_one_node_or_says_why_not() {
    let mut r = router_with(&["a", "b"], RouterConfig::default(), 1);
    let mut q = Query::new(Op::Chat);
    q.pin = Some(NodeId(1));
    assert_eq!(plan_of(&r, &q).unwrap().as_slice(), &[NodeId(1)]);
    r.set_mode(NodeId(1), crate::node::Mode::Disabled, now())
        .unwrap();
    assert_eq!(
        plan_of(&r, &q),
        Err(Reject::NoEligibleNode(NoNode::PinnedUnavailable(
            Exclusion::Disabled
        )))
    );
    q.pin = Some(NodeId(9));
    assert_eq!(
        plan_of(&r, &q),
        Err(Reject::NoEligibleNode(NoNode::PinnedUnavailable(
            Exclusion::NotPinned
        )))
    );
}

#[test]
fn models_aliases_and_scopes_filter() {
    let mut r = router_with(&[], RouterConfig::default(), 1);
    let llama = r.catalog_mut().intern_model("llama3").unwrap();
    let local = r.catalog_mut().intern_model("llama3:8b-q4").unwrap();
    let team = r.catalog_mut().intern_scope("team-a").unwrap();
    let mut a = NodeSpec::new("a", NodeKind::Ollama).unwrap();
    a.models = ModelSet::EMPTY;
    a.models.insert(local);
    a.add_alias(llama, local).unwrap();
    r.add_node(a).unwrap();
    let mut b = NodeSpec::new("b", NodeKind::OpenAiCompat).unwrap();
    b.scope = Some(team);
    r.add_node(b).unwrap();
    let mut q = Query::new(Op::Chat);
    q.model = Some(llama);
    assert_eq!(
        plan_of(&r, &q).unwrap().as_slice(),
        &[NodeId(0)],
        "b is scoped, a serves llama3 by alias"
    );
    let mut c = r.start(Request::new(TraceId(1), q), now());
    assert!(
        matches!(r.poll(&mut c, now()), Action::Send { node: NodeId(0), model: Some(m), .. } if m == local)
    );
    q.scope = Some(team);
    assert_eq!(
        plan_of(&r, &q).unwrap().len(),
        2,
        "a scoped call may use unscoped nodes"
    );
    let _ = r.handle(&mut c, Event::ClientCancelled, now());
}

#[test]
fn stale_and_lost_nodes_are_excluded_passive_ones_are_not() {
    let mut r = router_with(&["hb", "passive"], RouterConfig::default(), 1);
    let t0 = now();
    r.handle_heartbeat(NodeId(0), Telemetry::default(), t0)
        .unwrap();
    let q = Query::new(Op::Chat);
    assert_eq!(r.preview(&q, t0, &mut |_, _| {}).unwrap().len(), 2);
    let t_stale = t0 + Duration::from_secs(5);
    let mut why = None;
    let p = r
        .preview(&q, t_stale, &mut |id, v| {
            if id == NodeId(0) {
                why = Some(v)
            }
        })
        .unwrap();
    assert_eq!(p.as_slice(), &[NodeId(1)]);
    assert_eq!(why, Some(Verdict::Excluded(Exclusion::Stale)));
    r.set_mode(NodeId(1), crate::node::Mode::Disabled, t0)
        .unwrap();
    assert_eq!(
        r.preview(&q, t_stale, &mut |_, _| {}),
        Err(Reject::NoEligibleNode(NoNode::AllStale))
    );
    let t_lost = t0 + Duration::from_millis(7_500);
    assert_eq!(
        r.preview(&q, t_lost, &mut |_, _| {}),
        Err(Reject::NoEligibleNode(NoNode::AllStale))
    );
    // A fresh heartbeat brings it back.
    r.handle_heartbeat(NodeId(0), Telemetry::default(), t_lost)
        .unwrap();
    assert_eq!(
        r.preview(&q, t_lost, &mut |_, _| {}).unwrap().as_slice(),
        &[NodeId(0)]
    );
}

#[test]
fn heartbeat_drain_flag_and_queue_are_used() {
    let mut r = router_with(&["a", "b"], RouterConfig::default(), 1);
    let t0 = now();
    let drain = Telemetry {
        drain: true,
        ..Telemetry::default()
    };
    r.handle_heartbeat(NodeId(0), drain, t0).unwrap();
    for _ in 0..5 {
        assert_eq!(
            r.preview(&Query::new(Op::Chat), t0, &mut |_, _| {})
                .unwrap()
                .as_slice(),
            &[NodeId(1)]
        );
    }
    let busy = Telemetry {
        queued: 50,
        ..Telemetry::default()
    };
    r.handle_heartbeat(NodeId(0), busy, t0).unwrap();
    let mut score = None;
    let _ = r.preview(&Query::new(Op::Chat), t0, &mut |id, v| {
        if id == NodeId(0) {
            score = Some(v)
        }
    });
    assert!(matches!(score, Some(Verdict::Candidate(s)) if s.reported_queue == 50));
}

#[test]
fn all_nodes_saturated_is_reported() {
    let mut r = router_with(&["a"], RouterConfig::default(), 1);
    let mut spec = r.node(NodeId(0)).unwrap().spec.clone();
    spec.max_concurrency = 1;
    r.update_node(NodeId(0), spec).unwrap();
    send(&mut r, Query::new(Op::Chat), 1);
    assert_eq!(
        plan_of(&r, &Query::new(Op::Chat)),
        Err(Reject::AllNodesSaturated)
    );
}

#[test]
fn zero_nodes_and_all_disabled() {
    let r = router_with(&[], RouterConfig::default(), 1);
    assert_eq!(
        plan_of(&r, &Query::new(Op::Chat)),
        Err(Reject::NoEligibleNode(NoNode::NoNodes))
    );
    let mut r = router_with(&["a"], RouterConfig::default(), 1);
    r.set_mode(NodeId(0), crate::node::Mode::Disabled, now())
        .unwrap();
    assert_eq!(
        plan_of(&r, &Query::new(Op::Embed)),
        Err(Reject::NoEligibleNode(NoNode::AllDisabled))
    );
}

#[test]
fn heartbeat_load_is_not_counted_twice() {
    let mut r = router_with(&["a"], RouterConfig::default(), 1);
    let t0 = now();
    let score = |r: &R| {
        let mut out = None;
        let _ = r.preview(&Query::new(Op::Chat), t0, &mut |_, v| {
            if let Verdict::Candidate(s) = v {
                out = Some(s)
            }
        });
        out.unwrap()
    };
    let idle = score(&r).load;
    // Our own 2 attempts, which the node also reports as 2 busy slots.
    r.nodes.get_mut(NodeId(0)).unwrap().in_flight = 2;
    let ours = Telemetry {
        max_slots: 4,
        free_slots: 2,
        ..Telemetry::default()
    };
    r.handle_heartbeat(NodeId(0), ours, t0).unwrap();
    let s = score(&r);
    assert_eq!(s.reported_busy, 2);
    assert!(
        (s.load - 3.0 * idle).abs() < 1e-6 * idle,
        "{} vs {}",
        s.load,
        3.0 * idle
    );
    // Another gateway's work shows up: 4 busy and 3 queued at the node.
    let shared = Telemetry {
        max_slots: 4,
        free_slots: 0,
        queued: 3,
        ..Telemetry::default()
    };
    r.handle_heartbeat(NodeId(0), shared, t0).unwrap();
    assert!((score(&r).load - 8.0 * idle).abs() < 1e-6 * idle);
}

#[test]
fn baseline_policies_least_in_flight_and_tower_p2c() {
    let mut cfg = RouterConfig::default();
    cfg.policy = Policy::LeastInFlight;
    let mut r = router_with(&["a", "b", "c"], cfg, 1);
    let t = now();
    let ewma = r.cfg.ewma;
    // a is 100x slower, but least-in-flight does not look at latency.
    r.nodes
        .get_mut(NodeId(0))
        .unwrap()
        .chat_latency
        .observe(Duration::from_secs(10), t, &ewma);
    let firsts: Vec<_> = (0..3)
        .map(|i| send(&mut r, Query::new(Op::Chat), i).0)
        .collect();
    assert_eq!(firsts, [0, 1, 2]);

    cfg.policy = Policy::P2cPeakEwma;
    let mut r = router_with(&["slow", "fast"], cfg, 1);
    for i in 0..2 {
        let mut spec = r.node(NodeId(i)).unwrap().spec.clone();
        spec.max_concurrency = 100;
        // Weights are ignored by the tower-style cost.
        spec.weight = if i == 0 { 50 } else { 1 };
        r.update_node(NodeId(i), spec).unwrap();
    }
    r.nodes
        .get_mut(NodeId(0))
        .unwrap()
        .chat_latency
        .observe(Duration::from_secs(2), t, &ewma);
    r.nodes
        .get_mut(NodeId(1))
        .unwrap()
        .chat_latency
        .observe(Duration::from_millis(100), t, &ewma);
    let fast = (0..10)
        .filter(|&i| send(&mut r, Query::new(Op::Chat), i) == NodeId(1))
        .count();
    assert_eq!(
        fast, 10,
        "2 s x 1 beats 100 ms x (k + 1) only past 19 in flight"
    );
    assert_eq!(
        Policy::from_name("least_in_flight"),
        Some(Policy::LeastInFlight)
    );
    assert_eq!(
        Policy::from_name("p2c_peak_ewma"),
        Some(Policy::P2cPeakEwma)
    );
}
