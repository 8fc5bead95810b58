//! Requests are limited per user and per agent token: over the limit, 429 with `Retry-After`,
//! and other users and tokens are not affected.

use fulcrum_tests::*;

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
