//! A project's prompt library: named prompt templates (the seeds' "template prompts for
//! different scenarios"), every save a new version with the old ones kept. Members read and
//! render them; owners and maintainers save and remove them. They reach MCP clients as MCP
//! prompts (`project/name`) and the assistant as the `get_prompt` tool.
//!
//! A template is MiniJinja text: `{{ name }}` for an argument, the same engine and the same
//! sandbox (no file access, a fuel limit) as pipeline templates; a missing argument is an error
//! naming it, not an empty string.

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use fulcrum_protocol::kinds::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    audit::{self, Record},
    projects::Projects,
};
use crate::store::{DynStore, Project, Scope, assistant::Prompt};

/// Longest template.
pub const MAX_BODY: usize = 64 << 10;
/// Most prompts a project keeps (versions count once per name).
const MAX_PROMPTS: usize = 500;
/// Template evaluation fuel (instructions) per render.
const FUEL: u64 = 200_000;

/// A prompt to save.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptInput {
    /// Its name: 1 to 64 of `a-z 0-9 - _ .`; saving an existing name makes a new version.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The template (`{{ name }}` for an argument), at most 64 KiB.
    pub body: String,
}

/// A prompt with its arguments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PromptView {
    /// The version.
    #[serde(flatten)]
    pub prompt: Prompt,
    /// The arguments its template uses, sorted.
    pub arguments: Vec<String>,
}

/// A prompt in a list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct PromptSummary {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its latest version.
    pub version: i32,
    /// The arguments its template uses.
    pub arguments: Vec<String>,
}

impl From<PromptView> for PromptSummary {
    fn from(v: PromptView) -> Self {
        Self {
            name: v.prompt.name,
            description: v.prompt.description,
            version: v.prompt.version,
            arguments: v.arguments,
        }
    }
}

/// A project's prompts, as a tool's result.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PromptList {
    /// The prompts.
    pub prompts: Vec<PromptSummary>,
}

/// A prompt rendered with arguments.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct RenderedPrompt {
    /// The prompt's name.
    pub name: String,
    /// The version rendered.
    pub version: i32,
    /// The text.
    pub text: String,
}

/// The prompt library.
pub struct Prompts {
    store: DynStore,
    projects: Arc<Projects>,
}

fn env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// The arguments a template uses (checking it parses).
pub fn arguments(body: &str) -> DomainResult<Vec<String>> {
    let env = env();
    let t = env
        .template_from_str(body)
        .map_err(|e| DomainError::Invalid(format!("the template does not parse: {e}")))?;
    let mut names: Vec<String> = t.undeclared_variables(false).into_iter().collect();
    names.sort();
    Ok(names)
}

fn view(prompt: Prompt) -> PromptView {
    let arguments = arguments(&prompt.body).unwrap_or_default();
    PromptView { prompt, arguments }
}

fn check_name(name: &str) -> DomainResult<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
    {
        return Err(DomainError::Invalid(
            "name is 1 to 64 of a-z, 0-9, '-', '_' and '.'".into(),
        ));
    }
    Ok(())
}

impl Prompts {
    /// The library in `store`, its projects seen through `projects`.
    pub fn new(store: DynStore, projects: Arc<Projects>) -> Self {
        Self { store, projects }
    }

