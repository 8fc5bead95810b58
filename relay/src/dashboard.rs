//! The web dashboard: static files embedded in the binary, so the relay needs no front-end build
//! and no files beside it. The dashboard talks to the REST API and the events socket.

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::state::AppState;

/// Every file under `relay/assets/`, embedded at build time (subfolders included).
static ASSETS: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/assets");

/// The content type of a file, by its extension; `None` for a kind the dashboard does not serve.
fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        _ => return None,
    })
}

/// Routes for `/` and `/assets/{*path}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/favicon.ico", get(|| async { serve("favicon.svg") }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

fn serve(name: &str) -> Response {
    // Only plain relative paths inside the folder, of a kind served; dot files (tooling
    // configuration, if any) and `..` never.
    let plain = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.'));
    let found = plain
        .then(|| content_type(name).zip(ASSETS.get_file(name)))
        .flatten();
    match found {
        Some((content_type, file)) => {
            let mut response = (StatusCode::OK, file.contents()).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                     style-src 'self'; frame-ancestors 'none'",
                ),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
