//! From config text to a checked [`GatewayConfig`]: each top-level key and
//! each node is read on its own, so one mistake does not hide the next, and
//! every value is range-checked with the problem filed against its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_core::admission::PoolLimits;
use drover_core::config::{MAX_ATTEMPTS, Policy, RouterConfig, TagMode};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

mod extra;

use super::locate::{FieldPath, Index};
use super::nodes::{self, NodeSource};
use super::raw::{
    Bytes, Dur, RawAffinity, RawHealth, RawHedge, RawLimits, RawNode, RawPools, RawProbes,
    RawRetryBudget, RawRouting, RawTimeouts, RawUrlPolicy,
};
use super::{
    Cidr, GatewayConfig, Limits, MAX_PERMITS, Problem, Problems, Secret, Timeouts, UrlPolicy,
    router_error_field,
};

/// Largest `max_body_bytes` and `max_response_bytes`: 1 GiB.
pub(super) const MAX_BODY: u64 = 1 << 30;
/// Tokens shorter than this draw a warning.
const SHORT_TOKEN: usize = 16;

/// The problems and warnings found in one file.
pub(super) struct Ctx {
    pub file: PathBuf,
    pub index: Index,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Ctx {
    pub fn new(file: &Path, index: Index) -> Ctx {
        Ctx {
            file: file.to_owned(),
            index,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn problem(&self, path: &FieldPath, reason: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.index.line_of(path),
            field: path.to_string(),
            reason,
        }
    }

    /// Files a problem against the key at `path`.
    pub fn error(&mut self, path: &FieldPath, reason: impl Into<String>) {
        let p = self.problem(path, reason.into());
        self.problems.push(p);
    }

    /// Files a warning against the key at `path`.
    pub fn warn(&mut self, path: &FieldPath, reason: impl Into<String>) {
        let p = self.problem(path, reason.into());
        self.warnings.push(p);
    }

    /// Files a problem found at byte offset `pos` (a parser's error): the
    /// innermost key there, else `fallback`.
    pub fn error_at(&mut self, pos: usize, fallback: &FieldPath, reason: impl Into<String>) {
        let found = self.index.path_at(pos);
        let path = if found.segments().len() > fallback.segments().len() {
            found
        } else {
            fallback.clone()
        };
        self.problems.push(Problem {
            file: self.file.clone(),
            line: Some(self.index.line(pos)),
            field: path.to_string(),
            reason: reason.into(),
        });
    }

    /// A whole number from `lo` to `hi`, or `default` when absent or bad
    /// (a bad one is filed).
    pub fn int<T: TryFrom<u64>>(
        &mut self,
        path: &FieldPath,
        v: Option<u64>,
        default: T,
        lo: u64,
        hi: u64,
    ) -> T {
        match v {
            None => default,
            Some(n) if (lo..=hi).contains(&n) => T::try_from(n).unwrap_or(default),
            Some(n) => {
                self.error(path, format!("must be from {lo} to {hi}, found {n}"));
                default
            }
        }
    }

    /// A number of at least 1 (finite), or `default`.
    fn at_least_one(&mut self, path: &FieldPath, v: Option<f64>, default: f64) -> f64 {
        match v {
            None => default,
            Some(x) if x.is_finite() && x >= 1.0 => x,
            Some(x) => {
                self.error(path, format!("must be a number of at least 1, found {x}"));
                default
            }
        }
    }

    /// A number from 0 to 1, or `default`.
    fn fraction(&mut self, path: &FieldPath, v: Option<f64>, default: f64) -> f64 {
        match v {
            None => default,
            Some(x) if x.is_finite() && (0.0..=1.0).contains(&x) => x,
            Some(x) => {
                self.error(path, format!("must be between 0 and 1, found {x}"));
                default
            }
        }
    }

    /// A duration above zero, or `default`.
    fn positive(&mut self, path: &FieldPath, v: Option<Dur>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(Dur(Duration::ZERO)) => {
                self.error(path, "must be longer than 0");
                default
            }
            Some(Dur(d)) => d,
        }
    }

    /// Reads a TOML value as `T`, filing serde's complaint on failure. When
    /// a table fails, its keys are tried one by one, so that every bad key
    /// is filed, not just the first, and the good keys are returned (`T`'s fields must all be optional, or
    /// a lone key's "missing field" complaint is ignored).
    fn de<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &FieldPath,
    ) -> Option<T> {
        let err = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let file = |e: &toml::de::Error, cx: &mut Ctx| {
            let pos = e.span().map_or(value.span().start, |s| s.start);
            cx.error_at(pos, path, e.message());
        };
        let DeValue::Table(table) = value.get_ref() else {
            file(&err, self);
            return None;
        };
        let mut kept = DeTable::new();
        for (k, v) in table.iter() {
            let mut lone = DeTable::new();
            lone.insert(k.clone(), v.clone());
            let lone = Spanned::new(value.span(), DeValue::Table(lone));
            match T::deserialize(ValueDeserializer::from(lone)) {
                Err(e) if !e.message().starts_with("missing field") => file(&e, self),
                _ => {
                    kept.insert(k.clone(), v.clone());
                }
            }
        }
        let kept = Spanned::new(value.span(), DeValue::Table(kept));
        match T::deserialize(ValueDeserializer::from(kept)) {
            // The good keys, so that their values are checked too.
            Ok(v) => Some(v),
            Err(e) => {
                file(&e, self);
                None
            }
        }
    }

