//! Build and QA jobs end to end: dispatch to a real agent, real processes, logs stored and
//! followed, results, test summaries from real `cargo test` and `pytest` runs, and the failure
//! stories (relay SIGKILLed, network cut, agent SIGKILLed, cancel and timeout of a job that
//! ignores SIGTERM, a 100 MB burst).

use std::time::Duration;

use fulcrum_agent::{AgentOptions, RunningAgent};
use fulcrum_tests::{processes::*, *};
use serde_json::{Value, json};

both_backends!(
    a_command_runs_and_its_log_and_result_are_stored,
    qa_steps_report_real_test_results,
    a_relay_killed_mid_job_loses_no_output,
    a_network_cut_loses_no_output,
    a_burst_is_stored_whole_or_cut_exactly_at_the_cap
);

async fn a_command_runs_and_its_log_and_result_are_stored(b: Backend) {
    let mut s = rig(b, RelayOptions::default()).await;
    let task = post_task(
        &s.api,
        json!({
            "workspace_id": s.workspace,
            "command": "printf 'one\\ntwo\\n'; echo \"to stderr $GREETING\" >&2; exit 3",
            "env": { "GREETING": "hello" },
        }),
    )
    .await;
    assert_eq!(task["state"], "dispatched");
    assert_eq!(task["env_keys"], json!(["GREETING"]));
    assert!(
        task.get("env").is_none(),
        "environment values are never shown"
    );
    let done = s.events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "failed");
    assert_eq!(done["exit_code"], 3);
    assert_eq!(done["branch"], "main");
    let head = git(s.repo.path(), &["rev-parse", "HEAD"]);
    assert_eq!(done["commit_sha"], head.trim());
    assert_eq!(done["source"], "api");
    assert_eq!(done["triggered_by_email"], s.user.email.as_str());
    assert!(done["duration_ms"].as_i64().unwrap() >= 0);
    let expected = b"one\ntwo\nto stderr hello\n".to_vec();
    assert_eq!(task_log(&s.api, &id(&task)).await.unwrap(), expected);
    assert_eq!(done["log_bytes"], expected.len());
    // A follower that starts after the end still gets every byte, then the end.
    let followed = s.events.follow_log(&id(&task), 0, WAIT).await.unwrap();
    assert_eq!(followed, expected);
    // From an offset, as a reconnecting page would.
    let rest = s.events.follow_log(&id(&task), 4, WAIT).await.unwrap();
    assert_eq!(rest, expected[4..].to_vec());

    // A success, then listing with filters and paging.
    let ok = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": "true" }),
    )
    .await;
    let ok = s.events.task_finished(&id(&ok)).await.unwrap();
    assert_eq!(ok["state"], "succeeded");
    assert_eq!(ok["exit_code"], 0);
    let r = s
        .api
        .get(&format!(
            "/api/v1/tasks?workspace={}&per_page=1&page=2",
            s.workspace
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["total"], 2);
    assert_eq!(r.body["meta"]["per_page"], 1);
    assert_eq!(
        r.data()[0]["id"],
        task["id"],
        "newest first: page 2 is the older"
    );
    let failed = s.api.get("/api/v1/tasks?state=failed").await.unwrap();
    assert_eq!(failed.body["meta"]["total"], 1);

    // Re-run: the same command again, a new task.
    let again = s
        .api
        .post(&format!("/api/v1/tasks/{}/rerun", id(&task)), json!({}))
        .await
        .unwrap();
    assert_eq!(again.status, 201);
    let again = s.events.task_finished(&id(again.data())).await.unwrap();
    assert_eq!(again["exit_code"], 3);
    assert_ne!(again["id"], task["id"]);

    // The agent's status lists finished jobs; nothing is left running.
    let status = s.agent.agent.status();
    assert!(status.jobs.iter().all(|j| j.end.is_some()));
    s.agent.agent.stop().await;
    s.relay.shutdown().await.unwrap();
}

