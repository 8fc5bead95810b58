//! The operator's path, with the real binaries: `fulcrum-relay migrate`, `user create`,
//! `token create|list|revoke` and `serve` against PostgreSQL, and `fulcrum agent` connecting
//! from another process; both shut down cleanly on SIGTERM.

use std::{process::Stdio, time::Duration};

use fulcrum_tests::*;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

fn relay_cmd(db: &TestDb, data: &std::path::Path) -> Command {
    let mut cmd = Command::new(workspace_binary("fulcrum-relay"));
    cmd.env("FULCRUM_DATABASE_URL", &db.url)
        .env("FULCRUM_DATA_DIR", data)
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.output().await.expect("command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn sigterm_and_wait(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_relay_and_agent_from_the_command_line() {
    let db = TestDb::new(Backend::Postgres).await;
    let data = tempfile::tempdir().unwrap();
    let email = "ops@example.com";

    let mut migrate = relay_cmd(&db, data.path());
    migrate.arg("migrate");
    let (ok, _, err) = output(migrate).await;
    assert!(ok, "{err}");

    // A user: the password only on stdin; stdout is the new id and nothing else.
    let mut create = relay_cmd(&db, data.path());
    create
        .args(["user", "create", "--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = create.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"operator-password-1\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    assert!(uuid::Uuid::parse_str(String::from_utf8_lossy(&out.stdout).trim()).is_ok());
    let mut again = relay_cmd(&db, data.path());
    again
        .args(["user", "create", "--email", email, "--password-stdin"])
        .stdin(Stdio::null());
    let (ok, _, err) = output(again).await;
    assert!(
        !ok && err.contains("no password on standard input"),
        "{err}"
    );

    // A token: stdout is the token alone; the list never shows it.
    let mut token = relay_cmd(&db, data.path());
    token.args(["token", "create", "--email", email, "--name", "ci-box"]);
    let (ok, secret, err) = output(token).await;
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("fca_") && !secret.contains('\n'));
    let mut list = relay_cmd(&db, data.path());
    list.args(["token", "list", "--email", email]);
    let (ok, listed, _) = output(list).await;
    assert!(
        ok && listed.contains("ci-box")
            && listed.contains(&secret[..8])
            && !listed.contains(&secret)
    );

    // The relay, on a port the OS picks; it says where it listens.
    let mut serve = relay_cmd(&db, data.path());
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped());
    let mut relay = serve.spawn().unwrap();
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("fulcrum-relay listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("the relay exited before listening");
    })
    .await
    .expect("the relay listens in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The agent, another process, with its token in a file.
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();
    let token_file = state.path().join("token");
    std::fs::write(&token_file, &secret).unwrap();
    let access = Api::new(&url)
        .login(email, "operator-password-1")
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut events = Events::connect(&url, &access).await.unwrap();
    let mut agent = Command::new(workspace_binary("fulcrum"))
        .args(["agent", "--relay", &url, "--token-file"])
        .arg(&token_file)
        .arg("--root")
        .arg(repo.path())
        .arg("--state-dir")
        .arg(state.path().join("agent"))
        .env("FULCRUM_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    events
        .workspace_where(|w| w["online"] == true && w["repos"][0]["branch"] == "main")
        .await
        .unwrap();
    let status = fulcrum_agent::control::query_status(&state.path().join("agent"))
        .await
        .unwrap();
    assert_eq!(status.relay_url, url);

    // SIGTERM: the agent leaves cleanly and the workspace goes offline.
    assert!(sigterm_and_wait(&mut agent).await.success());
    events
        .workspace_where(|w| w["online"] == false)
        .await
        .unwrap();
    assert!(
        !state.path().join("agent/agent.sock").exists(),
        "the control socket is removed"
    );

    // Revoking from the command line; then the relay stops cleanly too.
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let mut revoke = relay_cmd(&db, data.path());
    revoke.args(["token", "revoke", "--email", email, &id]);
    let (ok, _, err) = output(revoke).await;
    assert!(ok, "{err}");
    assert_eq!(RawAgent::connect(&url, &secret).await.err(), Some(401));
    let stopped = tokio::time::timeout(Duration::from_secs(15), sigterm_and_wait(&mut relay))
        .await
        .unwrap();
    assert!(stopped.success());
}