    /// The secret in environment variable `name` (the value at `path`).
    pub fn secret_env(
        &mut self,
        path: &FieldPath,
        name: &str,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Secret> {
        if !valid_env_name(name) {
            self.error(
                path,
                format!("`{name}` is not an environment variable name (letters, digits, _)"),
            );
            return None;
        }
        match get(name) {
            None => {
                self.error(path, format!("environment variable `{name}` is not set"));
                None
            }
            Some(v) if v.is_empty() => {
                self.error(path, format!("environment variable `{name}` is empty"));
                None
            }
            Some(v) if !header_safe(&v) => {
                self.error(
                    path,
                    format!(
                        "environment variable `{name}` holds spaces or characters an HTTP header cannot carry"
                    ),
                );
                None
            }
            Some(v) => Some(Secret::new(v)),
        }
    }
}

pub(super) fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Visible ASCII only: a token goes into an `Authorization` header.
fn header_safe(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic())
}

const TOP_KEYS: [&str; 17] = [
    "listen",
    "tokens_on_loopback",
    "client_tokens",
    "client_tokens_env",
    "operator_token_env",
    "heartbeat_token_env",
    "state_path",
    "nodes_path",
    "limits",
    "timeouts",
    "pools",
    "routing",
    "health",
    "probes",
    "retry_budget",
    "url_policy",
    "nodes",
];

/// The top-level keys, each read on its own.
#[derive(Default)]
struct Sections {
    listen: Option<String>,
    client_tokens: Option<Vec<String>>,
    client_tokens_env: Option<Vec<String>>,
    operator_token_env: Option<String>,
    heartbeat_token_env: Option<String>,
    tokens_on_loopback: Option<bool>,
    state_path: Option<String>,
    nodes_path: Option<String>,
    limits: RawLimits,
    timeouts: RawTimeouts,
    pools: RawPools,
    routing: RawRouting,
    health: RawHealth,
    probes: RawProbes,
    retry_budget: RawRetryBudget,
    url_policy: RawUrlPolicy,
    nodes: Vec<(FieldPath, RawNode)>,
    nodes_given: bool,
}

