//! Logins (refresh-token families): whether one is still on.

use chrono::Utc;
use uuid::Uuid;

use crate::{state::AppState, store::StoreError};

/// Whether the login a token was issued under is still on (not logged out, not revoked as
/// replayed). Tokens from before logins were named carry none and count as on.
pub async fn login_active(app: &AppState, login: Option<Uuid>) -> Result<bool, StoreError> {
    match login {
        Some(family) => app.store.login_active(family, Utc::now()).await,
        None => Ok(true),
    }
}
