//! LLM providers a user sets up: a wire format, a base URL, a default model and a key. The key
//! is sealed with the user's secrets (`llm/<provider id>`), shown only by its last characters,
//! and opened only to make a call for its owner. A provider is its owner's everywhere, or for
//! one project (set by someone who manages it, and then used by every member's runs there).

use chrono::Utc;
use fulcrum_protocol::kinds::{ProviderKind, Role};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
    projects::Projects,
    secrets::Secrets,
};
use crate::{
    llm::{ApiKey, Endpoint},
    secrets::Plain,
    store::{DynStore, Scope, pipelines::LlmProvider},
};

/// Longest key accepted.
const MAX_KEY: usize = 4096;
/// Most providers per user.
const MAX_PROVIDERS: usize = 50;

/// A provider to set up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    /// A name, unique among the user's providers.
    pub name: String,
    /// The wire format.
    pub kind: ProviderKind,
    /// The base URL, such as `https://api.openai.com/v1`, `https://api.anthropic.com/v1` or
    /// `http://127.0.0.1:11434/v1` (Ollama).
    pub base_url: String,
    /// The model used when a stage names none.
    pub default_model: String,
    /// The key; kept sealed, never shown again.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<ApiKey>,
    /// The one project it is for [default: all of the user's].
    #[serde(default)]
    pub project_id: Option<Uuid>,
}

/// Changes to a provider.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    /// A new base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// A new default model.
    #[serde(default)]
    pub default_model: Option<String>,
    /// A new key (rotation): replaces the sealed one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<ApiKey>,
}

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::Invalid(m.into())
}

fn check_url(url: &str) -> DomainResult<()> {
    let parsed = url::Url::parse(url).map_err(|_| invalid("base_url is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || url.len() > 500 {
        return Err(invalid(
            "base_url is an http or https URL of at most 500 bytes",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "base_url cannot hold credentials; give the key as api_key",
        ));
    }
    Ok(())
}

fn check_model(model: &str) -> DomainResult<()> {
    if model.trim().is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
        return Err(invalid("default_model is 1 to 200 printable characters"));
    }
    Ok(())
}

fn check_key(key: &ApiKey) -> DomainResult<()> {
    let k = key.expose();
    if k.is_empty() || k.len() > MAX_KEY || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!(
            "api_key is 1 to {MAX_KEY} bytes without spaces"
        )));
    }
    Ok(())
}

fn secret_name(id: Uuid) -> String {
    format!("llm/{id}")
}

/// The user's LLM providers.
pub struct Providers {
    store: DynStore,
    secrets: std::sync::Arc<Secrets>,
    projects: std::sync::Arc<Projects>,
}

impl Providers {
    /// Providers in `store`, their keys kept by `secrets`; project providers checked against
    /// `projects`.
    pub fn new(
        store: DynStore,
        secrets: std::sync::Arc<Secrets>,
        projects: std::sync::Arc<Projects>,
    ) -> Self {
        Self {
            store,
            secrets,
            projects,
        }
    }

