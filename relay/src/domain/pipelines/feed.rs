//! Telling the members of a run's project how it goes: `pipeline_run` events (the run with
//! its stages) at each change, and `pipeline_text` events carrying an LLM answer's text as it
//! is written.

use axum::body::Bytes;
use serde_json::json;
use uuid::Uuid;

use super::RunView;
use crate::{bus::DynBus, store::DynStore};

/// Publishes run events to those who may see the run's project.
pub struct RunFeed {
    store: DynStore,
    bus: DynBus,
}

impl RunFeed {
    /// A feed publishing on `bus`, reading audiences from `store`.
    pub fn new(store: DynStore, bus: DynBus) -> Self {
        Self { store, bus }
    }

    /// Who may see runs of `project` now.
    pub async fn audience(&self, project: Uuid) -> Vec<Uuid> {
        match self.store.project_audience(project).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, %project, "cannot read who may see a run");
                Vec::new()
            }
        }
    }

    /// Tells the project's members how `run` is now.
    pub async fn publish(&self, run: &RunView) {
        let event = Bytes::from(json!({ "type": "pipeline_run", "run": run }).to_string());
        for user in self.audience(run.project_id).await {
            self.bus.publish(user, event.clone());
        }
    }

    /// Tells `audience` the next piece of a stage's answer.
    pub fn text(&self, audience: &[Uuid], run: Uuid, stage: &str, attempt: i32, text: &str) {
        let event = Bytes::from(
            json!({
                "type": "pipeline_text",
                "run": run,
                "stage": stage,
                "attempt": attempt,
                "text": text,
            })
            .to_string(),
        );
        for user in audience {
            self.bus.publish(*user, event.clone());
        }
    }
}
