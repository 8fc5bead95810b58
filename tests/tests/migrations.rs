//! Schema upgrades and the closed sets: a database populated under the previous migrations
//! keeps every row through the CHECK-constraint migration (a table rebuild on SQLite), and the
//! databases then refuse any value outside the relay's enums.

use chrono::Utc;
use fulcrum_protocol::TaskState;
use fulcrum_relay::store::{self, NewProject, ProjectStatus, Role, TaskFilter, TaskSource};
use fulcrum_tests::*;
use std::str::FromStr;

use uuid::Uuid;

both_backends!(
    an_existing_install_upgrades_and_loses_nothing,
    the_databases_refuse_values_outside_the_enums
);

/// The last migration before the closed sets were checked.
const BEFORE: i64 = 4;

/// Runs one statement with `binds` on the test's database directly (either kind): rows written
/// with the columns of the schema at [`BEFORE`], which the store's code no longer writes.
macro_rules! old_row {
    ($db:expr, $sql:expr, $($bind:expr),+) => {
        if $db.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&$db.url).await.unwrap();
            sqlx::query($sql)$(.bind($bind))+.execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&$db.url).await.unwrap();
            sqlx::query($sql)$(.bind($bind))+.execute(&pool).await.unwrap();
            pool.close().await;
        }
    };
}

/// A user as the schema at [`BEFORE`] had them.
struct OldUser {
    id: Uuid,
}

impl OldUser {
    async fn insert(db: &TestDb, email: &str) -> Self {
        let id = Uuid::now_v7();
        old_row!(
            db,
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, 'h', $3)",
            id,
            email,
            Utc::now()
        );
        Self { id }
    }

    /// An agent token of theirs, as that schema had it.
    async fn agent_token(&self, db: &TestDb) -> OldToken {
        self.token(db, "agent", false).await
    }

    /// A token of theirs of `kind`, maybe read-only, as that schema had it.
    async fn token(&self, db: &TestDb, kind: &str, read_only: bool) -> OldToken {
        let id = Uuid::now_v7();
        old_row!(
            db,
            "INSERT INTO agent_tokens \
             (id, owner_id, name, prefix, token_hash, created_at, kind, read_only) \
             VALUES ($1, $2, 'ws', 'fca_x', $3, $4, $5, $6)",
            id,
            self.id,
            id.to_string(),
            Utc::now(),
            kind,
            read_only
        );
        OldToken { id }
    }
}

/// A token as the schema at [`BEFORE`] had it.
struct OldToken {
    id: Uuid,
}

