//! Bad input gets a clear error and changes nothing; the relay keeps serving everyone else.

use fulcrum_agent::status::ConnectionState;
use fulcrum_protocol::{AgentFrame, AgentMessage, Durable, RejectReason, RelayFrame, RepoStatus};
use fulcrum_tests::*;
use serde_json::json;

both_backends!(
    bad_agents_are_refused_and_others_keep_working,
    bad_api_requests_get_clear_errors
);

fn expect_reject(frame: Option<RelayFrame>) -> RejectReason {
    match frame {
        Some(RelayFrame::Reject(r)) => {
            assert!(!r.message.is_empty());
            r.reason
        }
        other => panic!("expected a reject, got {other:?}"),
    }
}

async fn bad_agents_are_refused_and_others_keep_working(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let repo = TestRepo::new();
    let good = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let before = good.agent.wait_for(connected, WAIT).await.unwrap();

    // A wrong token is refused at the door, and a real agent says so in its status.
    assert_eq!(
        RawAgent::connect(&relay.url(), "fca_not-a-real-token")
            .await
            .err(),
        Some(401)
    );
    let refused = start_agent(&relay.url(), "fca_not-a-real-token", repo.path()).await;
    let s = refused.agent.wait_for(token_refused, WAIT).await.unwrap();
    assert!(
        s.connection.retry_at.unwrap() - chrono::Utc::now() > chrono::Duration::seconds(20),
        "a refused token backs off to the cap"
    );
    refused.agent.stop().await;

    // A protocol version the relay does not speak.
    let mut raw = RawAgent::connect(&relay.url(), &alice.agent_token)
        .await
        .unwrap();
    let mut hello = RawAgent::hello("v99", uuid::Uuid::new_v4());
    if let AgentFrame::Hello(h) = &mut hello {
        h.protocol_version = 99;
    }
    raw.send(&hello).await;
    assert_eq!(
        expect_reject(raw.recv().await),
        RejectReason::VersionMismatch {
            supported: fulcrum_protocol::SUPPORTED_VERSIONS.to_vec()
        }
    );

    // Garbage instead of a hello, a text frame, garbage after the welcome.
    let mut raw = RawAgent::connect(&relay.url(), &alice.agent_token)
        .await
        .unwrap();
    raw.send_bytes(b"\xc1\xff garbage".to_vec()).await;
    assert_eq!(
        expect_reject(raw.recv().await),
        RejectReason::ProtocolViolation
    );
    let mut raw = RawAgent::connect(&relay.url(), &alice.agent_token)
        .await
        .unwrap();
    raw.send_text("{\"hello\": true}").await;
    assert_eq!(
        expect_reject(raw.recv().await),
        RejectReason::ProtocolViolation
    );
    let (mut raw, _) = RawAgent::handshake(
        &relay.url(),
        &alice.agent_token,
        "garbage-after",
        uuid::Uuid::new_v4(),
    )
    .await;
    raw.send_bytes(vec![0x92, 0x01]).await;
    assert_eq!(
        expect_reject(raw.recv_non_ping().await),
        RejectReason::ProtocolViolation
    );

    // A frame over the size cap closes the connection before it is decoded.
    let (mut raw, _) = RawAgent::handshake(
        &relay.url(),
        &alice.agent_token,
        "oversized",
        uuid::Uuid::new_v4(),
    )
    .await;
    raw.send_bytes(vec![0u8; fulcrum_protocol::MAX_FRAME_BYTES + 1])
        .await;
    assert!(
        raw.recv_non_ping().await.is_none(),
        "an oversized frame ends the connection"
    );

    // Hello fields out of bounds.
    let mut raw = RawAgent::connect(&relay.url(), &alice.agent_token)
        .await
        .unwrap();
    raw.send(&RawAgent::hello(&"k".repeat(500), uuid::Uuid::new_v4()))
        .await;
    assert_eq!(
        expect_reject(raw.recv().await),
        RejectReason::ProtocolViolation
    );

    // A status beyond the protocol's limits (too many changed paths) is refused.
    let (mut raw, _) = RawAgent::handshake(
        &relay.url(),
        &alice.agent_token,
        "too-big",
        uuid::Uuid::new_v4(),
    )
    .await;
    let huge = RepoStatus {
        path: ".".into(),
        changed_paths: (0..=fulcrum_protocol::MAX_CHANGED_PATHS)
            .map(|i| fulcrum_protocol::ChangedPath {
                path: format!("f{i}"),
                code: " M".into(),
            })
            .collect(),
        ..Default::default()
    };
    raw.send(&AgentFrame::Durable(Durable {
        seq: 1,
        body: AgentMessage::RepoState(huge),
    }))
    .await;
    assert_eq!(
        expect_reject(raw.recv_non_ping().await),
        RejectReason::ProtocolViolation
    );

    // None of it disturbed the good agent or stored anything.
    let after = good.agent.status();
    assert_eq!(after.connection.state, ConnectionState::Connected);
    assert_eq!(after.connection.session_id, before.connection.session_id);
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let names: Vec<String> = api
        .workspaces()
        .await
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("v99")), "{names:?}");
    good.agent.stop().await;
    relay.shutdown().await.unwrap();
}

