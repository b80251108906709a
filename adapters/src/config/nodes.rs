//! Nodes in the seed schema: checking one node, reading the `nodes_path`
//! JSON file, the checks across all nodes (unique names, the gateway's
//! capacities) and the core's [`NodeSpec`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use drover_core::catalog::{Catalog, MAX_MODELS, MAX_NAME, MAX_TAGS, ModelSet};
use drover_core::node::{Capabilities, MAX_ALIASES, NodeKind, NodeSpec};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::build::Ctx;
use super::locate::{FieldPath, Index};
use super::raw::RawNode;
use super::{MAX_NODES, NodeConfig, Problem, Problems, UrlPolicy};

/// Capabilities of a node that lists none.
pub(super) const DEFAULT_CAPABILITIES: [&str; 3] = ["chat", "stream", "embed"];

/// Capability names and their bits.
const CAPABILITIES: [(&str, Capabilities); 4] = [
    ("chat", Capabilities::CHAT),
    ("stream", Capabilities::STREAM),
    ("embed", Capabilities::EMBED),
    ("vision", Capabilities::VISION),
];

/// Where a node's name is, for the checks across files.
pub(super) struct NameRef {
    name: String,
    file: PathBuf,
    line: Option<usize>,
    field: String,
}

/// The nodes read from one file (or several, merged): the valid ones, and
/// the name of every node seen, valid or not.
#[derive(Default)]
pub(super) struct NodeSource {
    pub nodes: Vec<NodeConfig>,
    names: Vec<NameRef>,
}

impl NodeSource {
    pub fn merge(sources: Vec<NodeSource>) -> NodeSource {
        sources
            .into_iter()
            .fold(NodeSource::default(), |mut all, s| {
                all.nodes.extend(s.nodes);
                all.names.extend(s.names);
                all
            })
    }
}

/// A source of already checked nodes (for replacing some of them).
pub(super) fn source_of(nodes: Vec<NodeConfig>) -> NodeSource {
    let names = nodes
        .iter()
        .map(|n| NameRef {
            name: n.name.clone(),
            file: n.origin.clone(),
            line: n.line,
            field: format!("nodes[{}].name", n.index),
        })
        .collect();
    NodeSource { nodes, names }
}

/// Checks the nodes of one file.
pub(super) fn check_all(
    cx: &mut Ctx,
    raws: Vec<(FieldPath, RawNode)>,
    policy: &UrlPolicy,
    get: &dyn Fn(&str) -> Option<String>,
) -> NodeSource {
    let mut source = NodeSource::default();
    for (path, raw) in raws {
        let name_path = path.then("name");
        if let Some(name) = &raw.name {
            source.names.push(NameRef {
                name: name.clone(),
                file: cx.file.clone(),
                line: cx.index.line_of(&name_path),
                field: name_path.to_string(),
            });
        }
        if let Some(node) = check_node(cx, &path, raw, policy, get) {
            source.nodes.push(node);
        }
    }
    source
}

/// A required key's value; its absence is filed against the node.
fn required(cx: &mut Ctx, path: &FieldPath, v: Option<String>, key: &str) -> Option<String> {
    if v.is_none() {
        cx.error(path, format!("missing field `{key}`"));
    }
    v
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME
}

/// Checks a list of names (models, tags): each 1 to 64 bytes, no repeats.
fn names(cx: &mut Ctx, at: &FieldPath, list: Option<Vec<String>>, what: &str) -> Vec<String> {
    let list = list.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, name) in list.iter().enumerate() {
        if !name_ok(name) {
            cx.error(
                &at.at(i),
                format!("{what} name must be 1 to {MAX_NAME} bytes, found {name:?}"),
            );
        } else if !seen.insert(name.as_str()) {
            cx.error(&at.at(i), format!("{what} `{name}` is listed twice"));
        }
    }
    list
}

