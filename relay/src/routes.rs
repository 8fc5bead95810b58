//! The relay's whole router, put together from each door's routes here, so that no door mounts
//! another: REST and health (`api`), the dashboard's events socket (`events`), the agents' door
//! (`gateway`), `/mcp` (`mcp`), the OAuth server (`oauth`), the dashboard, the installer and `/metrics`, under the headers,
//! metrics and body-size layers every answer gets.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{api, dashboard, events, gateway, http::policy, mcp, oauth, state::AppState};

/// Largest accepted request body (the MCP endpoint has its own, larger limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds the relay's router.
pub fn router(state: AppState) -> Router {
    let sockets = Router::new()
        .route("/events", get(events::socket))
        .route("/agent/connect", get(gateway::connect));
    Router::new()
        .merge(api::routes(&state, sockets))
        .route("/metrics", get(crate::metrics::endpoint))
        .route("/install.sh", get(crate::install::script))
        .route("/download/fulcrum/{os}/{arch}", get(crate::install::binary))
        .route(
            "/download/fulcrum/{os}/{arch}/sha256",
            get(crate::install::checksum),
        )
        .merge(dashboard::router())
        .merge(mcp::router(state.clone()))
        .merge(crate::llm_door::router())
        .merge(crate::otlp_door::router())
        .merge(crate::a2a_door::router())
        .merge(oauth::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            policy::headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Any other unmatched path.
async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
