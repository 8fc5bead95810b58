//! Jobs: what the relay asks an agent to run, and what the agent reports back.
//!
//! The relay sends a [`TaskSpec`] in a [`crate::RelayMessage::RunTask`]. The agent runs it (or
//! queues it behind its concurrency limit), reports [`crate::AgentMessage::TaskStarted`], streams
//! the merged output as [`crate::AgentMessage::TaskOutput`] chunks with byte offsets, and ends with
//! one [`crate::AgentMessage::TaskFinished`]. All three travel on the agent's durable stream, so
//! they survive reconnects, and the relay also drops output it already has by `(task, offset)`.
//! A task id is run at most once by an agent, however often the relay sends it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest shell command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// Most environment variables a task may set.
pub const MAX_ENV_VARS: usize = 64;
/// Longest environment variable value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 4096;
/// Longest QA step name, in bytes.
pub const MAX_STEP_NAME_BYTES: usize = 64;
/// Longest timeout a task may ask for: one day.
pub const MAX_TIMEOUT_S: u64 = 24 * 3600;
/// Largest output chunk in one [`crate::AgentMessage::TaskOutput`].
pub const MAX_OUTPUT_CHUNK: usize = 256 * 1024;
/// Most failing tests listed in a [`TestSummary`] (all are counted).
pub const MAX_LISTED_FAILURES: usize = 50;

/// Shows an environment's names with its values hidden: values may be secrets, and `Debug`
/// output ends up in logs.
pub struct RedactedEnv<'a>(pub &'a BTreeMap<String, String>);

impl std::fmt::Debug for RedactedEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// A job for an agent. Its `Debug` output hides the environment's values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The relay's id for the task; the agent runs each id at most once.
    pub task_id: Uuid,
    /// The repository to run in, relative to the agent's root (`.` for the root itself).
    pub repo: String,
    /// What to run.
    pub run: TaskRun,
    /// Extra environment on top of the agent's clean base environment.
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit, in seconds.
    pub timeout_s: u64,
    /// How long a canceled or timed-out job gets between SIGTERM and SIGKILL, in seconds.
    pub grace_s: u64,
    /// Most output bytes kept; the agent cuts the log there and appends a marker.
    pub log_limit: u64,
    /// The task's number in its workspace (`#17`), when the relay gives one.
    #[serde(default)]
    pub number: Option<u64>,
}

impl std::fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpec")
            .field("task_id", &self.task_id)
            .field("repo", &self.repo)
            .field("run", &self.run)
            .field("env", &RedactedEnv(&self.env))
            .field("timeout_s", &self.timeout_s)
            .field("grace_s", &self.grace_s)
            .field("log_limit", &self.log_limit)
            .field("number", &self.number)
            .finish()
    }
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskRun {
    /// A shell command, run with `sh -c`.
    Command {
        /// The command line.
        command: String,
    },
    /// A named QA step from the repository's `fulcrum.toml` or detected from its build files;
    /// `qa` runs every step in order.
    Step {
        /// The step's name.
        name: String,
    },
}

