//! A router driven through a handful of calls, and the Prometheus tests.
//! The same fixture feeds the JSON tests in `tests_json.rs`.

use std::collections::BTreeMap;

use drover_core::call::{Action, AttemptId, Event, Outcome, Request};
use drover_core::catalog::{ModelId, ModelSet};
use drover_core::node::{NodeId, NodeKind, NodeSpec};
use drover_core::reason::Failure;
use drover_core::route::{Op, Query};
use drover_core::trace::TraceId;
use drover_core::{Duration, Instant, Router, RouterConfig};

use super::prom::{Secs, escape_label};
use super::{GatewayStats, prometheus};

pub(super) type TestRouter = Router<8, 64, 16>;

/// A node name that needs escaping in both JSON and Prometheus labels.
pub(super) const TRICKY: &str = "gam\"ma\\x\ny";

pub(super) fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// What the fixture did, for the assertions.
pub(super) struct Fixture {
    pub r: Box<TestRouter>,
    pub stats: GatewayStats,
    pub now: Instant,
    /// The node that answered 429 (cooling down at `now`).
    pub overloaded: NodeId,
    /// The node whose breaker opened (a 502 with threshold 1).
    pub broken: NodeId,
    /// The node that saved the failed-over call.
    pub saver: NodeId,
    /// The failed-over call.
    pub failover_trace: TraceId,
    /// The model no node serves.
    pub unserved: ModelId,
}

fn send(
    r: &mut TestRouter,
    call: &mut drover_core::call::Call,
    now: Instant,
) -> (AttemptId, NodeId) {
    match r.poll(call, now) {
        Action::Send { attempt, node, .. } => (attempt, node),
        other => panic!("expected Send, got {other:?}"),
    }
}

fn finish(r: &mut TestRouter, call: &mut drover_core::call::Call, now: Instant) -> Outcome {
    for _ in 0..8 {
        match r.poll(call, now) {
            Action::Finish(o) => return o,
            Action::Cancel { .. } => {}
            other => panic!("expected Finish, got {other:?}"),
        }
    }
    panic!("no Finish within 8 polls");
}

fn handle(r: &mut TestRouter, call: &mut drover_core::call::Call, e: Event, now: Instant) {
    assert_eq!(
        r.handle(call, e, now),
        drover_core::call::Handled::Applied,
        "{e:?}"
    );
}

