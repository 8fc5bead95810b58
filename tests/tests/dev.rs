//! `fulcrum-relay dev`, the README's first command: a relay on embedded SQLite with a local
//! agent attached, which never outlives the relay, however the relay ends.

use std::{process::Stdio, time::Instant};

use fulcrum_tests::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The children of process `parent` (from `/proc`).
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            // Fields after the command (which may hold spaces) close with ')'.
            && let Some((_, rest)) = stat.rsplit_once(')')
            && rest.split_whitespace().nth(1) == Some(&parent.to_string())
        {
            out.push(pid);
        }
    }
    out
}

/// Whether process `pid` still runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A running `fulcrum-relay dev`: the process, its URL and the dev user's access token.
struct Dev {
    process: tokio::process::Child,
    url: String,
    access: String,
    _data: tempfile::TempDir,
}

/// Starts `fulcrum-relay dev` on `root` and logs in with the credentials it prints.
async fn start_dev(root: &std::path::Path) -> Dev {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    start_dev_at(root, &dir, data, &[]).await
}

/// Starts `fulcrum-relay dev` on `root` with its data in `data_dir`, kept as long as `data`.
async fn start_dev_at(
    root: &std::path::Path,
    data_dir: &std::path::Path,
    data: tempfile::TempDir,
    extra: &[&str],
) -> Dev {
    let mut command = tokio::process::Command::new(workspace_binary("fulcrum-relay"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FULCRUM_") {
            command.env_remove(name);
        }
    }
    let mut process = command
        .arg("dev")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--root")
        .arg(root)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // It says where it is and how to log in.
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (None, None);
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(u) = line.trim().strip_prefix("Dashboard:") {
                url = Some(u.trim().to_owned());
            }
            if let Some(p) = line.trim().strip_prefix("Log in as:") {
                password = p.split(" / ").nth(1).map(str::to_owned);
            }
            if url.is_some() && password.is_some() {
                return;
            }
        }
        panic!("dev exited before it was ready");
    })
    .await
    .expect("dev printed its address and login");
    // Keep reading what it prints, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (url, password) = (url.unwrap(), password.unwrap());
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "email": "dev@fulcrum.local", "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = r["data"]["access_token"]
        .as_str()
        .expect("logged in")
        .to_owned();
    Dev {
        process,
        url,
        access,
        _data: data,
    }
}

/// Waits until process `pid` no longer runs.
async fn gone(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while running(pid) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_a_relay_with_an_online_agent_that_goes_with_it() {
    let repo = TestRepo::new();
    let mut dev = start_dev(repo.path()).await;
    // The printed login works, and the local agent is online, watching the root.
    let mut events = Events::connect(&dev.url, &dev.access).await.unwrap();
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    assert_eq!(
        w["root"].as_str().unwrap(),
        repo.path().display().to_string(),
        "{w}"
    );

    // Killed outright (no chance to stop its child), dev takes its agent with it.
    let agents = children(dev.process.id().unwrap());
    assert_eq!(agents.len(), 1, "one agent child: {agents:?}");
    dev.process.start_kill().unwrap();
    dev.process.wait().await.unwrap();
    gone(agents[0], "the agent outlived the killed relay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_stops_cleanly_on_sigterm() {
    let repo = TestRepo::new();
    let mut dev = start_dev(repo.path()).await;
    let mut events = Events::connect(&dev.url, &dev.access).await.unwrap();
    events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let agents = children(dev.process.id().unwrap());
    assert_eq!(agents.len(), 1, "one agent child: {agents:?}");
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dev.process.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(WAIT, dev.process.wait())
        .await
        .expect("dev stopped")
        .unwrap();
    assert!(status.success(), "{status}");
    // The agent stopped by itself: dev kills it only after waiting ten seconds for that.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(9),
        "dev took {:?} to stop: it had to kill its agent",
        started.elapsed()
    );
    gone(agents[0], "the agent outlived dev").await;
}

/// `fulcrum` with no flags and no `FULCRUM_*` variables, in `cwd`.
fn bare_fulcrum(cwd: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_binary("fulcrum"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FULCRUM_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(cwd).stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_commands_find_the_dev_agent_from_any_directory_below() {
    // As the quickstart does it: dev's data in `.fulcrum` under the directory it runs in.
    let repo = TestRepo::new();
    let nested = repo.path().join("app/src");
    std::fs::create_dir_all(&nested).unwrap();
    // With writes on for the dev workspace (`--allow`, passed to its agent).
    let dev = start_dev_at(
        repo.path(),
        &repo.path().join(".fulcrum"),
        tempfile::tempdir().unwrap(),
        &["--allow", "write,run"],
    )
    .await;
    let mut events = Events::connect(&dev.url, &dev.access).await.unwrap();
    let ws = events
        .workspace_where(|w| w["online"] == true && w["agent"]["policy"] == json!(["write", "run"]))
        .await
        .unwrap();
    // `fulcrum status`, from a nested directory, no flags.
    let out = bare_fulcrum(&nested).arg("status").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("connected"),
        "{out:?}"
    );
    // One quoted argument is a shell line; the last line says how it ended and how long it took.
    let out = bare_fulcrum(&repo.path().join("app"))
        .args(["run", "--", "echo a && echo b"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("succeeded (exit 0) in "), "{stderr}");
    let failed = bare_fulcrum(&nested)
        .args(["run", "--", "exit 3"])
        .output()
        .await
        .unwrap();
    assert_eq!(failed.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .contains("failed (exit 3) in "),
        "{stderr}"
    );
    // `fulcrum tasks` lists both, newest first; `fulcrum logs` with no id is the latest, and
    // the start of an id is enough.
    let out = bare_fulcrum(&nested).arg("tasks").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("#2 ") && rows[0].contains("failed"),
        "{table}"
    );
    assert!(rows[0].contains("exit 3"), "{table}");
    assert!(
        rows[1].starts_with("#1 ") && rows[1].contains("succeeded"),
        "{table}"
    );
    assert!(rows[1].contains("echo a && echo b"), "{table}");
    // The run's last line names it by its number.
    assert!(stderr.contains("task #2 failed"), "{stderr}");
    // The number works with `fulcrum logs` and in the API, in the workspace's namespace.
    let out = bare_fulcrum(&nested)
        .args(["logs", "1"])
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n", "{out:?}");
    let by_number: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/workspaces/{}/tasks/2",
            dev.url,
            ws["id"].as_str().unwrap()
        ))
        .bearer_auth(&dev.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_number["data"]["command"], "exit 3", "{by_number}");
    assert_eq!(by_number["data"]["number"], 2);
    let out = bare_fulcrum(&nested).arg("logs").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let first_id = rows[1].split_whitespace().next().unwrap().to_owned();
    let out = bare_fulcrum(&nested)
        .args(["logs", &first_id])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n");
    let out = bare_fulcrum(&nested)
        .args(["logs", "zz"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    drop(dev);
}