async fn an_existing_install_upgrades_and_loses_nothing(b: Backend) {
    let db = TestDb::new(b).await;
    let now = Utc::now();
    let old = store::open_upto(&db.url, BEFORE).await.unwrap();
    // Users as that schema had them (the store's code reads the columns later migrations add).
    let alice = OldUser::insert(&db, "alice@example.com").await;
    let bob = OldUser::insert(&db, "bob@example.com").await;
    let token = alice.agent_token(&db).await;
    let mcp_read = alice.token(&db, "mcp", true).await;
    let mcp_all = bob.token(&db, "mcp", false).await;
    let stream = Uuid::new_v4();
    // A workspace its agent connected from, as that schema had it.
    let ws_id = Uuid::now_v7();
    old_row!(
        db,
        "INSERT INTO workspaces (id, owner_id, key, name, hostname, root, agent_version, online, \
         connected_at, last_seen_at, agent_stream, agent_seq, created_at) \
         VALUES ($1, $2, 'k', 'ws', 'host', '/src', '1', TRUE, $3, $3, $4, 0, $3)",
        ws_id,
        alice.id,
        now,
        stream
    );
    let ws = old
        .get_workspace(alice.id, ws_id)
        .await
        .unwrap()
        .expect("the workspace");
    // A project, as that schema had them (no generation status yet).
    let project_id = Uuid::now_v7();
    old_row!(
        db,
        "INSERT INTO projects (id, owner_id, name, description, tech_stack, status, created_at, \
         updated_at) VALUES ($1, $2, 'Shop', 'the shop', '[\"rust\"]', 'active', $3, $3)",
        project_id,
        alice.id,
        now
    );
    old_row!(
        db,
        "INSERT INTO project_members (project_id, user_id, role, added_at) \
         VALUES ($1, $2, 'owner', $3)",
        project_id,
        alice.id,
        now
    );
    old.set_project_workspace(alice.id, project_id, ws.id, true)
        .await
        .unwrap();
    old.set_project_member(project_id, bob.id, Role::Viewer, now)
        .await
        .unwrap();
    let invitation = old
        .invite(
            project_id,
            "carol@example.com",
            Role::Maintainer,
            alice.id,
            now,
            now + chrono::Duration::days(7),
        )
        .await
        .unwrap();
    // Tasks in every source that schema had, one finished with a log, the others still
    // dispatched (`pipeline` came later).
    let mut ids = Vec::new();
    let old_sources = TaskSource::ALL
        .iter()
        .filter(|s| **s != TaskSource::Pipeline);
    for (i, source) in old_sources.enumerate() {
        let id = Uuid::now_v7();
        old_row!(
            db,
            "INSERT INTO tasks (id, owner_id, project_id, workspace_id, repo, command, env, \
             timeout_s, state, created_at, dispatched_at, triggered_by, source, log_limit) \
             VALUES ($1, $2, $3, $4, '.', $5, '{\"SECRET\":\"x\"}', 60, 'dispatched', $6, $6, \
             $2, $7, 1048576)",
            id,
            alice.id,
            project_id,
            ws.id,
            format!("echo {source}"),
            now + chrono::Duration::milliseconds(i as i64),
            source.as_str()
        );
        ids.push(id);
    }
    let log = b"line one\nline two\n".to_vec();
    old_row!(
        db,
        "UPDATE tasks SET state = 'failed', exit_code = 3, started_at = $2, finished_at = $2, \
         duration_ms = 5, commit_sha = 'abc', branch = 'main', log_bytes = 18 WHERE id = $1",
        ids[0],
        now
    );
    old_row!(
        db,
        "INSERT INTO task_logs (task_id, byte_offset, data) VALUES ($1, 0, $2)",
        ids[0],
        log.clone()
    );
    let filter = TaskFilter {
        page: 1,
        per_page: 50,
        ..Default::default()
    };
    drop(old);

    // The upgrade: every row is still there, as it was.
    let new = store::open(&db.url).await.unwrap();
    let project = new
        .get_project(alice.id, project_id)
        .await
        .unwrap()
        .expect("the project");
    // Users made before the profile columns read back with an empty name and defaults.
    let upgraded = new.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(upgraded.email, "alice@example.com");
    assert_eq!(upgraded.full_name, "");
    assert_eq!(upgraded.preferences, store::Preferences::default());
    assert!(upgraded.deactivated_at.is_none());
    let tokens = new.list_tokens(alice.id).await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens.iter().all(|t| t.expires_at.is_none()),
        "old tokens do not expire"
    );
    // `read_only` became scopes: agent tokens read and run, read-only MCP tokens read, other
    // MCP tokens read, write and run.
    let scopes = |id: Uuid, list: &[store::Token]| {
        list.iter().find(|t| t.id == id).unwrap().scopes.to_string()
    };
    assert_eq!(scopes(token.id, &tokens), "read run");
    assert_eq!(scopes(mcp_read.id, &tokens), "read");
    let bobs = new.list_tokens(bob.id).await.unwrap();
    assert_eq!(scopes(mcp_all.id, &bobs), "read write run");
    assert_eq!(upgraded.role, store::UserRole::Member);
    let (after, total) = new.list_tasks(alice.id, &filter).await.unwrap();
    assert_eq!(total, 3);
    // Numbered in the order they were made, from 1, in their workspace.
    let mut numbered: Vec<(Uuid, Option<i64>)> = after.iter().map(|t| (t.id, t.number)).collect();
    numbered.sort_by_key(|(_, n)| *n);
    assert_eq!(
        numbered,
        vec![(ids[0], Some(1)), (ids[1], Some(2)), (ids[2], Some(3))]
    );
    assert!(
        after
            .iter()
            .all(|t| t.command.as_deref().is_some_and(|c| c.starts_with("echo ")))
    );
    let finished = new.get_task(bob.id, ids[0]).await.unwrap().unwrap();
    assert_eq!(finished.state, TaskState::Failed);
    assert_eq!(finished.exit_code, Some(3));
    assert_eq!(finished.env.get("SECRET").map(String::as_str), Some("x"));
    let chunks = new.read_log(&finished, 0, 1024).await.unwrap();
    assert_eq!(chunks, vec![(0, log)]);
    let queued = new.get_task(alice.id, ids[1]).await.unwrap().unwrap();
    assert_eq!(queued.state, TaskState::Dispatched);
    assert_eq!(queued.source, TaskSource::ALL[1]);
    // The project reads back as it was, as a draft that nothing generated yet.
    let (name, description, tech_stack, role, generation) = (
        &project.name,
        &project.description,
        &project.tech_stack,
        project.role,
        project.generation,
    );
    assert_eq!(
        (
            name.as_str(),
            description.as_str(),
            tech_stack.clone(),
            role,
            generation
        ),
        (
            "Shop",
            "the shop",
            vec!["rust".to_owned()],
            Role::Owner,
            fulcrum_protocol::kinds::ProjectGeneration::Draft
        )
    );
    assert_eq!(
        new.get_project(bob.id, project.id)
            .await
            .unwrap()
            .map(|p| p.role),
        Some(Role::Viewer)
    );
    let members = new.project_members(&project).await.unwrap();
    assert_eq!(members.len(), 2);
    let pending = new.project_invitations(project.id, now).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, invitation.id);
    assert_eq!(new.list_workspaces(alice.id).await.unwrap().len(), 1);
    let resumable = new.tasks_to_resume(alice.id, ws.id).await.unwrap();
    assert_eq!(resumable.len(), 2);
    // The rebuilt tables still point at their parents: removing the project takes its
    // members and invitations with it and leaves its tasks, as before.
    assert!(accepts(&db, &delete_project(&db, project.id)).await);
    let (left, _) = new.list_tasks(alice.id, &filter).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|t| t.project_id.is_none()));
    assert!(new.project_members(&project).await.unwrap().is_empty());
    assert!(
        new.project_invitations(project.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(new.read_log(&finished, 0, 1024).await.unwrap().len(), 1);
}

/// Runs `sql` on a bare SQLite connection with foreign keys off (so only a CHECK can refuse),
/// then empties the tasks table; true if it was accepted.
async fn bare(db: &TestDb, sql: String) -> bool {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut c)
        .await
        .unwrap();
    let ok = sqlx::query(&sql).execute(&mut c).await.is_ok();
    sqlx::query("DELETE FROM tasks")
        .execute(&mut c)
        .await
        .unwrap();
    ok
}

