//! A lean protocol client for load generation: small buffers, handshake, pongs, status updates.

use anyhow::{Context, Result, bail};
use fulcrum_protocol::{
    AgentFrame, AgentMessage, Durable, Hello, PROTOCOL_VERSION, RelayFrame, RepoStatus,
    WorkspaceIdentity,
};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens an agent session for workspace `key` and completes the handshake.
pub async fn agent_session(relay: &str, token: &str, key: &str) -> Result<Ws> {
    let url = fulcrum_agent::link::connect_url(relay)?;
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    let hello = AgentFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "bench".into(),
        workspace: WorkspaceIdentity {
            key: key.into(),
            name: key.into(),
            hostname: "bench".into(),
            root: "/bench".into(),
            coder: None,
        },
        agent_stream: uuid::Uuid::new_v4(),
        relay_stream: None,
    });
    send(&mut ws, &hello).await?;
    match recv(&mut ws).await?.context("closed during handshake")? {
        RelayFrame::Welcome(_) => Ok(ws),
        other => bail!("handshake refused: {other:?}"),
    }
}

/// Sends one frame.
pub async fn send<S>(ws: &mut S, frame: &AgentFrame) -> Result<()>
where
    S: SinkExt<Message> + Unpin,
    <S as futures_util::Sink<Message>>::Error: std::error::Error + Send + Sync + 'static,
{
    ws.send(Message::Binary(fulcrum_protocol::encode(frame)?.into()))
        .await?;
    Ok(())
}

/// The next relay frame; `None` when closed.
pub async fn recv<S>(ws: &mut S) -> Result<Option<RelayFrame>>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(Some(fulcrum_protocol::decode(&b)?)),
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// A status update whose head summary carries a send timestamp (`t=<unix nanos>`).
pub fn stamped_state(seq: u64, now_nanos: u128) -> AgentFrame {
    AgentFrame::Durable(Durable {
        seq,
        body: AgentMessage::RepoState(RepoStatus {
            path: ".".into(),
            branch: Some("main".into()),
            head_sha: Some(format!("{seq:040x}")),
            head_summary: Some(format!("t={now_nanos}")),
            unstaged: (seq % 7) as u32,
            ..Default::default()
        }),
    })
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}
