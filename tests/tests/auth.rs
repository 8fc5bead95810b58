//! Logins, refresh-token rotation and reuse detection, sign-up, and token revocation.

use fulcrum_agent::status::ConnectionState;
use fulcrum_tests::*;
use serde_json::json;

both_backends!(
    login_refresh_and_logout,
    revoking_a_token_disconnects_its_agents,
    signup_follows_the_config
);

async fn login_refresh_and_logout(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let anon = Api::new(&relay.url());

    for (email, password) in [
        (alice.email.as_str(), "wrong-password"),
        ("nobody@example.com", "whatever-123"),
    ] {
        let r = anon
            .post(
                "/api/v1/auth/login",
                json!({ "email": email, "password": password }),
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.error_code()), (401, "invalid_credentials"));
    }
    let login = anon
        .login(&alice.email.to_uppercase(), &alice.password)
        .await
        .unwrap();
    assert_eq!(login["expires_in"], 900);
    let me = anon
        .with_token(login["access_token"].as_str().unwrap())
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(me.data()["email"], alice.email);
    assert!(me.data().get("password_hash").is_none());

    // Rotation: each refresh token works once.
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = anon
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }))
        .await
        .unwrap();
    assert_eq!(refreshed.status, 200);
    let r2 = refreshed.data()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(r1, r2);
    // Reusing the old one is a replay: it fails and revokes the whole login, r2 included.
    let replay = anon
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r1 }))
        .await
        .unwrap();
    assert_eq!(
        (replay.status, replay.error_code()),
        (401, "refresh_reused")
    );
    let after = anon
        .post("/api/v1/auth/refresh", json!({ "refresh_token": r2 }))
        .await
        .unwrap();
    assert_eq!(after.status, 401);

    // Logout revokes a fresh login's refresh token.
    let login = anon.login(&alice.email, &alice.password).await.unwrap();
    let r = login["refresh_token"].as_str().unwrap();
    assert_eq!(
        anon.post("/api/v1/auth/logout", json!({ "refresh_token": r }))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        anon.post("/api/v1/auth/refresh", json!({ "refresh_token": r }))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        anon.post("/api/v1/auth/refresh", json!({}))
            .await
            .unwrap()
            .status,
        401
    );
    relay.shutdown().await.unwrap();
}

async fn revoking_a_token_disconnects_its_agents(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    agent.agent.wait_for(connected, WAIT).await.unwrap();
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let tokens = api.get("/api/v1/tokens").await.unwrap();
    let token = &tokens.data()[0];
    assert!(
        token["last_used_at"].is_string(),
        "connecting marks the token used"
    );
    assert!(
        token.get("token").is_none() && token.get("token_hash").is_none(),
        "the secret is never listed"
    );
    let id = token["id"].as_str().unwrap();
    let r = api.delete(&format!("/api/v1/tokens/{id}")).await.unwrap();
    assert_eq!(r.data()["revoked"], true);
    let s = agent.agent.wait_for(token_refused, WAIT).await.unwrap();
    assert_ne!(s.connection.state, ConnectionState::Connected);
    assert_eq!(
        RawAgent::connect(&relay.url(), &alice.agent_token)
            .await
            .err(),
        Some(401)
    );
    let listed = api.get("/api/v1/tokens").await.unwrap();
    assert!(listed.data()[0]["revoked_at"].is_string());
    agent.agent.stop().await;

    // Revoked elsewhere (the CLI, another node): the relay's sweep closes the session too.
    let created = fulcrum_relay::domain::tokens::create_agent_token(
        &relay.state.store,
        alice.id.parse().unwrap(),
        "second",
    )
    .await
    .unwrap();
    let other = start_agent(&relay.url(), &created.secret, repo.path()).await;
    other.agent.wait_for(connected, WAIT).await.unwrap();
    relay
        .state
        .store
        .revoke_token(
            alice.id.parse().unwrap(),
            created.token.id,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    other.agent.wait_for(token_refused, WAIT).await.unwrap();
    other.agent.stop().await;
    relay.shutdown().await.unwrap();
}

async fn signup_follows_the_config(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let anon = Api::new(&relay.url());
    let body = json!({ "email": "new@example.com", "password": "long-enough-1" });
    let r = anon
        .post("/api/v1/auth/signup", body.clone())
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (403, "signup_disabled"));
    relay.shutdown().await.unwrap();

    let relay = start_relay(
        &db,
        &RelayOptions {
            signup: true,
            ..Default::default()
        },
    )
    .await;
    let anon = Api::new(&relay.url());
    assert_eq!(
        anon.post("/api/v1/auth/signup", body.clone())
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        anon.post("/api/v1/auth/signup", body).await.unwrap().status,
        409
    );
    let short = anon
        .post(
            "/api/v1/auth/signup",
            json!({ "email": "x@example.com", "password": "short" }),
        )
        .await
        .unwrap();
    assert_eq!(short.status, 422);
    let bad = anon
        .post(
            "/api/v1/auth/signup",
            json!({ "email": "not-an-email", "password": "long-enough-1" }),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 422);
    assert!(anon.login("new@example.com", "long-enough-1").await.is_ok());
    relay.shutdown().await.unwrap();
}
