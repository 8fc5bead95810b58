//! User B cannot see or touch user A's things through any door: REST, the events socket, or the
//! agent socket.

use fulcrum_agent::status::ConnectionState;
use fulcrum_protocol::{AgentFrame, AgentMessage, Durable, RelayFrame, RepoStatus};
use fulcrum_tests::*;
use serde_json::json;

both_backends!(users_see_only_their_own_workspaces);

async fn users_see_only_their_own_workspaces(b: Backend) {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &RelayOptions::default()).await;
    let alice = make_user(&relay, "alice").await;
    let bob = make_user(&relay, "bob").await;
    let repo = TestRepo::new();
    let mut bob_events = Events::connect(&relay.url(), &bob.access).await.unwrap();
    assert_eq!(bob_events.next().await.unwrap()["workspaces"], json!([]));

    let agent = start_agent(&relay.url(), &alice.agent_token, repo.path()).await;
    let mut alice_events = Events::connect(&relay.url(), &alice.access).await.unwrap();
    let alice_ws = alice_events
        .workspace_where(|w| w["online"] == true && w["repos"][0]["path"] == ".")
        .await
        .unwrap();
    let alice_ws_id = alice_ws["id"].as_str().unwrap().to_owned();

    // REST: bob lists nothing, and alice's workspace is "not found" for him, like a missing one.
    let bob_api = Api::new(&relay.url()).with_token(&bob.access);
    assert!(bob_api.workspaces().await.unwrap().is_empty());
    let r = bob_api
        .get(&format!("/api/v1/workspaces/{alice_ws_id}"))
        .await
        .unwrap();
    assert_eq!((r.status, r.error_code()), (404, "not_found"));

    // Tokens: bob neither lists nor revokes alice's.
    let alice_api = Api::new(&relay.url()).with_token(&alice.access);
    let alice_tokens = alice_api.get("/api/v1/tokens").await.unwrap();
    let alice_token_id = alice_tokens.data()[0]["id"].as_str().unwrap().to_owned();
    let bob_tokens = bob_api.get("/api/v1/tokens").await.unwrap();
    assert!(
        bob_tokens
            .data()
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != alice_token_id.as_str())
    );
    let r = bob_api
        .delete(&format!("/api/v1/tokens/{alice_token_id}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Bob's agent token presenting alice's workspace key gets a workspace of bob's own.
    let alice_key = std::fs::read_to_string(agent.state.path().join("workspace-key")).unwrap();
    let (mut impostor, welcome) = RawAgent::handshake(
        &relay.url(),
        &bob.agent_token,
        alice_key.trim(),
        uuid::Uuid::new_v4(),
    )
    .await;
    assert_ne!(welcome.workspace_id.to_string(), alice_ws_id);
    impostor
        .send(&AgentFrame::Durable(Durable {
            seq: 1,
            body: AgentMessage::RepoState(RepoStatus {
                path: ".".into(),
                branch: Some("evil".into()),
                ..Default::default()
            }),
        }))
        .await;
    assert_eq!(
        impostor.recv_non_ping().await,
        Some(RelayFrame::Ack { seq: 1 })
    );

    // Bob's feed saw only his own workspace; alice's still shows her branch, online.
    let bob_ws = bob_events
        .workspace_where(|w| w["repos"][0]["branch"] == "evil")
        .await
        .unwrap();
    assert_eq!(bob_ws["id"], welcome.workspace_id.to_string());
    let alice_view = alice_api.workspaces().await.unwrap();
    assert_eq!(alice_view.len(), 1);
    assert_eq!(alice_view[0]["repos"][0]["branch"], "main");
    assert_eq!(alice_view[0]["online"], true);
    assert_eq!(
        agent.agent.status().connection.state,
        ConnectionState::Connected
    );

    // Alice's change reaches alice, never bob: bob's next event is his own workspace going offline.
    repo.write("README.md", "alice only\n");
    alice_events
        .workspace_where(|w| w["repos"][0]["unstaged"] == 1)
        .await
        .unwrap();
    drop(impostor);
    let next = bob_events.workspace_where(|_| true).await.unwrap();
    assert_eq!(
        next["id"],
        welcome.workspace_id.to_string(),
        "bob must never receive alice's events"
    );
    assert_eq!(next["online"], false);

    // A ticket is bob's alone; an access token is not a ticket.
    let url = format!(
        "{}/api/v1/events?ticket={}",
        relay.url().replace("http", "ws"),
        alice.access
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
        }
        other => panic!(
            "an access token must not open the events socket: {:?}",
            other.map(|_| ())
        ),
    }
    agent.agent.stop().await;
    relay.shutdown().await.unwrap();
}
