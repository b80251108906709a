//! The config file as serde reads it: every section with every key
//! optional (defaults are applied by `build`), unknown keys refused, and the
//! two value syntaxes of the file, durations and byte sizes.
//!
//! A duration is a string of a whole or decimal number and a unit, `ms`,
//! `s`, `m` or `h` (`"250ms"`, `"1.5s"`, `"2m"`), or a bare integer of
//! milliseconds (`250`). A byte size is an integer of bytes or a string with
//! a unit, `B`, `KiB`, `MiB` or `GiB` (`"4MiB"`, `"16 KiB"`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Visitor};

/// Longest duration a config may give.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A duration value (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dur(pub Duration);

/// A byte-size value (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bytes(pub u64);

/// Parses `"10s"`, `"250ms"`, `"1.5m"`, `"2h"`; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a duration: write a number and a unit (ms, s, m, h), like \"10s\" or \"250ms\""
        )
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let unit_ns: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits_ok(whole)
        || !digits_ok(frac)
        || frac.len() > 9
        || number.ends_with('.')
        || whole.len() > 12
    {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let scale = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().map_err(|_| bad())?;
        f * unit_ns / scale
    };
    let ns = whole * unit_ns + frac_ns;
    if ns > MAX_DURATION.as_nanos() {
        return Err(format!("`{s}` is longer than the limit of 24h"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// Parses `"4MiB"`, `"16 KiB"`, `"512B"` (binary units only).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "`{s}` is not a size: write a whole number and a unit (B, KiB, MiB, GiB), like \"4MiB\""
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let scale: u64 = match unit.trim_start_matches(' ') {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"10s\" or \"250ms\", or whole milliseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Dur, E> {
                let d = Duration::from_millis(ms);
                if d > MAX_DURATION {
                    return Err(E::custom(format!(
                        "{ms} ms is longer than the limit of 24h"
                    )));
                }
                Ok(Dur(d))
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Dur, E> {
                match u64::try_from(ms) {
                    Ok(ms) => self.visit_u64(ms),
                    Err(_) => Err(E::custom(format!("a duration cannot be negative ({ms})"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"4MiB\", or whole bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Bytes, E> {
                parse_bytes(s).map(Bytes).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Bytes, E> {
                Ok(Bytes(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Bytes, E> {
                u64::try_from(n)
                    .map(Bytes)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[limits]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_body_bytes: Option<Bytes>,
    pub max_response_bytes: Option<Bytes>,
    pub max_headers: Option<u64>,
    pub max_header_bytes: Option<Bytes>,
    pub header_timeout: Option<Dur>,
}

/// `[timeouts]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub connect: Option<Dur>,
    pub attempt: Option<Dur>,
    pub ttft: Option<Dur>,
    pub stream_total: Option<Dur>,
    pub stream_idle: Option<Dur>,
    pub queue_wait: Option<Dur>,
    pub shutdown_grace: Option<Dur>,
}

/// `[pools]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPools {
    pub global: Option<u64>,
    pub chat: Option<u64>,
    pub stream: Option<u64>,
    pub embed: Option<u64>,
    pub background: Option<u64>,
}

/// `[routing]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouting {
    pub policy: Option<String>,
    pub max_attempts: Option<u64>,
    pub tag_mode: Option<String>,
    pub tag_penalty: Option<f64>,
    pub strict_models: Option<bool>,
    #[serde(default)]
    pub affinity: RawAffinity,
    #[serde(default)]
    pub hedge: RawHedge,
}

/// `[routing.affinity]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAffinity {
    pub session_promote_ratio: Option<f64>,
    pub prefix_key_blocks: Option<u64>,
    pub prefix_load_factor: Option<f64>,
    pub prefix_spread: Option<u64>,
}

/// `[routing.hedge]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHedge {
    pub enabled: Option<bool>,
    pub quantile: Option<f64>,
    pub min_delay: Option<Dur>,
    pub max_delay: Option<Dur>,
    pub budget_ratio: Option<f64>,
    pub budget_burst: Option<u64>,
    pub non_stream: Option<bool>,
}

/// `[probes]`: active health and model-inventory probes.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbes {
    pub enabled: Option<bool>,
    pub health_interval: Option<Dur>,
    pub inventory_interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub jitter: Option<f64>,
}

/// `[retry_budget]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub min_concurrent: Option<u64>,
    pub burst: Option<u64>,
}

/// `[health]`: heartbeat freshness thresholds.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub stale_after: Option<Dur>,
    pub lost_after: Option<Dur>,
}

/// `[url_policy]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUrlPolicy {
    pub allow_public: Option<bool>,
    pub allow_hostnames: Option<bool>,
    pub allowed_ports: Option<Vec<u64>>,
    pub allowed_cidrs: Option<Vec<String>>,
}

/// One node in the seed schema (`[[nodes]]` or an element of the
/// `nodes_path` JSON list). Keys are camelCase.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawNode {
    // `name` and `baseUrl` are required, but checked by `nodes`, so that
    // a node lacking one still has its other keys checked.
    pub name: Option<String>,
    pub kind: Option<String>,
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub max_concurrency: Option<u64>,
    pub weight: Option<u64>,
    pub capabilities: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    pub model_aliases: Option<BTreeMap<String, String>>,
    pub api_key_env: Option<String>,
    pub tags: Option<Vec<String>>,
    #[serde(alias = "allow_auth_to_public")]
    pub allow_auth_to_public: Option<bool>,
    /// `pinModels`: `drover discover` keeps this node's `models` as they
    /// are instead of replacing them with the node's catalog. The gateway
    /// itself only checks that it is a boolean.
    #[serde(alias = "pin_models")]
    #[allow(dead_code)]
    pub pin_models: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |n| Ok(Duration::from_millis(n));
        assert_eq!(parse_duration("10s"), ms(10_000));
        assert_eq!(parse_duration("250ms"), ms(250));
        assert_eq!(parse_duration("2m"), ms(120_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("1.5s"), ms(1_500));
        assert_eq!(parse_duration("0.25m"), ms(15_000));
        assert_eq!(parse_duration("0s"), ms(0));
        assert_eq!(parse_duration("24h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
        for bad in [
            "",
            "10",
            "s",
            "10 s",
            "-1s",
            "1.s",
            ".5s",
            "1.2.3s",
            "10sec",
            "5d",
            "1e3ms",
            "1.0000000001s",
            "99999999999999s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("is not a duration") || e.contains("limit"),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration("25h").unwrap_err().contains("limit of 24h"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_bytes("16 KiB"), Ok(16 << 10));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        for bad in [
            "",
            "4",
            "4MB",
            "4 mib",
            "x MiB",
            "-1KiB",
            "1.5MiB",
            "99999999999999999GiB",
        ] {
            assert!(
                parse_bytes(bad).unwrap_err().contains("is not a size"),
                "{bad}"
            );
        }
    }

    #[derive(Deserialize)]
    struct T {
        d: Option<Dur>,
        b: Option<Bytes>,
    }

    #[test]
    fn values_from_toml() {
        let t: T = toml::from_str("d = 1500\nb = 100").unwrap();
        assert_eq!(t.d, Some(Dur(Duration::from_millis(1_500))));
        assert_eq!(t.b, Some(Bytes(100)));
        let t: T = toml::from_str("d = \"2m\"\nb = \"1KiB\"").unwrap();
        assert_eq!(t.d, Some(Dur(Duration::from_secs(120))));
        assert_eq!(t.b, Some(Bytes(1024)));
        for (text, want) in [
            ("d = -5", "cannot be negative"),
            ("d = 1.5", "a duration like"),
            ("d = 86400001", "longer than the limit"),
            ("d = \"fast\"", "is not a duration"),
            ("b = -1", "cannot be negative"),
            ("b = true", "a size like"),
        ] {
            let e = toml::from_str::<T>(text).err().unwrap().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
