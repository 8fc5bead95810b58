//! The MCP endpoint `/mcp`, driven by clients no one here wrote: the official Python SDK (`mcp`
//! on PyPI) and the MCP Inspector's command line (npm), against a real relay, real agents and
//! real git repositories; with the reference servers `mcp-server-git` (PyPI) and
//! `@modelcontextprotocol/server-filesystem` (npm) hosted by an agent.
//!
//! `scripts/setup.sh` installs the Python packages in a venv (`FULCRUM_MCP_VENV`) and the npm
//! packages under `tests/mcp/node_modules`.

use fulcrum_protocol::kinds::{Scope, Scopes};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use fulcrum_agent::{AgentOptions, RunningAgent, hosted::ServerConfig};
use fulcrum_tests::{
    mcp_client::{CLIENT_TIMEOUT, calls, job, mcp_dir, python_client, venv_python},
    *,
};
use serde_json::{Value, json};

fn node_package(path: &str) -> PathBuf {
    let p = mcp_dir().join("node_modules").join(path);
    assert!(
        p.exists(),
        "run scripts/setup.sh to install the MCP npm packages ({} is missing)",
        p.display()
    );
    p
}

fn ok_text(call: &Value) -> String {
    assert_eq!(call["is_error"], false, "{call}");
    call["text"].as_str().unwrap().to_owned()
}

fn err_text(call: &Value) -> String {
    assert_eq!(call["is_error"], true, "expected a refusal: {call}");
    call["text"].as_str().unwrap().to_owned()
}

/// Creates an MCP token for `user`.
async fn mcp_token(relay: &str, user: &TestUser, read_only: bool) -> String {
    let reply = Api::new(relay)
        .with_token(&user.access)
        .post(
            "/api/v1/tokens",
            if read_only {
                json!({ "name": "mcp client", "kind": "mcp", "scopes": ["read"] })
            } else {
                json!({ "name": "mcp client", "kind": "mcp" })
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.data()["kind"], "mcp", "{:?}", reply.data());
    let secret = reply.data()["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fcm_"));
    secret
}

/// Starts an agent that allows writes (or not) and hosts `servers`.
async fn start_tool_agent(
    relay: &str,
    token: &str,
    root: &Path,
    allow_writes: bool,
    servers: Vec<ServerConfig>,
) -> TestAgent {
    let state = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(AgentOptions {
        policy: if allow_writes {
            Scopes::of(&[Scope::Write, Scope::Run])
        } else {
            Scopes::of(&[Scope::Run])
        },
        mcp_servers: servers,
        ..AgentOptions::new(
            fulcrum_tests::transport::target(relay, token, None),
            root.to_path_buf(),
            state.path().to_path_buf(),
        )
    })
    .await
    .unwrap();
    agent.wait_for(connected, WAIT).await.unwrap();
    TestAgent { agent, state }
}

/// The test server whose `wait` tool writes a marker file, then sleeps.
fn slow_server() -> ServerConfig {
    ServerConfig {
        name: "slow".into(),
        command: venv_python().display().to_string(),
        args: vec![mcp_dir().join("slow_server.py").display().to_string()],
        env: Default::default(),
    }
}

