//! AI generation pipelines, end to end against a real relay and a stand-in LLM provider that
//! speaks the published OpenAI and Anthropic formats (`fulcrum_tests::llm_standin`): the LLM
//! client's handling of provider faults, providers and their keys, budgets enforced before a
//! call, the engine's DAG (parallel stages, approval gates, validation retries), artifacts,
//! call records and totals, and who may see and touch a run.
//!
//! The pipelines' behaviour comes from their definitions and the stand-in's answers only.

use std::time::Instant;

use fulcrum_protocol::kinds::ProviderKind;
use fulcrum_relay::llm::{self, ChatRequest, Endpoint, LlmError, Message};
use fulcrum_tests::{
    Api, Backend, Events, RelayOptions, TestDb, both_backends, id,
    llm_standin::{Answer, LlmStandIn},
    make_user, start_relay,
};
use serde_json::{Value, json};

const KEY: &str = "sk-standin-0123456789abcdef";

fn client() -> llm::Client {
    llm::Client::new(llm::Limits {
        backoff: std::time::Duration::from_millis(5),
        max_response_bytes: 64 << 10,
        ..Default::default()
    })
}

fn endpoint(s: &LlmStandIn, kind: ProviderKind) -> Endpoint {
    Endpoint {
        kind,
        base_url: s.url.clone(),
        key: Some(llm::ApiKey::new(KEY)),
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        model: "stand-in-1".into(),
        system: Some("Be brief.".into()),
        messages: vec![Message::user(text)],
        max_tokens: 256,
        temperature: None,
        tools: Vec::new(),
        json_schema: None,
    }
}

#[tokio::test]
async fn the_client_streams_both_formats_and_reads_usage() {
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "hello",
        vec![Answer::Text {
            text: "Hello there, this is a longer answer in pieces.".into(),
            input: 42,
            output: 12,
            cached: 2,
        }],
    );
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let mut streamed = String::new();
        let mut pieces = 0;
        let r = client()
            .chat(&endpoint(&s, kind), &ask("hello"), &mut |t: &str| {
                streamed.push_str(t);
                pieces += 1;
            })
            .await
            .unwrap();
        assert_eq!(r.text, "Hello there, this is a longer answer in pieces.");
        assert_eq!(streamed, r.text, "{kind}: the text streamed is the answer");
        assert!(pieces > 1, "{kind}: the answer came in pieces");
        assert_eq!(
            (
                r.usage.input_tokens,
                r.usage.output_tokens,
                r.usage.cached_tokens
            ),
            (42, 12, 2),
            "{kind}"
        );
        assert!(!r.usage.estimated);
        assert!(r.finish_reason.is_some() && r.model.is_some() && r.id.is_some());
        assert!(
            r.ttft_ms.is_some() && r.raw.contains("Hello"),
            "{kind}: the raw answer is kept"
        );
    }
    let seen = s.seen();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].key.as_deref(), Some(KEY));
    assert_eq!(seen[0].body["messages"][0]["role"], "system");
    assert_eq!(seen[1].path, "/v1/messages");
    assert_eq!(seen[1].body["system"], "Be brief.");
}

#[tokio::test]
async fn provider_faults_end_in_a_retry_or_a_clear_failure() {
    let s = LlmStandIn::start(KEY).await;
    let e = endpoint(&s, ProviderKind::Openai);
    let c = client();
    // 429 with Retry-After, then an answer: waited about as long as asked, then succeeded.
    s.on(
        "rate",
        vec![Answer::Status(429, Some(1)), Answer::text("after the wait")],
    );
    let started = Instant::now();
    let r = c.chat(&e, &ask("rate"), &mut |_| {}).await.unwrap();
    assert_eq!(r.text, "after the wait");
    assert_eq!(r.attempts, 2);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After honoured"
    );
    // Two 500s, then an answer.
    s.on(
        "flaky",
        vec![
            Answer::Status(500, None),
            Answer::Status(503, None),
            Answer::text("ok"),
        ],
    );
    let r = c.chat(&e, &ask("flaky"), &mut |_| {}).await.unwrap();
    assert_eq!((r.text.as_str(), r.attempts), ("ok", 3));
    // 401: at once, one request.
    s.on("denied", vec![Answer::Status(401, None)]);
    let err = c.chat(&e, &ask("denied"), &mut |_| {}).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(s.count("denied"), 1, "a refused key is not retried");
    // A wrong key is refused by the provider the same way.
    let wrong = Endpoint {
        key: Some(llm::ApiKey::new("sk-wrong-key-000000000")),
        ..e.clone()
    };
    let err = c
        .chat(&wrong, &ask("anything"), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "provider_unauthorized");
    // A stream cut in the middle, every time: retried up to the cap, then a clear failure.
    s.on(
        "cut",
        vec![Answer::Cut("this answer will not finish".into())],
    );
    let err = c.chat(&e, &ask("cut"), &mut |_| {}).await.unwrap_err();
    assert_eq!(err.code(), "provider_unreachable", "{err}");
    assert_eq!(s.count("cut"), 4, "the default four attempts");
    // Garbage in the stream.
    s.on("garbage", vec![Answer::Garbage, Answer::text("clean")]);
    let r = c.chat(&e, &ask("garbage"), &mut |_| {}).await.unwrap();
    assert_eq!(r.text, "clean");
    // An answer over the size cap: a clear failure, not retried.
    s.on("huge", vec![Answer::Huge(200_000)]);
    let err = c.chat(&e, &ask("huge"), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, LlmError::TooLarge(_)), "{err:?}");
    assert_eq!(s.count("huge"), 1);
    // A near-compatible server: no usage, no [DONE]; the usage is estimated and says so.
    s.on("sloppy", vec![Answer::Sloppy("twelve chars".into())]);
    let r = c.chat(&e, &ask("sloppy"), &mut |_| {}).await.unwrap();
    assert_eq!(r.text, "twelve chars");
    assert!(r.usage.estimated && r.usage.output_tokens == 3 && r.usage.input_tokens > 0);
}

/// A user with a project and a provider pointing at the stand-in.
struct Setup {
    api: Api,
    project: String,
    provider: String,
    events: Events,
}

