//! What survives a restart: operator-set node modes (with their reasons)
//! and the router's learned state (latency EWMAs, breakers), saved on
//! shutdown and after every mode change, restored on start.
//!
//! The file is JSON, written atomically (a temporary file in the same
//! folder, then a rename) with mode 0600:
//!
//! ```json
//! {"version":1,"modes":{"gpu-box":{"mode":"Drain","reason":"driver update"}},"learned":"0a1b…"}
//! ```
//!
//! `learned` is the core's versioned postcard snapshot, hex-encoded. Nodes
//! are matched by name; nodes that no longer exist are ignored, and a
//! snapshot from an incompatible version is ignored with a warning (the
//! gateway then starts cold, which is always safe).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use drover_core::node::Mode;
use drover_core::snapshot::Snapshot;
use serde::{Deserialize, Serialize};

use super::gateway::{Gateway, MAX_NODES};

/// A node mode set through `POST /nodes/{name}/mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeRecord {
    /// The mode.
    pub mode: Mode,
    /// Why the operator set it.
    #[serde(default)]
    pub reason: String,
}

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version (1).
    pub version: u32,
    /// Modes by node name.
    #[serde(default)]
    pub modes: BTreeMap<String, ModeRecord>,
    /// The router's snapshot, hex.
    #[serde(default)]
    pub learned: String,
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let state: State = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}: {e} (delete the file to start with a fresh state)",
            path.display(),
            e.line()
        )
    })?;
    if state.version != 1 {
        return Err(format!(
            "{}: state version {} is not supported (expected 1)",
            path.display(),
            state.version
        ));
    }
    Ok(state)
}

/// Applies a loaded state to the gateway's router. Returns a one-line
/// summary for the log.
pub fn apply(gw: &Gateway, state: State) -> String {
    let now = gw.now();
    let mut applied = 0;
    for (name, rec) in &state.modes {
        let id = gw.router.with(|r| r.nodes().find(name));
        if let Some(id) = id {
            if gw.router.set_mode(id, rec.mode, now).is_ok() {
                applied += 1;
            }
        }
    }
    *gw.modes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = state.modes;
    let mut restored = String::from("no learned state");
    if !state.learned.is_empty() {
        match hex_decode(&state.learned)
            .and_then(|b| Snapshot::<MAX_NODES>::decode(&b).map_err(|e| format!("snapshot: {e}")))
        {
            Ok(snap) => {
                let r = gw.router.with_mut(|r| r.restore(&snap, now));
                restored = format!("learned state restored ({r:?})");
            }
            Err(e) => {
                tracing::warn!("ignoring the saved learned state: {e}");
                restored = "learned state ignored".into();
            }
        }
    }
    format!("{applied} saved node mode(s) applied, {restored}")
}

/// Saves modes and learned state to `path`.
pub fn save(gw: &Gateway, path: &Path) -> Result<(), String> {
    let now = gw.now();
    let snap = gw.router.with(|r| r.snapshot(now));
    let learned = snap
        .to_vec()
        .map(|b| hex_encode(&b))
        .map_err(|e| format!("snapshot: {e}"))?;
    let modes = gw
        .modes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let state = State {
        version: 1,
        modes,
        learned,
    };
    let text = serde_json::to_string(&state).map_err(|e| e.to_string())?;
    write_atomic(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file and a rename, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
    }
    let mut tmp: PathBuf = path.to_owned();
    tmp.set_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn hex_encode(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("learned state: odd hex length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("learned state: bad hex at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrips_and_rejects_garbage() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex_decode(&hex_encode(&b)).unwrap(), b);
        assert!(hex_decode("abc").is_err());
        assert!(hex_decode("zz").is_err());
    }

    #[test]
    fn load_reports_missing_as_empty_and_bad_files_with_their_line() {
        let dir = std::env::temp_dir().join(format!("drover-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        let _ = std::fs::remove_file(&p);
        assert!(load(&p).unwrap().modes.is_empty());
        std::fs::write(&p, "{\n\"version\": 1,\n\"modes\": 7}").unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("state.json:3"), "{e}");
        std::fs::write(&p, r#"{"version":2}"#).unwrap();
        assert!(load(&p).unwrap_err().contains("version 2"));
        write_atomic(
            &p,
            br#"{"version":1,"modes":{"a":{"mode":"Drain","reason":"x"}}}"#,
        )
        .unwrap();
        let s = load(&p).unwrap();
        assert_eq!(s.modes["a"].mode, Mode::Drain);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
