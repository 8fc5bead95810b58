//! The dashboard in headless Chromium, driven by Playwright (`tests/browser/dashboard.mjs`):
//! log in, see the workspace, edit a file, see the change without reloading, manage tokens.

use fulcrum_tests::*;

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

    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "run scripts/setup.sh to install the browser test's packages"
    );
    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .env("FULCRUM_URL", relay.url())
        .env("FULCRUM_EMAIL", &alice.email)
        .env("FULCRUM_PASSWORD", &alice.password)
        .env("FULCRUM_REPO_DIR", repo.path())
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(200), out)
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
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}

/// Projects and tasks in the browser (`tests/browser/tasks.mjs`): run a command and watch its
/// log live to the end, cancel a sleeping task, read a failing test run's results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_in_a_real_browser() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let repo = TestRepo::new();
    // A pytest run with a failing test, for the results view.
    repo.write("pytest.ini", "[pytest]\n");
    repo.write(
        "tests/test_shop.py",
        "def test_total():\n    assert 2 + 2 == 4\n\ndef test_discount():\n    assert 10 * 0.9 == 8\n",
    );
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let qa = post_task(
        &api,
        serde_json::json!({ "workspace_id": w["id"], "step": "qa" }),
    )
    .await;
    let qa_id = qa["id"].as_str().unwrap().to_owned();
    let done = events.task_finished(&qa_id).await.unwrap();
    assert_eq!(done["test_summary"]["failed"], 1, "{done:#}");

    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let shots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("tasks.mjs"))
        .env("FULCRUM_URL", relay.url())
        .env("FULCRUM_EMAIL", &alice.email)
        .env("FULCRUM_PASSWORD", &alice.password)
        .env("FULCRUM_WORKSPACE_ID", w["id"].as_str().unwrap())
        .env("FULCRUM_TEST_TASK_WITH_FAILURES", &qa_id)
        .env("FULCRUM_TEST_FAILING_TEST", "test_discount")
        .env("FULCRUM_QA_TIMEOUT_MS", "60000")
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), out)
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
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}