fn check_node(
    cx: &mut Ctx,
    path: &FieldPath,
    raw: RawNode,
    policy: &UrlPolicy,
    get: &dyn Fn(&str) -> Option<String>,
) -> Option<NodeConfig> {
    let before = cx.problems.len();
    let name = required(cx, path, raw.name, "name");
    let url = required(cx, path, raw.base_url, "baseUrl");
    if let Some(name) = &name
        && (!name_ok(name)
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    {
        cx.error(
            &path.then("name"),
            format!("must be 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`, found {name:?}"),
        );
    }
    let kind = kind(cx, path, raw.kind.as_deref(), raw.provider.as_deref());
    let base_url = match url.as_deref().map(|u| policy.check_url(u)) {
        None => None,
        Some(Ok(u)) if u.scheme_https => {
            cx.error(
                &path.then("baseUrl"),
                "https node URLs are not supported yet (the gateway speaks plain http to nodes; \
                 use http on the LAN)",
            );
            None
        }
        Some(Ok(u)) => Some(u),
        Some(Err(e)) => {
            cx.error(&path.then("baseUrl"), e.to_string());
            None
        }
    };
    let max_concurrency = cx.int(
        &path.then("maxConcurrency"),
        raw.max_concurrency,
        4u16,
        1,
        u64::from(u16::MAX),
    );
    let weight = cx.int(
        &path.then("weight"),
        raw.weight,
        1u16,
        1,
        u64::from(u16::MAX),
    );
    let caps_path = path.then("capabilities");
    let capabilities = match raw.capabilities {
        None => DEFAULT_CAPABILITIES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        Some(list) if list.is_empty() => {
            cx.error(
                &caps_path,
                "a node must serve something: list chat, stream, embed and/or vision",
            );
            list
        }
        Some(list) => {
            for (i, cap) in list.iter().enumerate() {
                if !CAPABILITIES.iter().any(|(n, _)| n == cap) {
                    cx.error(
                        &caps_path.at(i),
                        format!(
                            "unknown capability `{cap}`; expected chat, stream, embed or vision"
                        ),
                    );
                } else if list[..i].contains(cap) {
                    cx.error(
                        &caps_path.at(i),
                        format!("capability `{cap}` is listed twice"),
                    );
                }
            }
            list
        }
    };
    let models = names(cx, &path.then("models"), raw.models, "model");
    let aliases_path = path.then("modelAliases");
    let model_aliases = raw.model_aliases.unwrap_or_default();
    if model_aliases.len() > MAX_ALIASES {
        cx.error(
            &aliases_path,
            format!(
                "{} aliases; a node may have at most {MAX_ALIASES}",
                model_aliases.len()
            ),
        );
    }
    for (requested, local) in &model_aliases {
        let at = aliases_path.then(requested);
        if !name_ok(requested) || !name_ok(local) {
            cx.error(&at, format!("model names must be 1 to {MAX_NAME} bytes"));
        } else if !models.is_empty() && !models.contains(local) {
            cx.error(
                &at,
                format!(
                    "alias `{requested}` points to `{local}`, which is not in this node's models"
                ),
            );
        }
    }
    let tags = names(cx, &path.then("tags"), raw.tags, "tag");
    let api_key = raw
        .api_key_env
        .as_deref()
        .and_then(|var| cx.secret_env(&path.then("apiKeyEnv"), var, get));
    if cx.problems.len() > before {
        return None;
    }
    let (name, base_url) = (name?, base_url?);
    let allow_auth = raw.allow_auth_to_public.unwrap_or(false);
    if api_key.is_some() && base_url.public && !allow_auth {
        cx.warn(
            &path.then("apiKeyEnv"),
            format!(
                "the API key of node `{name}` will not be sent: {} is public or a host name; \
                 set allowAuthToPublic = true to send it",
                base_url
            ),
        );
    }
    if kind == NodeKind::OpenAiCompat && base_url.base_path.ends_with("/v1") {
        cx.warn(
            &path.then("baseUrl"),
            "baseUrl ends with /v1, and drover appends /v1/... paths itself: give the server root",
        );
    }
    Some(NodeConfig {
        send_auth: api_key.is_some() && (!base_url.public || allow_auth),
        name,
        kind,
        base_url,
        max_concurrency,
        weight,
        capabilities,
        models,
        model_aliases,
        api_key,
        tags,
        pin_models: raw.pin_models.unwrap_or(false),
        origin: cx.file.clone(),
        index: match path.segments().last() {
            Some(super::locate::Segment::Index(i)) => *i,
            _ => 0,
        },
        line: cx.index.line_of(path),
    })
}

/// `kind` or `provider` (either may be given; if both, they must agree).
fn kind(cx: &mut Ctx, path: &FieldPath, kind: Option<&str>, provider: Option<&str>) -> NodeKind {
    let parse = |cx: &mut Ctx, key: &str, v: &str| match v {
        "ollama" => Some(NodeKind::Ollama),
        "openai_compat" | "openai" => Some(NodeKind::OpenAiCompat),
        _ => {
            cx.error(
                &path.then(key),
                format!("unknown kind `{v}`; expected ollama, openai_compat or openai"),
            );
            None
        }
    };
    let k = kind.and_then(|v| parse(cx, "kind", v));
    let p = provider.and_then(|v| parse(cx, "provider", v));
    match (kind, provider, k, p) {
        (None, None, ..) => {
            cx.error(
                path,
                "needs `kind` (or `provider`): ollama or openai_compat",
            );
            NodeKind::Ollama
        }
        (_, _, Some(k), Some(p)) if k != p => {
            cx.error(
                &path.then("provider"),
                "disagrees with `kind`; give one of them",
            );
            k
        }
        (_, _, k, p) => k.or(p).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesObject {
    #[allow(dead_code)]
    nodes: IgnoredAny,
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Reads a node that failed as a whole key by key, filing every bad key;
/// returns the node made of its good keys, if that has every required one.
fn json_each(cx: &mut Ctx, at: &FieldPath, object: &JsonObject) -> Option<RawNode> {
    let mut kept = JsonObject::new();
    for (k, v) in object {
        let lone = JsonObject::from_iter([(k.clone(), v.clone())]);
        match serde_json::from_value::<RawNode>(serde_json::Value::Object(lone)) {
            Err(e) if !e.to_string().starts_with("missing field") => {
                cx.error(&at.then(k), json_message(&e));
            }
            _ => {
                kept.insert(k.clone(), v.clone());
            }
        }
    }
    match serde_json::from_value::<RawNode>(serde_json::Value::Object(kept)) {
        Ok(raw) => Some(raw),
        Err(e) => {
            cx.error(at, json_message(&e));
            None
        }
    }
}

/// serde_json's message without its ` at line L column C` suffix.
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Refuses a nodes file that someone other than its owner could have
/// changed: a symbolic link (its target may move), or a file that its group
/// or everyone may write; and anything but a regular file, whose reading
/// could block. The nodes file decides where prompts and API keys
/// go, so it must be as trusted as the config itself.
pub(crate) fn trusted_file(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(format!("cannot read the nodes file: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err(
            "the nodes file is a symbolic link; point nodes_path at the file itself".to_owned(),
        );
    }
    if !meta.file_type().is_file() {
        // Reading a FIFO or a device (`/dev/kmsg`) may block for ever.
        return Err(
            "the nodes file is not a regular file (a folder, a FIFO or a device)".to_owned(),
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(format!(
                "the nodes file may be written by its group or by everyone (mode {:o}); \
                 run `chmod go-w` on it",
                mode & 0o777
            ));
        }
    }
    Ok(())
}

/// Reads and checks the nodes JSON at `path`: a list of nodes, or an
/// object `{"nodes": [...]}`. Returns the nodes, the problems and the
/// warnings.
pub(super) fn load_file(
    path: &Path,
    policy: &UrlPolicy,
    get: &dyn Fn(&str) -> Option<String>,
) -> (NodeSource, Vec<Problem>, Vec<Problem>) {
    if let Err(reason) = trusted_file(path) {
        return (
            NodeSource::default(),
            vec![Problem::file(path, reason)],
            Vec::new(),
        );
    }
    match std::fs::read_to_string(path) {
        Ok(text) => check_text(path, &text, policy, get),
        Err(e) => {
            let p = Problem::file(path, format!("cannot read the nodes file: {e}"));
            (NodeSource::default(), vec![p], Vec::new())
        }
    }
}

/// Checks the text of a nodes file read from `path` (see [`load_file`]).
pub(super) fn check_text(
    path: &Path,
    text: &str,
    policy: &UrlPolicy,
    get: &dyn Fn(&str) -> Option<String>,
) -> (NodeSource, Vec<Problem>, Vec<Problem>) {
    let mut cx = Ctx::new(path, Index::json("", &FieldPath::default()));
    if let Err(e) = serde_json::from_str::<IgnoredAny>(text) {
        let p = Problem {
            file: path.to_owned(),
            line: Some(e.line()),
            field: String::new(),
            reason: format!("invalid JSON: {}", json_message(&e)),
        };
        return (NodeSource::default(), vec![p], Vec::new());
    }
    let list = FieldPath::key("nodes");
    let root = match text.trim_start().as_bytes().first() {
        Some(b'[') => list.clone(),
        Some(b'{') => {
            if let Err(e) = serde_json::from_str::<NodesObject>(text) {
                let p = Problem {
                    file: path.to_owned(),
                    line: Some(e.line()),
                    field: String::new(),
                    reason: json_message(&e),
                };
                return (NodeSource::default(), vec![p], Vec::new());
            }
            FieldPath::default()
        }
        _ => {
            // The line where the (valid JSON, but wrong) value starts.
            let lead = text.len() - text.trim_start().len();
            let p = Problem {
                file: path.to_owned(),
                line: Some(text[..lead].matches('\n').count() + 1),
                field: String::new(),
                reason: "must be a JSON list of nodes, or an object with a `nodes` list".to_owned(),
            };
            return (NodeSource::default(), vec![p], Vec::new());
        }
    };
    cx.index = Index::json(text, &root);
    if cx
        .index
        .span_of(&list)
        .is_some_and(|s| !text[s].starts_with('['))
    {
        cx.error(&list, "must be a list of nodes");
    }
    let mut raws = Vec::new();
    let mut names = Vec::new();
    for i in 0.. {
        let at = list.at(i);
        let Some(span) = cx.index.span_of(&at) else {
            break;
        };
        let slice = &text[span.clone()];
        let err = match serde_json::from_str::<RawNode>(slice) {
            Ok(raw) => {
                raws.push((at, raw));
                continue;
            }
            Err(e) => e,
        };
        let Ok(object) = serde_json::from_str::<JsonObject>(slice) else {
            // Not an object at all: serde_json's position is exact.
            let line_start: usize = slice
                .split_inclusive('\n')
                .take(err.line().saturating_sub(1))
                .map(str::len)
                .sum();
            let pos = span.start + line_start + err.column().saturating_sub(1);
            cx.error_at(pos.min(span.end.saturating_sub(1)), &at, json_message(&err));
            continue;
        };
        if let Some(raw) = json_each(&mut cx, &at, &object) {
            raws.push((at, raw));
        } else if let Some(name) = object.get("name").and_then(|n| n.as_str()) {
            // Still count its name for the duplicate check.
            let name_path = at.then("name");
            names.push(NameRef {
                name: name.to_owned(),
                file: path.to_owned(),
                line: cx.index.line_of(&name_path),
                field: name_path.to_string(),
            });
        }
    }
    let mut source = check_all(&mut cx, raws, policy, get);
    source.names.extend(names);
    if source.names.is_empty() && cx.problems.is_empty() {
        cx.error(&list, "the nodes file lists no nodes");
    }
    (source, cx.problems, cx.warnings)
}

/// The checks across every node: unique names, at most [`MAX_NODES`]
/// nodes, and no more distinct models and tags than the core can intern.
pub(super) fn cross_check(all: &NodeSource) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut first: BTreeMap<&str, &NameRef> = BTreeMap::new();
    for (i, n) in all.names.iter().enumerate() {
        let at = |reason: String| Problem {
            file: n.file.clone(),
            line: n.line,
            field: n.field.clone(),
            reason,
        };
        if let Some(prev) = first.get(n.name.as_str()) {
            let place = match prev.line {
                Some(l) => format!("{}:{l}", prev.file.display()),
                None => prev.file.display().to_string(),
            };
            problems.push(at(format!(
                "duplicate node name `{}` (first given at {place})",
                n.name
            )));
        } else {
            first.insert(&n.name, n);
        }
        if i == MAX_NODES {
            problems.push(at(format!(
                "more than {MAX_NODES} nodes, the gateway's limit"
            )));
        }
    }
    let mut models = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for n in &all.nodes {
        let at = |field: &str, reason: String| Problem {
            file: n.origin.clone(),
            line: n.line,
            field: format!("nodes[{}].{field}", n.index),
            reason,
        };
        let before = models.len();
        models.extend(n.models.iter().map(String::as_str));
        models.extend(
            n.model_aliases
                .iter()
                .flat_map(|(a, b)| [a.as_str(), b.as_str()]),
        );
        if before <= MAX_MODELS && models.len() > MAX_MODELS {
            problems.push(at(
                "models",
                format!("more than {MAX_MODELS} distinct model names in all"),
            ));
        }
        let before = tags.len();
        tags.extend(n.tags.iter().map(String::as_str));
        if before <= MAX_TAGS && tags.len() > MAX_TAGS {
            problems.push(at(
                "tags",
                format!("more than {MAX_TAGS} distinct tags in all"),
            ));
        }
    }
    problems
}

/// The core's node specs (see [`super::GatewayConfig::node_specs`]).
pub(super) fn node_specs(
    nodes: &[NodeConfig],
    catalog: &mut Catalog,
) -> Result<Vec<NodeSpec>, Problems> {
    let mut specs = Vec::with_capacity(nodes.len());
    let mut problems = Vec::new();
    for n in nodes {
        let mut fail = |field: &str, reason: String| {
            problems.push(Problem {
                file: n.origin.clone(),
                line: n.line,
                field: format!("nodes[{}]{field}", n.index),
                reason,
            });
        };
        let mut spec = match NodeSpec::new(&n.name, n.kind) {
            Ok(s) => s,
            Err(e) => {
                fail(".name", e.to_string());
                continue;
            }
        };
        spec.weight = n.weight;
        spec.max_concurrency = n.max_concurrency;
        spec.pinned_models = n.pin_models;
        spec.capabilities = n
            .capabilities
            .iter()
            .filter_map(|c| CAPABILITIES.iter().find(|(name, _)| name == c))
            .fold(Capabilities::NONE, |acc, (_, bit)| acc.union(*bit));
        if !n.models.is_empty() {
            spec.models = ModelSet::EMPTY;
        }
        for m in &n.models {
            match catalog.intern_model(m) {
                Ok(id) => spec.models.insert(id),
                Err(e) => fail(".models", format!("`{m}`: {e}")),
            }
        }
        for (requested, local) in &n.model_aliases {
            let ids = catalog
                .intern_model(requested)
                .and_then(|r| catalog.intern_model(local).map(|l| (r, l)));
            match ids {
                Ok((r, l)) => {
                    if let Err(e) = spec.add_alias(r, l) {
                        fail(".modelAliases", e.to_string());
                    }
                }
                Err(e) => fail(&format!(".modelAliases.{requested}"), e.to_string()),
            }
        }
        for t in &n.tags {
            match catalog.intern_tag(t) {
                Ok(bit) => spec.tags.0 |= bit.0,
                Err(e) => fail(".tags", format!("`{t}`: {e}")),
            }
        }
        if let Err(e) = spec.validate() {
            fail("", e.to_string());
        }
        specs.push(spec);
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(Problems(problems))
    }
}