async fn setup(relay: &fulcrum_relay::server::Relay, s: &LlmStandIn, name: &str) -> Setup {
    let user = make_user(relay, name).await;
    let api = Api::new(&relay.url()).with_token(&user.access);
    let events = Events::connect(&relay.url(), &user.access).await.unwrap();
    let p = api
        .post(
            "/api/v1/projects",
            json!({"name": "Todo", "description": "A to-do list service"}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 201, "{:?}", p.body);
    let provider = add_provider(&api, s).await;
    Setup {
        project: id(p.data()),
        provider,
        api,
        events,
    }
}

/// Sets up the stand-in as the caller's provider; its id.
async fn add_provider(api: &Api, s: &LlmStandIn) -> String {
    let r = api
        .post(
            "/api/v1/llm-providers",
            json!({"name": "stand-in", "kind": "openai", "base_url": s.url,
                   "default_model": "stand-in-1", "api_key": KEY}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    id(r.data())
}

/// A project of the rig's user with the rig's workspace in it, and the stand-in as the user's
/// provider; the project's id.
async fn rig_project(r: &fulcrum_tests::Rig, s: &LlmStandIn, name: &str) -> String {
    let project = r
        .api
        .post(
            "/api/v1/projects",
            json!({"name": name, "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(project.data());
    let attach = r
        .api
        .put(
            &format!("/api/v1/projects/{project}/workspaces/{}", r.workspace),
            json!({}),
        )
        .await
        .unwrap();
    assert!(attach.status < 300, "{:?}", attach.body);
    add_provider(&r.api, s).await;
    project
}

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

/// Three LLM stages, two of them in parallel, behind an approval gate; JSON with a schema.
const DOCS: &str = r#"
name = "docs"

[[stages]]
name = "outline"
kind = "llm"
system = "Answer with JSON only."
prompt = "OUTLINE for {{ inputs.name }}: {{ inputs.description }}"
output = "json"
schema = { type = "object", required = ["sections"], properties = { sections = { type = "array", items = { type = "string" } } } }
artifacts = [{ path = "outline.json" }, { path = "outline.md", template = "{% for s in output.sections %}- {{ s }}\n{% endfor %}" }]

[[stages]]
name = "review"
kind = "approval"
needs = ["outline"]

[[stages]]
name = "intro"
kind = "llm"
needs = ["review"]
prompt = "INTRO from {{ stages.outline.output | tojson }}{% if feedback %} FEEDBACK {{ feedback }}{% endif %}"
artifacts = [{ path = "docs/intro.md" }]

[[stages]]
name = "usage"
kind = "llm"
needs = ["review"]
prompt = "USAGE of {{ artifacts['outline.md'] }}"
artifacts = [{ path = "docs/usage.md" }]
"#;

both_backends!(a_pipeline_runs_its_dag_waits_at_its_gate_and_keeps_artifacts);

async fn a_pipeline_runs_its_dag_waits_at_its_gate_and_keeps_artifacts(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    // The first outline is invalid (no sections): the validator's error goes back, capped.
    s.on(
        "OUTLINE",
        vec![
            Answer::text("{\"title\": \"no sections\"}"),
            Answer::text("```json\n{\"sections\": [\"Install\", \"Use\"]}\n```"),
        ],
    );
    // The two parallel stages hold until both have started: they overlap in time.
    let (release, gate) = tokio::sync::watch::channel(false);
    s.on(
        "INTRO",
        vec![Answer::Hold(
            "Fulcrum keeps lists of things to do.".into(),
            gate.clone(),
        )],
    );
    s.on(
        "USAGE",
        vec![Answer::Hold("Run it, then add items.".into(), gate)],
    );
    let mut u = setup(&relay, &s, "alice").await;
    let r = u
        .api
        .post(
            &format!("/api/v1/projects/{}/pipeline-runs", u.project),
            json!({"definition": DOCS}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let run = id(r.data());
    assert_eq!(r.data()["state"], "queued");
    assert_eq!(r.data()["provider_id"], u.provider.as_str());
    assert_eq!(r.data()["stages"].as_array().unwrap().len(), 4);
    assert_eq!(r.data()["definition_hash"].as_str().unwrap().len(), 64);

    let paused = u
        .events
        .run_where(&run, |r| r["state"] == "paused")
        .await
        .unwrap();
    assert_eq!(paused["reason"], "approval_required");
    assert_eq!(paused["stages"][0]["state"], "succeeded");
    assert_eq!(paused["stages"][1]["state"], "waiting");
    assert_eq!(paused["stages"][2]["state"], "pending");
    assert_eq!(s.count("OUTLINE"), 2, "one answer refused, one accepted");
    let second = &s.seen()[1].body;
    assert!(
        second.to_string().contains("does not follow the schema"),
        "the validator's error went back: {second}"
    );
    assert_eq!(
        second["response_format"]["type"], "json_schema",
        "structured output was asked for"
    );

    let approved = u
        .api
        .post(
            &format!("/api/v1/pipeline-runs/{run}/stages/review/approve"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    // Both parallel stages are asked before either answers.
    s.wait_requests(4).await;
    release.send(true).unwrap();
    let done = u
        .events
        .run_where(&run, |r| {
            r["state"] == "succeeded" || r["state"] == "failed"
        })
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(s.count("INTRO"), 1);
    assert_eq!(s.count("USAGE"), 1);
    let intro = s
        .seen()
        .into_iter()
        .find(|r| r.body.to_string().contains("INTRO"))
        .unwrap();
    assert!(
        intro.body.to_string().contains("Install"),
        "a later prompt reads an earlier output"
    );

    // Tokens and cost equal the stand-in's usage at the configured prices.
    let (input, output, cached) = s.usage();
    assert_eq!(done["usage"]["calls"], 4);
    assert_eq!(done["usage"]["input_tokens"], input);
    assert_eq!(done["usage"]["output_tokens"], output);
    let cost = (input - cached) as f64 * 2.0 + cached as f64 * 0.5 + output as f64 * 8.0;
    let got = done["usage"]["cost_usd"].as_f64().unwrap() * 1e6;
    assert!((got - cost).abs() < 1.0, "cost {got} µ$ = {cost} µ$");

    let calls = u
        .api
        .get(&format!("/api/v1/pipeline-runs/{run}/calls"))
        .await
        .unwrap();
    let calls = calls.data().as_array().unwrap().clone();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|c| c["state"] == "succeeded"
        && c["provider"] == "openai"
        && c["request_model"] == "stand-in-1"
        && c["response_model"] == "stand-in-1"
        && c["response_id"] == "chatcmpl-standin"
        && c["finish_reasons"] == json!(["stop"])));

    let list = u
        .api
        .get(&format!("/api/v1/pipeline-runs/{run}/artifacts"))
        .await
        .unwrap();
    let paths: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "docs/intro.md",
            "docs/usage.md",
            "outline.json",
            "outline.md"
        ]
    );
    let md = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/pipeline-runs/{run}/artifacts/outline.md",
            relay.url()
        ))
        .bearer_auth(user_token(&u))
        .send()
        .await
        .unwrap();
    assert_eq!(md.status(), 200);
    assert!(
        md.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(md.text().await.unwrap(), "- Install\n- Use\n");
    let zip = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/pipeline-runs/{run}/artifacts.zip",
            relay.url()
        ))
        .bearer_auth(user_token(&u))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let bytes = zip.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"));
    let name = format!("run-{}/docs/intro.md", done["handle"].as_str().unwrap());
    assert!(
        bytes.windows(name.len()).any(|w| w == name.as_bytes()),
        "the zip holds the artifacts under the run's folder"
    );
}

fn user_token(s: &Setup) -> String {
    s.api.token().unwrap().to_owned()
}

both_backends!(a_budget_stops_a_run_before_the_call_and_raising_it_resumes);

async fn a_budget_stops_a_run_before_the_call_and_raising_it_resumes(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    s.on("OUTLINE", vec![Answer::text("{\"sections\": [\"A\"]}")]);
    let mut u = setup(&relay, &s, "bob").await;
    // The project may spend $0.001 a month; a call may cost up to 8192 × $8/M ≈ $0.066.
    let budget = u
        .api
        .put(
            "/api/v1/budgets",
            json!({"project_id": u.project, "period": "month", "limit_usd": 0.001}),
        )
        .await
        .unwrap();
    assert_eq!(budget.status, 200, "{:?}", budget.body);
    let r = u
        .api
        .post(
            &format!("/api/v1/projects/{}/pipeline-runs", u.project),
            json!({"definition": DOCS.split("[[stages]]\nname = \"review\"").next().unwrap()}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let run = id(r.data());
    let paused = u
        .events
        .run_where(&run, |r| r["state"] == "paused")
        .await
        .unwrap();
    assert_eq!(paused["reason"], "budget_exceeded", "{paused:#}");
    assert!(
        paused["error"]
            .as_str()
            .unwrap()
            .contains("project's budget")
    );
    assert_eq!(paused["stages"][0]["state"], "waiting");
    assert_eq!(s.seen().len(), 0, "nothing was sent to the provider");

    // Resuming without raising it pauses again; raising it lets the run finish.
    let again = u
        .api
        .post(&format!("/api/v1/pipeline-runs/{run}/resume"), json!({}))
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{:?}", again.body);
    u.events
        .run_where(&run, |r| {
            r["state"] == "paused" && r["reason"] == "budget_exceeded"
        })
        .await
        .unwrap();
    assert_eq!(s.seen().len(), 0);
    u.api
        .put(
            "/api/v1/budgets",
            json!({"project_id": u.project, "period": "month", "limit_usd": 5.0}),
        )
        .await
        .unwrap();
    u.api
        .post(&format!("/api/v1/pipeline-runs/{run}/resume"), json!({}))
        .await
        .unwrap();
    let done = u
        .events
        .run_where(&run, |r| r["state"] == "succeeded")
        .await
        .unwrap();
    assert_eq!(done["usage"]["calls"], 1);
    let budgets = u.api.get("/api/v1/budgets").await.unwrap();
    let spent = budgets.data()[0]["spent_usd"].as_f64().unwrap();
    assert!(
        spent > 0.0 && spent < 0.01,
        "the settled cost counts, not the reservation: {spent}"
    );
    // A model with no price cannot be held against a budget: refused, nothing sent.
    let unpriced = DOCS
        .split("[[stages]]\nname = \"review\"")
        .next()
        .unwrap()
        .replace("kind = \"llm\"", "kind = \"llm\"\nmodel = \"unpriced-1\"");
    let r = u
        .api
        .post(
            &format!("/api/v1/projects/{}/pipeline-runs", u.project),
            json!({ "definition": unpriced }),
        )
        .await
        .unwrap();
    let run = id(r.data());
    let paused = u
        .events
        .run_where(&run, |r| r["state"] == "paused")
        .await
        .unwrap();
    assert_eq!(paused["reason"], "budget_exceeded");
    assert!(
        paused["error"].as_str().unwrap().contains("no price"),
        "{paused:#}"
    );
    assert_eq!(s.seen().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn definitions_are_checked_and_errors_name_the_line() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    let u = setup(&relay, &s, "carol").await;
    let start = |definition: &str| {
        let api = u.api.clone();
        let path = format!("/api/v1/projects/{}/pipeline-runs", u.project);
        let body = json!({ "definition": definition });
        async move { api.post(&path, body).await.unwrap() }
    };
    let r = start("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"b\"]\n[[stages]]\nname = \"b\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"a\"]\n").await;
    assert_eq!(r.status, 422);
    assert!(r.body.to_string().contains("cycle"), "{:?}", r.body);
    let r = start("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"shell\"\n").await;
    assert_eq!(r.status, 422);
    assert!(r.body.to_string().contains("line 4"), "{:?}", r.body);
    let r = start("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"nope\"]\n").await;
    assert!(r.body.to_string().contains("line 6") && r.body.to_string().contains("nope"));
    let r = start("name = \"x\"\n[[stages]\n").await;
    assert_eq!(r.status, 422);
    assert!(r.body.to_string().contains("line 2"), "{:?}", r.body);
    let r = u
        .api
        .post(
            &format!("/api/v1/projects/{}/pipeline-runs", u.project),
            json!({"pipeline": "nonesuch"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    let runs = u
        .api
        .get(&format!("/api/v1/projects/{}/pipeline-runs", u.project))
        .await
        .unwrap();
    assert_eq!(
        runs.data().as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn another_user_can_see_or_touch_nothing_of_a_run_or_a_key() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    s.on("OUTLINE", vec![Answer::text("{\"sections\": [\"A\"]}")]);
    let mut a = setup(&relay, &s, "dave").await;
    let r = a
        .api
        .post(
            &format!("/api/v1/projects/{}/pipeline-runs", a.project),
            json!({"definition": DOCS}),
        )
        .await
        .unwrap();
    let run = id(r.data());
    a.events
        .run_where(&run, |r| r["state"] == "paused")
        .await
        .unwrap();
    let eve = make_user(&relay, "eve").await;
    let e = Api::new(&relay.url()).with_token(&eve.access);
    for path in [
        format!("/api/v1/pipeline-runs/{run}"),
        format!("/api/v1/pipeline-runs/{run}/calls"),
        format!("/api/v1/pipeline-runs/{run}/artifacts"),
        format!("/api/v1/pipeline-runs/{run}/artifacts/outline.json"),
        format!("/api/v1/pipeline-runs/{run}/artifacts.zip"),
        format!("/api/v1/projects/{}/pipeline-runs", a.project),
        format!("/api/v1/projects/{}/deployments", a.project),
    ] {
        let r = e.get(&path).await;
        let status = r.map(|r| r.status).unwrap_or(404);
        assert_eq!(status, 404, "{path}");
    }
    for path in [
        format!("/api/v1/pipeline-runs/{run}/stages/review/approve"),
        format!("/api/v1/pipeline-runs/{run}/cancel"),
        format!("/api/v1/pipeline-runs/{run}/resume"),
        format!("/api/v1/projects/{}/pipeline-runs", a.project),
    ] {
        assert_eq!(
            e.post(&path, json!({})).await.unwrap().status,
            404,
            "{path}"
        );
    }
    let r = e
        .post(
            &format!("/api/v1/pipeline-runs/{run}/stages/review/reject"),
            json!({"comment": "no"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        e.get("/api/v1/llm-providers").await.unwrap().data(),
        &json!([])
    );
    let p = e
        .patch(
            &format!("/api/v1/llm-providers/{}", a.provider),
            json!({"default_model": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 404);
    assert_eq!(
        e.delete(&format!("/api/v1/llm-providers/{}", a.provider))
            .await
            .unwrap()
            .status,
        404
    );
    // The owner's view of the provider shows only the key's end.
    let mine = a.api.get("/api/v1/llm-providers").await.unwrap();
    assert!(!mine.body.to_string().contains(KEY));
    assert_eq!(mine.data()[0]["key_hint"], "…cdef");
    // Still waiting: nothing the other user did changed it.
    let now = a
        .api
        .get(&format!("/api/v1/pipeline-runs/{run}"))
        .await
        .unwrap();
    assert_eq!(now.data()["state"], "paused");
    // Rejecting needs a comment; with one, the gated stage runs again with it.
    let r = a
        .api
        .post(
            &format!("/api/v1/pipeline-runs/{run}/stages/review/reject"),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    s.on("INTRO", vec![Answer::text("intro")]);
    s.on("USAGE", vec![Answer::text("usage")]);
    let r = a
        .api
        .post(
            &format!("/api/v1/pipeline-runs/{run}/stages/review/reject"),
            json!({"comment": "add a Configure section"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    a.events
        .run_where(&run, |r| {
            r["state"] == "paused" && r["stages"][0]["attempt"] == 2
        })
        .await
        .unwrap();
    let redo = s.seen().last().unwrap().body.to_string();
    assert!(
        redo.contains("OUTLINE") && s.count("OUTLINE") == 2,
        "the gated stage ran again"
    );
    assert!(
        a.api
            .get(&format!("/api/v1/pipeline-runs/{run}"))
            .await
            .unwrap()
            .data()["stages"][0]["feedback"]
            == "add a Configure section"
    );
    // Cancel ends it.
    let c = a
        .api
        .post(&format!("/api/v1/pipeline-runs/{run}/cancel"), json!({}))
        .await
        .unwrap();
    assert_eq!(c.status, 200);
    assert_eq!(c.data()["state"], "canceled");
    let c = a
        .api
        .post(&format!("/api/v1/pipeline-runs/{run}/cancel"), json!({}))
        .await
        .unwrap();
    assert_eq!(c.status, 409);
}

/// The stand-in follows the published contracts (the official SDKs read it), and the relay's
/// requests follow OpenAI's OpenAPI description: `tests/llm/sdk_contract.py`.
#[tokio::test]
async fn the_standin_speaks_the_sdks_and_the_relay_speaks_the_openapi_description() {
    let venv = std::env::var("FULCRUM_LLM_VENV")
        .expect("FULCRUM_LLM_VENV is set by scripts/setup.sh (the openai and anthropic SDKs)");
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
    s.on("RELAY", vec![Answer::text("{\"ok\": true}")]);
    // What the relay sends: a plain call, one with a JSON schema, one with tools and a tool
    // result in the conversation.
    let c = client();
    let e = endpoint(&s, ProviderKind::Openai);
    c.chat(&e, &ask("RELAY plain"), &mut |_| {}).await.unwrap();
    let mut structured = ask("RELAY structured");
    structured.json_schema = Some(json!({"type": "object", "required": ["ok"]}));
    structured.temperature = Some(0.2);
    c.chat(&e, &structured, &mut |_| {}).await.unwrap();
    let mut tools = ask("RELAY tools");
    tools.tools = vec![llm::ToolSpec {
        name: "read_file".into(),
        description: "Read a file of the workspace".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }];
    tools.messages.push(llm::Message {
        role: llm::MessageRole::Assistant,
        content: String::new(),
        tool_calls: vec![llm::ToolCall {
            id: "call_1".into(),
            name: "read_file".into(),
            arguments: "{\"path\": \"README.md\"}".into(),
        }],
        tool_call_id: None,
    });
    tools.messages.push(llm::Message {
        role: llm::MessageRole::Tool,
        content: "# Readme".into(),
        tool_calls: Vec::new(),
        tool_call_id: Some("call_1".into()),
    });
    c.chat(&e, &tools, &mut |_| {}).await.unwrap();
    let bodies: Vec<serde_json::Value> = s.seen().into_iter().map(|r| r.body).collect();
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.json");
    std::fs::write(&requests, serde_json::to_vec(&bodies).unwrap()).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(format!("{venv}/bin/python"))
        .arg(root.join("llm/sdk_contract.py"))
        .arg(&s.url)
        .arg(KEY)
        .arg(&requests)
        .arg(root.join("../../shared/contracts/openai/openapi.yaml"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sdk contract: "), "{stdout}");
    assert!(stdout.contains("ok relay request 2 is a valid"), "{stdout}");
}

/// Two stages in a row: the first is answered, the second's answer is held mid-stream.
const TWO: &str = r#"
name = "two"

[[stages]]
name = "first"
kind = "llm"
prompt = "FIRST for {{ inputs.name }}"
artifacts = [{ path = "first.md" }]

[[stages]]
name = "second"
kind = "llm"
needs = ["first"]
prompt = "SECOND after {{ stages.first.output }}"
artifacts = [{ path = "second.md" }]
"#;

/// A data directory with master keys, and the config of a relay process using them (the
/// stand-in's models priced, quick retries): for tests that kill the relay and start it again.
fn process_relay_config() -> (tempfile::TempDir, String) {
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("master-keys");
    std::fs::write(&keys, fulcrum_relay::secrets::KeyRing::generate_entry("k1")).unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = format!(
        "[secrets]\nmaster_keys_file = {keys:?}\n[llm]\nbackoff_ms = 5\n\
         [llm.prices.\"stand-in-*\"]\ninput = 2.0\noutput = 8.0\n"
    );
    (data, config)
}

/// The run once it has ended, looking first (it may have ended before `events` connected).
async fn ended(api: &Api, events: &mut Events, run: &str) -> Value {
    loop {
        let now = api
            .get(&format!("/api/v1/pipeline-runs/{run}"))
            .await
            .unwrap();
        if now.data()["state"] == "succeeded" || now.data()["state"] == "failed" {
            return now.data().clone();
        }
        events
            .run_where(run, |r| r["state"] == "succeeded" || r["state"] == "failed")
            .await
            .unwrap();
    }
}

both_backends!(a_run_resumes_after_the_relay_is_killed_mid_stream);

/// SIGKILL the relay while an answer streams in: the relay that starts again (same data dir,
/// so the same node) takes the run back at once, never asks again for an answer it recorded,
/// asks again for the one it lost, and ends with each artifact written once. The provider's
/// key never appears in its logs, even at debug level.
async fn a_run_resumes_after_the_relay_is_killed_mid_stream(b: Backend) {
    use fulcrum_tests::processes::spawn_relay_logging;
    let db = TestDb::new(b).await;
    let user = fulcrum_tests::make_user_offline(&db, "frank").await;
    let s = LlmStandIn::start(KEY).await;
    s.on("FIRST", vec![Answer::text("the first answer")]);
    let (_release, gate) = tokio::sync::watch::channel(false);
    s.on(
        "SECOND",
        vec![
            Answer::Hold("the second answer, cut short".into(), gate),
            Answer::text("the second answer, in full"),
        ],
    );
    let (data, config) = process_relay_config();
    let relay = spawn_relay_logging(&db, data.path(), "127.0.0.1:0", &config, "debug").await;
    let addr = relay.addr;
    let api = Api::new(&relay.url).with_token(&user.access);
    let project = api
        .post(
            "/api/v1/projects",
            json!({"name": "Resume", "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(project.data());
    add_provider(&api, &s).await;
    let r = api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"definition": TWO}),
        )
        .await
        .unwrap();
    let run = id(r.data());
    // The first answer is recorded and the second is streaming when the relay dies.
    s.wait_requests(2).await;
    let logs_before = relay.logs.lock().unwrap().clone();
    relay.kill9().await;

    let relay = spawn_relay_logging(&db, data.path(), &addr.to_string(), &config, "debug").await;
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let started = Instant::now();
    let done = ended(&api, &mut events, &run).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "taken back without waiting for the 30 s lease"
    );
    assert_eq!(
        s.count("FIRST"),
        1,
        "a recorded answer is never asked for again"
    );
    assert_eq!(
        s.count("SECOND"),
        2,
        "the answer lost with the relay is asked for again"
    );
    let calls = api
        .get(&format!("/api/v1/pipeline-runs/{run}/calls"))
        .await
        .unwrap();
    let states: Vec<(String, String)> = calls
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["stage"].as_str().unwrap().into(),
                c["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("first".into(), "succeeded".into()),
            ("second".into(), "failed".into()),
            ("second".into(), "succeeded".into())
        ],
        "the interrupted call is settled as failed, holding no budget"
    );
    let arts = api
        .get(&format!("/api/v1/pipeline-runs/{run}/artifacts"))
        .await
        .unwrap();
    assert_eq!(arts.data().as_array().unwrap().len(), 2);
    let second = api
        .get(&format!("/api/v1/pipeline-runs/{run}/artifacts"))
        .await
        .unwrap();
    assert!(second.data()[1]["size"].as_i64().unwrap() > 0);
    let logs = format!("{logs_before}{}", relay.logs.lock().unwrap());
    assert!(logs.contains("pipeline"), "the debug logs were kept");
    assert!(
        !logs.contains(KEY),
        "the provider key never reaches the logs"
    );
    relay.kill9().await;
}

async fn mcp_token(api: &Api, scopes: &[&str]) -> String {
    let r = api
        .post(
            "/api/v1/tokens",
            json!({"name": "mcp", "kind": "mcp", "scopes": scopes}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.data()["token"].as_str().unwrap().to_owned()
}

/// Through `/mcp` with the official Python SDK: start a run on a project named by its name,
/// follow it, approve its gate, read an artifact; another user's token reaches none of it and
/// a read-only token cannot start one.
#[tokio::test]
async fn pipelines_through_mcp_with_the_official_sdk() {
    use fulcrum_tests::mcp_client::{calls, job, python_client};
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &opts()).await;
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "OUTLINE",
        vec![Answer::text("{\"sections\": [\"Install\"]}")],
    );
    s.on("INTRO", vec![Answer::text("intro")]);
    s.on("USAGE", vec![Answer::text("usage")]);
    let mut u = setup(&relay, &s, "grace").await;
    let token = mcp_token(&u.api, &["read", "write", "run"]).await;
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![(
            "start_pipeline",
            json!({"project": "todo", "definition": DOCS}),
        )],
    ))
    .await;
    let started = &calls(&out)[0];
    assert_eq!(started["is_error"], false, "{started}");
    let run = started["structured"]["id"].as_str().unwrap().to_owned();
    assert!(out["tools"]["start_pipeline"]["output_schema"].is_object());
    assert_eq!(out["tools"]["get_pipeline_run"]["read_only"], true);
    u.events
        .run_where(&run, |r| r["state"] == "paused")
        .await
        .unwrap();

    // Another user's token: nothing of the run, and not the project by id.
    let other = make_user(&relay, "heidi").await;
    let other_api = Api::new(&relay.url()).with_token(&other.access);
    let other_token = mcp_token(&other_api, &["read", "write", "run"]).await;
    let out = python_client(job(
        &relay.url(),
        &other_token,
        vec![
            ("get_pipeline_run", json!({"run_id": run})),
            (
                "decide_pipeline_gate",
                json!({"run_id": run, "stage": "review", "approve": true}),
            ),
            ("cancel_pipeline_run", json!({"run_id": run})),
            (
                "get_pipeline_artifact",
                json!({"run_id": run, "path": "outline.json"}),
            ),
            ("list_pipeline_runs", json!({"project": u.project})),
            ("list_deployments", json!({"project": u.project})),
            (
                "start_pipeline",
                json!({"project": u.project, "definition": DOCS}),
            ),
        ],
    ))
    .await;
    assert_eq!(calls(&out).len(), 7);
    for c in calls(&out) {
        assert_eq!(c["is_error"], true, "{c}");
        assert!(c["text"].as_str().unwrap().contains("not found"), "{c}");
    }
    // A read-only token reads but cannot start.
    let ro = mcp_token(&u.api, &["read"]).await;
    let out = python_client(job(
        &relay.url(),
        &ro,
        vec![
            ("get_pipeline_run", json!({"run_id": run})),
            (
                "start_pipeline",
                json!({"project": "Todo", "definition": DOCS}),
            ),
        ],
    ))
    .await;
    let c = calls(&out);
    assert_eq!(c[0]["is_error"], false, "{}", c[0]);
    assert_eq!(c[0]["structured"]["state"], "paused");
    assert_eq!(c[1]["is_error"], true, "{}", c[1]);

    let out = python_client(job(
        &relay.url(),
        &token,
        vec![(
            "decide_pipeline_gate",
            json!({"run_id": run, "stage": "review", "approve": true}),
        )],
    ))
    .await;
    assert_eq!(calls(&out)[0]["is_error"], false, "{}", calls(&out)[0]);
    u.events
        .run_where(&run, |r| r["state"] == "succeeded")
        .await
        .unwrap();
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![
            (
                "get_pipeline_artifact",
                json!({"run_id": run, "path": "outline.md"}),
            ),
            ("list_pipeline_runs", json!({"project": "Todo"})),
        ],
    ))
    .await;
    let c = calls(&out);
    assert_eq!(c[0]["structured"]["content"], "- Install\n", "{}", c[0]);
    assert_eq!(
        c[1]["structured"]["runs"][0]["state"], "succeeded",
        "{}",
        c[1]
    );
    assert_eq!(s.count("OUTLINE"), 1);
    // Start again from one stage: it runs again, the earlier ones do not.
    let out = python_client(job(
        &relay.url(),
        &token,
        vec![(
            "resume_pipeline_run",
            json!({"run_id": run, "from_stage": "intro"}),
        )],
    ))
    .await;
    assert_eq!(calls(&out)[0]["is_error"], false, "{}", calls(&out)[0]);
    u.events
        .run_where(&run, |r| {
            r["state"] == "succeeded" && r["usage"]["calls"] == 4
        })
        .await
        .unwrap();
    assert_eq!(
        (s.count("OUTLINE"), s.count("INTRO"), s.count("USAGE")),
        (1, 2, 1)
    );
}

/// An LLM stage, then two `run` stages in the workspace: one passes, one fails.
const BUILD: &str = r#"
name = "build"

[[stages]]
name = "plan"
kind = "llm"
prompt = "PLAN the build"

[[stages]]
name = "check"
kind = "run"
needs = ["plan"]
command = "echo checked $FULCRUM_PIPELINE_STAGE of $FULCRUM_PIPELINE_RUN"

[[stages]]
name = "broken"
kind = "run"
needs = ["plan"]
command = "echo about to fail; exit 3"
retries = 0

[[stages]]
name = "look"
kind = "mcp"
needs = ["plan"]
tool = "read_file"
arguments = { path = "{{ inputs.file }}" }

[[stages]]
name = "echo"
kind = "llm"
needs = ["look"]
prompt = "ECHO {{ stages.look.output.text }}"

[[stages]]
name = "missing"
kind = "mcp"
needs = ["plan"]
tool = "read_file"
arguments = { path = "no-such-file" }
retries = 0

[[stages]]
name = "code"
kind = "llm"
needs = ["plan"]
output = "files"
dir = "gen"
prompt = "CODE it"
retries = 0
"#;

both_backends!(run_stages_are_tasks_in_the_projects_workspace);

async fn run_stages_are_tasks_in_the_projects_workspace(b: Backend) {
    let s = LlmStandIn::start(KEY).await;
    s.on("PLAN", vec![Answer::text("a plan")]);
    s.on(
        "CODE it",
        vec![Answer::text(
            json!({"files": [{"path": "a.txt", "content": "x"}]}).to_string(),
        )],
    );
    let mut r = fulcrum_tests::rig(b, opts()).await;
    let project = rig_project(&r, &s, "Built").await;
    let started = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"definition": BUILD, "inputs": {"file": "README.md"}}),
        )
        .await
        .unwrap();
    assert_eq!(started.status, 201, "{:?}", started.body);
    let run = id(started.data());
    let done = r
        .events
        .run_where(&run, |r| r["state"] == "failed")
        .await
        .unwrap();
    assert_eq!(done["reason"], "task_failed", "{done:#}");
    assert_eq!(done["workspace_id"], r.workspace.as_str());
    let stage = |name: &str| {
        done["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(stage("check")["state"], "succeeded");
    // `mcp` stages call a workspace tool with templated arguments; a tool's error fails one.
    assert_eq!(stage("look")["state"], "succeeded", "{done:#}");
    assert_eq!(
        s.count("ECHO hello"),
        1,
        "a later stage read the tool's answer"
    );
    assert_eq!(stage("missing")["state"], "failed", "{done:#}");
    assert_eq!(stage("missing")["reason"], "tool_error", "{done:#}");
    // A stage that writes in a workspace whose agent does not allow `write` fails, saying so,
    // and writes nothing.
    assert_eq!(stage("code")["state"], "failed", "{done:#}");
    assert_eq!(stage("code")["reason"], "workspace_policy", "{done:#}");
    assert!(!r.repo.path().join("gen").exists());
    assert_eq!(stage("broken")["state"], "failed");
    assert!(
        stage("broken")["error"]
            .as_str()
            .unwrap()
            .contains("exited 3"),
        "{done:#}"
    );
    // They are ordinary tasks of the workspace, marked as the pipeline's, with their logs.
    let tasks = r
        .api
        .get(&format!("/api/v1/tasks?workspace_id={}", r.workspace))
        .await
        .unwrap();
    let tasks = tasks.data().as_array().unwrap().clone();
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    assert!(
        tasks
            .iter()
            .all(|t| t["source"] == "pipeline" && t["project_id"] == project.as_str())
    );
    let check = tasks.iter().find(|t| t["exit_code"] == 0).unwrap();
    let log = fulcrum_tests::task_log(&r.api, &id(check)).await.unwrap();
    let handle = done["handle"].as_str().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log).trim(),
        format!("checked check of {handle}")
    );
    r.agent.agent.stop().await;
}

/// Canceling a run stops the task its `run` stage started in the workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_run_cancels_its_running_task() {
    let s = LlmStandIn::start(KEY).await;
    let mut r = fulcrum_tests::rig(Backend::Sqlite, opts()).await;
    let project = rig_project(&r, &s, "Slow").await;
    let slow =
        "name = \"slow\"\n[[stages]]\nname = \"deploy\"\nkind = \"run\"\ncommand = \"sleep 60\"\n";
    let started = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({ "definition": slow }),
        )
        .await
        .unwrap();
    let run = id(started.data());
    let at_work = r
        .events
        .run_where(&run, |r| r["stages"][0]["task_id"].is_string())
        .await
        .unwrap();
    let task = at_work["stages"][0]["task_id"].as_str().unwrap().to_owned();
    r.events
        .task_where(&task, |t| t["state"] == "running")
        .await
        .unwrap();
    let c = r
        .api
        .post(&format!("/api/v1/pipeline-runs/{run}/cancel"), json!({}))
        .await
        .unwrap();
    assert_eq!(c.status, 200, "{:?}", c.body);
    let ended = r
        .events
        .task_where(&task, |t| t["finished_at"].is_string())
        .await
        .unwrap();
    assert_eq!(ended["state"], "canceled", "{ended:#}");
    // The run ends when the engine sees the task end, which may come just after the task's own
    // event: read it, and if it is not canceled yet, wait for the event saying it is.
    let mut now = r
        .api
        .get(&format!("/api/v1/pipeline-runs/{run}"))
        .await
        .unwrap()
        .data()
        .clone();
    if now["state"] != "canceled" {
        now = r
            .events
            .run_where(&run, |r| r["state"] == "canceled")
            .await
            .unwrap();
    }
    assert_eq!(now["state"], "canceled");
    assert_eq!(now["stages"][0]["state"], "skipped", "{now:#}");
    r.agent.agent.stop().await;
}

/// How long a whole run that builds, tests and deploys code may take in a test.
const E2E_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The backend the stand-in "writes": a standard-library HTTP service with unittest tests.
/// `BUG` makes `/health` answer the wrong thing, so its test fails until recovery fixes it.
fn backend_files(health: &str) -> Value {
    let app = r#"import json
import os
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCHEMA = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);"


def make_server(host, port, db_path):
    db = sqlite3.connect(db_path, check_same_thread=False)
    db.executescript(SCHEMA)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def send_json(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self.send_json(200, {"status": "HEALTH"})
            elif self.path == "/api/notes":
                with lock:
                    rows = db.execute("SELECT id, text FROM notes ORDER BY id").fetchall()
                self.send_json(200, [{"id": i, "text": t} for i, t in rows])
            else:
                self.send_json(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/api/notes":
                return self.send_json(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                text = body["text"]
            except (ValueError, KeyError):
                return self.send_json(400, {"error": "text is required"})
            with lock:
                cur = db.execute("INSERT INTO notes (text) VALUES (?)", (text,))
                db.commit()
            self.send_json(201, {"id": cur.lastrowid, "text": text})

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    port = int(os.environ.get("PORT", "8000"))
    db_path = os.environ.get("DATABASE_PATH", os.path.join(here, "data.db"))
    make_server("127.0.0.1", port, db_path).serve_forever()
"#
    .replace("HEALTH", health);
    let tests = r#"import json
import os
import tempfile
import threading
import unittest
import urllib.request

import app


class ApiTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.server = app.make_server("127.0.0.1", 0, os.path.join(self.dir.name, "t.db"))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.dir.cleanup()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())

    def test_health(self):
        self.assertEqual(self.call("GET", "/health"), (200, {"status": "ok"}))

    def test_notes(self):
        self.assertEqual(self.call("POST", "/api/notes", {"text": "hi"})[0], 201)
        self.assertEqual(self.call("GET", "/api/notes")[1], [{"id": 1, "text": "hi"}])


if __name__ == "__main__":
    unittest.main()
"#;
    json!({"files": [
        {"path": "app.py", "content": app},
        {"path": "test_app.py", "content": tests},
        {"path": "README.md", "content": "# Notes backend\n\n`python3 backend/app.py`\n"}
    ]})
}

const OPENAPI: &str = "openapi: 3.0.3\ninfo: {title: Notes, version: 1.0.0}\nservers: [{url: 'http://localhost:8000'}]\npaths:\n  /health:\n    get:\n      operationId: health\n      responses:\n        '200': {description: ok}\n  /api/notes:\n    get:\n      operationId: listNotes\n      responses:\n        '200':\n          description: the notes\n          content:\n            application/json:\n              schema: {type: array, items: {$ref: '#/components/schemas/Note'}}\n    post:\n      operationId: createNote\n      requestBody:\n        content:\n          application/json:\n            schema: {$ref: '#/components/schemas/Note'}\n      responses:\n        '201': {description: created}\n        '400': {description: invalid}\ncomponents:\n  schemas:\n    Note:\n      type: object\n      required: [text]\n      properties: {id: {type: integer}, text: {type: string}}\n";

/// Canned answers for every SystemCrafter stage: a tiny notes service. The first backend has
/// a bug its own test catches; recovery fixes it. The API answer is first invalid (its
/// validator refuses it), then valid.
fn systemcrafter_answers(s: &LlmStandIn) {
    let j = |v: Value| Answer::text(v.to_string());
    s.on(
        "recovery round",
        vec![
            Answer::Tools(vec![(
                "read_file".into(),
                json!({"path": "backend/app.py"}),
            )]),
            Answer::Tools(vec![(
                "write_file".into(),
                json!({"path": "backend/app.py",
                       "content": backend_files("ok")["files"][0]["content"]}),
            )]),
            Answer::Tools(vec![(
                "run_command".into(),
                json!({"command": "python3 -m unittest discover -s backend -t backend"}),
            )]),
            Answer::Tools(vec![(
                "finish".into(),
                json!({"summary": "Fix /health: it answered the wrong status text"}),
            )]),
        ],
    );
    s.on(
        "Write the requirements of a first version",
        vec![j(json!({
            "summary": "Notes: keep short notes.",
            "features": [{"name": "Notes", "description": "Add and list notes", "priority": "must"}],
            "user_stories": [{"id": "US-1", "as_a": "user", "i_want": "to add a note",
                              "so_that": "I remember", "acceptance_criteria": ["Given text, when I post it, then it is listed"]}],
            "non_functional": [{"category": "operability", "requirement": "GET /health answers 200"}]
        }))],
    );
    s.on(
        "Design the architecture of",
        vec![j(json!({
            "overview_markdown": "One Python process serving JSON and the web client.",
            "mermaid": "flowchart LR\n  browser --> backend --> sqlite",
            "stack": {"language": "Python 3", "framework": "http.server", "database": "SQLite"},
            "decisions": [{"title": "Standard library only", "context": "No packages can be installed",
                           "decision": "Use http.server and sqlite3", "consequences": "Little code, no dependencies"}]
        }))],
    );
    s.on(
        "Write the OpenAPI 3.0.3 document",
        vec![
            Answer::text("openapi: 3.0.3\ninfo: {title: Notes, version: 1.0.0}\npaths: {}\n"),
            Answer::text(OPENAPI),
        ],
    );
    s.on(
        "Design the database of",
        vec![j(json!({
            "schema_sql": "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);",
            "migrations": [{"name": "0001_initial", "sql": "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL);"}],
            "er_mermaid": "erDiagram\n  NOTE { int id string text }"
        }))],
    );
    s.on("Implement the backend of", vec![j(backend_files("broken"))]);
    s.on(
        "Write the web client of",
        vec![j(json!({"files": [
            {"path": "index.html", "content": "<!doctype html><title>Notes</title><ul id=notes></ul><script src=app.js></script>\n"},
            {"path": "app.js", "content": "fetch('/api/notes').then(r => r.json()).then(ns => ns.forEach(n => { const li = document.createElement('li'); li.textContent = n.text; document.getElementById('notes').append(li); }));\n"}
        ]}))],
    );
    s.on(
        "Write the deployment files of",
        vec![j(json!({"files": [
            {"path": "Dockerfile", "content": "FROM python:3.12-slim\nWORKDIR /app\nCOPY backend backend\nCOPY frontend frontend\nUSER 1000\nENV PORT=8000\nEXPOSE 8000\nCMD [\"python3\", \"backend/app.py\"]\n"},
            {"path": "compose.yaml", "content": "services:\n  notes:\n    build: {context: .., dockerfile: infrastructure/Dockerfile}\n    ports: ['8000:8000']\n"},
            {"path": "deploy.json", "content": "{\"command\": \"python3 backend/app.py\", \"health_path\": \"/health\"}\n"}
        ]}))],
    );
}

both_backends!(systemcrafter_generates_builds_tests_recovers_and_deploys_a_project);

/// The built-in SystemCrafter pipeline, end to end, in a real workspace: every stage, a
/// validator refusal fixed on the next answer, one commit per writing stage on
/// `fulcrum/run-<handle>`, build and QA as tasks, QA failing on a bug, recovery (an agent
/// stage with tool calls) committing a fix, QA passing, the service deployed on a loopback
/// port and answering, the deployment recorded, and the run's tokens equal to the stand-in's.
async fn systemcrafter_generates_builds_tests_recovers_and_deploys_a_project(b: Backend) {
    use fulcrum_protocol::kinds::{Scope, Scopes};
    let s = LlmStandIn::start(KEY).await;
    systemcrafter_answers(&s);
    let mut r =
        fulcrum_tests::rig_allowing(b, opts(), Some(Scopes::of(&[Scope::Write, Scope::Run]))).await;
    let project = rig_project(&r, &s, "Notes App").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"inputs": {"port": port}}),
        )
        .await
        .unwrap();
    assert_eq!(started.status, 201, "{:?}", started.body);
    let run = id(started.data());
    let repo_dir = r.repo.path().join("notes-app");
    // The service deploy starts keeps running: stop it however the test ends.
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(self.0.join("deploy.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["--", &format!("-{}", pid.trim())])
                    .status();
            }
        }
    }
    let _stop = Stop(repo_dir.clone());
    let done = r
        .events
        .run_where_within(&run, E2E_WAIT, |r| {
            r["state"] == "succeeded" || r["state"] == "failed"
        })
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let stage = |name: &str| {
        done["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        stage("qa")["attempt"],
        2,
        "QA ran again after recovery: {done:#}"
    );
    // The run's view names each writing stage's commit and the recovery's round.
    assert_eq!(
        stage("backend")["commit"].as_str().map(str::len),
        Some(40),
        "{done:#}"
    );
    assert_eq!(stage("recovery")["rounds"][0]["stage"], "qa", "{done:#}");
    // pytest names the failing test; unittest's last line says it failed.
    let error = stage("recovery")["rounds"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("test_health") || error.contains("FAILED"),
        "the failure is described: {done:#}"
    );
    // The project's status followed the run: draft → generating → ready.
    let p = r
        .api
        .get(&format!("/api/v1/projects/{project}"))
        .await
        .unwrap();
    assert_eq!(p.data()["generation"], "ready", "{:?}", p.body);
    assert_eq!(stage("recovery")["state"], "succeeded");
    assert_eq!(
        s.count("Write the OpenAPI 3.0.3 document"),
        2,
        "the refused API was asked again"
    );
    assert!(s.count("does not pass the OpenAPI 3 check") >= 1);
    // The branch holds one commit per writing stage, and the fix, in order.
    let handle = done["handle"].as_str().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo_dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        format!("fulcrum/run-{handle}")
    );
    let stages: Vec<String> = git(&[
        "log",
        "--reverse",
        "--format=%(trailers:key=Fulcrum-Stage,valueonly)",
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    // Frontend and infrastructure run side by side, so either may commit first.
    let mut middle = stages.get(5..7).map(<[String]>::to_vec).unwrap_or_default();
    middle.sort();
    assert_eq!(
        (
            &stages[..5.min(stages.len())],
            middle,
            stages.get(7),
            stages.len()
        ),
        (
            &["requirements", "architecture", "api", "database", "backend"].map(String::from)[..],
            vec!["frontend".to_owned(), "infrastructure".to_owned()],
            Some(&"recovery".to_owned()),
            8
        ),
        "{stages:?}"
    );
    assert!(git(&["log", "-1", "--format=%an"]).contains(&format!("Fulcrum run {handle}")));
    // Every file a stage wrote is committed (caches and the deploy's pid file stay out).
    let changed = git(&["status", "--porcelain", "--untracked-files=no"]);
    assert!(changed.trim().is_empty(), "{changed}");
    // Deployed: it answers on the port, and the deployment is recorded with the commit.
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .unwrap();
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let deployments = r
        .api
        .get(&format!("/api/v1/projects/{project}/deployments"))
        .await
        .unwrap();
    let d = deployments.data().as_array().unwrap()[0].clone();
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert_eq!(d["url"], format!("http://127.0.0.1:{port}"));
    assert_eq!(d["run_id"], run.as_str());
    assert_eq!(
        d["commit_sha"].as_str().unwrap(),
        git(&["rev-parse", "HEAD"]).trim()
    );
    // The same history through MCP, with the official SDK.
    use fulcrum_tests::mcp_client::{calls, job, python_client};
    let token = mcp_token(&r.api, &["read"]).await;
    let out = python_client(job(
        &r.relay.url(),
        &token,
        vec![("list_deployments", json!({"project": "Notes App"}))],
    ))
    .await;
    let listed = &calls(&out)[0];
    assert_eq!(listed["is_error"], false, "{listed}");
    assert_eq!(
        listed["structured"]["deployments"][0]["id"], d["id"],
        "{listed}"
    );
    // Artifacts download; the run's tokens are the stand-in's.
    let zip = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/pipeline-runs/{run}/artifacts.zip",
            r.relay.url()
        ))
        .bearer_auth(&r.user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.unwrap();
    let name = format!("run-{handle}/api/openapi.yaml");
    assert!(bytes.windows(name.len()).any(|w| w == name.as_bytes()));
    let (input, output, cached) = s.usage();
    assert_eq!(done["usage"]["input_tokens"], input, "{done:#}");
    assert_eq!(done["usage"]["output_tokens"], output, "{done:#}");
    let cost = (input - cached) as f64 * 2.0 + cached as f64 * 0.5 + output as f64 * 8.0;
    let got = done["usage"]["cost_usd"].as_f64().unwrap() * 1e6;
    assert!((got - cost).abs() < 1.0, "cost {got} µ$ = {cost} µ$");
    r.agent.agent.stop().await;
}

/// A check that always fails: the same way (`same`), or differently each time.
fn recovering(command: &str, rounds: u32) -> String {
    format!(
        r#"
name = "recovering"

[[stages]]
name = "check"
kind = "run"
command = "{command}"
retries = 0

[[stages]]
name = "fix"
kind = "agent"
on_failure = ["check"]
max_rounds = {rounds}
max_turns = 3
prompt = "FIX round {{{{ failure.round }}}}: {{{{ failure.error }}}}"
"#
    )
}

/// Recovery stops early when a round fails the same way as an earlier one, and at its cap
/// when each round fails differently; either way the run fails and says why.
#[tokio::test]
async fn recovery_stops_at_a_repeated_failure_and_at_its_cap() {
    use fulcrum_protocol::kinds::{Scope, Scopes};
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "FIX round",
        vec![Answer::Tools(vec![(
            "finish".into(),
            json!({"summary": "tried something"}),
        )])],
    );
    let mut r = fulcrum_tests::rig_allowing(
        Backend::Sqlite,
        opts(),
        Some(Scopes::of(&[Scope::Write, Scope::Run])),
    )
    .await;
    let project = rig_project(&r, &s, "Flaky").await;
    for (command, rounds, reason, fix_calls) in [
        ("echo same failure; exit 1", 3, "recovery_repeated", 1),
        (
            "head -c 9 /dev/urandom | base64 | tr -d 0-9; exit 1",
            2,
            "recovery_exhausted",
            2,
        ),
    ] {
        let before = s.count("FIX round");
        let started = r
            .api
            .post(
                &format!("/api/v1/projects/{project}/pipeline-runs"),
                json!({"definition": recovering(command, rounds)}),
            )
            .await
            .unwrap();
        assert_eq!(started.status, 201, "{:?}", started.body);
        let run = id(started.data());
        let done = r
            .events
            .run_where(&run, |r| r["state"] == "failed")
            .await
            .unwrap();
        assert_eq!(done["reason"], reason, "{done:#}");
        assert_eq!(s.count("FIX round") - before, fix_calls, "{done:#}");
        let fix = done["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "fix")
            .unwrap()
            .clone();
        assert_eq!(fix["attempt"], fix_calls, "{done:#}");
    }
    // A pipeline that does not say so leaves the project's status alone.
    let p = r
        .api
        .get(&format!("/api/v1/projects/{project}"))
        .await
        .unwrap();
    assert_eq!(p.data()["generation"], "draft", "{:?}", p.body);
    r.agent.agent.stop().await;
}

/// A repository defines a pipeline in its `fulcrum.toml` and overrides a prompt in
/// `.fulcrum/prompts/<stage>.md`: a run by that name uses both, records them in its hash, and
/// a name that is neither the repository's nor built in is refused, naming those that are.
#[tokio::test]
async fn a_repository_defines_pipelines_and_overrides_prompts() {
    let s = LlmStandIn::start(KEY).await;
    s.on("from the prompt file", vec![Answer::text("hello back")]);
    let mut r = fulcrum_tests::rig(Backend::Sqlite, opts()).await;
    r.repo.write(
        "fulcrum.toml",
        "[[steps]]\nname = \"test\"\ncommand = \"true\"\n\n[pipelines.hello]\n\
         description = \"Say hello\"\n\n[[pipelines.hello.stages]]\nname = \"greet\"\n\
         kind = \"llm\"\nprompt = \"GREET from fulcrum.toml\"\n\n[[pipelines.hello.stages]]\n\
         name = \"sign\"\nkind = \"llm\"\nneeds = [\"greet\"]\nprompt = \"SIGN it\"\n",
    );
    std::fs::create_dir_all(r.repo.path().join(".fulcrum/prompts")).unwrap();
    std::fs::write(
        r.repo.path().join(".fulcrum/prompts/greet.md"),
        "GREET {{ project.name }} from the prompt file",
    )
    .unwrap();
    s.on("SIGN it", vec![Answer::text("signed")]);
    let project = rig_project(&r, &s, "Hello").await;
    let started = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"pipeline": "hello"}),
        )
        .await
        .unwrap();
    assert_eq!(started.status, 201, "{:?}", started.body);
    let run = id(started.data());
    let done = r
        .events
        .run_where(&run, |r| {
            r["state"] == "succeeded" || r["state"] == "failed"
        })
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["pipeline"], "hello");
    assert_eq!(s.count("GREET Hello from the prompt file"), 1);
    assert_eq!(s.count("GREET from fulcrum.toml"), 0);
    assert_eq!(s.count("SIGN it"), 1);
    let hash = done["definition_hash"].as_str().unwrap().to_owned();
    // The same pipeline without the override runs the toml's prompt, under another hash.
    std::fs::remove_file(r.repo.path().join(".fulcrum/prompts/greet.md")).unwrap();
    s.on("GREET from fulcrum.toml", vec![Answer::text("hi")]);
    let again = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"pipeline": "hello"}),
        )
        .await
        .unwrap();
    let again = id(again.data());
    let done = r
        .events
        .run_where(&again, |r| r["state"] == "succeeded")
        .await
        .unwrap();
    assert_eq!(s.count("GREET from fulcrum.toml"), 1);
    assert_ne!(done["definition_hash"].as_str().unwrap(), hash);
    let unknown = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"pipeline": "nope"}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 422, "{:?}", unknown.body);
    let message = unknown.body.to_string();
    assert!(
        message.contains("systemcrafter") && message.contains("hello"),
        "{message}"
    );
    r.agent.agent.stop().await;
}

