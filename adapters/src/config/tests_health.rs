//! `heartbeat_token_env` and `[health]`.

use std::path::Path;

use super::GatewayConfig;
use super::tests::{env, ok, one};

const NODE: &str =
    "\n[[nodes]]\nname = \"a\"\nkind = \"ollama\"\nbaseUrl = \"http://127.0.0.1:11434\"\n";

#[test]
fn health_thresholds_map_into_the_router_config() {
    let c = ok(&format!(
        "[health]\nstale_after = \"300ms\"\nlost_after = \"450ms\"\n{NODE}"
    ));
    let r = c.router_config().unwrap();
    assert_eq!(
        r.health.stale_after,
        drover_core::Duration::from_millis(300)
    );
    assert_eq!(r.health.lost_after, drover_core::Duration::from_millis(450));
    // lost_after defaults to 1.5 × stale_after when only that is given.
    let c = ok(&format!("[health]\nstale_after = \"2s\"\n{NODE}"));
    assert_eq!(
        c.router.health.lost_after,
        drover_core::Duration::from_secs(3)
    );
    // Nothing given: the core's defaults, 5 s and 7.5 s.
    let c = ok(NODE);
    assert_eq!(
        c.router.health.stale_after,
        drover_core::Duration::from_secs(5)
    );
    assert_eq!(
        c.router.health.lost_after,
        drover_core::Duration::from_millis(7_500)
    );
}

#[test]
fn bad_health_thresholds_name_their_key() {
    one(
        &format!("[health]\nstale_after = \"2s\"\nlost_after = \"1s\"\n{NODE}"),
        "health.lost_after",
        "must not be shorter than health.stale_after",
    );
    one(
        &format!("[health]\nstale_after = 0\n{NODE}"),
        "health.stale_after",
        "must be longer than 0",
    );
    one(
        &format!("[health]\nstale = \"1s\"\n{NODE}"),
        "health.stale",
        "unknown field",
    );
}

#[test]
fn the_heartbeat_token_is_read_from_the_named_variable() {
    let text = format!("heartbeat_token_env = \"HB\"\n{NODE}");
    let get = env(&[("HB", "a-long-heartbeat-token")]);
    let c = GatewayConfig::parse(&text, Path::new("conf/drover.toml"), &get).unwrap();
    assert_eq!(
        c.heartbeat_token.as_ref().map(|t| t.expose()),
        Some("a-long-heartbeat-token")
    );
    assert!(c.summary().contains("heartbeats enabled"));
    assert!(ok(NODE).heartbeat_token.is_none());
    let unset = GatewayConfig::parse(&text, Path::new("conf/drover.toml"), &env(&[]))
        .unwrap_err()
        .0;
    assert_eq!(unset.len(), 1);
    assert_eq!(unset[0].field, "heartbeat_token_env");
    assert!(unset[0].reason.contains("`HB` is not set"), "{}", unset[0]);
    let short =
        GatewayConfig::parse(&text, Path::new("conf/drover.toml"), &env(&[("HB", "x")])).unwrap();
    assert!(
        short
            .warnings
            .iter()
            .any(|w| w.field == "heartbeat_token_env"),
        "{:?}",
        short.warnings
    );
}

#[test]
fn probes_strict_models_and_the_retry_budget_map_into_the_router_config() {
    let c = ok(&format!(
        "[probes]\nenabled = true\nhealth_interval = \"3s\"\ninventory_interval = \"30s\"\n\
         timeout = \"500ms\"\njitter = 0.25\n\
         [routing]\nstrict_models = true\n\
         [retry_budget]\nratio = 0.1\nmin_concurrent = 5\nburst = 20\n{NODE}"
    ));
    let r = c.router_config().unwrap();
    assert!(r.probe.enabled && r.strict_models);
    assert_eq!(r.probe.health_interval, drover_core::Duration::from_secs(3));
    assert_eq!(
        r.probe.inventory_interval,
        drover_core::Duration::from_secs(30)
    );
    assert_eq!(r.probe.timeout, drover_core::Duration::from_millis(500));
    assert!((r.probe.jitter - 0.25).abs() < 1e-9);
    assert!((r.retry_budget.ratio - 0.1).abs() < 1e-9);
    assert_eq!(
        (r.retry_budget.min_concurrent, r.retry_budget.burst),
        (5, 20)
    );
    // Defaults: probes on, every 10 s / 60 s; not strict; 20 % budget.
    let d = ok(NODE).router_config().unwrap();
    assert!(d.probe.enabled && !d.strict_models);
    assert_eq!(
        d.probe.health_interval,
        drover_core::Duration::from_secs(10)
    );
    assert!((d.retry_budget.ratio - 0.2).abs() < 1e-9);
    let off = ok(&format!("[probes]\nenabled = false\n{NODE}"));
    assert!(!off.router.probe.enabled);
}

#[test]
fn bad_probe_and_budget_values_name_their_field() {
    one(
        &format!("[probes]\ntimeout = \"20s\"\n{NODE}"),
        "probes.timeout",
        "shorter than probes.health_interval",
    );
    one(
        &format!("[probes]\njitter = 0.9\n{NODE}"),
        "probes.jitter",
        "between 0 and 0.5",
    );
    one(
        &format!("[probes]\nhealth_interval = 0\n{NODE}"),
        "probes.health_interval",
        "",
    );
    one(
        &format!("[probes]\nevery = \"1s\"\n{NODE}"),
        "probes.every",
        "unknown field `every`",
    );
    one(
        &format!("[retry_budget]\nratio = 1.5\n{NODE}"),
        "retry_budget.ratio",
        "",
    );
    one(
        &format!("[retry_budget]\nburst = -1\n{NODE}"),
        "retry_budget.burst",
        "",
    );
    one(
        &format!("[routing]\nstrict_models = \"yes\"\n{NODE}"),
        "routing.strict_models",
        "",
    );
}

#[test]
fn probe_and_strict_switches_have_env_overrides() {
    let mut c = ok(NODE);
    c.apply_env(&env(&[
        ("DROVER_PROBES", "off"),
        ("DROVER_STRICT_MODELS", "1"),
    ]))
    .unwrap();
    assert!(!c.router.probe.enabled && c.router.strict_models);
    let e = c
        .apply_env(&env(&[("DROVER_PROBES", "maybe")]))
        .unwrap_err();
    assert_eq!(e.0[0].field, "DROVER_PROBES");
    assert!(e.0[0].reason.contains("not a switch"), "{e}");
    assert!(!c.router.probe.enabled, "unchanged after an error");
}