/// A tiny Cargo project with a passing, a failing and an ignored test.
fn cargo_project(dir: &std::path::Path) {
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub fn add(a: i32, b: i32) -> i32 { a + b }\n\
         #[cfg(test)]\nmod tests {\n\
         #[test] fn adds() { assert_eq!(super::add(2, 2), 4); }\n\
         #[test] fn breaks() { assert_eq!(super::add(2, 2), 5, \"two and two\"); }\n\
         #[test] #[ignore] fn slow() {}\n}\n",
    )
    .unwrap();
}

/// A tiny pytest project with a passing, a failing and a skipped test.
fn pytest_project(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(
        dir.join("tests/test_math.py"),
        "import pytest\n\n\
         def test_ok():\n    assert 1 + 1 == 2\n\n\
         def test_wrong():\n    assert 1 + 1 == 3\n\n\
         @pytest.mark.skip(reason=\"later\")\ndef test_later():\n    pass\n",
    )
    .unwrap();
}

async fn qa_steps_report_real_test_results(b: Backend) {
    let mut s = rig(b, RelayOptions::default()).await;
    // Detected steps: a Cargo project and a pytest project, each in its own directory.
    let rust = s.repo.path().join("rust");
    let py = s.repo.path().join("py");
    std::fs::create_dir_all(&rust).unwrap();
    std::fs::create_dir_all(&py).unwrap();
    cargo_project(&rust);
    pytest_project(&py);

    let cargo = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "repo": "rust", "step": "qa",
                "env": { "CARGO_TARGET_DIR": rust.join("target").display().to_string() } }),
    )
    .await;
    let done = s.events.task_finished(&id(&cargo)).await.unwrap();
    assert_eq!(done["state"], "failed", "{done:#}");
    let summary = &done["test_summary"];
    assert_eq!(summary["passed"], 1, "{summary:#}");
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["skipped"], 1);
    assert_eq!(summary["failures"][0]["name"], "tests::breaks");
    assert!(
        summary["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("two and two"),
        "{summary:#}"
    );
    let log = String::from_utf8(task_log(&s.api, &id(&cargo)).await.unwrap()).unwrap();
    assert!(log.starts_with("==> test: cargo test"), "{log}");

    let pytest = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "repo": "py", "step": "test" }),
    )
    .await;
    let done = s.events.task_finished(&id(&pytest)).await.unwrap();
    let summary = &done["test_summary"];
    assert_eq!(done["state"], "failed", "{done:#}");
    assert_eq!(summary["passed"], 1, "{summary:#}");
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["skipped"], 1);
    assert!(
        summary["failures"][0]["name"]
            .as_str()
            .unwrap()
            .contains("test_wrong"),
        "{summary:#}"
    );

    // A fulcrum.toml with named steps wins over detection; `qa` runs them in order and stops
    // at the first failure.
    s.repo.write(
        "fulcrum.toml",
        "[[steps]]\nname = \"lint\"\ncommand = \"echo linting $MODE\"\nenv = { MODE = \"strict\" }\n\n\
         [[steps]]\nname = \"unit\"\ncommand = \"echo testing; exit 4\"\n\n\
         [[steps]]\nname = \"never\"\ncommand = \"echo unreachable\"\n",
    );
    let qa = post_task(&s.api, json!({ "workspace_id": s.workspace, "step": "qa" })).await;
    let done = s.events.task_finished(&id(&qa)).await.unwrap();
    assert_eq!(done["state"], "failed");
    assert_eq!(done["exit_code"], 4);
    let log = String::from_utf8(task_log(&s.api, &id(&qa)).await.unwrap()).unwrap();
    assert!(log.contains("linting strict\n"), "{log}");
    assert!(log.contains("testing\n"), "{log}");
    assert!(!log.contains("unreachable"), "{log}");

    // One named step.
    let lint = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "step": "lint" }),
    )
    .await;
    let done = s.events.task_finished(&id(&lint)).await.unwrap();
    assert_eq!(done["state"], "succeeded");

    // An unknown step names the ones there are.
    let nope = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "step": "deploy" }),
    )
    .await;
    let done = s.events.task_finished(&id(&nope)).await.unwrap();
    assert_eq!(done["state"], "failed");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("lint") && error.contains("unit"), "{error}");
    s.relay.shutdown().await.unwrap();
}

