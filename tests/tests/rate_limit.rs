//! Requests are limited per credential on every door (per user, per agent token, per MCP
//! token): over the limit, 429 with `Retry-After`, and other users and tokens are not affected.

use fulcrum_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tokens_are_limited_separately() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            requests_per_minute: 5,
            ..Default::default()
        },
    )
    .await;
    // make_user spends one request of each user's budget (creating the agent token).
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    for _ in 0..4 {
        assert_eq!(a.get("/api/v1/me").await.unwrap().status, 200);
    }
    let http = reqwest::Client::new();
    let over = http
        .get(format!("{}/api/v1/me", relay.url()))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(over.status().as_u16(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "rate_limited");
    // Bob has his own budget.
    let b = Api::new(&relay.url()).with_token(&bob.access);
    assert_eq!(b.get("/api/v1/me").await.unwrap().status, 200);

    // Agent tokens: each connection attempt counts against the token.
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(
            RawAgent::connect(&relay.url(), &bob.agent_token)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        RawAgent::connect(&relay.url(), &bob.agent_token)
            .await
            .err(),
        Some(429)
    );
    assert!(
        RawAgent::connect(&relay.url(), &alice.agent_token)
            .await
            .is_ok()
    );
    relay.shutdown().await.unwrap();
}

/// An MCP token's secret, made through the API.
async fn mcp_token(relay: &str, user: &TestUser, name: &str) -> String {
    let reply = Api::new(relay)
        .with_token(&user.access)
        .post("/api/v1/tokens", json!({ "name": name, "kind": "mcp" }))
        .await
        .unwrap();
    reply.data()["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mcp_token_has_its_own_budget() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            mcp_requests_per_minute: 3,
            ..Default::default()
        },
    )
    .await;
    let alice = make_user(&relay, "alice").await;
    let (first, second) = (
        mcp_token(&relay.url(), &alice, "one").await,
        mcp_token(&relay.url(), &alice, "two").await,
    );
    let http = reqwest::Client::new();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "limit-test", "version": "1" }
        }
    });
    let call = |token: String| {
        http.post(format!("{}/mcp", relay.url()))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(call(first.clone()).await.unwrap().status(), 200);
    }
    let over = call(first.clone()).await.unwrap();
    assert_eq!(over.status().as_u16(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    // Another token of the same user has its own budget, and the REST API is not touched.
    assert_eq!(call(second).await.unwrap().status(), 200);
    let a = Api::new(&relay.url()).with_token(&alice.access);
    assert_eq!(a.get("/api/v1/me").await.unwrap().status, 200);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_token_has_its_own_budget() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            api_requests_per_minute: 3,
            ..Default::default()
        },
    )
    .await;
    let alice = make_user(&relay, "alice").await;
    let owner = Api::new(&relay.url()).with_token(&alice.access);
    let mut secrets = Vec::new();
    for name in ["one", "two"] {
        let r = owner
            .post("/api/v1/tokens", json!({ "name": name, "kind": "api" }))
            .await
            .unwrap();
        secrets.push(r.data()["token"].as_str().unwrap().to_owned());
    }
    let first = Api::new(&relay.url()).with_token(&secrets[0]);
    for _ in 0..3 {
        assert_eq!(first.get("/api/v1/workspaces").await.unwrap().status, 200);
    }
    let over = first.get("/api/v1/workspaces").await.unwrap();
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert_eq!(over.error_code(), "rate_limited");
    // Another token, and the user's own login, have budgets of their own.
    let second = Api::new(&relay.url()).with_token(&secrets[1]);
    assert_eq!(second.get("/api/v1/workspaces").await.unwrap().status, 200);
    assert_eq!(owner.get("/api/v1/workspaces").await.unwrap().status, 200);
    relay.shutdown().await.unwrap();
}
