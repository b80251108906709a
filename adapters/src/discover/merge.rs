//! The nodes file: reading the old one, merging what was found into it,
//! and rendering the new one.

use std::collections::BTreeSet;
use std::path::Path;

use drover_core::catalog::MAX_NAME;
use drover_core::node::NodeKind;
use serde_json::{Map, Value, json};

use crate::config::UrlPolicy;

type Object = Map<String, Value>;

/// A nodes file as read: its form and its node entries, every key kept.
#[derive(Debug, Default)]
pub(super) struct Old {
    /// `{"nodes": [...]}` rather than a bare list.
    pub object_form: bool,
    /// The entries, in order.
    pub entries: Vec<Object>,
}

/// Reads the nodes file at `path`; `Ok(None)` if there is none.
pub(super) fn read_old(path: &Path) -> Result<Option<Old>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let bad = |why: &str| format!("{} is not a nodes file: {why}", path.display());
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let (object_form, list) = match v {
        Value::Array(list) => (false, list),
        Value::Object(mut o) => match o.remove("nodes") {
            Some(Value::Array(list)) => (true, list),
            _ => return Err(bad("an object without a `nodes` list")),
        },
        _ => return Err(bad("neither a list nor an object")),
    };
    let entries = list
        .into_iter()
        .enumerate()
        .map(|(i, e)| match e {
            Value::Object(o) => Ok(o),
            _ => Err(bad(&format!("nodes[{i}] is not an object"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(Old {
        object_form,
        entries,
    }))
}

/// A node found by the probes.
#[derive(Clone, Debug)]
pub(super) struct NewNode {
    /// The host as given (for the name).
    pub host: String,
    /// Its base URL, `http://ADDR:PORT`.
    pub base_url: String,
    /// The port.
    pub port: u16,
    /// Its protocol.
    pub kind: NodeKind,
    /// Its catalog.
    pub models: Vec<String>,
}

/// What merging did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Merged {
    /// The nodes file, pretty JSON.
    pub text: String,
    /// Entries in it.
    pub nodes: usize,
    /// New entries added.
    pub added: usize,
    /// Old entries found again and refreshed.
    pub updated: usize,
    /// Old entries whose address was probed and did not answer, kept.
    pub not_answering: usize,
    /// Old entries at addresses not probed this run, kept.
    pub not_probed: usize,
    /// Servers that answered with an empty catalog: not added (an empty
    /// `models` means "any model" to the gateway), old entries left as
    /// they were.
    pub empty: usize,
    /// Model aliases dropped because their model left the catalog.
    pub aliases_dropped: usize,
    /// Notes for stderr.
    pub warnings: Vec<String>,
}

/// A `baseUrl` in a comparable form: the policy's normalised URL when it
/// parses (the policy is permissive: this only compares text), else the
/// text without a trailing `/`.
pub(super) fn url_key(url: &str) -> String {
    let parse = UrlPolicy {
        allow_public: true,
        allow_hostnames: true,
        ..UrlPolicy::default()
    };
    match parse.check_url(url) {
        Ok(u) => u.to_string(),
        Err(_) => url.trim_end_matches('/').to_owned(),
    }
}

/// A node name from a host and port: the host's letters, digits, `-`, `_`
/// and `.` (others become `-`), `-PORT`, at most [`MAX_NAME`] bytes.
pub(super) fn node_name(host: &str, port: u16) -> String {
    let suffix = format!("-{port}");
    let mut base: String = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(MAX_NAME - suffix.len());
    base + &suffix
}

fn kind_str(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Ollama => "ollama",
        NodeKind::OpenAiCompat => "openai_compat",
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges `found` into `old`. `probed` holds the [`url_key`] of every
/// address probed this run; `tags` are added to every node found.
pub(super) fn merge(
    old: Option<Old>,
    found: Vec<NewNode>,
    probed: &BTreeSet<String>,
    tags: &[String],
) -> Result<Merged, String> {
    let old = old.unwrap_or(Old {
        object_form: true,
        entries: Vec::new(),
    });
    let mut m = Merged::default();
    let mut entries = old.entries;
    let mut names: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut refreshed = vec![false; entries.len()];
    for node in found {
        let key = url_key(&node.base_url);
        let at = entries.iter().position(|e| {
            e.get("baseUrl")
                .and_then(Value::as_str)
                .is_some_and(|u| url_key(u) == key)
        });
        if node.models.is_empty() {
            m.empty += 1;
            if let Some(i) = at {
                refreshed[i] = true;
            }
            continue;
        }
        match at {
            Some(i) => {
                refreshed[i] = true;
                m.updated += 1;
                refresh(&mut entries[i], &node, tags, &mut m);
            }
            None => {
                let mut name = node_name(&node.host, node.port);
                let mut n = 2;
                while names.contains(&name) {
                    let suffix = format!("-{n}");
                    name = node_name(&node.host, node.port);
                    name.truncate(MAX_NAME - suffix.len());
                    name.push_str(&suffix);
                    n += 1;
                }
                names.insert(name.clone());
                let entry = json!({
                    "name": name,
                    "kind": kind_str(node.kind),
                    "baseUrl": node.base_url,
                    "maxConcurrency": 4,
                    "weight": 1,
                    "models": node.models,
                    "tags": tags,
                });
                if let Value::Object(o) = entry {
                    entries.push(o);
                    refreshed.push(true);
                    m.added += 1;
                }
            }
        }
    }
    for (e, done) in entries.iter().zip(&refreshed) {
        if *done {
            continue;
        }
        let probed_now = e
            .get("baseUrl")
            .and_then(Value::as_str)
            .is_some_and(|u| probed.contains(&url_key(u)));
        if probed_now {
            m.not_answering += 1;
        } else {
            m.not_probed += 1;
        }
    }
    m.nodes = entries.len();
    let list = Value::Array(entries.into_iter().map(Value::Object).collect());
    let doc = if old.object_form {
        json!({ "nodes": list })
    } else {
        list
    };
    m.text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    Ok(m)
}

/// Refreshes an old entry with what was found: kind, models (unless
/// pinned), tags added; aliases to models no longer served are dropped.
/// Every other key is kept as the operator left it.
fn refresh(e: &mut Object, node: &NewNode, tags: &[String], m: &mut Merged) {
    e.remove("provider");
    e.insert("kind".to_owned(), json!(kind_str(node.kind)));
    let pinned = e.get("pinModels").and_then(Value::as_bool) == Some(true);
    if !pinned {
        e.insert("models".to_owned(), json!(node.models));
    }
    let models = strings(e.get("models"));
    let mut all_tags = strings(e.get("tags"));
    for t in tags {
        if !all_tags.contains(t) {
            all_tags.push(t.clone());
        }
    }
    if !all_tags.is_empty() {
        e.insert("tags".to_owned(), json!(all_tags));
    }
    let name = e
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    if let Some(Value::Object(aliases)) = e.get_mut("modelAliases")
        && !models.is_empty()
    {
        aliases.retain(|requested, local| {
            let keep = local
                .as_str()
                .is_some_and(|l| models.iter().any(|m| m == l));
            if !keep {
                m.aliases_dropped += 1;
                m.warnings.push(format!(
                    "node `{name}`: alias `{requested}` dropped: its model is no longer served"
                ));
            }
            keep
        });
    }
}
