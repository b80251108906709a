//! Reloading the nodes file without a restart.
//!
//! When the config names a `nodes_path`, a task looks at the file every
//! [`RELOAD_EVERY`]: its size, modification time, inode and mode. When any
//! of them changes it re-reads the file with the same checks as at start
//! (URL policy, names, a file that is not a symbolic link and not
//! group/world-writable) and hands the new list to
//! [`Gateway::apply_nodes`]. A file with problems is refused as a whole: the
//! gateway logs every problem (file, line, field) and keeps routing to the
//! nodes it has. `drover check` finds the same problems before you save.

use std::sync::Arc;
use std::time::Duration;

use drover_transports::smol::Shutdown;

use super::gateway::{Gateway, ReloadSummary};

/// How often the nodes file is looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of the nodes file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
    mode: u32,
    symlink: bool,
}

/// The current stamp of `path` (`None`: it cannot be read, e.g. it is
/// being replaced).
pub fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    #[cfg(unix)]
    let (inode, mode) = {
        use std::os::unix::fs::MetadataExt;
        (meta.ino(), meta.mode())
    };
    #[cfg(not(unix))]
    let (inode, mode) = (0, 0);
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
        mode,
        symlink: meta.file_type().is_symlink(),
    })
}

/// Re-reads the nodes file and applies it.
///
/// # Errors
///
/// The file's problems (each naming file, line and field), or why the
/// gateway could not take the new list; nothing changed then.
pub fn reload_now(gw: &Gateway) -> Result<ReloadSummary, String> {
    let next = gw
        .cfg
        .reload_nodes(&|k| std::env::var(k).ok())
        .map_err(|p| p.to_string())?;
    gw.apply_nodes(next)
}

/// Watches the nodes file until shutdown (returns at once without one).
/// `seen` is the file's stamp when the nodes were read at start, taken
/// before the gateway answered anything, so a change made right after the
/// start is never mistaken for the version already loaded.
pub(crate) async fn reload_task(gw: Arc<Gateway>, shutdown: Shutdown, mut seen: Option<Stamp>) {
    let Some(path) = gw.cfg.nodes_path.clone() else {
        return;
    };
    while !shutdown.is_triggered() {
        drover_transports::smol::Timer::after(RELOAD_EVERY).await;
        gw.retire_idle_nodes();
        let now = stamp(&path);
        if now == seen || now.is_none() {
            continue;
        }
        seen = now;
        match reload_now(&gw) {
            Ok(s) => {
                gw.stats.record_nodes_reload(true);
                tracing::info!("nodes file {} reloaded: {s}", path.display());
            }
            Err(e) => {
                gw.stats.record_nodes_reload(false);
                tracing::warn!(
                    "nodes file {} NOT reloaded, still routing to the previous nodes: {e}",
                    path.display()
                );
            }
        }
    }
}
