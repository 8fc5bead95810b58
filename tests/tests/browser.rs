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
