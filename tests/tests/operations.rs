//! Operations: `/metrics` in the Prometheus text format reflects what happened; every request
//! gets a request id (the client's or a new one), returned in `X-Request-Id` and carried in the
//! JSON logs of what the request caused.

use std::process::Stdio;

use fulcrum_tests::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The value of the first sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_requests_carry_ids() {
    let Rig {
        relay,
        user: alice,
        api,
        mut events,
        agent,
        workspace,
        repo: _repo,
        db: _db,
    } = rig(Backend::Sqlite, RelayOptions::default()).await;
    let task = post_task(
        &api,
        json!({ "workspace_id": workspace, "command": "echo hi" }),
    )
    .await;
    events.task_finished(&id(&task)).await.unwrap();

    let http = reqwest::Client::new();
    let text = http
        .get(format!("{}/metrics", relay.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, "fulcrum_agents_connected "),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"fulcrum_http_requests_total{method="POST",route="/api/v1/tasks",status="201"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, r#"fulcrum_agent_frames_total{direction="in"}"#).unwrap() > 0.0);
    assert!(sample(&text, r#"fulcrum_agent_bytes_total{direction="out"}"#).unwrap() > 0.0);
    assert!(sample(&text, "fulcrum_events_sent_total").unwrap() > 0.0);
    assert_eq!(
        sample(&text, "fulcrum_task_dispatch_seconds_count"),
        Some(1.0)
    );
    assert!(sample(&text, r#"fulcrum_db_pool_connections{state="idle"}"#).is_some());
    assert!(
        sample(
            &text,
            r#"fulcrum_http_request_duration_seconds_count{method="POST",route="/api/v1/tasks"}"#
        )
        .is_some()
    );

    // Request ids: the client's is kept, otherwise one is made.
    let r = http
        .get(format!("{}/api/v1/me", relay.url()))
        .bearer_auth(&alice.access)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let r = http
        .get(format!("{}/health/live", relay.url()))
        .send()
        .await
        .unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let db = TestDb::new(Backend::Sqlite).await;
    let alice = make_user_offline(&db, "alice").await;
    let data = tempfile::tempdir().unwrap();
    let mut relay = tokio::process::Command::new(workspace_binary("fulcrum-relay"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("FULCRUM_DATABASE_URL", &db.url)
        .env("FULCRUM_DATA_DIR", data.path())
        .env("FULCRUM_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("fulcrum-relay listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("the relay exited");
    })
    .await
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .header("x-request-id", "login-7")
        .json(&json!({ "email": alice.email, "password": alice.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The login's own log line, in JSON, names the request.
    let line = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "login"
            {
                return v;
            }
        }
        panic!("the relay exited");
    })
    .await
    .expect("a login log line");
    assert_eq!(line["span"]["request_id"], "login-7", "{line}");
    assert_eq!(line["span"]["route"], "/api/v1/auth/login", "{line}");
    // The domain's audit hook records the login: who, through which door, which login.
    let audit = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["target"] == "fulcrum::audit"
            {
                return v;
            }
        }
        panic!("the relay exited");
    })
    .await
    .expect("an audit line");
    assert_eq!(audit["fields"]["action"], "login.start", "{audit}");
    assert_eq!(audit["fields"]["door"], "api", "{audit}");
    assert_eq!(audit["fields"]["user"], alice.id, "{audit}");
    assert_eq!(audit["span"]["request_id"], "login-7", "{audit}");
    let _ = relay.kill().await;
}
