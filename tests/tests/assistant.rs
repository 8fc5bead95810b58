//! The project manager assistant over its REST door: a question answered with two tool calls
//! (streamed as server-sent events), a tool that changes something waiting for confirmation,
//! its limits (model calls per turn, budgets), every call recorded as an activity, and no other
//! user or token reaching a conversation.

use fulcrum_tests::{
    Api, Backend, RelayOptions, id,
    llm_standin::{Answer, LlmStandIn},
    make_user, rig,
};
use serde_json::{Value, json};

const KEY: &str = "sk-standin-0123456789abcdef";

fn opts() -> RelayOptions {
    let mut o = RelayOptions {
        master_keys: Some(fulcrum_relay::secrets::KeyRing::generate_entry("k1")),
        ..Default::default()
    };
    o.llm.prices =
        toml::from_str(r#""stand-in-*" = { input = 2.0, output = 8.0, cached_input = 0.5 }"#)
            .unwrap();
    o
}

/// A turn's events, read to the end of the stream: `(event, data)`.
async fn turn(url: &str, token: &str, body: Value) -> (u16, Vec<(String, Value)>) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    if status != 200 {
        return (status, vec![("body".into(), json!(text))]);
    }
    let mut events = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        events.push((name, serde_json::from_str(&data).unwrap()));
    }
    (status, events)
}

