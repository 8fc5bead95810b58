//! Accounts: a user's profile (name and preferences) and changing the password, which ends the
//! user's other logins at once.

use fulcrum_tests::*;
use serde_json::json;

both_backends!(a_profile_holds_a_name_and_checked_preferences);

async fn a_profile_holds_a_name_and_checked_preferences(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    let mine = id(a
        .post("/api/v1/projects", json!({ "name": "Shop" }))
        .await
        .unwrap()
        .data());
    let bobs = id(bo
        .post("/api/v1/projects", json!({ "name": "Bob's" }))
        .await
        .unwrap()
        .data());
    // New accounts have an empty name and default preferences.
    let me = a.get("/api/v1/me").await.unwrap();
    assert_eq!(me.data()["full_name"], "");
    assert_eq!(me.data()["preferences"]["theme"], "system");

    let r = a
        .patch(
            "/api/v1/me",
            json!({
                "full_name": "  Alice Liddell ",
                "preferences": { "theme": "dark", "time_zone": "Europe/Berlin", "default_project": mine }
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    let me = a.get("/api/v1/me").await.unwrap();
    assert_eq!(me.data()["full_name"], "Alice Liddell");
    assert_eq!(me.data()["preferences"]["theme"], "dark");
    assert_eq!(me.data()["preferences"]["time_zone"], "Europe/Berlin");
    assert_eq!(me.data()["preferences"]["default_project"], mine.as_str());

    // Refused, changing nothing: a theme outside the set, a bad zone, someone else's project,
    // an unknown field, a name too long.
    for (body, status) in [
        (json!({ "preferences": { "theme": "neon" } }), 422),
        (
            json!({ "preferences": { "time_zone": "not a zone;" } }),
            422,
        ),
        (json!({ "preferences": { "default_project": bobs } }), 404),
        (json!({ "nickname": "al" }), 422),
        (json!({ "full_name": "x".repeat(201) }), 422),
    ] {
        let r = a.patch("/api/v1/me", body.clone()).await.unwrap();
        assert_eq!(r.status, status, "{body}: {:#}", r.body);
    }
    let again = a.get("/api/v1/me").await.unwrap();
    assert_eq!(again.data(), me.data());
    // Bob's profile is his own.
    assert_eq!(bo.get("/api/v1/me").await.unwrap().data()["full_name"], "");
}

both_backends!(a_new_password_ends_the_other_logins_at_once);

async fn a_new_password_ends_the_other_logins_at_once(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url());
    let here = api.login(&alice.email, &alice.password).await.unwrap();
    let there = api.login(&alice.email, &alice.password).await.unwrap();
    let here_access = here["access_token"].as_str().unwrap().to_owned();
    let there_access = there["access_token"].as_str().unwrap().to_owned();
    // The other login has a live socket.
    let mut socket = Events::connect(&relay.url(), &there_access).await.unwrap();

    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let mine = api.with_token(&here_access);
    // A wrong current password, or a new one too short: refused, nothing changes.
    let r = mine
        .post(
            "/api/v1/me/password",
            change("not-it-at-all", "a-new-passphrase"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{:#}", r.body);
    assert_eq!(r.body["errors"][0]["code"], "wrong_password");
    let r = mine
        .post("/api/v1/me/password", change(&alice.password, "short"))
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{:#}", r.body);
    assert!(api.login(&alice.email, &alice.password).await.is_ok());

    let r = mine
        .post(
            "/api/v1/me/password",
            change(&alice.password, "a-new-passphrase"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    // make_user's login, `there`, and the check above: three others ended.
    assert_eq!(r.data()["other_logins_ended"], 3);
    // The other login's socket closes, and its refresh token is dead.
    // `next` fails after WAIT with "no event in time" if the socket stays open.
    let closed = loop {
        if let Err(e) = socket.next().await {
            break e.to_string();
        }
    };
    assert!(
        closed.contains("closed"),
        "the other login's socket: {closed}"
    );
    // Its access token is refused at once, not when it would have expired.
    let r = api
        .with_token(&there_access)
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body["errors"][0]["code"], "login_ended");
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": there["refresh_token"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // This login goes on; the old password is gone, the new one works.
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": here["refresh_token"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert!(api.login(&alice.email, &alice.password).await.is_err());
    assert!(api.login(&alice.email, "a-new-passphrase").await.is_ok());
}

/// Runs `fulcrum-relay user deactivate|activate` on the test's database.
async fn set_active(db: &TestDb, email: &str, active: bool) {
    let out = tokio::process::Command::new(workspace_binary("fulcrum-relay"))
        .args([
            "user",
            if active { "activate" } else { "deactivate" },
            "--email",
            email,
            "--database",
            &db.url,
        ])
        .env_remove("FULCRUM_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `done` to hold, checking every 20 ms, and returns how long it took.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < WAIT, "{what}: still not after {WAIT:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    start.elapsed()
}

both_backends!(a_deactivated_user_is_cut_off_at_every_door);

async fn a_deactivated_user_is_cut_off_at_every_door(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let repo = TestRepo::new();
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let _agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let ws: uuid::Uuid = id(&events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap())
    .parse()
    .unwrap();
    let mcp = Api::new(&relay.url())
        .with_token(&alice.access)
        .post("/api/v1/tokens", json!({ "name": "client", "kind": "mcp" }))
        .await
        .unwrap()
        .data()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(mcp_initialize_status(&relay.url(), &mcp).await, 200);
    let a = Api::new(&relay.url()).with_token(&alice.access);

    set_active(&db, &alice.email, false).await;
    // Her socket closes, her agent is disconnected, her tokens stop working: all within a
    // sweep (500 ms) of the change.
    let socket = until("her events socket closes", async || {
        match events.next().await {
            Ok(_) => false,
            Err(e) => {
                assert!(e.to_string().contains("closed"), "not closed: {e}");
                true
            }
        }
    })
    .await;
    let agent = until("her agent is disconnected", async || {
        !relay.state.sessions.is_online(ws)
    })
    .await;
    eprintln!("cut off after: socket {socket:?}, agent {agent:?}");
    let r = a.get("/api/v1/me").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.body["errors"][0]["code"], "account_deactivated");
    assert_eq!(mcp_initialize_status(&relay.url(), &mcp).await, 401);
    assert_eq!(
        RawAgent::connect(&relay.url(), &alice.agent_token)
            .await
            .err(),
        Some(401)
    );
    let api = Api::new(&relay.url());
    let refused = api
        .post(
            "/api/v1/auth/login",
            json!({ "email": alice.email, "password": alice.password }),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{:#}", refused.body);
    assert_eq!(refused.body["errors"][0]["code"], "account_deactivated");
    // A wrong password learns nothing of the account's state.
    let wrong = api
        .post(
            "/api/v1/auth/login",
            json!({ "email": alice.email, "password": "not-her-password" }),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    // Bob goes on as before.
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    assert_eq!(bo.get("/api/v1/me").await.unwrap().status, 200);

    // Activated again, she logs in anew and her tokens work.
    set_active(&db, &alice.email, true).await;
    until("she can log in again", async || {
        api.login(&alice.email, &alice.password).await.is_ok()
    })
    .await;
    // Every door opens again once the relay's sweep has seen it.
    until("her MCP token works again", async || {
        mcp_initialize_status(&relay.url(), &mcp).await == 200
    })
    .await;
    assert!(
        RawAgent::connect(&relay.url(), &alice.agent_token)
            .await
            .is_ok()
    );
}

/// Runs `fulcrum-relay user reset-password` on the test's database; stdout and success.
async fn reset_link(db: &TestDb, email: &str, mins: &str) -> (String, bool, String) {
    let out = tokio::process::Command::new(workspace_binary("fulcrum-relay"))
        .args([
            "user",
            "reset-password",
            "--email",
            email,
            "--valid-for-mins",
            mins,
            "--database",
            &db.url,
            "--public-url",
            "https://fulcrum.example.com",
        ])
        .env_remove("FULCRUM_CONFIG")
        .output()
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_backends!(a_one_time_link_sets_a_new_password);

async fn a_one_time_link_sets_a_new_password(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url());
    let other = api.login(&alice.email, &alice.password).await.unwrap();

    let (link, ok, said) = reset_link(&db, &alice.email, "60").await;
    assert!(ok, "{said}");
    let token = link
        .strip_prefix("https://fulcrum.example.com/#/reset/")
        .unwrap_or_else(|| panic!("a link on the public URL: {link}"))
        .to_owned();
    assert!(token.starts_with("fpr_"), "{link}");
    let (_, ok, said) = reset_link(&db, &alice.email, "0").await;
    assert!(!ok && said.contains("1 minute to 7 days"), "{said}");
    let (_, ok, said) = reset_link(&db, "nobody@example.com", "60").await;
    assert!(!ok && said.contains("not found"), "{said}");

    let reset = |token: &str, password: &str| {
        api.post(
            "/api/v1/auth/reset",
            json!({ "token": token, "new_password": password }),
        )
    };
    // A password that breaks the rules, or a made-up link: refused, nothing used up.
    let r = reset(&token, "short").await.unwrap();
    assert_eq!(r.status, 422, "{:#}", r.body);
    let r = reset("fpr_made-up", "a-fresh-passphrase").await.unwrap();
    assert_eq!(r.status, 401, "{:#}", r.body);
    assert_eq!(r.body["errors"][0]["code"], "invalid_reset");

    // A second link, made before the reset, dies with it.
    let (second, ok, said) = reset_link(&db, &alice.email, "60").await;
    assert!(ok, "{said}");
    let second = second.rsplit('/').next().unwrap().to_owned();
    let r = reset(&token, "a-fresh-passphrase").await.unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    let r = reset(&second, "yet-another-passphrase").await.unwrap();
    assert_eq!(
        r.status, 401,
        "an older link outlived the reset: {:#}",
        r.body
    );
    let r = api
        .with_token(other["access_token"].as_str().unwrap())
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(r.status, 401, "an ended login's access token still works");
    // Every login ended; the old password is gone, the new one works.
    let r = api
        .post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": other["refresh_token"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(api.login(&alice.email, &alice.password).await.is_err());
    assert!(api.login(&alice.email, "a-fresh-passphrase").await.is_ok());
    // The link works once.
    let r = reset(&token, "yet-another-passphrase").await.unwrap();
    assert_eq!(r.status, 401);
    // An expired link does nothing.
    let expired = fulcrum_relay::auth::new_token(fulcrum_relay::auth::RESET_TOKEN_PREFIX);
    let now = chrono::Utc::now();
    relay
        .state
        .store
        .create_password_reset(
            alice.id.parse().unwrap(),
            &expired.hash,
            now - chrono::Duration::seconds(1),
            now - chrono::Duration::minutes(61),
        )
        .await
        .unwrap();
    let r = reset(&expired.secret, "yet-another-passphrase")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(api.login(&alice.email, "a-fresh-passphrase").await.is_ok());
}
