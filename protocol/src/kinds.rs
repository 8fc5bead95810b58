//! The closed sets the relay stores and shows (roles, token kinds, task sources, project
//! statuses, health), each an enum with its names written once: stored with
//! [`as_str`](Role::as_str), read back with `parse` (or `TryFrom<String>`), shown in JSON, listed
//! as an enum in the OpenAPI document and in the MCP tools' output schemas. The relay's
//! migrations hold the same lists as CHECK constraints; a test compares them
//! (`tests/tests/migrations.rs`). Task states are [`crate::TaskState`].

use serde::{Deserialize, Serialize};

/// A stored name outside its closed set (the CHECK constraints make this corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {set} {name:?}")]
pub struct UnknownName {
    /// The set, such as `Role`.
    pub set: &'static str,
    /// The name found.
    pub name: String,
}

/// Declares a closed set: the enum, `ALL`, `as_str`, `parse` and `Display`.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        // The JSON names are the variants' in snake_case (a test checks they are the stored
        // names): utoipa does not see a `rename` built by a macro.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// Its name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )+ }
            }

            /// The value with this name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $( $text => Some(Self::$variant), )+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownName;

            /// The value with this stored name.
            fn try_from(name: String) -> Result<Self, UnknownName> {
                Self::parse(&name).ok_or(UnknownName { set: stringify!($name), name })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set! {
    /// A member's role in a project.
    pub enum Role {
        /// Created the project; manages members, archives it.
        Owner = "owner",
        /// Runs and cancels tasks, edits the project.
        Maintainer = "maintainer",
        /// Sees the project and its tasks; cannot run anything.
        Viewer = "viewer",
    }
}

impl Role {
    /// True for roles that may run and cancel tasks.
    pub fn can_run(self) -> bool {
        matches!(self, Self::Owner | Self::Maintainer)
    }
}

closed_set! {
    /// What a token is for; a token of one kind never opens the other's door.
    pub enum TokenKind {
        /// An agent dials in with it.
        Agent = "agent",
        /// An MCP client calls `/mcp` with it (static, or issued by the relay's OAuth server).
        Mcp = "mcp",
        /// A script, CI job or automation calls the REST API with it.
        Api = "api",
        /// An AI tool reports its activity with it; it reads nothing.
        Ingest = "ingest",
    }
}

impl TokenKind {
    /// The scopes a token of this kind may hold.
    pub fn allowed_scopes(self) -> Scopes {
        match self {
            Self::Agent => Scopes::of(&[Scope::Read, Scope::Run]),
            Self::Mcp => Scopes::of(&[Scope::Read, Scope::Write, Scope::Run]),
            Self::Api => Scopes::of(&[Scope::Read, Scope::Write, Scope::Run, Scope::Admin]),
            Self::Ingest => Scopes::of(&[Scope::Ingest]),
        }
    }

    /// The scopes a token of this kind gets when none are asked for.
    pub fn default_scopes(self) -> Scopes {
        match self {
            Self::Agent => Scopes::of(&[Scope::Read, Scope::Run]),
            Self::Mcp => Scopes::of(&[Scope::Read, Scope::Write, Scope::Run]),
            Self::Api => Scopes::of(&[Scope::Read]),
            Self::Ingest => Scopes::of(&[Scope::Ingest]),
        }
    }

    /// Whether a token of this kind may be limited to one project or workspace.
    pub fn may_be_limited(self) -> bool {
        !matches!(self, Self::Agent)
    }
}

closed_set! {
    /// What a credential may do. A login may do everything its user may; a token only what its
    /// scopes say (and never more than its user). The agent's workspace policy speaks the same
    /// words (`write`, `run`): a call into a workspace needs both.
    pub enum Scope {
        /// See projects, workspaces, tasks and their logs; read files through tools.
        Read = "read",
        /// Change things: projects, members, files in a workspace.
        Write = "write",
        /// Start, cancel and re-run tasks.
        Run = "run",
        /// Report AI activity; nothing else.
        Ingest = "ingest",
        /// Operator actions on users (only for a user who is an administrator).
        Admin = "admin",
    }
}

impl Scope {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Scope`]s: shown as a JSON array, stored as the scope names joined by spaces (as
/// OAuth writes them), in [`Scope::ALL`]'s order. In the OpenAPI document a field of this type
/// is declared `#[schema(value_type = Vec<Scope>)]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope.
    pub const NONE: Self = Self(0);

    /// Every scope.
    pub fn all() -> Self {
        Self::of(Scope::ALL)
    }

    /// These scopes.
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in either.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The scopes in both.
    pub fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in [`Scope::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// Parses names separated by spaces or commas (`"read run"`, `"read,run"`); an unknown
    /// name is an error that names it.
    pub fn parse_list(text: &str) -> Result<Self, UnknownName> {
        text.split([' ', ','])
            .filter(|w| !w.is_empty())
            .try_fold(Self::NONE, |acc, w| {
                Scope::parse(w)
                    .map(|s| Self(acc.0 | s.bit()))
                    .ok_or(UnknownName {
                        set: "Scope",
                        name: w.to_owned(),
                    })
            })
    }
}

impl std::fmt::Display for Scopes {
    /// The names joined by spaces.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl TryFrom<String> for Scopes {
    type Error = UnknownName;

    /// The set stored as `text`.
    fn try_from(text: String) -> Result<Self, UnknownName> {
        Self::parse_list(&text)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Self::NONE, |acc, s| Self(acc.0 | s.bit()))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // At most one of each; an array longer than the enum is refused before it is read whole.
        let list: Vec<Scope> = Vec::deserialize(deserializer)?;
        if list.len() > Scope::ALL.len() {
            return Err(serde::de::Error::custom("too many scopes"));
        }
        Ok(list.into_iter().collect())
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Scopes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scopes".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = generator.subschema_for::<Scope>();
        schemars::json_schema!({
            "type": "array",
            "items": item,
            "uniqueItems": true,
            "maxItems": Scope::ALL.len(),
        })
    }
}

closed_set! {
    /// How an OAuth client proves itself at the token endpoint (RFC 7591
    /// `token_endpoint_auth_method`).
    pub enum ClientAuthMethod {
        /// A public client: no secret; PKCE alone binds the code to it.
        None = "none",
        /// The secret in the form body.
        ClientSecretPost = "client_secret_post",
        /// The secret in HTTP Basic authentication.
        ClientSecretBasic = "client_secret_basic",
    }
}

closed_set! {
    /// A user's standing on the relay.
    #[derive(Default)]
    pub enum UserRole {
        /// Uses the relay.
        #[default]
        Member = "member",
        /// Also manages users: deactivates, activates, issues reset links.
        Admin = "admin",
    }
}

closed_set! {
    /// Which door a task was started through.
    pub enum TaskSource {
        /// The REST API (and the dashboard).
        Api = "api",
        /// `fulcrum run` in a workspace terminal, through the agent.
        Terminal = "terminal",
        /// An MCP client's `run_task`.
        Mcp = "mcp",
        /// A pipeline run's `run` stage (build, QA, deploy).
        Pipeline = "pipeline",
    }
}

closed_set! {
    /// Whether a project takes new work.
    pub enum ProjectStatus {
        /// Runs tasks.
        Active = "active",
        /// Kept for reading; runs nothing.
        Archived = "archived",
    }
}

closed_set! {
    /// A dashboard theme.
    #[derive(Default)]
    pub enum Theme {
        /// As the operating system says.
        #[default]
        System = "system",
        /// Light.
        Light = "light",
        /// Dark.
        Dark = "dark",
    }
}

closed_set! {
    /// A project's health in one word.
    pub enum Health {
        /// A task runs now.
        Running = "running",
        /// The last task did not succeed.
        Failing = "failing",
        /// The last task succeeded.
        Healthy = "healthy",
        /// No workspace of it is online.
        Offline = "offline",
        /// Nothing ran yet.
        Idle = "idle",
    }
}

closed_set! {
    /// The wire format an LLM provider speaks.
    pub enum ProviderKind {
        /// OpenAI Chat Completions, and the servers that copy it (Ollama, vLLM, llama.cpp,
        /// LM Studio, OpenRouter).
        Openai = "openai",
        /// Anthropic Messages.
        Anthropic = "anthropic",
    }
}

closed_set! {
    /// Where a pipeline run is.
    pub enum RunState {
        /// Waiting for the engine to pick it up.
        Queued = "queued",
        /// Being driven.
        Running = "running",
        /// Waiting for someone: a budget to be raised or a gate to be approved.
        Paused = "paused",
        /// Every stage succeeded.
        Succeeded = "succeeded",
        /// A stage failed for good; the run says why.
        Failed = "failed",
        /// Canceled by someone.
        Canceled = "canceled",
    }
}

closed_set! {
    /// Where one stage of a pipeline run is.
    pub enum StageState {
        /// Its needs are not met yet.
        Pending = "pending",
        /// Being worked on.
        Running = "running",
        /// Waiting for someone: an approval, or a budget.
        Waiting = "waiting",
        /// Done; its outputs are kept.
        Succeeded = "succeeded",
        /// Failed for good.
        Failed = "failed",
        /// Not run, because the run ended first.
        Skipped = "skipped",
    }
}

closed_set! {
    /// What a pipeline stage does.
    pub enum StageKind {
        /// One LLM call over a prompt template, its output checked and kept as artifacts.
        Llm = "llm",
        /// An LLM tool loop over the workspace's tools, ending with `finish`.
        Agent = "agent",
        /// A task in the workspace.
        Run = "run",
        /// Waits for someone with the right role to approve or reject.
        Approval = "approval",
        /// Calls one MCP tool.
        Mcp = "mcp",
    }
}

closed_set! {
    /// What became of one LLM call.
    pub enum LlmCallState {
        /// Journaled and its cost reserved; the answer is not recorded yet.
        Reserved = "reserved",
        /// Answered; the answer is recorded and the cost settled.
        Succeeded = "succeeded",
        /// Failed after its retries; nothing was charged but what the provider reported.
        Failed = "failed",
    }
}

closed_set! {
    /// The period a budget counts over.
    pub enum BudgetPeriod {
        /// Every call ever made.
        Total = "total",
        /// Calls made this calendar month (UTC).
        Month = "month",
    }
}

closed_set! {
    /// How an AI activity reached Fulcrum.
    pub enum ActivitySource {
        /// Reported over `POST /api/v1/ai-activities`.
        Api = "api",
        /// Exported over OTLP (GenAI spans, events and metrics).
        Otlp = "otlp",
        /// A call through the relay's LLM gateway.
        Gateway = "gateway",
        /// A pipeline run's model call.
        Pipeline = "pipeline",
        /// The project manager assistant's model call.
        Assistant = "assistant",
    }
}

closed_set! {
    /// What an AI activity was for.
    pub enum ActivityCategory {
        /// New behaviour.
        Feature = "feature",
        /// A fix.
        Bugfix = "bugfix",
        /// Restructuring without new behaviour.
        Refactor = "refactor",
        /// Documentation.
        Docs = "docs",
        /// Tests.
        Test = "test",
    }
}

closed_set! {
    /// Why a commit is linked to an AI activity.
    pub enum CommitLinkReason {
        /// The commit came soon after the activity, in a workspace of its project.
        Window = "window",
        /// The commit message names the activity in a trailer.
        Trailer = "trailer",
    }
}

closed_set! {
    /// What an outgoing webhook tells of (the `type` of its payload).
    pub enum WebhookEventKind {
        /// A task (a job in a workspace) finished: succeeded, failed, canceled or lost.
        TaskFinished = "task_finished",
        /// A budget crossed 80% or 100% of its limit.
        BudgetThreshold = "budget_threshold",
        /// A test event its owner asked for.
        WebhookTest = "webhook_test",
    }
}

closed_set! {
    /// Where an outgoing webhook delivery stands.
    pub enum DeliveryState {
        /// Waiting for its turn or its next attempt.
        Pending = "pending",
        /// The endpoint answered 2xx.
        Delivered = "delivered",
        /// Every attempt failed, or the endpoint was disabled.
        Failed = "failed",
    }
}

closed_set! {
    /// Who wrote a message of an assistant conversation.
    pub enum AssistantRole {
        /// The user.
        User = "user",
        /// The assistant (the model).
        Assistant = "assistant",
        /// A tool's result.
        Tool = "tool",
    }
}

closed_set! {
    /// Where an A2A task stands.
    pub enum A2aTaskState {
        /// Received, not started.
        Submitted = "submitted",
        /// The assistant is at work.
        Working = "working",
        /// Waiting for the caller (a tool call to confirm).
        InputRequired = "input_required",
        /// Answered.
        Completed = "completed",
        /// Failed.
        Failed = "failed",
        /// Canceled.
        Canceled = "canceled",
    }
}

closed_set! {
    /// Where a project's generation stands: it follows the runs of a pipeline that sets it
    /// (SystemCrafter).
    #[derive(Default)]
    pub enum ProjectGeneration {
        /// Nothing generated yet: a name and a description.
        #[default]
        Draft = "draft",
        /// A run is generating it.
        Generating = "generating",
        /// The last run succeeded.
        Ready = "ready",
        /// The last run failed.
        Failed = "failed",
    }
}

closed_set! {
    /// Whether a deployment came up.
    pub enum DeploymentState {
        /// It answered its health check.
        Succeeded = "succeeded",
        /// It did not.
        Failed = "failed",
    }
}

closed_set! {
    /// Who made a deployment.
    pub enum DeploymentSource {
        /// A pipeline run's deploy stage.
        Pipeline = "pipeline",
        /// A GitHub deployment.
        Github = "github",
        /// A Coder workspace build.
        Coder = "coder",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialize_as_stored() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        fn same<T: Serialize + std::fmt::Display>(all: &[T]) {
            for v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), v.to_string());
            }
        }
        same(TokenKind::ALL);
        same(TaskSource::ALL);
        same(ProjectStatus::ALL);
        same(Health::ALL);
        for s in TaskSource::ALL {
            assert_eq!(TaskSource::parse(&s.to_string()), Some(*s));
        }
        assert_eq!(ProjectStatus::parse("deleted"), None);
        assert_eq!(Health::ALL.len(), 5);
        assert_eq!(TokenKind::parse("mcp"), Some(TokenKind::Mcp));
        same(Scope::ALL);
        same(UserRole::ALL);
        same(ProviderKind::ALL);
        same(RunState::ALL);
        same(StageState::ALL);
        same(StageKind::ALL);
        same(LlmCallState::ALL);
        same(BudgetPeriod::ALL);
        same(DeploymentState::ALL);
        same(ProjectGeneration::ALL);
        same(DeploymentSource::ALL);
        same(ActivitySource::ALL);
        same(ActivityCategory::ALL);
        same(AssistantRole::ALL);
        same(CommitLinkReason::ALL);
        same(A2aTaskState::ALL);
        same(WebhookEventKind::ALL);
        same(DeliveryState::ALL);
    }

    #[test]
    fn scope_sets_round_trip_and_refuse_unknown_words() {
        let s = Scopes::parse_list("run, read").unwrap();
        assert_eq!(s.to_string(), "read run");
        assert_eq!(Scopes::try_from(s.to_string()).unwrap(), s);
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::json!(["read", "run"])
        );
        let back: Scopes = serde_json::from_value(serde_json::json!(["run", "read"])).unwrap();
        assert_eq!(back, s);
        assert!(s.contains(Scope::Run) && !s.contains(Scope::Write));
        assert!(s.is_subset(TokenKind::Agent.allowed_scopes()));
        assert!(!Scopes::of(&[Scope::Admin]).is_subset(TokenKind::Mcp.allowed_scopes()));
        let e = Scopes::parse_list("read sudo").unwrap_err();
        assert_eq!(e.name, "sudo");
        assert_eq!(Scopes::parse_list("").unwrap(), Scopes::NONE);
        assert!(
            serde_json::from_value::<Scopes>(serde_json::Value::Array(vec!["read".into(); 9]))
                .is_err()
        );
        for kind in TokenKind::ALL {
            assert!(kind.default_scopes().is_subset(kind.allowed_scopes()));
            assert!(!kind.default_scopes().is_empty());
        }
    }
}
