//! The official MCP Python SDK as a client of `/mcp` (`tests/mcp/client.py`, in the venv
//! `scripts/setup.sh` makes): a job of tool calls in, their results out.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

/// How long a client run may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// `tests/mcp`.
pub fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp")
}

/// The Python of the MCP venv.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("FULCRUM_MCP_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/fulcrum/mcp-venv", std::env::var("HOME").unwrap()));
    let python = Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "run scripts/setup.sh to install the MCP Python packages ({} is missing)",
        python.display()
    );
    python
}

/// Runs the Python SDK client (`tests/mcp/client.py`) with `job` and returns what it printed.
pub async fn python_client(job: Value) -> Value {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(venv_python())
        .arg(mcp_dir().join("client.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python client starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(job.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the Python client finishes in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A job for [`python_client`]: these tool calls, in order.
pub fn job(relay: &str, token: &str, calls: Vec<(&str, Value)>) -> Value {
    json!({
        "url": format!("{relay}/mcp"),
        "token": token,
        "calls": calls.into_iter().map(|(name, args)| json!({ "name": name, "args": args })).collect::<Vec<_>>(),
    })
}

/// The calls' results of a client run, in order.
pub fn calls(out: &Value) -> Vec<Value> {
    out["calls"].as_array().unwrap().clone()
}
