//! The workspace terminal: `fulcrum run -- CMD…` and `fulcrum run qa` go through the relay (the
//! run is recorded), stream the output and exit with the task's code; `fulcrum logs` prints a
//! task's log; `fulcrum status` lists running jobs. Real `fulcrum` binary, real agent.

use std::process::Stdio;

use fulcrum_tests::*;
use serde_json::json;
use tokio::process::Command;

fn fulcrum(state: &std::path::Path, cwd: &std::path::Path) -> Command {
    let mut cmd = Command::new(workspace_binary("fulcrum"));
    cmd.env("FULCRUM_STATE_DIR", state)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fulcrum_run_records_streams_and_exits_with_the_code() {
    let Rig {
        relay,
        api: a,
        mut events,
        repo,
        agent,
        db: _db,
        ..
    } = rig(Backend::Sqlite, RelayOptions::default()).await;
    let state = agent.state.path();

    // A command: its output on stdout, its exit code as ours.
    let out = fulcrum(state, repo.path())
        .args(["run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nerr\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let task = stderr
        .lines()
        .find_map(|l| l.strip_prefix("fulcrum: task "))
        .expect("the task id is shown")
        .trim()
        .to_owned();
    // Recorded on the relay as a terminal run, with the same log (the terminal may learn the
    // result a moment before the relay has committed it).
    let done = events.task_finished(&task).await.unwrap();
    assert_eq!(done["source"], "terminal");
    assert_eq!(done["exit_code"], 7);
    assert_eq!(done["command"], "sh -c 'echo out; echo err >&2; exit 7'");
    assert_eq!(task_log(&a, &task).await.unwrap(), b"out\nerr\n".to_vec());

    // `fulcrum logs` prints it again.
    let out = fulcrum(state, repo.path())
        .args(["logs", &task])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nerr\n");

    // A QA step, from a subdirectory's fulcrum.toml (the current directory picks the repo).
    repo.write(
        "app/fulcrum.toml",
        "[[steps]]\nname = \"check\"\ncommand = \"echo checking in $(basename $PWD)\"\n",
    );
    let out = fulcrum(state, &repo.path().join("app"))
        .args(["run", "qa"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("==> check:"), "{stdout}");
    assert!(stdout.contains("checking in app"), "{stdout}");

    // While a job runs, `fulcrum status` lists it; canceling it from the dashboard ends the
    // terminal's run with 130.
    let mut long = fulcrum(state, repo.path())
        .args(["run", "--", "sh", "-c", "echo begun; exec sleep 60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = agent
        .agent
        .wait_for(
            |s| {
                s.jobs
                    .iter()
                    .any(|j| j.state == "running" && j.log_bytes > 0)
            },
            WAIT,
        )
        .await
        .unwrap();
    let job = running.jobs.iter().find(|j| j.state == "running").unwrap();
    let out = fulcrum(state, repo.path())
        .args(["status"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 job(s):"), "{text}");
    assert!(text.contains(&job.task_id.to_string()), "{text}");
    let r = a
        .post(&format!("/api/v1/tasks/{}/cancel", job.task_id), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let status = tokio::time::timeout(WAIT, long.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));

    // Not connected: a clear refusal.
    relay.shutdown().await.unwrap();
    agent.agent.wait_for(|s| !connected(s), WAIT).await.unwrap();
    let out = fulcrum(state, repo.path())
        .args(["run", "--", "true"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not connected"),
        "{out:?}"
    );
    agent.agent.stop().await;
}

/// The last JSON-RPC message of an MCP answer, whether it came as JSON or as an SSE stream.
async fn mcp_answer(r: reqwest::Response) -> serde_json::Value {
    let text = r.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .rfind(|d| !d.trim().is_empty())
        .map_or_else(
            || serde_json::from_str(&text).unwrap(),
            |d| serde_json::from_str(d.trim()).unwrap(),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_rest_and_mcp_runs_make_the_same_task() {
    let Rig {
        relay,
        api: a,
        mut events,
        repo,
        agent,
        workspace: ws,
        user,
        db: _db,
    } = rig(Backend::Sqlite, RelayOptions::default()).await;
    let command = "sh -c 'echo same'";

    // From the workspace terminal.
    let out = fulcrum(agent.state.path(), repo.path())
        .args(["run", "--", "sh", "-c", "echo same"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let terminal = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("fulcrum: task "))
        .expect("the task id is shown")
        .trim()
        .to_owned();

    // Through REST.
    let rest = id(&post_task(&a, json!({ "workspace_id": ws, "command": command })).await);

    // Through MCP's run_task.
    let r = a
        .post("/api/v1/tokens", json!({ "name": "mcp", "kind": "mcp" }))
        .await
        .unwrap();
    let token = r.data()["token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let url = format!("{}/mcp", relay.url());
    let post = |body: serde_json::Value, session: Option<&str>| {
        let mut req = http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let r = post(
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "test", "version": "1" } } }),
        None,
    )
    .await
    .unwrap();
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    mcp_answer(r).await;
    post(
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        Some(&session),
    )
    .await
    .unwrap();
    let r = post(
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_task",
            "arguments": { "workspace": ws, "command": command, "wait_s": 60 } } }),
        Some(&session),
    )
    .await
    .unwrap();
    let answer = mcp_answer(r).await;
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    let mcp = serde_json::from_str::<serde_json::Value>(text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same record, apart from the id, the number, the times and the source.
    let mut records = Vec::new();
    for (task, source) in [(&terminal, "terminal"), (&rest, "api"), (&mcp, "mcp")] {
        let mut t = events.task_finished_via(&a, task).await.unwrap();
        assert_eq!(t["source"], source);
        assert_eq!(task_log(&a, task).await.unwrap(), b"same\n".to_vec());
        let t = t.as_object_mut().unwrap();
        for varying in [
            "id",
            "number",
            "source",
            "created_at",
            "dispatched_at",
            "started_at",
            "finished_at",
            "duration_ms",
        ] {
            t.remove(varying);
        }
        records.push(serde_json::Value::Object(t.clone()));
    }
    assert_eq!(records[0]["state"], "succeeded");
    assert_eq!(records[0]["command"], command);
    assert_eq!(records[0]["triggered_by"], user.id.as_str());
    assert_eq!(records[0], records[1]);
    assert_eq!(records[1], records[2]);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_color_asks_its_tools_for_colour() {
    let Rig {
        relay: _relay,
        repo,
        agent,
        db: _db,
        ..
    } = rig(Backend::Sqlite, RelayOptions::default()).await;
    repo.write(
        "fulcrum.toml",
        "[[steps]]\nname = \"colours\"\ncolor = true\nenv = { PY_COLORS = \"0\" }\n\
         command = \"echo $FORCE_COLOR $CLICOLOR_FORCE $CARGO_TERM_COLOR $PY_COLORS\"\n\n\
         [[steps]]\nname = \"plain\"\ncommand = \"echo [${FORCE_COLOR:-}]\"\n",
    );
    let out = fulcrum(agent.state.path(), repo.path())
        .args(["run", "qa"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The step's own env wins over what `color` sets; a step without it gets none.
    assert!(stdout.contains("\n1 1 always 0\n"), "{stdout}");
    assert!(stdout.contains("\n[]\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_found_from_a_nested_repo_with_a_relative_state_dir() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    repo.write(
        "app/fulcrum.toml",
        "[[steps]]\nname = \"test\"\nreports = [\"$FULCRUM_REPORT_DIR/*.xml\"]\n\
         command = \"printf '<testsuite tests=\\\"1\\\"><testcase classname=\\\"c\\\" name=\\\"a\\\"/></testsuite>' > $FULCRUM_REPORT_DIR/junit.xml\"\n",
    );
    // The agent as a user starts it: `--state-dir` relative to where it is started.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("token"), &user.agent_token).unwrap();
    let mut agent = Command::new(workspace_binary("fulcrum"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FULCRUM_") {
            agent.env_remove(name);
        }
    }
    let _agent = agent
        .args([
            "agent",
            "--relay",
            &relay.url(),
            "--token-file",
            "token",
            "--state-dir",
            "state",
        ])
        .arg("--root")
        .arg(repo.path())
        .current_dir(home.path())
        .env("FULCRUM_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut events = Events::connect(&relay.url(), &user.access).await.unwrap();
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let api = Api::new(&relay.url()).with_token(&user.access);
    let task = post_task(
        &api,
        json!({ "workspace_id": id(&w), "repo": "app", "step": "test" }),
    )
    .await;
    let done = events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["test_summary"]["passed"], 1, "{done}");
    relay.shutdown().await.unwrap();
}