fn read_sections(cx: &mut Ctx, root: &DeTable<'_>) -> Sections {
    let mut s = Sections::default();
    for (key, value) in root.iter() {
        let name: &str = key.get_ref();
        let path = FieldPath::key(name);
        match name {
            "listen" => s.listen = cx.de(value, &path),
            "client_tokens" => s.client_tokens = cx.de(value, &path),
            "client_tokens_env" => s.client_tokens_env = cx.de(value, &path),
            "operator_token_env" => s.operator_token_env = cx.de(value, &path),
            "heartbeat_token_env" => s.heartbeat_token_env = cx.de(value, &path),
            "tokens_on_loopback" => s.tokens_on_loopback = cx.de(value, &path),
            "state_path" => s.state_path = cx.de(value, &path),
            "nodes_path" => s.nodes_path = cx.de(value, &path),
            "limits" => s.limits = cx.de(value, &path).unwrap_or_default(),
            "timeouts" => s.timeouts = cx.de(value, &path).unwrap_or_default(),
            "pools" => s.pools = cx.de(value, &path).unwrap_or_default(),
            "routing" => s.routing = cx.de(value, &path).unwrap_or_default(),
            "health" => s.health = cx.de(value, &path).unwrap_or_default(),
            "probes" => s.probes = cx.de(value, &path).unwrap_or_default(),
            "retry_budget" => s.retry_budget = cx.de(value, &path).unwrap_or_default(),
            "url_policy" => s.url_policy = cx.de(value, &path).unwrap_or_default(),
            "nodes" => match value.get_ref() {
                DeValue::Array(items) => {
                    s.nodes_given = true;
                    for (i, item) in items.iter().enumerate() {
                        let at = path.at(i);
                        if let Some(node) = cx.de::<RawNode>(item, &at) {
                            s.nodes.push((at, node));
                        }
                    }
                }
                _ => {
                    s.nodes_given = true;
                    cx.error(&path, "must be a list of nodes ([[nodes]] tables)");
                }
            },
            other => cx.error(
                &path,
                format!(
                    "unknown key `{other}`; expected one of {}",
                    TOP_KEYS.join(", ")
                ),
            ),
        }
    }
    s
}

/// Parses and checks a config file's text (see [`GatewayConfig::parse`]).
pub(super) fn parse(
    text: &str,
    origin: &Path,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayConfig, Problems> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let index = Index::toml(text, doc.get_ref());
        return Err(Problems(
            errors
                .iter()
                .map(|e| Problem {
                    file: origin.to_owned(),
                    line: e.span().map(|s| index.line(s.start)),
                    field: String::new(),
                    reason: format!("invalid TOML: {}", e.message().trim_end()),
                })
                .collect(),
        ));
    }
    let mut cx = Ctx::new(origin, Index::toml(text, doc.get_ref()));
    let s = read_sections(&mut cx, doc.get_ref());
    let base = origin.parent().unwrap_or(Path::new(""));
    let url_policy = url_policy(&mut cx, &s.url_policy);
    let mut config = GatewayConfig::default_local();
    config.origin = origin.to_owned();
    config.url_policy = url_policy;
    if let Some(listen) = &s.listen {
        match listen.parse() {
            Ok(addr) => config.listen = addr,
            Err(_) => cx.error(
                &FieldPath::key("listen"),
                format!("`{listen}` is not an address like 127.0.0.1:8080 or [::1]:8080"),
            ),
        }
    }
    tokens(&mut cx, &s, &mut config, get);
    config.state_path = file_path(&mut cx, "state_path", s.state_path.as_deref(), base);
    config.nodes_path = file_path(&mut cx, "nodes_path", s.nodes_path.as_deref(), base);
    config.limits = limits(&mut cx, s.limits);
    config.timeouts = timeouts(&mut cx, s.timeouts);
    config.router = routing(&mut cx, s.routing, s.pools);
    health(&mut cx, s.health, &mut config.router);
    extra::probes(&mut cx, s.probes, &mut config.router);
    extra::retry_budget(&mut cx, s.retry_budget, &mut config.router);

    let mut sources = vec![nodes::check_all(&mut cx, s.nodes, &config.url_policy, get)];
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if let Some(path) = &config.nodes_path {
        let (source, file_problems, file_warnings) =
            nodes::load_file(path, &config.url_policy, get);
        sources.push(source);
        problems.extend(file_problems);
        warnings.extend(file_warnings);
    } else if !s.nodes_given {
        cx.error(
            &FieldPath::key("nodes"),
            "no nodes: give [[nodes]] tables or nodes_path",
        );
    }
    let all = NodeSource::merge(sources);
    problems.extend(nodes::cross_check(&all));
    config.nodes = all.nodes;

    let merged = config.merged_router();
    if let Err(e) = merged.validate() {
        let field = router_error_field(&e);
        if !cx.problems.iter().any(|p| p.field.starts_with(field)) {
            let path = field.split('.').skip(1).fold(
                FieldPath::key(field.split('.').next().unwrap_or(field)),
                |p, k| p.then(k),
            );
            cx.error(&path, e.to_string());
        }
    }
    cx.problems.extend(problems);
    cx.warnings.extend(warnings);
    if !cx.problems.is_empty() {
        let mut all = cx.problems;
        all.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(Problems(all));
    }
    config.warnings = cx.warnings;
    Ok(config)
}

