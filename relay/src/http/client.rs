//! Who is on the other end of a request: the client's address, as every door that records or
//! limits by address sees it.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::state::AppState;

/// The client's address: the peer's, or, when the peer is a trusted proxy (`[http]
/// trusted_proxies`), the last address in `X-Forwarded-For` that is not one of them.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::ConnectInfo;
        let peer = match parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            Some(c) => Some(c.0.ip()),
            None => parts
                .extensions
                .get::<ConnectInfo<crate::server::Peer>>()
                .map(|c| c.0.0.ip()),
        };
        let trusted = &app.config.http.trusted_proxies;
        let Some(peer) = peer.filter(|p| trusted.contains(p)) else {
            return Ok(Self(peer));
        };
        // From the right, past the trusted proxies; the first entry that is not an address
        // ends the search (what lies left of it was written by the client).
        let mut client = peer;
        let entries: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for entry in entries.into_iter().rev() {
            match entry.trim().parse::<std::net::IpAddr>() {
                Ok(addr) if trusted.contains(&addr) => client = addr,
                Ok(addr) => return Ok(Self(Some(addr))),
                Err(_) => break,
            }
        }
        Ok(Self(Some(client)))
    }
}

/// The caller a token of `kind` stands for: `token` as the door found it (a bearer, or the key
/// header a client sends), checked by the token module with the client's address (for its
/// last-use record and request limits). The one way the token-only doors (ingestion, OTLP, the
/// LLM gateway, A2A) authenticate; `missing` says what to send when there is no token.
pub async fn token_caller(
    parts: &mut Parts,
    app: &AppState,
    token: Option<String>,
    kind: crate::store::TokenKind,
    missing: &str,
) -> Result<crate::domain::Caller, crate::domain::DomainError> {
    let token = token.ok_or_else(|| crate::domain::DomainError::Unauthenticated {
        code: "missing_token",
        message: missing.to_owned(),
    })?;
    let ClientAddr(client) = ClientAddr::from_request_parts(parts, app)
        .await
        .unwrap_or(ClientAddr(None));
    let t = app.domain.tokens.authenticate(&token, kind, client).await?;
    Ok(crate::domain::Caller::with_grant(
        t.owner_id,
        crate::domain::Door::Api,
        crate::domain::Grant::of(&t),
    ))
}
