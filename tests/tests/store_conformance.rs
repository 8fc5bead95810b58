//! The storage conformance suite: the same checks against the SQLite and the PostgreSQL store,
//! through the `Store` trait only.

use chrono::{Duration, Utc};
use fulcrum_protocol::{AgentMessage, CoderFacts, Durable, RepoStatus, WorkspaceIdentity};
use fulcrum_relay::store::{
    self, AgentConnect, Applied, DynStore, NewRefreshToken, RefreshOutcome, StoreError,
};
use fulcrum_tests::*;
use uuid::Uuid;

both_backends!(
    users,
    refresh_tokens,
    agent_tokens,
    workspaces_and_exactly_once,
    secrets,
    sealed_secrets,
    invitations,
    pipelines,
    webhooks
);

async fn open(b: Backend) -> (TestDb, DynStore) {
    let db = TestDb::new(b).await;
    let store = store::open(&db.url)
        .await
        .expect("store opens and migrates");
    // Opening again runs no migration twice.
    store::open(&db.url).await.expect("store reopens");
    (db, store)
}

async fn users(b: Backend) {
    let (_db, s) = open(b).await;
    let u = s.create_user("a@example.com", "hash").await.unwrap();
    assert!(matches!(
        s.create_user("a@example.com", "other").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.user_by_email("a@example.com").await.unwrap().unwrap().id,
        u.id
    );
    assert_eq!(
        s.user_by_id(u.id).await.unwrap().unwrap().password_hash,
        "hash"
    );
    assert!(s.user_by_email("b@example.com").await.unwrap().is_none());
    assert!(s.user_by_id(Uuid::new_v4()).await.unwrap().is_none());
    assert!(
        !format!("{u:?}").contains("hash\""),
        "the password hash never prints"
    );
}

async fn refresh_tokens(b: Backend) {
    let (_db, s) = open(b).await;
    let u = s.create_user("a@example.com", "h").await.unwrap();
    let now = Utc::now();
    let family = Uuid::new_v4();
    s.insert_refresh_token(&NewRefreshToken {
        user_id: u.id,
        family_id: family,
        token_hash: "t1".into(),
        expires_at: now + Duration::days(1),
    })
    .await
    .unwrap();
    let later = now + Duration::days(1);
    assert_eq!(
        s.rotate_refresh_token("t1", "t2", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Rotated {
            user_id: u.id,
            family_id: family
        }
    );
    // t1 again is a replay: the family (t2 included) is revoked.
    assert_eq!(
        s.rotate_refresh_token("t1", "t3", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Reused {
            user_id: u.id,
            family_id: family
        }
    );
    assert_eq!(
        s.rotate_refresh_token("t2", "t4", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        s.rotate_refresh_token("unknown", "t5", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    // Expired tokens do not rotate (and are not consumed).
    s.insert_refresh_token(&NewRefreshToken {
        user_id: u.id,
        family_id: Uuid::new_v4(),
        token_hash: "old".into(),
        expires_at: now - Duration::seconds(1),
    })
    .await
    .unwrap();
    assert_eq!(
        s.rotate_refresh_token("old", "t6", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    // Logout revokes the family, and says which it was and whose.
    let login = Uuid::new_v4();
    s.insert_refresh_token(&NewRefreshToken {
        user_id: u.id,
        family_id: login,
        token_hash: "l1".into(),
        expires_at: later,
    })
    .await
    .unwrap();
    assert_eq!(
        s.revoke_refresh_family("l1", now).await.unwrap(),
        Some((u.id, login))
    );
    assert_eq!(s.revoke_refresh_family("nope", now).await.unwrap(), None);
    // A login that already ended does not end again.
    assert_eq!(s.revoke_refresh_family("l1", now).await.unwrap(), None);
    assert_eq!(
        s.rotate_refresh_token("l1", "l2", later, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

async fn agent_tokens(b: Backend) {
    let (_db, s) = open(b).await;
    let a = s.create_user("a@example.com", "h").await.unwrap();
    let bob = s.create_user("b@example.com", "h").await.unwrap();
    let t = s
        .create_agent_token(a.id, "laptop", "hash-1", "fca_abcd")
        .await
        .unwrap();
    s.create_agent_token(a.id, "ci", "hash-2", "fca_efgh")
        .await
        .unwrap();
    assert!(matches!(
        s.create_agent_token(bob.id, "dup", "hash-1", "x").await,
        Err(StoreError::Conflict(_))
    ));
    let listed = s.list_tokens(a.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ci", "laptop"],
        "newest first"
    );
    assert!(s.list_tokens(bob.id).await.unwrap().is_empty());
    assert_eq!(
        s.active_agent_token("hash-1")
            .await
            .unwrap()
            .unwrap()
            .owner_id,
        a.id
    );
    // Only the owner can revoke.
    assert!(!s.revoke_token(bob.id, t.id, Utc::now()).await.unwrap());
    assert!(s.active_agent_token("hash-1").await.unwrap().is_some());
    assert!(s.revoke_token(a.id, t.id, Utc::now()).await.unwrap());
    assert!(s.active_agent_token("hash-1").await.unwrap().is_none());
    assert!(
        s.list_tokens(a.id)
            .await
            .unwrap()
            .iter()
            .any(|t| t.revoked_at.is_some())
    );
}

fn identity(key: &str) -> WorkspaceIdentity {
    WorkspaceIdentity {
        key: key.into(),
        name: format!("ws-{key}"),
        hostname: "host".into(),
        root: "/src".into(),
        coder: Some(CoderFacts {
            workspace_name: Some("api".into()),
            ..Default::default()
        }),
    }
}

/// Applies one message as a batch of one.
async fn apply(
    s: &DynStore,
    owner: Uuid,
    ws: Uuid,
    stream: Uuid,
    seq: u64,
    msg: AgentMessage,
    now: chrono::DateTime<Utc>,
) -> Result<Applied, StoreError> {
    s.apply_agent_messages(owner, ws, stream, &[Durable { seq, body: msg }], now)
        .await
}

fn repo(path: &str, branch: &str) -> AgentMessage {
    AgentMessage::RepoState(RepoStatus {
        path: path.into(),
        branch: Some(branch.into()),
        ..Default::default()
    })
}

async fn workspaces_and_exactly_once(b: Backend) {
    let (_db, s) = open(b).await;
    let a = s.create_user("a@example.com", "h").await.unwrap();
    let bob = s.create_user("b@example.com", "h").await.unwrap();
    let ta = s.create_agent_token(a.id, "a", "ha", "p").await.unwrap();
    let tb = s.create_agent_token(bob.id, "b", "hb", "p").await.unwrap();
    let id = identity("k1");
    let stream = Uuid::new_v4();
    let now = Utc::now();
    let connect = |owner, token, stream| AgentConnect {
        owner_id: owner,
        token_id: token,
        identity: &id,
        agent_version: "1.0",
        agent_stream: stream,
        now,
    };

    let c = s
        .agent_connected(&connect(a.id, ta.id, stream))
        .await
        .unwrap();
    assert_eq!(c.agent_seq, 0);
    assert!(c.workspace.online);
    assert_eq!(
        c.workspace
            .coder
            .as_ref()
            .unwrap()
            .workspace_name
            .as_deref(),
        Some("api")
    );
    let ws = c.workspace.id;
    assert!(s.list_tokens(a.id).await.unwrap()[0].last_used_at.is_some());

    // In order, once.
    assert_eq!(
        apply(&s, a.id, ws, stream, 1, repo("b", "main"), now)
            .await
            .unwrap(),
        Applied::Applied
    );
    assert_eq!(
        apply(&s, a.id, ws, stream, 2, repo(".", "dev"), now)
            .await
            .unwrap(),
        Applied::Applied
    );
    assert_eq!(
        apply(&s, a.id, ws, stream, 2, repo(".", "replayed"), now)
            .await
            .unwrap(),
        Applied::Duplicate
    );
    assert_eq!(
        apply(&s, a.id, ws, stream, 4, repo(".", "gap"), now)
            .await
            .unwrap(),
        Applied::OutOfOrder
    );
    assert_eq!(
        apply(
            &s,
            a.id,
            ws,
            Uuid::new_v4(),
            3,
            repo(".", "other stream"),
            now
        )
        .await
        .unwrap(),
        Applied::OutOfOrder
    );
    // Another owner cannot write into this workspace even with the right stream and sequence.
    assert_eq!(
        apply(&s, bob.id, ws, stream, 3, repo(".", "bob"), now)
            .await
            .unwrap(),
        Applied::OutOfOrder
    );
    let w = s.get_workspace(a.id, ws).await.unwrap().unwrap();
    let repos: Vec<_> = w
        .repos
        .iter()
        .map(|r| (r.status.path.as_str(), r.status.branch.as_deref().unwrap()))
        .collect();
    assert_eq!(
        repos,
        [(".", "dev"), ("b", "main")],
        "sorted by path, replay and gap not applied"
    );

    // A repo set drops what is gone.
    assert_eq!(
        apply(
            &s,
            a.id,
            ws,
            stream,
            3,
            AgentMessage::RepoSet {
                paths: vec![".".into()]
            },
            now
        )
        .await
        .unwrap(),
        Applied::Applied
    );
    assert_eq!(
        s.get_workspace(a.id, ws)
            .await
            .unwrap()
            .unwrap()
            .repos
            .len(),
        1
    );

    // Reconnecting on the same stream keeps the position; a new stream starts over.
    assert_eq!(
        s.agent_connected(&connect(a.id, ta.id, stream))
            .await
            .unwrap()
            .agent_seq,
        3
    );
    let fresh = Uuid::new_v4();
    let again = s
        .agent_connected(&connect(a.id, ta.id, fresh))
        .await
        .unwrap();
    assert_eq!((again.workspace.id, again.agent_seq), (ws, 0));
    assert_eq!(
        apply(&s, a.id, ws, fresh, 1, repo(".", "new"), now)
            .await
            .unwrap(),
        Applied::Applied
    );

    // The same key under another owner is another workspace; each sees only its own.
    let other = s
        .agent_connected(&connect(bob.id, tb.id, Uuid::new_v4()))
        .await
        .unwrap();
    assert_ne!(other.workspace.id, ws);
    assert_eq!(s.list_workspaces(a.id).await.unwrap().len(), 1);
    assert_eq!(s.list_workspaces(bob.id).await.unwrap().len(), 1);
    assert!(s.get_workspace(bob.id, ws).await.unwrap().is_none());

    // A batch commits together and moves the position to its end; a non-contiguous one is refused.
    let batch: Vec<_> = (2..=4)
        .map(|seq| Durable {
            seq,
            body: repo(".", &format!("batch-{seq}")),
        })
        .collect();
    assert_eq!(
        s.apply_agent_messages(a.id, ws, fresh, &batch, now)
            .await
            .unwrap(),
        Applied::Applied
    );
    assert_eq!(
        s.get_workspace(a.id, ws).await.unwrap().unwrap().repos[0]
            .status
            .branch
            .as_deref(),
        Some("batch-4")
    );
    assert_eq!(
        s.apply_agent_messages(a.id, ws, fresh, &batch, now)
            .await
            .unwrap(),
        Applied::Duplicate
    );
    // A replay that overlaps the stored position applies only what is new.
    let overlap: Vec<_> = (3..=6)
        .map(|seq| Durable {
            seq,
            body: repo(".", &format!("overlap-{seq}")),
        })
        .collect();
    assert_eq!(
        s.apply_agent_messages(a.id, ws, fresh, &overlap, now)
            .await
            .unwrap(),
        Applied::Applied
    );
    let w = s.get_workspace(a.id, ws).await.unwrap().unwrap();
    assert_eq!(w.repos[0].status.branch.as_deref(), Some("overlap-6"));
    assert_eq!(
        s.agent_connected(&connect(a.id, ta.id, fresh))
            .await
            .unwrap()
            .agent_seq,
        6
    );
    // A batch after a gap, or not contiguous, changes nothing.
    let holey = vec![
        Durable {
            seq: 7,
            body: repo(".", "x"),
        },
        Durable {
            seq: 9,
            body: repo(".", "y"),
        },
    ];
    assert_eq!(
        s.apply_agent_messages(a.id, ws, fresh, &holey, now)
            .await
            .unwrap(),
        Applied::OutOfOrder
    );
    let gap = vec![Durable {
        seq: 9,
        body: repo(".", "z"),
    }];
    assert_eq!(
        s.apply_agent_messages(a.id, ws, fresh, &gap, now)
            .await
            .unwrap(),
        Applied::OutOfOrder
    );
    assert_eq!(
        s.agent_connected(&connect(a.id, ta.id, fresh))
            .await
            .unwrap()
            .agent_seq,
        6
    );

    // Presence.
    s.agent_disconnected(bob.id, ws, now, now).await.unwrap();
    assert!(
        s.get_workspace(a.id, ws).await.unwrap().unwrap().online,
        "another owner cannot take it offline"
    );
    s.agent_disconnected(a.id, ws, now, now).await.unwrap();
    let w = s.get_workspace(a.id, ws).await.unwrap().unwrap();
    assert!(!w.online && w.last_seen_at.is_some());
    s.mark_all_offline(now).await.unwrap();
    assert!(!s.list_workspaces(bob.id).await.unwrap()[0].online);
}

async fn secrets(b: Backend) {
    let (_db, s) = open(b).await;
    let first = s.secret("k", &|| vec![1, 2, 3]).await.unwrap();
    let second = s.secret("k", &|| vec![9]).await.unwrap();
    assert_eq!(first, vec![1, 2, 3]);
    assert_eq!(second, first, "a secret is generated once and shared");
    assert_eq!(s.secret("other", &|| vec![7]).await.unwrap(), vec![7]);
}

async fn sealed_secrets(b: Backend) {
    use fulcrum_relay::secrets::Sealed;
    let (_db, s) = open(b).await;
    let a = s.create_user("a@example.com", "h").await.unwrap();
    let bob = s.create_user("b@example.com", "h").await.unwrap();
    let now = Utc::now();
    let sealed = |key: &str, byte: u8| Sealed {
        key_id: key.into(),
        blob: vec![byte; 40],
    };
    s.put_sealed(a.id, "openai", &sealed("k1", 1), now)
        .await
        .unwrap();
    s.put_sealed(a.id, "github", &sealed("k1", 2), now)
        .await
        .unwrap();
    s.put_sealed(bob.id, "openai", &sealed("k2", 3), now)
        .await
        .unwrap();
    // Scoped by owner; a second put of a name replaces it.
    assert_eq!(
        s.sealed(a.id, "openai").await.unwrap(),
        Some(sealed("k1", 1))
    );
    assert_eq!(s.sealed(bob.id, "github").await.unwrap(), None);
    assert_eq!(s.sealed_names(a.id).await.unwrap(), ["github", "openai"]);
    s.put_sealed(a.id, "github", &sealed("k1", 4), now)
        .await
        .unwrap();
    assert_eq!(
        s.sealed(a.id, "github").await.unwrap(),
        Some(sealed("k1", 4))
    );
    assert_eq!(
        s.sealed_key_counts().await.unwrap(),
        [("k1".to_owned(), 2), ("k2".to_owned(), 1)]
    );
    // A rotation's view: what is not under k2, and a swap only of what is still there.
    let old = s.sealed_not_under("k2", 10).await.unwrap();
    assert_eq!(old.len(), 2);
    assert!(
        old.iter()
            .all(|(owner, _, x)| *owner == a.id && x.key_id == "k1")
    );
    assert_eq!(s.sealed_not_under("k2", 1).await.unwrap().len(), 1);
    assert!(
        s.reseal(a.id, "openai", &sealed("k1", 1), &sealed("k2", 9))
            .await
            .unwrap()
    );
    assert!(
        !s.reseal(a.id, "github", &sealed("k1", 2), &sealed("k2", 9))
            .await
            .unwrap(),
        "a value changed since it was read is not overwritten"
    );
    assert_eq!(
        s.sealed_sample("k2")
            .await
            .unwrap()
            .map(|(_, _, x)| x.key_id),
        Some("k2".to_owned())
    );
    assert!(s.delete_sealed(a.id, "openai").await.unwrap());
    assert!(!s.delete_sealed(a.id, "openai").await.unwrap());
    assert!(!s.delete_sealed(bob.id, "github").await.unwrap());
}

async fn invitations(b: Backend) {
    use fulcrum_relay::store::{NewProject, Role};
    let (_db, s) = open(b).await;
    let owner = s.create_user("owner@example.com", "h").await.unwrap();
    let bob = s.create_user("bob@example.com", "h").await.unwrap();
    let now = Utc::now();
    let p = s
        .create_project(
            owner.id,
            &NewProject {
                name: "Shop".into(),
                description: String::new(),
                repository_url: None,
                tech_stack: vec![],
            },
            now,
        )
        .await
        .unwrap();
    let week = now + Duration::days(7);
    let first = s
        .invite(p.id, "bob@example.com", Role::Viewer, owner.id, now, week)
        .await
        .unwrap();
    assert_eq!(
        (first.role, first.project_name.as_str()),
        (Role::Viewer, "Shop")
    );
    // Inviting again renews the same invitation with the new role.
    let again = s
        .invite(
            p.id,
            "bob@example.com",
            Role::Maintainer,
            owner.id,
            now,
            week,
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.role), (first.id, Role::Maintainer));
    // An expired one is neither listed nor accepted.
    let old = s
        .invite(
            p.id,
            "late@example.com",
            Role::Viewer,
            owner.id,
            now - Duration::days(8),
            now - Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(s.project_invitations(p.id, now).await.unwrap().len(), 1);
    assert!(
        s.invitations_for("late@example.com", now)
            .await
            .unwrap()
            .is_empty()
    );
    let late = s.create_user("late@example.com", "h").await.unwrap();
    assert_eq!(
        s.accept_invitation(late.id, "late@example.com", old.id, now)
            .await
            .unwrap(),
        None
    );
    // Only its addressee accepts it, once; the membership comes with it.
    assert_eq!(
        s.accept_invitation(late.id, "late@example.com", first.id, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.accept_invitation(bob.id, "bob@example.com", first.id, now)
            .await
            .unwrap(),
        Some(p.id)
    );
    assert_eq!(
        s.accept_invitation(bob.id, "bob@example.com", first.id, now)
            .await
            .unwrap(),
        None
    );
    let members = s.project_members(&p).await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.user_id == bob.id && m.role == Role::Maintainer)
    );
    // Withdraw and decline touch only their own project's or addressee's invitation.
    let c = s
        .invite(p.id, "carol@example.com", Role::Viewer, owner.id, now, week)
        .await
        .unwrap();
    assert!(!s.decline_invitation("bob@example.com", c.id).await.unwrap());
    assert!(!s.withdraw_invitation(Uuid::new_v4(), c.id).await.unwrap());
    assert!(
        s.decline_invitation("carol@example.com", c.id)
            .await
            .unwrap()
    );
    assert!(!s.withdraw_invitation(p.id, c.id).await.unwrap());
}

async fn pipelines(b: Backend) {
    use fulcrum_protocol::kinds::{
        BudgetPeriod, LlmCallState, ProviderKind, RunState, StageKind, StageState,
    };
    use fulcrum_relay::store::{
        NewProject,
        pipelines::{
            Budget, BudgetCheck, BudgetScope, CallOutcome, LlmProvider, NewArtifact, NewLlmCall,
            NewRun, PipelineRun, Reservation, RunAction, RunChange, StageChange, Step,
        },
    };
    let (_db, s) = open(b).await;
    let alice = s.create_user("alice@example.com", "h").await.unwrap();
    let now = Utc::now();
    let p = s
        .create_project(
            alice.id,
            &NewProject {
                name: "Gen".into(),
                description: String::new(),
                repository_url: None,
                tech_stack: vec![],
            },
            now,
        )
        .await
        .unwrap();
    // Providers: unique by name per owner, scoped to their owner.
    let provider = LlmProvider {
        id: Uuid::now_v7(),
        owner_id: alice.id,
        project_id: None,
        name: "main".into(),
        kind: ProviderKind::Anthropic,
        base_url: "https://api.example.com/v1".into(),
        default_model: "m".into(),
        key_hint: Some("…abcd".into()),
        created_at: now,
        updated_at: now,
    };
    s.create_provider(&provider).await.unwrap();
    let twin = LlmProvider {
        id: Uuid::now_v7(),
        ..provider.clone()
    };
    assert!(matches!(
        s.create_provider(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    let bob = s.create_user("bob@example.com", "h").await.unwrap();
    assert!(s.provider(bob.id, provider.id).await.unwrap().is_none());
    assert_eq!(
        s.list_providers(alice.id).await.unwrap()[0].kind,
        ProviderKind::Anthropic
    );
    // Budgets: one per scope and period; setting again replaces the limit.
    let budget = |project, limit| Budget {
        id: Uuid::now_v7(),
        owner_id: alice.id,
        project_id: project,
        period: BudgetPeriod::Month,
        limit_micros: limit,
        updated_at: now,
        alert_level: 0,
        alert_period: None,
    };
    let first = s.put_budget(&budget(Some(p.id), 1_000)).await.unwrap();
    let again = s.put_budget(&budget(Some(p.id), 5_000)).await.unwrap();
    assert_eq!((again.id, again.limit_micros), (first.id, 5_000));
    s.put_budget(&budget(None, 9_000)).await.unwrap();
    assert_eq!(s.budgets(alice.id, &[p.id]).await.unwrap().len(), 2);
    assert_eq!(s.budgets(bob.id, &[]).await.unwrap().len(), 0);

    // A run and its stages.
    let run = PipelineRun {
        id: Uuid::now_v7(),
        handle: "abcd2345".into(),
        project_id: p.id,
        workspace_id: None,
        started_by: alice.id,
        provider_id: Some(provider.id),
        pipeline: "docs".into(),
        definition: "name = \"docs\"".into(),
        definition_hash: "0".repeat(64),
        inputs: "{}".into(),
        state: RunState::Queued,
        reason: None,
        error: None,
        budget_micros: Some(3_000),
        cancel_requested: false,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    };
    s.create_run(&NewRun {
        run: run.clone(),
        stages: vec![
            ("a".into(), StageKind::Llm),
            ("gate".into(), StageKind::Approval),
        ],
    })
    .await
    .unwrap();
    assert_eq!(
        s.get_run(&p, run.id).await.unwrap().unwrap().handle,
        "abcd2345"
    );
    assert_eq!(s.list_runs(&p, 10).await.unwrap().len(), 1);

    // Claims: one node at a time; another takes over when the lease runs out.
    let lease = now + Duration::seconds(30);
    let claimed = s.claim_runs("n1", now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].state, RunState::Running);
    assert!(s.claim_runs("n2", now, lease, 10).await.unwrap().is_empty());
    assert_eq!(
        s.renew_run_lease(run.id, "n1", lease).await.unwrap(),
        Some(false)
    );
    let later = lease + Duration::seconds(1);
    let taken = s
        .claim_runs("n2", later, later + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "an expired lease is taken over");
    assert_eq!(s.renew_run_lease(run.id, "n1", later).await.unwrap(), None);
    // The old holder's step is fenced off; the new holder's lands with its artifacts.
    let step = |owner: &str, content: &str| Step {
        run_id: run.id,
        lease_owner: owner.into(),
        stages: vec![StageChange {
            name: "a".into(),
            state: StageState::Succeeded,
            attempt: 1,
            reason: None,
            error: None,
            output: Some("{}".into()),
            task_id: None,
            started_at: Some(now),
            finished_at: Some(now),
            result_of: None,
        }],
        artifacts: vec![NewArtifact {
            path: "out/a.md".into(),
            stage: "a".into(),
            attempt: 1,
            media_type: "text/markdown".into(),
            content: content.into(),
            sha256: "0".repeat(64),
        }],
        run: None,
        now,
    };
    assert!(!s.apply_step(&step("n1", "stale")).await.unwrap());
    assert!(
        s.artifacts(run.id).await.unwrap().is_empty(),
        "nothing of a fenced step"
    );
    assert!(s.apply_step(&step("n2", "first")).await.unwrap());
    assert!(s.apply_step(&step("n2", "second")).await.unwrap());
    let arts = s.artifacts(run.id).await.unwrap();
    assert_eq!(
        arts.len(),
        1,
        "a path is written once, the last content kept"
    );
    assert_eq!(
        s.artifact(run.id, "out/a.md")
            .await
            .unwrap()
            .unwrap()
            .content,
        "second"
    );
    // The result of an attempt lands only while its stage still runs at that attempt: a stage
    // reset meanwhile (here: succeeded already) keeps its state, and no artifact of it lands.
    let mut stale = step("n2", "from a stale attempt");
    stale.stages[0].result_of = Some(1);
    stale.stages[0].state = StageState::Failed;
    assert!(s.apply_step(&stale).await.unwrap(), "the lease still holds");
    assert_eq!(
        s.stages(run.id).await.unwrap()[0].state,
        StageState::Succeeded
    );
    assert_eq!(
        s.artifact(run.id, "out/a.md")
            .await
            .unwrap()
            .unwrap()
            .content,
        "second"
    );

    // Calls: journaled with a reservation that counts against budgets until settled.
    let call = |seq, reserve| NewLlmCall {
        id: Uuid::now_v7(),
        owner_id: alice.id,
        project_id: Some(p.id),
        run: Some((run.id, "a".into(), 1, seq)),
        provider_id: Some(provider.id),
        provider: ProviderKind::Anthropic,
        operation: "chat",
        request_model: "m".into(),
        reserved_micros: reserve,
        request: "{}".into(),
        now,
    };
    let checks = [
        BudgetCheck {
            scope: BudgetScope::Run(run.id),
            since: None,
            limit_micros: 3_000,
        },
        BudgetCheck {
            scope: BudgetScope::Project(p.id),
            since: Some(now - Duration::days(1)),
            limit_micros: 5_000,
        },
    ];
    let c0 = call(0, 2_000);
    assert_eq!(
        s.reserve_call(&c0, &checks).await.unwrap(),
        Reservation::Made
    );
    assert_eq!(
        s.reserve_call(&call(1, 2_000), &checks).await.unwrap(),
        Reservation::Refused {
            check: 0,
            spent_micros: 2_000
        }
    );
    assert!(
        s.run_call(run.id, "a", 1, 1).await.unwrap().is_none(),
        "a refused call is not kept"
    );
    let settled = CallOutcome {
        state: LlmCallState::Succeeded,
        response_model: Some("m-1".into()),
        response_id: Some("r1".into()),
        finish_reason: Some("end_turn".into()),
        input_tokens: 100,
        output_tokens: 50,
        cached_tokens: 10,
        usage_estimated: false,
        cost_micros: 700,
        latency_ms: Some(12),
        ttft_ms: Some(3),
        attempts: 1,
        error_code: None,
        error: None,
        response: Some("{}".into()),
        raw_response: Some("data: {}".into()),
        now,
    };
    s.settle_call(c0.id, &settled, None).await.unwrap();
    assert_eq!(s.spent(BudgetScope::Run(run.id), None).await.unwrap(), 700);
    assert_eq!(s.spent(BudgetScope::User(bob.id), None).await.unwrap(), 0);
    let journaled = s.run_call(run.id, "a", 1, 0).await.unwrap().unwrap();
    assert_eq!(
        (journaled.state, journaled.output_tokens),
        (LlmCallState::Succeeded, 50)
    );
    let dup = NewLlmCall {
        id: Uuid::now_v7(),
        ..call(0, 1)
    };
    assert!(
        s.reserve_call(&dup, &[]).await.is_err(),
        "one call per place"
    );
    let totals = s.run_totals(run.id).await.unwrap();
    assert_eq!(
        (
            totals[0].calls,
            totals[0].cost_micros,
            totals[0].cached_tokens
        ),
        (1, 700, 10)
    );

    // The gate waits with the run paused (the lease dropped); approving puts it back in line.
    let mut pause = step("n2", "second");
    pause.stages = vec![StageChange {
        name: "gate".into(),
        state: StageState::Waiting,
        attempt: 0,
        reason: Some("approval_required".into()),
        error: None,
        output: None,
        task_id: None,
        started_at: None,
        finished_at: None,
        result_of: None,
    }];
    pause.artifacts.clear();
    pause.run = Some(RunChange {
        generation: Some(fulcrum_protocol::kinds::ProjectGeneration::Generating),
        state: RunState::Paused,
        reason: Some("approval_required".into()),
        error: None,
        workspace_id: None,
    });
    assert!(s.apply_step(&pause).await.unwrap());
    // The project's generation status moved with the run, in the same step.
    assert_eq!(
        s.get_project(alice.id, p.id)
            .await
            .unwrap()
            .unwrap()
            .generation,
        fulcrum_protocol::kinds::ProjectGeneration::Generating
    );
    assert!(
        !s.act_on_run(
            run.id,
            &RunAction::Approve {
                stage: "a".into(),
                by: alice.id
            },
            now
        )
        .await
        .unwrap(),
        "not a gate"
    );
    assert!(
        s.act_on_run(
            run.id,
            &RunAction::Approve {
                stage: "gate".into(),
                by: alice.id
            },
            now
        )
        .await
        .unwrap()
    );
    let stages = s.stages(run.id).await.unwrap();
    assert_eq!(stages[1].state, StageState::Succeeded);
    assert_eq!(stages[1].decided_by, Some(alice.id));
    assert_eq!(
        s.run_unscoped(run.id).await.unwrap().unwrap().state,
        RunState::Queued
    );
    assert!(
        !s.act_on_run(
            run.id,
            &RunAction::Resume {
                reset: vec![],
                budget_micros: Some(1)
            },
            now
        )
        .await
        .unwrap(),
        "already in line"
    );
    assert_eq!(
        s.run_unscoped(run.id).await.unwrap().unwrap().budget_micros,
        Some(3_000),
        "a refused action changes nothing"
    );
    // Cancel a queued run: at once, its open stages skipped.
    assert!(s.act_on_run(run.id, &RunAction::Cancel, now).await.unwrap());
    let ended = s.run_unscoped(run.id).await.unwrap().unwrap();
    assert_eq!(
        (ended.state, ended.finished_at.is_some()),
        (RunState::Canceled, true)
    );
    assert!(!s.act_on_run(run.id, &RunAction::Cancel, now).await.unwrap());
    // Resume from a stage: it runs again, with the earlier outputs kept.
    assert!(
        s.act_on_run(
            run.id,
            &RunAction::Resume {
                reset: vec!["gate".into()],
                budget_micros: Some(9_000)
            },
            now
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.run_unscoped(run.id).await.unwrap().unwrap().budget_micros,
        Some(9_000)
    );
    let stages = s.stages(run.id).await.unwrap();
    assert_eq!(
        (stages[0].state, stages[1].state),
        (StageState::Succeeded, StageState::Pending)
    );
    assert_eq!(s.project_audience(p.id).await.unwrap(), vec![alice.id]);
    // Deployments: recorded once per id, newest first, per project.
    use fulcrum_protocol::kinds::{DeploymentSource, DeploymentState};
    let deployment = |minutes: i64, state| fulcrum_relay::store::pipelines::Deployment {
        id: Uuid::now_v7(),
        project_id: p.id,
        run_id: Some(run.id),
        task_id: None,
        source: DeploymentSource::Pipeline,
        environment: "deploy".into(),
        url: Some("http://127.0.0.1:8000".into()),
        commit_sha: Some("abc".into()),
        state,
        created_by: alice.id,
        created_at: now + chrono::Duration::minutes(minutes),
    };
    let first = deployment(0, DeploymentState::Failed);
    let second = deployment(1, DeploymentState::Succeeded);
    for d in [&first, &second, &first] {
        s.record_deployment(d).await.unwrap();
    }
    let listed = s.list_deployments(p.id, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second.id);
    assert_eq!(listed[1].state, DeploymentState::Failed);
    assert!(
        s.list_deployments(Uuid::now_v7(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn webhooks(b: Backend) {
    use fulcrum_protocol::kinds::{DeliveryState, WebhookEventKind};
    use store::webhooks::{
        Attempt, AttemptOutcome, AttemptRecord, Delivery, Endpoint, WebhookEvent,
    };
    let (_db, s) = open(b).await;
    let u = s.create_user("a@example.com", "h").await.unwrap();
    let now = Utc::now();
    let e = Endpoint {
        id: Uuid::now_v7(),
        owner_id: u.id,
        project_id: None,
        url: "https://hooks.example.com/a".into(),
        description: String::new(),
        events: "webhook_test".into(),
        enabled: true,
        disabled_reason: None,
        previous_until: None,
        created_at: now,
        updated_at: now,
    };
    s.create_endpoint(&e).await.unwrap();
    // Two events, each fanned out once (a second fan-out of the same event writes nothing).
    let mut ids = Vec::new();
    for _ in 0..2 {
        let ev = WebhookEvent {
            id: Uuid::now_v7(),
            kind: WebhookEventKind::WebhookTest,
            owner_id: u.id,
            project_id: None,
            endpoint_id: Some(e.id),
            subject_id: None,
            data: "{}".into(),
            created_at: now,
        };
        s.add_event(&ev).await.unwrap();
        let d = Delivery {
            id: Uuid::now_v7(),
            endpoint_id: e.id,
            event_id: ev.id,
            kind: ev.kind,
            payload: "{}".into(),
            state: DeliveryState::Pending,
            attempts: 0,
            schedule_base: 0,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
            created_at: now,
            finished_at: None,
        };
        assert!(s.fan_out(ev.id, std::slice::from_ref(&d)).await.unwrap());
        assert!(!s.fan_out(ev.id, std::slice::from_ref(&d)).await.unwrap());
        ids.push(d.id);
    }
    assert!(s.pending_events(10).await.unwrap().is_empty());
    // One worker an endpoint: the first claim takes it with its oldest delivery, the second
    // finds it busy.
    let lease = now + Duration::seconds(60);
    let due = s.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery.id, ids[0]);
    assert!(s.claim_due(now, lease, 10).await.unwrap().is_empty());
    // Delivered long ago: the next one comes with it; the same attempt again writes nothing.
    let old = now - Duration::days(40);
    let delivered = AttemptRecord {
        delivery: ids[0],
        endpoint: e.id,
        attempt: Attempt {
            attempt: 1,
            at: old,
            status: Some(204),
            error: None,
            duration_ms: 3,
        },
        outcome: AttemptOutcome::Delivered,
    };
    let next = s.record_attempt(&delivered, now, lease).await.unwrap();
    assert_eq!(next.map(|d| d.id), Some(ids[1]));
    assert!(
        s.record_attempt(&delivered, now, lease)
            .await
            .unwrap()
            .is_none()
    );
    // A retry gives the endpoint up until the delivery is due.
    let at = now + Duration::seconds(30);
    let retry = AttemptRecord {
        delivery: ids[1],
        endpoint: e.id,
        attempt: Attempt {
            attempt: 1,
            at: now,
            status: Some(500),
            error: None,
            duration_ms: 3,
        },
        outcome: AttemptOutcome::Retry(at),
    };
    assert!(
        s.record_attempt(&retry, now, lease)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.claim_due(now, lease, 10).await.unwrap().is_empty());
    let later = at + Duration::seconds(1);
    let due = s
        .claim_due(later, later + Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].delivery.id, due[0].delivery.attempts), (ids[1], 1));
    // The log keeps what is recent or pending.
    assert_eq!(
        s.prune_deliveries(now - Duration::days(30), 10)
            .await
            .unwrap(),
        1
    );
    let left = s.deliveries(e.id, None, 10).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
    assert!(s.delivery(e.id, ids[0]).await.unwrap().is_none());
    // A rotation's window, once over, is handed out once.
    assert!(
        s.set_previous_until(e.id, now - Duration::seconds(1), now)
            .await
            .unwrap()
    );
    assert_eq!(s.expired_rotations(now).await.unwrap(), [(e.id, u.id)]);
    assert!(s.expired_rotations(now).await.unwrap().is_empty());
}