    /// The caller's providers.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<LlmProvider>> {
        caller.need(Scope::Read)?;
        caller.need_unlimited("list providers")?;
        Ok(self.store.list_providers(caller.user).await?)
    }

    /// Sets up a provider for the caller.
    pub async fn create(&self, caller: Caller, input: ProviderInput) -> DomainResult<LlmProvider> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("set up providers")?;
        let name = input.name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(invalid("name is 1 to 64 printable characters"));
        }
        check_url(&input.base_url)?;
        check_model(&input.default_model)?;
        if let Some(key) = &input.api_key {
            check_key(key)?;
        }
        if let Some(project) = input.project_id {
            self.projects
                .managed(
                    caller,
                    project,
                    &[Role::Owner, Role::Maintainer],
                    "set up its providers",
                )
                .await?;
        }
        if self.store.list_providers(caller.user).await?.len() >= MAX_PROVIDERS {
            return Err(DomainError::conflict(
                "too_many_providers",
                format!("a user has at most {MAX_PROVIDERS} providers"),
            ));
        }
        let now = Utc::now();
        let provider = LlmProvider {
            id: Uuid::now_v7(),
            owner_id: caller.user,
            project_id: input.project_id,
            name: name.to_owned(),
            kind: input.kind,
            base_url: input.base_url.trim_end_matches('/').to_owned(),
            default_model: input.default_model.trim().to_owned(),
            key_hint: input.api_key.as_ref().map(ApiKey::hint),
            created_at: now,
            updated_at: now,
        };
        // The key first: a provider never exists without the key it was given.
        if let Some(key) = &input.api_key {
            self.secrets
                .put(
                    caller,
                    &secret_name(provider.id),
                    Plain::new(key.expose().as_bytes().to_vec()),
                )
                .await?;
        }
        if let Err(e) = self.store.create_provider(&provider).await {
            if input.api_key.is_some() {
                let _ = self.secrets.delete(caller, &secret_name(provider.id)).await;
            }
            return Err(e.into());
        }
        audit::record(Record {
            caller,
            action: "llm_provider.create",
            subject: provider.id,
        });
        Ok(provider)
    }

    /// Changes one of the caller's providers (a new key rotates the sealed one).
    pub async fn update(
        &self,
        caller: Caller,
        id: Uuid,
        patch: ProviderPatch,
    ) -> DomainResult<LlmProvider> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("change providers")?;
        let mut p = self
            .store
            .provider(caller.user, id)
            .await?
            .ok_or(DomainError::NotFound("provider"))?;
        if let Some(url) = patch.base_url {
            check_url(&url)?;
            p.base_url = url.trim_end_matches('/').to_owned();
        }
        if let Some(model) = patch.default_model {
            check_model(&model)?;
            p.default_model = model.trim().to_owned();
        }
        if let Some(key) = &patch.api_key {
            check_key(key)?;
            self.secrets
                .put(
                    caller,
                    &secret_name(id),
                    Plain::new(key.expose().as_bytes().to_vec()),
                )
                .await?;
            p.key_hint = Some(key.hint());
        }
        p.updated_at = Utc::now();
        if !self.store.update_provider(&p).await? {
            return Err(DomainError::NotFound("provider"));
        }
        audit::record(Record {
            caller,
            action: "llm_provider.update",
            subject: id,
        });
        Ok(p)
    }

    /// Removes one of the caller's providers and its key.
    pub async fn delete(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        caller.need(Scope::Write)?;
        caller.need_unlimited("remove providers")?;
        if !self.store.delete_provider(caller.user, id).await? {
            return Err(DomainError::NotFound("provider"));
        }
        match self.secrets.delete(caller, &secret_name(id)).await {
            Ok(()) | Err(DomainError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        audit::record(Record {
            caller,
            action: "llm_provider.delete",
            subject: id,
        });
        Ok(())
    }

    /// The provider a run of `user` in `project` uses: the one asked for (theirs), else theirs
    /// for this project, else theirs for all projects, else one the project's owner set up
    /// for the project.
    pub(crate) async fn choose(
        &self,
        user: Uuid,
        project: &crate::store::Project,
        asked: Option<Uuid>,
    ) -> DomainResult<LlmProvider> {
        let mine = self.store.list_providers(user).await?;
        if let Some(id) = asked {
            return mine
                .into_iter()
                .chain(self.store.list_providers(project.owner_id).await?)
                .find(|p| p.id == id && (p.owner_id == user || p.project_id == Some(project.id)))
                .ok_or(DomainError::NotFound("provider"));
        }
        let pick = mine
            .iter()
            .find(|p| p.project_id == Some(project.id))
            .or_else(|| mine.iter().find(|p| p.project_id.is_none()))
            .cloned();
        if let Some(p) = pick {
            return Ok(p);
        }
        self.store
            .list_providers(project.owner_id)
            .await?
            .into_iter()
            .find(|p| p.project_id == Some(project.id))
            .ok_or_else(|| {
                DomainError::conflict(
                    "no_provider",
                    "set up an LLM provider (Settings → AI providers) before starting a pipeline",
                )
            })
    }

    /// The provider of format `kind` a gateway call of `user` uses: the one named `asked`
    /// (theirs, or the project's), else theirs for the project, else theirs for all
    /// projects, else one the project's owner set up for the project.
    pub(crate) async fn for_gateway(
        &self,
        user: Uuid,
        project: Option<&crate::store::Project>,
        kind: fulcrum_protocol::kinds::ProviderKind,
        asked: Option<&str>,
    ) -> DomainResult<LlmProvider> {
        let mut all: Vec<LlmProvider> = self
            .store
            .list_providers(user)
            .await?
            .into_iter()
            .filter(|p| p.project_id.is_none() || p.project_id == project.map(|p| p.id))
            .collect();
        if let Some(p) = project
            && p.owner_id != user
        {
            all.extend(
                self.store
                    .list_providers(p.owner_id)
                    .await?
                    .into_iter()
                    .filter(|x| x.project_id == Some(p.id)),
            );
        }
        all.retain(|p| p.kind == kind);
        if let Some(name) = asked {
            return all
                .into_iter()
                .find(|p| p.name == name)
                .ok_or(DomainError::NotFound("provider"));
        }
        let rank = |p: &LlmProvider| match (p.owner_id == user, p.project_id.is_some()) {
            (true, true) => 0,
            (true, false) => 1,
            _ => 2,
        };
        all.into_iter().min_by_key(rank).ok_or_else(|| {
            DomainError::conflict(
                "no_provider",
                format!(
                    "set up an LLM provider of the {} format (Settings → AI providers) to use the gateway",
                    kind.as_str()
                ),
            )
        })
    }

    /// The provider the assistant uses for `user`: their first one for all projects.
    pub(crate) async fn for_assistant(&self, user: Uuid) -> DomainResult<LlmProvider> {
        self.store
            .list_providers(user)
            .await?
            .into_iter()
            .find(|p| p.project_id.is_none())
            .ok_or_else(|| {
                DomainError::conflict(
                    "no_provider",
                    "set up an LLM provider for all your projects (Settings → AI providers) to use the assistant",
                )
            })
    }

    /// Where calls through `provider` go, with its key opened.
    pub(crate) async fn endpoint(&self, provider: &LlmProvider) -> DomainResult<Endpoint> {
        let key = match &provider.key_hint {
            None => None,
            Some(_) => {
                let plain = self
                    .secrets
                    .open(provider.owner_id, &secret_name(provider.id))
                    .await?;
                let text = String::from_utf8(plain.expose().to_vec())
                    .map_err(|_| DomainError::Internal("a provider key is not text".into()))?;
                Some(ApiKey::new(text))
            }
        };
        Ok(Endpoint {
            kind: provider.kind,
            base_url: provider.base_url.clone(),
            key,
        })
    }

    /// One provider by id, for the engine (a run names its provider).
    pub(crate) async fn by_id(&self, owner: Uuid, id: Uuid) -> DomainResult<LlmProvider> {
        self.store
            .provider(owner, id)
            .await?
            .ok_or(DomainError::NotFound("provider"))
    }
}
