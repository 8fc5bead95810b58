//! Pipeline definitions: a TOML file of stages whose `needs` form a DAG. The built-in
//! SystemCrafter and feature pipelines are such files shipped with the relay
//! (`relay/pipelines/`); a repository may define its own. Parsing checks everything the engine
//! relies on, and every error names the line it is about.
//!
//! ```toml
//! name = "docs"
//! description = "Write a README from the project's description"
//!
//! [defaults]
//! max_tokens = 4096       # per call
//! retries = 1             # attempts after the first, for a failed stage
//! validation_retries = 2  # calls after the first, for an answer the validator refused
//! timeout_secs = 600      # per stage attempt
//! budget_usd = 2.0        # the run's own budget [default: none]
//!
//! [[stages]]
//! name = "outline"
//! kind = "llm"
//! system = "You are a technical writer."
//! prompt = "Outline a README for {{ project.name }}: {{ inputs.description }}"
//! output = "json"                    # text | json | files
//! schema = { type = "object", required = ["sections"] }
//! artifacts = [{ path = "outline.json" }]
//!
//! [[stages]]
//! name = "review"
//! kind = "approval"
//! needs = ["outline"]
//!
//! [[stages]]
//! name = "write"
//! kind = "llm"
//! needs = ["review"]
//! prompt = "Write it from {{ stages.outline.output | tojson }}"
//! artifacts = [{ path = "README.md" }]
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use fulcrum_common::toml_errors::{line_of, message as toml_message};
use fulcrum_protocol::kinds::{Role, StageKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

/// Most stages in one pipeline.
pub const MAX_STAGES: usize = 64;
/// Most bytes of a definition.
pub const MAX_DEFINITION_BYTES: usize = 256 << 10;
/// Most tokens one call may ask for.
pub const MAX_TOKENS_CAP: u32 = 200_000;
/// Most retries of a failed stage.
pub const MAX_RETRIES: u32 = 10;
/// Most extra calls for answers a validator refused.
pub const MAX_VALIDATION_RETRIES: u32 = 5;
/// Longest stage attempt.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// A definition that does not parse or does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DefinitionError {
    /// What is wrong, naming the line.
    pub message: String,
}

fn at(text: &str, offset: usize, message: impl std::fmt::Display) -> DefinitionError {
    DefinitionError {
        message: format!("line {}: {message}", line_of(text.as_bytes(), offset)),
    }
}

/// What an `llm` stage's answer must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Any text.
    #[default]
    Text,
    /// One JSON value, following `schema` when given.
    Json,
    /// Files: `{"files": [{"path": …, "content": …}]}`, each kept as an artifact under the
    /// stage's `dir`.
    Files,
}

/// An artifact a stage writes from its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Its path in the run.
    pub path: String,
    /// A template over `output` that makes its content [default: the output itself].
    #[serde(default)]
    pub template: Option<String>,
    /// A parser the content must pass; a refusal is sent back to the model to fix.
    #[serde(default)]
    pub check: Option<Check>,
}

/// A real parser an artifact must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// An OpenAPI 3 document (YAML or JSON).
    Openapi,
    /// SQL that applies to an empty SQLite database.
    Sqlite,
    /// JSON.
    Json,
}

/// What a `run` stage that deploys records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Where the deployment answers (a template over the run, like a prompt's, plus `env`).
    pub url: String,
}

/// Settings every stage has unless it says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The model [default: the provider's].
    #[serde(default)]
    pub model: Option<String>,
    /// Most tokens per answer.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Attempts after the first for a failed stage.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Calls after the first for an answer the validator refused.
    #[serde(default = "default_validation_retries")]
    pub validation_retries: u32,
    /// Longest stage attempt, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The run's own budget, US dollars.
    #[serde(default)]
    pub budget_usd: Option<f64>,
}

