//! One token model: every kind against every door it may and may not open, scopes against
//! what they allow, project-limited tokens, the workspace policy's `run`, where a token was
//! last used, and the administrator's API.

use fulcrum_agent::AgentOptions;
use fulcrum_protocol::kinds::{Scope, Scopes};
use fulcrum_tests::*;
use serde_json::{Value, json};

/// Creates a token for `user` with this body; its secret.
async fn token(relay: &str, user: &TestUser, body: Value) -> String {
    let r = Api::new(relay)
        .with_token(&user.access)
        .post("/api/v1/tokens", body.clone())
        .await
        .unwrap();
    r.data()["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body} -> {:?}", r.body))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_opens_its_own_door_only_and_scopes_hold() {
    let rig = rig(Backend::Sqlite, RelayOptions::default()).await;
    let base = rig.relay.url();
    let alice = &rig.user;
    let agent_tok = alice.agent_token.clone();
    let mcp_tok = token(&base, alice, json!({ "name": "m", "kind": "mcp" })).await;
    let api_read = token(&base, alice, json!({ "name": "r", "kind": "api" })).await;
    let api_run = token(
        &base,
        alice,
        json!({ "name": "x", "kind": "api", "scopes": ["read", "run"] }),
    )
    .await;
    let ingest = token(&base, alice, json!({ "name": "i", "kind": "ingest" })).await;
    assert!(api_read.starts_with("fck_") && ingest.starts_with("fci_"));

    // REST: API tokens only; other kinds are told which door they are for.
    for (secret, expect) in [
        (&api_read, None),
        (&mcp_tok, Some("wrong_token_kind")),
        (&agent_tok, Some("wrong_token_kind")),
        (&ingest, Some("wrong_token_kind")),
        (&"fck_not_a_token".to_owned(), Some("invalid_token")),
    ] {
        let r = Api::new(&base)
            .with_token(secret)
            .get("/api/v1/workspaces")
            .await
            .unwrap();
        match expect {
            None => assert_eq!(r.status, 200, "{:?}", r.body),
            Some(code) => {
                assert_eq!(r.status, 401, "{:?}", r.body);
                assert_eq!(r.error_code(), code);
            }
        }
    }
    // MCP: MCP tokens only.
    assert_eq!(mcp_initialize_status(&base, &mcp_tok).await, 200);
    for other in [&api_read, &agent_tok, &ingest] {
        assert_eq!(mcp_initialize_status(&base, other).await, 401);
    }
    // The agent door: agent tokens only.
    for other in [&api_read, &mcp_tok, &ingest] {
        assert_eq!(RawAgent::connect(&base, other).await.err(), Some(401));
    }
    // The events socket needs a login: an API token gets no ticket.
    let r = Api::new(&base)
        .with_token(&api_read)
        .post("/api/v1/events/ticket", json!({}))
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (403, "login_required"));
    // Tokens cannot manage tokens or the account.
    let r = Api::new(&base)
        .with_token(&api_run)
        .get("/api/v1/tokens")
        .await
        .unwrap();
    assert_eq!(r.error_code(), "login_required");
    let r = Api::new(&base)
        .with_token(&api_run)
        .patch("/api/v1/me", json!({ "full_name": "x" }))
        .await
        .unwrap();
    assert_eq!(r.error_code(), "login_required");

    // Scopes: `read` cannot run or write; `run` can run.
    let ws = rig.workspace.clone();
    let body = json!({ "workspace_id": ws, "command": "true" });
    let r = Api::new(&base)
        .with_token(&api_read)
        .post("/api/v1/tasks", body.clone())
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (403, "insufficient_scope"));
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`run`")
    );
    let r = Api::new(&base)
        .with_token(&api_read)
        .post("/api/v1/projects", json!({ "name": "p" }))
        .await
        .unwrap();
    assert_eq!(r.error_code(), "insufficient_scope");
    let r = Api::new(&base)
        .with_token(&api_run)
        .post("/api/v1/tasks", body)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Kinds hold only their scopes; admin only for an administrator.
    for bad in [
        json!({ "name": "b", "kind": "ingest", "scopes": ["read"] }),
        json!({ "name": "b", "kind": "agent", "scopes": ["write"] }),
        json!({ "name": "b", "kind": "mcp", "scopes": [] }),
        json!({ "name": "b", "kind": "api", "scopes": ["sudo"] }),
    ] {
        let r = Api::new(&base)
            .with_token(&alice.access)
            .post("/api/v1/tokens", bad.clone())
            .await
            .unwrap();
        assert!(r.status == 422 || r.status == 400, "{bad}: {:?}", r.body);
    }
    let r = Api::new(&base)
        .with_token(&alice.access)
        .post(
            "/api/v1/tokens",
            json!({ "name": "a", "kind": "api", "scopes": ["admin"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code(), "not_admin");

    // Where and when a token was last used is recorded.
    let listed = Api::new(&base)
        .with_token(&alice.access)
        .get("/api/v1/tokens")
        .await
        .unwrap();
    let row = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "r")
        .cloned()
        .unwrap();
    assert_eq!(row["last_used_addr"], "127.0.0.1");
    assert!(row["last_used_at"].is_string());
    assert_eq!(row["scopes"], json!(["read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_limited_token_sees_its_project_only() {
    let rig = rig(Backend::Sqlite, RelayOptions::default()).await;
    let base = rig.relay.url();
    let alice = &rig.user;
    let owner = Api::new(&base).with_token(&alice.access);
    let shop = owner
        .post("/api/v1/projects", json!({ "name": "Shop" }))
        .await
        .unwrap();
    let blog = owner
        .post("/api/v1/projects", json!({ "name": "Blog" }))
        .await
        .unwrap();
    let (shop, blog) = (id(shop.data()), id(blog.data()));
    let limited = token(
        &base,
        alice,
        json!({ "name": "shop-ci", "kind": "api", "scopes": ["read", "run"], "project_id": shop }),
    )
    .await;
    let api = Api::new(&base).with_token(&limited);
    let projects = api.get("/api/v1/projects").await.unwrap();
    let names: Vec<&str> = projects
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Shop"]);
    assert_eq!(
        api.get(&format!("/api/v1/projects/{blog}"))
            .await
            .unwrap()
            .status,
        404
    );
    // Its workspaces: none (none attached to the shop yet).
    assert!(
        api.get("/api/v1/workspaces")
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A task straight on a workspace is refused with a clear reason.
    let r = api
        .post(
            "/api/v1/tasks",
            json!({ "workspace_id": rig.workspace, "command": "true" }),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (403, "token_limited"));
    // Even with `write`, it cannot widen its reach by attaching another workspace.
    let writer = token(
        &base,
        alice,
        json!({ "name": "shop-w", "kind": "api", "scopes": ["read", "write"], "project_id": shop }),
    )
    .await;
    let r = Api::new(&base)
        .with_token(&writer)
        .put(
            &format!("/api/v1/projects/{shop}/workspaces/{}", rig.workspace),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.error_code()),
        (403, "token_limited"),
        "{:?}",
        r.body
    );
    // It cannot make projects, nor be limited to another user's project.
    let r = api
        .post("/api/v1/projects", json!({ "name": "x" }))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let bob = make_user(&rig.relay, "bob").await;
    let r = Api::new(&base)
        .with_token(&bob.access)
        .post(
            "/api/v1/tokens",
            json!({ "name": "x", "kind": "api", "project_id": shop }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Once the owner attaches the workspace, the token reaches it, and a run that names no
    // project runs in the token's.
    let r = owner
        .put(
            &format!("/api/v1/projects/{shop}/workspaces/{}", rig.workspace),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let listed = api.get("/api/v1/workspaces").await.unwrap();
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    let task = post_task(&api, json!({ "command": "true" })).await;
    assert_eq!(task["project_id"], shop.as_str());
    // The blog's tasks stay out of its lists.
    let all = api.get("/api/v1/tasks").await.unwrap();
    assert!(
        all.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["project_id"] == shop.as_str())
    );
    let _ = blog;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_policy_speaks_the_same_words() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();
    // An agent whose workspace allows nothing: no runs, no writes.
    let agent = fulcrum_agent::RunningAgent::start(AgentOptions {
        policy: Scopes::NONE,
        ..AgentOptions::new(
            fulcrum_tests::transport::target(&base, &alice.agent_token, None),
            repo.path().to_path_buf(),
            state.path().to_path_buf(),
        )
    })
    .await
    .unwrap();
    agent.wait_for(connected, WAIT).await.unwrap();
    let api = Api::new(&base).with_token(&alice.access);
    let ws_id = agent.status().connection.workspace_id.unwrap();
    let ws = ws_id.to_string();
    // The catalog comes after the welcome; the relay publishes the workspace when it learns
    // the policy.
    let mut events = Events::connect(&base, &alice.access).await.unwrap();
    events
        .workspace_where(|w| w["id"] == ws.as_str() && w["agent"]["policy"] == json!([]))
        .await
        .unwrap();
    assert_eq!(relay.state.sessions.policy(ws_id), Some(Scopes::NONE));
    // The workspace as the API shows it says how its agent is connected and what it allows.
    let w = api.get(&format!("/api/v1/workspaces/{ws}")).await.unwrap();
    let agent_facts = &w.data()["agent"];
    assert_eq!(agent_facts["policy"], json!([]), "{agent_facts}");
    let transport = agent_facts["transport"].as_str().unwrap();
    assert!(["websocket", "quic"].contains(&transport), "{agent_facts}");
    let r = api
        .post(
            "/api/v1/tasks",
            json!({ "workspace_id": ws, "command": "true" }),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.error_code()),
        (403, "workspace_policy"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("policy does not allow `run`")
    );
    let _ = Scope::Run;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_manage_users_through_the_api() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let admin = make_user(&relay, "root").await;
    let bob = make_user(&relay, "bob").await;
    // A member is refused.
    let r = Api::new(&base)
        .with_token(&bob.access)
        .get("/api/v1/admin/users")
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (403, "not_admin"));
    fulcrum_relay::domain::accounts::set_role(
        &relay.state.store,
        &admin.email,
        fulcrum_relay::store::UserRole::Admin,
    )
    .await
    .unwrap();
    let api = Api::new(&base).with_token(&admin.access);
    let users = api.get("/api/v1/admin/users").await.unwrap();
    let emails: Vec<&str> = users
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["bob@example.com", "root@example.com"]);
    // An API token of the admin's without `admin` is refused; with it, allowed.
    let plain = token(&base, &admin, json!({ "name": "p", "kind": "api" })).await;
    let r = Api::new(&base)
        .with_token(&plain)
        .get("/api/v1/admin/users")
        .await
        .unwrap();
    assert_eq!(r.error_code(), "insufficient_scope");
    let with_admin = token(
        &base,
        &admin,
        json!({ "name": "a", "kind": "api", "scopes": ["read", "admin"] }),
    )
    .await;
    let r = Api::new(&base)
        .with_token(&with_admin)
        .get("/api/v1/admin/users")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Deactivating bob ends his session at once; activating lets him log in again.
    let r = api
        .post(
            &format!("/api/v1/admin/users/{}/deactivate", bob.id),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.data()["active"], false);
    let r = Api::new(&base)
        .with_token(&bob.access)
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = api
        .post(
            &format!("/api/v1/admin/users/{}/deactivate", admin.id),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (409, "self"));
    api.post(
        &format!("/api/v1/admin/users/{}/activate", bob.id),
        json!({}),
    )
    .await
    .unwrap();
    assert!(
        Api::new(&base)
            .login(&bob.email, &bob.password)
            .await
            .is_ok()
    );
    // A reset link, shown once.
    let r = api
        .post(
            &format!("/api/v1/admin/users/{}/reset-link", bob.id),
            json!({ "valid_for_mins": 30 }),
        )
        .await
        .unwrap();
    assert!(r.data()["link"].as_str().unwrap().contains("/#/reset/fpr_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_an_mcp_session_answers_as_the_sdks_expect() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let base = relay.url();
    let alice = make_user(&relay, "alice").await;
    let secret = token(&base, &alice, json!({ "name": "m", "kind": "mcp" })).await;
    let http = reqwest::Client::new();
    let opened = http
        .post(format!("{base}/mcp"))
        .bearer_auth(&secret)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "t", "version": "1" } }
        }))
        .send()
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // 204, not 202: the Python SDK logs "Session termination failed: 202" otherwise.
    let closed = http
        .delete(format!("{base}/mcp"))
        .bearer_auth(&secret)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 204);
}
