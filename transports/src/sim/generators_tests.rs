use std::collections::{BTreeMap, HashSet};

use drover_core::config::RouterConfig;

use super::*;
use crate::sim::{Driver, SimNode, WorkloadSpec};

fn secs_f(i: Instant) -> f64 {
    i.as_nanos() as f64 / 1e9
}

/// Variance over mean of the arrival counts in `bin`-second windows.
fn dispersion(a: &[Arrival], bin: f64) -> f64 {
    let end = secs_f(a[a.len() - 1].at);
    let bins = (end / bin) as usize;
    let mut counts = vec![0.0_f64; bins];
    for x in a {
        let b = (secs_f(x.at) / bin) as usize;
        if b < bins {
            counts[b] += 1.0;
        }
    }
    let mean = counts.iter().sum::<f64>() / bins as f64;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / bins as f64;
    var / mean
}

#[test]
fn bursty_arrivals_keep_the_mean_rate_and_are_seeded() {
    let spec = BurstySpec::default().calls(100_000);
    assert_eq!(spec.mean_rate(), 4.0);
    let a = spec.generate(3).unwrap();
    assert_eq!(a, spec.generate(3).unwrap());
    assert_ne!(a, spec.generate(4).unwrap());
    assert_eq!(a.len(), 100_000);
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    // 100,000 calls at 4/s: about 25,000 s (±10 %, several sigmas).
    let end = secs_f(a[a.len() - 1].at);
    assert!((22_500.0..27_500.0).contains(&end), "end {end}");
    for x in &a {
        assert!((50..=1_000).contains(&x.prompt_tokens));
        assert_eq!(x.output_tokens == 0, x.op == Op::Embed);
        assert_eq!((x.session, x.prefix_blocks.len()), (None, 0));
    }
}

#[test]
fn bursty_counts_vary_more_than_poisson_counts() {
    let bursty = BurstySpec::default().calls(40_000).generate(5).unwrap();
    let poisson = WorkloadSpec::default().calls(40_000).generate(5).unwrap();
    let (b, p) = (dispersion(&bursty, 10.0), dispersion(&poisson, 10.0));
    assert!((0.8..1.25).contains(&p), "poisson dispersion {p}");
    assert!(b > 5.0, "bursty dispersion {b}");
}

#[test]
fn an_on_off_source_sends_only_in_bursts() {
    // 10/s for 1 s on average, then silence for 9 s: 1/s overall.
    let spec = BurstySpec::default()
        .calls(20_000)
        .on(10.0, Duration::from_secs(1))
        .off(0.0, Duration::from_secs(9));
    assert_eq!(spec.mean_rate(), 1.0);
    let a = spec.generate(9).unwrap();
    let end = secs_f(a[a.len() - 1].at);
    assert!((18_000.0..22_000.0).contains(&end), "end {end}");
    // Silences: gaps far longer than the in-burst mean of 0.1 s are common.
    let long = a
        .windows(2)
        .filter(|w| secs_f(w[1].at) - secs_f(w[0].at) > 3.0)
        .count();
    assert!(long > 500, "{long} long gaps");
    assert!(dispersion(&a, 10.0) > 5.0);
}

#[test]
fn bad_bursty_specs_are_refused() {
    let s = BurstySpec::default();
    let one = Duration::from_secs(1);
    assert_eq!(s.on(-1.0, one).generate(1), Err(BadWorkload::Rate));
    assert_eq!(s.off(f64::NAN, one).generate(1), Err(BadWorkload::Rate));
    assert_eq!(
        s.on(0.0, one).off(0.0, one).generate(1),
        Err(BadWorkload::Rate)
    );
    assert_eq!(
        s.on(1e-9, one).off(0.0, one).generate(1),
        Err(BadWorkload::Rate)
    );
    assert_eq!(
        s.on(5.0, Duration::ZERO).generate(1),
        Err(BadWorkload::StateDuration)
    );
    let mut m = s;
    m.mix = OpMix {
        stream: 0,
        chat: 0,
        embed: 0,
    };
    assert_eq!(m.generate(1), Err(BadWorkload::EmptyMix));
    let mut t = s;
    t.prompt_tokens = (9, 8);
    assert_eq!(t.generate(1), Err(BadWorkload::TokenRange));
    assert_eq!(s.calls(0).generate(1), Ok(Vec::new()));
}

/// The calls of each session, in time order.
fn by_session(w: &Workload) -> BTreeMap<u64, Vec<(Arrival, &[u64])>> {
    let mut m: BTreeMap<u64, Vec<(Arrival, &[u64])>> = BTreeMap::new();
    for (a, b) in w.iter() {
        let key = a.session.expect("every generated turn has a session");
        m.entry(key).or_default().push((*a, b));
    }
    m
}