async fn bad_api_requests_get_clear_errors(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let anon = Api::new(&relay.url());
    let api = anon.with_token(&alice.access);

    let r = anon
        .post_raw(
            "/api/v1/auth/login",
            "application/json",
            b"{\"email\":".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (400, "malformed_json"));
    let r = anon
        .post("/api/v1/auth/login", json!({ "email": 5, "password": [] }))
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (422, "invalid_body"));
    let r = anon
        .post_raw(
            "/api/v1/auth/login",
            "application/json",
            vec![b' '; 100 * 1024],
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (413, "too_large"));
    let r = api
        .post("/api/v1/tokens", json!({ "name": "" }))
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (422, "invalid"));
    let r = api
        .post("/api/v1/tokens", json!({ "name": "x".repeat(101) }))
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    let r = api
        .post("/api/v1/tokens", json!({ "name": "ok", "extra": 1 }))
        .await
        .unwrap();
    assert_eq!(r.status, 422, "unknown fields are refused, not ignored");
    let r = api.get("/api/v1/workspaces/not-a-uuid").await.unwrap();
    assert_eq!(r.status, 404);
    let r = api.delete("/api/v1/tokens/not-a-uuid").await.unwrap();
    assert_eq!(r.status, 404);
    let r = anon.get("/api/v1/workspaces").await.unwrap();
    assert_eq!((r.status, r.error_code()), (401, "unauthorized"));
    let r = anon
        .with_token("not.a.jwt")
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = anon.get("/api/v1/nope").await.unwrap();
    assert_eq!(r.status, 404);

    // Nothing was created by any of it: only the token from the harness exists.
    let tokens = api.get("/api/v1/tokens").await.unwrap();
    assert_eq!(tokens.data().as_array().unwrap().len(), 1);
    // And the relay still answers.
    assert_eq!(anon.get("/health/ready").await.unwrap().status, 200);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn durable_messages_are_applied_once_in_order() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let stream = uuid::Uuid::new_v4();
    let state = |branch: &str| {
        AgentMessage::RepoState(RepoStatus {
            path: ".".into(),
            branch: Some(branch.into()),
            ..Default::default()
        })
    };
    let api = Api::new(&relay.url()).with_token(&alice.access);
    let branch = || async { api.workspaces().await.unwrap()[0]["repos"][0]["branch"].clone() };

    let (mut raw, welcome) =
        RawAgent::handshake(&relay.url(), &alice.agent_token, "dedupe", stream).await;
    assert_eq!(welcome.agent_stream_acked, 0);
    raw.send(&AgentFrame::Durable(Durable {
        seq: 1,
        body: state("one"),
    }))
    .await;
    assert_eq!(raw.recv_non_ping().await, Some(RelayFrame::Ack { seq: 1 }));
    raw.send(&AgentFrame::Durable(Durable {
        seq: 2,
        body: state("two"),
    }))
    .await;
    assert_eq!(raw.recv_non_ping().await, Some(RelayFrame::Ack { seq: 2 }));
    assert_eq!(branch().await, "two");
    // A gap (4 before 3) is refused, not papered over: the agent must reconnect and replay.
    raw.send(&AgentFrame::Durable(Durable {
        seq: 4,
        body: state("four"),
    }))
    .await;
    assert_eq!(
        expect_reject(raw.recv_non_ping().await),
        RejectReason::ProtocolViolation
    );
    assert_eq!(branch().await, "two");
    drop(raw);

    // Reconnecting on the same stream: the relay says how far it got; a replay of 2 is dropped.
    let (mut raw, welcome) =
        RawAgent::handshake(&relay.url(), &alice.agent_token, "dedupe", stream).await;
    assert_eq!(welcome.agent_stream_acked, 2);
    raw.send(&AgentFrame::Durable(Durable {
        seq: 2,
        body: state("two-replayed-differently"),
    }))
    .await;
    assert_eq!(raw.recv_non_ping().await, Some(RelayFrame::Ack { seq: 2 }));
    assert_eq!(branch().await, "two");
    raw.send(&AgentFrame::Durable(Durable {
        seq: 3,
        body: state("three"),
    }))
    .await;
    assert_eq!(raw.recv_non_ping().await, Some(RelayFrame::Ack { seq: 3 }));
    assert_eq!(branch().await, "three");
    drop(raw);

    // A new stream (an agent that lost its outbox) starts again at 1.
    let (_raw, welcome) = RawAgent::handshake(
        &relay.url(),
        &alice.agent_token,
        "dedupe",
        uuid::Uuid::new_v4(),
    )
    .await;
    assert_eq!(welcome.agent_stream_acked, 0);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_agent_is_dropped_after_two_heartbeats() {
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            heartbeat_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let alice = make_user(&relay, "alice").await;
    let mut events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let (mut raw, welcome) = RawAgent::handshake(
        &relay.url(),
        &alice.agent_token,
        "silent",
        uuid::Uuid::new_v4(),
    )
    .await;
    assert_eq!(welcome.heartbeat_interval_ms, 200);
    events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    // Never answer the pings: the relay gives up and the workspace goes offline.
    let started = std::time::Instant::now();
    let mut pings = 0;
    while let Some(frame) = raw.recv().await {
        assert!(
            matches!(frame, RelayFrame::Ping { .. } | RelayFrame::Reject(_)),
            "{frame:?}"
        );
        pings += 1;
    }
    assert!(pings >= 1, "the relay pinged before giving up");
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    events
        .workspace_where(|w| w["online"] == false)
        .await
        .unwrap();

    // A real agent answers pings and stays, with its round-trip time measured.
    let repo = TestRepo::new();
    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let s = agent.agent.wait_for(connected, WAIT).await.unwrap();
    let session = s.connection.session_id;
    // Several intervals later it is still the same session.
    let mut rx_events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    rx_events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        agent.agent.status().connection.session_id,
        session,
        "the agent kept its session across heartbeats"
    );
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}