fn file_path(cx: &mut Ctx, key: &str, v: Option<&str>, base: &Path) -> Option<PathBuf> {
    match v {
        None => None,
        Some("") => {
            cx.error(&FieldPath::key(key), "must not be empty");
            None
        }
        Some(p) => Some(base.join(p)),
    }
}

fn tokens(
    cx: &mut Ctx,
    s: &Sections,
    config: &mut GatewayConfig,
    get: &dyn Fn(&str) -> Option<String>,
) {
    let names = FieldPath::key("client_tokens_env");
    for (i, name) in s.client_tokens_env.iter().flatten().enumerate() {
        let at = names.at(i);
        if let Some(token) = cx.secret_env(&at, name, get) {
            if token.expose().len() < SHORT_TOKEN {
                cx.warn(
                    &at,
                    format!("the token in `{name}` is shorter than {SHORT_TOKEN} characters: easy to guess"),
                );
            }
            config.client_tokens.push(token);
        }
    }
    let inline = FieldPath::key("client_tokens");
    if let Some(list) = &s.client_tokens {
        for (i, token) in list.iter().enumerate() {
            if token.is_empty() || !header_safe(token) {
                cx.error(
                    &inline.at(i),
                    "a token must be visible ASCII characters, without spaces",
                );
            } else {
                config.client_tokens.push(Secret::new(token.clone()));
            }
        }
        if !list.is_empty() {
            cx.warn(
                &inline,
                "tokens written in the config file: anyone who can read the file can use them; \
                 prefer client_tokens_env (names of environment variables)",
            );
        }
    }
    config.tokens_on_loopback = s.tokens_on_loopback.unwrap_or(false);
    if let Some(name) = &s.operator_token_env {
        config.operator_token = cx.secret_env(&FieldPath::key("operator_token_env"), name, get);
    }
    if let Some(name) = &s.heartbeat_token_env {
        let at = FieldPath::key("heartbeat_token_env");
        config.heartbeat_token = cx.secret_env(&at, name, get);
        if config
            .heartbeat_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < SHORT_TOKEN)
        {
            cx.warn(
                &at,
                format!(
                    "the token in `{name}` is shorter than {SHORT_TOKEN} characters: easy to guess"
                ),
            );
        }
    }
}

fn limits(cx: &mut Ctx, raw: RawLimits) -> Limits {
    let d = Limits::default();
    let section = FieldPath::key("limits");
    let bytes = |b: Option<Bytes>| b.map(|Bytes(n)| n);
    Limits {
        max_body_bytes: cx.int(
            &section.then("max_body_bytes"),
            bytes(raw.max_body_bytes),
            d.max_body_bytes,
            1,
            MAX_BODY,
        ),
        max_response_bytes: cx.int(
            &section.then("max_response_bytes"),
            bytes(raw.max_response_bytes),
            d.max_response_bytes,
            1,
            MAX_BODY,
        ),
        max_headers: cx.int(
            &section.then("max_headers"),
            raw.max_headers,
            d.max_headers,
            1,
            1000,
        ),
        max_header_bytes: cx.int(
            &section.then("max_header_bytes"),
            bytes(raw.max_header_bytes),
            d.max_header_bytes,
            8 << 10,
            1 << 20,
        ),
        header_timeout: cx.positive(
            &section.then("header_timeout"),
            raw.header_timeout,
            d.header_timeout,
        ),
    }
}

