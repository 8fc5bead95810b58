//! The engine that drives pipeline runs. Each node runs one: it claims runs with a lease
//! (queued ones, and running ones whose lease ran out because their node died), renews the
//! lease while it drives them, and gives it up when a run pauses, ends, or the node stops.
//!
//! Driving a run: stages whose needs all succeeded start, independent ones at once; each
//! stage's result is written together with the run's advance in one fenced transaction
//! ([`crate::store::pipelines::PipelineStore::apply_step`]), so a node that lost its lease
//! writes nothing and a crash leaves either both or neither. A stage found `running` when a
//! run is claimed again is run again at the same attempt: its LLM calls are journaled by
//! (run, stage, attempt, number), so recorded answers are reused and never asked for again.
//!
//! Every loop is capped: stage retries (`retries`), answers refused by a validator
//! (`validation_retries`), calls an interrupted relay left behind, and the stage's timeout.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use fulcrum_protocol::kinds::{ProjectGeneration, RunState, StageKind, StageState};
use serde_json::Value;
use tokio::{sync::Notify, task::JoinSet};
use uuid::Uuid;

use super::{
    Definition, RunFeed, agent_stage, definition, llm_stage, mcp_stage, recovery, run_stage, view,
    workspace,
};
use crate::{
    bus::DynBus,
    domain::{budgets::Budgets, providers::Providers, tasks::Tasks, workspaces::Workspaces},
    llm::Endpoint,
    metrics::Metrics,
    store::{
        DynStore, Project,
        pipelines::{
            LlmProvider, NewArtifact, PipelineRun, RunChange, StageChange, StageRow, Step,
        },
    },
};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's name in leases.
    pub node: String,
    /// How long a lease lasts unless renewed (renewed every third of it).
    pub lease: Duration,
    /// Most runs this node drives at once.
    pub max_runs: usize,
    /// How often the engine looks for runs besides being woken (runs whose node died).
    pub poll: Duration,
    /// The workspace tools an `agent` stage's model may call, as the MCP door describes them
    /// (read, list, search, git, write, edit); `run_command` and `finish` come with the stage.
    pub agent_tools: Vec<crate::llm::ToolSpec>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node: format!("relay-{}", Uuid::new_v4().simple()),
            lease: Duration::from_secs(30),
            max_runs: 100,
            poll: Duration::from_secs(2),
            agent_tools: Vec::new(),
        }
    }
}

/// What one stage attempt came to.
#[derive(Debug)]
pub(super) enum StageResult {
    /// Done: its output and artifacts.
    Succeeded {
        /// For later stages.
        output: Value,
        /// To keep.
        artifacts: Vec<NewArtifact>,
    },
    /// Failed; `retry` when another attempt may succeed.
    Failed {
        /// A stable code.
        reason: String,
        /// For people.
        error: String,
        /// Whether another attempt may succeed.
        retry: bool,
    },
    /// A budget would be passed: the run pauses until it is raised.
    Budget(String),
}

impl StageResult {
    pub(super) fn failed(reason: &str, error: String, retry: bool) -> Self {
        Self::Failed {
            reason: reason.to_owned(),
            error,
            retry,
        }
    }
}

/// What a stage attempt works with.
pub(super) struct StageCtx {
    pub run: PipelineRun,
    pub project: Project,
    pub provider: LlmProvider,
    pub endpoint: Endpoint,
    pub outputs: BTreeMap<String, Value>,
    pub artifacts: BTreeMap<String, String>,
    pub feedback: HashMap<String, String>,
    pub stages: Vec<StageRow>,
    /// The run's LLM usage when these stages started.
    pub usage: super::RunUsage,
    pub store: DynStore,
    pub budgets: Arc<Budgets>,
    pub feed: Arc<RunFeed>,
    pub audience: Vec<Uuid>,
    pub tasks: Arc<Tasks>,
    pub workspaces: Workspaces,
    pub agent_tools: Arc<Vec<crate::llm::ToolSpec>>,
    pub bus: DynBus,
}

/// The runs this node drives, each with a bell that cancels it at once (a cancel made on
/// another node arrives with the next lease renewal instead).
#[derive(Default)]
pub struct LocalRuns(Mutex<HashMap<Uuid, Arc<Notify>>>);

