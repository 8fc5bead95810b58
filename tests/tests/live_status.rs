//! A real agent on a real repository reports live state; the dashboard feed and REST agree.

use fulcrum_agent::status::ConnectionState;
use fulcrum_tests::*;

both_backends!(
    status_flows_from_agent_to_dashboard,
    reconnects_after_relay_restart
);

fn repo0(w: &serde_json::Value) -> &serde_json::Value {
    &w["repos"][0]
}

async fn status_flows_from_agent_to_dashboard(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let first = events.next().await.unwrap();
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["workspaces"], serde_json::json!([]));

    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let head = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let w = events
        .workspace_where(|w| w["online"] == true && repo0(w)["head_sha"] == head.as_str())
        .await
        .unwrap();
    assert_eq!(repo0(&w)["path"], ".");
    assert_eq!(repo0(&w)["branch"], "main");
    assert_eq!(repo0(&w)["head_summary"], "Initial commit");
    assert_eq!(repo0(&w)["unstaged"], 0);
    assert_eq!(
        w["root"],
        std::fs::canonicalize(repo.path())
            .unwrap()
            .display()
            .to_string()
    );

    // An edit, a new file, then a commit: each reaches the feed without asking.
    repo.write("README.md", "changed\n");
    let w = events
        .workspace_where(|w| repo0(w)["unstaged"] == 1)
        .await
        .unwrap();
    assert_eq!(
        repo0(&w)["changed_paths"],
        serde_json::json!([{"path": "README.md", "code": " M"}])
    );
    repo.write("notes/new.txt", "x");
    let w = events
        .workspace_where(|w| repo0(w)["untracked"] == 1)
        .await
        .unwrap();
    assert!(
        repo0(&w)["changed_paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "??")
    );
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "Second commit"]);
    let w = events
        .workspace_where(|w| {
            repo0(w)["head_summary"] == "Second commit"
                && repo0(w)["unstaged"] == 0
                && repo0(w)["untracked"] == 0
        })
        .await
        .unwrap();

    // REST says the same.
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let listed = api.workspaces().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], w["id"]);
    assert_eq!(repo0(&listed[0])["head_summary"], "Second commit");
    let one = api
        .get(&format!("/api/v1/workspaces/{}", w["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(one.status, 200);
    assert_eq!(one.data()["online"], true);

    // The agent's own view agrees, and nothing awaits acknowledgement.
    let status = agent
        .agent
        .wait_for(|s| s.unacked == 0, WAIT)
        .await
        .unwrap();
    assert_eq!(status.connection.state, ConnectionState::Connected);
    assert_eq!(
        status.repos[0].head_summary.as_deref(),
        Some("Second commit")
    );

    // Stopping the agent takes the workspace offline.
    agent.agent.stop().await;
    let w = events
        .workspace_where(|w| w["online"] == false)
        .await
        .unwrap();
    assert!(w["last_seen_at"].is_string());
    assert_eq!(api.workspaces().await.unwrap()[0]["online"], false);
    relay.shutdown().await.unwrap();
}

async fn reconnects_after_relay_restart(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let addr = relay.addr;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let before = agent
        .agent
        .wait_for(|s| connected(s) && !s.repos.is_empty(), WAIT)
        .await
        .unwrap();

    relay.shutdown().await.unwrap();
    agent
        .agent
        .wait_for(|s| s.connection.state != ConnectionState::Connected, WAIT)
        .await
        .unwrap();
    // Work goes on while the relay is away.
    repo.write("while-down.txt", "written while the relay was down\n");
    agent
        .agent
        .wait_for(|s| s.repos.first().is_some_and(|r| r.untracked == 1), WAIT)
        .await
        .unwrap();

    let relay = restart_relay(&db, addr).await;
    let after = agent.agent.wait_for(connected, WAIT).await.unwrap();
    assert_ne!(after.connection.session_id, before.connection.session_id);

    // Same user, same signing key (it lives in the database): the old access token still works.
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let w = events
        .workspace_where(|w| {
            w["online"] == true
                && repo0(w)["changed_paths"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["path"] == "while-down.txt"))
        })
        .await
        .unwrap();
    assert_eq!(repo0(&w)["untracked"], 1);
    agent
        .agent
        .wait_for(|s| s.unacked == 0, WAIT)
        .await
        .unwrap();
    let listed = Api::new(&relay.url())
        .with_token(&alice.access)
        .workspaces()
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "one workspace, not a new one per connection"
    );
    assert_eq!(
        listed[0]["repos"].as_array().unwrap().len(),
        1,
        "one repo, not doubled"
    );
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}

/// A relay that lost updates it had acknowledged (a restore, a failover): the agent notices at
/// the next welcome and sends its whole state again on a new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_resends_everything_when_the_relay_lost_acknowledged_updates() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let addr = relay.addr;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    repo.write("README.md", "edited\n");
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    agent
        .agent
        .wait_for(
            |s| connected(s) && s.repos.first().is_some_and(|r| r.unstaged == 1) && s.unacked == 0,
            WAIT,
        )
        .await
        .unwrap();
    relay.shutdown().await.unwrap();
    // Roll the relay's database back: the stored position and the repositories are gone.
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE workspaces SET agent_seq = 0")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM workspace_repos")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let relay = restart_relay(&db, addr).await;
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let w = events
        .workspace_where(|w| w["online"] == true && repo0(w)["unstaged"] == 1)
        .await
        .unwrap();
    assert_eq!(repo0(&w)["path"], ".");
    agent
        .agent
        .wait_for(
            |s| s.unacked == 0 && s.connection.state == ConnectionState::Connected,
            WAIT,
        )
        .await
        .unwrap();
    let stored = Api::new(&relay.url())
        .with_token(&alice.access)
        .workspaces()
        .await
        .unwrap();
    assert_eq!(
        repo0(&stored[0])["unstaged"],
        1,
        "the full state is stored again"
    );
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}
