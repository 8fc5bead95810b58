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
