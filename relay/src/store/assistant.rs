//! What the project manager assistant keeps: each user's conversations, their messages, and the
//! A2A tasks that drive turns for other agents. Every query is scoped to the owner.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::{A2aTaskState, AssistantRole};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreResult;

/// A conversation with the assistant.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Conversation {
    /// Its id.
    pub id: Uuid,
    /// Its owner.
    #[serde(skip)]
    pub owner_id: Uuid,
    /// A title (the first question, shortened, unless given).
    pub title: String,
    /// Tools the user allowed without asking again, as JSON.
    #[serde(skip)]
    pub allowed_tools: String,
    /// The tool call waiting for confirmation, as JSON.
    #[serde(skip)]
    pub pending: Option<String>,
    /// The A2A context it belongs to, if another agent started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One tool call the assistant asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssistantToolCall {
    /// The call's id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, JSON text.
    pub arguments: String,
}

/// A message of a conversation.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AssistantMessage {
    /// Its id.
    pub id: Uuid,
    /// Its conversation.
    #[serde(skip)]
    pub conversation_id: Uuid,
    /// Its place in the conversation.
    #[serde(skip)]
    pub seq: i32,
    /// Who wrote it.
    #[sqlx(try_from = "String")]
    pub role: AssistantRole,
    /// Its text (a tool's result, for a tool message).
    pub text: String,
    /// The tool calls an assistant message asked for.
    #[sqlx(json)]
    pub tool_calls: Vec<AssistantToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// The tool a tool message comes from.
    pub tool_name: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// An A2A task: one turn of a conversation, for another agent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct A2aTask {
    /// Its id.
    pub id: Uuid,
    /// The user it acts for.
    pub owner_id: Uuid,
    /// The conversation it speaks in.
    pub conversation_id: Uuid,
    /// The A2A context.
    pub context_id: String,
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub state: A2aTaskState,
    /// The answer so far (the final one once completed).
    pub answer: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A version of a prompt of a project's library.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Prompt {
    /// This version's id.
    pub id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Its name, unique in the project.
    pub name: String,
    /// Its version, from 1.
    pub version: i32,
    /// What it is for.
    pub description: String,
    /// The template (`{{ name }}` for an argument).
    pub body: String,
    /// Who saved this version.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Conversations, messages, A2A tasks and prompts, for both databases.
#[async_trait]
pub trait AssistantStore: Send + Sync {
    /// Stores a new conversation.
    async fn create_conversation(&self, c: &Conversation) -> StoreResult<()>;
    /// The owner's conversations, latest first.
    async fn conversations(&self, owner: Uuid, limit: u32) -> StoreResult<Vec<Conversation>>;
    /// One of the owner's conversations.
    async fn conversation(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<Conversation>>;
    /// The owner's conversation of an A2A context.
    async fn conversation_in_context(
        &self,
        owner: Uuid,
        context: &str,
    ) -> StoreResult<Option<Conversation>>;
    /// Changes a conversation's title, allowed tools and pending call.
    async fn update_conversation(&self, c: &Conversation) -> StoreResult<()>;
    /// Removes one of the owner's conversations; false when there was none.
    async fn delete_conversation(&self, owner: Uuid, id: Uuid) -> StoreResult<bool>;
    /// The last `limit` messages of a conversation, in order.
    async fn messages(&self, conversation: Uuid, limit: u32) -> StoreResult<Vec<AssistantMessage>>;
    /// Appends a message (its `seq` is the next one).
    async fn append_message(&self, m: &AssistantMessage) -> StoreResult<()>;
    /// Stores a new A2A task.
    async fn create_a2a_task(&self, t: &A2aTask) -> StoreResult<()>;
    /// One of the owner's A2A tasks.
    async fn a2a_task(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<A2aTask>>;
    /// Changes an A2A task's state and answer.
    async fn update_a2a_task(
        &self,
        id: Uuid,
        state: A2aTaskState,
        answer: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The latest version of each prompt of these projects.
    async fn latest_prompts(&self, projects: &[Uuid]) -> StoreResult<Vec<Prompt>>;
    /// A prompt of a project: one version, or the latest.
    async fn prompt(
        &self,
        project: Uuid,
        name: &str,
        version: Option<i32>,
    ) -> StoreResult<Option<Prompt>>;
    /// Every version of a prompt, newest first.
    async fn prompt_versions(&self, project: Uuid, name: &str) -> StoreResult<Vec<Prompt>>;
    /// Saves a prompt as its next version (`version` is set here); the stored one.
    async fn save_prompt(&self, p: &Prompt) -> StoreResult<Prompt>;
    /// Removes every version of a prompt; false when there was none.
    async fn delete_prompt(&self, project: Uuid, name: &str) -> StoreResult<bool>;
    /// The owner's A2A tasks, latest first, of one context when given.
    async fn a2a_tasks(
        &self,
        owner: Uuid,
        context: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<A2aTask>>;
}
