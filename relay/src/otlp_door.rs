//! The OTLP/HTTP door: `POST /otlp/v1/traces`, `/otlp/v1/logs` and `/otlp/v1/metrics`, with
//! an `ingest` token (`Authorization: Bearer fci_…`, as exporters send it from
//! `OTEL_EXPORTER_OTLP_HEADERS`). Bodies are protobuf (`application/x-protobuf`) or JSON
//! (`application/json`), optionally gzip-compressed; answers follow the OTLP/HTTP
//! specification: the signal's Export…ServiceResponse in the request's encoding (with
//! `partial_success` when records were refused), and for errors a `google.rpc.Status`.
//! What the records become is `crate::domain::activity::otlp`.

use std::io::Read as _;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse},
    metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse},
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse},
};

use crate::{
    auth::bearer,
    domain::{
        Caller, DomainError,
        activity::{
            OtlpOutcome,
            otlp::{Encoding, MAX_BODY, Signal},
        },
    },
    http::client::token_caller,
    state::AppState,
    store::TokenKind,
};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/otlp/v1/traces", post(traces))
        .route("/otlp/v1/logs", post(logs))
        .route("/otlp/v1/metrics", post(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim();
    match ct {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// An answer in `enc`: the message as protobuf or JSON.
fn answer<M: prost::Message + serde::Serialize>(
    status: StatusCode,
    enc: Encoding,
    msg: &M,
) -> Response {
    let (ct, body) = match enc {
        Encoding::Protobuf => ("application/x-protobuf", msg.encode_to_vec()),
        Encoding::Json => (
            "application/json",
            serde_json::to_vec(msg).unwrap_or_default(),
        ),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn error(status: StatusCode, enc: Encoding, code: i32, message: String) -> Response {
    answer(status, enc, &Status { code, message })
}

/// The ingesting caller.
async fn caller(parts: &mut Parts, app: &AppState) -> Result<Caller, DomainError> {
    let token = bearer(&parts.headers).map(str::to_owned);
    token_caller(
        parts,
        app,
        token,
        TokenKind::Ingest,
        "give an ingest token as `Authorization: Bearer fci_…`",
    )
    .await
}

async fn handle(app: AppState, signal: Signal, mut parts: Parts, body: Bytes) -> Response {
    let Some(enc) = encoding(&parts.headers) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Encoding::Json,
            3,
            "send application/x-protobuf or application/json".into(),
        );
    };
    let caller = match caller(&mut parts, &app).await {
        Ok(c) => c,
        Err(DomainError::Throttled { .. }) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                enc,
                8,
                "over this token's request limit".into(),
            );
        }
        Err(e) => return error(StatusCode::UNAUTHORIZED, enc, 16, e.to_string()),
    };
    let gzip = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = if gzip {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&body[..])
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut out);
        match read {
            Ok(_) if out.len() <= MAX_BODY => Bytes::from(out),
            Ok(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    enc,
                    3,
                    format!("the request is over {MAX_BODY} bytes uncompressed"),
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    enc,
                    3,
                    format!("the body is not valid gzip: {e}"),
                );
            }
        }
    } else {
        body
    };
    let outcome = match app
        .domain
        .activities
        .ingest_otlp(caller, signal, enc, &body)
        .await
    {
        Ok(o) => o,
        Err(e @ DomainError::Invalid(_)) => {
            return error(StatusCode::BAD_REQUEST, enc, 3, e.to_string());
        }
        Err(e @ (DomainError::MissingScope(_) | DomainError::Denied { .. })) => {
            return error(StatusCode::FORBIDDEN, enc, 7, e.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "an OTLP export failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                enc,
                14,
                "the relay could not store it; try again".into(),
            );
        }
    };
    respond(signal, enc, &outcome)
}

fn respond(signal: Signal, enc: Encoding, o: &OtlpOutcome) -> Response {
    let message = o.error.clone().unwrap_or_default();
    let rejected = o.rejected as i64;
    let partial = rejected > 0;
    match signal {
        Signal::Traces => answer(
            StatusCode::OK,
            enc,
            &ExportTraceServiceResponse {
                partial_success: partial.then_some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            },
        ),
        Signal::Logs => answer(
            StatusCode::OK,
            enc,
            &ExportLogsServiceResponse {
                partial_success: partial.then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                }),
            },
        ),
        Signal::Metrics => answer(
            StatusCode::OK,
            enc,
            &ExportMetricsServiceResponse {
                partial_success: partial.then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message,
                }),
            },
        ),
    }
}

async fn traces(State(app): State<AppState>, parts: Parts, body: Bytes) -> Response {
    handle(app, Signal::Traces, parts, body).await
}

async fn logs(State(app): State<AppState>, parts: Parts, body: Bytes) -> Response {
    handle(app, Signal::Logs, parts, body).await
}

async fn metrics(State(app): State<AppState>, parts: Parts, body: Bytes) -> Response {
    handle(app, Signal::Metrics, parts, body).await
}