/// The exact bytes `steady(n)` prints.
fn steady_output(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.extend_from_slice(format!("line {i} {}\n", "x".repeat(80)).as_bytes());
    }
    out
}

/// A job that prints `n` lines, one every 10 ms.
fn steady(n: usize) -> String {
    format!(
        "i=1; while [ $i -le {n} ]; do echo \"line $i $(printf '%080d' 0 | tr 0 x)\"; i=$((i+1)); sleep 0.01; done"
    )
}

async fn a_relay_killed_mid_job_loses_no_output(b: Backend) {
    let db = TestDb::new(b).await;
    // Create the user with a relay in this process, then serve with the real binary, which the
    // test can SIGKILL.
    let user = make_user_offline(&db, "alice").await;
    let data = tempfile::tempdir().unwrap();
    let relay = spawn_relay(&db, data.path(), "127.0.0.1:0", "").await;
    let addr = relay.addr;
    let api = Api::new(&relay.url).with_token(&user.access);
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url, &user.agent_token, repo.path()).await;
    agent.agent.wait_for(connected, WAIT).await.unwrap();
    let workspace = agent.agent.status().connection.workspace_id.unwrap();

    let lines = 300;
    let task = post_task(
        &api,
        json!({ "workspace_id": workspace, "command": steady(lines) }),
    )
    .await;
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    events.wait_log(&id(&task), 5_000).await.unwrap();
    relay.kill9().await;
    // The job keeps printing while the relay is dead; its output waits in the agent's outbox.
    let relay = spawn_relay(&db, data.path(), &addr.to_string(), "").await;
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let done = events.task_finished_via(&api, &id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let stored = task_log(&api, &id(&task)).await.unwrap();
    let expected = steady_output(lines);
    assert_eq!(stored.len(), expected.len(), "no gap, no duplicate");
    assert!(stored == expected, "the stored log is byte-identical");
    agent.agent.stop().await;
    relay.kill9().await;
}

async fn a_network_cut_loses_no_output(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&user.access);
    let mut events = Events::connect(&relay.url(), &user.access).await.unwrap();
    let proxy = Cuttable::new(relay.addr).await;
    let repo = TestRepo::new();
    // The forwarder cuts TCP connections, so this test is about the WebSocket whatever the
    // suite's transport (a QUIC connection rides out a 10 s outage without reconnecting).
    let state = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(AgentOptions::new(
        fulcrum_agent::link::RelayTarget::new(proxy.url(), &user.agent_token),
        repo.path().to_path_buf(),
        state.path().to_path_buf(),
    ))
    .await
    .unwrap();
    agent.wait_for(connected, WAIT).await.unwrap();
    let workspace = agent.status().connection.workspace_id.unwrap();

    // About 12 s of output; the network is down for 10 s of it.
    let lines = 1200;
    let task = post_task(
        &api,
        json!({ "workspace_id": workspace, "command": steady(lines) }),
    )
    .await;
    events.wait_log(&id(&task), 5_000).await.unwrap();
    proxy.cut();
    agent.wait_for(|s| !connected(s), WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await; // the outage itself, not a wait
    proxy.restore();
    let done = events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let stored = task_log(&api, &id(&task)).await.unwrap();
    let expected = steady_output(lines);
    assert_eq!(stored.len(), expected.len(), "no gap, no duplicate");
    assert!(stored == expected, "the stored log is byte-identical");
    agent.stop().await;
    relay.shutdown().await.unwrap();
}