/// Waits until another process (the Python client, the slow server) has written `marker`:
/// the file appearing is its readiness, polled with a deadline.
async fn wait_for_marker(marker: &Path, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `check` holds for the relay's view of the workspace's tools, re-checking each
/// time the agent's catalog could have changed (polled: the catalog lives in the session).
async fn wait_tools(
    relay: &fulcrum_relay::Relay,
    workspace: uuid::Uuid,
    mut check: impl FnMut(&fulcrum_relay::gateway::SessionTools) -> bool,
) -> fulcrum_relay::gateway::SessionTools {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = relay.state.sessions.tools(workspace)
            && check(&t)
        {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workspace's tools never got there: {:?}",
            relay.state.sessions.tools(workspace)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn workspace_id(agent: &TestAgent) -> uuid::Uuid {
    agent.agent.status().connection.workspace_id.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_reads_diffs_writes_and_runs_through_the_relay() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    repo.write("README.md", "hello\nchanged by hand\n");
    repo.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    let agent = start_tool_agent(&relay.url(), &user.agent_token, repo.path(), true, vec![]).await;
    let ws = workspace_id(&agent).to_string();
    let token = mcp_token(&relay.url(), &user, false).await;

    let out = python_client(json!({
        "url": format!("{}/mcp", relay.url()),
        "token": token,
        "resources": true,
        "calls": [
            { "name": "list_workspaces", "args": {} },
            { "name": "read_file", "args": { "workspace": ws, "path": "README.md" } },
            { "name": "read_file", "args": { "workspace": ws, "path": "README.md", "tail": 1 } },
            { "name": "git_diff", "args": { "workspace": ws } },
            { "name": "git_status", "args": { "workspace": ws } },
            { "name": "git_log", "args": { "workspace": ws, "max_count": 1 } },
            { "name": "search_files", "args": { "workspace": ws, "pattern": "answer" } },
            { "name": "list_directory", "args": { "workspace": ws, "path": "src" } },
            { "name": "write_file", "args": { "workspace": ws, "path": "notes.txt", "content": "from the model\n" } },
            { "name": "edit_file", "args": { "workspace": ws, "path": "src/lib.rs", "edits": [{ "oldText": "42", "newText": "43" }] } },
            { "name": "run_task", "args": { "workspace": ws, "command": "cat notes.txt; echo done-by-mcp; exit 3", "wait_s": 60 } },
            { "name": "list_tasks", "args": { "workspace": ws } },
        ],
    }))
    .await;
    assert_eq!(out["protocol"], "2025-11-25");
    assert_eq!(out["server"], "fulcrum-relay");
    for tool in [
        "list_workspaces",
        "workspace_status",
        "list_directory",
        "directory_tree",
        "read_file",
        "search_files",
        "git_status",
        "git_diff",
        "git_log",
        "git_show",
        "write_file",
        "edit_file",
        "run_task",
        "get_task",
        "list_tasks",
        "list_projects",
    ] {
        assert!(out["tools"].get(tool).is_some(), "{tool} is listed");
    }
    assert_eq!(out["tools"]["read_file"]["read_only"], true);
    assert_eq!(out["tools"]["write_file"]["read_only"], false);
    assert_eq!(
        out["tools"]["read_file"]["schema"]["required"],
        json!(["workspace", "path"])
    );
    // The relay's own tools publish output schemas (the SDK checks each structured result
    // against them); the agent's answer in text, like the reference servers.
    for tool in [
        "list_workspaces",
        "workspace_status",
        "list_projects",
        "run_task",
        "get_task",
        "list_tasks",
    ] {
        assert_eq!(
            out["tools"][tool]["output_schema"]["type"], "object",
            "{tool}"
        );
    }
    assert!(out["tools"]["read_file"]["output_schema"].is_null());
    let c = calls(&out);
    let listed: Value = serde_json::from_str(&ok_text(&c[0])).unwrap();
    assert_eq!(
        listed, c[0]["structured"],
        "the text is the structured result"
    );
    let listed = &listed["workspaces"];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], ws.as_str());
    assert_eq!(ok_text(&c[1]), "hello\nchanged by hand\n");
    assert_eq!(ok_text(&c[2]), "changed by hand\n");
    let diff = ok_text(&c[3]);
    assert!(diff.contains("+changed by hand"), "{diff}");
    let status = ok_text(&c[4]);
    assert!(
        status.contains("On branch main") && status.contains("modified: README.md"),
        "{status}"
    );
    assert!(ok_text(&c[5]).contains("Initial commit"));
    assert!(ok_text(&c[6]).contains("src/lib.rs:1: pub fn answer()"));
    assert_eq!(ok_text(&c[7]), "[FILE] lib.rs\n");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        "from the model\n"
    );
    assert!(ok_text(&c[9]).contains("-pub fn answer() -> u32 { 42 }"));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("src/lib.rs")).unwrap(),
        "pub fn answer() -> u32 { 43 }\n"
    );
    let task: Value = serde_json::from_str(&ok_text(&c[10])).unwrap();
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["exit_code"], 3);
    assert_eq!(task["source"], "mcp");
    assert_eq!(task["log"], "from the model\ndone-by-mcp\n");
    let tasks: Value = serde_json::from_str(&ok_text(&c[11])).unwrap();
    assert_eq!(tasks["tasks"][0]["id"], task["id"]);
    // The run is a task like any other: the REST API shows it.
    let via_rest = Api::new(&relay.url())
        .with_token(&user.access)
        .get(&format!("/api/v1/tasks/{}", task["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(via_rest.data()["exit_code"], 3);
    // Resources: the workspace and its repository, readable as JSON.
    let repo_uri = format!("fulcrum://workspaces/{ws}/repos/.");
    assert!(
        out["resources"]
            .as_array()
            .unwrap()
            .contains(&json!(repo_uri)),
        "{}",
        out["resources"]
    );
    let repo_state: Value =
        serde_json::from_str(out["resource_texts"][&repo_uri].as_str().unwrap()).unwrap();
    assert_eq!(repo_state["branch"], "main");

    // get_task, and the SDK's high-level client, which speaks the newest protocol.
    let mut auto = job(
        &relay.url(),
        &token,
        vec![
            (
                "get_task",
                json!({ "task_id": task["id"], "log_tail_bytes": 5 }),
            ),
            // By its number in its workspace: the short handle.
            (
                "get_task",
                json!({ "task_id": format!("#{}", task["number"]), "workspace": ws.to_string() }),
            ),
        ],
    );
    auto["mode"] = json!("auto");
    let out = python_client(auto).await;
    assert_eq!(out["protocol"], "2026-07-28");
    let got: Value = serde_json::from_str(&ok_text(&calls(&out)[0])).unwrap();
    assert_eq!(got["log"], "-mcp\n", "{got}");
    assert_eq!(
        got["log_offset"], 22,
        "the tail is the last 5 of 27 bytes: {got}"
    );
    assert!(task["number"].as_i64().is_some_and(|n| n >= 1), "{task}");
    let by_number: Value = serde_json::from_str(&ok_text(&calls(&out)[1])).unwrap();
    assert_eq!(by_number["id"], task["id"], "{by_number}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_an_mcp_token_get_401_pointing_at_the_resource_metadata() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let http = reqwest::Client::new();
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "raw", "version": "1" } } });
    let post = |token: Option<&str>| {
        let mut req = http
            .post(format!("{}/mcp", relay.url()))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", relay.url());
    // No token, a made-up one, and an agent token (the wrong kind): all 401, all pointing at
    // the metadata.
    for token in [
        None,
        Some("fcm_not-a-real-token"),
        Some(user.agent_token.as_str()),
    ] {
        let reply = post(token).await.unwrap();
        assert_eq!(reply.status(), 401, "{token:?}");
        let challenge = reply.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(&format!(r#"Bearer resource_metadata="{metadata_url}""#)),
            "{challenge}"
        );
        assert_eq!(
            token.is_some(),
            challenge.contains(r#"error="invalid_token""#)
        );
    }
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{}/mcp", relay.url()));
    assert!(
        !metadata["authorization_servers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    // An MCP token does not open the agents' door either.
    let token = mcp_token(&relay.url(), &user, false).await;
    assert_eq!(
        RawAgent::connect(&relay.url(), &token).await.err(),
        Some(401)
    );
    assert_eq!(post(Some(&token)).await.unwrap().status(), 200);
    // A revoked token stops working at once.
    let tokens = Api::new(&relay.url())
        .with_token(&user.access)
        .get("/api/v1/tokens")
        .await
        .unwrap();
    let listed = tokens.data().as_array().unwrap().clone();
    let mcp = listed.iter().find(|t| t["kind"] == "mcp").unwrap();
    assert_eq!(mcp["scopes"], json!(["read", "write", "run"]));
    Api::new(&relay.url())
        .with_token(&user.access)
        .delete(&format!("/api/v1/tokens/{}", id(mcp)))
        .await
        .unwrap();
    assert_eq!(post(Some(&token)).await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_cli_lists_tools_and_calls_one() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let agent = start_tool_agent(&relay.url(), &user.agent_token, repo.path(), false, vec![]).await;
    let token = mcp_token(&relay.url(), &user, true).await;
    let inspector = node_package(".bin/mcp-inspector");
    let home = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(&inspector);
        cmd.env("HOME", home.path())
            .arg("--cli")
            .arg(format!("{}/mcp", relay.url()))
            .args(["--transport", "http", "--format", "json"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
                .await
                .expect("the inspector finishes in time")
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let auth = format!("Authorization: Bearer {token}");
    let (code, listed) = run(vec![
        "--method".into(),
        "tools/list".into(),
        "--header".into(),
        auth.clone(),
    ])
    .await;
    assert_eq!(code, Some(0), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"read_file") && names.contains(&"git_status"),
        "{names:?}"
    );
    // A read-only token is not offered the tools that write or run.
    assert!(
        !names.contains(&"write_file") && !names.contains(&"run_task"),
        "{names:?}"
    );

    let (code, called) = run(vec![
        "--method".into(),
        "tools/call".into(),
        "--tool-name".into(),
        "read_file".into(),
        "--tool-arg".into(),
        format!("workspace={}", workspace_id(&agent)),
        "path=README.md".into(),
        "--header".into(),
        auth,
    ])
    .await;
    assert_eq!(code, Some(0), "{called}");
    let called: Value = serde_json::from_str(&called).unwrap();
    assert_eq!(called["result"]["isError"], false);
    assert_eq!(called["result"]["content"][0]["text"], "hello\n");

    let (code, _) = run(vec![
        "--method".into(),
        "tools/list".into(),
        "--header".into(),
        "Authorization: Bearer fcm_wrong".into(),
    ])
    .await;
    assert_ne!(code, Some(0), "a wrong token is refused");
}

/// The reference servers, as an agent's config names them.
fn reference_servers(root: &Path) -> Vec<ServerConfig> {
    let toml = format!(
        r#"
[[mcp_servers]]
name = "git"
command = "{python}"
args = ["-m", "mcp_server_git", "--repository", "{root}"]

[[mcp_servers]]
name = "fs"
command = "node"
args = ["{fs}", "{root}"]
"#,
        python = venv_python().display(),
        root = root.display(),
        fs = node_package("@modelcontextprotocol/server-filesystem/dist/index.js").display(),
    );
    #[derive(serde::Deserialize)]
    struct File {
        mcp_servers: Vec<ServerConfig>,
    }
    // Parsed as the agent parses its config file.
    toml::from_str::<File>(&toml).unwrap().mcp_servers
}

/// The pids of processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_reference_servers_answer_through_the_relay_and_come_back_when_killed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    repo.write("README.md", "hello\nhosted\n");
    let root = std::fs::canonicalize(repo.path()).unwrap();
    // The workspace's policy allows `write`: the servers' writing tools need it.
    let agent = start_tool_agent(
        &relay.url(),
        &user.agent_token,
        &root,
        true,
        reference_servers(&root),
    )
    .await;
    let ws = workspace_id(&agent);
    wait_tools(&relay, ws, |t| {
        t.catalog.servers.len() == 2 && t.catalog.servers.iter().all(|s| s.running)
    })
    .await;
    let token = mcp_token(&relay.url(), &user, false).await;
    let root_s = root.display().to_string();
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![
            (
                "git__git_status",
                json!({ "workspace": ws, "repo_path": root_s }),
            ),
            (
                "git__git_log",
                json!({ "workspace": ws, "repo_path": root_s, "max_count": 1 }),
            ),
            (
                "fs__read_text_file",
                json!({ "workspace": ws, "path": format!("{root_s}/README.md") }),
            ),
            (
                "fs__list_directory",
                json!({ "workspace": ws, "path": root_s }),
            ),
            (
                "fs__read_text_file",
                json!({ "workspace": ws, "path": "/etc/passwd" }),
            ),
            ("workspace_status", json!({ "workspace": ws })),
        ],
    ))
    .await;
    for name in [
        "git__git_status",
        "git__git_diff",
        "fs__read_text_file",
        "fs__write_file",
    ] {
        let schema = &out["tools"][name]["schema"];
        assert_eq!(schema["required"][0], "workspace", "{name}: {schema}");
    }
    assert_eq!(out["tools"]["git__git_status"]["read_only"], true);
    let c = calls(&out);
    assert!(
        ok_text(&c[0]).contains("modified:   README.md")
            || ok_text(&c[0]).contains("modified: README.md"),
        "{}",
        c[0]
    );
    assert!(ok_text(&c[1]).contains("Initial commit"));
    assert_eq!(ok_text(&c[2]), "hello\nhosted\n");
    assert!(ok_text(&c[3]).contains("[FILE] README.md"));
    // The server's own rule: nothing outside its directory.
    assert!(
        err_text(&c[4]).contains("outside allowed directories"),
        "{}",
        c[4]
    );
    let status: Value = serde_json::from_str(&ok_text(&c[5])).unwrap();
    let servers = status["hosted_mcp_servers"].as_array().unwrap();
    assert!(servers.iter().all(|s| s["running"] == true), "{servers:?}");

    // A read-only token may call what the server marks read-only, and nothing else.
    let read_only = mcp_token(&relay.url(), &user, true).await;
    let out = python_client(job(
        &relay.url(),
        &read_only,
        vec![
            (
                "git__git_status",
                json!({ "workspace": ws, "repo_path": root_s }),
            ),
            (
                "fs__write_file",
                json!({ "workspace": ws, "path": format!("{root_s}/x.txt"), "content": "x" }),
            ),
            (
                "git__git_add",
                json!({ "workspace": ws, "repo_path": root_s, "files": ["README.md"] }),
            ),
        ],
    ))
    .await;
    assert!(out["tools"].get("fs__write_file").is_none());
    let c = calls(&out);
    ok_text(&c[0]);
    assert!(
        err_text(&c[1]).contains("lacks the `write` scope"),
        "{}",
        c[1]
    );
    assert!(
        err_text(&c[2]).contains("lacks the `write` scope"),
        "{}",
        c[2]
    );
    assert!(!root.join("x.txt").exists());
    assert!(git(&root, &["diff", "--cached", "--name-only"]).is_empty());

    // Kill the git server: the agent starts it again, and calls work again.
    let needle = format!("mcp_server_git --repository {root_s}");
    let before = pids_with(&needle);
    assert_eq!(before.len(), 1, "{before:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    wait_tools(&relay, ws, |t| {
        t.catalog
            .servers
            .iter()
            .any(|s| s.name == "git" && !s.running)
    })
    .await;
    let back = wait_tools(&relay, ws, |t| t.catalog.servers.iter().all(|s| s.running)).await;
    assert!(
        back.catalog
            .servers
            .iter()
            .any(|s| s.name == "git" && !s.tools.is_empty())
    );
    let after = pids_with(&needle);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![(
            "git__git_status",
            json!({ "workspace": ws, "repo_path": root_s }),
        )],
    ))
    .await;
    ok_text(&calls(&out)[0]);
    // The agent's servers stop with it.
    agent.agent.stop().await;
    assert!(pids_with(&needle).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused_and_nothing_outside_the_root_is_read_or_written() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let outside = tempfile::tempdir().unwrap();
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    std::fs::write(outside.join("secret.txt"), "TOP-SECRET-CONTENT\n").unwrap();
    let repo = TestRepo::new();
    std::os::unix::fs::symlink(&outside, repo.path().join("link_out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), repo.path().join("secret_link"))
        .unwrap();
    std::os::unix::fs::symlink(outside.join("new.txt"), repo.path().join("dangling")).unwrap();
    let agent = start_tool_agent(&relay.url(), &user.agent_token, repo.path(), true, vec![]).await;
    let ws = workspace_id(&agent).to_string();
    let token = mcp_token(&relay.url(), &user, false).await;
    let secret = outside.join("secret.txt").display().to_string();
    let long = "a/".repeat(2100);
    let hostile: Vec<String> = vec![
        "../secret.txt".into(),
        "../../../../etc/passwd".into(),
        "/etc/passwd".into(),
        "/".into(),
        secret.clone(),
        format!("{}/../secret.txt", repo.path().display()),
        "src/../../x".into(),
        "./../x".into(),
        ".git/../../etc/passwd".into(),
        "link_out/secret.txt".into(),
        "secret_link".into(),
        "link_out".into(),
        "%2e%2e/%2e%2e/etc/passwd".into(),
        "..%2f..%2fetc%2fpasswd".into(),
        "..\\..\\etc\\passwd".into(),
        "\u{ff0e}\u{ff0e}/etc/passwd".into(),
        "~/.ssh/id_rsa".into(),
        "/proc/self/environ".into(),
        "//etc/passwd".into(),
        "README.md\0.txt".into(),
        long,
        "/dev/null/../etc".into(),
    ];
    assert!(hostile.len() >= 20);
    let mut calls_list = Vec::new();
    for path in &hostile {
        calls_list.push(("read_file", json!({ "workspace": ws, "path": path })));
        calls_list.push(("list_directory", json!({ "workspace": ws, "path": path })));
        calls_list.push((
            "write_file",
            json!({ "workspace": ws, "path": path, "content": "PWNED" }),
        ));
    }
    calls_list.push((
        "write_file",
        json!({ "workspace": ws, "path": "dangling", "content": "PWNED" }),
    ));
    calls_list.push((
        "write_file",
        json!({ "workspace": ws, "path": "link_out/new.txt", "content": "PWNED" }),
    ));
    calls_list.push((
        "search_files",
        json!({ "workspace": ws, "path": "link_out", "pattern": "SECRET" }),
    ));
    calls_list.push((
        "search_files",
        json!({ "workspace": ws, "path": "/", "pattern": "SECRET" }),
    ));
    calls_list.push(("git_status", json!({ "workspace": ws, "repo_path": "../" })));
    calls_list.push((
        "directory_tree",
        json!({ "workspace": ws, "path": "link_out" }),
    ));
    calls_list.push(("edit_file", json!({ "workspace": ws, "path": "secret_link", "edits": [{ "oldText": "TOP", "newText": "PWNED" }] })));
    let expected = calls_list.len();
    let out = python_client(job(&relay.url(), &token, calls_list)).await;
    let c = calls(&out);
    assert_eq!(c.len(), expected);
    for (i, call) in c.iter().enumerate() {
        // A refusal, with a message; the "%2e%2e" and "~" forms are plain names inside the
        // root, which do not exist.
        let text = err_text(call);
        assert!(!text.is_empty(), "call {i}");
        assert!(!text.contains("TOP-SECRET"), "call {i} leaked: {text}");
    }
    // Nothing outside was written, and the search through the symlink found nothing.
    let mut names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "TOP-SECRET-CONTENT\n"
    );
    drop(agent);
}

async fn tenancy_and_read_only_tokens(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let repo_a = TestRepo::new();
    repo_a.write("private.txt", "ALICE-ONLY\n");
    let repo_b = TestRepo::new();
    let agent_a = start_tool_agent(
        &relay.url(),
        &alice.agent_token,
        repo_a.path(),
        true,
        vec![],
    )
    .await;
    let agent_b =
        start_tool_agent(&relay.url(), &bob.agent_token, repo_b.path(), true, vec![]).await;
    let (ws_a, ws_b) = (workspace_id(&agent_a), workspace_id(&agent_b));
    let alice_api = Api::new(&relay.url()).with_token(&alice.access);
    let task_a = post_task(
        &alice_api,
        json!({ "workspace_id": ws_a, "command": "echo alice-task" }),
    )
    .await;
    let name_a = agent_a.agent.status().workspace_name.clone();

    // Bob's token: his own workspace only, through every tool and resource.
    let bob_token = mcp_token(&relay.url(), &bob, false).await;
    let mut bob_job = job(
        &relay.url(),
        &bob_token,
        vec![
            ("list_workspaces", json!({})),
            (
                "read_file",
                json!({ "workspace": ws_a, "path": "private.txt" }),
            ),
            (
                "read_file",
                json!({ "workspace": name_a, "path": "private.txt" }),
            ),
            ("workspace_status", json!({ "workspace": ws_a })),
            ("git_status", json!({ "workspace": ws_a })),
            (
                "write_file",
                json!({ "workspace": ws_a, "path": "bob.txt", "content": "x" }),
            ),
            (
                "run_task",
                json!({ "workspace": ws_a, "command": "echo bob-was-here" }),
            ),
            ("get_task", json!({ "task_id": id(&task_a) })),
            ("list_tasks", json!({})),
            ("list_tasks", json!({ "workspace": ws_a })),
            (
                "read_file",
                json!({ "workspace": ws_b, "path": "README.md" }),
            ),
        ],
    );
    bob_job["resources"] = json!(true);
    let out = python_client(bob_job).await;
    let c = calls(&out);
    let listed: Value = serde_json::from_str(&ok_text(&c[0])).unwrap();
    let listed = &listed["workspaces"];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], ws_b.to_string());
    for (i, call) in c.iter().enumerate().skip(1).take(6) {
        let text = err_text(call);
        assert!(!text.contains("ALICE-ONLY"), "call {i}: {text}");
    }
    assert!(
        err_text(&c[7]).contains("not found") || err_text(&c[7]).contains("No such"),
        "{}",
        c[7]
    );
    let tasks: Value = serde_json::from_str(&ok_text(&c[8])).unwrap();
    assert_eq!(tasks["total"], 0);
    err_text(&c[9]);
    assert_eq!(ok_text(&c[10]), "hello\n");
    let resources = out["resources"].as_array().unwrap();
    assert!(!resources.is_empty());
    assert!(
        resources
            .iter()
            .all(|r| !r.as_str().unwrap().contains(&ws_a.to_string())),
        "{resources:?}"
    );
    assert!(!repo_a.path().join("bob.txt").exists());
    let a_tasks = alice_api.get("/api/v1/tasks").await.unwrap();
    assert_eq!(
        a_tasks.data().as_array().unwrap().len(),
        1,
        "bob ran nothing in alice's workspace"
    );

    // Bob cannot read Alice's resource by its URI, nor ride on her MCP session, whatever the
    // method: to him it does not exist.
    let alice_token = mcp_token(&relay.url(), &alice, false).await;
    let raw = RawMcp::open(&relay.url(), &alice_token).await;
    let bob_raw = RawMcp::open(&relay.url(), &bob_token).await;
    let read = bob_raw
        .call(
            &bob_token,
            json!({ "jsonrpc": "2.0", "id": 2, "method": "resources/read",
                    "params": { "uri": format!("fulcrum://workspaces/{ws_a}") } }),
        )
        .await;
    assert!(read["error"].is_object(), "{read}");
    let read = raw
        .send(
            reqwest::Method::POST,
            &bob_token,
            Some(json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })),
        )
        .await;
    assert_eq!(read.status(), 404);
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let reply = raw.send(method.clone(), &bob_token, None).await;
        assert_eq!(reply.status(), 404, "{method}");
    }
    let mine = raw
        .call(
            &alice_token,
            json!({ "jsonrpc": "2.0", "id": 3, "method": "resources/read",
                    "params": { "uri": format!("fulcrum://workspaces/{ws_a}") } }),
        )
        .await;
    assert!(
        mine["result"]["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&ws_a.to_string())),
        "{mine}"
    );

    // Alice's read-only token reads, and cannot write, edit or run.
    let read_only = mcp_token(&relay.url(), &alice, true).await;
    let out = python_client(job(
        &relay.url(),
        &read_only,
        vec![
            ("read_file", json!({ "workspace": ws_a, "path": "private.txt" })),
            ("write_file", json!({ "workspace": ws_a, "path": "ro.txt", "content": "x" })),
            ("edit_file", json!({ "workspace": ws_a, "path": "private.txt", "edits": [{ "oldText": "ALICE", "newText": "RO" }] })),
            ("run_task", json!({ "workspace": ws_a, "command": "touch ran.txt" })),
        ],
    ))
    .await;
    let c = calls(&out);
    assert_eq!(ok_text(&c[0]), "ALICE-ONLY\n");
    for call in &c[1..] {
        assert!(
            err_text(call).contains("scope, which this token lacks"),
            "{call}"
        );
    }
    assert!(!repo_a.path().join("ro.txt").exists());
    assert!(!repo_a.path().join("ran.txt").exists());
    assert_eq!(
        std::fs::read_to_string(repo_a.path().join("private.txt")).unwrap(),
        "ALICE-ONLY\n"
    );
    assert_eq!(
        alice_api
            .get("/api/v1/tasks")
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    drop((agent_a, agent_b));
}

both_backends!(tenancy_and_read_only_tokens);

/// A hand-driven MCP session over plain HTTP, for what the SDKs will not do (switch tokens
/// mid-session).
struct RawMcp {
    url: String,
    session: String,
    http: reqwest::Client,
}

impl RawMcp {
    async fn open(relay: &str, token: &str) -> Self {
        let http = reqwest::Client::new();
        let url = format!("{relay}/mcp");
        let reply = http
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "raw", "version": "1" } } }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let session = reply.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let raw = Self { url, session, http };
        let done = raw
            .http
            .post(&raw.url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &raw.session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .send()
            .await
            .unwrap();
        assert!(done.status().is_success());
        raw
    }

    /// Sends a request with `method` on the session with `token`.
    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, &self.url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Sends one JSON-RPC request on the session with `token`; the answer.
    async fn call(&self, token: &str, body: Value) -> Value {
        let reply = self.send(reqwest::Method::POST, token, Some(body)).await;
        assert_eq!(reply.status(), 200);
        let text = reply.text().await.unwrap();
        // An SSE stream: the answer is the `data:` line that carries a JSON-RPC id.
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| panic!("no JSON-RPC answer in {text}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_disconnects_during_a_call_gives_a_clear_error_not_a_hang() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    // The slow tool is not marked read-only: the workspace's policy must allow `write`.
    let agent = start_tool_agent(
        &relay.url(),
        &user.agent_token,
        repo.path(),
        true,
        vec![slow_server()],
    )
    .await;
    let ws = workspace_id(&agent);
    wait_tools(&relay, ws, |t| t.catalog.servers.iter().any(|s| s.running)).await;
    let token = mcp_token(&relay.url(), &user, false).await;
    let marker = tempfile::tempdir().unwrap();
    let marker_file = marker.path().join("called");
    let call = tokio::spawn(python_client(job(
        &relay.url(),
        &token,
        vec![(
            "slow__wait",
            json!({ "workspace": ws, "seconds": 600, "marker": marker_file }),
        )],
    )));
    // Once the call is running in the workspace, the agent goes away.
    wait_for_marker(&marker_file, "the call never reached the server").await;
    let cut = std::time::Instant::now();
    agent.agent.stop().await;
    let out = call.await.unwrap();
    let text = err_text(&calls(&out)[0]);
    assert!(text.contains("disconnected during the call"), "{text}");
    // Well before the relay's own 30 s timeout, let alone the 600 s sleep.
    assert!(
        cut.elapsed() < Duration::from_secs(25),
        "{:?}",
        cut.elapsed()
    );

    // Offline now: a clear error at once.
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![("read_file", json!({ "workspace": ws, "path": "README.md" }))],
    ))
    .await;
    assert!(err_text(&calls(&out)[0]).contains("offline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sessions_hear_when_hosted_tools_appear() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let token = mcp_token(&relay.url(), &user, false).await;
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("listening");
    let mut waiting = job(&relay.url(), &token, vec![]);
    waiting["await_tools_change"] = json!({ "marker": marker, "timeout": 60 });
    let client = tokio::spawn(python_client(waiting));
    // Once the client listens, a workspace with a hosted server connects.
    wait_for_marker(&marker, "the client never got ready").await;
    let repo = TestRepo::new();
    // The slow tool is not marked read-only: the workspace's policy must allow `write`.
    let agent = start_tool_agent(
        &relay.url(),
        &user.agent_token,
        repo.path(),
        true,
        vec![slow_server()],
    )
    .await;
    let out = client.await.unwrap();
    assert_eq!(out["list_changed"], true);
    assert!(out["tools"].get("slow__wait").is_none());
    let after = out["tools_after"]
        .as_array()
        .expect("a list_changed notification came");
    assert!(after.contains(&json!("slow__wait")), "{after:?}");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_of_protocol_1_are_served_but_told_to_upgrade_for_tools() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let mut raw = RawAgent::connect(&relay.url(), &user.agent_token)
        .await
        .unwrap();
    let mut hello = RawAgent::hello("old", uuid::Uuid::new_v4());
    if let fulcrum_protocol::AgentFrame::Hello(h) = &mut hello {
        h.protocol_version = 1;
    }
    raw.send(&hello).await;
    let Some(fulcrum_protocol::RelayFrame::Welcome(welcome)) = raw.recv_non_ping().await else {
        panic!("a version 1 agent is welcomed");
    };
    let token = mcp_token(&relay.url(), &user, false).await;
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![(
            "read_file",
            json!({ "workspace": welcome.workspace_id, "path": "README.md" }),
        )],
    ))
    .await;
    assert!(err_text(&calls(&out)[0]).contains("too old"));
}
