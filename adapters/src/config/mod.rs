//! The gateway's configuration: the TOML file of `drover serve --config`,
//! the nodes JSON it may point to, `DROVER_*` environment overrides, the
//! node URL policy (SSRF rules) and `drover check FILE`.
//!
//! The file format is documented for operators in the "Configuration"
//! section of the repository's `README.md`; `configs/drover.example.toml` is a
//! commented example that `drover check` accepts.
//!
//! - [`GatewayConfig::load`] reads a file, reads the secrets the file names
//!   by environment variable, and checks everything. It never stops at the
//!   first problem: the error is [`Problems`], every problem found, each
//!   with its file, line (when known), field path (`nodes[2].baseUrl`) and
//!   reason, and displays one per line as `FILE:LINE: field `x`: reason`.
//! - [`GatewayConfig::apply_env`] applies `DROVER_LISTEN`, `DROVER_POLICY`,
//!   `DROVER_NODES_PATH`, `DROVER_MAX_BODY_BYTES` and `DROVER_STATE_PATH`.
//!   (`DROVER_LOG` filters logs and is not configuration.)
//! - [`GatewayConfig::router_config`] is the core's
//!   [`RouterConfig`], and
//!   [`GatewayConfig::node_specs`] the core's [`NodeSpec`]s.
//! - [`urlpolicy`] decides which node URLs are allowed.
//! - [`check`] is `drover check FILE`.
//!
//! Durations are strings with a unit (`"10s"`, `"250ms"`, `"2m"`, `"1h"`)
//! or integers of milliseconds; sizes are integers of bytes or strings with
//! a binary unit (`"4MiB"`). Secrets ([`Secret`]) never print.

mod build;
mod env;
mod locate;
mod nodes;
mod raw;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_env;
#[cfg(test)]
mod tests_health;
#[cfg(test)]
mod tests_nodes;
pub mod urlpolicy;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_core::catalog::Catalog;
use drover_core::config::{ConfigError, RouterConfig};
use drover_core::node::{NodeKind, NodeSpec};

pub use raw::{MAX_DURATION, parse_bytes, parse_duration};
pub use urlpolicy::{AddrClass, Cidr, NodeUrl, UrlError, UrlPolicy};

/// Most nodes a gateway routes to (the gateway router's `N`).
pub const MAX_NODES: usize = 64;
/// Most permits (admitted calls) of the gateway router (its `C`): the
/// ceiling of `pools.global`.
pub const MAX_PERMITS: u32 = 16384;
/// Where the gateway listens by default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// The node of [`GatewayConfig::default_local`]: a local Ollama.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:11434";
/// The origin of [`GatewayConfig::default_local`] and its node.
pub const DEFAULT_ORIGIN: &str = "<default>";
/// How problems found in the environment name their file.
pub const ENV_ORIGIN: &str = "<environment>";

