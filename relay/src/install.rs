//! Installing agents from the relay: `GET /install.sh` (the script in `install/`, with this
//! relay's public URL filled in), `GET /download/fulcrum/{os}/{arch}` (the agent binary) and
//! `GET /download/fulcrum/{os}/{arch}/sha256` (its SHA-256, as `sha256sum` prints it).
//!
//! Binaries come from the downloads directory ([`crate::config::Config::downloads_dir`], default
//! `downloads` in the data dir), named `fulcrum-{os}-{arch}` with `os` one of `linux`, `darwin`
//! and `arch` one of `x86_64`, `aarch64`. `fulcrum-relay dev` puts the agent it was built with
//! there. Checksums are computed once per file version and cached.

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::SystemTime};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use crate::{
    http::error::{ApiError, ApiResult},
    state::AppState,
};

/// The install script, as checked in.
const SCRIPT: &str = include_str!("../../install/install.sh");
/// What the script has where the relay's URL goes.
const URL_PLACEHOLDER: &str = "__FULCRUM_RELAY_URL__";
/// Operating systems binaries are served for.
pub const OSES: &[&str] = &["linux", "darwin"];
/// Architectures binaries are served for.
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// Cached checksums by file, valid while its size and modification time stay the same.
#[derive(Default)]
pub struct Checksums(Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>);

/// This machine's `(os, arch)` in the download naming.
pub fn this_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    (os, std::env::consts::ARCH)
}

/// The `Host` a request named, if any.
pub(crate) fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// `GET /install.sh`.
pub async fn script(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = app.config.base_url_for(host(&headers));
    let body = SCRIPT.replace(URL_PLACEHOLDER, &base);
    (
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        body,
    )
        .into_response()
}

fn binary_path(app: &AppState, os: &str, arch: &str) -> ApiResult<PathBuf> {
    if !OSES.contains(&os) || !ARCHES.contains(&arch) {
        return Err(ApiError::not_found("agent build for that platform"));
    }
    let dir = app
        .config
        .downloads_dir
        .clone()
        .unwrap_or_else(|| app.config.data_dir.join("downloads"));
    let path = dir.join(format!("fulcrum-{os}-{arch}"));
    if !path.is_file() {
        return Err(ApiError::not_found("agent build for that platform"));
    }
    Ok(path)
}

/// `GET /download/fulcrum/{os}/{arch}`.
pub async fn binary(
    State(app): State<AppState>,
    Path((os, arch)): Path<(String, String)>,
) -> ApiResult<Response> {
    let path = binary_path(&app, &os, &arch)?;
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"fulcrum\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /download/fulcrum/{os}/{arch}/sha256`.
pub async fn checksum(
    State(app): State<AppState>,
    Path((os, arch)): Path<(String, String)>,
) -> ApiResult<Response> {
    let path = binary_path(&app, &os, &arch)?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(ApiError::internal)?;
    let (len, modified) = (
        meta.len(),
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    );
    let cached = {
        let cache = app.checksums.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&path)
            .filter(|(l, m, _)| *l == len && *m == modified)
            .map(|(_, _, sum)| sum.clone())
    };
    let sum = match cached {
        Some(sum) => sum,
        None => {
            let file = path.clone();
            let sum = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut hasher = Sha256::new();
                let mut f = std::fs::File::open(&file)?;
                std::io::copy(&mut f, &mut hasher)?;
                Ok(crate::auth::hex(&hasher.finalize()))
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            app.checksums
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(path, (len, modified, sum.clone()));
            sum
        }
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{sum}  fulcrum\n"),
    )
        .into_response())
}
