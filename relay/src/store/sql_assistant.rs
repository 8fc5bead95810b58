//! The SQL behind [`AssistantStore`], written once for SQLite and PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fulcrum_protocol::kinds::A2aTaskState;
use uuid::Uuid;

use super::{
    PostgresStore, SqliteStore, StoreResult,
    assistant::{A2aTask, AssistantMessage, AssistantStore, Conversation, Prompt},
};

const CONVERSATION: &str = "SELECT id, owner_id, title, allowed_tools, pending, context_id, \
    created_at, updated_at FROM assistant_conversations";
const MESSAGE: &str = "SELECT id, conversation_id, seq, role, text, tool_calls, tool_call_id, \
    tool_name, created_at FROM assistant_messages";
const PROMPT: &str = "SELECT id, project_id, name, version, description, body, created_by, \
    created_at FROM prompts";
const TASK: &str = "SELECT id, owner_id, conversation_id, context_id, state, answer, created_at, \
    updated_at FROM a2a_tasks";

/// Stamps out an [`AssistantStore`] implementation for one store.
macro_rules! sql_assistant_store {
    ($name:ident) => {
        #[async_trait]
        impl AssistantStore for $name {
            async fn create_conversation(&self, c: &Conversation) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO assistant_conversations (id, owner_id, title, allowed_tools, \
                     pending, context_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.id)
                .bind(c.owner_id)
                .bind(&c.title)
                .bind(&c.allowed_tools)
                .bind(&c.pending)
                .bind(&c.context_id)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn conversations(
                &self,
                owner: Uuid,
                limit: u32,
            ) -> StoreResult<Vec<Conversation>> {
                Ok(sqlx::query_as(&format!(
                    "{CONVERSATION} WHERE owner_id = $1 ORDER BY updated_at DESC LIMIT $2"
                ))
                .bind(owner)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn conversation(
                &self,
                owner: Uuid,
                id: Uuid,
            ) -> StoreResult<Option<Conversation>> {
                Ok(sqlx::query_as(&format!(
                    "{CONVERSATION} WHERE owner_id = $1 AND id = $2"
                ))
                .bind(owner)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn conversation_in_context(
                &self,
                owner: Uuid,
                context: &str,
            ) -> StoreResult<Option<Conversation>> {
                Ok(sqlx::query_as(&format!(
                    "{CONVERSATION} WHERE owner_id = $1 AND context_id = $2"
                ))
                .bind(owner)
                .bind(context)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn update_conversation(&self, c: &Conversation) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE assistant_conversations SET title = $3, allowed_tools = $4, \
                     pending = $5, updated_at = $6 WHERE owner_id = $1 AND id = $2",
                )
                .bind(c.owner_id)
                .bind(c.id)
                .bind(&c.title)
                .bind(&c.allowed_tools)
                .bind(&c.pending)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_conversation(&self, owner: Uuid, id: Uuid) -> StoreResult<bool> {
                let done = sqlx::query(
                    "DELETE FROM assistant_conversations WHERE owner_id = $1 AND id = $2",
                )
                .bind(owner)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn messages(
                &self,
                conversation: Uuid,
                limit: u32,
            ) -> StoreResult<Vec<AssistantMessage>> {
                let mut all: Vec<AssistantMessage> = sqlx::query_as(&format!(
                    "{MESSAGE} WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2"
                ))
                .bind(conversation)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                all.reverse();
                Ok(all)
            }

            async fn append_message(&self, m: &AssistantMessage) -> StoreResult<()> {
                let calls = serde_json::to_string(&m.tool_calls).unwrap_or_else(|_| "[]".into());
                sqlx::query(
                    "INSERT INTO assistant_messages (id, conversation_id, seq, role, text, \
                     tool_calls, tool_call_id, tool_name, created_at) \
                     SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $8 \
                     FROM assistant_messages WHERE conversation_id = $2",
                )
                .bind(m.id)
                .bind(m.conversation_id)
                .bind(m.role.as_str())
                .bind(&m.text)
                .bind(calls)
                .bind(&m.tool_call_id)
                .bind(&m.tool_name)
                .bind(m.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn create_a2a_task(&self, t: &A2aTask) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO a2a_tasks (id, owner_id, conversation_id, context_id, state, \
                     answer, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t.id)
                .bind(t.owner_id)
                .bind(t.conversation_id)
                .bind(&t.context_id)
                .bind(t.state.as_str())
                .bind(&t.answer)
                .bind(t.created_at)
                .bind(t.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn a2a_task(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<A2aTask>> {
                Ok(
                    sqlx::query_as(&format!("{TASK} WHERE owner_id = $1 AND id = $2"))
                        .bind(owner)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn update_a2a_task(
                &self,
                id: Uuid,
                state: A2aTaskState,
                answer: Option<&str>,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE a2a_tasks SET state = $2, answer = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(state.as_str())
                .bind(answer)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn latest_prompts(&self, projects: &[Uuid]) -> StoreResult<Vec<Prompt>> {
                if projects.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b: sqlx::QueryBuilder<'_, _> = sqlx::QueryBuilder::new(format!(
                    "{PROMPT} p WHERE version = (SELECT MAX(version) FROM prompts q \
                     WHERE q.project_id = p.project_id AND q.name = p.name) AND project_id IN ("
                ));
                let mut sep = b.separated(", ");
                for p in projects {
                    sep.push_bind(*p);
                }
                b.push(") ORDER BY name LIMIT 1000");
                Ok(b.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn prompt(
                &self,
                project: Uuid,
                name: &str,
                version: Option<i32>,
            ) -> StoreResult<Option<Prompt>> {
                Ok(sqlx::query_as(&format!(
                    "{PROMPT} WHERE project_id = $1 AND name = $2 AND ($3 IS NULL OR version = $3) \
                     ORDER BY version DESC LIMIT 1"
                ))
                .bind(project)
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn prompt_versions(&self, project: Uuid, name: &str) -> StoreResult<Vec<Prompt>> {
                Ok(sqlx::query_as(&format!(
                    "{PROMPT} WHERE project_id = $1 AND name = $2 ORDER BY version DESC LIMIT 500"
                ))
                .bind(project)
                .bind(name)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn save_prompt(&self, p: &Prompt) -> StoreResult<Prompt> {
                let mut tx = self.pool.begin().await?;
                // Serializes saves of the project's prompts (a row lock, or SQLite's write lock).
                sqlx::query("UPDATE projects SET id = id WHERE id = $1")
                    .bind(p.project_id)
                    .execute(&mut *tx)
                    .await?;
                let last: Option<i32> = sqlx::query_scalar(
                    "SELECT MAX(version) FROM prompts WHERE project_id = $1 AND name = $2",
                )
                .bind(p.project_id)
                .bind(&p.name)
                .fetch_one(&mut *tx)
                .await?;
                let mut saved = p.clone();
                saved.version = last.unwrap_or(0) + 1;
                sqlx::query(
                    "INSERT INTO prompts (id, project_id, name, version, description, body, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(saved.id)
                .bind(saved.project_id)
                .bind(&saved.name)
                .bind(saved.version)
                .bind(&saved.description)
                .bind(&saved.body)
                .bind(saved.created_by)
                .bind(saved.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn delete_prompt(&self, project: Uuid, name: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM prompts WHERE project_id = $1 AND name = $2")
                    .bind(project)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn a2a_tasks(
                &self,
                owner: Uuid,
                context: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<A2aTask>> {
                Ok(sqlx::query_as(&format!(
                    "{TASK} WHERE owner_id = $1 AND ($2 IS NULL OR context_id = $2) \
                     ORDER BY updated_at DESC LIMIT $3"
                ))
                .bind(owner)
                .bind(context)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

sql_assistant_store!(SqliteStore);
sql_assistant_store!(PostgresStore);