/// Three nodes serving `llama3`, then: a chat success, a stream with a
/// 20 ms first byte, a chat that meets a 429 and a 502 before succeeding
/// on the third node, an embed for a model nobody serves (rejected), a
/// chat the node refuses with 400, and a stream cancelled by its client
/// after its first byte (1.5 s TTFT).
pub(super) fn fixture() -> Fixture {
    let mut cfg = RouterConfig::default();
    cfg.breaker.failure_threshold = 1;
    cfg.breaker.base_cooldown = Duration::from_secs(30);
    cfg.breaker.max_cooldown = Duration::from_secs(60);
    let mut r: Box<TestRouter> = Box::new(Router::new(cfg, 7).unwrap());
    let llama = r.catalog_mut().intern_model("llama3").unwrap();
    let unserved = r.catalog_mut().intern_model("mistral").unwrap();
    for (name, kind) in [
        ("alpha", NodeKind::Ollama),
        ("beta", NodeKind::OpenAiCompat),
        (TRICKY, NodeKind::Ollama),
    ] {
        let mut spec = NodeSpec::new(name, kind).unwrap();
        spec.models = ModelSet::EMPTY;
        spec.models.insert(llama);
        r.add_node(spec).unwrap();
    }
    let chat = || {
        let mut q = Query::new(Op::Chat);
        q.model = Some(llama);
        q
    };
    let stream = || {
        let mut q = Query::new(Op::Stream);
        q.model = Some(llama);
        q
    };

    // 1. chat, 50 ms.
    let mut c = r.start(Request::new(TraceId(1), chat()), ms(0));
    let (a, _) = send(&mut r, &mut c, ms(0));
    handle(&mut r, &mut c, Event::Completed(a), ms(50));
    assert!(matches!(
        finish(&mut r, &mut c, ms(50)),
        Outcome::Succeeded { .. }
    ));

    // 2. stream: first byte at 20 ms, done at 200 ms.
    let mut c = r.start(Request::new(TraceId(2), stream()), ms(100));
    let (a, _) = send(&mut r, &mut c, ms(100));
    handle(&mut r, &mut c, Event::FirstByte(a), ms(120));
    handle(&mut r, &mut c, Event::Completed(a), ms(300));
    assert!(matches!(
        finish(&mut r, &mut c, ms(300)),
        Outcome::Succeeded { .. }
    ));

    // 3. chat: 429 with Retry-After 20 s, then 502, then success.
    let failover_trace = TraceId(0xf00);
    let mut c = r.start(Request::new(failover_trace, chat()), ms(400));
    let (a0, overloaded) = send(&mut r, &mut c, ms(400));
    handle(
        &mut r,
        &mut c,
        Event::Overloaded(a0, Some(Duration::from_secs(20))),
        ms(410),
    );
    let (a1, broken) = send(&mut r, &mut c, ms(410));
    handle(
        &mut r,
        &mut c,
        Event::Failed(a1, Failure::Upstream5xx(502)),
        ms(430),
    );
    let (a2, saver) = send(&mut r, &mut c, ms(430));
    handle(&mut r, &mut c, Event::Completed(a2), ms(480));
    match finish(&mut r, &mut c, ms(480)) {
        Outcome::Succeeded { node, attempts } => assert_eq!((node, attempts), (saver, 3)),
        other => panic!("{other:?}"),
    }
    let mut distinct = [overloaded, broken, saver];
    distinct.sort();
    assert!(distinct.windows(2).all(|w| w[0] != w[1]));

    // 4. embed for a model nobody serves: rejected at the first poll.
    let mut q = Query::new(Op::Embed);
    q.model = Some(unserved);
    let mut c = r.start(Request::new(TraceId(4), q), ms(1000));
    assert!(matches!(
        finish(&mut r, &mut c, ms(1000)),
        Outcome::Rejected(_)
    ));

    // 5. chat refused by the node with 400.
    let mut c = r.start(Request::new(TraceId(5), chat()), ms(1100));
    let (a, node) = send(&mut r, &mut c, ms(1100));
    assert_eq!(node, saver, "the only node left");
    handle(&mut r, &mut c, Event::ClientError(a, 400), ms(1110));
    assert!(matches!(
        finish(&mut r, &mut c, ms(1110)),
        Outcome::Failed {
            failure: Failure::ClientError(400),
            ..
        }
    ));

    // 6. stream, first byte after 1.5 s, then the client leaves.
    let mut c = r.start(Request::new(TraceId(6), stream()), ms(2000));
    let (a, _) = send(&mut r, &mut c, ms(2000));
    handle(&mut r, &mut c, Event::FirstByte(a), ms(3500));
    handle(&mut r, &mut c, Event::ClientCancelled, ms(3600));
    assert!(matches!(
        finish(&mut r, &mut c, ms(3600)),
        Outcome::Cancelled {
            after_first_byte: true
        }
    ));

    let stats = GatewayStats::default();
    stats.record_response("chat_completions", 200);
    stats.record_response("chat_completions", 200);
    stats.record_response("api_chat", 503);
    stats.record_response("/x/y", 418);
    stats.record_rejection("body_too_large");
    stats.record_rejection("bad_json");
    stats.record_client_disconnect();
    stats.record_stream_broken();
    stats.add_upstream_bytes(1234);
    Fixture {
        r,
        stats,
        now: ms(4000),
        overloaded,
        broken,
        saver,
        failover_trace,
        unserved,
    }
}

pub(super) fn name(f: &Fixture, id: NodeId) -> String {
    f.r.node(id).unwrap().spec.name.as_str().to_owned()
}

/// The label value as it appears (escaped) in the exposition.
fn esc(v: &str) -> String {
    let mut s = String::new();
    escape_label(&mut s, v);
    s
}

