//! Tokens may expire: past `expires_at` an agent or MCP token opens no door, says it expired,
//! and the sessions it opened end within the relay's sweep.

use fulcrum_protocol::RelayFrame;
use fulcrum_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_opens_no_door_and_its_sessions_end() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let now = chrono::Utc::now();
    // Expiries in the past or too far away are refused.
    for at in [
        now - chrono::Duration::seconds(1),
        now + chrono::Duration::days(3651),
    ] {
        let r = a
            .post("/api/v1/tokens", json!({ "name": "x", "expires_at": at }))
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{:#}", r.body);
    }
    let soon = now + chrono::Duration::seconds(3);
    let make = |kind: &'static str| {
        let a = a.clone();
        async move {
            let r = a
                .post(
                    "/api/v1/tokens",
                    json!({ "name": kind, "kind": kind, "expires_at": soon }),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 201, "{:#}", r.body);
            assert!(r.data()["expires_at"].is_string(), "{:#}", r.body);
            r.data()["token"].as_str().unwrap().to_owned()
        }
    };
    let (agent_token, mcp_token) = (make("agent").await, make("mcp").await);

    // Before it expires: an agent session, and MCP calls.
    let mut agent = RawAgent::connect(&relay.url(), &agent_token).await.unwrap();
    agent
        .send(&RawAgent::hello("k", uuid::Uuid::new_v4()))
        .await;
    assert!(matches!(
        agent.recv_non_ping().await,
        Some(RelayFrame::Welcome(_))
    ));
    let http = reqwest::Client::new();
    let mcp = || {
        http.post(format!("{}/mcp", relay.url()))
            .bearer_auth(&mcp_token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": { "name": "t", "version": "1" } }
            }))
            .send()
    };
    assert_eq!(mcp().await.unwrap().status(), 200);

    // Past the expiry (a wait for the clock, not for readiness).
    let left = (soon - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    // The open agent session ends within the sweep; nothing new opens, and each says why.
    loop {
        match agent.recv().await {
            None => break,
            Some(_) => continue,
        }
    }
    assert_eq!(
        RawAgent::connect(&relay.url(), &agent_token).await.err(),
        Some(401)
    );
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v1/agent/connect", relay.url()))
        .bearer_auth(&agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body = refused.text().await.unwrap();
    assert!(body.contains("expired"), "{body}");
    let over = mcp().await.unwrap();
    assert_eq!(over.status(), 401);
    let challenge = over.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("token expired at"), "{challenge}");
    // The list still shows both, with their expiry.
    let listed = a.get("/api/v1/tokens").await.unwrap();
    let with_expiry = listed
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["expires_at"].is_string())
        .count();
    assert_eq!(with_expiry, 2);
}
