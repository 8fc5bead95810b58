//! Pipelines a repository defines, read from the project's workspace when a run starts:
//! `[pipelines.<name>]` tables in the repository's `fulcrum.toml` (each a definition without
//! its `name`), and prompt overrides in `.fulcrum/prompts/<stage>.md`, which replace the
//! `prompt` of the stage of that name in whichever pipeline runs (a built-in one too). The run
//! keeps the definition exactly as it ran, overrides applied, and records its hash with the
//! prompts it took from files.
//!
//! Reading is through the same workspace tools as every other door, as the user who starts
//! the run; a workspace that is offline or refuses simply has nothing to say.

use std::{collections::BTreeMap, time::Duration};

use fulcrum_protocol::{
    tool_args::{ListDirectoryArgs, ReadFileArgs},
    tools::{ToolCall, ToolTarget},
};
use uuid::Uuid;

use crate::domain::{Caller, DomainError, DomainResult, tasks::Tasks, workspaces::Workspaces};

/// How long one read in the workspace may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most prompt files read.
const MAX_PROMPT_FILES: usize = 64;
/// Largest prompt file taken.
const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// What a repository says about pipelines.
#[derive(Debug, Default)]
pub(super) struct FromRepo {
    /// Definitions by name (TOML text, `name` included).
    pub pipelines: BTreeMap<String, String>,
    /// Prompt overrides by stage name.
    pub prompts: BTreeMap<String, String>,
    /// Why the repository could not be read, if it could not.
    pub unreadable: Option<String>,
}

fn join(repo: &str, path: &str) -> String {
    if repo == "." {
        path.to_owned()
    } else {
        format!("{repo}/{path}")
    }
}

async fn read(
    workspaces: &Workspaces,
    caller: Caller,
    ws: Uuid,
    tool: &str,
    args: String,
) -> DomainResult<Result<String, String>> {
    let call = ToolCall {
        target: ToolTarget::Builtin(tool.into()),
        args_json: args,
        may_write: false,
    };
    let out = workspaces.call_tool(caller, ws, call, READ_TIMEOUT).await?;
    Ok(if out.is_error {
        Err(out.text)
    } else {
        Ok(out.text)
    })
}

/// Reads the pipelines and prompt overrides of the repository at `repo` in one of the
/// project's online workspaces.
pub(super) async fn read_repo(
    workspaces: &Workspaces,
    tasks: &Tasks,
    caller: Caller,
    project: Uuid,
    repo: &str,
) -> FromRepo {
    let mut out = FromRepo::default();
    let ws = match tasks.workspace_for(caller, project, None).await {
        Ok(ws) => ws,
        Err(e) => {
            out.unreadable = Some(e.to_string());
            return out;
        }
    };
    let args = |path: String| {
        serde_json::to_string(&ReadFileArgs {
            path,
            head: None,
            tail: None,
            offset: None,
            length: None,
        })
        .unwrap_or_default()
    };
    match read(
        workspaces,
        caller,
        ws,
        "read_file",
        args(join(repo, "fulcrum.toml")),
    )
    .await
    {
        Ok(Ok(text)) => match pipelines_of(&text) {
            Ok(p) => out.pipelines = p,
            Err(e) => out.unreadable = Some(format!("fulcrum.toml: {e}")),
        },
        Ok(Err(_)) => {}
        Err(e) => {
            out.unreadable = Some(e.to_string());
            return out;
        }
    }
    let dir = join(repo, ".fulcrum/prompts");
    let listing =
        serde_json::to_string(&ListDirectoryArgs { path: dir.clone() }).unwrap_or_default();
    if let Ok(Ok(list)) = read(workspaces, caller, ws, "list_directory", listing).await {
        let files = list
            .lines()
            .filter_map(|l| l.strip_prefix("[FILE] "))
            .filter_map(|f| f.strip_suffix(".md").map(|stage| (f, stage)))
            .take(MAX_PROMPT_FILES);
        for (file, stage) in files {
            if let Ok(Ok(text)) = read(
                workspaces,
                caller,
                ws,
                "read_file",
                args(format!("{dir}/{file}")),
            )
            .await
                && text.len() <= MAX_PROMPT_BYTES
                && !text.contains("[… cut:")
            {
                out.prompts.insert(stage.to_owned(), text);
            }
        }
    }
    out
}

/// The `[pipelines.<name>]` tables of a `fulcrum.toml`, each as a definition's text.
pub(super) fn pipelines_of(text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut out = BTreeMap::new();
    let Some(pipelines) = table.get("pipelines") else {
        return Ok(out);
    };
    let Some(pipelines) = pipelines.as_table() else {
        return Err("`pipelines` is a table of pipelines by name".into());
    };
    for (name, def) in pipelines {
        let Some(def) = def.as_table() else {
            return Err(format!("`pipelines.{name}` is not a table"));
        };
        let mut def = def.clone();
        def.insert("name".into(), toml::Value::String(name.clone()));
        let text = toml::to_string(&def).map_err(|e| e.to_string())?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

/// The definition with the prompts of the stages named in `prompts` replaced; unchanged when
/// none of them is a stage of it. The prompts taken come back with it.
pub(super) fn with_prompts(
    text: &str,
    prompts: &BTreeMap<String, String>,
) -> DomainResult<(String, BTreeMap<String, String>)> {
    if prompts.is_empty() {
        return Ok((text.to_owned(), BTreeMap::new()));
    }
    let mut table: toml::Table = toml::from_str(text)
        .map_err(|e| DomainError::Invalid(format!("the pipeline definition: {e}")))?;
    let mut taken = BTreeMap::new();
    if let Some(toml::Value::Array(stages)) = table.get_mut("stages") {
        for stage in stages.iter_mut().filter_map(toml::Value::as_table_mut) {
            let Some(name) = stage
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
            else {
                continue;
            };
            if let Some(p) = prompts.get(&name)
                && stage.contains_key("prompt")
            {
                stage.insert("prompt".into(), toml::Value::String(p.clone()));
                taken.insert(name, p.clone());
            }
        }
    }
    if taken.is_empty() {
        return Ok((text.to_owned(), taken));
    }
    let text = toml::to_string(&table).map_err(|e| DomainError::Internal(e.to_string()))?;
    Ok((text, taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_pipelines_and_prompt_overrides_read_as_definitions() {
        let toml = "[qa]\nsteps = []\n\n[pipelines.hello]\ndescription = \"d\"\n[[pipelines.hello.stages]]\nname = \"greet\"\nkind = \"llm\"\nprompt = \"hi\"\n";
        let p = pipelines_of(toml).unwrap();
        let d = super::super::Definition::parse(&p["hello"]).unwrap();
        assert_eq!(d.name, "hello");
        assert_eq!(d.stages[0].prompt.as_deref(), Some("hi"));
        let prompts = BTreeMap::from([
            ("greet".to_owned(), "HELLO {{ inputs.name }}".to_owned()),
            ("other".into(), "x".into()),
        ]);
        let (text, taken) = with_prompts(&p["hello"], &prompts).unwrap();
        let d = super::super::Definition::parse(&text).unwrap();
        assert_eq!(
            d.stages[0].prompt.as_deref(),
            Some("HELLO {{ inputs.name }}")
        );
        assert_eq!(taken.keys().collect::<Vec<_>>(), ["greet"]);
        assert!(pipelines_of("pipelines = 3").is_err());
        assert!(pipelines_of("[pipelines]\nx = 1").is_err());
        assert!(pipelines_of("not toml =").is_err());
        assert!(pipelines_of("[qa]").unwrap().is_empty());
    }
}
