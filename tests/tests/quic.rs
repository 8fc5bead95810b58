//! The QUIC transport: `auto` picks QUIC when it gets through and the WebSocket when UDP is
//! blocked (and says which in `fulcrum status`), an untrusted certificate is refused, and the
//! relay merges durable messages arriving on several streams back into sequence order.
//!
//! The rest of the suite runs over QUIC too, with `FULCRUM_TEST_TRANSPORT=quic`.

use std::sync::Arc;

use fulcrum_agent::{
    AgentOptions, RunningAgent, link::RelayTarget, status::AgentStatus, transport::TransportMode,
};
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Durable, RejectReason, RelayFrame,
    quic::{ALPN, QuicAuth, encode_prefixed, read_prefixed},
};
use fulcrum_tests::{transport::make_pki, *};

/// A relay serving HTTPS and QUIC with its own CA's certificate, and a user.
struct Secure {
    relay: fulcrum_relay::Relay,
    owner: uuid::Uuid,
    token: String,
    pki: fulcrum_tests::transport::Pki,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

async fn secure_relay() -> Secure {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "relay");
    let db = TestDb::new(Backend::Sqlite).await;
    let relay = start_relay(
        &db,
        &RelayOptions {
            tls: Some(pki.tls.clone()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        relay.quic_addr.is_some(),
        "a relay with a certificate serves QUIC"
    );
    let (owner, token) = make_user_in_store(&relay, "quic").await;
    Secure {
        relay,
        owner,
        token,
        pki,
        _dir: dir,
        _db: db,
    }
}

async fn agent(
    s: &Secure,
    repo: &TestRepo,
    state: &std::path::Path,
    transport: TransportMode,
    quic_port: u16,
    ca: &std::path::Path,
) -> RunningAgent {
    let mut target = RelayTarget::new(s.relay.url(), &s.token);
    target.transport = transport;
    target.quic_port = Some(quic_port);
    target.extra_ca = Some(ca.to_path_buf());
    RunningAgent::start(AgentOptions::new(
        target,
        repo.path().to_path_buf(),
        state.to_path_buf(),
    ))
    .await
    .unwrap()
}

/// The user's workspaces, from the store.
async fn workspaces(s: &Secure) -> Vec<fulcrum_relay::store::Workspace> {
    s.relay.state.store.list_workspaces(s.owner).await.unwrap()
}

fn over(s: &AgentStatus) -> Option<&str> {
    s.connection.transport.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_uses_quic_when_it_gets_through_and_the_websocket_when_udp_is_blocked() {
    let s = secure_relay().await;
    let quic_port = s.relay.quic_addr.unwrap().port();

    // A UDP port where nothing ever answers, as behind a firewall that drops UDP.
    let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dropped = blackhole.local_addr().unwrap().port();
    for (port, transport, shown_as) in [
        (quic_port, "quic", "over QUIC"),
        (dropped, "websocket", "over WebSocket"),
    ] {
        let repo = TestRepo::new();
        let state = tempfile::tempdir().unwrap();
        let a = agent(
            &s,
            &repo,
            state.path(),
            TransportMode::Auto,
            port,
            &s.pki.ca,
        )
        .await;
        a.wait_for(connected, WAIT).await.unwrap();
        assert_eq!(over(&a.status()), Some(transport));
        let shown = fulcrum_agent::cli::render_status(&a.status(), chrono::Utc::now());
        assert!(shown.contains(shown_as), "{shown}");
        a.stop().await;
    }
    s.relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_refuses_a_relay_certificate_it_does_not_trust() {
    let s = secure_relay().await;
    let quic_port = s.relay.quic_addr.unwrap().port();
    let other = tempfile::tempdir().unwrap();
    let other = make_pki(other.path(), "other");
    let repo = TestRepo::new();
    let state = tempfile::tempdir().unwrap();
    let a = agent(
        &s,
        &repo,
        state.path(),
        TransportMode::Quic,
        quic_port,
        &other.ca,
    )
    .await;
    let status = a
        .wait_for(|s| s.connection.problem.is_some(), WAIT)
        .await
        .unwrap();
    let problem = status.connection.problem.unwrap();
    assert!(
        problem.message.contains("certificate") || problem.message.contains("UnknownIssuer"),
        "{problem:?}"
    );
    assert!(!connected(&a.status()));
    assert!(workspaces(&s).await.is_empty(), "never online");
    a.stop().await;
    s.relay.shutdown().await.unwrap();
}

/// A hand-driven QUIC agent: the control stream, and task streams opened at will.
struct RawQuic {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _endpoint: quinn::Endpoint,
}

impl RawQuic {
    async fn connect(s: &Secure, token: &str) -> Self {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&s.pki.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(
                quinn::ClientConfig::new(Arc::new(crypto)),
                s.relay.quic_addr.unwrap(),
                "localhost",
            )
            .unwrap()
            .await
            .unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let auth = QuicAuth {
            token: token.into(),
        };
        send.write_all(&encode_prefixed(&auth).unwrap())
            .await
            .unwrap();
        Self {
            conn,
            send,
            recv,
            _endpoint: endpoint,
        }
    }

    async fn send(&mut self, frame: &AgentFrame) {
        self.send
            .write_all(&encode_prefixed(frame).unwrap())
            .await
            .unwrap();
    }

    /// The next frame that is not a ping, or `None` once the relay hung up.
    async fn recv(&mut self) -> Option<RelayFrame> {
        loop {
            let bytes = tokio::time::timeout(WAIT, read_prefixed(&mut self.recv))
                .await
                .expect("the relay answers in time")
                .ok()??;
            match fulcrum_protocol::decode(&bytes).unwrap() {
                RelayFrame::Ping { .. } => continue,
                frame => return Some(frame),
            }
        }
    }

    /// Writes `frames` on a new task stream, finishes it, and waits until the relay has
    /// acknowledged every byte of it (it is in the relay's hands before anything else is sent).
    async fn on_own_stream(&self, frames: &[AgentFrame]) {
        let mut uni = self.conn.open_uni().await.unwrap();
        for frame in frames {
            uni.write_all(&encode_prefixed(frame).unwrap())
                .await
                .unwrap();
        }
        uni.finish().unwrap();
        let _ = uni.stopped().await;
    }
}

fn durable(seq: u64, body: AgentMessage) -> AgentFrame {
    AgentFrame::Durable(Durable { seq, body })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_messages_on_several_streams_are_applied_in_sequence_order() {
    let s = secure_relay().await;
    let mut raw = RawQuic::connect(&s, &s.token).await;
    let stream = uuid::Uuid::new_v4();
    raw.send(&RawAgent::hello("merge", stream)).await;
    let Some(RelayFrame::Welcome(welcome)) = raw.recv().await else {
        panic!("no welcome");
    };
    assert_eq!(welcome.agent_stream_acked, 0);

    // Number 2 arrives first, on a stream of its own; number 1 follows on the control stream.
    let repo = |path: &str| fulcrum_protocol::RepoStatus {
        path: path.into(),
        branch: Some("main".into()),
        ..Default::default()
    };
    raw.on_own_stream(&[durable(2, AgentMessage::RepoState(repo("b")))])
        .await;
    raw.send(&durable(
        1,
        AgentMessage::RepoSet {
            paths: vec!["a".into(), "b".into()],
        },
    ))
    .await;
    loop {
        match raw.recv().await {
            Some(RelayFrame::Ack { seq: 2 }) => break,
            Some(RelayFrame::Ack { seq: 1 }) => continue,
            other => panic!("expected the acknowledgement of both, got {other:?}"),
        }
    }
    let listed = workspaces(&s).await;
    let repos: Vec<_> = listed[0]
        .repos
        .iter()
        .map(|r| r.status.path.as_str())
        .collect();
    assert_eq!(repos, ["b"], "the set first, then b's state");

    // Only a task's durable messages may travel on its stream.
    raw.on_own_stream(&[AgentFrame::Pong { nonce: 1 }]).await;
    match raw.recv().await {
        Some(RelayFrame::Reject(r)) => assert_eq!(r.reason, RejectReason::ProtocolViolation),
        other => panic!("expected a refusal, got {other:?}"),
    }
    s.relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_over_quic_gets_a_clear_refusal() {
    let s = secure_relay().await;
    let mut raw = RawQuic::connect(&s, "fca_not_a_token").await;
    match raw.recv().await {
        Some(RelayFrame::Reject(r)) => {
            assert_eq!(r.reason, RejectReason::Unauthorized);
            assert!(r.message.contains("agent token"), "{}", r.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(raw.recv().await.is_none(), "and the relay hangs up");
    s.relay.shutdown().await.unwrap();
}