/// `id` as a literal of the database's UUID column type.
fn uuid_literal(db: &TestDb, id: Uuid) -> String {
    if db.url.starts_with("sqlite:") {
        format!("x'{}'", id.simple())
    } else {
        format!("'{id}'")
    }
}

fn delete_project(db: &TestDb, id: Uuid) -> String {
    format!("DELETE FROM projects WHERE id = {}", uuid_literal(db, id))
}

/// Runs `sql` on the test database directly; true if the database accepted it.
async fn accepts(db: &TestDb, sql: &str) -> bool {
    use sqlx::{ConnectOptions, Connection};
    if db.url.starts_with("sqlite:") {
        // As the relay connects: with foreign keys on.
        let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
            .unwrap()
            .foreign_keys(true)
            .connect()
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut c).await.is_ok()
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.is_ok()
    }
}

async fn the_databases_refuse_values_outside_the_enums(b: Backend) {
    let db = TestDb::new(b).await;
    let s = store::open(&db.url).await.unwrap();
    let alice = s.create_user("alice@example.com", "h").await.unwrap();
    let project = s
        .create_project(
            alice.id,
            &NewProject {
                name: "Shop".into(),
                description: String::new(),
                repository_url: None,
                tech_stack: vec![],
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let p = uuid_literal(&db, project.id);
    let update = |table: &str, column: &str, value: &str| {
        let key = if table == "projects" {
            "id"
        } else {
            "project_id"
        };
        format!("UPDATE {table} SET {column} = '{value}' WHERE {key} = {p}")
    };
    // Every value of each enum is accepted; anything else is refused by the database itself.
    for status in ProjectStatus::ALL {
        assert!(accepts(&db, &update("projects", "status", status.as_str())).await);
    }
    assert!(!accepts(&db, &update("projects", "status", "deleted")).await);
    for g in fulcrum_protocol::kinds::ProjectGeneration::ALL {
        assert!(accepts(&db, &update("projects", "generation", g.as_str())).await);
    }
    assert!(!accepts(&db, &update("projects", "generation", "done")).await);
    // Deployments: their state and source are closed sets too.
    let deployment = |state: &str, source: &str| {
        format!(
            "INSERT INTO deployments (id, project_id, source, environment, state, created_by, \
             created_at) SELECT {id}, {p}, '{source}', 'deploy', '{state}', owner_id, \
             '2026-01-01T00:00:00Z' FROM projects WHERE id = {p}",
            id = uuid_literal(&db, Uuid::now_v7())
        )
    };
    for state in fulcrum_protocol::kinds::DeploymentState::ALL {
        for source in fulcrum_protocol::kinds::DeploymentSource::ALL {
            assert!(accepts(&db, &deployment(state.as_str(), source.as_str())).await);
        }
    }
    assert!(!accepts(&db, &deployment("running", "pipeline")).await);
    assert!(!accepts(&db, &deployment("succeeded", "ftp")).await);
    for role in Role::ALL {
        assert!(accepts(&db, &update("project_members", "role", role.as_str())).await);
    }
    assert!(!accepts(&db, &update("project_members", "role", "admin")).await);
    // A task row of the given state and source (its workspace is made up: foreign keys are
    // off on the bare SQLite connection below, so only the CHECK can refuse it).
    let task_row = |state: &str, source: &str| {
        format!(
            "INSERT INTO tasks (id, owner_id, workspace_id, repo, env, timeout_s, state, \
             created_at, triggered_by, source, log_limit) SELECT x'00', id, x'00', '.', '{{}}', \
             1, '{state}', '2026-01-01', id, '{source}', 1 FROM users"
        )
    };
    if db.url.starts_with("sqlite:") {
        for state in TaskState::ALL {
            assert!(bare(&db, task_row(state.as_str(), "api")).await, "{state}");
        }
        for source in TaskSource::ALL {
            assert!(
                bare(&db, task_row("queued", source.as_str())).await,
                "{source}"
            );
        }
        assert!(!bare(&db, task_row("done", "api")).await);
        assert!(!bare(&db, task_row("queued", "cron")).await);
    } else {
        // The constraints name exactly the enums' values.
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        for (column, expected) in [
            (
                "state",
                TaskState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "source",
                TaskSource::ALL.iter().map(|s| s.as_str()).collect(),
            ),
        ] {
            let def: String = sqlx::query_scalar(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
            )
            .bind(format!("tasks_{column}_check"))
            .fetch_one(&mut c)
            .await
            .unwrap();
            let mut named: Vec<&str> = def.split('\'').skip(1).step_by(2).collect();
            named.sort_unstable();
            let mut want = expected.clone();
            want.sort_unstable();
            assert_eq!(named, want, "{def}");
        }
    }
}
