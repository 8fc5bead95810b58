//! The tools the relay's MCP endpoint runs in this workspace, and the rules they run under.
//!
//! A [`ToolCall`] from the relay names a built-in tool or a tool of a [`Hosted`] server. Built-in
//! tools take JSON arguments named like the reference MCP servers' (`path`, `head`, `tail`,
//! `repo_path`, `oldText`/`newText`, …); unknown arguments are refused with a clear message.
//! Every path goes through [`crate::paths::resolve`]; every answer is capped with a visible note;
//! a call that takes longer than [`CALL_TIMEOUT`] fails with a message that says so.
//!
//! Writing (`write_file`, `edit_file`, hosted tools not marked read-only) needs both a caller
//! that may write (the relay says so per call, from the token's `write` scope) and a workspace
//! whose policy allows `write` (`--allow write`, off by default).

pub mod git;
pub mod search;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fulcrum_protocol::{
    kinds::{Scope, Scopes},
    tool_args::{
        DirectoryTreeArgs, EditFileArgs, GitCommitArgs, GitDiffArgs, GitLogArgs, GitShowArgs,
        GitStatusArgs, ListDirectoryArgs, ReadFileArgs, SearchFilesArgs, WriteFileArgs,
    },
    tools::{self, ToolCall, ToolCatalog, ToolOutput, ToolTarget},
};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};

use crate::{
    files::{self, FileError, ReadRange},
    hosted::Hosted,
};

/// How long one call may take before its caller is told it timed out.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Calls that run at once; more wait their turn (within their timeout).
const MAX_CONCURRENT_CALLS: usize = 8;

/// Runs tool calls for the relay.
#[derive(Clone)]
pub struct Toolbox {
    root: PathBuf,
    writable: bool,
    policy: Scopes,
    hosted: Hosted,
    slots: Arc<Semaphore>,
}

impl Toolbox {
    /// A toolbox for the canonical workspace `root`.
    pub fn new(root: PathBuf, policy: Scopes, hosted: Hosted) -> Self {
        Self {
            root,
            writable: policy.contains(Scope::Write),
            policy,
            hosted,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS)),
        }
    }

    /// What the relay should know: hosted servers and whether writes are allowed.
    pub fn catalog(&self) -> ToolCatalog {
        let mut catalog = ToolCatalog {
            writable: self.writable,
            servers: self.hosted.servers(),
            policy: Some(self.policy),
        };
        catalog.fit();
        catalog
    }

    /// Wakes when the catalog changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.hosted.subscribe()
    }

    /// Runs a call and returns its answer, never more than the protocol allows.
    pub async fn call(&self, call: ToolCall) -> ToolOutput {
        let started = std::time::Instant::now();
        let wanted = Arc::new(AtomicBool::new(true));
        let mut out = match tokio::time::timeout(CALL_TIMEOUT, self.run(call, wanted.clone())).await
        {
            Ok(out) => out,
            Err(_) => {
                // A write still running in its thread must not land after the caller was told.
                wanted.store(false, Ordering::SeqCst);
                ToolOutput::error(format!(
                    "the call timed out after {} s in the workspace; nothing was written",
                    CALL_TIMEOUT.as_secs()
                ))
            }
        };
        cap(&mut out);
        tracing::debug!(took = ?started.elapsed(), is_error = out.is_error, "tool call");
        out
    }

    async fn run(&self, call: ToolCall, wanted: Arc<AtomicBool>) -> ToolOutput {
        if let Err(problem) = call.check() {
            return ToolOutput::error(problem.to_string());
        }
        let args: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_str(&call.args_json) {
                Ok(args) => args,
                Err(e) => {
                    return ToolOutput::error(format!("arguments must be a JSON object: {e}"));
                }
            };
        // The slot is held until the work itself ends, even after a timeout, so at most
        // MAX_CONCURRENT_CALLS run at once.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return ToolOutput::error("the agent is stopping");
        };
        match call.target {
            ToolTarget::Hosted { server, tool } => {
                let _slot = slot;
                self.hosted
                    .call(
                        &server,
                        &tool,
                        args,
                        call.may_write,
                        self.writable,
                        CALL_TIMEOUT,
                    )
                    .await
            }
            ToolTarget::Builtin(name) => {
                if tools::builtin_writes(&name) == Some(true) {
                    if !call.may_write {
                        return ToolOutput::error(format!(
                            "{name} changes files, and this token lacks the `write` scope"
                        ));
                    }
                    if !self.writable {
                        return ToolOutput::error(format!(
                            "the workspace's policy does not allow `write`, so {name} is refused \
                             (its agent runs without `write` in --allow)"
                        ));
                    }
                }
                let root = self.root.clone();
                let blocking = move || {
                    let _slot = slot;
                    builtin(&root, &name, args, &|| wanted.load(Ordering::SeqCst))
                };
                match tokio::task::spawn_blocking(blocking).await {
                    Ok(Ok(text)) => ToolOutput::text(text),
                    Ok(Err(message)) => ToolOutput::error(message),
                    Err(_) => ToolOutput::error("the tool failed unexpectedly"),
                }
            }
        }
    }
}

/// Cuts an output to what a reply may carry: the text with a note, and the structured part
/// dropped if the two together would not fit.
fn cap(out: &mut ToolOutput) {
    tools::cut(
        &mut out.text,
        tools::MAX_REPLY_TEXT_BYTES - 128,
        "\n[… cut: the answer exceeded the reply limit]\n",
    );
    if out.check().is_err() {
        out.structured_json = None;
    }
}