/// Writes code, then builds it in the workspace.
const CODE_THEN_BUILD: &str = r#"
name = "code-then-build"
repo = "gen"

[[stages]]
name = "code"
kind = "llm"
output = "files"
dir = "src"
prompt = "CODE it"

[[stages]]
name = "build"
kind = "run"
needs = ["code"]
command = "cat src/a.txt > built.txt; for i in $(seq 1200); do [ -f release ] && break; sleep 0.05; done; echo built"
"#;

both_backends!(a_run_resumes_after_the_relay_is_killed_mid_build);

/// SIGKILL the relay while a `run` stage's task builds in the workspace: the relay that starts
/// again takes the run back, the agent reconnects and finishes the same task (none is started
/// twice), and the run succeeds with one commit for its writing stage and the code's answer
/// asked for once.
async fn a_run_resumes_after_the_relay_is_killed_mid_build(b: Backend) {
    use fulcrum_protocol::kinds::{Scope, Scopes};
    use fulcrum_tests::processes::spawn_relay_logging;
    let db = TestDb::new(b).await;
    let user = fulcrum_tests::make_user_offline(&db, "grace").await;
    let s = LlmStandIn::start(KEY).await;
    s.on(
        "CODE it",
        vec![Answer::text(
            json!({"files": [{"path": "a.txt", "content": "code\n"}]}).to_string(),
        )],
    );
    let (data, config) = process_relay_config();
    let relay = spawn_relay_logging(&db, data.path(), "127.0.0.1:0", &config, "info").await;
    let addr = relay.addr;
    let api = Api::new(&relay.url).with_token(&user.access);
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut o = fulcrum_agent::AgentOptions::new(
        fulcrum_tests::transport::target(&relay.url, &user.agent_token, None),
        root_path.clone(),
        state.path().to_path_buf(),
    );
    o.policy = Scopes::of(&[Scope::Write, Scope::Run]);
    let agent = fulcrum_agent::RunningAgent::start(o).await.unwrap();
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let ws = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let ws = ws["id"].as_str().unwrap().to_owned();
    let project = api
        .post(
            "/api/v1/projects",
            json!({"name": "Killed", "description": "d"}),
        )
        .await
        .unwrap();
    let project = id(project.data());
    let attach = api
        .put(
            &format!("/api/v1/projects/{project}/workspaces/{ws}"),
            json!({}),
        )
        .await
        .unwrap();
    assert!(attach.status < 300, "{:?}", attach.body);
    add_provider(&api, &s).await;
    let r = api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"definition": CODE_THEN_BUILD}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.body);
    let run = id(r.data());
    // The build has started in the workspace (it waits for `release`) when the relay dies.
    let gen_dir = root_path.join("gen");
    loop {
        let e = events.next().await.unwrap();
        if e["type"] == "task" && e["task"]["state"] == "running" {
            break;
        }
    }
    relay.kill9().await;
    let relay = spawn_relay_logging(&db, data.path(), &addr.to_string(), &config, "info").await;
    std::fs::write(gen_dir.join("release"), "").unwrap();
    let mut events = Events::connect(&relay.url, &user.access).await.unwrap();
    let done = ended(&api, &mut events, &run).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(
        s.count("CODE it"),
        1,
        "a recorded answer is never asked for again"
    );
    let tasks = api
        .get(&format!("/api/v1/tasks?workspace_id={ws}"))
        .await
        .unwrap();
    let tasks = tasks.data().as_array().unwrap().clone();
    assert_eq!(tasks.len(), 1, "the build ran once: {tasks:#?}");
    assert_eq!(tasks[0]["state"], "succeeded");
    let log = std::process::Command::new("git")
        .args(["log", "--format=%(trailers:key=Fulcrum-Stage,valueonly)"])
        .current_dir(&gen_dir)
        .output()
        .unwrap();
    let stages: Vec<String> = String::from_utf8_lossy(&log.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(stages, ["code"], "one commit for the writing stage");
    let arts = api
        .get(&format!("/api/v1/pipeline-runs/{run}/artifacts"))
        .await
        .unwrap();
    assert_eq!(arts.data().as_array().unwrap().len(), 1);
    agent.stop().await;
    relay.kill9().await;
}