/// Parses the exposition strictly enough for the tests: every sample
/// belongs to the family whose HELP and TYPE came just before it, no
/// family appears twice, and every value is a number. Returns
/// `"name{labels}" -> value`.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut families = Vec::<(String, String)>::new();
    let mut help_for = None::<String>;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(
                !families.iter().any(|(n, _)| *n == name),
                "family {name} twice"
            );
            help_for = Some(name);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_owned();
            assert_eq!(
                help_for.as_deref(),
                Some(name.as_str()),
                "TYPE without HELP"
            );
            families.push((name, it.next().unwrap().to_owned()));
        } else {
            let (series, value) = line.rsplit_once(' ').expect(line);
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            let metric = series.split('{').next().unwrap();
            let (family, kind) = families.last().expect("sample before any TYPE");
            let ok = metric == family
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| metric.strip_suffix(s) == Some(family.as_str())));
            assert!(ok, "sample {metric} outside its family {family}");
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "duplicate series {series}"
            );
        }
    }
    samples
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series).unwrap_or_else(|| panic!("missing {series}"))
}

fn render(f: &Fixture) -> String {
    let mut out = String::new();
    prometheus(&f.r, &f.stats, f.now, &mut out);
    out
}

#[test]
fn exposition_counts_the_calls() {
    let f = fixture();
    let text = render(&f);
    let s = parse(&text);
    assert_eq!(get(&s, r#"drover_requests_total{op="chat"}"#), 3.0);
    assert_eq!(get(&s, r#"drover_requests_total{op="stream"}"#), 2.0);
    assert_eq!(get(&s, r#"drover_requests_total{op="embed"}"#), 1.0);
    assert_eq!(
        get(&s, r#"drover_requests_succeeded_total{op="chat"}"#),
        2.0
    );
    assert_eq!(
        get(&s, r#"drover_requests_cancelled_total{op="stream"}"#),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_requests_failed_total{op="chat",reason="client_error"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_requests_failed_total{op="chat",reason="connect"}"#
        ),
        0.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_requests_rejected_total{op="embed",reason="no_eligible_node"}"#
        ),
        1.0
    );
    assert!(get(&s, "drover_failovers_total") >= 2.0);
    assert_eq!(get(&s, "drover_active_calls"), 0.0);
    assert_eq!(get(&s, "drover_attempts_in_flight"), 0.0);
    assert_eq!(get(&s, "drover_queue_depth"), 0.0);
    assert_eq!(get(&s, "drover_queue_capacity"), 16.0);
    assert_eq!(get(&s, "drover_permits_outstanding"), 0.0);
    assert_eq!(get(&s, "drover_uptime_seconds"), 4.0);
    assert_eq!(
        get(&s, r#"drover_pool_limit{pool="global"}"#),
        f64::from(f.r.config().pools.global)
    );
    // The two TTFTs: 20 ms and 1.5 s.
    let ttft = |le: &str| {
        get(
            &s,
            &format!(r#"drover_request_ttft_seconds_bucket{{op="stream",le="{le}"}}"#),
        )
    };
    assert_eq!(ttft("0.01"), 0.0);
    assert_eq!(ttft("0.02"), 1.0);
    assert_eq!(ttft("1"), 1.0);
    assert_eq!(ttft("2"), 2.0);
    assert_eq!(ttft("+Inf"), 2.0);
    assert_eq!(
        get(&s, r#"drover_request_ttft_seconds_count{op="stream"}"#),
        2.0
    );
    assert_eq!(
        get(&s, r#"drover_request_ttft_seconds_sum{op="stream"}"#),
        1.52
    );
}

#[test]
fn exposition_shows_each_node_by_name() {
    let f = fixture();
    let text = render(&f);
    let s = parse(&text);
    let node = |id| esc(&name(&f, id));
    let series = |family: &str, id| format!(r#"{family}{{node="{}"}}"#, node(id));
    assert_eq!(get(&s, &series("drover_node_breaker_state", f.broken)), 2.0);
    assert_eq!(get(&s, &series("drover_node_breaker_state", f.saver)), 0.0);
    assert_eq!(
        get(&s, &series("drover_node_breaker_opens_total", f.broken)),
        1.0
    );
    assert_eq!(
        get(
            &s,
            &series("drover_node_overload_cooldown_active", f.overloaded)
        ),
        1.0
    );
    assert_eq!(
        get(&s, &series("drover_node_overload_cooldown_active", f.saver)),
        0.0
    );
    // Retry-After 20 s from 410 ms; now is 4 s.
    assert_eq!(
        get(
            &s,
            &series(
                "drover_node_overload_cooldown_remaining_seconds",
                f.overloaded
            )
        ),
        16.41
    );
    assert_eq!(get(&s, &series("drover_node_healthy", f.saver)), 1.0);
    assert_eq!(get(&s, &series("drover_node_healthy", f.broken)), 0.0);
    let results = |id, r: &str| {
        get(
            &s,
            &format!(
                r#"drover_node_attempt_results_total{{node="{}",result="{r}"}}"#,
                node(id)
            ),
        )
    };
    assert_eq!(results(f.overloaded, "overloaded"), 1.0);
    assert_eq!(results(f.broken, "failed"), 1.0);
    assert!(results(f.saver, "succeeded") >= 1.0);
    assert_eq!(
        get(
            &s,
            &format!(
                r#"drover_node_mode{{node="{}",mode="enabled"}}"#,
                node(f.saver)
            )
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            &format!(
                r#"drover_node_mode{{node="{}",mode="drain"}}"#,
                node(f.saver)
            )
        ),
        0.0
    );
    // The saver completed a 50 ms non-streamed attempt.
    assert!(
        get(
            &s,
            &format!(
                r#"drover_node_attempt_duration_seconds_bucket{{node="{}",le="0.05"}}"#,
                node(f.saver)
            )
        ) >= 1.0
    );
    assert_eq!(
        get(&s, r#"drover_node_info{node="alpha",kind="ollama"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"drover_node_info{node="beta",kind="openai_compat"}"#),
        1.0
    );
    // The tricky name, escaped exactly as the format requires.
    assert!(
        text.contains(r#"drover_node_info{node="gam\"ma\\x\ny",kind="ollama"} 1"#),
        "{text}"
    );
    assert!(!text.contains("http://"), "no URLs in labels");
}

#[test]
fn exposition_carries_the_gateway_counters() {
    let f = fixture();
    let s = parse(&render(&f));
    assert_eq!(
        get(
            &s,
            r#"drover_http_responses_total{endpoint="chat_completions",code="200"}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_http_responses_total{endpoint="api_chat",code="503"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_http_responses_total{endpoint="other",code="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"drover_http_rejections_total{reason="body_too_large"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&s, r#"drover_http_rejections_total{reason="bad_request"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"drover_http_rejections_total{reason="unauthorized"}"#),
        0.0
    );
    assert_eq!(get(&s, "drover_client_disconnects_total"), 1.0);
    assert_eq!(get(&s, "drover_streams_broken_total"), 1.0);
    assert_eq!(get(&s, "drover_upstream_bytes_total"), 1234.0);
}

#[test]
fn every_histogram_is_cumulative_and_ends_at_its_count() {
    let f = fixture();
    let text = render(&f);
    let mut last: Option<(String, f64)> = None;
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').unwrap();
        let v: f64 = v.parse().unwrap();
        if let Some((head, _)) = series.split_once("_bucket{") {
            let key = format!(
                "{head}{}",
                &series[..series.find(",le=").unwrap_or(series.len())]
            );
            if let Some((k, prev)) = &last {
                if *k == key {
                    assert!(v >= *prev, "{line} decreases");
                }
            }
            last = Some((key, v));
            if series.ends_with("le=\"+Inf\"}") {
                let count_series = series
                    .replace("_bucket{", "_count{")
                    .replace(",le=\"+Inf\"", "");
                let count_line = format!("{count_series} {v}");
                assert!(text.contains(&count_line), "missing {count_line}");
                checked += 1;
            }
        }
    }
    // 3 per-op histograms × 3 ops + 2 per-node histograms × 3 nodes.
    assert_eq!(checked, 15);
}

#[test]
fn empty_router_still_exposes_every_family() {
    let r: Box<TestRouter> = Box::new(Router::new(RouterConfig::default(), 1).unwrap());
    let stats = GatewayStats::default();
    let mut out = String::new();
    prometheus(&r, &stats, Instant::ZERO, &mut out);
    let s = parse(&out);
    assert_eq!(get(&s, r#"drover_requests_total{op="chat"}"#), 0.0);
    let full = render(&fixture());
    let types = |t: &str| t.lines().filter(|l| l.starts_with("# TYPE")).count();
    assert_eq!(types(&out), types(&full));
    assert!(out.contains("# TYPE drover_http_responses_total counter"));
}

#[test]
fn seconds_are_exact_decimals() {
    let cases = [
        (0, "0"),
        (1, "0.000000001"),
        (1_000_000, "0.001"),
        (20_000_000, "0.02"),
        (1_500_000_000, "1.5"),
        (600_000_000_000, "600"),
        (u64::MAX, "18446744073.709551615"),
    ];
    for (ns, want) in cases {
        assert_eq!(Secs(Duration::from_nanos(ns)).to_string(), want);
    }
    for b in drover_core::histogram::BUCKET_BOUNDS {
        let s = Secs(b).to_string();
        let back: f64 = s.parse().unwrap();
        assert!((back * 1e9 - b.as_nanos() as f64).abs() < 1.0, "{s}");
    }
}

#[test]
fn label_escaping() {
    assert_eq!(esc("plain-name_1.2"), "plain-name_1.2");
    assert_eq!(esc("a\"b"), r#"a\"b"#);
    assert_eq!(esc("a\\b"), r#"a\\b"#);
    assert_eq!(esc("a\nb"), r#"a\nb"#);
    assert_eq!(esc("é\"🚀"), "é\\\"🚀");
}

/// Runs `promtool check metrics` on the exposition when promtool is on
/// PATH (CI installs it); otherwise prints why it is skipped.
#[test]
fn promtool_accepts_the_exposition() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let f = fixture();
    let text = render(&f);
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("promtool not available ({e}): skipping promtool_accepts_the_exposition");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool failed:\n{said}\n---\n{text}"
    );
    assert!(said.trim().is_empty(), "promtool warnings:\n{said}");
}

#[test]
fn gauges_follow_running_and_queued_calls() {
    let cfg = RouterConfig {
        pools: drover_core::admission::PoolLimits::uniform(1),
        ..RouterConfig::default()
    };
    let mut r: Box<TestRouter> = Box::new(Router::new(cfg, 3).unwrap());
    r.add_node(NodeSpec::new("solo", NodeKind::Ollama).unwrap())
        .unwrap();
    let mut running = r.start(Request::new(TraceId(1), Query::new(Op::Chat)), ms(0));
    let (_, node) = send(&mut r, &mut running, ms(0));
    let mut queued = r.start(Request::new(TraceId(2), Query::new(Op::Chat)), ms(0));
    assert!(matches!(r.poll(&mut queued, ms(0)), Action::Wait { .. }));
    let stats = GatewayStats::default();
    let mut out = String::new();
    prometheus(&r, &stats, ms(10), &mut out);
    let s = parse(&out);
    assert_eq!(get(&s, "drover_active_calls"), 2.0);
    assert_eq!(get(&s, "drover_attempts_in_flight"), 1.0);
    assert_eq!(get(&s, "drover_permits_outstanding"), 1.0);
    assert_eq!(get(&s, "drover_queue_depth"), 1.0);
    assert_eq!(get(&s, r#"drover_node_in_flight{node="solo"}"#), 1.0);
    assert_eq!(get(&s, r#"drover_node_attempts_total{node="solo"}"#), 1.0);
    assert_eq!(get(&s, r#"drover_pool_limit{pool="chat"}"#), 1.0);
    assert_eq!(r.node(node).unwrap().in_flight, 1);
    let mut json = String::new();
    super::status_public(&r, &stats, ms(10), &mut json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["active_calls"], 2);
    assert_eq!(v["queue_depth"], 1);
    assert_eq!(v["status"], "ok");
}
