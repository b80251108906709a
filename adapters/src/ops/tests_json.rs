//! JSON shape tests of `/status`, `/nodes`, `/route/preview` and
//! `/trace/{id}`, on the fixture of `tests.rs`. Every output is parsed with
//! serde_json.

use drover_core::node::Mode;
use drover_core::route::{Op, Query};
use drover_core::trace::TraceId;
use serde_json::Value;

use super::tests::{TRICKY, fixture, name};
use super::{
    nodes_json, nodes_json_with_reasons, preview_json, status_detail, status_public, trace_json,
};

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name:?} in {nodes}"))
}

#[test]
fn public_status_has_counts_only() {
    let f = fixture();
    let mut out = String::new();
    status_public(&f.r, &f.stats, f.now, &mut out);
    let v = parse(&out);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "active_calls",
            "nodes",
            "queue_depth",
            "status",
            "uptime_seconds",
            "version"
        ]
    );
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["version"], super::VERSION);
    assert_eq!(v["uptime_seconds"], 4.0);
    assert_eq!(v["nodes"]["total"], 3);
    assert_eq!(v["nodes"]["healthy"], 1);
    assert_eq!(v["nodes"]["unhealthy"], 2);
    assert_eq!(v["nodes"]["draining"], 0);
    assert_eq!(v["nodes"]["disabled"], 0);
    assert_eq!(v["active_calls"], 0);
    for n in ["alpha", "beta", "gam"] {
        assert!(!out.contains(n), "a node name leaked: {out}");
    }
}

#[test]
fn status_word_follows_health() {
    let mut f = fixture();
    let saver = f.saver;
    let now = f.now;
    let word = |f: &super::tests::Fixture| {
        let mut out = String::new();
        status_public(&f.r, &f.stats, f.now, &mut out);
        parse(&out)
    };
    f.r.set_mode(saver, Mode::Drain, now).unwrap();
    let v = word(&f);
    assert_eq!(v["status"], "down");
    assert_eq!(v["nodes"]["draining"], 1);
    assert_eq!(v["nodes"]["healthy"], 0);
    f.r.set_mode(f.broken, Mode::Disabled, now).unwrap();
    f.r.set_mode(f.overloaded, Mode::Disabled, now).unwrap();
    f.r.set_mode(saver, Mode::Enabled, now).unwrap();
    let v = word(&f);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["nodes"]["disabled"], 2);
}

#[test]
fn detailed_status_describes_every_node() {
    let f = fixture();
    let mut out = String::new();
    status_detail(&f.r, &f.stats, f.now, &mut out);
    let v = parse(&out);
    assert_eq!(v["nodes"]["total"], 3, "the public counts stay");
    let d = &v["detail"];
    assert_eq!(d["policy"], "p2c");
    assert_eq!(d["queue_capacity"], 16);
    assert_eq!(d["permit_capacity"], 64);
    assert_eq!(d["nodes"].as_array().unwrap().len(), 3);
    let broken = node(&d["nodes"], &name(&f, f.broken));
    assert_eq!(broken["breaker"]["state"], "open");
    assert!(broken["breaker"]["remaining_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(broken["healthy"], false);
    assert_eq!(broken["attempts"]["failed"], 1);
    let cooling = node(&d["nodes"], &name(&f, f.overloaded));
    assert_eq!(cooling["overload"]["cooling"], true);
    assert_eq!(cooling["overload"]["remaining_ms"], 16410.0);
    assert_eq!(cooling["overload"]["events"], 1);
    let saver = node(&d["nodes"], &name(&f, f.saver));
    assert_eq!(saver["breaker"]["state"], "closed");
    assert!(saver["breaker"]["remaining_ms"].is_null());
    assert_eq!(saver["health"]["freshness"], "passive");
    assert!(saver["health"]["age_ms"].is_null());
    assert!(saver["estimates_ms"]["chat"].as_f64().unwrap() > 0.0);
    assert_eq!(saver["models"]["any"], false);
    assert_eq!(saver["models"]["count"], 1);
    assert_eq!(saver["mode"], "enabled");
    let tricky = node(&d["nodes"], TRICKY);
    assert_eq!(tricky["kind"], "ollama");
    assert!(!out.contains("http"), "no URLs: {out}");
}

#[test]
fn nodes_list_with_and_without_reasons() {
    let f = fixture();
    let mut out = String::new();
    nodes_json(&f.r, f.now, &mut out);
    let v = parse(&out);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["mode_reason"].is_null()));
    let reasons =
        std::collections::BTreeMap::from([("beta".to_owned(), "driver \"update\"".to_owned())]);
    let mut out = String::new();
    nodes_json_with_reasons(
        &f.r,
        f.now,
        &|n: &str| reasons.get(n).map(String::as_str),
        &mut out,
    );
    let v = parse(&out);
    assert_eq!(
        node(&v["nodes"], "beta")["mode_reason"],
        "driver \"update\""
    );
    assert!(node(&v["nodes"], "alpha")["mode_reason"].is_null());
}