/// A token or API key. `Debug` and `Display` print `<redacted>`; only
/// [`Secret::expose`] gives the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value, for an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether `candidate` is this secret, in time that depends only on the
    /// lengths (for checking client tokens).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let diff = mine
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0 && mine.len() == candidate.len()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Request and response size limits and the header timeout (`[limits]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (`max_body_bytes`, default 4 MiB); larger
    /// bodies get 413. Also the router's `max_payload_bytes`.
    pub max_body_bytes: usize,
    /// Largest upstream response read (`max_response_bytes`, default 64 MiB).
    pub max_response_bytes: usize,
    /// Most request headers (`max_headers`, default 100); more get 431.
    pub max_headers: usize,
    /// Most bytes of request line and headers (`max_header_bytes`, default
    /// 16 KiB, at least 8 KiB); more get 431.
    pub max_header_bytes: usize,
    /// Time allowed to read a request's headers (`header_timeout`, default
    /// 10 s); slower clients get 408.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_response_bytes: 64 << 20,
            max_headers: 100,
            max_header_bytes: 16 << 10,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Timeouts (`[timeouts]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to a node (`connect`, default 2 s).
    pub connect: Duration,
    /// One attempt: the whole reply of a non-streamed call, the first byte
    /// of a stream (`attempt`, default 120 s; router `attempt_timeout`).
    pub attempt: Duration,
    /// A stream with no first token by then fails over (`ttft`, default
    /// 30 s; router `ttft_timeout`).
    pub ttft: Duration,
    /// The whole call, failovers and streaming included (`stream_total`,
    /// default 600 s; router `call_timeout`). No answer, whole or streamed,
    /// goes on past it.
    pub stream_total: Duration,
    /// Longest silence between two chunks of a stream after its first token
    /// (`stream_idle`, default 30 s): a stalled upstream then ends the
    /// stream with a terminal error event, charged to the node. Before the
    /// first token `ttft` applies instead.
    pub stream_idle: Duration,
    /// Longest wait in the admission queue; 0 disables waiting
    /// (`queue_wait`, default 5 s; router `queue_wait`).
    pub queue_wait: Duration,
    /// On SIGINT/SIGTERM, how long in-flight calls may take to finish
    /// before their connections are cut (`shutdown_grace`, default 30 s).
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(120),
            ttft: Duration::from_secs(30),
            stream_total: Duration::from_secs(600),
            stream_idle: Duration::from_secs(30),
            queue_wait: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// One model server (`[[nodes]]` or an element of the `nodes_path` JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Unique name: letters, digits, `-`, `_`, `.`, 1 to 64 bytes
    /// (`name`). Used in logs, metrics labels and `/nodes/{name}`.
    pub name: String,
    /// Its protocol (`kind` or `provider`: `ollama`, `openai_compat` or
    /// `openai`).
    pub kind: NodeKind,
    /// Where it is (`baseUrl`), checked against the URL policy.
    pub base_url: NodeUrl,
    /// Most attempts in flight on it (`maxConcurrency`, default 4).
    pub max_concurrency: u16,
    /// Relative capacity (`weight`, default 1).
    pub weight: u16,
    /// What it serves: `chat`, `stream`, `embed`, `vision`
    /// (`capabilities`, default chat, stream and embed).
    pub capabilities: Vec<String>,
    /// Models it serves; empty: any model (`models`).
    pub models: Vec<String>,
    /// Requested model → this node's name for it (`modelAliases`).
    pub model_aliases: BTreeMap<String, String>,
    /// Its API key, read from the environment variable named by
    /// `apiKeyEnv`.
    pub api_key: Option<Secret>,
    /// Operator tags (`tags`).
    pub tags: Vec<String>,
    /// `pinModels`: `models` is the truth and inventory probes (and
    /// `drover discover`) leave it alone (default false).
    pub pin_models: bool,
    /// Whether to send `api_key` as `Authorization: Bearer`: there is a key,
    /// and the address is not public or the node has `allowAuthToPublic`.
    pub send_auth: bool,
    /// The file the node was read from.
    pub origin: PathBuf,
    /// Its position in that file's node list (`nodes[index]` in problems).
    pub index: usize,
    /// Its line in that file, when known.
    pub line: Option<usize>,
}

impl NodeConfig {
    /// A node on a loopback address, built in code rather than read from a
    /// file (the simulated nodes of `drover serve --demo`, tests): every
    /// capability but vision, weight 1, no key.
    pub fn local(
        name: &str,
        kind: NodeKind,
        addr: SocketAddr,
        max_concurrency: u16,
        models: Vec<String>,
        model_aliases: BTreeMap<String, String>,
    ) -> NodeConfig {
        NodeConfig {
            name: name.to_owned(),
            kind,
            base_url: NodeUrl {
                scheme_https: false,
                host: addr.ip().to_string(),
                port: addr.port(),
                addr: Some(addr),
                base_path: String::new(),
                public: false,
            },
            max_concurrency,
            weight: 1,
            capabilities: vec!["chat".into(), "stream".into(), "embed".into()],
            models,
            model_aliases,
            api_key: None,
            tags: Vec::new(),
            pin_models: false,
            send_auth: false,
            origin: PathBuf::from(DEFAULT_ORIGIN),
            index: 0,
            line: None,
        }
    }
}

/// The core's node specs for `nodes`, interning their model names in
/// `catalog` (what [`GatewayConfig::node_specs`] does for the config's own
/// nodes; a reload of the nodes file uses it for the new list).
///
/// # Errors
///
/// A name the core refuses, or a full catalog, naming the node's field.
pub fn node_specs_of(
    nodes: &[NodeConfig],
    catalog: &mut Catalog,
) -> Result<Vec<NodeSpec>, Problems> {
    nodes::node_specs(nodes, catalog)
}

