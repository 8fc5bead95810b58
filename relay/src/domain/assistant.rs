//! The project manager assistant: a conversation per question thread, stored per user, in which
//! a model answers with what it learns through the same tools `/mcp` offers (read files, git,
//! search, tasks, pipelines, reports), called as the user within their permissions and token
//! scopes. A tool that changes something waits for the user's confirmation unless they allowed
//! it in this conversation. Every model call goes through the budget module, so it is
//! journaled, priced, capped by the user's budgets and recorded as an activity
//! (`fulcrum-assistant`).
//!
//! Limits: [`MAX_CALLS`] model calls per turn, [`MAX_TOOL_CALLS`] tool calls per answer, a
//! turn's spend of [`MAX_TURN_USD`], the conversation as the model sees it capped at
//! [`MAX_CONTEXT_BYTES`], a tool's result shown to it capped at [`MAX_RESULT_BYTES`].
//!
//! The doors (REST with a streamed answer, A2A) translate; the tools are handed in by the door
//! ([`AssistantTools`]), which knows how to call them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use fulcrum_protocol::kinds::{ActivitySource, AssistantRole};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use super::{
    Caller, DomainError, DomainResult,
    budgets::{Budgets, CallError, CallFor},
    providers::Providers,
};
use crate::{
    llm::{ChatRequest, Message, MessageRole, ToolCall, ToolSpec},
    store::{
        DynStore, Scope,
        assistant::{AssistantMessage, AssistantToolCall, Conversation},
    },
};

/// Model calls per turn.
pub const MAX_CALLS: usize = 12;
/// Tool calls per answer.
pub const MAX_TOOL_CALLS: usize = 8;
/// What one turn may spend, US dollars.
pub const MAX_TURN_USD: f64 = 1.0;
/// The conversation as the model sees it.
pub const MAX_CONTEXT_BYTES: usize = 256 << 10;
/// A tool result as the model sees it.
pub const MAX_RESULT_BYTES: usize = 16 << 10;
/// Longest question.
pub const MAX_QUESTION: usize = 16 << 10;
/// Messages read back for a turn.
const HISTORY: u32 = 200;
/// Conversations listed.
const MAX_CONVERSATIONS: u32 = 200;
/// The tool identity of the assistant's activities.
pub const TOOL: &str = "fulcrum-assistant";

/// The tools a door gives the assistant: those of `/mcp`'s catalog the caller may call.
#[async_trait]
pub trait AssistantTools: Send + Sync {
    /// The tools `caller` may call, as the model is given them.
    fn specs(&self, caller: Caller) -> Vec<ToolSpec>;
    /// Whether tool `name` only reads; `None` for no such tool.
    fn read_only(&self, name: &str) -> Option<bool>;
    /// Calls tool `name` for `caller`; its result as text, or why it failed.
    async fn call(&self, caller: Caller, name: &str, args: Value) -> Result<String, String>;
}

/// What a turn says as it goes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TurnEvent {
    /// More of the answer's text.
    Text {
        /// The new text.
        delta: String,
    },
    /// The assistant calls a tool.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments, JSON text.
        arguments: String,
    },
    /// A tool's result.
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Whether it succeeded.
        ok: bool,
        /// The result (its first 2 KiB).
        content: String,
    },
    /// A tool that changes something waits for the user's confirmation.
    Confirm {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments, JSON text.
        arguments: String,
    },
    /// The turn failed.
    Error {
        /// Why.
        message: String,
    },
    /// The turn ended.
    Done {
        /// How.
        state: TurnState,
        /// Why it stopped, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// The assistant answered.
    Answered,
    /// A tool call waits for confirmation.
    AwaitingConfirmation,
    /// A limit, a budget or a failure stopped it.
    Stopped,
}

/// A conversation with its messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    /// The conversation.
    pub conversation: ConversationView,
    /// Its messages, in order.
    pub messages: Vec<AssistantMessage>,
    /// The tool call waiting for confirmation.
    pub pending: Option<AssistantToolCall>,
}

/// A conversation as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Tools the user allowed without asking.
    pub allowed_tools: Vec<String>,
}

/// A new conversation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// A title [default: the first question].
    #[serde(default)]
    pub title: Option<String>,
}

/// A question.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The text (at most 16 KiB).
    pub text: String,
}