fn default_max_tokens() -> u32 {
    4096
}
fn default_retries() -> u32 {
    1
}
fn default_validation_retries() -> u32 {
    2
}
fn default_timeout() -> u64 {
    600
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            model: None,
            max_tokens: default_max_tokens(),
            retries: default_retries(),
            validation_retries: default_validation_retries(),
            timeout_secs: default_timeout(),
            budget_usd: None,
        }
    }
}

/// A stage as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    kind: StageKind,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    prompt: Option<Spanned<String>>,
    #[serde(default)]
    output: OutputKind,
    #[serde(default)]
    schema: Option<serde_json::Value>,
    #[serde(default)]
    artifacts: Vec<ArtifactSpec>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    validation_retries: Option<u32>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    approver: Option<Role>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
    #[serde(default)]
    max_turns: Option<u32>,
    #[serde(default)]
    commit: Option<bool>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    deploy: Option<DeploySpec>,
    #[serde(default)]
    on_failure: Vec<Spanned<String>>,
    #[serde(default)]
    max_rounds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    repo: Option<String>,
    #[serde(default)]
    sets_project_status: bool,
    #[serde(default)]
    defaults: Defaults,
    stages: Vec<Spanned<RawStage>>,
}

/// One stage, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Its name, unique in the pipeline.
    pub name: String,
    /// What it does.
    pub kind: StageKind,
    /// The stages whose outputs it needs.
    pub needs: Vec<String>,
    /// `llm`, `agent`: the system prompt (a template).
    pub system: Option<String>,
    /// `llm`, `agent`: the prompt (a template over the run's inputs and earlier outputs).
    pub prompt: Option<String>,
    /// `llm`: what the answer must be.
    pub output: OutputKind,
    /// `llm` with `output = "json"`: the JSON Schema the answer follows.
    pub schema: Option<serde_json::Value>,
    /// `llm`: the artifacts written from the output.
    pub artifacts: Vec<ArtifactSpec>,
    /// `llm` with `output = "files"`: where its files go in the run's artifacts.
    pub dir: Option<String>,
    /// The model [default: the pipeline's, then the provider's].
    pub model: Option<String>,
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Attempts after the first.
    pub retries: u32,
    /// Calls after the first for refused answers.
    pub validation_retries: u32,
    /// Longest attempt, seconds.
    pub timeout_secs: u64,
    /// `approval`: the least role that may decide [default: maintainer].
    pub approver: Role,
    /// `run`: the command.
    pub command: Option<String>,
    /// `mcp`: the tool.
    pub tool: Option<String>,
    /// `mcp`: its arguments.
    pub arguments: Option<serde_json::Value>,
    /// `agent`: most turns.
    pub max_turns: u32,
    /// `llm`, `agent`: commit what it wrote on the run's branch [default: yes for `agent` and
    /// for `llm` stages with a `dir`].
    pub commit: bool,
    /// `run`: environment for the task (templates).
    pub env: BTreeMap<String, String>,
    /// `run`: the task deploys; record a deployment.
    pub deploy: Option<DeploySpec>,
    /// `agent`: a recovery stage: it runs when one of these stages fails, then that stage runs
    /// again; not part of the normal flow.
    pub on_failure: Vec<String>,
    /// A recovery stage's most rounds per run.
    pub max_rounds: u32,
}

/// Most recovery rounds one run may have.
pub const MAX_RECOVERY_ROUNDS: u32 = 10;

/// A pipeline, checked: its stages in the order written, with needs that form a DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// What stages have unless they say otherwise.
    pub defaults: Defaults,
    /// The run's repository directory in the workspace, a template over `project`
    /// [default: the workspace root].
    pub repo: Option<String>,
    /// The project's status follows the runs of this pipeline (draft → generating → ready
    /// or failed).
    pub sets_project_status: bool,
    /// The stages, in the order written.
    pub stages: Vec<Stage>,
}

