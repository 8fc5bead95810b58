//! Who this workspace is: a stable key kept in the state directory, the host name, and what
//! Coder's environment says.

use std::path::Path;

use anyhow::{Context, Result};
use fulcrum_protocol::{CoderFacts, WorkspaceIdentity};
use uuid::Uuid;

const KEY_FILE: &str = "workspace-key";

/// Builds the identity for a workspace rooted at `root`, creating the key on first run.
pub fn load(state_dir: &Path, root: &Path) -> Result<WorkspaceIdentity> {
    let key = load_or_create_key(state_dir)?;
    let hostname = hostname();
    let coder = coder_facts(|name| std::env::var(name).ok());
    let name = coder
        .as_ref()
        .and_then(|c| c.workspace_name.clone())
        .unwrap_or_else(|| hostname.clone());
    Ok(WorkspaceIdentity {
        key,
        name,
        hostname,
        root: root.display().to_string(),
        coder,
    })
}

fn load_or_create_key(state_dir: &Path) -> Result<String> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = Uuid::new_v4().to_string();
    // Write-then-rename so a crash never leaves a half-written key.
    let tmp = state_dir.join(format!("{KEY_FILE}.tmp"));
    std::fs::write(&tmp, &key).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads Coder's workspace facts through `var`; `None` outside Coder.
pub fn coder_facts(var: impl Fn(&str) -> Option<String>) -> Option<CoderFacts> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    let facts = CoderFacts {
        workspace_name: get("CODER_WORKSPACE_NAME"),
        owner: get("CODER_WORKSPACE_OWNER_NAME").or_else(|| get("CODER_WORKSPACE_OWNER")),
        agent_name: get("CODER_WORKSPACE_AGENT_NAME"),
        access_url: get("CODER_AGENT_URL"),
    };
    (facts != CoderFacts::default()).then_some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), dir.path()).unwrap();
        let b = load(dir.path(), dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        assert!(!a.name.is_empty());
    }

    #[test]
    fn coder_facts_come_from_the_environment() {
        assert_eq!(coder_facts(|_| None), None);
        let facts = coder_facts(|n| match n {
            "CODER_WORKSPACE_NAME" => Some("api".into()),
            "CODER_WORKSPACE_OWNER" => Some("ann".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(facts.workspace_name.as_deref(), Some("api"));
        assert_eq!(facts.owner.as_deref(), Some("ann"));
    }
}