fn named<'a>(events: &'a [(String, Value)], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_answers_with_tools_and_asks_before_acting() {
    let r = rig(Backend::Sqlite, opts()).await;
    let s = LlmStandIn::start(KEY).await;
    // Rules are tried in order; a rule's answers are given one after the other.
    s.on(
        "RUN-Q",
        vec![
            Answer::Tools(vec![(
                "run_task".into(),
                json!({"workspace": r.workspace, "command": "echo assistant-ran"}),
            )]),
            Answer::text("RUN-STARTED-ANSWER: the tests are running."),
        ],
    );
    s.on(
        "LOOP-Q",
        vec![Answer::Tools(vec![("list_projects".into(), json!({}))])],
    );
    s.on(
        "FAILING-Q",
        vec![
            Answer::Tools(vec![
                ("list_projects".into(), json!({})),
                ("list_tasks".into(), json!({"state": "failed"})),
            ]),
            Answer::text("FAILING-TASK-ANSWER: none of your projects has failing tasks."),
        ],
    );
    let project = r
        .api
        .post(
            "/api/v1/projects",
            json!({"name": "shop", "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(project.data());
    r.api
        .put(
            &format!("/api/v1/projects/{project}/workspaces/{}", r.workspace),
            json!({}),
        )
        .await
        .unwrap();
    let p = r
        .api
        .post(
            "/api/v1/llm-providers",
            json!({"name": "stand-in", "kind": "openai", "base_url": s.url,
                   "default_model": "stand-in-1", "api_key": KEY}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 201, "{:?}", p.body);
    let base = format!("{}/api/v1/assistant/conversations", r.relay.url());
    let token = r.user.access.clone();
    let c = r
        .api
        .post("/api/v1/assistant/conversations", json!({}))
        .await
        .unwrap();
    assert_eq!(c.status, 201, "{:?}", c.body);
    let conv = id(c.data());

    // A question that needs two tool calls: both run (they only read), then the answer.
    let (status, events) = turn(
        &format!("{base}/{conv}/messages"),
        &token,
        json!({"text": "FAILING-Q Which of my projects has failing tasks?"}),
    )
    .await;
    assert_eq!(status, 200, "{events:?}");
    let calls: Vec<&str> = named(&events, "tool_call")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["list_projects", "list_tasks"]);
    let results = named(&events, "tool_result");
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    assert!(results[0]["content"].as_str().unwrap().contains("shop"));
    let text: String = named(&events, "text")
        .iter()
        .map(|t| t["delta"].as_str().unwrap())
        .collect();
    assert!(text.contains("FAILING-TASK-ANSWER"), "{text}");
    assert_eq!(named(&events, "done")[0]["state"], "answered");
    // The model saw the tools' results.
    let second = &s.seen()[1].body;
    assert!(second.to_string().contains("tool_call_id"), "{second}");
    assert!(second["tools"].as_array().unwrap().len() > 5);

    // A tool that changes something waits for confirmation.
    let (_, events) = turn(
        &format!("{base}/{conv}/messages"),
        &token,
        json!({"text": "RUN-Q Run the tests of shop"}),
    )
    .await;
    let confirm = named(&events, "confirm");
    assert_eq!(confirm.len(), 1, "{events:?}");
    assert_eq!(confirm[0]["name"], "run_task");
    assert_eq!(named(&events, "done")[0]["state"], "awaiting_confirmation");
    assert!(named(&events, "tool_result").is_empty(), "nothing ran");
    let detail = r
        .api
        .get(&format!("/api/v1/assistant/conversations/{conv}"))
        .await
        .unwrap();
    assert_eq!(detail.data()["pending"]["name"], "run_task");
    let call_id = confirm[0]["id"].as_str().unwrap().to_owned();
    // Nothing else may be asked meanwhile.
    let (status, _) = turn(
        &format!("{base}/{conv}/messages"),
        &token,
        json!({"text": "something else"}),
    )
    .await;
    assert_eq!(status, 409);
    let tasks_before = r.api.get("/api/v1/tasks").await.unwrap();
    let tasks_before = tasks_before.data().as_array().unwrap().len();
    let (_, events) = turn(
        &format!("{base}/{conv}/confirm"),
        &token,
        json!({"call_id": call_id, "approve": true}),
    )
    .await;
    let results = named(&events, "tool_result");
    assert_eq!(results[0]["name"], "run_task", "{events:?}");
    assert_eq!(results[0]["ok"], true, "{events:?}");
    assert_eq!(named(&events, "done")[0]["state"], "answered");
    let text: String = named(&events, "text")
        .iter()
        .map(|t| t["delta"].as_str().unwrap())
        .collect();
    assert!(text.contains("RUN-STARTED-ANSWER"));
    let tasks = r.api.get("/api/v1/tasks").await.unwrap();
    assert_eq!(tasks.data().as_array().unwrap().len(), tasks_before + 1);

    // The loop is capped.
    let c2 = r
        .api
        .post("/api/v1/assistant/conversations", json!({"title": "loop"}))
        .await
        .unwrap();
    let conv2 = id(c2.data());
    let before = s.seen().len();
    let (_, events) = turn(
        &format!("{base}/{conv2}/messages"),
        &token,
        json!({"text": "LOOP-Q keep going"}),
    )
    .await;
    let done = named(&events, "done");
    assert_eq!(done[0]["state"], "stopped");
    assert!(
        done[0]["reason"]
            .as_str()
            .unwrap()
            .contains("12 model calls")
    );
    assert_eq!(s.seen().len() - before, 12);

    // Every model call is an activity of the assistant.
    let acts = r
        .api
        .get("/api/v1/ai-activities?tool=fulcrum-assistant&limit=100")
        .await
        .unwrap();
    let acts = acts.data().as_array().unwrap().clone();
    assert_eq!(acts.len(), 16, "2 + 2 + 12 calls");
    assert!(acts.iter().all(|a| a["source"] == "assistant"));

    // A budget stops a turn before the call.
    r.api
        .put(
            "/api/v1/budgets",
            json!({"period": "month", "limit_usd": 0.0}),
        )
        .await
        .unwrap();
    let before = s.seen().len();
    let (_, events) = turn(
        &format!("{base}/{conv}/messages"),
        &token,
        json!({"text": "FAILING-Q again"}),
    )
    .await;
    let done = named(&events, "done");
    assert_eq!(done[0]["state"], "stopped");
    assert!(done[0]["reason"].as_str().unwrap().contains("budget"));
    assert_eq!(s.seen().len(), before, "nothing was sent");

    // Another user, and a read-only token, reach nothing.
    let mallory = make_user(&r.relay, "mallory").await;
    let mapi = Api::new(&r.relay.url()).with_token(&mallory.access);
    assert_eq!(
        mapi.get("/api/v1/assistant/conversations")
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        mapi.get(&format!("/api/v1/assistant/conversations/{conv}"))
            .await
            .unwrap()
            .status,
        404
    );
    let (status, _) = turn(
        &format!("{base}/{conv}/messages"),
        &mallory.access,
        json!({"text": "FAILING-Q"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = turn(
        &format!("{base}/{conv}/confirm"),
        &mallory.access,
        json!({"call_id": "x", "approve": true}),
    )
    .await;
    assert_eq!(status, 404);
    let r2 = mapi
        .delete(&format!("/api/v1/assistant/conversations/{conv}"))
        .await
        .unwrap();
    assert_eq!(r2.status, 404);
    let ro = r
        .api
        .post(
            "/api/v1/tokens",
            json!({"name": "ro", "kind": "api", "scopes": ["read"]}),
        )
        .await
        .unwrap();
    let ro = ro.data()["token"].as_str().unwrap().to_owned();
    let (status, _) = turn(
        &format!("{base}/{conv}/messages"),
        &ro,
        json!({"text": "FAILING-Q"}),
    )
    .await;
    assert_eq!(status, 403);
    // Bad input.
    let (status, _) = turn(
        &format!("{base}/{conv}/messages"),
        &token,
        json!({"text": ""}),
    )
    .await;
    assert_eq!(status, 422);
}

/// The assistant as an A2A agent, with the official `a2a-sdk` client: the Agent Card, a message
/// answered as a completed task, the same streamed, the task read back, a wrong token refused;
/// and a tool call that needs confirmation leaves the task waiting for input until a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_is_an_a2a_agent_for_the_official_sdk() {
    let r = rig(Backend::Sqlite, opts()).await;
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "A2A-RUN",
        vec![
            Answer::Tools(vec![(
                "run_task".into(),
                json!({"workspace": r.workspace, "command": "echo a2a"}),
            )]),
            Answer::text("A2A-RAN: QA started."),
        ],
    );
    s.on(
        "list my projects",
        vec![
            Answer::Tools(vec![("list_projects".into(), json!({}))]),
            Answer::text("A2A-ANSWER: you have one project, shop."),
        ],
    );
    r.api
        .post(
            "/api/v1/projects",
            json!({"name": "shop", "description": "d"}),
        )
        .await
        .unwrap();
    r.api
        .post(
            "/api/v1/llm-providers",
            json!({"name": "stand-in", "kind": "openai", "base_url": s.url,
                   "default_model": "stand-in-1", "api_key": KEY}),
        )
        .await
        .unwrap();
    let t = r
        .api
        .post(
            "/api/v1/tokens",
            json!({"name": "a2a", "kind": "api", "scopes": ["read", "run"]}),
        )
        .await
        .unwrap();
    let token = t.data()["token"].as_str().unwrap().to_owned();
    let venv = std::env::var("FULCRUM_LLM_VENV")
        .expect("FULCRUM_LLM_VENV is set by scripts/setup.sh (the a2a-sdk)");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(format!("{venv}/bin/python"))
        .arg(root.join("llm/a2a_client.py"))
        .arg(r.relay.url())
        .arg(&token)
        .arg("list my projects")
        .arg("A2A-ANSWER")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("a2a sdk: "), "{stdout}");

    // Over plain JSON-RPC: a tool that changes something leaves the task waiting for input.
    let rpc = |body: Value, tok: String| {
        let url = format!("{}/a2a", r.relay.url());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(tok)
                .header("A2A-Version", "1.0")
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let send = json!({"jsonrpc": "2.0", "id": "1", "method": "SendMessage", "params": {
        "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "A2A-RUN run QA on shop"}]},
        "configuration": {}}});
    let v = rpc(send, token.clone()).await;
    let task = &v["result"]["task"];
    assert_eq!(
        task["status"]["state"], "TASK_STATE_INPUT_REQUIRED",
        "{v:#}"
    );
    assert_eq!(task["metadata"]["waitingTool"], "run_task");
    let (task_id, context) = (
        task["id"].as_str().unwrap().to_owned(),
        task["contextId"].as_str().unwrap().to_owned(),
    );
    // Another user's token cannot see or answer it.
    let mallory = make_user(&r.relay, "mallory").await;
    let mapi = Api::new(&r.relay.url()).with_token(&mallory.access);
    let mt = mapi
        .post(
            "/api/v1/tokens",
            json!({"name": "a2a", "kind": "api", "scopes": ["read", "run"]}),
        )
        .await
        .unwrap();
    let mt = mt.data()["token"].as_str().unwrap().to_owned();
    let v = rpc(
        json!({"jsonrpc": "2.0", "id": "2", "method": "GetTask", "params": {"id": task_id}}),
        mt.clone(),
    )
    .await;
    assert_eq!(v["error"]["code"], -32001, "{v:#}");
    let reply = json!({"jsonrpc": "2.0", "id": "3", "method": "SendMessage", "params": {
        "message": {"messageId": "m2", "role": "ROLE_USER", "taskId": task_id, "contextId": context,
                    "parts": [{"text": "yes"}]}, "configuration": {}}});
    let v = rpc(reply.clone(), mt).await;
    assert_eq!(v["error"]["code"], -32001, "{v:#}");
    let tasks_before = r.api.get("/api/v1/tasks").await.unwrap();
    let tasks_before = tasks_before.data().as_array().unwrap().len();
    let v = rpc(reply, token.clone()).await;
    assert_eq!(
        v["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{v:#}"
    );
    assert!(
        v["result"]["task"]["artifacts"][0]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("A2A-RAN")
    );
    let tasks = r.api.get("/api/v1/tasks").await.unwrap();
    assert_eq!(tasks.data().as_array().unwrap().len(), tasks_before + 1);
    // An unknown method is refused clearly.
    let v = rpc(
        json!({"jsonrpc": "2.0", "id": "4", "method": "message/send", "params": {}}),
        token.clone(),
    )
    .await;
    assert_eq!(v["error"]["code"], -32601);
}

/// A project's prompt library: versions kept, members read, maintainers write; served to MCP
/// clients as prompts (official SDK) and as the get_prompt tool; no other user sees any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_are_versioned_and_served_over_mcp() {
    use fulcrum_tests::mcp_client::{calls, job, python_client};
    let db = fulcrum_tests::TestDb::new(Backend::Sqlite).await;
    let relay = fulcrum_tests::start_relay(&db, &opts()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let p = api
        .post(
            "/api/v1/projects",
            json!({"name": "shop", "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(p.data());
    let base = format!("/api/v1/projects/{project}/prompts");
    let v1 = api
        .post(
            &base,
            json!({"name": "review", "description": "Code review", "body": "Review {{ file }} for bugs."}),
        )
        .await
        .unwrap();
    assert_eq!(v1.status, 201, "{:?}", v1.body);
    assert_eq!(v1.data()["version"], 1);
    assert_eq!(v1.data()["arguments"], json!(["file"]));
    let v2 = api
        .post(
            &base,
            json!({"name": "review", "body": "Review {{ file }} for {{ concern }}."}),
        )
        .await
        .unwrap();
    assert_eq!(v2.data()["version"], 2);
    let got = api.get(&format!("{base}/review?version=1")).await.unwrap();
    assert_eq!(got.data()["body"], "Review {{ file }} for bugs.");
    assert_eq!(got.data()["versions"], json!([2, 1]));
    for bad in [
        json!({"name": "Bad Name", "body": "x"}),
        json!({"name": "broken", "body": "{{ unclosed"}),
        json!({"name": "empty", "body": ""}),
    ] {
        let r = api.post(&base, bad).await.unwrap();
        assert_eq!(r.status, 422, "{:?}", r.body);
    }
    assert_eq!(
        api.get(&base)
            .await
            .unwrap()
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let token = api
        .post(
            "/api/v1/tokens",
            json!({"name": "mcp", "kind": "mcp", "scopes": ["read"]}),
        )
        .await
        .unwrap();
    let token = token.data()["token"].as_str().unwrap().to_owned();
    let mut j = job(
        &relay.url(),
        &token,
        vec![(
            "get_prompt",
            json!({"project": "shop", "name": "review", "arguments": {"file": "a.rs", "concern": "races"}}),
        )],
    );
    j["prompts"] = json!([
        {"name": "shop/review", "args": {"file": "main.rs", "concern": "leaks"}},
        {"name": "shop/review", "args": {"file": "main.rs"}},
    ]);
    let out = python_client(j).await;
    assert_eq!(out["prompts"]["shop/review"], json!(["concern", "file"]));
    assert_eq!(out["prompt_texts"][0], "Review main.rs for leaks.");
    assert!(
        out["prompt_texts"][1]["exception"]
            .as_str()
            .unwrap()
            .contains("concern"),
        "{out:#}"
    );
    assert_eq!(
        calls(&out)[0]["structured"]["text"],
        "Review a.rs for races."
    );

    // Another user sees none of it.
    let mallory = make_user(&relay, "mallory").await;
    let mapi = Api::new(&relay.url()).with_token(&mallory.access);
    assert_eq!(mapi.get(&base).await.unwrap().status, 404);
    assert_eq!(
        mapi.post(&base, json!({"name": "x", "body": "y"}))
            .await
            .unwrap()
            .status,
        404
    );
    let mt = mapi
        .post(
            "/api/v1/tokens",
            json!({"name": "mcp", "kind": "mcp", "scopes": ["read"]}),
        )
        .await
        .unwrap();
    let mt = mt.data()["token"].as_str().unwrap().to_owned();
    let mut j = job(
        &relay.url(),
        &mt,
        vec![("get_prompt", json!({"project": project, "name": "review"}))],
    );
    j["prompts"] = json!([{"name": "shop/review", "args": {"file": "a", "concern": "b"}}]);
    let out = python_client(j).await;
    assert_eq!(out["prompts"], json!({}));
    assert!(out["prompt_texts"][0]["exception"].is_string());
    assert_eq!(calls(&out)[0]["is_error"], true);
    assert_eq!(
        api.delete(&format!("{base}/review")).await.unwrap().status,
        204
    );
}
