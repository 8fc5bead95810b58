//! The response envelope `{"data": …, "meta": {…}, "errors": […]}` and the JSON body extractor
//! that turns malformed input into an enveloped error.

use axum::{
    Json,
    extract::{FromRequest, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use super::error::ApiError;

/// A successful answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// The payload.
    pub data: T,
    /// Paging and other facts about the payload.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Always empty on success.
    #[schema(value_type = Vec<ErrorItem>, max_items = 0)]
    pub errors: [(); 0],
}

/// `200 OK` with `data` in the envelope.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        data,
        meta: Default::default(),
        errors: [],
    })
    .into_response()
}

/// `200 OK` with `data` and paging facts in `meta`.
pub fn ok_with_meta<T: Serialize>(
    data: T,
    meta: serde_json::Map<String, serde_json::Value>,
) -> Response {
    Json(Envelope {
        data,
        meta,
        errors: [],
    })
    .into_response()
}

/// `201 Created` with `data` in the envelope.
pub fn created<T: Serialize>(data: T) -> Response {
    (
        StatusCode::CREATED,
        Json(Envelope {
            data,
            meta: Default::default(),
            errors: [],
        }),
    )
        .into_response()
}

/// One error in an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorItem {
    /// Stable machine code.
    pub code: String,
    /// Message for people.
    pub message: String,
}

/// An error answer: `data` is null and `errors` says what went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = Option<String>)]
    data: (),
    meta: serde_json::Map<String, serde_json::Value>,
    errors: Vec<ErrorItem>,
}

impl ErrorBody {
    /// An error body with one error.
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            data: (),
            meta: Default::default(),
            errors: vec![ErrorItem {
                code: code.into(),
                message: message.into(),
            }],
        }
    }
}

/// The OpenAPI responses every authenticated operation may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described, never built: the handlers answer these through ApiError.
pub enum AuthErrors {
    /// No or bad credentials.
    #[response(status = 401, description = "No or bad credentials")]
    Unauthorized(ErrorBody),
    /// Over the request limit.
    #[response(status = 429, description = "Rate limited; see Retry-After")]
    RateLimited(ErrorBody),
}

/// The OpenAPI responses of an operation that takes a JSON body ([`ApiJson`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described, never built: ApiJson answers these through ApiError.
pub enum BodyErrors {
    /// Not JSON.
    #[response(status = 400, description = "Malformed JSON, or not JSON")]
    Malformed(ErrorBody),
    /// Too large.
    #[response(status = 413, description = "Body too large")]
    TooLarge(ErrorBody),
    /// The wrong shape or values.
    #[response(status = 422, description = "Invalid input")]
    Invalid(ErrorBody),
}

/// A JSON request body, which must be an object; a body that is not valid JSON, has the wrong
/// shape or is too large is answered with an enveloped 400, 422 or 413. (serde would also read
/// a struct from an array of its fields in order: that is refused too.)
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::new(
                super::error::ErrorKind::Unprocessable,
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_value(value).map(Self).map_err(|e| {
            ApiError::new(
                super::error::ErrorKind::Unprocessable,
                "invalid_body",
                format!("Failed to deserialize the JSON body into the target type: {e}"),
            )
        })
    }
}

/// A query string read into `T`; one that does not fit is answered with an enveloped 422
/// (code `invalid_query`) saying which parameter is wrong.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| {
                ApiError::new(
                    super::error::ErrorKind::Unprocessable,
                    "invalid_query",
                    format!("the query string does not fit: {}", e.body_text()),
                )
            })
    }
}

/// The OpenAPI responses of an operation that takes query parameters ([`ApiQuery`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described, never built: ApiQuery answers these through ApiError.
pub enum QueryErrors {
    /// A parameter of the wrong type or value.
    #[response(status = 422, description = "Invalid query parameters")]
    Invalid(ErrorBody),
}