fn timeouts(cx: &mut Ctx, raw: RawTimeouts) -> Timeouts {
    let d = Timeouts::default();
    let section = FieldPath::key("timeouts");
    let t = Timeouts {
        connect: cx.positive(&section.then("connect"), raw.connect, d.connect),
        attempt: cx.positive(&section.then("attempt"), raw.attempt, d.attempt),
        ttft: cx.positive(&section.then("ttft"), raw.ttft, d.ttft),
        stream_total: cx.positive(
            &section.then("stream_total"),
            raw.stream_total,
            d.stream_total,
        ),
        stream_idle: cx.positive(&section.then("stream_idle"), raw.stream_idle, d.stream_idle),
        queue_wait: raw.queue_wait.map_or(d.queue_wait, |Dur(w)| w),
        shutdown_grace: cx.positive(
            &section.then("shutdown_grace"),
            raw.shutdown_grace,
            d.shutdown_grace,
        ),
    };
    if t.ttft > t.attempt {
        cx.error(
            &section.then("ttft"),
            format!(
                "must not be longer than timeouts.attempt ({:?}): it could never fire",
                t.attempt
            ),
        );
    }
    if t.stream_idle > t.stream_total {
        cx.error(
            &section.then("stream_idle"),
            format!(
                "must not be longer than timeouts.stream_total ({:?}): it could never fire",
                t.stream_total
            ),
        );
    }
    if t.attempt > t.stream_total {
        cx.error(
            &section.then("attempt"),
            format!(
                "must not be longer than timeouts.stream_total ({:?})",
                t.stream_total
            ),
        );
    }
    t
}

fn routing(cx: &mut Ctx, raw: RawRouting, pools: RawPools) -> RouterConfig {
    let mut c = RouterConfig::default();
    let section = FieldPath::key("routing");
    if let Some(name) = &raw.policy {
        match Policy::from_name(name) {
            Some(p) => c.policy = p,
            None => {
                let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
                cx.error(
                    &section.then("policy"),
                    format!(
                        "unknown policy `{name}`; expected one of {}",
                        names.join(", ")
                    ),
                );
            }
        }
    }
    c.max_attempts = cx.int(
        &section.then("max_attempts"),
        raw.max_attempts,
        c.max_attempts,
        1,
        MAX_ATTEMPTS as u64,
    );
    if let Some(mode) = &raw.tag_mode {
        c.tag_mode = match mode.as_str() {
            "prefer" => TagMode::Prefer,
            "strict_first" => TagMode::StrictFirst,
            "require" => TagMode::Require,
            _ => {
                cx.error(
                    &section.then("tag_mode"),
                    format!("unknown tag mode `{mode}`; expected prefer, strict_first or require"),
                );
                c.tag_mode
            }
        };
    }
    c.tag_penalty = cx.at_least_one(&section.then("tag_penalty"), raw.tag_penalty, c.tag_penalty);
    c.strict_models = raw.strict_models.unwrap_or(c.strict_models);
    affinity(cx, &section.then("affinity"), raw.affinity, &mut c);
    hedge(cx, &section.then("hedge"), raw.hedge, &mut c);
    c.pools = pool_limits(cx, pools);
    c
}

/// `[health]`: `stale_after` must be positive, `lost_after` at least
/// `stale_after` (default: 1.5 × `stale_after`).
fn health(cx: &mut Ctx, raw: RawHealth, c: &mut RouterConfig) {
    let section = FieldPath::key("health");
    let core = |d: Duration| drover_core::Duration::from_nanos(d.as_nanos() as u64);
    let d = c.health;
    let std_of = |d: drover_core::Duration| Duration::from_nanos(d.as_nanos());
    let stale = cx.positive(
        &section.then("stale_after"),
        raw.stale_after,
        std_of(d.stale_after),
    );
    // Without lost_after, the default ratio (lost = 1.5 × stale) holds.
    let lost = match (raw.lost_after, raw.stale_after) {
        (Some(Dur(l)), _) => l,
        (None, Some(_)) => stale.mul_f64(1.5),
        (None, None) => std_of(d.lost_after),
    };
    if lost < stale {
        cx.error(
            &section.then("lost_after"),
            format!("must not be shorter than health.stale_after ({stale:?})"),
        );
    }
    c.health.stale_after = core(stale);
    c.health.lost_after = core(lost);
}

