//! `fulcrum status` in a real terminal (tmux), against a connected agent, a disconnected one, one
//! whose token was refused, and none at all.

use std::{path::Path, process::Command, time::Duration};

use fulcrum_agent::status::ConnectionState;
use fulcrum_tests::*;

/// A tmux server of the test's own, with one pane.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Self {
        let t = Self {
            socket: format!("fulcrum-test-{}", uuid::Uuid::new_v4().simple()),
        };
        t.run(&["new-session", "-d", "-s", "main", "-x", "200", "-y", "60"]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (install it with scripts/setup.sh)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `command` into the pane and returns the screen once it finished, with its exit code.
    async fn type_and_wait(&self, command: &str) -> (String, i32) {
        self.run(&["send-keys", "-t", "main", "clear", "Enter"]);
        let marker = format!("EXIT-{}=", uuid::Uuid::new_v4().simple());
        self.run(&[
            "send-keys",
            "-t",
            "main",
            &format!("{command}; echo {marker}$?"),
            "Enter",
        ]);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "main"]);
            if let Some(code) = screen.lines().find_map(|l| l.strip_prefix(&marker)) {
                return (screen.clone(), code.trim().parse().unwrap());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the command did not finish:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn status_cmd(state_dir: &Path) -> String {
    format!(
        "{} status --state-dir {}",
        workspace_binary("fulcrum").display(),
        state_dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_a_terminal() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    repo.write("README.md", "edited\n");
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    agent
        .agent
        .wait_for(
            |s| connected(s) && s.repos.first().is_some_and(|r| r.unstaged == 1),
            WAIT,
        )
        .await
        .unwrap();
    let tmux = Tmux::start();

    let (screen, code) = tmux.type_and_wait(&status_cmd(agent.state.path())).await;
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!("● connected to {}", relay.url())),
        "{screen}"
    );
    assert!(
        screen.contains("round-trip") && screen.contains(" ms"),
        "{screen}"
    );
    assert!(
        screen.contains("main")
            && screen.contains("Initial commit")
            && screen.contains("1 unstaged"),
        "{screen}"
    );

    // --json carries the same facts for scripts.
    let out = Command::new(workspace_binary("fulcrum"))
        .args(["status", "--json", "--state-dir"])
        .arg(agent.state.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["connection"]["state"], "connected");
    assert_eq!(json["repos"][0]["branch"], "main");

    // The relay goes away: exit 1, and why. The agent keeps trying to reconnect, so the
    // command may catch it mid-attempt ("connecting", longer over QUIC, whose attempt to a
    // closed port waits for its handshake to time out): then look again once it has given up
    // that attempt (a few times at most).
    relay.shutdown().await.unwrap();
    let mut tries = 0;
    let (screen, code) = loop {
        agent
            .agent
            .wait_for(
                |s| s.connection.state == ConnectionState::Disconnected,
                WAIT,
            )
            .await
            .unwrap();
        let (screen, code) = tmux.type_and_wait(&status_cmd(agent.state.path())).await;
        tries += 1;
        if code == 1 || tries == 5 {
            break (screen, code);
        }
    };
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("○ not connected"), "{screen}");
    assert!(screen.contains("next attempt in"), "{screen}");
    agent.agent.stop().await;

    // No agent at all: exit 2.
    let (screen, code) = tmux.type_and_wait(&status_cmd(agent.state.path())).await;
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("no agent is running"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_when_the_token_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url(), "fca_wrong", repo.path()).await;
    agent.agent.wait_for(token_refused, WAIT).await.unwrap();
    let tmux = Tmux::start();
    let (screen, code) = tmux.type_and_wait(&status_cmd(agent.state.path())).await;
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("token_refused: the relay refused the agent token"),
        "{screen}"
    );
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}