/// Everything `drover serve` is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayConfig {
    /// Address to listen on (`listen`, default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Tokens a non-loopback client must present (`client_tokens_env`,
    /// and inline `client_tokens`, which warns). Empty: no token needed.
    pub client_tokens: Vec<Secret>,
    /// Token the operator endpoints require besides loopback
    /// (`operator_token_env`).
    pub operator_token: Option<Secret>,
    /// Token node agents present with `POST /nodes/heartbeat`
    /// (`heartbeat_token_env`). `None`: heartbeats are refused (403).
    pub heartbeat_token: Option<Secret>,
    /// Require client tokens from loopback clients too
    /// (`tokens_on_loopback`, default false). Turn it on when a local
    /// reverse proxy (TLS terminator) forwards remote clients, which then
    /// all arrive from loopback.
    pub tokens_on_loopback: bool,
    /// Size limits and the header timeout.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Routing settings (`[routing]`, `[pools]`, `[health]`). The timeouts and body cap
    /// in it are overridden from `timeouts` and `limits` by
    /// [`GatewayConfig::router_config`], which is what to give the router.
    pub router: RouterConfig,
    /// The model servers, inline ones first, then those of `nodes_path`.
    pub nodes: Vec<NodeConfig>,
    /// Which node URLs are allowed.
    pub url_policy: UrlPolicy,
    /// Where learned state is saved on shutdown and restored on start
    /// (`state_path`, relative to the config file); `None`: not saved.
    pub state_path: Option<PathBuf>,
    /// The nodes JSON (`nodes_path`, relative to the config file).
    pub nodes_path: Option<PathBuf>,
    /// The config file; [`DEFAULT_ORIGIN`] for [`GatewayConfig::default_local`].
    pub origin: PathBuf,
    /// Things allowed but worth a log line (an inline token, a key that
    /// will not be sent to a public node, …).
    pub warnings: Vec<Problem>,
}