fn affinity(cx: &mut Ctx, at: &FieldPath, raw: RawAffinity, c: &mut RouterConfig) {
    let a = &mut c.affinity;
    a.session_promote_ratio = cx.at_least_one(
        &at.then("session_promote_ratio"),
        raw.session_promote_ratio,
        a.session_promote_ratio,
    );
    a.prefix_key_blocks = cx.int(
        &at.then("prefix_key_blocks"),
        raw.prefix_key_blocks,
        a.prefix_key_blocks,
        0,
        255,
    );
    a.prefix_load_factor = cx.at_least_one(
        &at.then("prefix_load_factor"),
        raw.prefix_load_factor,
        a.prefix_load_factor,
    );
    a.prefix_spread = cx.int(
        &at.then("prefix_spread"),
        raw.prefix_spread,
        a.prefix_spread,
        0,
        super::MAX_NODES as u64,
    );
}

fn hedge(cx: &mut Ctx, at: &FieldPath, raw: RawHedge, c: &mut RouterConfig) {
    let h = &mut c.hedge;
    h.enabled = raw.enabled.unwrap_or(h.enabled);
    h.quantile = cx.fraction(&at.then("quantile"), raw.quantile, h.quantile);
    let core = |Dur(d): Dur| drover_core::Duration::from_nanos(d.as_nanos() as u64);
    h.min_delay = raw.min_delay.map_or(h.min_delay, core);
    h.max_delay = raw.max_delay.map_or(h.max_delay, core);
    if h.min_delay > h.max_delay {
        cx.error(
            &at.then("min_delay"),
            format!(
                "must not be longer than routing.hedge.max_delay ({})",
                h.max_delay
            ),
        );
    }
    h.budget_ratio = cx.fraction(&at.then("budget_ratio"), raw.budget_ratio, h.budget_ratio);
    h.budget_burst = cx.int(
        &at.then("budget_burst"),
        raw.budget_burst,
        h.budget_burst,
        0,
        10_000,
    );
    h.non_stream = raw.non_stream.unwrap_or(h.non_stream);
}

/// `[pools]`. A class pool not given defaults to the smaller of its
/// default and `global`.
fn pool_limits(cx: &mut Ctx, raw: RawPools) -> PoolLimits {
    let d = PoolLimits::default();
    let section = FieldPath::key("pools");
    let global = cx.int(
        &section.then("global"),
        raw.global,
        d.global,
        1,
        u64::from(MAX_PERMITS),
    );
    let mut class = |key: &str, v: Option<u64>, default: u32| {
        let path = section.then(key);
        let n = cx.int(&path, v, default.min(global), 0, u64::from(global));
        if n == 0 {
            cx.warn(&path, format!("0 refuses every {key} call"));
        }
        n
    };
    PoolLimits {
        global,
        chat: class("chat", raw.chat, d.chat),
        stream: class("stream", raw.stream, d.stream),
        embed: class("embed", raw.embed, d.embed),
        background: class("background", raw.background, d.background),
    }
}

fn url_policy(cx: &mut Ctx, raw: &RawUrlPolicy) -> UrlPolicy {
    let section = FieldPath::key("url_policy");
    let mut p = UrlPolicy {
        allow_public: raw.allow_public.unwrap_or(false),
        allow_hostnames: raw.allow_hostnames.unwrap_or(false),
        ..UrlPolicy::default()
    };
    for (i, port) in raw.allowed_ports.iter().flatten().enumerate() {
        let port = cx.int(
            &section.then("allowed_ports").at(i),
            Some(*port),
            0u16,
            1,
            65535,
        );
        if port > 0 {
            p.allowed_ports.push(port);
        }
    }
    for (i, cidr) in raw.allowed_cidrs.iter().flatten().enumerate() {
        match cidr.parse::<Cidr>() {
            Ok(c) => p.allowed_cidrs.push(c),
            Err(e) => cx.error(&section.then("allowed_cidrs").at(i), e),
        }
    }
    p
}
