//! The relay terminating TLS itself: an agent that trusts the relay's CA connects over `wss://`;
//! one that does not, or trusts another CA, is refused by its own TLS check and says so.

use fulcrum_agent::status::ProblemKind;
use fulcrum_relay::config::TlsFiles;
use fulcrum_tests::transport::make_pki;
use fulcrum_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_connect_over_tls_only_when_they_trust_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "relay");
    let other = make_pki(dir.path(), "other");
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            tls: Some(pki.tls.clone()),
            ..Default::default()
        },
    )
    .await;
    assert!(relay.url().starts_with("https://"));
    let store = &relay.state.store;
    let (owner, token) = make_user_in_store(&relay, "tls").await;
    let repo = TestRepo::new();

    // Trusting the relay's CA: connected over wss://, and the relay has the workspace online.
    let state = tempfile::tempdir().unwrap();
    let trusted = start_agent_with(
        &relay.url(),
        &token,
        repo.path(),
        state.path().into(),
        Some(pki.ca.clone()),
    )
    .await;
    trusted
        .wait_for(|s| connected(s) && !s.repos.is_empty(), WAIT)
        .await
        .unwrap();
    let listed = store.list_workspaces(owner).await.unwrap();
    assert!(listed.len() == 1 && listed[0].online);
    trusted.stop().await;

    // Trusting only the system roots, or another CA: the agent refuses the certificate.
    for ca in [None, Some(other.ca.clone())] {
        let state = tempfile::tempdir().unwrap();
        let agent =
            start_agent_with(&relay.url(), &token, repo.path(), state.path().into(), ca).await;
        let s = agent
            .wait_for(
                |s| {
                    s.connection
                        .problem
                        .as_ref()
                        .is_some_and(|p| p.kind == ProblemKind::RelayDown)
                },
                WAIT,
            )
            .await
            .unwrap();
        let message = &s.connection.problem.unwrap().message;
        assert!(message.to_lowercase().contains("certificate"), "{message}");
        assert!(!connected(&agent.status()));
        agent.stop().await;
    }

    // A client speaking plain WebSocket to the TLS port gets nowhere.
    let plain = relay.url().replace("https://", "ws://") + "/api/v1/agent/connect";
    assert!(tokio_tungstenite::connect_async(plain).await.is_err());
    relay.shutdown().await.unwrap();
}

#[test]
fn a_relay_with_unusable_tls_files_does_not_start() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "relay");
        let other = make_pki(dir.path(), "other");
        let db = TestDb::new(Backend::Sqlite).await;
        // A key that does not belong to the certificate.
        let mismatched = TlsFiles {
            cert_file: pki.tls.cert_file.clone(),
            key_file: other.tls.key_file.clone(),
        };
        let err = fulcrum_relay::Relay::start(relay_config(
            &db,
            &RelayOptions {
                tls: Some(mismatched),
                ..Default::default()
            },
        ))
        .await
        .err()
        .expect("refuses to start");
        assert!(format!("{err:#}").contains("do not match"), "{err:#}");
        let missing = TlsFiles {
            cert_file: dir.path().join("nope.pem"),
            key_file: pki.tls.key_file.clone(),
        };
        let err = fulcrum_relay::Relay::start(relay_config(
            &db,
            &RelayOptions {
                tls: Some(missing),
                ..Default::default()
            },
        ))
        .await
        .err()
        .expect("refuses to start");
        assert!(format!("{err:#}").contains("nope.pem"), "{err:#}");
    });
}
