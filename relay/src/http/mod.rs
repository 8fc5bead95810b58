//! What every HTTP door shares: the error type that maps failures (domain errors included) to
//! status codes in one place, the JSON envelope of answers, and the headers and CORS policy of
//! every answer. A leaf: it imports no door.

pub mod envelope;
pub mod error;
pub mod policy;
