//! What every HTTP answer carries, whatever the route: security headers on every response,
//! `Cache-Control: no-store` on everything that is not a static asset (answers may hold tokens
//! or private state), and CORS for the REST API from the origins the config allows.
//!
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`
//!   always; `Strict-Transport-Security` when the relay serves HTTPS itself.
//! - CORS (`[http] cors_origins`, none by default) applies to the REST API only and never to
//!   `/api/v1/auth/*`, where the refresh cookie lives; it never allows credentials, so a browser
//!   on another origin can call the API only with a bearer token it holds.

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

/// HSTS for a year, when the relay terminates TLS.
const HSTS: &str = "max-age=31536000";

/// Middleware: the headers every response carries.
pub async fn headers(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/")
        || req.uri().path() == "/"
        || req.uri().path() == "/favicon.ico";
    let mut response = next.run(req).await;
    apply(response.headers_mut(), app.config.tls.is_some(), is_asset);
    response
}

/// Sets the headers of an answer: HSTS only when `tls` (the relay serves HTTPS itself), and
/// `no-store` unless it is a static `asset`.
fn apply(h: &mut axum::http::HeaderMap, tls: bool, asset: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The CORS layer for the REST API, from `[http] cors_origins`; `None` when none are allowed
/// (then no CORS header is ever sent).
pub fn cors(app: &AppState) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = app
        .config
        .http
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_answers_get_hsts_and_assets_stay_cacheable() {
        let mut h = axum::http::HeaderMap::new();
        apply(&mut h, true, false);
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], HSTS);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        let mut h = axum::http::HeaderMap::new();
        apply(&mut h, false, true);
        assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert!(!h.contains_key(header::CACHE_CONTROL));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
