//! The OpenAPI document at `/api/v1/openapi.json`, generated from the code, checked against the
//! running relay by a property-based tester no one here wrote: schemathesis (PyPI). It sends
//! generated valid and invalid requests to every documented operation and fails on a server
//! error, an undocumented status, a response that does not match its schema, or an invalid
//! request that is accepted.
//!
//! The user has no agent connected, so no generated command ever runs: tasks are refused with
//! 409 (workspace offline) or 404.

use fulcrum_tests::*;

/// Operations schemathesis must not call: logging out would end its own session.
const EXCLUDED_PATHS: &[&str] = &["/api/v1/auth/logout"];
/// Operations that take another kind of token than a login's: checked in a run of their own
/// with that token.
const INGEST_OPERATIONS: &[&str] = &["ingest_ai_activities"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_running_relay() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let user = make_user(&relay, "alice").await;
    // An administrator, so the admin operations are exercised too (a member gets only 403).
    fulcrum_relay::domain::accounts::set_role(
        &relay.state.store,
        &user.email,
        fulcrum_relay::store::UserRole::Admin,
    )
    .await
    .unwrap();

    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", relay.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}/logs",
        "/api/v1/projects/{id}/members",
        "/api/v1/workspaces/{id}",
        "/api/v1/tokens",
        "/health/ready",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    schemathesis(&relay.url(), &user.access, "--exclude-operation-id").await;
    // The ingestion door, with an ingest token.
    let r = Api::new(&relay.url())
        .with_token(&user.access)
        .post(
            "/api/v1/tokens",
            serde_json::json!({"name": "ingest", "kind": "ingest"}),
        )
        .await
        .unwrap();
    let ingest = r.data()["token"].as_str().unwrap().to_owned();
    schemathesis(&relay.url(), &ingest, "--include-operation-id").await;
    relay.shutdown().await.unwrap();
}

/// Runs schemathesis against the relay at `url` with `token`, on every operation but
/// [`INGEST_OPERATIONS`] (`--exclude-operation-id`) or on those only (`--include-operation-id`).
async fn schemathesis(url: &str, token: &str, ingest_filter: &str) {
    let venv = std::env::var("FULCRUM_SCHEMATHESIS_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/fulcrum/schemathesis-venv",
            std::env::var("HOME").unwrap()
        )
    });
    let st = std::path::Path::new(&venv).join("bin/st");
    assert!(
        st.exists(),
        "run scripts/setup.sh to install schemathesis ({} is missing)",
        st.display()
    );
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemathesis")
        .join("schemathesis.toml");
    // It keeps caches in its working directory: give it one of its own.
    let work = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&st);
    cmd.current_dir(work.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(["--url", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection,positive_data_acceptance,\
             missing_required_header,ignored_auth",
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", "30", "--seed", "42"])
        .args(["--generation-database", "none", "--workers", "2"])
        .args(["--request-timeout", "10", "--no-color"]);
    for path in EXCLUDED_PATHS {
        cmd.args(["--exclude-path", path]);
    }
    for op in INGEST_OPERATIONS {
        cmd.args([ingest_filter, op]);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), cmd.output())
        .await
        .expect("schemathesis finishes")
        .expect("schemathesis runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
}
