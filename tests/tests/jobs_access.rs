//! Who may see and run tasks: another user can neither see nor touch a task through REST or the
//! events socket; project roles decide who runs (viewers read, maintainers run, owners manage);
//! bad input is refused with a clear error and changes nothing.

use fulcrum_tests::*;
use serde_json::json;

both_backends!(
    another_user_cannot_see_or_touch_tasks,
    project_roles_decide_who_runs
);

async fn another_user_cannot_see_or_touch_tasks(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    let mut alice_events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let mut bob_events = Events::connect(&relay.url(), &bob.access).await.unwrap();
    let repo = TestRepo::new();
    let _agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let w = alice_events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let ws = w["id"].as_str().unwrap();
    let task = post_task(
        &a,
        json!({ "workspace_id": ws, "command": "echo alice-secret; sleep 30" }),
    )
    .await;
    let t = id(&task);
    alice_events.wait_log(&t, 5).await.unwrap();

    // REST: every door answers as if the task did not exist.
    for path in [
        format!("/api/v1/tasks/{t}"),
        format!("/api/v1/tasks/{t}/logs"),
    ] {
        let r = bo.get(&path).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {:#}", r.body);
    }
    for path in [
        format!("/api/v1/tasks/{t}/cancel"),
        format!("/api/v1/tasks/{t}/rerun"),
    ] {
        let r = bo.post(&path, json!({})).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {:#}", r.body);
    }
    let listed = bo
        .get(&format!("/api/v1/tasks?workspace={ws}"))
        .await
        .unwrap();
    assert_eq!(listed.body["meta"]["total"], 0);
    assert_eq!(
        bo.get("/api/v1/tasks").await.unwrap().body["meta"]["total"],
        0
    );
    // Running in her workspace is refused the same way.
    let r = bo
        .post(
            "/api/v1/tasks",
            json!({ "workspace_id": ws, "command": "echo bob was here" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // WebSocket: following her log is refused, and no event about her task reached Bob.
    bob_events
        .request(json!({ "type": "follow", "task": t, "offset": 0 }))
        .await
        .unwrap();
    loop {
        let v = bob_events.next().await.unwrap();
        assert_ne!(v["type"], "task", "bob saw a task event: {v:#}");
        assert_ne!(v["type"], "log", "bob saw a log: {v:#}");
        if v["type"] == "error" {
            assert_eq!(v["task"], t.as_str());
            break;
        }
    }

    // Her task still runs, untouched; she cancels it.
    let r = a
        .post(&format!("/api/v1/tasks/{t}/cancel"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let done = alice_events.task_finished(&t).await.unwrap();
    assert_eq!(done["state"], "canceled");
    assert_eq!(task_log(&a, &t).await.unwrap(), b"alice-secret\n".to_vec());
    relay.shutdown().await.unwrap();
}

async fn project_roles_decide_who_runs(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let carol = make_user(&relay, "carol").await;
    let dave = make_user(&relay, "dave").await;
    let bob = make_user(&relay, "bob").await;
    let a = Api::new(&relay.url()).with_token(&alice.access);
    let c = Api::new(&relay.url()).with_token(&carol.access);
    let d = Api::new(&relay.url()).with_token(&dave.access);
    let bo = Api::new(&relay.url()).with_token(&bob.access);
    let mut alice_events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let mut dave_events = Events::connect(&relay.url(), &dave.access).await.unwrap();
    let repo = TestRepo::new();
    let _agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let w = alice_events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    let ws = w["id"].as_str().unwrap().to_owned();

    let r = a
        .post(
            "/api/v1/projects",
            json!({ "name": "Shop", "description": "the web shop",
                    "repository_url": "https://git.example.com/shop.git",
                    "tech_stack": ["rust", "postgres"] }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:#}", r.body);
    let p = id(r.data());
    assert_eq!(r.data()["role"], "owner");
    assert_eq!(r.data()["status"], "active");
    let r = a
        .put(&format!("/api/v1/projects/{p}/workspaces/{ws}"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["workspace_ids"], json!([ws]));
    add_member(&a, &c, &p, &carol.email, "viewer").await;
    add_member(&a, &d, &p, &dave.email, "maintainer").await;

    // The viewer sees the project but cannot run in it.
    let r = c.get(&format!("/api/v1/projects/{p}")).await.unwrap();
    assert_eq!(r.data()["role"], "viewer");
    let r = c
        .post(
            "/api/v1/tasks",
            json!({ "project_id": p, "command": "echo viewer" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{:#}", r.body);
    assert_eq!(r.error_code(), "forbidden");

    // The maintainer runs through the project: the relay picks its online workspace.
    let task = post_task(&d, json!({ "project_id": p, "command": "echo by dave" })).await;
    assert_eq!(task["workspace_id"], ws.as_str());
    assert_eq!(task["project_id"], p.as_str());
    let done = dave_events.task_finished(&id(&task)).await.unwrap();
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["triggered_by_email"], dave.email.as_str());
    // Project members read its tasks and logs; the viewer still cannot cancel or re-run.
    let r = c
        .get(&format!("/api/v1/tasks/{}", id(&task)))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        task_log(&c, &id(&task)).await.unwrap(),
        b"by dave\n".to_vec()
    );
    let r = c
        .post(&format!("/api/v1/tasks/{}/rerun", id(&task)), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let listed = c.get(&format!("/api/v1/tasks?project={p}")).await.unwrap();
    assert_eq!(listed.body["meta"]["total"], 1);
    // The project's status shows the workspace and the run.
    let st = c
        .get(&format!("/api/v1/projects/{p}/status"))
        .await
        .unwrap();
    assert_eq!(st.status, 200);
    assert_eq!(st.data()["health"], "healthy");
    assert_eq!(st.data()["workspaces"][0]["online"], true);
    assert_eq!(st.data()["last_tasks"][0]["id"], task["id"]);

    // Only the owner manages members and archives; a maintainer may edit.
    let r = d
        .put(
            &format!("/api/v1/projects/{p}/members"),
            json!({ "email": bob.email, "role": "maintainer" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = d
        .post(&format!("/api/v1/projects/{p}/archive"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = d
        .patch(
            &format!("/api/v1/projects/{p}"),
            json!({ "name": "Shop 2" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["name"], "Shop 2");

    // A stranger sees nothing of it.
    for path in [
        format!("/api/v1/projects/{p}"),
        format!("/api/v1/projects/{p}/status"),
        format!("/api/v1/tasks/{}", id(&task)),
    ] {
        assert_eq!(bo.get(&path).await.unwrap().status, 404, "{path}");
    }
    assert_eq!(bo.get("/api/v1/projects").await.unwrap().data(), &json!([]));
    let r = bo
        .post(
            "/api/v1/tasks",
            json!({ "project_id": p, "command": "true" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Archived: nothing more runs in it.
    let r = a
        .post(&format!("/api/v1/projects/{p}/archive"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.data()["status"], "archived");
    let r = d
        .post(
            "/api/v1/tasks",
            json!({ "project_id": p, "command": "true" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "project_archived");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_task_input_is_refused_and_changes_nothing() {
    let Rig {
        relay,
        api: a,
        mut events,
        repo,
        agent,
        workspace: ws,
        db: _db,
        ..
    } = rig(Backend::Sqlite, RelayOptions::default()).await;

    let unknown = uuid::Uuid::new_v4();
    let refused = [
        (json!({ "workspace_id": unknown, "command": "true" }), 404),
        (json!({ "project_id": unknown, "command": "true" }), 404),
        (json!({ "command": "true" }), 422),
        (
            json!({ "workspace_id": ws, "command": "true", "step": "qa" }),
            422,
        ),
        (json!({ "workspace_id": ws }), 422),
        (json!({ "workspace_id": ws, "command": "   " }), 422),
        (
            json!({ "workspace_id": ws, "command": "x".repeat(9000) }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "timeout_s": -5 }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "timeout_s": 0 }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "timeout_s": 1_000_000_000u64 }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "env": { "1BAD": "x" } }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "repo": "../elsewhere" }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "repo": "/etc" }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "step": "no spaces allowed" }),
            422,
        ),
        (
            json!({ "workspace_id": ws, "command": "true", "colour": "red" }),
            422,
        ),
    ];
    for (body, status) in refused {
        let r = a.post("/api/v1/tasks", body.clone()).await.unwrap();
        assert_eq!(r.status, status, "{body}: {:#}", r.body);
        assert!(
            !r.body["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "a message for people: {:#}",
            r.body
        );
    }
    for query in ["state=exploded", "page=abc", "workspace=not-a-uuid"] {
        let r = a.get(&format!("/api/v1/tasks?{query}")).await.unwrap();
        assert_eq!(r.status, 422, "{query}");
    }
    assert_eq!(
        a.get("/api/v1/tasks").await.unwrap().body["meta"]["total"],
        0,
        "nothing was recorded"
    );

    // Accepted, but cannot succeed: each ends with a clear reason.
    let missing = post_task(
        &a,
        json!({ "workspace_id": ws, "command": "no-such-command-fulcrum-test" }),
    )
    .await;
    let done = events.task_finished(&id(&missing)).await.unwrap();
    assert_eq!(done["state"], "failed");
    assert_eq!(done["exit_code"], 127);
    let log = String::from_utf8(task_log(&a, &id(&missing)).await.unwrap()).unwrap();
    assert!(log.contains("not found"), "{log}");

    let nodir = post_task(
        &a,
        json!({ "workspace_id": ws, "command": "true", "repo": "no/such/dir" }),
    )
    .await;
    let done = events.task_finished(&id(&nodir)).await.unwrap();
    assert_eq!(done["state"], "failed");
    assert!(
        done["error"].as_str().unwrap().contains("no directory"),
        "{done:#}"
    );

    repo.write(
        "fulcrum.toml",
        "[[steps]]\nname = \"test\"\ncommand = \"true\"\ntimeout_s = \"soon\"\n",
    );
    let bad_toml = post_task(&a, json!({ "workspace_id": ws, "step": "qa" })).await;
    let done = events.task_finished(&id(&bad_toml)).await.unwrap();
    assert_eq!(done["state"], "failed");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("fulcrum.toml") && error.contains("line 4"),
        "{error}"
    );

    // Offline: a clear 409, nothing recorded.
    agent.agent.stop().await;
    events
        .workspace_where(|w| w["online"] == false)
        .await
        .unwrap();
    let before = a.get("/api/v1/tasks").await.unwrap().body["meta"]["total"].clone();
    let r = a
        .post(
            "/api/v1/tasks",
            json!({ "workspace_id": ws, "command": "true" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "workspace_offline");
    assert_eq!(
        a.get("/api/v1/tasks").await.unwrap().body["meta"]["total"],
        before
    );
    relay.shutdown().await.unwrap();
}