/// The user's answer to a confirmation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The waiting call's id.
    pub call_id: String,
    /// Run it (true) or not.
    pub approve: bool,
    /// Also allow this tool without asking for the rest of the conversation.
    #[serde(default)]
    pub always: bool,
}

/// The assistant.
pub struct Assistant {
    store: DynStore,
    budgets: Arc<Budgets>,
    providers: Arc<Providers>,
}

/// Where a turn's events go.
pub type Sink = UnboundedSender<TurnEvent>;

fn view(c: Conversation) -> ConversationView {
    let allowed = serde_json::from_str(&c.allowed_tools).unwrap_or_default();
    ConversationView {
        conversation: c,
        allowed_tools: allowed,
    }
}

fn pending(c: &Conversation) -> Vec<AssistantToolCall> {
    c.pending
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

fn capped(text: &str, max: usize) -> String {
    let kept = fulcrum_protocol::tools::prefix_within(text, max);
    if kept.len() == text.len() {
        return text.to_owned();
    }
    format!("{kept}\n… ({} bytes more)", text.len() - kept.len())
}

fn message(conversation: Uuid, role: AssistantRole, text: String) -> AssistantMessage {
    AssistantMessage {
        id: Uuid::now_v7(),
        conversation_id: conversation,
        seq: 0,
        role,
        text,
        tool_calls: Vec::new(),
        tool_call_id: None,
        tool_name: None,
        created_at: Utc::now(),
    }
}

const SYSTEM: &str = "You are Fulcrum's project manager: you keep track of the user's software \
projects, their remote development workspaces, build and QA tasks, AI generation pipelines and \
AI costs, and you act on them for the user. Use the tools to find out rather than guess: \
list_projects, list_workspaces and activity_report give the overview; workspace tools (git, \
files, search) take a `workspace` argument. Answer briefly, with the numbers you found. Tools \
that change something (running tasks, starting pipelines, writing files) are confirmed by the \
user before they run.";

impl Assistant {
    /// The assistant, keeping conversations in `store`, calling models through `budgets`.
    pub fn new(store: DynStore, budgets: Arc<Budgets>, providers: Arc<Providers>) -> Self {
        Self {
            store,
            budgets,
            providers,
        }
    }

    async fn own(&self, caller: Caller, id: Uuid) -> DomainResult<Conversation> {
        self.store
            .conversation(caller.user, id)
            .await?
            .ok_or(DomainError::NotFound("conversation"))
    }

    /// The caller's conversations, latest first.
    pub async fn list(&self, caller: Caller) -> DomainResult<Vec<ConversationView>> {
        caller.need(Scope::Read)?;
        Ok(self
            .store
            .conversations(caller.user, MAX_CONVERSATIONS)
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// Starts a conversation.
    pub async fn create(
        &self,
        caller: Caller,
        new: NewConversation,
        context_id: Option<String>,
    ) -> DomainResult<ConversationView> {
        caller.need(Scope::Run)?;
        let title = new.title.unwrap_or_default();
        if title.len() > 200 || title.chars().any(char::is_control) {
            return Err(DomainError::Invalid(
                "title is at most 200 printable characters".into(),
            ));
        }
        let now = Utc::now();
        let c = Conversation {
            id: Uuid::now_v7(),
            owner_id: caller.user,
            title,
            allowed_tools: "[]".into(),
            pending: None,
            context_id,
            created_at: now,
            updated_at: now,
        };
        self.store.create_conversation(&c).await?;
        Ok(view(c))
    }

    /// The conversation of an A2A context, started if there is none.
    pub async fn in_context(&self, caller: Caller, context: &str) -> DomainResult<Conversation> {
        if let Some(c) = self
            .store
            .conversation_in_context(caller.user, context)
            .await?
        {
            return Ok(c);
        }
        let v = self
            .create(caller, NewConversation::default(), Some(context.to_owned()))
            .await?;
        Ok(v.conversation)
    }

    /// One conversation with its messages.
    pub async fn get(&self, caller: Caller, id: Uuid) -> DomainResult<ConversationDetail> {
        caller.need(Scope::Read)?;
        let c = self.own(caller, id).await?;
        let messages = self.store.messages(c.id, HISTORY).await?;
        Ok(ConversationDetail {
            pending: pending(&c).into_iter().next(),
            conversation: view(c),
            messages,
        })
    }

    /// Removes a conversation.
    pub async fn delete(&self, caller: Caller, id: Uuid) -> DomainResult<()> {
        caller.need(Scope::Run)?;
        if !self.store.delete_conversation(caller.user, id).await? {
            return Err(DomainError::NotFound("conversation"));
        }
        Ok(())
    }

    /// Checks a question can be asked in conversation `id` now (before the door starts
    /// streaming, so that a refusal is a plain error).
    pub async fn check_ask(&self, caller: Caller, id: Uuid, q: &Question) -> DomainResult<()> {
        caller.need(Scope::Run)?;
        if q.text.trim().is_empty() || q.text.len() > MAX_QUESTION {
            return Err(DomainError::Invalid(format!(
                "text is 1 to {MAX_QUESTION} bytes"
            )));
        }
        let c = self.own(caller, id).await?;
        if c.pending.is_some() {
            return Err(DomainError::conflict(
                "awaiting_confirmation",
                "a tool call waits for your confirmation: confirm or decline it first",
            ));
        }
        Ok(())
    }

    /// Asks a question: the turn runs to its end (an answer, a confirmation to wait for, or a
    /// limit), its events sent to `sink` as they happen.
    pub async fn ask(
        &self,
        caller: Caller,
        id: Uuid,
        q: Question,
        tools: &dyn AssistantTools,
        sink: &Sink,
    ) -> DomainResult<TurnState> {
        self.check_ask(caller, id, &q).await?;
        let mut c = self.own(caller, id).await?;
        if c.title.is_empty() {
            c.title = q
                .text
                .chars()
                .take(80)
                .collect::<String>()
                .trim()
                .to_owned();
            c.updated_at = Utc::now();
            self.store.update_conversation(&c).await?;
        }
        self.store
            .append_message(&message(c.id, AssistantRole::User, q.text))
            .await?;
        self.turn(caller, c, Vec::new(), tools, sink).await
    }

    /// Checks a confirmation answers the call that waits (before the door starts streaming).
    pub async fn check_confirm(
        &self,
        caller: Caller,
        id: Uuid,
        answer: &Confirmation,
    ) -> DomainResult<()> {
        caller.need(Scope::Run)?;
        let c = self.own(caller, id).await?;
        if pending(&c).first().is_none_or(|p| p.id != answer.call_id) {
            return Err(DomainError::conflict(
                "nothing_to_confirm",
                "no tool call with this id waits for confirmation",
            ));
        }
        Ok(())
    }

    /// Answers the waiting confirmation and goes on with the turn.
    pub async fn confirm(
        &self,
        caller: Caller,
        id: Uuid,
        answer: Confirmation,
        tools: &dyn AssistantTools,
        sink: &Sink,
    ) -> DomainResult<TurnState> {
        caller.need(Scope::Run)?;
        let mut c = self.own(caller, id).await?;
        let mut waiting = pending(&c);
        if waiting.first().is_none_or(|p| p.id != answer.call_id) {
            return Err(DomainError::conflict(
                "nothing_to_confirm",
                "no tool call with this id waits for confirmation",
            ));
        }
        let call = waiting.remove(0);
        if answer.always {
            let mut allowed: Vec<String> =
                serde_json::from_str(&c.allowed_tools).unwrap_or_default();
            if !allowed.contains(&call.name) && allowed.len() < 100 {
                allowed.push(call.name.clone());
            }
            c.allowed_tools = serde_json::to_string(&allowed).unwrap_or_else(|_| "[]".into());
        }
        c.pending = None;
        c.updated_at = Utc::now();
        self.store.update_conversation(&c).await?;
        if answer.approve {
            self.run_tool(caller, &c, &call, tools, sink).await?;
        } else {
            let mut m = message(
                c.id,
                AssistantRole::Tool,
                "The user declined to run this tool call.".into(),
            );
            m.tool_call_id = Some(call.id.clone());
            m.tool_name = Some(call.name.clone());
            self.store.append_message(&m).await?;
            let _ = sink.send(TurnEvent::ToolResult {
                id: call.id,
                name: call.name,
                ok: false,
                content: "declined".into(),
            });
        }
        self.turn(caller, c, waiting, tools, sink).await
    }

    async fn run_tool(
        &self,
        caller: Caller,
        c: &Conversation,
        call: &AssistantToolCall,
        tools: &dyn AssistantTools,
        sink: &Sink,
    ) -> DomainResult<()> {
        let _ = sink.send(TurnEvent::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        let args: Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::Object(Default::default()));
        let (ok, text) = match tools.call(caller, &call.name, args).await {
            Ok(t) => (true, t),
            Err(e) => (false, format!("error: {e}")),
        };
        let shown = capped(&text, MAX_RESULT_BYTES);
        let _ = sink.send(TurnEvent::ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            ok,
            content: capped(&text, 2048),
        });
        let mut m = message(c.id, AssistantRole::Tool, shown);
        m.tool_call_id = Some(call.id.clone());
        m.tool_name = Some(call.name.clone());
        self.store.append_message(&m).await?;
        Ok(())
    }

    /// Runs `queued` tool calls (asking for confirmation where needed), then model calls until
    /// the model answers without tools or a limit stops the turn.
    async fn turn(
        &self,
        caller: Caller,
        mut c: Conversation,
        mut queued: Vec<AssistantToolCall>,
        tools: &dyn AssistantTools,
        sink: &Sink,
    ) -> DomainResult<TurnState> {
        let done = |state: TurnState, reason: Option<String>| {
            let _ = sink.send(TurnEvent::Done { state, reason });
            Ok(state)
        };
        let provider = match self.providers.for_assistant(caller.user).await {
            Ok(p) => p,
            Err(e) => return done(TurnState::Stopped, Some(e.to_string())),
        };
        let endpoint = self.providers.endpoint(&provider).await?;
        let specs = tools.specs(caller);
        let mut spent = 0.0;
        let mut calls = 0;
        loop {
            // Tool calls waiting to run, in order; one that changes something stops the turn
            // for confirmation unless the user allowed it.
            while !queued.is_empty() {
                let call = queued.remove(0);
                let allowed: Vec<String> =
                    serde_json::from_str(&c.allowed_tools).unwrap_or_default();
                let read_only = tools.read_only(&call.name).unwrap_or(false);
                if !read_only && !allowed.contains(&call.name) {
                    let _ = sink.send(TurnEvent::Confirm {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    });
                    let mut rest = vec![call];
                    rest.append(&mut queued);
                    c.pending = Some(serde_json::to_string(&rest).unwrap_or_default());
                    c.updated_at = Utc::now();
                    self.store.update_conversation(&c).await?;
                    return done(TurnState::AwaitingConfirmation, None);
                }
                self.run_tool(caller, &c, &call, tools, sink).await?;
            }
            if calls >= MAX_CALLS {
                return done(
                    TurnState::Stopped,
                    Some(format!(
                        "the turn reached its limit of {MAX_CALLS} model calls"
                    )),
                );
            }
            if spent > MAX_TURN_USD {
                return done(
                    TurnState::Stopped,
                    Some(format!("the turn spent over ${MAX_TURN_USD:.2}")),
                );
            }
            calls += 1;
            let request = ChatRequest {
                model: provider.default_model.clone(),
                system: Some(SYSTEM.into()),
                messages: self.history(c.id).await?,
                max_tokens: 2048,
                temperature: None,
                json_schema: None,
                tools: specs.clone(),
            };
            let who = CallFor {
                user: caller.user,
                project: None,
                run: None,
                source: ActivitySource::Assistant,
                tool: TOOL.into(),
            };
            let mut on_text = |t: &str| {
                let _ = sink.send(TurnEvent::Text {
                    delta: t.to_owned(),
                });
            };
            let answer = match self
                .budgets
                .call(&who, &provider, &endpoint, &request, &mut on_text)
                .await
            {
                Ok(a) => a,
                Err(CallError::Budget(m)) => return done(TurnState::Stopped, Some(m)),
                Err(CallError::Domain(e)) => return Err(e),
                Err(e) => return done(TurnState::Stopped, Some(e.to_string())),
            };
            spent += self
                .budgets
                .prices()
                .table()
                .cost_micros(&request.model, &answer.usage) as f64
                / 1e6;
            let asked: Vec<AssistantToolCall> = answer
                .tool_calls
                .iter()
                .take(MAX_TOOL_CALLS)
                .enumerate()
                .map(|(i, t)| AssistantToolCall {
                    id: if t.id.is_empty() {
                        format!("call_{calls}_{i}")
                    } else {
                        t.id.clone()
                    },
                    name: t.name.clone(),
                    arguments: if t.arguments.trim().is_empty() {
                        "{}".into()
                    } else {
                        t.arguments.clone()
                    },
                })
                .collect();
            let mut m = message(c.id, AssistantRole::Assistant, answer.text.clone());
            m.tool_calls = asked.clone();
            self.store.append_message(&m).await?;
            c.updated_at = Utc::now();
            self.store.update_conversation(&c).await?;
            if asked.is_empty() {
                return done(TurnState::Answered, None);
            }
            queued = asked;
        }
    }

    /// The conversation as the model sees it: its latest messages within
    /// [`MAX_CONTEXT_BYTES`], starting at a user message.
    async fn history(&self, conversation: Uuid) -> DomainResult<Vec<Message>> {
        let all = self.store.messages(conversation, HISTORY).await?;
        let mut size = 0;
        let mut start = all.len();
        for (i, m) in all.iter().enumerate().rev() {
            size += m.text.len()
                + m.tool_calls
                    .iter()
                    .map(|t| t.arguments.len())
                    .sum::<usize>();
            if size > MAX_CONTEXT_BYTES {
                break;
            }
            start = i;
        }
        // Begin at a user message, so that no tool result lacks its call.
        while start < all.len() && all[start].role != AssistantRole::User {
            start += 1;
        }
        // A call never answered (declined by canceling, or cut short) is left out: providers
        // refuse a call without its result.
        let answered: std::collections::HashSet<&str> = all[start..]
            .iter()
            .filter_map(|m| m.tool_call_id.as_deref())
            .collect();
        Ok(all[start..]
            .iter()
            .map(|m| Message {
                role: match m.role {
                    AssistantRole::User => MessageRole::User,
                    AssistantRole::Assistant => MessageRole::Assistant,
                    AssistantRole::Tool => MessageRole::Tool,
                },
                content: m.text.clone(),
                tool_calls: m
                    .tool_calls
                    .iter()
                    .filter(|t| answered.contains(t.id.as_str()))
                    .map(|t| ToolCall {
                        id: t.id.clone(),
                        name: t.name.clone(),
                        arguments: t.arguments.clone(),
                    })
                    .collect(),
                tool_call_id: m.tool_call_id.clone(),
            })
            .collect())
    }
}

/// An A2A task as the A2A door shows it.
#[derive(Debug, Clone)]
pub struct A2aView {
    /// The task.
    pub task: crate::store::assistant::A2aTask,
    /// The tool call it waits for, when it waits for input.
    pub waiting: Option<AssistantToolCall>,
}

/// A message another agent sent over A2A.
#[derive(Debug, Clone)]
pub struct A2aMessage {
    /// Its context (a conversation); a new one when absent.
    pub context: Option<String>,
    /// The task it answers (one waiting for input).
    pub task: Option<Uuid>,
    /// Its text.
    pub text: String,
}

/// Whether a reply to an input-required task approves the waiting call.
fn approves(text: &str) -> bool {
    let t = text.trim().to_ascii_lowercase();
    [
        "yes", "y", "approve", "approved", "ok", "run", "run it", "go", "confirm",
    ]
    .iter()
    .any(|w| t == *w || t.starts_with(&format!("{w} ")) || t.starts_with(&format!("{w},")))
}

impl Assistant {
    /// Starts an A2A task: a turn in the conversation of `context` (started if new), or, when
    /// `task` names one that waits for input, the reply to its confirmation ("yes" runs the
    /// waiting call, anything else declines it). The turn runs to its end, its events sent to
    /// `sink`; the task records how it ended and its answer.
    pub async fn a2a_send(
        &self,
        caller: Caller,
        message: A2aMessage,
        tools: &dyn AssistantTools,
        sink: &Sink,
        on_start: impl FnOnce(&crate::store::assistant::A2aTask),
    ) -> DomainResult<A2aView> {
        use crate::store::assistant::A2aTask;
        use fulcrum_protocol::kinds::A2aTaskState as S;
        let A2aMessage {
            context,
            task,
            text,
        } = message;
        caller.need(Scope::Run)?;
        let now = Utc::now();
        let (mut t, conversation) = match task {
            Some(id) => {
                let t = self
                    .store
                    .a2a_task(caller.user, id)
                    .await?
                    .ok_or(DomainError::NotFound("task"))?;
                if t.state != S::InputRequired {
                    return Err(DomainError::conflict(
                        "task_not_waiting",
                        format!("task {id} is {} and waits for no input", t.state),
                    ));
                }
                let c = self.own(caller, t.conversation_id).await?;
                (t, c)
            }
            None => {
                let context = context.unwrap_or_else(|| Uuid::now_v7().to_string());
                if context.is_empty() || context.len() > 200 {
                    return Err(DomainError::Invalid("contextId is 1 to 200 bytes".into()));
                }
                let c = self.in_context(caller, &context).await?;
                let t = A2aTask {
                    id: Uuid::now_v7(),
                    owner_id: caller.user,
                    conversation_id: c.id,
                    context_id: context,
                    state: S::Submitted,
                    answer: None,
                    created_at: now,
                    updated_at: now,
                };
                self.store.create_a2a_task(&t).await?;
                (t, c)
            }
        };
        on_start(&t);
        t.state = S::Working;
        self.store
            .update_a2a_task(t.id, S::Working, None, Utc::now())
            .await?;
        // The turn's text is the answer; a copy of the sink collects it.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = if task.is_some() {
            let call_id = pending(&conversation)
                .first()
                .map(|p| p.id.clone())
                .unwrap_or_default();
            self.confirm(
                caller,
                conversation.id,
                Confirmation {
                    call_id,
                    approve: approves(&text),
                    always: false,
                },
                tools,
                &tx,
            )
            .await
        } else {
            self.ask(caller, conversation.id, Question { text }, tools, &tx)
                .await
        };
        drop(tx);
        let mut answer = String::new();
        let mut reason = None;
        while let Some(e) = rx.recv().await {
            match &e {
                TurnEvent::Text { delta } => answer.push_str(delta),
                TurnEvent::Done {
                    reason: Some(r), ..
                } => reason = Some(r.clone()),
                _ => {}
            }
            let _ = sink.send(e);
        }
        let (state, text) = match result {
            Ok(TurnState::Answered) => (S::Completed, answer),
            Ok(TurnState::AwaitingConfirmation) => {
                let c = self.own(caller, conversation.id).await?;
                let waiting = pending(&c).into_iter().next();
                let ask = waiting.as_ref().map_or_else(String::new, |w| {
                    format!(
                        "{answer}\n\nThe tool {} wants to run with {}. Reply \"yes\" to run it, or anything else to decline.",
                        w.name, w.arguments
                    )
                });
                (S::InputRequired, ask.trim().to_owned())
            }
            Ok(TurnState::Stopped) => (
                S::Failed,
                reason.unwrap_or_else(|| "the turn stopped".into()),
            ),
            Err(e) => (S::Failed, e.to_string()),
        };
        self.store
            .update_a2a_task(t.id, state, Some(&text), Utc::now())
            .await?;
        self.a2a_task(caller, t.id).await
    }

    /// One of the caller's A2A tasks.
    pub async fn a2a_task(&self, caller: Caller, id: Uuid) -> DomainResult<A2aView> {
        caller.need(Scope::Read)?;
        let task = self
            .store
            .a2a_task(caller.user, id)
            .await?
            .ok_or(DomainError::NotFound("task"))?;
        let waiting = if task.state == fulcrum_protocol::kinds::A2aTaskState::InputRequired {
            let c = self.own(caller, task.conversation_id).await?;
            pending(&c).into_iter().next()
        } else {
            None
        };
        Ok(A2aView { task, waiting })
    }

    /// The caller's A2A tasks, latest first (of one context when given).
    pub async fn a2a_tasks(
        &self,
        caller: Caller,
        context: Option<&str>,
        limit: u32,
    ) -> DomainResult<Vec<crate::store::assistant::A2aTask>> {
        caller.need(Scope::Read)?;
        Ok(self
            .store
            .a2a_tasks(caller.user, context, limit.clamp(1, 100))
            .await?)
    }

    /// Cancels a task that waits for input (its waiting call is declined); a finished one
    /// cannot be.
    pub async fn a2a_cancel(&self, caller: Caller, id: Uuid) -> DomainResult<A2aView> {
        use fulcrum_protocol::kinds::A2aTaskState as S;
        caller.need(Scope::Run)?;
        let v = self.a2a_task(caller, id).await?;
        if v.task.state != S::InputRequired {
            return Err(DomainError::conflict(
                "not_cancelable",
                format!("task {id} is {} and cannot be canceled", v.task.state),
            ));
        }
        let mut c = self.own(caller, v.task.conversation_id).await?;
        c.pending = None;
        c.updated_at = Utc::now();
        self.store.update_conversation(&c).await?;
        self.store
            .update_a2a_task(id, S::Canceled, v.task.answer.as_deref(), Utc::now())
            .await?;
        self.a2a_task(caller, id).await
    }
}
