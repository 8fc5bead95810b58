//! The dashboard in headless Chromium, driven by Playwright (`tests/browser/*.mjs`): log in, see
//! the workspace, edit a file, see the change without reloading, manage tokens; run tasks, watch
//! their logs live, cancel, read test results.

use fulcrum_tests::*;

/// Runs `tests/browser/{script}` with `env` and asserts it reports every step passed.
async fn run_browser_script(script: &str, env: &[(&str, String)], limit_s: u64) {
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "run scripts/setup.sh to install the browser test's packages"
    );
    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(browser_dir.join(script))
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(limit_s), cmd.output())
        .await
        .expect("browser test finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("browser: ") && l.ends_with(" passed, 0 failed")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    agent
        .agent
        .wait_for(|s| connected(s) && !s.repos.is_empty(), WAIT)
        .await
        .unwrap();
    run_browser_script(
        "dashboard.mjs",
        &[
            ("FULCRUM_URL", relay.url()),
            ("FULCRUM_EMAIL", alice.email.clone()),
            ("FULCRUM_PASSWORD", alice.password.clone()),
            ("FULCRUM_REPO_DIR", repo.path().display().to_string()),
        ],
        200,
    )
    .await;
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}

/// Projects and tasks in the browser (`tests/browser/tasks.mjs`): run a command and watch its
/// log live to the end, cancel a sleeping task, read a failing test run's results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_in_a_real_browser() {
    let mut r = rig(Backend::Sqlite, RelayOptions::default()).await;
    // A pytest run with a failing test, for the results view.
    r.repo.write("pytest.ini", "[pytest]\n");
    r.repo.write(
        "tests/test_shop.py",
        "def test_total():\n    assert 2 + 2 == 4\n\ndef test_discount():\n    assert 10 * 0.9 == 8\n",
    );
    let qa = post_task(
        &r.api,
        serde_json::json!({ "workspace_id": r.workspace, "step": "qa" }),
    )
    .await;
    let done = r.events.task_finished(&id(&qa)).await.unwrap();
    assert_eq!(done["test_summary"]["failed"], 1, "{done:#}");
    run_browser_script(
        "tasks.mjs",
        &[
            ("FULCRUM_URL", r.relay.url()),
            ("FULCRUM_EMAIL", r.user.email.clone()),
            ("FULCRUM_PASSWORD", r.user.password.clone()),
            ("FULCRUM_WORKSPACE_ID", r.workspace.clone()),
            ("FULCRUM_TEST_TASK_WITH_FAILURES", id(&qa)),
            ("FULCRUM_TEST_FAILING_TEST", "test_discount".into()),
            ("FULCRUM_QA_TIMEOUT_MS", "60000".into()),
        ],
        300,
    )
    .await;
    r.agent.agent.stop().await;
    r.relay.shutdown().await.unwrap();
}

/// A pipeline with a gate, for the pipeline pages: an outline, a review, two parallel stages.
const BROWSER_PIPELINE: &str = r##"name = "docs"

[[stages]]
name = "outline"
kind = "llm"
prompt = "OUTLINE for {{ inputs.name }}: {{ inputs.description }}"
output = "json"
schema = { type = "object", required = ["sections"] }
artifacts = [{ path = "outline.json" }, { path = "outline.md", template = "# Outline\n{% for s in output.sections %}- {{ s }}\n{% endfor %}" }]

[[stages]]
name = "review"
kind = "approval"
needs = ["outline"]

[[stages]]
name = "intro"
kind = "llm"
needs = ["review"]
prompt = "INTRO from {{ artifacts['outline.md'] }}"
artifacts = [{ path = "docs/intro.md" }]