impl LocalRuns {
    /// Cancels `run` now if this node drives it.
    pub fn cancel(&self, run: Uuid) {
        if let Some(bell) = self.0.lock().expect("local runs lock").get(&run) {
            bell.notify_one();
        }
    }

    fn len(&self) -> usize {
        self.0.lock().expect("local runs lock").len()
    }

    fn insert(&self, run: Uuid) -> Arc<Notify> {
        let bell = Arc::new(Notify::new());
        self.0
            .lock()
            .expect("local runs lock")
            .insert(run, bell.clone());
        bell
    }

    fn remove(&self, run: Uuid) {
        self.0.lock().expect("local runs lock").remove(&run);
    }
}

/// The engine of one node.
pub struct Engine {
    store: DynStore,
    tasks: Arc<Tasks>,
    workspaces: Workspaces,
    bus: DynBus,
    budgets: Arc<Budgets>,
    providers: Arc<Providers>,
    feed: Arc<RunFeed>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    agent_tools: Arc<Vec<crate::llm::ToolSpec>>,
    wake: Arc<Notify>,
    driving: Arc<LocalRuns>,
    running: std::sync::atomic::AtomicBool,
}

/// Why driving a run stopped early.
enum Stop {
    /// Another node holds it now (or the run changed under us): write nothing more.
    LostLease,
    /// The node stops: give the lease up.
    Shutdown,
}

