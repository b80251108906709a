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