impl Definition {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, DefinitionError> {
        if text.len() > MAX_DEFINITION_BYTES {
            return Err(DefinitionError {
                message: format!("a definition is at most {MAX_DEFINITION_BYTES} bytes"),
            });
        }
        let raw: RawDefinition = toml::from_str(text).map_err(|e| DefinitionError {
            message: toml_message(&e, text),
        })?;
        check_name(text, &raw.name, "pipeline")?;
        let d = &raw.defaults;
        check_numbers(
            text,
            raw.name.span().start,
            d.max_tokens,
            d.retries,
            d.validation_retries,
            d.timeout_secs,
        )?;
        if let Some(b) = d.budget_usd
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(at(text, 0, "budget_usd must be a number ≥ 0"));
        }
        if raw.stages.is_empty() || raw.stages.len() > MAX_STAGES {
            return Err(at(
                text,
                raw.name.span().start,
                format!("a pipeline has 1 to {MAX_STAGES} stages"),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for s in &raw.stages {
            let s = s.get_ref();
            check_name(text, &s.name, "stage")?;
            if seen.insert(s.name.get_ref(), s.name.span().start).is_some() {
                return Err(at(
                    text,
                    s.name.span().start,
                    format!("stage `{}` is defined twice", s.name.get_ref()),
                ));
            }
        }
        let mut stages = Vec::with_capacity(raw.stages.len());
        for spanned in &raw.stages {
            let start = spanned.span().start;
            let s = spanned.get_ref();
            for need in &s.needs {
                if !seen.contains_key(need.get_ref().as_str()) {
                    return Err(at(
                        text,
                        need.span().start,
                        format!(
                            "stage `{}` needs `{}`, which is not a stage",
                            s.name.get_ref(),
                            need.get_ref()
                        ),
                    ));
                }
                if s.needs
                    .iter()
                    .filter(|n| n.get_ref() == need.get_ref())
                    .count()
                    > 1
                {
                    return Err(at(
                        text,
                        need.span().start,
                        format!(
                            "stage `{}` needs `{}` twice",
                            s.name.get_ref(),
                            need.get_ref()
                        ),
                    ));
                }
                if need.get_ref() == s.name.get_ref() {
                    return Err(at(
                        text,
                        need.span().start,
                        format!("stage `{}` needs itself", s.name.get_ref()),
                    ));
                }
            }
            stages.push(stage(text, start, s, d)?);
        }
        check_acyclic(text, &raw.stages)?;
        for spanned in &raw.stages {
            for failing in &spanned.get_ref().on_failure {
                let target = stages
                    .iter()
                    .find(|s: &&Stage| &s.name == failing.get_ref());
                match target {
                    None => {
                        return Err(at(
                            text,
                            failing.span().start,
                            format!(
                                "`on_failure` names `{}`, which is not a stage",
                                failing.get_ref()
                            ),
                        ));
                    }
                    Some(t) if !t.on_failure.is_empty() => {
                        return Err(at(
                            text,
                            failing.span().start,
                            "a recovery stage cannot recover another",
                        ));
                    }
                    Some(_)
                        if stages
                            .iter()
                            .filter(|s| s.on_failure.contains(failing.get_ref()))
                            .count()
                            > 1 =>
                    {
                        return Err(at(
                            text,
                            failing.span().start,
                            format!("`{}` has more than one recovery stage", failing.get_ref()),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for s in &stages {
            if let Some(r) = s.needs.iter().find(|n| {
                stages
                    .iter()
                    .any(|x| &x.name == *n && !x.on_failure.is_empty())
            }) {
                return Err(at(
                    text,
                    0,
                    format!(
                        "stage `{}` needs `{r}`, a recovery stage, which runs only when a stage fails",
                        s.name
                    ),
                ));
            }
        }
        if let Some(t) = &raw.repo
            && let Err(e) = minijinja::Environment::new().template_from_str(t)
        {
            return Err(at(text, 0, format!("`repo`: {e}")));
        }
        Ok(Self {
            name: raw.name.into_inner(),
            description: raw.description,
            defaults: raw.defaults,
            repo: raw.repo,
            sets_project_status: raw.sets_project_status,
            stages,
        })
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The recovery stage for `name`, if one lists it in `on_failure`.
    pub fn recovery_for(&self, name: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| s.on_failure.iter().any(|n| n == name))
    }

    /// `name` and every stage that needs it, directly or not, in definition order.
    pub fn downstream(&self, name: &str) -> Vec<String> {
        let mut hit: HashSet<&str> = HashSet::from([name]);
        // Definition order need not be topological; repeat until nothing changes.
        loop {
            let before = hit.len();
            for s in &self.stages {
                if s.needs.iter().any(|n| hit.contains(n.as_str())) {
                    hit.insert(&s.name);
                }
            }
            if hit.len() == before {
                break;
            }
        }
        self.stages
            .iter()
            .filter(|s| hit.contains(s.name.as_str()))
            .map(|s| s.name.clone())
            .collect()
    }
}

/// SHA-256 of a definition and the prompts it uses, hex: what a run records to say exactly
/// what it ran.
pub fn definition_hash(text: &str, prompts: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    for (name, prompt) in prompts {
        h.update([0]);
        h.update(name.as_bytes());
        h.update([0]);
        h.update(prompt.as_bytes());
    }
    crate::auth::hex(&h.finalize())
}

/// Whether a definition that was checked before (a run's) sets its project's status.
pub fn sets_project_status(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(default)]
        sets_project_status: bool,
    }
    toml::from_str::<Shape>(text).is_ok_and(|s| s.sets_project_status)
}

/// Each stage's needs, by stage name, read from a definition that was checked before (a run's),
/// without checking it again; empty if it does not read.
pub fn needs_of(text: &str) -> BTreeMap<String, Vec<String>> {
    #[derive(Deserialize)]
    struct Shape {
        stages: Vec<StageShape>,
    }
    #[derive(Deserialize)]
    struct StageShape {
        name: String,
        #[serde(default)]
        needs: Vec<String>,
    }
    toml::from_str::<Shape>(text)
        .map(|d| d.stages.into_iter().map(|s| (s.name, s.needs)).collect())
        .unwrap_or_default()
}

fn check_name(text: &str, name: &Spanned<String>, what: &str) -> Result<(), DefinitionError> {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(at(
            text,
            name.span().start,
            format!("a {what} name is 1 to 64 of a-z, 0-9, '_' and '-' (got `{n}`)"),
        ))
    }
}

fn check_numbers(
    text: &str,
    offset: usize,
    max_tokens: u32,
    retries: u32,
    validation_retries: u32,
    timeout_secs: u64,
) -> Result<(), DefinitionError> {
    if max_tokens == 0 || max_tokens > MAX_TOKENS_CAP {
        return Err(at(
            text,
            offset,
            format!("max_tokens is 1 to {MAX_TOKENS_CAP}"),
        ));
    }
    if retries > MAX_RETRIES {
        return Err(at(
            text,
            offset,
            format!("retries is at most {MAX_RETRIES}"),
        ));
    }
    if validation_retries > MAX_VALIDATION_RETRIES {
        return Err(at(
            text,
            offset,
            format!("validation_retries is at most {MAX_VALIDATION_RETRIES}"),
        ));
    }
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
        return Err(at(
            text,
            offset,
            format!("timeout_secs is 1 to {MAX_TIMEOUT_SECS}"),
        ));
    }
    Ok(())
}

/// Checks one stage's fields for its kind and builds it.
fn stage(text: &str, start: usize, s: &RawStage, d: &Defaults) -> Result<Stage, DefinitionError> {
    let name = s.name.get_ref();
    let fail = |m: String| Err(at(text, start, format!("stage `{name}`: {m}")));
    let llm_like = matches!(s.kind, StageKind::Llm | StageKind::Agent);
    let fields: [(&str, bool, bool); 13] = [
        ("commit", s.commit.is_some(), llm_like),
        ("env", !s.env.is_empty(), s.kind == StageKind::Run),
        ("deploy", s.deploy.is_some(), s.kind == StageKind::Run),
        (
            "on_failure",
            !s.on_failure.is_empty(),
            s.kind == StageKind::Agent,
        ),
        (
            "max_rounds",
            s.max_rounds.is_some(),
            !s.on_failure.is_empty(),
        ),
        ("prompt", s.prompt.is_some(), llm_like),
        ("system", s.system.is_some(), llm_like),
        ("schema", s.schema.is_some(), s.kind == StageKind::Llm),
        (
            "artifacts",
            !s.artifacts.is_empty(),
            s.kind == StageKind::Llm,
        ),
        ("command", s.command.is_some(), s.kind == StageKind::Run),
        ("tool", s.tool.is_some(), s.kind == StageKind::Mcp),
        (
            "approver",
            s.approver.is_some(),
            s.kind == StageKind::Approval,
        ),
        (
            "max_turns",
            s.max_turns.is_some(),
            s.kind == StageKind::Agent,
        ),
    ];
    for (field, present, allowed) in fields {
        if present && !allowed {
            return fail(format!("`{field}` does not apply to a `{}` stage", s.kind));
        }
    }
    match s.kind {
        StageKind::Llm | StageKind::Agent if s.prompt.is_none() => {
            return fail("needs a `prompt`".into());
        }
        StageKind::Run if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) => {
            return fail("needs a `command`".into());
        }
        StageKind::Mcp if s.tool.is_none() => return fail("needs a `tool`".into()),
        StageKind::Approval if s.needs.is_empty() => {
            return fail("an approval gate needs the stage it approves".into());
        }
        _ => {}
    }
    if !s.on_failure.is_empty() && !s.needs.is_empty() {
        return fail(
            "a recovery stage (`on_failure`) runs when a stage fails: it has no `needs`".into(),
        );
    }
    if s.max_rounds
        .is_some_and(|r| r == 0 || r > MAX_RECOVERY_ROUNDS)
    {
        return fail(format!("max_rounds is 1 to {MAX_RECOVERY_ROUNDS}"));
    }
    if s.env.len() > 64
        || s.env
            .keys()
            .any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return fail("`env` has at most 64 names of A-Z, a-z, 0-9 and '_'".into());
    }
    if s.schema.is_some() && s.output != OutputKind::Json {
        return fail("`schema` needs `output = \"json\"`".into());
    }
    if s.output == OutputKind::Files && s.artifacts.iter().any(|a| a.template.is_none()) {
        return fail(
            "a `files` stage writes its files; its other artifacts need a template".into(),
        );
    }
    // Templates are checked for syntax now, not when the stage runs.
    let env = minijinja::Environment::new();
    let templates = s
        .prompt
        .iter()
        .map(|p| (p.span().start, p.get_ref().as_str()))
        .chain(s.system.iter().map(|t| (start, t.as_str())))
        .chain(
            s.artifacts
                .iter()
                .filter_map(|a| a.template.as_deref().map(|t| (start, t))),
        )
        .chain(s.env.values().map(|t| (start, t.as_str())))
        .chain(s.deploy.iter().map(|d| (start, d.url.as_str())));
    for (offset, t) in templates {
        if let Err(e) = env.template_from_str(t) {
            return Err(at(text, offset, format!("stage `{name}`: template: {e}")));
        }
    }
    for a in &s.artifacts {
        if let Err(m) = check_artifact_path(&a.path) {
            return fail(m);
        }
    }
    if let Some(dir) = &s.dir
        && let Err(m) = check_artifact_path(dir)
    {
        return fail(m);
    }
    let max_tokens = s.max_tokens.unwrap_or(d.max_tokens);
    let retries = s.retries.unwrap_or(d.retries);
    let validation_retries = s.validation_retries.unwrap_or(d.validation_retries);
    let timeout_secs = s.timeout_secs.unwrap_or(d.timeout_secs);
    check_numbers(
        text,
        start,
        max_tokens,
        retries,
        validation_retries,
        timeout_secs,
    )?;
    if let Some(t) = s.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return fail("temperature is 0 to 2".into());
    }
    Ok(Stage {
        name: name.clone(),
        kind: s.kind,
        needs: s.needs.iter().map(|n| n.get_ref().clone()).collect(),
        system: s.system.clone(),
        prompt: s.prompt.as_ref().map(|p| p.get_ref().clone()),
        output: s.output,
        schema: s.schema.clone(),
        artifacts: s.artifacts.clone(),
        dir: s.dir.clone(),
        model: s.model.clone().or_else(|| d.model.clone()),
        max_tokens,
        temperature: s.temperature,
        retries,
        validation_retries,
        timeout_secs,
        approver: s.approver.unwrap_or(Role::Maintainer),
        command: s.command.clone(),
        tool: s.tool.clone(),
        arguments: s.arguments.clone(),
        max_turns: s.max_turns.unwrap_or(30).min(200),
        commit: s
            .commit
            .unwrap_or(s.kind == StageKind::Agent || s.dir.is_some()),
        env: s.env.clone(),
        deploy: s.deploy.clone(),
        on_failure: s.on_failure.iter().map(|n| n.get_ref().clone()).collect(),
        max_rounds: s.max_rounds.unwrap_or(3),
    })
}

/// An artifact path: relative, `/`-separated, no `..`, at most 200 bytes.
pub fn check_artifact_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= 200
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path.chars().all(|c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{path}` is not a relative path of at most 200 bytes without `..`"
        ))
    }
}

/// Refuses a cycle, naming a stage on it and its line.
fn check_acyclic(text: &str, stages: &[Spanned<RawStage>]) -> Result<(), DefinitionError> {
    let mut indegree: HashMap<&str, usize> = stages
        .iter()
        .map(|s| (s.get_ref().name.get_ref().as_str(), s.get_ref().needs.len()))
        .collect();
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut done = 0;
    while let Some(name) = ready.pop() {
        done += 1;
        for s in stages {
            let s = s.get_ref();
            if s.needs.iter().any(|n| n.get_ref() == name) {
                let n = indegree
                    .get_mut(s.name.get_ref().as_str())
                    .expect("every stage is counted");
                *n -= 1;
                if *n == 0 {
                    ready.push(s.name.get_ref());
                }
            }
        }
    }
    if done == stages.len() {
        return Ok(());
    }
    let on_cycle = stages
        .iter()
        .find(|s| indegree[s.get_ref().name.get_ref().as_str()] > 0)
        .expect("a stage is left when there is a cycle");
    Err(at(
        text,
        on_cycle.span().start,
        format!(
            "the stages' needs form a cycle through `{}`",
            on_cycle.get_ref().name.get_ref()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "docs"

[[stages]]
name = "outline"
kind = "llm"
prompt = "Outline {{ inputs.description }}"
output = "json"
schema = { type = "object", required = ["sections"] }
artifacts = [{ path = "outline.json" }]

[[stages]]
name = "a"
kind = "llm"
needs = ["outline"]
prompt = "A"

[[stages]]
name = "b"
kind = "llm"
needs = ["outline"]
prompt = "B"

[[stages]]
name = "gate"
kind = "approval"
needs = ["a", "b"]
"#;

    #[test]
    fn a_good_definition_parses_with_defaults() {
        let d = Definition::parse(OK).unwrap();
        assert_eq!(d.stages.len(), 4);
        assert_eq!(d.stages[1].needs, ["outline"]);
        assert_eq!(d.stages[0].max_tokens, 4096);
        assert_eq!(d.stages[3].approver, Role::Maintainer);
        assert_eq!(d.downstream("a"), ["a", "gate"]);
        assert_eq!(d.downstream("outline"), ["outline", "a", "b", "gate"]);
        let needs = needs_of(OK);
        assert_eq!(needs["gate"], ["a", "b"]);
        assert!(needs["outline"].is_empty());
    }

    fn err(text: &str) -> String {
        Definition::parse(text).unwrap_err().message
    }

    #[test]
    fn recovery_stages_stay_out_of_the_flow() {
        let base = "name = \"x\"\n[[stages]]\nname = \"qa\"\nkind = \"run\"\ncommand = \"true\"\n\
                    [[stages]]\nname = \"fix\"\nkind = \"agent\"\nprompt = \"p\"\non_failure = [\"qa\"]\n";
        let d = Definition::parse(base).unwrap();
        assert_eq!(d.recovery_for("qa").map(|s| s.max_rounds), Some(3));
        let twice = format!(
            "{base}[[stages]]\nname = \"fix2\"\nkind = \"agent\"\nprompt = \"p\"\non_failure = [\"qa\"]\n"
        );
        assert!(err(&twice).contains("more than one recovery stage"));
        let needs = format!(
            "{base}[[stages]]\nname = \"after\"\nkind = \"run\"\ncommand = \"true\"\nneeds = [\"fix\"]\n"
        );
        assert!(err(&needs).contains("a recovery stage"));
        let unknown = base.replace("on_failure = [\"qa\"]", "on_failure = [\"nope\"]");
        assert!(err(&unknown).contains("not a stage"));
        let with_needs = base.replace("on_failure", "needs = [\"qa\"]\non_failure");
        assert!(err(&with_needs).contains("has no `needs`"));
        let rounds = base.replace(
            "on_failure = [\"qa\"]",
            "on_failure = [\"qa\"]\nmax_rounds = 11",
        );
        assert!(err(&rounds).contains("max_rounds"));
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let m = err("name = \"x\"\n\n[[stages]]\nname = \"a\"\nkind = llm\n");
        assert!(m.contains("line 5"), "{m}");
    }

    #[test]
    fn an_unknown_kind_is_refused_with_its_line() {
        let m = err("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"shell\"\n");
        assert!(m.contains("line 4") && m.contains("shell"), "{m}");
    }

    #[test]
    fn an_unknown_need_is_refused_with_its_line() {
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"nope\"]\n",
        );
        assert!(m.contains("line 6") && m.contains("`nope`"), "{m}");
    }

    #[test]
    fn a_cycle_is_refused_naming_a_stage_on_it() {
        let text = "name = \"x\"\n\
            [[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"b\"]\n\
            [[stages]]\nname = \"b\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"a\"]\n";
        let m = err(text);
        assert!(m.contains("cycle") && m.contains("line "), "{m}");
    }

    #[test]
    fn a_need_named_twice_is_refused_with_its_line() {
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\n\
                     [[stages]]\nname = \"b\"\nkind = \"llm\"\nprompt = \"p\"\nneeds = [\"a\", \"a\"]\n",
        );
        assert!(m.contains("twice") && m.contains("line 10"), "{m}");
    }

    #[test]
    fn fields_that_do_not_fit_the_kind_are_refused() {
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\ncommand = \"ls\"\n",
        );
        assert!(m.contains("`command` does not apply"), "{m}");
        let m = err("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"run\"\n");
        assert!(m.contains("needs a `command`"), "{m}");
        let m = err("name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"{{ x \"\n");
        assert!(m.contains("template") && m.contains("line 5"), "{m}");
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nartifacts = [{ path = \"../x\" }]\n",
        );
        assert!(m.contains("`../x`"), "{m}");
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\nretries = 99\n",
        );
        assert!(m.contains("retries"), "{m}");
        let m = err(
            "name = \"x\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\n[[stages]]\nname = \"a\"\nkind = \"llm\"\nprompt = \"p\"\n",
        );
        assert!(m.contains("twice") && m.contains("line 7"), "{m}");
    }
}
