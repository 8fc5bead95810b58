//! Secrets a user keeps with Fulcrum (provider keys, GitHub and Coder credentials): stored
//! sealed under the relay's master keys (`crate::secrets`), each bound to its owner and name,
//! read back only for its owner. The relay checks at start that its keys open what is stored,
//! and `fulcrum-relay keys rotate` re-seals everything under the current key.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
};
use crate::{
    metrics::Metrics,
    secrets::{KeyRing, Plain, SecretsError},
    store::{DynStore, StoreError},
};

/// Longest secret name.
const MAX_NAME: usize = 200;
/// Secrets re-sealed per store round trip during a rotation.
const ROTATION_BATCH: u32 = 500;

impl From<SecretsError> for DomainError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::NoKeys => DomainError::refused("secrets_unavailable", e.to_string()),
            SecretsError::TooLarge | SecretsError::BadKeys(_) => {
                DomainError::Invalid(e.to_string())
            }
            SecretsError::UnknownKey(_) | SecretsError::WontOpen(_) => {
                DomainError::Internal(e.to_string())
            }
        }
    }
}

/// What a secret is bound to: a ciphertext opens only for the row it was sealed for.
fn context(owner: Uuid, name: &str) -> String {
    format!("fulcrum/secret/v1/{owner}/{name}")
}

/// A secret name: 1 to 200 of letters, digits and `. _ - / :`.
fn check_name(name: &str) -> DomainResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "a secret name is 1 to {MAX_NAME} letters, digits, '.', '-', '_', '/' or ':'"
        )))
    }
}

/// A user's sealed secrets, with what keeping them uses.
pub struct Secrets {
    store: DynStore,
    keys: Option<Arc<KeyRing>>,
    metrics: Arc<Metrics>,
}

impl Secrets {
    /// Secrets in `store`, sealed with `keys` (none configured: every call is refused with a
    /// clear error).
    pub fn new(store: DynStore, keys: Option<Arc<KeyRing>>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            keys,
            metrics,
        }
    }

    fn keys(&self) -> DomainResult<&KeyRing> {
        self.keys
            .as_deref()
            .ok_or_else(|| SecretsError::NoKeys.into())
    }

    /// Whether master keys are configured, and the current key's id.
    pub fn current_key(&self) -> Option<&str> {
        self.keys.as_deref().map(KeyRing::current_id)
    }

    /// Stores the caller's secret `name` (replacing one of that name), sealed.
    pub async fn put(&self, caller: Caller, name: &str, value: Plain) -> DomainResult<()> {
        self.seal_for(caller.user, name, value).await?;
        audit::record(Record {
            caller,
            action: "secret.put",
            subject: caller.user,
        });
        Ok(())
    }

    /// Seals `value` as `owner`'s secret `name`, for what the relay keeps on their behalf (a
    /// webhook's signing secret); never for a door.
    pub(crate) async fn seal_for(&self, owner: Uuid, name: &str, value: Plain) -> DomainResult<()> {
        check_name(name)?;
        let sealed = self.keys()?.seal(&context(owner, name), value.expose())?;
        self.store
            .put_sealed(owner, name, &sealed, Utc::now())
            .await?;
        self.metrics.secret_sealed();
        Ok(())
    }

    /// Deletes `owner`'s secret `name` that the relay kept on their behalf; whether it was there.
    pub(crate) async fn remove_for(&self, owner: Uuid, name: &str) -> DomainResult<bool> {
        check_name(name)?;
        Ok(self.store.delete_sealed(owner, name).await?)
    }

    /// The caller's secret `name`, opened.
    pub async fn get(&self, caller: Caller, name: &str) -> DomainResult<Plain> {
        self.open(caller.user, name).await
    }

    /// `owner`'s secret `name`, opened, for the relay's own use on their behalf (a pipeline
    /// run calling its provider); never for a door.
    pub(crate) async fn open(&self, owner: Uuid, name: &str) -> DomainResult<Plain> {
        check_name(name)?;
        let keys = self.keys()?;
        let sealed = self
            .store
            .sealed(owner, name)
            .await?
            .ok_or(DomainError::NotFound("secret"))?;
        match keys.open(&context(owner, name), &sealed) {
            Ok(plain) => {
                self.metrics.secret_opened(true);
                Ok(plain)
            }
            Err(e) => {
                self.metrics.secret_opened(false);
                tracing::error!(error = %e, "a stored secret did not open");
                Err(e.into())
            }
        }
    }

    /// The names of the caller's secrets (never their values).
    pub async fn names(&self, caller: Caller) -> DomainResult<Vec<String>> {
        Ok(self.store.sealed_names(caller.user).await?)
    }

    /// Deletes the caller's secret `name`.
    pub async fn delete(&self, caller: Caller, name: &str) -> DomainResult<()> {
        check_name(name)?;
        if !self.store.delete_sealed(caller.user, name).await? {
            return Err(DomainError::NotFound("secret"));
        }
        audit::record(Record {
            caller,
            action: "secret.delete",
            subject: caller.user,
        });
        Ok(())
    }
}

/// Why the relay cannot use the secrets it stores.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The keys do not fit what is stored.
    #[error(transparent)]
    Keys(#[from] SecretsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks at start that `keys` open what the store holds: every master key id in use is
/// configured, and opens one of its secrets. Returns how many secrets each key holds.
pub async fn check_keys(
    store: &DynStore,
    keys: Option<&KeyRing>,
) -> Result<Vec<(String, u64)>, KeyCheckError> {
    let counts = store.sealed_key_counts().await?;
    if counts.is_empty() {
        return Ok(counts);
    }
    let keys = keys.ok_or(SecretsError::NoKeys)?;
    for (key_id, _) in &counts {
        if !keys.has(key_id) {
            return Err(SecretsError::UnknownKey(key_id.clone()).into());
        }
        if let Some((owner, name, sealed)) = store.sealed_sample(key_id).await? {
            keys.open(&context(owner, &name), &sealed)?;
        }
    }
    Ok(counts)
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets re-sealed under the current key.
    pub resealed: u64,
    /// Secrets left under another key because they changed while being re-sealed (run again).
    pub changed: u64,
}

/// Re-seals every secret under `keys`' current key, in batches. Each secret is opened with the
/// key it was sealed under (which must still be in the ring) and replaced only if it did not
/// change in between.
pub async fn rotate(store: &DynStore, keys: &KeyRing) -> Result<Rotation, KeyCheckError> {
    check_keys(store, Some(keys)).await?;
    let mut done = Rotation::default();
    loop {
        let batch = store
            .sealed_not_under(keys.current_id(), ROTATION_BATCH)
            .await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let mut progressed = false;
        for (owner, name, was) in batch {
            let ctx = context(owner, &name);
            let plain = keys.open(&ctx, &was)?;
            let next = keys.seal(&ctx, plain.expose())?;
            if store.reseal(owner, &name, &was, &next).await? {
                done.resealed += 1;
                progressed = true;
            } else {
                done.changed += 1;
            }
        }
        if !progressed {
            // Every secret of the batch changed under us: leave them for the next run rather
            // than loop.
            return Ok(done);
        }
    }
}