    /// The latest version of each of a project's prompts.
    pub async fn list(&self, caller: Caller, project: Uuid) -> DomainResult<Vec<PromptView>> {
        let p = self.projects.visible(caller, project).await?;
        Ok(self
            .store
            .latest_prompts(&[p.id])
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// The latest version of the prompts of every project the caller may see, with each
    /// project (for MCP's prompt list).
    pub async fn everywhere(&self, caller: Caller) -> DomainResult<Vec<(Project, PromptView)>> {
        let projects = self.projects.list(caller).await?;
        let ids: Vec<Uuid> = projects.iter().map(|p| p.id).collect();
        let all = self.store.latest_prompts(&ids).await?;
        Ok(all
            .into_iter()
            .filter_map(|pr| {
                let p = projects.iter().find(|p| p.id == pr.project_id)?.clone();
                Some((p, view(pr)))
            })
            .collect())
    }

    /// One prompt: a version, or the latest; with its versions listed newest first.
    pub async fn get(
        &self,
        caller: Caller,
        project: Uuid,
        name: &str,
        version: Option<i32>,
    ) -> DomainResult<(PromptView, Vec<i32>)> {
        let p = self.projects.visible(caller, project).await?;
        let prompt = self
            .store
            .prompt(p.id, name, version)
            .await?
            .ok_or(DomainError::NotFound("prompt"))?;
        let versions = self
            .store
            .prompt_versions(p.id, name)
            .await?
            .into_iter()
            .map(|v| v.version)
            .collect();
        Ok((view(prompt), versions))
    }

    /// Saves a prompt as a new version (owners and maintainers).
    pub async fn save(
        &self,
        caller: Caller,
        project: Uuid,
        input: PromptInput,
    ) -> DomainResult<PromptView> {
        caller.need(Scope::Write)?;
        let p = self
            .projects
            .managed(
                caller,
                project,
                &[Role::Owner, Role::Maintainer],
                "change its prompts",
            )
            .await?;
        check_name(&input.name)?;
        if input.body.trim().is_empty() || input.body.len() > MAX_BODY {
            return Err(DomainError::Invalid(format!(
                "body is 1 to {MAX_BODY} bytes"
            )));
        }
        if input.description.len() > 1000 {
            return Err(DomainError::Invalid(
                "description is at most 1000 bytes".into(),
            ));
        }
        arguments(&input.body)?;
        let existing = self.store.latest_prompts(&[p.id]).await?;
        if existing.len() >= MAX_PROMPTS && !existing.iter().any(|e| e.name == input.name) {
            return Err(DomainError::Invalid(format!(
                "a project keeps at most {MAX_PROMPTS} prompts"
            )));
        }
        let saved = self
            .store
            .save_prompt(&Prompt {
                id: Uuid::now_v7(),
                project_id: p.id,
                name: input.name,
                version: 0,
                description: input.description,
                body: input.body,
                created_by: caller.user,
                created_at: Utc::now(),
            })
            .await?;
        audit::record(Record {
            caller,
            action: "prompt.save",
            subject: saved.id,
        });
        Ok(view(saved))
    }

    /// Removes a prompt and all its versions (owners and maintainers).
    pub async fn delete(&self, caller: Caller, project: Uuid, name: &str) -> DomainResult<()> {
        caller.need(Scope::Write)?;
        let p = self
            .projects
            .managed(
                caller,
                project,
                &[Role::Owner, Role::Maintainer],
                "change its prompts",
            )
            .await?;
        if !self.store.delete_prompt(p.id, name).await? {
            return Err(DomainError::NotFound("prompt"));
        }
        audit::record(Record {
            caller,
            action: "prompt.delete",
            subject: p.id,
        });
        Ok(())
    }

    /// A prompt rendered with `args` (every argument it uses is required).
    pub async fn render(
        &self,
        caller: Caller,
        project: Uuid,
        name: &str,
        version: Option<i32>,
        args: &BTreeMap<String, String>,
    ) -> DomainResult<RenderedPrompt> {
        let (v, _) = self.get(caller, project, name, version).await?;
        let missing: Vec<&String> = v
            .arguments
            .iter()
            .filter(|a| !args.contains_key(*a))
            .collect();
        if !missing.is_empty() {
            return Err(DomainError::Invalid(format!(
                "the prompt {name} needs the argument(s) {}",
                missing
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let env = env();
        let text = env
            .render_str(&v.prompt.body, args)
            .map_err(|e| DomainError::Invalid(format!("the prompt does not render: {e}")))?;
        Ok(RenderedPrompt {
            name: v.prompt.name,
            version: v.prompt.version,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_found_and_bad_templates_refused() {
        assert_eq!(
            arguments("Review {{ file }} for {{ concern }}; {% for x in [1] %}{{ x }}{% endfor %}")
                .unwrap(),
            vec!["concern".to_owned(), "file".to_owned()]
        );
        assert!(arguments("{{ unclosed").is_err());
        assert!(check_name("review-pr").is_ok());
        assert!(check_name("Review PR").is_err());
    }
}
