//! Outgoing webhooks: deliveries checked by the official Standard Webhooks library in a
//! receiver the test runs (`tests/webhooks/receiver.py`); a receiver that fails, then recovers,
//! gets every event once and in order, after the waits its `Retry-After` asked for; the log shows
//! every attempt; a delivery can be sent again; a rotated secret signs beside the new one; 410
//! disables the endpoint; private targets are refused; and nobody else sees or touches an
//! endpoint through any door.

use std::time::Duration;

use fulcrum_tests::{
    Api, Backend, RelayOptions, TestDb, add_member, both_backends, id, make_user, post_task, rig,
    start_relay, webhook_receiver::Receiver,
};
use serde_json::{Value, json};

fn opts() -> RelayOptions {
    RelayOptions {
        master_keys: Some(fulcrum_relay::secrets::KeyRing::generate_entry("k1")),
        ..Default::default()
    }
}

async fn create(api: &Api, body: Value) -> (String, String) {
    let r = api.post("/api/v1/webhooks", body).await.unwrap();
    assert_eq!(r.status, 201, "{:#}", r.body);
    let secret = r.data()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (id(r.data()), secret)
}

/// The endpoint once `done` holds of it (within 10 s).
async fn endpoint_when(api: &Api, endpoint: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut shown = Value::Null;
    for _ in 0..200 {
        let r = api
            .get(&format!("/api/v1/webhooks/{endpoint}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:#}", r.body);
        shown = r.data().clone();
        if done(&shown) {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the endpoint never got there: {shown:#}");
}

both_backends!(deliveries_are_signed_in_order_retried_and_logged);

async fn deliveries_are_signed_in_order_retried_and_logged(b: Backend) {
    let mut s = rig(b, opts()).await;
    let mut rx = Receiver::start().await;
    let (endpoint, secret) = create(
        &s.api,
        json!({"url": format!("{}/hook", rx.url), "events": ["task_finished"],
               "description": "n8n"}),
    )
    .await;
    // The receiver fails the first delivery twice, asking to wait a second each time.
    rx.control(json!({"secret": secret, "answers": [429, 502], "retry_after": "1"}))
        .await;
    let mut tasks = Vec::new();
    for command in ["true", "exit 3", "echo hi"] {
        let t = post_task(
            &s.api,
            json!({"workspace_id": s.workspace, "command": command}),
        )
        .await;
        s.events.task_finished(&id(&t)).await.unwrap();
        tasks.push(id(&t));
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(rx.next().await);
    }
    for d in &got {
        assert_eq!(d["verified"], true, "{d}");
        assert_eq!(d["type"], "task_finished");
    }
    // The first delivery three times (the same webhook-id), then the others once, in order.
    let ids: Vec<&str> = got.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!((ids[0], ids[1]), (ids[2], ids[2]));
    assert!(ids[2] != ids[3] && ids[3] != ids[4]);
    let statuses: Vec<i64> = got.iter().map(|d| d["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [429, 502, 204, 204, 204]);
    let order: Vec<&str> = got[2..]
        .iter()
        .map(|d| d["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, tasks.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(got[3]["data"]["state"], "failed");
    assert_eq!(got[3]["data"]["exit_code"], 3);

    // The log: every delivery (recorded once the receiver's answer is back), and every attempt
    // of the first, a second or more apart.
    // A test event behind them arrives only once they are recorded (one delivery at a time,
    // each recorded before the next is taken).
    let r = s
        .api
        .post(&format!("/api/v1/webhooks/{endpoint}/test"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:#}", r.body);
    assert_eq!(rx.next().await["type"], "webhook_test");
    let log = s
        .api
        .get(&format!("/api/v1/webhooks/{endpoint}/deliveries"))
        .await
        .unwrap();
    assert_eq!(log.status, 200, "{:#}", log.body);
    let log: Vec<&Value> = log
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "task_finished")
        .collect();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|d| d["state"] == "delivered"), "{log:#?}");
    let first = log.last().unwrap();
    assert_eq!(first["id"], ids[0]);
    let detail = s
        .api
        .get(&format!(
            "/api/v1/webhooks/{endpoint}/deliveries/{}",
            ids[0]
        ))
        .await
        .unwrap();
    let attempts = detail.data()["attempt_log"].as_array().unwrap().clone();
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [429, 502, 204]);
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["at"].as_str().unwrap()).unwrap()
    };
    for i in 1..3 {
        assert!(
            at(i) - at(i - 1) >= chrono::Duration::milliseconds(990),
            "Retry-After was not honoured: {attempts:?}"
        );
    }

    // Sent again on request, with the same id.
    let r = s
        .api
        .post(
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{}/replay", ids[0]),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{:#}", r.body);
    let again = rx.next().await;
    assert_eq!(
        (again["id"].as_str(), again["verified"].as_bool()),
        (Some(ids[0]), Some(true))
    );

    // A rotated secret: both sign, so a receiver with either one accepts.
    let r = s
        .api
        .post(
            &format!("/api/v1/webhooks/{endpoint}/rotate-secret"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    let new_secret = r.data()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    for key in [&new_secret, &secret] {
        rx.control(json!({"secret": key, "answers": []})).await;
        let r = s
            .api
            .post(&format!("/api/v1/webhooks/{endpoint}/test"), json!({}))
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{:#}", r.body);
        let d = rx.next().await;
        assert_eq!(d["type"], "webhook_test");
        assert_eq!(
            (d["verified"].as_bool(), d["signatures"].as_i64()),
            (Some(true), Some(2)),
            "{d}"
        );
    }

    // A delivery that fails every attempt (four in the tests' schedule) fails, and disables the
    // endpoint; enabled again, it goes on.
    rx.control(json!({"secret": new_secret, "answers": [500, 500, 500, 500], "retry_after": null}))
        .await;
    s.api
        .post(&format!("/api/v1/webhooks/{endpoint}/test"), json!({}))
        .await
        .unwrap();
    for _ in 0..4 {
        assert_eq!(rx.next().await["status"], 500);
    }
    let shown = endpoint_when(&s.api, &endpoint, |e| e["enabled"] == false).await;
    assert!(
        shown["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    let r = s
        .api
        .post(&format!("/api/v1/webhooks/{endpoint}/test"), json!({}))
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (409, "endpoint_disabled"));
    let r = s
        .api
        .patch(
            &format!("/api/v1/webhooks/{endpoint}"),
            json!({"enabled": true}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);

    // 410: the endpoint is disabled, and gets nothing more.
    rx.control(json!({"secret": new_secret, "answers": [410]}))
        .await;
    s.api
        .post(&format!("/api/v1/webhooks/{endpoint}/test"), json!({}))
        .await
        .unwrap();
    assert_eq!(rx.next().await["status"], 410);
    let shown = endpoint_when(&s.api, &endpoint, |e| e["enabled"] == false).await;
    assert!(shown["disabled_reason"].as_str().unwrap().contains("410"));
    assert!(shown.get("secret").is_none());

    // Operable: the work is in /metrics, the loop in readiness.
    let metrics = reqwest::get(format!("{}/metrics", s.relay.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fulcrum_webhook_attempts_total{outcome=\"delivered\"}"));
    assert!(metrics.contains("fulcrum_webhook_attempts_total{outcome=\"gone\"} 1"));
    let ready: Value = reqwest::get(format!("{}/health/ready", s.relay.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["data"]["webhooks"], "running");
}

both_backends!(endpoints_are_their_managers_own_and_checked);

async fn endpoints_are_their_managers_own_and_checked(b: Backend) {
    let db = TestDb::new(b).await;
    let mut o = opts();
    o.webhooks.allow_private_targets = false;
    let relay = start_relay(&db, &o).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let bob = make_user(&relay, "bob").await;
    let bapi = Api::new(&relay.url()).with_token(&bob.access);
    let mallory = make_user(&relay, "mallory").await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);

    // Private and loopback targets are refused, and nothing is stored.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "http://10.0.0.8/",
    ] {
        let r = api
            .post(
                "/api/v1/webhooks",
                json!({"url": url, "events": ["task_finished"]}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 422, "{url}: {:#}", r.body);
        assert!(r.body.to_string().contains("private"), "{:#}", r.body);
    }
    // Bad input: a clear error, nothing stored.
    for (status, body) in [
        (
            422,
            json!({"url": "https://hooks.example.com/a", "events": []}),
        ),
        (
            422,
            json!({"url": "https://hooks.example.com/a", "events": ["nope"]}),
        ),
        (
            422,
            json!({"url": "ftp://hooks.example.com/a", "events": ["task_finished"]}),
        ),
        (
            422,
            json!({"url": "https://u:p@hooks.example.com/a", "events": ["task_finished"]}),
        ),
        (
            422,
            json!({"url": "https://hooks.example.com/a", "events": ["task_finished"], "x": 1}),
        ),
        (
            422,
            json!({"url": "https://hooks.example.com/a", "events": ["task_finished"],
               "description": "d".repeat(501)}),
        ),
    ] {
        let r = api.post("/api/v1/webhooks", body.clone()).await.unwrap();
        assert_eq!(r.status, status, "{body}: {:#}", r.body);
        assert!(r.error_code() != "", "{:#}", r.body);
    }
    assert_eq!(
        api.get("/api/v1/webhooks").await.unwrap().data(),
        &json!([])
    );

    // A personal endpoint, and one of a project bob views.
    let (mine, secret) = create(
        &api,
        json!({"url": "https://hooks.example.com/mine", "events": ["task_finished"]}),
    )
    .await;
    let p = api
        .post(
            "/api/v1/projects",
            json!({"name": "shop", "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(p.data());
    add_member(&api, &bapi, &project, &bob.email, "viewer").await;
    let (shared, _) = create(
        &api,
        json!({"url": "https://hooks.example.com/shop", "events": ["budget_threshold"],
               "project_id": project}),
    )
    .await;
    let r = bapi
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://hooks.example.com/b", "events": ["task_finished"],
                   "project_id": project}),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status, 403,
        "a viewer does not set up the project's webhooks"
    );
    let listed = api.get("/api/v1/webhooks").await.unwrap();
    assert_eq!(listed.data().as_array().unwrap().len(), 2);
    assert!(
        !listed.body.to_string().contains(&secret),
        "the secret is shown once"
    );

    // Nobody else sees or touches them, through any route.
    for (who, api) in [("mallory", &mapi), ("bob", &bapi)] {
        assert_eq!(
            api.get("/api/v1/webhooks").await.unwrap().data(),
            &json!([]),
            "{who}"
        );
        for e in [&mine, &shared] {
            let base = format!("/api/v1/webhooks/{e}");
            let fake = uuid::Uuid::now_v7();
            let replies = [
                api.get(&base).await.unwrap(),
                api.patch(&base, json!({"enabled": false})).await.unwrap(),
                api.post(&format!("{base}/rotate-secret"), json!({}))
                    .await
                    .unwrap(),
                api.post(&format!("{base}/test"), json!({})).await.unwrap(),
                api.get(&format!("{base}/deliveries")).await.unwrap(),
                api.get(&format!("{base}/deliveries/{fake}")).await.unwrap(),
                api.post(&format!("{base}/deliveries/{fake}/replay"), json!({}))
                    .await
                    .unwrap(),
                api.delete(&base).await.unwrap(),
            ];
            for r in replies {
                assert_eq!(r.status, 404, "{who} on {base}: {:#}", r.body);
            }
        }
    }
    // Still there, unchanged.
    let shown = api.get(&format!("/api/v1/webhooks/{mine}")).await.unwrap();
    assert_eq!(shown.data()["enabled"], true);
    // Its owner changes and deletes it.
    let r = api
        .patch(
            &format!("/api/v1/webhooks/{mine}"),
            json!({"enabled": false, "events": ["task_finished", "budget_threshold"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.data()["enabled"], false);
    assert_eq!(
        r.data()["events"],
        json!(["budget_threshold", "task_finished"])
    );
    let r = api
        .delete(&format!("/api/v1/webhooks/{mine}"))
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        api.get(&format!("/api/v1/webhooks/{mine}"))
            .await
            .unwrap()
            .status,
        404
    );
}