[[stages]]
name = "usage"
kind = "llm"
needs = ["review"]
prompt = "USAGE from {{ artifacts['outline.md'] }}"
artifacts = [{ path = "docs/usage.md" }]
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_in_a_real_browser() {
    use fulcrum_tests::llm_standin::{Answer, LlmStandIn};
    let key = "sk-browser-standin-0000000001";
    let standin = LlmStandIn::start(key).await;
    standin.on(
        "OUTLINE",
        vec![Answer::text(
            "{\"sections\": [\"Install\", \"Use\", \"Configure\"]}",
        )],
    );
    standin.on(
        "INTRO",
        vec![Answer::text(
            "Fulcrum keeps your to-do list in one place. It streams this text in pieces.",
        )],
    );
    standin.on(
        "USAGE",
        vec![Answer::text("Add an item, then tick it off.")],
    );
    let db = TestDb::new(Backend::Sqlite).await;
    let mut opts = RelayOptions {
        master_keys: Some(fulcrum_relay::secrets::KeyRing::generate_entry("k1")),
        ..Default::default()
    };
    opts.llm.prices = toml::from_str(r#""stand-in-*" = { input = 2.0, output = 8.0 }"#).unwrap();
    let relay = start_relay(&db, &opts).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let project = api
        .post(
            "/api/v1/projects",
            serde_json::json!({"name": "Todo", "description": "A to-do list service"}),
        )
        .await
        .unwrap();
    assert_eq!(project.status, 201);
    run_browser_script(
        "pipelines.mjs",
        &[
            ("FULCRUM_URL", relay.url()),
            ("FULCRUM_EMAIL", alice.email.clone()),
            ("FULCRUM_PASSWORD", alice.password.clone()),
            ("FULCRUM_PROJECT_ID", id(project.data())),
            ("FULCRUM_LLM_URL", standin.url.clone()),
            ("FULCRUM_LLM_KEY", key.to_owned()),
            ("FULCRUM_PIPELINE", BROWSER_PIPELINE.to_owned()),
        ],
        200,
    )
    .await;
    // What the browser did reached the relay: the run finished with its artifacts.
    let runs = api
        .get(&format!(
            "/api/v1/projects/{}/pipeline-runs",
            id(project.data())
        ))
        .await
        .unwrap();
    let run = &runs.data()[0];
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(standin.count("OUTLINE"), 1);
    // The key typed into the settings page is kept sealed: not in any answer.
    let providers = api.get("/api/v1/llm-providers").await.unwrap();
    assert!(!providers.body.to_string().contains(key));
    relay.shutdown().await.unwrap();
}

/// The assistant in Chromium: a question answered after two tool calls, then a run that waits
/// for confirmation in the chat and starts once confirmed; the AI activity page shows the
/// assistant's own calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_in_a_real_browser() {
    use fulcrum_tests::llm_standin::{Answer, LlmStandIn};
    let key = "sk-browser-standin-0000000002";
    let standin = LlmStandIn::start(key).await;
    let mut opts = RelayOptions {
        master_keys: Some(fulcrum_relay::secrets::KeyRing::generate_entry("k1")),
        ..Default::default()
    };
    opts.llm.prices = toml::from_str(r#""stand-in-*" = { input = 2.0, output = 8.0 }"#).unwrap();
    let r = rig(Backend::Sqlite, opts).await;
    standin.on(
        "Run the tests of shop",
        vec![
            Answer::Tools(vec![(
                "run_task".into(),
                serde_json::json!({"workspace": r.workspace, "command": "echo browser-ran"}),
            )]),
            Answer::text("RUN-STARTED-ANSWER: the tests of shop are running."),
        ],
    );
    standin.on(
        "Which of my projects has failing tasks",
        vec![
            Answer::Tools(vec![
                ("list_projects".into(), serde_json::json!({})),
                ("list_tasks".into(), serde_json::json!({"state": "failed"})),
            ]),
            Answer::text("FAILING-TASK-ANSWER: shop has one failing task; it cost $0.00."),
        ],
    );
    let project = r
        .api
        .post(
            "/api/v1/projects",
            serde_json::json!({"name": "shop", "description": "A shop"}),
        )
        .await
        .unwrap();
    let project = id(project.data());
    r.api
        .put(
            &format!("/api/v1/projects/{project}/workspaces/{}", r.workspace),
            serde_json::json!({}),
        )
        .await
        .unwrap();
    let p = r
        .api
        .post(
            "/api/v1/llm-providers",
            serde_json::json!({"name": "stand-in", "kind": "openai", "base_url": standin.url,
                               "default_model": "stand-in-1", "api_key": key}),
        )
        .await
        .unwrap();
    assert_eq!(p.status, 201, "{:?}", p.body);
    let tasks_before = r.api.get("/api/v1/tasks").await.unwrap();
    let tasks_before = tasks_before.data().as_array().unwrap().len();
    run_browser_script(
        "assistant.mjs",
        &[
            ("FULCRUM_URL", r.relay.url()),
            ("FULCRUM_EMAIL", r.user.email.clone()),
            ("FULCRUM_PASSWORD", r.user.password.clone()),
            ("FULCRUM_PROJECT_NAME", "shop".to_owned()),
        ],
        200,
    )
    .await;
    // What the browser confirmed ran: one task more, and the assistant's calls are recorded.
    let tasks = r.api.get("/api/v1/tasks").await.unwrap();
    assert_eq!(tasks.data().as_array().unwrap().len(), tasks_before + 1);
    let acts = r
        .api
        .get("/api/v1/ai-activities?tool=fulcrum-assistant")
        .await
        .unwrap();
    assert_eq!(acts.data().as_array().unwrap().len(), 4);
}