impl Engine {
    /// An engine over `store`; `wake` rouses it when a run is created or put back in line;
    /// `driving` is shared with the doors' service, to cancel at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: DynStore,
        (tasks, workspaces, bus): (Arc<Tasks>, Workspaces, DynBus),
        budgets: Arc<Budgets>,
        providers: Arc<Providers>,
        feed: Arc<RunFeed>,
        metrics: Arc<Metrics>,
        config: EngineConfig,
        wake: Arc<Notify>,
        driving: Arc<LocalRuns>,
    ) -> Self {
        Self {
            store,
            tasks,
            workspaces,
            bus,
            budgets,
            providers,
            feed,
            metrics,
            agent_tools: Arc::new(config.agent_tools.clone()),
            config,
            wake,
            driving,
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// For the readiness probe: this node's name and the runs it drives, or `stopped`.
    pub fn status(&self) -> String {
        if self.running.load(std::sync::atomic::Ordering::Relaxed) {
            format!(
                "node {}, driving {} runs",
                self.config.node,
                self.driving.len()
            )
        } else {
            "stopped".into()
        }
    }

    /// Claims and drives runs until `shutdown` says stop; then gives up the leases it holds.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        // Runs this node drove before it stopped (a crash) are its own again, at once.
        match self.store.release_all_runs(&self.config.node).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(runs = n, node = %self.config.node, "taking back the runs this node drove");
            }
            Err(e) => tracing::warn!(error = %e, "cannot take back this node's runs"),
        }
        let mut drives = JoinSet::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        self.running
            .store(true, std::sync::atomic::Ordering::Relaxed);
        loop {
            let free = self.config.max_runs.saturating_sub(self.driving.len());
            if free > 0 {
                let now = Utc::now();
                let until = now + self.config.lease;
                match self
                    .store
                    .claim_runs(&self.config.node, now, until, free as u32)
                    .await
                {
                    Ok(runs) => {
                        for run in runs {
                            let bell = self.driving.insert(run.id);
                            self.metrics.runs_driven(1);
                            let me = self.clone();
                            let stop = stop_rx.clone();
                            drives.spawn(async move {
                                // Forgotten however the drive ends (a panic included).
                                struct Forget(Arc<Engine>, Uuid);
                                impl Drop for Forget {
                                    fn drop(&mut self) {
                                        self.0.driving.remove(self.1);
                                        self.0.metrics.runs_driven(-1);
                                    }
                                }
                                let _forget = Forget(me.clone(), run.id);
                                me.drive(run, stop, bell).await;
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot claim pipeline runs"),
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
                Some(_) = drives.join_next(), if !drives.is_empty() => {}
                _ = stopping(&mut shutdown) => break,
            }
        }
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = stop_tx.send(true);
        while drives.join_next().await.is_some() {}
    }

    /// Drives one claimed run until it pauses, ends, loses its lease or the node stops.
    async fn drive(
        self: &Arc<Self>,
        run: PipelineRun,
        mut stop: tokio::sync::watch::Receiver<bool>,
        cancel: Arc<Notify>,
    ) {
        let id = run.id;
        let (lost_tx, mut lost) = tokio::sync::watch::channel(false);
        let renew = {
            let (store, node, lease) = (
                self.store.clone(),
                self.config.node.clone(),
                self.config.lease,
            );
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match store.renew_run_lease(id, &node, Utc::now() + lease).await {
                        Ok(Some(false)) => {}
                        Ok(Some(true)) => cancel.notify_one(),
                        Ok(None) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, run = %id, "cannot renew a run's lease");
                        }
                    }
                }
            })
        };
        // The renewals end with this drive, however it ends (a panic included).
        struct AbortOnDrop(tokio::task::JoinHandle<()>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _renew = AbortOnDrop(renew);
        let outcome = self.drive_steps(run, &mut stop, &mut lost, &cancel).await;
        match outcome {
            Ok(()) | Err(Stop::LostLease) => {}
            Err(Stop::Shutdown) => {
                if let Err(e) = self.store.release_run(id, &self.config.node).await {
                    tracing::warn!(error = %e, run = %id, "cannot give a run's lease up");
                }
            }
        }
    }

    async fn drive_steps(
        self: &Arc<Self>,
        run: PipelineRun,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        lost: &mut tokio::sync::watch::Receiver<bool>,
        cancel: &Notify,
    ) -> Result<(), Stop> {
        let id = run.id;
        if run.cancel_requested {
            return self
                .end(
                    &run,
                    RunState::Canceled,
                    "canceled",
                    "canceled by a user".into(),
                )
                .await;
        }
        let definition = match Definition::parse(&run.definition) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .end(&run, RunState::Failed, "definition_invalid", e.to_string())
                    .await;
            }
        };
        // The run acts with its starter's role, as it is now.
        let project = match self.store.get_project(run.started_by, run.project_id).await {
            Ok(Some(p))
                if matches!(
                    p.role,
                    fulcrum_protocol::kinds::Role::Owner
                        | fulcrum_protocol::kinds::Role::Maintainer
                ) =>
            {
                p
            }
            Ok(_) => {
                return self
                    .end(
                        &run,
                        RunState::Failed,
                        "access_lost",
                        "the user who started the run can no longer run pipelines in this project"
                            .into(),
                    )
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, run = %id, "cannot read a run's project");
                return Err(Stop::Shutdown);
            }
        };
        let provider = match self.provider(&run, &project).await {
            Ok(p) => p,
            Err(e) => return self.end(&run, RunState::Failed, "no_provider", e).await,
        };
        let endpoint = match self.providers.endpoint(&provider).await {
            Ok(e) => e,
            Err(e) => {
                return self
                    .end(
                        &run,
                        RunState::Failed,
                        "provider_key_unavailable",
                        format!("the provider's key cannot be read: {e}"),
                    )
                    .await;
            }
        };
        let audience = self.feed.audience(run.project_id).await;
        if definition.sets_project_status {
            let mut step = self.step(id);
            step.run = Some(RunChange {
                generation: Some(ProjectGeneration::Generating),
                state: RunState::Running,
                reason: None,
                error: None,
                workspace_id: None,
            });
            self.write(step, &run).await?;
        }
        // The workspace the run works in: the first task's, then always that one.
        let mut workspace = run.workspace_id;
        let mut inflight: JoinSet<(String, i32, StageResult, Option<Uuid>)> = JoinSet::new();
        // Stages in flight, with their attempt.
        let mut running: HashMap<String, i32> = HashMap::new();
        loop {
            if *lost.borrow() {
                inflight.abort_all();
                return Err(Stop::LostLease);
            }
            let stages = self.store.stages(id).await.map_err(|e| {
                tracing::warn!(error = %e, run = %id, "cannot read a run's stages");
                Stop::Shutdown
            })?;
            let by_name: HashMap<&str, &StageRow> =
                stages.iter().map(|s| (s.name.as_str(), s)).collect();
            let mut step = self.step(id);
            let mut to_start = Vec::new();
            for def in &definition.stages {
                let Some(row) = by_name.get(def.name.as_str()) else {
                    continue;
                };
                if running.contains_key(&def.name) {
                    continue;
                }
                if !def.on_failure.is_empty() {
                    // A recovery stage runs only when a stage it recovers waits for it.
                    let asked = def.on_failure.iter().any(|n| {
                        by_name.get(n.as_str()).is_some_and(|s| {
                            s.state == StageState::Waiting
                                && s.reason.as_deref() == Some(recovery::WAITING)
                        })
                    });
                    match row.state {
                        StageState::Running => {
                            to_start.push((def.name.clone(), row.attempt.max(1)));
                        }
                        StageState::Pending | StageState::Succeeded | StageState::Failed
                            if asked =>
                        {
                            to_start.push((def.name.clone(), row.attempt + 1));
                        }
                        _ => {}
                    }
                    continue;
                }
                let needs_met = def.needs.iter().all(|n| {
                    by_name
                        .get(n.as_str())
                        .is_some_and(|s| s.state == StageState::Succeeded)
                });
                match (row.state, def.kind) {
                    // Left running by a node that stopped: again, at the same attempt.
                    (StageState::Running, _) => {
                        to_start.push((def.name.clone(), row.attempt.max(1)));
                    }
                    (StageState::Pending, StageKind::Approval) if needs_met => {
                        step.stages.push(change(
                            row,
                            StageState::Waiting,
                            row.attempt,
                            Some("approval_required"),
                            None,
                        ));
                    }
                    (
                        StageState::Pending,
                        StageKind::Llm | StageKind::Run | StageKind::Agent | StageKind::Mcp,
                    ) if needs_met => {
                        to_start.push((def.name.clone(), row.attempt + 1));
                    }
                    (StageState::Pending, kind) if needs_met => {
                        step.stages.push(StageChange {
                            finished_at: Some(Utc::now()),
                            ..change(
                                row,
                                StageState::Failed,
                                row.attempt + 1,
                                Some("not_supported"),
                                Some(format!(
                                    "`{kind}` stages are not supported by this relay yet"
                                )),
                            )
                        });
                    }
                    _ => {}
                }
            }
            for (name, attempt) in &to_start {
                let row = by_name[name.as_str()];
                let mut c = change(row, StageState::Running, *attempt, None, None);
                if row.kind == StageKind::Run {
                    c.task_id = Some(run_stage::task_id(id, name, *attempt));
                }
                c.started_at = if row.state == StageState::Running {
                    row.started_at
                } else {
                    Some(Utc::now())
                };
                // A recovery stage keeps its rounds.
                c.output = row.output.clone().filter(|_| {
                    definition
                        .stage(name)
                        .is_some_and(|d| !d.on_failure.is_empty())
                });
                step.stages.push(c);
            }
            if !step.stages.is_empty() {
                self.write(step, &run).await?;
                if !to_start.is_empty() {
                    let stages = self.store.stages(id).await.map_err(|_| Stop::Shutdown)?;
                    let ctx = Arc::new(StageCtx {
                        run: PipelineRun {
                            workspace_id: workspace,
                            ..run.clone()
                        },
                        project: project.clone(),
                        provider: provider.clone(),
                        endpoint: endpoint.clone(),
                        outputs: llm_stage::outputs(&stages),
                        artifacts: self
                            .store
                            .artifacts_with_content(id)
                            .await
                            .map_err(|_| Stop::Shutdown)?
                            .into_iter()
                            .map(|a| (a.meta.path, a.content))
                            .collect(),
                        feedback: stages
                            .iter()
                            .filter_map(|s| s.feedback.clone().map(|f| (s.name.clone(), f)))
                            .collect(),
                        stages: stages.clone(),
                        usage: {
                            let totals = self.store.run_totals(id).await.unwrap_or_default();
                            let sum = |f: fn(&crate::store::pipelines::CallTotals) -> i64| {
                                totals.iter().map(f).sum::<i64>()
                            };
                            super::RunUsage {
                                calls: sum(|t| t.calls),
                                input_tokens: sum(|t| t.input_tokens),
                                output_tokens: sum(|t| t.output_tokens),
                                cached_tokens: sum(|t| t.cached_tokens),
                                cost_usd: crate::domain::budgets::micros_to_usd(sum(|t| {
                                    t.cost_micros
                                })),
                            }
                        },
                        store: self.store.clone(),
                        budgets: self.budgets.clone(),
                        feed: self.feed.clone(),
                        audience: audience.clone(),
                        tasks: self.tasks.clone(),
                        workspaces: self.workspaces.clone(),
                        agent_tools: self.agent_tools.clone(),
                        bus: self.bus.clone(),
                    });
                    for (name, attempt) in to_start {
                        let def = definition
                            .stage(&name)
                            .expect("stage of the definition")
                            .clone();
                        let ctx = ctx.clone();
                        running.insert(name.clone(), attempt);
                        inflight.spawn(async move {
                            // A task has its own time limit; the stage's is a little longer.
                            let slack = if def.kind == StageKind::Run { 60 } else { 0 };
                            let timeout = Duration::from_secs(def.timeout_secs + slack);
                            if attempt > 1 {
                                // Back off before a retry: 1 s, 2 s, 4 s … up to 30 s.
                                let wait = Duration::from_secs(1 << (attempt - 2).min(5) as u32);
                                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                            }
                            let work = async {
                                match def.kind {
                                    StageKind::Run => run_stage::run(&ctx, &def, attempt).await,
                                    StageKind::Mcp => mcp_stage::run(&ctx, &def).await,
                                    StageKind::Agent => {
                                        let failure = match def.on_failure.is_empty() {
                                            true => None,
                                            false => recovery::failure(&ctx, &def).await,
                                        };
                                        agent_stage::run(&ctx, &def, attempt, failure).await
                                    }
                                    _ => {
                                        let r = llm_stage::run(&ctx, &def, attempt).await;
                                        if def.commit {
                                            workspace::land(&ctx, &def, attempt, r).await
                                        } else {
                                            (r, None)
                                        }
                                    }
                                }
                            };
                            let (result, ws) = match tokio::time::timeout(timeout, work).await {
                                Ok(r) => r,
                                Err(_) => (
                                    StageResult::failed(
                                        "timeout",
                                        format!(
                                            "the stage took longer than {} s",
                                            def.timeout_secs
                                        ),
                                        true,
                                    ),
                                    None,
                                ),
                            };
                            (name, attempt, result, ws)
                        });
                    }
                }
                continue;
            }
            if inflight.is_empty() {
                return self.settle(&run, &definition, &stages).await;
            }
            tokio::select! {
                done = inflight.join_next() => {
                    let Some(done) = done else { continue };
                    let (name, attempt, result, ws) = match done {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, run = %id, "a stage task failed");
                            return Err(Stop::Shutdown);
                        }
                    };
                    running.remove(&name);
                    let def = definition.stage(&name).expect("stage of the definition");
                    let row = by_name[name.as_str()];
                    let mut step = self.step(id);
                    let now = Utc::now();
                    let mut c = change(row, StageState::Running, attempt, None, None);
                    c.started_at = row.started_at;
                    c.result_of = Some(attempt);
                    if workspace.is_none() && ws.is_some() {
                        workspace = ws;
                        step.run = Some(RunChange {
                            generation: None,
                            state: RunState::Running,
                            reason: None,
                            error: None,
                            workspace_id: ws,
                        });
                    }
                    let recovering = !def.on_failure.is_empty();
                    match result {
                        StageResult::Succeeded { mut output, artifacts } => {
                            c.state = StageState::Succeeded;
                            if recovering {
                                recovery::keep_rounds(&mut output, row);
                                // The stages it recovered run again.
                                for s in recovery::waiting(def, &by_name) {
                                    step.stages.push(change(s, StageState::Pending, s.attempt, None, None));
                                }
                            }
                            c.output = Some(output.to_string());
                            c.finished_at = Some(now);
                            step.artifacts = artifacts;
                        }
                        StageResult::Failed { reason, error, retry } => {
                            let again = retry && (attempt as u32) <= def.retries;
                            c.state = if again { StageState::Pending } else { StageState::Failed };
                            c.finished_at = (!again).then_some(now);
                            if recovering {
                                c.output = row.output.clone();
                                if !again {
                                    for s in recovery::waiting(def, &by_name) {
                                        let mut f = change(
                                            s,
                                            StageState::Failed,
                                            s.attempt,
                                            s.error.as_ref().map(|_| "recovery_failed"),
                                            Some(format!(
                                                "{}; recovery `{}` failed: {error}",
                                                s.error.as_deref().unwrap_or("it failed"),
                                                def.name
                                            )),
                                        );
                                        f.finished_at = Some(now);
                                        step.stages.push(f);
                                    }
                                }
                            } else if !again
                                && let Some(rdef) = definition.recovery_for(&name)
                                && let Some(rrow) = by_name.get(rdef.name.as_str())
                            {
                                match recovery::next_round(rdef, rrow, &name, attempt, &reason, &error) {
                                    Ok(rounds) => {
                                        // It waits for the recovery, which starts next.
                                        c.state = StageState::Waiting;
                                        c.finished_at = None;
                                        let mut r = change(rrow, rrow.state, rrow.attempt, None, None);
                                        r.output = Some(rounds.to_string());
                                        r.started_at = rrow.started_at;
                                        r.finished_at = rrow.finished_at;
                                        step.stages.push(r);
                                        c.reason = Some(recovery::WAITING.into());
                                        c.error = Some(error);
                                        self.metrics.pipeline_stage(c.state.as_str());
                                        step.stages.push(c);
                                        self.write(step, &run).await?;
                                        continue;
                                    }
                                    Err((why, message)) => {
                                        c.reason = Some(why.into());
                                        c.error = Some(format!("{error}; {message}"));
                                        self.metrics.pipeline_stage(c.state.as_str());
                                        step.stages.push(c);
                                        self.write(step, &run).await?;
                                        continue;
                                    }
                                }
                            }
                            c.reason = Some(reason);
                            c.error = Some(error);
                        }
                        StageResult::Budget(message) => {
                            // The same attempt runs again once the budget is raised (a
                            // recovery stage keeps its rounds).
                            if recovering {
                                c.output = row.output.clone();
                            }
                            c.state = StageState::Waiting;
                            c.attempt = attempt - 1;
                            c.reason = Some("budget_exceeded".into());
                            c.error = Some(message);
                        }
                    }
                    self.metrics.pipeline_stage(c.state.as_str());
                    step.stages.push(c);
                    self.write(step, &run).await?;
                }
                _ = cancel.notified() => {
                    inflight.abort_all();
                    self.cancel_tasks(&run, &definition, &running).await;
                    return self.end(&run, RunState::Canceled, "canceled", "canceled by a user".into()).await;
                }
                _ = lost.changed() => {}
                _ = stop.changed() => {
                    inflight.abort_all();
                    return Err(Stop::Shutdown);
                }
            }
        }
    }

    /// Cancels the tasks of the `run` stages in flight (a canceled run stops its build or
    /// deploy too).
    async fn cancel_tasks(
        &self,
        run: &PipelineRun,
        definition: &Definition,
        running: &HashMap<String, i32>,
    ) {
        let caller = crate::domain::Caller::new(run.started_by, crate::domain::Door::Pipeline);
        for (name, attempt) in running {
            if definition
                .stage(name)
                .is_some_and(|s| s.kind == StageKind::Run)
            {
                let task = run_stage::task_id(run.id, name, *attempt);
                match self.tasks.cancel(caller, task).await {
                    Ok(_) | Err(crate::domain::DomainError::NotFound(_)) => {}
                    Err(crate::domain::DomainError::Conflict { .. }) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, run = %run.id, %task, "cannot cancel a stage's task");
                    }
                }
            }
        }
    }

    /// With nothing in flight and nothing to start: the run ends or pauses.
    async fn settle(
        &self,
        run: &PipelineRun,
        definition: &Definition,
        stages: &[StageRow],
    ) -> Result<(), Stop> {
        // Recovery stages are not part of the flow: they need not have run.
        let flow = |s: &&StageRow| {
            definition
                .stage(&s.name)
                .is_none_or(|d| d.on_failure.is_empty())
        };
        if stages
            .iter()
            .filter(flow)
            .all(|s| s.state == StageState::Succeeded)
        {
            return self.end(run, RunState::Succeeded, "", String::new()).await;
        }
        if let Some(f) = stages
            .iter()
            .filter(flow)
            .find(|s| s.state == StageState::Failed)
            .or_else(|| stages.iter().find(|s| s.state == StageState::Failed))
        {
            let reason = f.reason.clone().unwrap_or_else(|| "stage_failed".into());
            let error = format!(
                "stage `{}` failed: {}",
                f.name,
                f.error.as_deref().unwrap_or("no reason given")
            );
            return self.end(run, RunState::Failed, &reason, error).await;
        }
        if let Some(w) = stages.iter().find(|s| s.state == StageState::Waiting) {
            let reason = w.reason.clone().unwrap_or_else(|| "waiting".into());
            let error = match reason.as_str() {
                "approval_required" => format!("stage `{}` waits for approval", w.name),
                _ => w.error.clone().unwrap_or_default(),
            };
            return self.end(run, RunState::Paused, &reason, error).await;
        }
        self.end(
            run,
            RunState::Failed,
            "stuck",
            "no stage can start: a stage they need did not succeed".into(),
        )
        .await
    }

    /// Moves the run to `state` (which gives up its lease), and tells its audience.
    async fn end(
        &self,
        run: &PipelineRun,
        state: RunState,
        reason: &str,
        error: String,
    ) -> Result<(), Stop> {
        let mut step = self.step(run.id);
        step.run = Some(RunChange {
            generation: definition::sets_project_status(&run.definition).then_some(match state {
                RunState::Succeeded => ProjectGeneration::Ready,
                RunState::Failed => ProjectGeneration::Failed,
                RunState::Canceled => ProjectGeneration::Draft,
                _ => ProjectGeneration::Generating,
            }),
            state,
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            error: (!error.is_empty()).then_some(error),
            workspace_id: None,
        });
        self.write(step, run).await?;
        self.metrics.pipeline_run(state.as_str());
        Ok(())
    }

    fn step(&self, run: Uuid) -> Step {
        Step {
            run_id: run,
            lease_owner: self.config.node.clone(),
            stages: Vec::new(),
            artifacts: Vec::new(),
            run: None,
            now: Utc::now(),
        }
    }

    /// Writes a step (fenced by the lease) and publishes the run as it is now.
    async fn write(&self, step: Step, run: &PipelineRun) -> Result<(), Stop> {
        let started = Instant::now();
        match self.store.apply_step(&step).await {
            Ok(true) => {}
            Ok(false) => return Err(Stop::LostLease),
            Err(e) => {
                tracing::warn!(error = %e, run = %run.id, "cannot record a pipeline step");
                return Err(Stop::Shutdown);
            }
        }
        self.metrics.pipeline_step(started.elapsed().as_secs_f64());
        self.publish(run.id).await;
        Ok(())
    }

    async fn publish(&self, id: Uuid) {
        let (Ok(Some(run)), Ok(stages), Ok(totals)) = (
            self.store.run_unscoped(id).await,
            self.store.stages(id).await,
            self.store.run_totals(id).await,
        ) else {
            return;
        };
        self.feed.publish(&view(&run, &stages, &totals)).await;
    }

    /// The run's provider: the starter's, or one the project's owner set up for the project.
    async fn provider(&self, run: &PipelineRun, project: &Project) -> Result<LlmProvider, String> {
        let gone = || "the run's LLM provider was removed".to_owned();
        let id = run.provider_id.ok_or_else(gone)?;
        if let Ok(p) = self.providers.by_id(run.started_by, id).await {
            return Ok(p);
        }
        match self.providers.by_id(project.owner_id, id).await {
            Ok(p) if p.project_id == Some(project.id) => Ok(p),
            _ => Err(gone()),
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A change of `row` to `state` at `attempt`.
fn change(
    row: &StageRow,
    state: StageState,
    attempt: i32,
    reason: Option<&str>,
    error: Option<String>,
) -> StageChange {
    StageChange {
        name: row.name.clone(),
        state,
        attempt,
        reason: reason.map(str::to_owned),
        error,
        output: None,
        task_id: None,
        started_at: row.started_at,
        finished_at: None,
        result_of: None,
    }
}
