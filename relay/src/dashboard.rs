//! The web dashboard: static files embedded in the binary, so the relay needs no front-end build
//! and no files beside it. The dashboard talks to the REST API and the events socket.
//!
//! For work on the dashboard itself, `FULCRUM_DASHBOARD_DIR=relay/assets` makes the relay read
//! the files from that folder at each request instead, so a change shows on reload without a
//! rebuild.

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

/// The folder to read the files from instead of the embedded ones, if set.
static FROM_DISK: std::sync::LazyLock<Option<std::path::PathBuf>> =
    std::sync::LazyLock::new(|| std::env::var_os("FULCRUM_DASHBOARD_DIR").map(Into::into));

/// The file's bytes: from disk when `FULCRUM_DASHBOARD_DIR` is set, else embedded.
fn contents(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    match FROM_DISK.as_ref() {
        Some(dir) => std::fs::read(dir.join(name)).ok().map(Into::into),
        None => ASSETS.get_file(name).map(|f| f.contents().into()),
    }
}

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
        .then(|| content_type(name).zip(contents(name)))
        .flatten();
    match found {
        Some((content_type, bytes)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
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
