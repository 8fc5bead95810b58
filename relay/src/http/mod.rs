//! What every HTTP door shares: the error type that maps failures (domain errors included) to
//! status codes in one place, the JSON envelope of answers, and the headers and CORS policy of
//! every answer, and the client's address. A leaf: it imports no door.

pub mod client;
pub mod envelope;
pub mod error;
pub mod policy;
pub mod sse;