#[test]
fn preview_scores_candidates_and_explains_exclusions() {
    let f = fixture();
    let mut q = Query::new(Op::Chat);
    q.model = f.r.catalog().model("llama3");
    let mut out = String::new();
    preview_json(&f.r, &q, f.now, &mut out);
    let v = parse(&out);
    assert_eq!(v["query"]["op"], "chat");
    assert_eq!(v["query"]["model"], "llama3");
    assert!(v["rejected"].is_null());
    let saver = name(&f, f.saver);
    assert_eq!(v["plan"], serde_json::json!([saver]));
    let nodes = &v["nodes"];
    assert_eq!(nodes.as_array().unwrap().len(), 3);
    let s = node(nodes, &saver);
    assert_eq!(s["verdict"], "candidate");
    assert!(s["score"]["load"].is_number());
    assert_eq!(s["score"]["sampled"], true);
    let b = node(nodes, &name(&f, f.broken));
    assert_eq!(b["verdict"], "excluded");
    assert_eq!(b["reason"], "breaker_open");
    assert!(b["remaining_ms"].as_f64().unwrap() > 0.0);
    let o = node(nodes, &name(&f, f.overloaded));
    assert_eq!(o["reason"], "overloaded");
    assert_eq!(o["remaining_ms"], 16410.0);
}

#[test]
fn preview_lists_a_draining_node_once_with_its_last_verdict() {
    let mut f = fixture();
    let saver = f.saver;
    f.r.set_mode(saver, drover_core::node::Mode::Drain, f.now)
        .unwrap();
    // Two minutes on, the other nodes' breaker and cooldown are over, so
    // an enabled node is eligible and the draining one is left out.
    let mut q = Query::new(Op::Chat);
    q.model = f.r.catalog().model("llama3");
    let later = f.now + drover_core::Duration::from_secs(120);
    let mut out = String::new();
    preview_json(&f.r, &q, later, &mut out);
    let v = parse(&out);
    let nodes = v["nodes"].as_array().unwrap();
    let saver_name = name(&f, saver);
    let entries: Vec<_> = nodes
        .iter()
        .filter(|n| n["name"] == saver_name.as_str())
        .collect();
    assert_eq!(entries.len(), 1, "{nodes:?}");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
}

#[test]
fn preview_of_a_refused_call_names_the_reason() {
    let f = fixture();
    let mut q = Query::new(Op::Embed);
    q.model = Some(f.unserved);
    let mut out = String::new();
    preview_json(&f.r, &q, f.now, &mut out);
    let v = parse(&out);
    assert_eq!(v["query"]["model"], "mistral");
    assert_eq!(v["plan"], serde_json::json!([]));
    assert_eq!(v["rejected"]["reason"], "no_eligible_node");
    assert_eq!(v["rejected"]["detail"], "model_not_served");
    assert!(v["rejected"]["message"].as_str().unwrap().contains("model"));
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["verdict"] == "excluded")
    );
}

#[test]
fn trace_of_a_failed_over_call() {
    let f = fixture();
    let mut out = String::new();
    assert!(trace_json(&f.r, f.failover_trace, &mut out));
    let v = parse(&out);
    assert_eq!(v["trace"], "0000000000000f00");
    assert_eq!(v["finished"], true);
    let events = v["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"admitted"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "sent").count(), 3);
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "attempt_failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["failure"], "overloaded");
    assert_eq!(failed[0]["node"], name(&f, f.overloaded).as_str());
    assert_eq!(failed[1]["failure"], "upstream_5xx");
    assert_eq!(failed[1]["status"], 502);
    assert_eq!(failed[1]["node"], name(&f, f.broken).as_str());
    let end = events.last().unwrap();
    assert_eq!(end["outcome"], "succeeded");
    assert_eq!(end["attempts"], 3);
    assert_eq!(end["node"], name(&f, f.saver).as_str());
    assert_eq!(events[0]["t_ms"], 0.0);
    assert_eq!(end["t_ms"], 80.0);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn trace_of_a_rejected_call_and_of_an_unknown_one() {
    let f = fixture();
    let mut out = String::new();
    assert!(trace_json(&f.r, TraceId(4), &mut out));
    let v = parse(&out);
    let end = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(end["outcome"], "rejected");
    assert_eq!(end["rejected"]["reason"], "no_eligible_node");
    let mut out = String::new();
    assert!(trace_json(&f.r, TraceId(6), &mut out));
    let v = parse(&out);
    let end = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(end["outcome"], "cancelled");
    assert_eq!(end["after_first_byte"], true);
    let mut out = String::new();
    assert!(!trace_json(&f.r, TraceId(0xdead), &mut out));
    assert!(out.is_empty());
}