impl GatewayConfig {
    /// No config file: listen on 127.0.0.1:8080 and route to one local
    /// Ollama, `local` at http://127.0.0.1:11434.
    pub fn default_local() -> Self {
        let base_url = NodeUrl {
            scheme_https: false,
            host: "127.0.0.1".to_owned(),
            port: 11434,
            addr: Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::LOCALHOST,
                11434,
            ))),
            base_path: String::new(),
            public: false,
        };
        GatewayConfig {
            listen: DEFAULT_LISTEN,
            client_tokens: Vec::new(),
            operator_token: None,
            heartbeat_token: None,
            tokens_on_loopback: false,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            router: RouterConfig {
                // The gateway probes its nodes (the core's default is off).
                probe: drover_core::probe::ProbeConfig {
                    enabled: true,
                    ..drover_core::probe::ProbeConfig::default()
                },
                ..RouterConfig::default()
            },
            nodes: vec![NodeConfig {
                name: "local".to_owned(),
                kind: NodeKind::Ollama,
                base_url,
                max_concurrency: 4,
                weight: 1,
                capabilities: nodes::DEFAULT_CAPABILITIES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                models: Vec::new(),
                model_aliases: BTreeMap::new(),
                api_key: None,
                tags: Vec::new(),
                pin_models: false,
                send_auth: false,
                origin: PathBuf::from(DEFAULT_ORIGIN),
                index: 0,
                line: None,
            }],
            url_policy: UrlPolicy::default(),
            state_path: None,
            nodes_path: None,
            origin: PathBuf::from(DEFAULT_ORIGIN),
            warnings: Vec::new(),
        }
    }

    /// Reads and checks the config file at `path`, reading the secrets it
    /// names from the process environment. Does not apply `DROVER_*`
    /// overrides (see [`GatewayConfig::apply_env`]).
    pub fn load(path: &Path) -> Result<Self, Problems> {
        Self::load_with(path, &|name| std::env::var(name).ok())
    }

    /// [`GatewayConfig::load`] with `get` as the environment.
    pub fn load_with(path: &Path, get: &dyn Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path, get),
            Err(e) => Err(Problems(vec![Problem::file(
                path,
                format!("cannot read the config file: {e}"),
            )])),
        }
    }

    /// Parses and checks config `text`; `origin` names it in problems and
    /// its folder anchors relative `nodes_path` and `state_path`.
    pub fn parse(
        text: &str,
        origin: &Path,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Problems> {
        build::parse(text, origin, get)
    }

    /// The core router's configuration: [`GatewayConfig::router`] with the
    /// timeouts and the body cap of this config, validated by
    /// [`RouterConfig::validate`].
    pub fn router_config(&self) -> Result<RouterConfig, Problems> {
        let c = self.merged_router();
        c.validate().map_err(|e| {
            Problems(vec![Problem {
                file: self.origin.clone(),
                line: None,
                field: router_error_field(&e).to_owned(),
                reason: e.to_string(),
            }])
        })?;
        Ok(c)
    }

    fn merged_router(&self) -> RouterConfig {
        let core = |d: Duration| {
            drover_core::Duration::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        let mut c = self.router;
        c.queue_wait = core(self.timeouts.queue_wait);
        c.attempt_timeout = core(self.timeouts.attempt);
        c.ttft_timeout = core(self.timeouts.ttft);
        c.call_timeout = core(self.timeouts.stream_total);
        c.max_payload_bytes = u32::try_from(self.limits.max_body_bytes).unwrap_or(u32::MAX);
        c
    }

    /// The core's node specs, in [`GatewayConfig::nodes`] order, interning
    /// model names, aliases and tags in `catalog`.
    pub fn node_specs(&self, catalog: &mut Catalog) -> Result<Vec<NodeSpec>, Problems> {
        nodes::node_specs(&self.nodes, catalog)
    }

    /// Re-reads the nodes file (`nodes_path`) and returns the whole node
    /// list the gateway should now route to: the inline `[[nodes]]` first,
    /// then the file's, checked exactly as at start (URL policy, names,
    /// trust of the file: no symbolic link, not group/world-writable).
    /// `get` reads the environment, for `apiKeyEnv`.
    ///
    /// # Errors
    ///
    /// Every problem, each naming the file, line and field; the caller then
    /// keeps the nodes it has. A config without `nodes_path` has nothing to
    /// reload: a problem saying so.
    pub fn reload_nodes(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<NodeConfig>, Problems> {
        let Some(path) = self.nodes_path.clone() else {
            return Err(Problems(vec![Problem::file(
                &self.origin,
                "no nodes_path: there is no nodes file to reload".to_owned(),
            )]));
        };
        let (source, mut problems, _warnings) = nodes::load_file(&path, &self.url_policy, get);
        let mut next = self.clone();
        env::replace_file_nodes(&mut next, &path, source, &mut problems);
        if problems.is_empty() {
            Ok(next.nodes)
        } else {
            Err(Problems(problems))
        }
    }

    /// Applies the `DROVER_*` overrides found by `get` (pass
    /// `&|k| std::env::var(k).ok()`): `DROVER_LISTEN`, `DROVER_POLICY`,
    /// `DROVER_NODES_PATH` (replaces the nodes of `nodes_path`, or the
    /// default local node; relative to the working directory), `DROVER_MAX_BODY_BYTES`, `DROVER_STATE_PATH`.
    /// A bad value is a problem naming the variable; on error nothing is
    /// changed.
    pub fn apply_env(&mut self, get: &dyn Fn(&str) -> Option<String>) -> Result<(), Problems> {
        env::apply(self, get).map(|_| ())
    }

    /// A few lines saying what this config sets up, for `drover check`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "listen {}, {} node{}, policy {}, {} client token{}{}{}\n",
            self.listen,
            self.nodes.len(),
            if self.nodes.len() == 1 { "" } else { "s" },
            self.router.policy.name(),
            self.client_tokens.len(),
            if self.client_tokens.len() == 1 {
                ""
            } else {
                "s"
            },
            if self.operator_token.is_some() {
                ", operator token set"
            } else {
                ""
            },
            if self.heartbeat_token.is_some() {
                ", heartbeats enabled"
            } else {
                ""
            },
        );
        for n in &self.nodes {
            let kind = match n.kind {
                NodeKind::Ollama => "ollama",
                NodeKind::OpenAiCompat => "openai_compat",
            };
            let models = if n.models.is_empty() {
                "any model".to_owned()
            } else {
                n.models.join(", ")
            };
            s.push_str(&format!(
                "  {} ({kind}) {} weight {} maxConcurrency {}: {models}{}\n",
                n.name,
                n.base_url,
                n.weight,
                n.max_concurrency,
                if n.send_auth { " [auth]" } else { "" },
            ));
        }
        if let Some(p) = &self.nodes_path {
            s.push_str(&format!("nodes file: {}\n", p.display()));
        }
        if let Some(p) = &self.state_path {
            s.push_str(&format!("state file: {}\n", p.display()));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}

/// The config key a [`RouterConfig::validate`] error is about.
pub(crate) fn router_error_field(e: &ConfigError) -> &'static str {
    use drover_core::admission::{LimitsError, Pool};
    match e {
        ConfigError::MaxAttempts => "routing.max_attempts",
        ConfigError::ZeroTimeout("attempt_timeout") => "timeouts.attempt",
        ConfigError::ZeroTimeout("ttft_timeout") => "timeouts.ttft",
        ConfigError::ZeroTimeout(_) => "timeouts.stream_total",
        ConfigError::PromoteRatio => "routing.affinity.session_promote_ratio",
        ConfigError::PrefixLoadFactor => "routing.affinity.prefix_load_factor",
        ConfigError::TagPenalty => "routing.tag_penalty",
        ConfigError::Hedge("quantile") => "routing.hedge.quantile",
        ConfigError::Hedge("min_delay") => "routing.hedge.min_delay",
        ConfigError::Hedge("budget_ratio") => "routing.hedge.budget_ratio",
        ConfigError::Hedge(_) => "routing.hedge",
        ConfigError::Pools(LimitsError::PoolExceedsGlobal { pool, .. }) => match pool {
            Pool::Chat => "pools.chat",
            Pool::Stream => "pools.stream",
            Pool::Embed => "pools.embed",
            Pool::Background => "pools.background",
        },
        ConfigError::Pools(_) => "pools.global",
        ConfigError::Health(_) => "health",
        _ => "routing",
    }
}

/// One thing wrong with a config. Displays as `FILE:LINE: field `x`:
/// reason`, without `:LINE` when the line is unknown and without the field
/// part when the problem is about the whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or [`ENV_ORIGIN`] for an environment variable).
    pub file: PathBuf,
    /// The line, from 1, when known.
    pub line: Option<usize>,
    /// The field path (`nodes[2].baseUrl`, `DROVER_LISTEN`); empty for the
    /// whole file.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    /// A problem about the whole of `file`.
    pub fn file(file: &Path, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_owned(),
            line: None,
            field: String::new(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem found in a config, in file order. Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Checks the text of a nodes file (the JSON that `nodes_path` names) as if
/// read from `origin`, without opening any file: the nodes in file order, or
/// every problem (sorted by line). `policy` decides which node URLs are
/// allowed and `get` is the environment the nodes' `apiKeyEnv` read.
pub fn parse_nodes(
    text: &str,
    origin: &Path,
    policy: &UrlPolicy,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<NodeConfig>, Problems> {
    let (source, mut problems, _warnings) = nodes::check_text(origin, text, policy, get);
    problems.extend(nodes::cross_check(&source));
    if problems.is_empty() {
        Ok(source.nodes)
    } else {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(Problems(problems))
    }
}

/// `drover check FILE`: loads the config as `drover serve --config FILE`
/// would (secrets and `DROVER_*` overrides from the process environment)
/// and returns a summary, or every problem.
pub fn check(path: &Path) -> Result<String, Problems> {
    check_with(path, &|name| std::env::var(name).ok())
}

/// [`check`] with `get` as the environment.
pub fn check_with(path: &Path, get: &dyn Fn(&str) -> Option<String>) -> Result<String, Problems> {
    let mut config = GatewayConfig::load_with(path, get)?;
    let applied = env::apply(&mut config, get)?;
    config.router_config()?;
    let mut s = format!("{}: ok\n", path.display());
    s.push_str(&config.summary());
    if !applied.is_empty() {
        s.push_str(&format!("environment overrides: {}\n", applied.join(", ")));
    }
    Ok(s)
}