#[test]
fn session_turns_extend_the_previous_prompt() {
    let spec = SessionSpec::default().sessions(300);
    let w = spec.generate(11).unwrap();
    assert_eq!(w, spec.generate(11).unwrap());
    assert_ne!(w, spec.generate(12).unwrap());
    assert!(w.windows(2).all(|p| p[0].at <= p[1].at));
    let sessions = by_session(&w);
    assert_eq!(sessions.len(), 300);
    let mut system = HashSet::new();
    let mut own = HashSet::new();
    let mut stored = 0;
    for turns in sessions.values() {
        assert!((2..=8).contains(&turns.len()), "{} turns", turns.len());
        for pair in turns.windows(2) {
            let ((a, x), (b, y)) = (pair[0], pair[1]);
            assert!(a.at <= b.at);
            // Turn k's blocks are a strict prefix of turn k+1's, 1 to 4 more.
            assert!(y.starts_with(x));
            assert!((1..=4).contains(&(y.len() - x.len())), "{x:?} {y:?}");
        }
        let (first, blocks) = turns[0];
        assert!((5..=8).contains(&blocks.len()));
        system.insert(blocks[..4].to_vec());
        for (a, b) in turns {
            assert_eq!(a.prompt_tokens as usize, b.len() * 512);
            assert_eq!(a.op, Op::Stream);
            assert!((20..=300).contains(&a.output_tokens));
        }
        let (_, last) = turns[turns.len() - 1];
        stored += last.len();
        // A session's own blocks belong to no other session.
        for h in &last[4..] {
            assert!(own.insert(*h), "block {h} shared across sessions");
        }
        assert_eq!(first.session, turns[1].0.session);
    }
    // Four system prompts shared by 300 sessions; one stored list each.
    assert_eq!(system.len(), 4);
    assert_eq!(w.hash_count(), stored);
}

#[test]
fn session_starts_and_think_times_follow_their_rates() {
    let spec = SessionSpec {
        think_time: Duration::from_secs(20),
        ..SessionSpec::default().sessions(4_000).rate(2.0)
    };
    let w = spec.generate(2).unwrap();
    let sessions = by_session(&w);
    let starts: Vec<f64> = sessions.values().map(|t| secs_f(t[0].0.at)).collect();
    let last = starts.iter().cloned().fold(0.0, f64::max);
    // 4,000 starts at 2/s: the last near 2,000 s.
    assert!((1_800.0..2_200.0).contains(&last), "last start {last}");
    let gaps: Vec<f64> = sessions
        .values()
        .flat_map(|t| t.windows(2).map(|p| secs_f(p[1].0.at) - secs_f(p[0].0.at)))
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!((18.0..22.0).contains(&mean), "mean think time {mean}");
    // 2 to 8 turns: 5 on average.
    let per = w.len() as f64 / 4_000.0;
    assert!((4.8..5.2).contains(&per), "{per} turns per session");
}

#[test]
fn sessions_without_a_system_prompt_share_nothing() {
    let spec = SessionSpec {
        system_prompts: 0,
        mix: OpMix {
            stream: 1,
            chat: 1,
            embed: 0,
        },
        ..SessionSpec::default().sessions(50).turns(1, 1)
    };
    let w = spec.generate(4).unwrap();
    assert_eq!(w.len(), 50);
    let mut seen = HashSet::new();
    for (a, b) in w.iter() {
        assert!((1..=4).contains(&b.len()));
        assert!(b.iter().all(|h| seen.insert(*h)));
        assert!(matches!(a.op, Op::Stream | Op::Chat));
    }
    assert!(w.iter().any(|(a, _)| a.op == Op::Chat));
}

#[test]
fn bad_session_specs_are_refused() {
    let s = SessionSpec::default();
    assert_eq!(s.rate(0.0).generate(1), Err(BadWorkload::Rate));
    assert_eq!(s.turns(0, 3).generate(1), Err(BadWorkload::Range));
    assert_eq!(s.turns(4, 3).generate(1), Err(BadWorkload::Range));
    let b = SessionSpec {
        turn_blocks: (0, 2),
        ..s
    };
    assert_eq!(b.generate(1), Err(BadWorkload::Range));
    let o = SessionSpec {
        output_tokens: (3, 2),
        ..s
    };
    assert_eq!(o.generate(1), Err(BadWorkload::TokenRange));
    let huge = SessionSpec {
        system_blocks: u32::MAX,
        ..s
    };
    assert_eq!(huge.generate(1), Err(BadWorkload::Arena));
    assert_eq!(s.sessions(0).generate(1), Ok(Workload::new()));
}

#[test]
fn generated_workloads_run_through_the_driver() {
    let nodes = || vec![SimNode::new("a", 8), SimNode::new("b", 8)];
    let sessions = SessionSpec::default()
        .sessions(40)
        .rate(4.0)
        .generate(1)
        .unwrap();
    let mut d = Driver::new(RouterConfig::default(), nodes(), 1).unwrap();
    let r = d.run(&sessions);
    assert_eq!((r.calls, r.lost), (sessions.len() as u64, 0));
    // The driver keeps each call's session and blocks range.
    let kept: Vec<_> = d.outcomes().map(|(a, _)| *a).collect();
    assert_eq!(kept, sessions.arrivals());
    let bursty = BurstySpec::default().calls(300).generate(1).unwrap();
    let mut d = Driver::new(RouterConfig::default(), nodes(), 1).unwrap();
    let r = d.run(&bursty);
    assert_eq!((r.calls, r.lost), (300, 0));
}
