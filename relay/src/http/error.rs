//! API errors and the one place they become HTTP status codes.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::envelope::ErrorBody;
use crate::{domain::DomainError, store::StoreError};

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// No or bad credentials (401).
    Unauthorized,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// No such thing, or not the caller's (404).
    NotFound,
    /// Conflicts with current state (409).
    Conflict,
    /// The body is too large (413).
    PayloadTooLarge,
    /// Well-formed but invalid (422).
    Unprocessable,
    /// Too many requests (429).
    TooManyRequests,
    /// A dependency (the database) is down (503).
    Unavailable,
    /// A bug or an unexpected failure (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status for this kind: the single mapping used by every handler.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: a kind, a stable machine code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    /// The kind, which fixes the status code.
    pub kind: ErrorKind,
    /// A stable code such as `invalid_credentials`.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
    /// For 429: seconds until a retry can succeed.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 with code `rate_limited`, retry after `secs` seconds.
    pub fn rate_limited(secs: u64, what: &str) -> Self {
        Self {
            retry_after: Some(secs.max(1)),
            ..Self::new(
                ErrorKind::TooManyRequests,
                "rate_limited",
                format!(
                    "too many requests for this {what}; retry in {} s",
                    secs.max(1)
                ),
            )
        }
    }
    /// 401 with code `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message)
    }
    /// 404 with code `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 422 with code `invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, "invalid", message)
    }
    /// 500, logging the cause (which is not shown to the client).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorKind::Internal, "internal", "internal error")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(
                ErrorKind::Conflict,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::Database(ref db) if is_unavailable(db) => {
                tracing::error!(error = %e, "database unavailable");
                Self::new(
                    ErrorKind::Unavailable,
                    "unavailable",
                    "the database is unavailable",
                )
            }
            other => Self::internal(other),
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::Absent { code, message } => Self::new(ErrorKind::NotFound, code, message),
            DomainError::Forbidden(message) => {
                Self::new(ErrorKind::Forbidden, "forbidden", message)
            }
            e @ DomainError::MissingScope(_) => {
                Self::new(ErrorKind::Forbidden, "insufficient_scope", e.to_string())
            }
            DomainError::Denied { code, message } => Self::new(ErrorKind::Forbidden, code, message),
            DomainError::Conflict { code, message } => {
                Self::new(ErrorKind::Conflict, code, message)
            }
            DomainError::Refused { code, message } => {
                Self::new(ErrorKind::Forbidden, code, message)
            }
            DomainError::Unauthenticated { code, message } => {
                Self::new(ErrorKind::Unauthorized, code, message)
            }
            DomainError::Throttled { retry_after, what } => Self::rate_limited(retry_after, what),
            DomainError::Busy(message) => Self::new(ErrorKind::TooManyRequests, "busy", message),
            DomainError::Invalid(message) => Self::invalid(message),
            DomainError::Store(e) => e.into(),
            DomainError::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (kind, code) = match &r {
            JsonRejection::JsonDataError(_) => (ErrorKind::Unprocessable, "invalid_body"),
            JsonRejection::JsonSyntaxError(_) => (ErrorKind::BadRequest, "malformed_json"),
            JsonRejection::MissingJsonContentType(_) => (ErrorKind::BadRequest, "not_json"),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (ErrorKind::PayloadTooLarge, "too_large")
            }
            _ => (ErrorKind::BadRequest, "bad_request"),
        };
        Self::new(kind, code, r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let mut response = (status, Json(ErrorBody::new(self.code, &self.message))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let secs = self.retry_after.unwrap_or(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