impl TaskRun {
    /// Checks sizes and shapes.
    pub fn check(&self) -> crate::check::Checked {
        match self {
            Self::Command { command } => {
                if command.trim().is_empty() {
                    return Err(crate::check::Invalid::new("run", "the command is empty"));
                }
                if command.len() > MAX_COMMAND_BYTES || command.contains('\0') {
                    return Err(crate::check::Invalid::new(
                        "run",
                        format!(
                            "the command must be at most {MAX_COMMAND_BYTES} bytes, without NUL"
                        ),
                    ));
                }
            }
            Self::Step { name } => {
                let ok = !name.is_empty()
                    && name.len() <= MAX_STEP_NAME_BYTES
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    return Err(crate::check::Invalid::new(
                        "run",
                        "a step name is 1 to 64 letters, digits, '-' or '_' (e.g. \"test\")",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks a task's environment: names, sizes and count.
pub fn check_env(env: &BTreeMap<String, String>) -> crate::check::Checked {
    if env.len() > MAX_ENV_VARS {
        return Err(crate::check::Invalid::new(
            "env",
            format!("at most {MAX_ENV_VARS} environment variables"),
        ));
    }
    for (name, value) in env {
        let mut bytes = name.bytes();
        let good_name = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && name.len() <= 128;
        if !good_name {
            return Err(crate::check::Invalid::new(
                "env",
                format!("{name:?} is not a valid environment variable name (letters, digits, '_')"),
            ));
        }
        if value.len() > MAX_ENV_VALUE_BYTES || value.contains('\0') {
            return Err(crate::check::Invalid::new(
                "env",
                format!(
                    "the value of {name} must be at most {MAX_ENV_VALUE_BYTES} bytes, without NUL"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a repository path given for a task: relative, inside the root, no `..`.
pub fn check_repo_path(repo: &str) -> crate::check::Checked {
    let bad = repo.is_empty()
        || repo.len() > crate::MAX_PATH_BYTES
        || repo.starts_with('/')
        || repo.contains('\0')
        || repo.split('/').any(|part| part == "..");
    if bad {
        return Err(crate::check::Invalid::new(
            "repo",
            format!("{repo:?} is not a repository path relative to the workspace root"),
        ));
    }
    Ok(())
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// The process exited with this code (0 is success).
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by a signal nobody at Fulcrum sent.
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// Canceled on request.
    Canceled {
        /// True when the job ignored SIGTERM for the grace period and was killed.
        killed: bool,
    },
    /// It ran longer than its timeout.
    TimedOut {
        /// True when the job ignored SIGTERM for the grace period and was killed.
        killed: bool,
    },
    /// It could not be started (no such repository, no such step, a malformed `fulcrum.toml`…).
    FailedToStart {
        /// Why, for people.
        message: String,
    },
    /// The agent lost track of it (it restarted while the job ran).
    Lost {
        /// Why, for people.
        message: String,
    },
}

impl TaskOutcome {
    /// The final state this outcome puts a task in.
    pub fn state(&self) -> TaskState {
        match self {
            Self::Exited { code: 0 } => TaskState::Succeeded,
            Self::Exited { .. } | Self::Signaled { .. } | Self::FailedToStart { .. } => {
                TaskState::Failed
            }
            Self::Canceled { .. } => TaskState::Canceled,
            Self::TimedOut { .. } => TaskState::TimedOut,
            Self::Lost { .. } => TaskState::Lost,
        }
    }
}

/// Where a task is in its life: `queued → dispatched → running → succeeded | failed | canceled
/// | timed_out | lost`. The one list of states, for the relay's records, its API and the
/// databases' CHECK constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TaskState {
    /// Recorded, not yet sent to an agent.
    Queued,
    /// Sent to its workspace's agent.
    Dispatched,
    /// Its process runs.
    Running,
    /// Exited 0.
    Succeeded,
    /// Exited non-zero, was killed by a signal, or could not start.
    Failed,
    /// Canceled on request.
    Canceled,
    /// Ran past its time limit.
    TimedOut,
    /// Its agent was gone for longer than the lease.
    Lost,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::Dispatched,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::TimedOut,
        Self::Lost,
    ];

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Dispatched => "dispatched",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::TimedOut => "timed_out",
            Self::Lost => "lost",
        }
    }

    /// The state with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True for the states a task never leaves.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::TimedOut | Self::Lost
        )
    }
}

impl TryFrom<String> for TaskState {
    type Error = crate::kinds::UnknownName;

    /// The state with this stored name.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or(crate::kinds::UnknownName {
            set: "TaskState",
            name,
        })
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts and failures from a test run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TestSummary {
    /// Tests that passed.
    pub passed: u32,
    /// Tests that failed (errors included).
    pub failed: u32,
    /// Tests skipped or ignored.
    pub skipped: u32,
    /// The failing tests, at most [`MAX_LISTED_FAILURES`].
    pub failures: Vec<TestFailure>,
}

/// One failing test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TestFailure {
    /// The test's name, e.g. `tests::adds` or `tests/test_x.py::test_y`.
    pub name: String,
    /// Its failure message, shortened.
    pub message: String,
}

/// The end of a job, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task.
    pub task_id: Uuid,
    /// How it ended.
    pub outcome: TaskOutcome,
    /// Bytes of log sent (the output up to the limit, plus the cut marker if any).
    pub log_bytes: u64,
    /// Bytes the process wrote in all.
    pub output_bytes: u64,
    /// True when the log was cut at the limit.
    pub truncated: bool,
    /// How long the job ran, in milliseconds.
    pub duration_ms: u64,
    /// Test results, when it ran tests the agent could read.
    pub test_summary: Option<TestSummary>,
}

/// A run the workspace's own terminal asks for (`fulcrum run`); the relay records it as a task
/// of this workspace and sends it back to run. Its `Debug` output hides the environment's values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The repository, relative to the root.
    pub repo: String,
    /// What to run.
    pub run: TaskRun,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit in seconds; the relay's default when absent.
    pub timeout_s: Option<u64>,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("repo", &self.repo)
            .field("run", &self.run)
            .field("env", &RedactedEnv(&self.env))
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

/// The text appended where a log was cut at its limit.
pub fn cut_marker(limit: u64) -> String {
    format!(
        "\n[fulcrum: the log was cut here at {limit} bytes; the rest of the output was not kept]\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_environment_values() {
        let mut env = BTreeMap::new();
        env.insert("API_KEY".to_string(), "hunter2-secret".to_string());
        let spec = TaskSpec {
            task_id: Uuid::nil(),
            repo: ".".into(),
            run: TaskRun::Command {
                command: "true".into(),
            },
            env: env.clone(),
            timeout_s: 1,
            grace_s: 1,
            log_limit: 1,
            number: Some(1),
        };
        let request = RunRequest {
            repo: ".".into(),
            run: spec.run.clone(),
            env,
            timeout_s: None,
        };
        for shown in [format!("{spec:?}"), format!("{request:?}")] {
            assert!(
                shown.contains("API_KEY") && !shown.contains("hunter2"),
                "{shown}"
            );
        }
    }

    #[test]
    fn repo_paths_stay_inside_the_root() {
        assert!(check_repo_path(".").is_ok());
        assert!(check_repo_path("services/api").is_ok());
        for bad in ["", "/etc", "../x", "a/../../b", "a\0b"] {
            assert!(check_repo_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_names_and_commands_are_checked() {
        let mut env = BTreeMap::new();
        env.insert("GOOD_1".to_string(), "v".to_string());
        assert!(check_env(&env).is_ok());
        env.insert("1BAD".to_string(), "v".to_string());
        assert!(check_env(&env).is_err());
        assert!(
            TaskRun::Command {
                command: "  ".into()
            }
            .check()
            .is_err()
        );
        assert!(
            TaskRun::Step {
                name: "te st".into()
            }
            .check()
            .is_err()
        );
        assert!(TaskRun::Step { name: "qa".into() }.check().is_ok());
    }
}

#[cfg(test)]
mod state_tests {
    use super::TaskState;

    #[test]
    fn states_name_and_parse_each_other() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            // Serialized the same way (MessagePack carries the name).
            let bytes = rmp_serde::to_vec(&s).unwrap();
            assert_eq!(rmp_serde::from_slice::<String>(&bytes).unwrap(), s.as_str());
        }
        assert_eq!(TaskState::parse("done"), None);
        assert!(TaskState::Lost.is_final() && !TaskState::Running.is_final());
    }
}
