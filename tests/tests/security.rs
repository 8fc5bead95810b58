//! Regression tests for what a security review with two accounts found: access re-checked the
//! moment it goes (followed logs, task events, logins, tokens), failed-login limits, single-use
//! event tickets, invitations instead of adding people without consent, numeric bounds, public
//! URLs from configuration only, response headers, `/mcp`'s Host and Origin checks, and CORS.

use base64::Engine;
use fulcrum_tests::*;
use serde_json::{Value, json};

both_backends!(
    a_removed_member_stops_receiving_logs_and_events,
    members_join_only_by_accepting_an_invitation
);

/// Collects `events`' messages until the answer to a follow of an unknown task: the feed
/// handles what it already has before a request, so this is everything sent so far.
async fn drain(events: &mut Events) -> Vec<Value> {
    let probe = uuid::Uuid::new_v4().to_string();
    events
        .request(json!({ "type": "follow", "task": probe, "offset": 0 }))
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let v = events.next().await.unwrap();
        if v["type"] == "error" && v["task"] == probe.as_str() {
            return seen;
        }
        seen.push(v);
    }
}

fn log_text(v: &Value) -> String {
    let data = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().unwrap_or_default())
        .unwrap();
    String::from_utf8_lossy(&data).into_owned()
}

async fn a_removed_member_stops_receiving_logs_and_events(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    let mut alice_events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let repo = TestRepo::new();
    // One job at a time: the second task waits in the agent until the first ends.
    let _agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let w = alice_events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let ws = id(&w);
    let r = a
        .post("/api/v1/projects", json!({ "name": "Shop" }))
        .await
        .unwrap();
    let p = id(r.data());
    let r = a
        .put(&format!("/api/v1/projects/{p}/workspaces/{ws}"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    add_member(&a, &bo, &p, &bob.email, "viewer").await;
    let mut bob_events = Events::connect(&relay.url(), &bob.access).await.unwrap();

    let gate = tempfile::tempdir().unwrap();
    let mark = gate.path().join("go");
    let first = post_task(
        &a,
        json!({ "project_id": p, "command": format!(
            "echo first-start; while [ ! -e {} ]; do sleep 0.05; done; echo AFTER-REMOVAL",
            mark.display()
        ) }),
    )
    .await;
    let second = post_task(
        &a,
        json!({ "project_id": p, "command": "echo second-after-removal" }),
    )
    .await;
    let (t1, t2) = (id(&first), id(&second));

    // Bob follows the first task's log and sees its first line.
    bob_events
        .request(json!({ "type": "follow", "task": t1, "offset": 0 }))
        .await
        .unwrap();
    loop {
        let v = bob_events.next().await.unwrap();
        if v["type"] == "log" && v["task"] == t1.as_str() && log_text(&v).contains("first-start") {
            break;
        }
    }

    // Alice removes him; then both tasks go on.
    let r = a
        .delete(&format!("/api/v1/projects/{p}/members/{}", bob.id))
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{:#}", r.body);
    std::fs::write(&mark, "").unwrap();
    let done = alice_events.task_finished(&t2).await.unwrap();
    assert_eq!(done["state"], "succeeded");

    let seen = drain(&mut bob_events).await;
    assert!(
        seen.iter().any(|v| v["type"] == "error"
            && v["task"] == t1.as_str()
            && v["message"]
                .as_str()
                .unwrap_or("")
                .contains("no longer have access")),
        "bob's follow was not stopped: {seen:#?}"
    );
    for v in &seen {
        assert!(
            !(v["type"] == "log" && log_text(v).contains("AFTER-REMOVAL")),
            "bob got output written after his removal: {v}"
        );
        assert!(
            !(v["type"] == "log_end"),
            "bob's follow ran to the end: {v}"
        );
        // The second task was queued before the removal and started after it: its start and
        // end are not his to see, nor is the first task's end.
        let about = v["task"]["id"].as_str().unwrap_or("");
        let state = v["task"]["state"].as_str().unwrap_or("");
        assert!(
            !(v["type"] == "task" && (about == t2 || about == t1) && state != "dispatched"),
            "bob got a task event after his removal: {v}"
        );
    }
    // Nor through REST.
    assert_eq!(
        bo.get(&format!("/api/v1/tasks/{t1}/logs"))
            .await
            .unwrap()
            .status,
        404
    );
    let metrics = reqwest::get(format!("{}/metrics", relay.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fulcrum_streams_cut_total{stream=\"follow\"} 1"),
        "{metrics}"
    );
    relay.shutdown().await.unwrap();
}

async fn members_join_only_by_accepting_an_invitation(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let carol = make_user(&relay, "carol").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    let c = Api::new(&relay.url()).with_token(&carol.access);
    let r = a
        .post("/api/v1/projects", json!({ "name": "Shop" }))
        .await
        .unwrap();
    let p = id(r.data());

    // Whether or not an address has an account, the owner gets the same kind of answer.
    let mut shapes = Vec::new();
    for email in [bob.email.as_str(), "nobody-here@example.com"] {
        let r = a
            .put(
                &format!("/api/v1/projects/{p}/members"),
                json!({ "email": email, "role": "viewer" }),
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.error_code()), (404, "not_a_member"));
        let r = a
            .post(
                &format!("/api/v1/projects/{p}/invitations"),
                json!({ "email": email, "role": "viewer" }),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:#}", r.body);
        let mut keys: Vec<String> = r.data().as_object().unwrap().keys().cloned().collect();
        keys.sort();
        shapes.push(keys);
    }
    assert_eq!(shapes[0], shapes[1]);
    // Nobody was added: bob does not see the project until he accepts.
    assert_eq!(
        bo.get(&format!("/api/v1/projects/{p}"))
            .await
            .unwrap()
            .status,
        404
    );
    let members = a
        .get(&format!("/api/v1/projects/{p}/members"))
        .await
        .unwrap();
    assert_eq!(members.data().as_array().unwrap().len(), 1);
    let pending = a
        .get(&format!("/api/v1/projects/{p}/invitations"))
        .await
        .unwrap();
    assert_eq!(pending.data().as_array().unwrap().len(), 2);

    // Only the invited user sees and answers the invitation.
    let mine = bo.get("/api/v1/invitations").await.unwrap();
    let invitation = id(&mine.data()[0]);
    assert_eq!(mine.data()[0]["project_name"], "Shop");
    assert_eq!(mine.data()[0]["invited_by_email"], alice.email.as_str());
    assert_eq!(
        c.get("/api/v1/invitations").await.unwrap().data(),
        &json!([])
    );
    for path in ["accept", "decline"] {
        let r = c
            .post(
                &format!("/api/v1/invitations/{invitation}/{path}"),
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{path}");
    }
    // Others cannot list or withdraw the project's invitations.
    assert_eq!(
        c.get(&format!("/api/v1/projects/{p}/invitations"))
            .await
            .unwrap()
            .status,
        404
    );
    let r = bo
        .post(
            &format!("/api/v1/invitations/{invitation}/accept"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.data()["role"], "viewer");
    // Accepted once: it is gone.
    let r = bo
        .post(
            &format!("/api/v1/invitations/{invitation}/accept"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // A viewer cannot invite; the owner changes a member's role in place.
    let r = bo
        .post(
            &format!("/api/v1/projects/{p}/invitations"),
            json!({ "email": carol.email, "role": "viewer" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = a
        .put(
            &format!("/api/v1/projects/{p}/members"),
            json!({ "email": bob.email, "role": "maintainer" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    let r = a
        .post(
            &format!("/api/v1/projects/{p}/invitations"),
            json!({ "email": bob.email, "role": "viewer" }),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (409, "already_member"));

    // Declined and withdrawn invitations go away and add nobody.
    let r = a
        .post(
            &format!("/api/v1/projects/{p}/invitations"),
            json!({ "email": carol.email, "role": "maintainer" }),
        )
        .await
        .unwrap();
    let for_carol = id(r.data());
    let r = c
        .post(
            &format!("/api/v1/invitations/{for_carol}/decline"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        c.get(&format!("/api/v1/projects/{p}"))
            .await
            .unwrap()
            .status,
        404
    );
    let pending = a
        .get(&format!("/api/v1/projects/{p}/invitations"))
        .await
        .unwrap();
    let left = pending.data().as_array().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["email"], "nobody-here@example.com");
    let r = a
        .delete(&format!(
            "/api/v1/projects/{p}/invitations/{}",
            id(&left[0])
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_socket_and_a_ticket_opens_one_socket() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url());
    let login = api.login(&alice.email, &alice.password).await.unwrap();
    let access = login["access_token"].as_str().unwrap();
    let r = api
        .with_token(access)
        .post("/api/v1/events/ticket", json!({}))
        .await
        .unwrap();
    let ticket = r.data()["ticket"].as_str().unwrap().to_owned();
    let spare = api
        .with_token(access)
        .post("/api/v1/events/ticket", json!({}))
        .await
        .unwrap()
        .data()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!(
        "{}/api/v1/events?ticket={ticket}",
        relay.url().replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The same ticket again: refused.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a used ticket opened a socket: {:?}", other.map(|_| ())),
    }
    // Another login's logout leaves this socket open; this login's closes it.
    let other = api.login(&alice.email, &alice.password).await.unwrap();
    let r = api
        .post(
            "/api/v1/auth/logout",
            json!({ "refresh_token": other["refresh_token"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = api
        .post(
            "/api/v1/auth/logout",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    use futures_util::StreamExt;
    let mut texts = 0;
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(m) = socket.next().await {
            match m {
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return true,
                Ok(tokio_tungstenite::tungstenite::Message::Text(_)) => texts += 1,
                Ok(_) => {}
            }
        }
        true
    })
    .await;
    assert_eq!(closed, Ok(true), "the socket stayed open after logout");
    // Only the snapshot came before the close.
    assert_eq!(texts, 1);
    // After the logout, its access token gets no more tickets, and an unused ticket of that
    // login opens nothing.
    let r = api
        .with_token(access)
        .post("/api/v1/events/ticket", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let late = format!(
        "{}/api/v1/events?ticket={spare}",
        relay.url().replace("http://", "ws://")
    );
    match tokio_tungstenite::connect_async(&late).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!(
            "a logged-out ticket opened a socket: {:?}",
            other.map(|_| ())
        ),
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_back_off_per_account_and_per_address() {
    let db = TestDb::new(Backend::Sqlite).await;
    // The test speaks as several clients through a "proxy" on loopback.
    let mut config = relay_config(&db, &RelayOptions::default());
    config.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let relay = fulcrum_relay::Relay::start(config).await.unwrap();
    // Alice logs in once from her own address (loopback, no X-Forwarded-For).
    let alice = make_user(&relay, "alice").await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/login", relay.url());
    let login = |email: &str, password: &str, from: Option<&str>| {
        let mut req = http
            .post(&url)
            .json(&json!({ "email": email, "password": password }));
        if let Some(addr) = from {
            req = req.header("x-forwarded-for", format!("{addr}, 127.0.0.1"));
        }
        req.send()
    };
    let attacker = Some("203.0.113.9");
    // Five free failures, then the account waits (a second, doubling, capped at a minute)...
    for _ in 0..5 {
        let r = login(&alice.email, "wrong-password", attacker)
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = login(&alice.email, "wrong-password", attacker)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // ...even with the right password, from where the attacks come from,
    let r = login(&alice.email, &alice.password, attacker)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // but not from where Alice logged in before: the attacker cannot lock her out.
    let r = login(&alice.email, &alice.password, None).await.unwrap();
    assert_eq!(r.status(), 200);

    // Twenty failures a minute from one address, over any accounts, stop that address only.
    let spray = Some("198.51.100.7");
    for i in 0..20 {
        let r = login(&format!("nobody{i}@example.com"), "wrong-password", spray)
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = login("someone-else@example.com", "wrong-password", spray)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let r = login(&alice.email, &alice.password, Some("192.0.2.44"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", relay.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(value("fulcrum_login_failures_total"), 25.0, "{metrics}");
    assert_eq!(
        value("fulcrum_login_throttled_total{limit=\"account\"}"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        value("fulcrum_login_throttled_total{limit=\"address\"}"),
        1.0,
        "{metrics}"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_safe_headers_urls_and_bounds() {
    let Rig {
        relay,
        api: a,
        mut events,
        user,
        workspace: ws,
        repo: _repo,
        agent: _agent,
        db: _db,
    } = rig(Backend::Sqlite, RelayOptions::default()).await;
    let base = relay.url();
    let http = reqwest::Client::new();
    let evil = "evil.example:80";

    // Public URLs come from configuration, never from the Host header.
    let script = http
        .get(format!("{base}/install.sh"))
        .header("host", evil)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!script.contains("evil.example") && script.contains(&base));
    let meta: Value = http
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .header("host", evil)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], format!("{base}/mcp"));
    let r = http
        .post(format!("{base}/mcp"))
        .header("host", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(&base) && !challenge.contains("evil"),
        "{challenge}"
    );

    // Answers holding secrets are not cacheable; every answer has the security headers.
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": user.email, "password": user.password }))
        .send()
        .await
        .unwrap();
    let token = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&user.access)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap();
    let ticket = http
        .post(format!("{base}/api/v1/events/ticket"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    let refresh = http
        .post(format!("{base}/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": "fcr_nope" }))
        .send()
        .await
        .unwrap();
    for (what, r) in [
        ("login", &login),
        ("token", &token),
        ("ticket", &ticket),
        ("refresh", &refresh),
    ] {
        assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
    }
    for path in ["/health", "/api/v1/me", "/", "/metrics", "/no/such/page"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(!h.contains_key("strict-transport-security"), "{path}");
    }
    // Unmatched paths are not the MCP door's: 404, not 401.
    for path in ["/no/such/page", "/mcpx", "/.well-known/nothing"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    // Out-of-range numbers are refused with 422, never a 500.
    let task = post_task(&a, json!({ "workspace_id": ws, "command": "echo hi" })).await;
    let t = id(&task);
    events.task_finished(&t).await.unwrap();
    for query in [
        "offset=9223372036854775808",
        "offset=18446744073709551615",
        "offset=18446744073709551616",
        "offset=4611686018427387905",
        "offset=-1",
        "limit=0",
    ] {
        let r = a
            .get(&format!("/api/v1/tasks/{t}/logs?{query}"))
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{query}: {:#}", r.body);
    }
    let r = a
        .get(&format!(
            "/api/v1/tasks/{t}/logs?offset=4611686018427387904&limit=18446744073709551615"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.data()["data"], "");
    for query in ["page=0", "page=2147483648", "per_page=201", "per_page=1e3"] {
        let r = a.get(&format!("/api/v1/tasks?{query}")).await.unwrap();
        assert_eq!(r.status, 422, "{query}");
    }
    events
        .request(json!({ "type": "follow", "task": t, "offset": 9223372036854775808u64 }))
        .await
        .unwrap();
    loop {
        let v = events.next().await.unwrap();
        if v["type"] == "error" {
            assert!(v["message"].as_str().unwrap().contains("offset"), "{v}");
            break;
        }
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_rebinding_and_revoked_tokens_close_sessions() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let r = a
        .post("/api/v1/tokens", json!({ "name": "claude", "kind": "mcp" }))
        .await
        .unwrap();
    let (token_id, secret) = (id(r.data()), r.data()["token"].as_str().unwrap().to_owned());
    let url = format!("{}/mcp", relay.url());
    let own_host = relay.url().trim_start_matches("http://").to_owned();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": { "name": "test", "version": "1" } }
    });
    let http = reqwest::Client::new();
    let post = |host: &str, origin: Option<&str>| {
        let mut req = http
            .post(&url)
            .bearer_auth(&secret)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    // DNS rebinding: a foreign Host or Origin is refused, even with a valid token.
    for (host, origin) in [
        ("evil.example.com", Some("http://evil.example.com")),
        ("evil.example.com", None),
        (own_host.as_str(), Some("http://evil.example.com")),
    ] {
        let r = post(host, origin).await.unwrap();
        assert_eq!(r.status(), 403, "Host {host}, Origin {origin:?}");
    }
    let own_origin = relay.url();
    let r = post(&own_host, Some(&own_origin)).await.unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();

    // Revoking the token closes its session: even a new token of the same user cannot use it.
    let r = a
        .delete(&format!("/api/v1/tokens/{token_id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = a
        .post(
            "/api/v1/tokens",
            json!({ "name": "claude-2", "kind": "mcp" }),
        )
        .await
        .unwrap();
    let fresh = r.data()["token"].as_str().unwrap().to_owned();
    let r = http
        .post(&url)
        .bearer_auth(&fresh)
        .header("mcp-session-id", &session)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "ping" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_on_the_rest_api_only() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = relay_config(&db, &RelayOptions::default());
    config.http.cors_origins = vec!["https://tools.example.com".into()];
    let relay = fulcrum_relay::Relay::start(config).await.unwrap();
    let user = make_user(&relay, "alice").await;
    let http = reqwest::Client::new();
    let preflight = |path: &str, origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{}{path}", relay.url()))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("/api/v1/workspaces", "https://tools.example.com")
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://tools.example.com"
    );
    assert!(!r.headers().contains_key("access-control-allow-credentials"));
    let r = http
        .get(format!("{}/api/v1/workspaces", relay.url()))
        .bearer_auth(&user.access)
        .header("origin", "https://tools.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://tools.example.com"
    );
    // Another origin, and the cookie's auth path, get no CORS at all.
    for (path, origin) in [
        ("/api/v1/workspaces", "https://evil.example.com"),
        ("/api/v1/auth/refresh", "https://tools.example.com"),
        ("/api/v1/auth/login", "https://tools.example.com"),
    ] {
        let r = preflight(path, origin).await.unwrap();
        assert!(
            !r.headers().contains_key("access-control-allow-origin"),
            "{path} {origin}"
        );
    }
    relay.shutdown().await.unwrap();
}

/// The official MCP conformance suite's scenarios that apply to Fulcrum (initialize, ping,
/// tools and resources lists, SSE polling and streams, DNS rebinding, logging/setLevel), run
/// against a real relay by `tests/mcp-conformance/run.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_mcp_conformance_suite_passes() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp-conformance/run.sh");
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let r = Api::new(&relay.url())
        .with_token(&alice.access)
        .post(
            "/api/v1/tokens",
            json!({ "name": "conformance", "kind": "mcp" }),
        )
        .await
        .unwrap();
    let token = r.data()["token"].as_str().unwrap().to_owned();
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(format!("{}/mcp", relay.url()))
        .arg(&token)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the conformance suite failed:\n{text}"
    );
    for scenario in ["dns-rebinding-protection", "logging-set-level"] {
        assert!(text.contains(scenario), "{scenario} did not run:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    relay.shutdown().await.unwrap();
}