async fn a_burst_is_stored_whole_or_cut_exactly_at_the_cap(b: Backend) {
    // SQLite keeps the default 64 MiB cap and cuts; PostgreSQL gets room for it all.
    let cap: u64 = match b {
        Backend::Sqlite => 64 * 1024 * 1024,
        Backend::Postgres => 128 * 1024 * 1024,
    };
    let mut s = rig(
        b,
        RelayOptions {
            task_log_limit_bytes: cap,
            ..Default::default()
        },
    )
    .await;
    let total: u64 = 100_000_000;
    let task = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace,
                "command": format!("head -c {total} /dev/zero | tr '\\0' x") }),
    )
    .await;
    let done = s.events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded");
    let stored = task_log(&s.api, &id(&task)).await.unwrap();
    if cap < total {
        let marker = fulcrum_protocol::tasks::cut_marker(cap);
        assert_eq!(done["log_truncated"], true);
        assert_eq!(stored.len() as u64, cap + marker.len() as u64);
        assert!(stored[..cap as usize].iter().all(|&c| c == b'x'));
        assert_eq!(&stored[cap as usize..], marker.as_bytes());
    } else {
        assert_eq!(done["log_truncated"], false);
        assert_eq!(stored.len() as u64, total);
        assert!(stored.iter().all(|&c| c == b'x'));
    }
    s.relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_job_leaves_the_task_lost_after_the_lease() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            task_lease_secs: 2,
            // A killed process's TCP connection is reset by its kernel, but nothing tells the
            // relay about its QUIC connection: there, missed heartbeats do.
            heartbeat_ms: 1000,
            ..Default::default()
        },
    )
    .await;
    let user = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&user.access);
    let mut events = Events::connect(&relay.url(), &user.access).await.unwrap();
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(&relay.url(), &user.agent_token, repo.path(), state.path());
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let task = post_task(
        &api,
        json!({ "workspace_id": w["id"], "command": "echo started; exec sleep 1000" }),
    )
    .await;
    events.wait_log(&id(&task), 8).await.unwrap();
    signal(&agent, nix::sys::signal::Signal::SIGKILL);
    let _ = agent.wait().await;
    let lost = events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(lost["state"], "lost");
    assert!(
        lost["error"].as_str().unwrap().contains("lease"),
        "{lost:#}"
    );
    assert_eq!(
        task_log(&api, &id(&task)).await.unwrap(),
        b"started\n".to_vec()
    );

    // The job's process outlived the agent; the agent kills it when it starts again.
    let recorded =
        std::fs::read_to_string(state.path().join("jobs").join(id(&task)).join("pgid")).unwrap();
    let pid: i32 = recorded.split_whitespace().next().unwrap().parse().unwrap();
    assert!(!gone(pid), "the orphaned job still runs");
    let mut agent = spawn_agent(&relay.url(), &user.agent_token, repo.path(), state.path());
    events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    // `fulcrum logs -f` returns once the restarted agent has settled the interrupted task.
    let out = follow_log_in_terminal(&id(&task), state.path()).await;
    assert!(out.status.success(), "{out:?}");
    assert!(gone(pid), "the leftover job was killed");
    // The relay keeps the first result: still lost, not run again.
    let r = api
        .get(&format!("/api/v1/tasks/{}", id(&task)))
        .await
        .unwrap();
    assert_eq!(r.data()["state"], "lost");
    signal(&agent, nix::sys::signal::Signal::SIGTERM);
    let _ = agent.wait().await;
    relay.shutdown().await.unwrap();
}

