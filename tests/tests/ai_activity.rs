//! AI activity: outside tools report theirs over `POST /api/v1/ai-activities` with an ingest
//! token (item by item, idempotent, capped), the LLM gateway records and caps calls made with
//! the official SDKs, reports come from the rollups (JSON, CSV, Markdown, MCP), budgets raise
//! their alerts once, and no other user sees or spends anything through any of these doors.

use fulcrum_tests::{
    Api, Backend, Events, RelayOptions, TestDb, both_backends, id,
    llm_standin::{Answer, LlmStandIn},
    make_user, start_relay,
};
use serde_json::{Value, json};

const KEY: &str = "sk-standin-0123456789abcdef";

fn opts() -> RelayOptions {
    let mut o = RelayOptions {
        master_keys: Some(fulcrum_relay::secrets::KeyRing::generate_entry("k1")),
        ..Default::default()
    };
    o.llm.prices = toml::from_str(
        r#""stand-in-*" = { input = 2.0, output = 8.0, cached_input = 0.5 }
"gpt-4o" = { input = 2.5, output = 10.0 }"#,
    )
    .unwrap();
    o
}

async fn project(api: &Api, name: &str) -> String {
    let p = api
        .post(
            "/api/v1/projects",
            json!({"name": name, "description": "d"}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 201, "{:?}", p.body);
    id(p.data())
}

async fn token(api: &Api, kind: &str, extra: Value) -> String {
    let mut body = json!({"name": format!("{kind} token"), "kind": kind});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = api.post("/api/v1/tokens", body).await.unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.data()["token"].as_str().unwrap().to_owned()
}

fn statuses(r: &Value) -> Vec<String> {
    r["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect()
}

both_backends!(activities_are_ingested_item_by_item_and_reported);

async fn activities_are_ingested_item_by_item_and_reported(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &opts()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let shop = project(&api, "shop").await;
    let ingest = Api::new(&relay.url()).with_token(&token(&api, "ingest", json!({})).await);
    let mallory = make_user(&relay, "mallory").await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);
    let theirs = project(&mapi, "theirs").await;

    let huge = "p".repeat(64 * 1024 + 1);
    let batch = json!({"activities": [
        {"id": "cur-1", "project_id": shop, "tool": "Cursor", "category": "feature",
         "prompt": "add a cart", "response": "done", "model": "gpt-4o", "provider": "openai",
         "input_tokens": 1000, "output_tokens": 500, "latency_ms": 1200,
         "code_changes": [{"path": "src/cart.rs", "commit": "abc1234"}]},
        {"id": "cur-1", "project_id": shop, "tool": "cursor"},
        {"id": "cc-1", "project_id": shop, "tool": "claude-code", "category": "bugfix",
         "model": "stand-in-1", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.25,
         "latency_ms": 300},
        {"id": "bad-field", "tool": "copilot", "colour": "blue"},
        {"id": "bad-cat", "tool": "copilot", "category": "party"},
        {"id": "too-long", "tool": "copilot", "prompt": huge},
        {"id": "not-mine", "project_id": theirs, "tool": "copilot"},
        {"id": "bad-commit", "tool": "codex", "code_changes": [{"path": "a", "commit": "zz"}]},
        {"tool": "chatgpt", "category": "docs", "input_tokens": 10}
    ]});
    let r = ingest
        .post("/api/v1/ai-activities", batch.clone())
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        statuses(&r.body),
        [
            "created",
            "duplicate",
            "created",
            "rejected",
            "rejected",
            "rejected",
            "rejected",
            "rejected",
            "created"
        ],
        "{:#}",
        r.body
    );
    let items = r.data()["items"].as_array().unwrap();
    assert!(items[3]["error"].as_str().unwrap().contains("colour"));
    assert!(items[5]["error"].as_str().unwrap().contains("over the cap"));
    assert!(
        items[6]["error"]
            .as_str()
            .unwrap()
            .contains("project not found")
    );
    assert_eq!(r.data()["created"], 3);
    // The same batch again: every valid item is a duplicate, nothing new stored.
    let again = ingest.post("/api/v1/ai-activities", batch).await.unwrap();
    assert_eq!(
        again.data()["created"],
        1,
        "the one without an id is new each time"
    );
    assert_eq!(again.data()["duplicates"], 3);

    // Malformed bodies change nothing.
    for (ct, body, want) in [
        ("application/json", b"{\"activities\": [".to_vec(), 400),
        (
            "application/json",
            b"{\"activities\": [{\"tool\": \"a\xff\"}]}".to_vec(),
            400,
        ),
        ("application/json", b"[1, 2]".to_vec(), 422),
    ] {
        let r = ingest
            .post_raw("/api/v1/ai-activities", ct, body)
            .await
            .unwrap();
        assert_eq!(r.status, want, "{:?}", r.body);
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"tool": "x", "id": format!("m{i}")}))
        .collect();
    let r = ingest
        .post("/api/v1/ai-activities", json!({ "activities": many }))
        .await
        .unwrap();
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert!(r.body.to_string().contains("at most 1000"));

    // An ingest token reads nothing; a login token cannot ingest.
    for path in [
        "/api/v1/ai-activities",
        "/api/v1/ai-activities/report",
        "/api/v1/projects",
    ] {
        let r = ingest.get(path).await.unwrap();
        assert_eq!(r.status, 401, "{path}: {:?}", r.body);
    }
    let r = api
        .post("/api/v1/ai-activities", json!({"activities": []}))
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{:?}", r.body);

    // The owner sees them, newest first; the prompt is kept (the project keeps text).
    let list = api
        .get(&format!("/api/v1/ai-activities?project={shop}"))
        .await
        .unwrap();
    let list = list.data().as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let cursor = list.iter().find(|a| a["tool"] == "cursor").unwrap();
    assert_eq!(cursor["prompt"], "add a cart");
    assert_eq!(cursor["source"], "api");
    assert_eq!(
        cursor["cost_micros"], 7500,
        "priced from the table: 1000×2.5 + 500×10"
    );
    assert_eq!(cursor["code_changes"][0]["commit"], "abc1234");

    // Reports: by tool, by day and model; CSV; the project's Markdown.
    let rep = api
        .get("/api/v1/ai-activities/report?group_by=tool")
        .await
        .unwrap();
    assert_eq!(rep.status, 200, "{:?}", rep.body);
    let total = &rep.data()["total"];
    assert_eq!(total["activities"], 4);
    assert_eq!(total["input_tokens"], 1000 + 100 + 10 + 10);
    let cost = total["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.2575).abs() < 1e-9, "{cost}");
    let rows = rep.data()["rows"].as_array().unwrap();
    assert_eq!(rows[0]["key"]["tool"], "claude-code", "the costliest first");
    let p50 = rows.iter().find(|r| r["key"]["tool"] == "cursor").unwrap()["latency_p50_ms"]
        .as_f64()
        .unwrap();
    assert!((1080.0..1320.0).contains(&p50), "{p50}");
    let csv = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/ai-activities/report?group_by=day,model&format=csv",
            relay.url()
        ))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("day,model,activities,"), "{csv}");
    assert!(csv.contains(",gpt-4o,1,1000,500,0,0.007500,"), "{csv}");
    let bad = api
        .get("/api/v1/ai-activities/report?group_by=day,secret")
        .await
        .unwrap();
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    let md = reqwest::Client::new()
        .get(format!("{}/api/v1/projects/{shop}/ai-report", relay.url()))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.starts_with("# AI activity: shop"), "{md}");
    assert!(
        md.contains("## By model") && md.contains("| gpt-4o | 1 |"),
        "{md}"
    );
    assert!(md.contains("`src/cart.rs` (abc1234)"), "{md}");

    // Privacy: with text turned off, a new activity keeps no prompt.
    let off = api
        .put(
            &format!("/api/v1/projects/{shop}/ai-settings"),
            json!({"capture_text": false}),
        )
        .await
        .unwrap();
    assert_eq!(off.status, 200, "{:?}", off.body);
    ingest
        .post(
            "/api/v1/ai-activities",
            json!({"activities": [{"id": "private", "project_id": shop, "tool": "cursor",
                   "prompt": "secret plans"}]}),
        )
        .await
        .unwrap();
    let list = api
        .get(&format!("/api/v1/ai-activities?project={shop}&limit=1"))
        .await
        .unwrap();
    assert_eq!(list.data()[0]["client_id"], "private");
    assert!(list.data()[0]["prompt"].is_null());

    // Another user sees none of it, through any door of this issue.
    let theirs_list = mapi.get("/api/v1/ai-activities").await.unwrap();
    assert_eq!(theirs_list.data().as_array().unwrap().len(), 0);
    let r = mapi
        .get(&format!("/api/v1/ai-activities?project={shop}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = mapi.get("/api/v1/ai-activities/report").await.unwrap();
    assert_eq!(r.data()["total"]["activities"], 0);
    let r = mapi
        .get(&format!("/api/v1/projects/{shop}/ai-report"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    for r in [
        mapi.get(&format!("/api/v1/projects/{shop}/ai-settings"))
            .await
            .unwrap(),
        mapi.put(
            &format!("/api/v1/projects/{shop}/ai-settings"),
            json!({"capture_text": true}),
        )
        .await
        .unwrap(),
    ] {
        assert_eq!(r.status, 404, "{:?}", r.body);
    }
    // A project-limited ingest token records into its project only.
    let limited = Api::new(&relay.url())
        .with_token(&token(&api, "ingest", json!({"project_id": shop})).await);
    let other = project(&api, "other").await;
    let r = limited
        .post(
            "/api/v1/ai-activities",
            json!({"activities": [{"tool": "codex"}, {"tool": "codex", "project_id": other}]}),
        )
        .await
        .unwrap();
    assert_eq!(statuses(&r.body), ["created", "rejected"]);
    let list = api
        .get(&format!("/api/v1/ai-activities?project={shop}&tool=codex"))
        .await
        .unwrap();
    assert_eq!(list.data().as_array().unwrap().len(), 1);
}

/// Runs the gateway script in `mode`; its stdout.
async fn sdk(relay: &str, token: &str, project: &str, mode: &str) -> String {
    let venv = std::env::var("FULCRUM_LLM_VENV")
        .expect("FULCRUM_LLM_VENV is set by scripts/setup.sh (the openai and anthropic SDKs)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(format!("{venv}/bin/python"))
        .arg(root.join("llm/gateway_sdk.py"))
        .arg(format!("{relay}/llm/v1"))
        .arg(token)
        .arg(project)
        .arg(mode)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_answers_through_records_and_caps_them() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "SDK-HELLO",
        vec![Answer::Text {
            text: "Hello from the stand-in, in several pieces.".into(),
            input: 40,
            output: 11,
            cached: 0,
        }],
    );
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    // Another user watching her own events all along: none of alice's reach her.
    let mallory = make_user(&relay, "mallory").await;
    let mut mallory_events = Events::connect(&relay.url(), &mallory.access)
        .await
        .unwrap();
    let shop = project(&api, "shop").await;
    for (name, kind) in [("oa", "openai"), ("an", "anthropic")] {
        let r = api
            .post(
                "/api/v1/llm-providers",
                json!({"name": name, "kind": kind, "base_url": s.url,
                       "default_model": "stand-in-1", "api_key": KEY}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let gw = token(&api, "api", json!({"scopes": ["run"]})).await;
    let out = sdk(&relay.url(), &gw, "shop", "calls").await;
    assert!(out.contains("gateway sdk: 9 passed"), "{out}");
    assert_eq!(s.seen().len(), 5, "each SDK, streamed and not");
    assert!(
        s.seen().iter().all(|r| r.key.as_deref() == Some(KEY)),
        "the provider's key went upstream, never the Fulcrum token"
    );

    // Five calls recorded as activities of the project, priced, tools named by the SDKs; each
    // announced on the events socket once stored.
    let mut recorded = 0;
    while recorded < 5 {
        if events.next().await.unwrap()["type"] == "ai_activity" {
            recorded += 1;
        }
    }
    let list = api
        .get(&format!("/api/v1/ai-activities?project={shop}"))
        .await
        .unwrap();
    let list = list.data().as_array().unwrap().clone();
    assert_eq!(list.len(), 5, "{list:#?}");
    for a in &list {
        assert_eq!(a["source"], "gateway");
        assert_eq!(a["input_tokens"], 40, "{a:#}");
        assert_eq!(a["output_tokens"], 11);
        assert_eq!(a["cost_micros"], 40 * 2 + 11 * 8);
        assert_eq!(a["response"], "Hello from the stand-in, in several pieces.");
        assert!(a["prompt"].as_str().unwrap().starts_with("SDK-HELLO"));
        assert!(a["latency_ms"].is_number() && a["call_id"].is_string());
    }
    let tools: std::collections::BTreeSet<&str> =
        list.iter().map(|a| a["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools.into_iter().collect::<Vec<_>>(),
        ["anthropic-sdk", "openai-sdk"]
    );

    // A user budget of $0.00115 with $0.00084 spent (five calls of $0.000168): a call's worst
    // case (about 22 input tokens estimated + 8 out: $0.000108) fits twice more; the first
    // crosses 80%, the second 100%, the third is refused. Each alert is raised once, on the
    // events socket and to the user's `budget_threshold` webhook.
    let mut rx = fulcrum_tests::webhook_receiver::Receiver::start().await;
    let r = api
        .post(
            "/api/v1/webhooks",
            json!({"url": format!("{}/hook", rx.url), "events": ["budget_threshold"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    rx.control(json!({"secret": r.data()["secret"]})).await;
    let r = api
        .put(
            "/api/v1/budgets",
            json!({"period": "month", "limit_usd": 0.00115}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let call = || async {
        reqwest::Client::new()
            .post(format!("{}/llm/v1/chat/completions", relay.url()))
            .bearer_auth(&gw)
            .header("x-fulcrum-project", &shop)
            .json(&json!({"model": "stand-in-1", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "SDK-HELLO"}]}))
            .send()
            .await
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(call().await.status(), 200);
    }
    let r = call().await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let refused: Value = r.json().await.unwrap();
    assert_eq!(
        refused["error"]["type"], "insufficient_quota",
        "{refused:#}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your budget")
    );
    let mut alerts = Vec::new();
    loop {
        let e = events.next().await.unwrap();
        if e["type"] == "budget_alert" {
            alerts.push(e["alert"]["level"].as_i64().unwrap());
            if alerts.last() == Some(&100) {
                break;
            }
        }
    }
    assert_eq!(alerts, [80, 100], "each level once");
    for level in [80, 100] {
        let d = rx.next().await;
        assert_eq!(d["type"], "budget_threshold", "{d}");
        assert_eq!(d["verified"], true, "{d}");
        assert_eq!(d["data"]["level"], level, "{d}");
    }
    let budgets = api.get("/api/v1/budgets").await.unwrap();
    assert_eq!(budgets.data()[0]["alert_level"], 100);

    // Over the budget: both SDKs get their own error, nothing reaches the provider.
    let before = s.seen().len();
    let out = sdk(&relay.url(), &gw, "shop", "over-budget").await;
    assert!(out.contains("gateway sdk: 4 passed"), "{out}");
    assert_eq!(s.seen().len(), before, "the stand-in saw no request");

    // Bad tokens, another user's token on this project, an ingest token: nothing spent.
    let out = sdk(&relay.url(), "fck_not_a_token", "shop", "bad-token").await;
    assert!(out.contains("gateway sdk: 2 passed"), "{out}");
    let ingest = token(&api, "ingest", json!({})).await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);
    let theirs = token(&mapi, "api", json!({"scopes": ["run"]})).await;
    let read_only = token(&api, "api", json!({"scopes": ["read"]})).await;
    for (t, want) in [(&ingest, 401), (&theirs, 404), (&read_only, 403)] {
        let r = reqwest::Client::new()
            .post(format!("{}/llm/v1/messages", relay.url()))
            .header("x-api-key", t.as_str())
            .header("x-fulcrum-project", &shop)
            .json(&json!({"model": "stand-in-1", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "SDK-HELLO"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body:#}");
    }
    // Mallory without a provider of her own: told to set one up, nothing sent.
    let r = reqwest::Client::new()
        .post(format!("{}/llm/v1/chat/completions", relay.url()))
        .bearer_auth(&theirs)
        .json(&json!({"model": "stand-in-1", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(s.seen().len(), before);
    // Bad input: not JSON, no model.
    for body in [&b"{not json"[..], &br#"{"messages": []}"#[..]] {
        let r = reqwest::Client::new()
            .post(format!("{}/llm/v1/chat/completions", relay.url()))
            .bearer_auth(&gw)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert_eq!(s.seen().len(), before);
    let metrics = reqwest::get(format!("{}/metrics", relay.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "fulcrum_llm_gateway_requests_total{format=\"openai\",outcome=\"budget_exceeded\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("fulcrum_budget_alerts_total{level=\"80\"} 1"));

    // Mallory's own call: the first AI event her socket gets is hers (events are in order, so
    // none of alice's twelve came before it).
    mapi.post(
        "/api/v1/llm-providers",
        json!({"name": "oa", "kind": "openai", "base_url": s.url,
               "default_model": "stand-in-1", "api_key": KEY}),
    )
    .await
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/llm/v1/chat/completions", relay.url()))
        .bearer_auth(&theirs)
        .json(&json!({"model": "stand-in-1", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "SDK-HELLO"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let alices: Vec<&str> = list.iter().map(|a| a["id"].as_str().unwrap()).collect();
    loop {
        let e = mallory_events.next().await.unwrap();
        assert_ne!(e["type"], "budget_alert", "{e:#}");
        if e["type"] == "ai_activity" {
            assert!(!alices.contains(&e["activity"]["id"].as_str().unwrap()));
            assert!(e["activity"]["project_id"].is_null(), "{e:#}");
            break;
        }
    }
}

/// The reporting tools over `/mcp`, with the official SDK: scoped to the caller.
#[tokio::test]
async fn reports_over_mcp_are_the_callers_own() {
    use fulcrum_tests::mcp_client::{calls, job, python_client};
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    project(&api, "shop").await;
    let ingest = Api::new(&relay.url()).with_token(&token(&api, "ingest", json!({})).await);
    let r = ingest
        .post(
            "/api/v1/ai-activities",
            json!({"activities": [
                {"tool": "cursor", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100,
                 "code_changes": [{"path": "src/lib.rs", "commit": "deadbeef"}]},
                {"tool": "codex", "model": "stand-in-1", "input_tokens": 10}
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(r.data()["created"], 2, "{:?}", r.body);
    let mine = token(&api, "mcp", json!({"scopes": ["read"]})).await;
    let mallory = make_user(&relay, "mallory").await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);
    let theirs = token(&mapi, "mcp", json!({"scopes": ["read"]})).await;
    let tools = vec![
        ("activity_report", json!({"group_by": "tool"})),
        ("cost_by_model", json!({})),
        ("recent_ai_changes", json!({"limit": 5})),
        ("activity_report", json!({"from": "yesterday"})),
    ];
    let out = python_client(job(&relay.url(), &mine, tools.clone())).await;
    let c = calls(&out);
    let result = |i: usize| -> Value {
        assert_eq!(c[i]["is_error"], false, "{}", c[i]);
        c[i]["structured"].clone()
    };
    assert_eq!(result(0)["total"]["activities"], 2);
    assert_eq!(result(1)["rows"][0]["key"]["model"], "gpt-4o");
    let changes = result(2)["activities"].clone();
    assert_eq!(changes.as_array().unwrap().len(), 1);
    assert_eq!(changes[0]["code_changes"][0]["path"], "src/lib.rs");
    assert!(out["tools"]["recent_ai_changes"]["output_schema"].is_object());
    assert_eq!(
        c[3]["is_error"], true,
        "a bad day is a tool error: {}",
        c[3]
    );
    assert_eq!(out["tools"]["cost_by_model"]["read_only"], true);
    let out = python_client(job(&relay.url(), &theirs, tools)).await;
    let c = calls(&out);
    assert_eq!(c[0]["structured"]["total"]["activities"], 0);
    assert_eq!(
        c[2]["structured"]["activities"].as_array().unwrap().len(),
        0
    );
}

/// The official OpenTelemetry SDK exports GenAI spans (protobuf, and JSON from its own encoder)
/// and token metrics; they become activities and usage counters of the exporting user only.
#[tokio::test]
async fn otlp_from_the_official_sdk_becomes_activities() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let shop = project(&api, "shop").await;
    let ingest = token(&api, "ingest", json!({})).await;
    let venv = std::env::var("FULCRUM_LLM_VENV")
        .expect("FULCRUM_LLM_VENV is set by scripts/setup.sh (the OpenTelemetry SDK)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(format!("{venv}/bin/python"))
        .arg(root.join("llm/otlp_sdk.py"))
        .arg(relay.url())
        .arg(&ingest)
        .arg("shop")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("otlp sdk: 8 passed"), "{stdout}");

    let list = api
        .get(&format!("/api/v1/ai-activities?project={shop}"))
        .await
        .unwrap();
    let list = list.data().as_array().unwrap().clone();
    assert_eq!(
        list.len(),
        4,
        "two spans, the retry changed nothing, two JSON spans: {list:#?}"
    );
    assert!(
        list.iter()
            .all(|a| a["source"] == "otlp" && a["tool"] == "my-agent")
    );
    let chat = list
        .iter()
        .find(|a| a["input_tokens"] == 1200)
        .expect("the current-names span");
    assert_eq!(chat["output_tokens"], 300);
    assert_eq!(chat["model"], "gpt-4o");
    assert_eq!(chat["provider"], "openai");
    assert_eq!(chat["category"], "refactor");
    assert_eq!(chat["conversation_id"], "conv-1");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(
        chat["cost_micros"],
        1200 * 25 / 10 + 300 * 10,
        "priced from the table"
    );
    let old = list.iter().find(|a| a["input_tokens"] == 70).unwrap();
    assert_eq!(
        (old["output_tokens"].as_i64(), old["model"].as_str()),
        (Some(20), Some("stand-in-1"))
    );
    assert!(chat["latency_ms"].is_number());

    let usage = api.get("/api/v1/ai-activities/usage").await.unwrap();
    let usage = usage.data().as_array().unwrap().clone();
    let sum = |kind: &str| {
        usage
            .iter()
            .filter(|u| u["metric"] == "gen_ai.client.token.usage" && u["kind"] == kind)
            .map(|u| u["value"].as_f64().unwrap())
            .sum::<f64>()
    };
    assert_eq!((sum("input"), sum("output")), (150.0, 40.0), "{usage:#?}");
    assert!(
        usage
            .iter()
            .all(|u| u["tool"] == "my-agent" && u["model"] == "gpt-4o")
    );

    // Another user sees none of it; their ingest token cannot write into alice's project.
    let mallory = make_user(&relay, "mallory").await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);
    assert_eq!(
        mapi.get("/api/v1/ai-activities")
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        mapi.get("/api/v1/ai-activities/usage")
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let theirs = token(&mapi, "ingest", json!({})).await;
    let span = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
    "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "x",
    "attributes": [
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "fulcrum.project", "value": {"stringValue": shop}}
    ]}]}]}]});
    let r = reqwest::Client::new()
        .post(format!("{}/otlp/v1/traces", relay.url()))
        .bearer_auth(&theirs)
        .json(&span)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], 1, "{body:#}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    // An API token, or none, is not an ingest token.
    for auth in [Some(alice.access.as_str()), None] {
        let mut req = reqwest::Client::new()
            .post(format!("{}/otlp/v1/traces", relay.url()))
            .json(&span);
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    let list = api.get("/api/v1/ai-activities").await.unwrap();
    assert_eq!(list.data().as_array().unwrap().len(), 4);
}

/// A commit in a project's workspace is linked to the activity its trailer names and to the
/// user's recent activities in the project; the project page lists it as AI-assisted; another
/// user sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_linked_to_the_activities_that_made_them() {
    let mut r = fulcrum_tests::rig(Backend::Sqlite, opts()).await;
    let shop = project(&r.api, "shop").await;
    r.api
        .put(
            &format!("/api/v1/projects/{shop}/workspaces/{}", r.workspace),
            json!({}),
        )
        .await
        .unwrap();
    let ingest = Api::new(&r.relay.url()).with_token(&token(&r.api, "ingest", json!({})).await);
    let batch = ingest
        .post(
            "/api/v1/ai-activities",
            json!({"activities": [
                {"id": "cur-9", "project_id": shop, "tool": "cursor", "model": "gpt-4o",
                 "code_changes": [{"path": "src/cart.rs"}],
                 "timestamp": (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339()},
                {"id": "recent", "project_id": shop, "tool": "claude-code"},
                {"id": "elsewhere", "tool": "codex"}
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(batch.data()["created"], 3, "{:?}", batch.body);
    // The agent reports HEAD; a new commit moves it.
    r.events
        .workspace_where(|w| {
            w["repos"]
                .as_array()
                .is_some_and(|repos| repos.iter().any(|x| x["head_sha"].is_string()))
        })
        .await
        .unwrap();
    r.repo.write("src/cart.rs", "fn cart() {}\n");
    fulcrum_tests::git(r.repo.path(), &["add", "."]);
    fulcrum_tests::git(
        r.repo.path(),
        &["commit", "-q", "-m", "Add the cart\n\nAI-Activity: cur-9"],
    );
    let sha = fulcrum_tests::git(r.repo.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    loop {
        let e = r.events.next().await.unwrap();
        if e["type"] == "ai_commit" {
            assert_eq!(e["commit"]["sha"], sha);
            break;
        }
    }
    let commits = r
        .api
        .get(&format!("/api/v1/projects/{shop}/ai-commits"))
        .await
        .unwrap();
    let commits = commits.data().as_array().unwrap().clone();
    assert_eq!(commits.len(), 1, "{commits:#?}");
    assert_eq!(commits[0]["sha"], sha);
    assert_eq!(commits[0]["summary"], "Add the cart");
    let mut reasons: Vec<(String, String)> = commits[0]["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["tool"].as_str().unwrap().to_owned(),
                a["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("claude-code".to_owned(), "window".to_owned()),
            ("cursor".to_owned(), "trailer".to_owned())
        ],
        "the old activity by its trailer, the recent one by time; none outside the project"
    );
    let list = r
        .api
        .get(&format!("/api/v1/ai-activities?project={shop}&tool=cursor"))
        .await
        .unwrap();
    assert_eq!(
        list.data()[0]["code_changes"],
        json!([{"path": "src/cart.rs", "commit": sha}])
    );
    let mallory = make_user(&r.relay, "mallory").await;
    let mapi = Api::new(&r.relay.url()).with_token(&mallory.access);
    assert_eq!(
        mapi.get(&format!("/api/v1/projects/{shop}/ai-commits"))
            .await
            .unwrap()
            .status,
        404
    );
}
