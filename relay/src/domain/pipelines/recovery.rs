//! Recovery: a stage with `on_failure = [...]` (an `agent` stage) runs when one of those
//! stages fails for good. The failed stage waits (`recovering`); the recovery stage reads the
//! failure (the error, failing tests, the end of the task's log) and the code through the
//! workspace's tools, fixes it and commits; then the failed stage runs again. At most
//! `max_rounds` rounds per run, and a round whose failure has the same fingerprint as an
//! earlier one ends the run early instead: the fix did not change anything that matters.
//!
//! The rounds are kept in the recovery stage's output (`rounds`), so they survive restarts
//! and show on the run's page.

use std::collections::HashMap;

use fulcrum_protocol::kinds::StageState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{definition::Stage, engine::StageCtx, run_stage};
use crate::store::pipelines::StageRow;

/// The reason of a stage that waits for its recovery.
pub(super) const WAITING: &str = "recovering";
/// Most bytes of log a recovery reads.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// The rounds so far, from a recovery stage's stored output.
fn rounds(row: &StageRow) -> Vec<Value> {
    row.output
        .as_deref()
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
        .and_then(|v| v["rounds"].as_array().cloned())
        .unwrap_or_default()
}

/// A failure's fingerprint: the stage, its reason and its error with every number taken out
/// (task numbers, durations, ports and line numbers change from one try to the next).
pub(super) fn fingerprint(stage: &str, reason: &str, error: &str) -> String {
    let mut h = Sha256::new();
    h.update(stage.as_bytes());
    h.update([0]);
    h.update(reason.as_bytes());
    h.update([0]);
    let mut last_digit = false;
    for c in error.chars() {
        let digit = c.is_ascii_digit();
        if !digit {
            let mut b = [0; 4];
            h.update(c.encode_utf8(&mut b).as_bytes());
        } else if !last_digit {
            h.update(b"#");
        }
        last_digit = digit;
    }
    crate::auth::hex(&h.finalize())[..16].to_owned()
}

/// The next round for a stage that failed, as the recovery stage's new output; or why there
/// is none: (`recovery_exhausted` | `recovery_repeated`, for people).
pub(super) fn next_round(
    recovery: &Stage,
    row: &StageRow,
    failed: &str,
    attempt: i32,
    reason: &str,
    error: &str,
) -> Result<Value, (&'static str, String)> {
    let mut all = rounds(row);
    let fp = fingerprint(failed, reason, error);
    if let Some(same) = all.iter().position(|r| r["fingerprint"] == fp.as_str()) {
        return Err((
            "recovery_repeated",
            format!(
                "it failed the same way after recovery round {} (fingerprint {fp}), so recovery \
                 stopped early",
                same + 1
            ),
        ));
    }
    if all.len() as u32 >= recovery.max_rounds {
        return Err((
            "recovery_exhausted",
            format!(
                "still failing after {} recovery rounds (the most `{}` may have)",
                all.len(),
                recovery.name
            ),
        ));
    }
    all.push(json!({
        "stage": failed,
        "attempt": attempt,
        "reason": reason,
        "error": error,
        "fingerprint": fp,
    }));
    Ok(json!({ "rounds": all }))
}

/// The stages that wait for `recovery`.
pub(super) fn waiting<'a>(
    recovery: &Stage,
    by_name: &HashMap<&str, &'a StageRow>,
) -> Vec<&'a StageRow> {
    recovery
        .on_failure
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .filter(|s| s.state == StageState::Waiting && s.reason.as_deref() == Some(WAITING))
        .collect()
}

/// Keeps the rounds in a recovery stage's output when it succeeds.
pub(super) fn keep_rounds(output: &mut Value, row: &StageRow) {
    if let Value::Object(m) = output {
        m.insert("rounds".into(), Value::Array(rounds(row)));
    }
}

/// What a recovery stage's templates see as `failure`: the round, the failed stage, its error,
/// and for a task its test summary and the end of its log.
pub(super) async fn failure(ctx: &StageCtx, recovery: &Stage) -> Option<Value> {
    let row = ctx.stages.iter().find(|s| s.name == recovery.name)?;
    let all = rounds(row);
    let last = all.last()?.clone();
    let failed = last["stage"].as_str()?.to_owned();
    let attempt = last["attempt"].as_i64()? as i32;
    let mut out = json!({
        "round": all.len(),
        "max_rounds": recovery.max_rounds,
        "stage": failed,
        "reason": last["reason"],
        "error": last["error"],
        "earlier": all[..all.len() - 1].iter().map(|r| r["error"].clone()).collect::<Vec<_>>(),
    });
    let caller = crate::domain::Caller::new(ctx.run.started_by, crate::domain::Door::Pipeline);
    let id = run_stage::task_id(ctx.run.id, &failed, attempt);
    if let Ok(task) = ctx.tasks.visible(caller, id).await {
        out["command"] = json!(task.command.clone().or(task.step.clone()));
        out["exit_code"] = json!(task.exit_code);
        out["test_summary"] = json!(task.test_summary);
        out["log_tail"] = json!(run_stage::tail(ctx, &task, LOG_TAIL_BYTES).await);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_numbers_only() {
        let a = fingerprint(
            "qa",
            "task_failed",
            "task #3 `pytest` exited 1; 2 tests failed: test_a, test_b",
        );
        let b = fingerprint(
            "qa",
            "task_failed",
            "task #17 `pytest` exited 1; 2 tests failed: test_a, test_b",
        );
        let c = fingerprint(
            "qa",
            "task_failed",
            "task #17 `pytest` exited 1; 1 tests failed: test_b",
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            a,
            fingerprint(
                "build",
                "task_failed",
                "task #3 `pytest` exited 1; 2 tests failed: test_a, test_b"
            )
        );
    }
}