/// The built-in feature pipeline on an existing repository: agent stages read and change the
/// code through the workspace's tools, the tests are written, build and QA run as tasks and
/// pass, and the branch is ready for a pull request with its AI-written description, which is
/// given the run's cost.
#[tokio::test]
async fn the_feature_pipeline_changes_a_repository_on_its_branch() {
    use fulcrum_protocol::kinds::{Scope, Scopes};
    let s = LlmStandIn::start(KEY).await;
    let calc = "def add(a, b):\n    return a + b\n";
    let tests = "import unittest\n\nimport calc\n\n\nclass CalcTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n";
    let tools = |calls: Vec<(&str, Value)>| {
        Answer::Tools(calls.into_iter().map(|(n, a)| (n.to_owned(), a)).collect())
    };
    s.on(
        "Write the pull request description of this change",
        vec![Answer::text(
            "Add subtract to calc\n\n## Summary\nAdds `subtract`.\n\n## Cost\nSee the run.",
        )],
    );
    s.on(
        "Write the tests for this change",
        vec![
            tools(vec![(
                "write_file",
                json!({"path": "test_calc.py", "content": format!("{tests}\n    def test_subtract(self):\n        self.assertEqual(calc.subtract(5, 3), 2)\n")}),
            )]),
            tools(vec![(
                "run_command",
                json!({"command": "python3 -m unittest discover -v"}),
            )]),
            tools(vec![("finish", json!({"summary": "test_calc.py: test_subtract"}))]),
        ],
    );
    s.on(
        "Implement this feature request in",
        vec![
            tools(vec![(
                "edit_file",
                json!({"path": "calc.py", "edits": [{"oldText": "return a + b\n", "newText": "return a + b\n\n\ndef subtract(a, b):\n    return a - b\n"}]}),
            )]),
            tools(vec![("finish", json!({"summary": "calc.py: added subtract(a, b)"}))]),
        ],
    );
    s.on(
        "Plan the implementation of this feature request",
        vec![Answer::text(
            json!({
                "summary": "Add subtract next to add.",
                "steps": ["Add subtract(a, b) to calc.py", "Test it"],
                "files_to_change": [{"path": "calc.py", "change": "add subtract"}],
                "tests_to_add": [{"path": "test_calc.py", "description": "subtract works"}]
            })
            .to_string(),
        )],
    );
    s.on(
        "Read the repository with the tools",
        vec![
            tools(vec![
                ("directory_tree", json!({})),
                ("read_file", json!({"path": "calc.py"})),
            ]),
            tools(vec![(
                "finish",
                json!({"summary": "calc.py defines add(a, b); test_calc.py tests it with unittest"}),
            )]),
        ],
    );
    let mut r = fulcrum_tests::rig_allowing(
        Backend::Sqlite,
        opts(),
        Some(Scopes::of(&[Scope::Write, Scope::Run])),
    )
    .await;
    r.repo.write("calc.py", calc);
    r.repo.write("test_calc.py", tests);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(r.repo.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "calc"]);
    let project = rig_project(&r, &s, "Calc").await;
    let started = r
        .api
        .post(
            &format!("/api/v1/projects/{project}/pipeline-runs"),
            json!({"pipeline": "feature", "inputs": {"request": "Add a subtract function"}}),
        )
        .await
        .unwrap();
    assert_eq!(started.status, 201, "{:?}", started.body);
    let run = id(started.data());
    let done = r
        .events
        .run_where_within(&run, E2E_WAIT, |r| {
            r["state"] == "succeeded" || r["state"] == "failed"
        })
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done:#}");
    // The branch has the change and its tests, one commit each, on top of main.
    let handle = done["handle"].as_str().unwrap();
    assert_eq!(
        git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        format!("fulcrum/run-{handle}")
    );
    let stages: Vec<String> = git(&[
        "log",
        "main..HEAD",
        "--reverse",
        "--format=%(trailers:key=Fulcrum-Stage,valueonly)",
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    assert_eq!(stages, ["change", "tests"], "analysis wrote nothing");
    assert!(
        std::fs::read_to_string(r.repo.path().join("calc.py"))
            .unwrap()
            .contains("def subtract")
    );
    // QA ran the new test in the workspace, and it passed.
    let tasks = r
        .api
        .get(&format!("/api/v1/tasks?workspace_id={}", r.workspace))
        .await
        .unwrap();
    let qa = tasks
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["command"]
                .as_str()
                .is_some_and(|c| c.contains("unittest discover -v; fi"))
        })
        .cloned()
        .expect("the qa task");
    assert_eq!(qa["state"], "succeeded", "{qa:#}");
    let log = fulcrum_tests::task_log(&r.api, &id(&qa)).await.unwrap();
    let log = String::from_utf8_lossy(&log).into_owned();
    // pytest where the machine has it (two tests: `2 passed`), else unittest (`-v` names them).
    assert!(
        log.contains("test_subtract") || log.contains("2 passed"),
        "{log}"
    );
    // The description was asked for with the run's cost, and is an artifact.
    assert_eq!(s.count("The run's AI usage so far"), 1);
    let md = r
        .api
        .get(&format!("/api/v1/pipeline-runs/{run}/artifacts"))
        .await
        .unwrap();
    let paths: Vec<&str> = md
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    for p in [
        "analysis.md",
        "plan.json",
        "plan.md",
        "change.md",
        "tests.md",
        "summary.md",
    ] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
    r.agent.agent.stop().await;
}