/// Whether process `pid` is gone (or a zombie nobody reaped, which runs nothing).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// A job that ignores SIGTERM, with a child that ignores it too and records its pid.
const STUBBORN: &str = "trap '' TERM; (trap '' TERM; exec sleep 1000) & echo $! > child.pid; \
                        echo ready; while true; do sleep 1; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_kill_the_whole_job() {
    let mut s = rig(
        Backend::Sqlite,
        RelayOptions {
            task_grace_secs: 1,
            ..Default::default()
        },
    )
    .await;
    let task = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": STUBBORN }),
    )
    .await;
    s.events.wait_log(&id(&task), 6).await.unwrap();
    let pid: i32 = std::fs::read_to_string(s.repo.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!gone(pid));
    let r = s
        .api
        .post(&format!("/api/v1/tasks/{}/cancel", id(&task)), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    let done = s.events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "canceled");
    assert_eq!(done["signal"], 9, "it ignored SIGTERM, so it was killed");
    assert!(gone(pid), "the job's child is gone too");
    // Canceling a finished task is a conflict and changes nothing.
    let again = s
        .api
        .post(&format!("/api/v1/tasks/{}/cancel", id(&task)), json!({}))
        .await
        .unwrap();
    assert_eq!(again.status, 409);

    let slow = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": STUBBORN, "timeout_s": 1 }),
    )
    .await;
    let done = s.events.task_finished(&id(&slow)).await.unwrap();
    assert_eq!(done["state"], "timed_out");
    assert_eq!(done["signal"], 9);
    let pid: i32 = std::fs::read_to_string(s.repo.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(pid));

    // A job that does stop on SIGTERM is canceled without being killed.
    let polite = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": "echo ready; exec sleep 1000" }),
    )
    .await;
    s.events.wait_log(&id(&polite), 6).await.unwrap();
    s.api
        .post(&format!("/api/v1/tasks/{}/cancel", id(&polite)), json!({}))
        .await
        .unwrap();
    let done = s.events.task_finished(&id(&polite)).await.unwrap();
    assert_eq!(done["state"], "canceled");
    assert_eq!(done["signal"], Value::Null);
    s.relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_their_turn_and_run_in_order() {
    let mut s = rig(Backend::Sqlite, RelayOptions::default()).await;
    let first = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": "echo first >> order.txt; sleep 0.3" }),
    )
    .await;
    let second = post_task(
        &s.api,
        json!({ "workspace_id": s.workspace, "command": "echo second >> order.txt" }),
    )
    .await;
    s.events.task_finished(&id(&first)).await.unwrap();
    let done = s.events.task_finished(&id(&second)).await.unwrap();
    assert_eq!(done["state"], "succeeded");
    assert_eq!(
        std::fs::read_to_string(s.repo.path().join("order.txt")).unwrap(),
        "first\nsecond\n"
    );
    s.relay.shutdown().await.unwrap();
}

/// The agent's outbox is on disk: a job finishes while the relay is down, the agent is then
/// SIGKILLed and started again, and once the relay is back the result arrives from the outbox;
/// the job did not run a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_survives_an_agent_restart_in_the_outbox_on_disk() {
    let db = TestDb::new(Backend::Sqlite).await;
    let user = make_user_offline(&db, "alice").await;
    let data = tempfile::tempdir().unwrap();
    let relay = spawn_relay(&db, data.path(), "127.0.0.1:0", "").await;
    let addr = relay.addr;
    let api = Api::new(&relay.url).with_token(&user.access);
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(&relay.url, &user.agent_token, repo.path(), state.path());
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    // The job waits on a FIFO, so the test decides when it ends.
    nix::unistd::mkfifo(
        &repo.path().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let task = post_task(
        &api,
        json!({ "workspace_id": w["id"],
                "command": "echo ran >> runs.txt; echo waiting; read line < fifo; echo finished" }),
    )
    .await;
    events.wait_log(&id(&task), 8).await.unwrap();
    relay.kill9().await;
    std::fs::write(repo.path().join("fifo"), "go\n").unwrap();
    // `fulcrum logs -f` returns once the agent has the job's result.
    let out = follow_log_in_terminal(&id(&task), state.path()).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "waiting\nfinished\n");
    signal(&agent, nix::sys::signal::Signal::SIGKILL);
    let _ = agent.wait().await;

    // The agent again on the same state directory, then the relay again.
    let mut agent = spawn_agent(
        &relay_url(addr),
        &user.agent_token,
        repo.path(),
        state.path(),
    );
    let relay = spawn_relay(&db, data.path(), &addr.to_string(), "").await;
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let done = events.task_finished_via(&api, &id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        task_log(&api, &id(&task)).await.unwrap(),
        b"waiting\nfinished\n".to_vec()
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("runs.txt")).unwrap(),
        "ran\n",
        "the job ran once"
    );
    signal(&agent, nix::sys::signal::Signal::SIGTERM);
    let _ = agent.wait().await;
    relay.kill9().await;
}

fn relay_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// `fulcrum logs -f TASK` against the agent with this state directory, run to its end.
async fn follow_log_in_terminal(task: &str, state: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new(workspace_binary("fulcrum"))
        .args(["logs", "-f", task, "--state-dir"])
        .arg(state)
        .output()
        .await
        .unwrap()
}
