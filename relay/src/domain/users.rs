//! Users: the rules for e-mail addresses and passwords, and creating an account (the API's
//! sign-up, `fulcrum-relay user create` and `dev` all go through [`create_user`]).

use super::{DomainError, DomainResult};
use crate::{
    auth,
    store::{DynStore, User},
};

/// Longest e-mail address.
const MAX_EMAIL: usize = 254;
/// Shortest password.
pub const MIN_PASSWORD: usize = 8;
/// Longest password.
pub const MAX_PASSWORD: usize = 1024;

/// Normalises and checks an e-mail address; the one rule used by the API and the CLI.
pub fn normalize_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err("a valid e-mail address is required".into())
    }
}

/// Checks a new password's length; the one rule used by the API and the CLI.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ))
    }
}

/// Creates a user: validates, hashes off the runtime, stores. Used by the API and the CLI.
pub async fn create_user(store: &DynStore, email: &str, password: &str) -> DomainResult<User> {
    let email = normalize_email(email).map_err(DomainError::Invalid)?;
    check_password(password).map_err(DomainError::Invalid)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    Ok(store.create_user(&email, &hash).await?)
}