fn parse<T: DeserializeOwned>(
    tool: &str,
    args: serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(args))
        .map_err(|e| format!("invalid arguments for {tool}: {e}"))
}

/// Runs a built-in tool (blocking: file system and git work).
fn builtin(
    root: &std::path::Path,
    name: &str,
    args: serde_json::Map<String, serde_json::Value>,
    still_wanted: &dyn Fn() -> bool,
) -> Result<String, String> {
    let done = |r: Result<String, FileError>| r.map_err(|e| e.to_string());
    match name {
        "list_directory" => {
            let a: ListDirectoryArgs = parse(name, args)?;
            done(files::list_directory(root, &a.path))
        }
        "directory_tree" => {
            let a: DirectoryTreeArgs = parse(name, args)?;
            done(files::directory_tree(root, &a.path, a.max_depth))
        }
        "read_file" => {
            let a: ReadFileArgs = parse(name, args)?;
            let range = ReadRange {
                head: a.head,
                tail: a.tail,
                offset: a.offset,
                length: a.length,
            };
            done(files::read_file(root, &a.path, range))
        }
        "search_files" => {
            let a: SearchFilesArgs = parse(name, args)?;
            let query = search::Query {
                pattern: a.pattern,
                regex: a.regex,
                case_sensitive: a.case_sensitive,
                include: a.include,
                max_results: a.max_results,
            };
            done(search::search_files(root, &a.path, &query))
        }
        "git_status" => {
            let a: GitStatusArgs = parse(name, args)?;
            done(git::git_status(root, &a.repo_path))
        }
        "git_diff" => {
            let a: GitDiffArgs = parse(name, args)?;
            let query = git::DiffQuery {
                target: a.target,
                staged: a.staged,
                context_lines: a.context_lines,
            };
            done(git::git_diff(root, &a.repo_path, &query))
        }
        "git_log" => {
            let a: GitLogArgs = parse(name, args)?;
            done(git::git_log(root, &a.repo_path, a.max_count))
        }
        "git_show" => {
            let a: GitShowArgs = parse(name, args)?;
            done(git::git_show(root, &a.repo_path, &a.revision))
        }
        "git_commit" => {
            let a: GitCommitArgs = parse(name, args)?;
            let req = git::CommitRequest {
                repo_path: a.repo_path,
                init: a.init,
                branch: a.branch,
                message: a.message,
                paths: a.paths,
                key: a.key,
                author: (a.author_name, a.author_email),
            };
            done(git::git_commit(root, &req, still_wanted))
        }
        "write_file" => {
            let a: WriteFileArgs = parse(name, args)?;
            done(files::write_file(root, &a.path, &a.content, still_wanted))
        }
        "edit_file" => {
            let a: EditFileArgs = parse(name, args)?;
            done(files::edit_file(
                root,
                &a.path,
                &a.edits,
                a.dry_run,
                still_wanted,
            ))
        }
        other => Err(format!(
            "this agent has no tool {other:?}; it has {}",
            tools::AGENT_BUILTINS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolbox(writable: bool) -> (tempfile::TempDir, Toolbox) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a.txt"), "hello\n").unwrap();
        let (_tx, rx) = watch::channel(false);
        let hosted = Hosted::start(Vec::new(), root.clone(), rx);
        let policy = if writable {
            Scopes::of(&[Scope::Write, Scope::Run])
        } else {
            Scopes::of(&[Scope::Run])
        };
        (dir, Toolbox::new(root, policy, hosted))
    }

    fn call(name: &str, args: serde_json::Value, may_write: bool) -> ToolCall {
        ToolCall {
            target: ToolTarget::Builtin(name.into()),
            args_json: args.to_string(),
            may_write,
        }
    }

    #[tokio::test]
    async fn calls_run_with_their_arguments_checked() {
        let (_d, tb) = toolbox(true);
        let out = tb
            .call(call(
                "read_file",
                serde_json::json!({"path": "a.txt"}),
                false,
            ))
            .await;
        assert_eq!(out, ToolOutput::text("hello\n"));
        let unknown_arg = tb
            .call(call(
                "read_file",
                serde_json::json!({"path": "a.txt", "x": 1}),
                false,
            ))
            .await;
        assert!(unknown_arg.is_error && unknown_arg.text.contains("unknown field `x`"));
        let not_object = ToolCall {
            args_json: "[1]".into(),
            ..call("read_file", serde_json::json!({}), false)
        };
        assert!(tb.call(not_object).await.is_error);
        let unknown_tool = tb.call(call("rm_rf", serde_json::json!({}), true)).await;
        assert!(unknown_tool.is_error && unknown_tool.text.contains("no tool"));
    }

    #[tokio::test]
    async fn writes_need_a_writing_caller_and_a_writable_workspace() {
        let write = |may| {
            call(
                "write_file",
                serde_json::json!({"path": "b.txt", "content": "x"}),
                may,
            )
        };
        let (_d, tb) = toolbox(true);
        let refused = tb.call(write(false)).await;
        assert!(
            refused.is_error && refused.text.contains("lacks the `write` scope"),
            "{refused:?}"
        );
        assert!(!tb.call(write(true)).await.is_error);
        let (d, closed) = toolbox(false);
        let refused = closed.call(write(true)).await;
        assert!(refused.is_error && refused.text.contains("policy does not allow `write`"));
        assert!(!d.path().join("b.txt").exists());
    }
}
