//! The relay's layering, kept true: no door (`api/`, `mcp/`, `gateway/`, `events.rs`, `cli.rs`
//! with its `dev` command) names another door's module, and the domain layer (`domain/`) names
//! no door, nor the doors' shared state (`state`, `AppState`): its services are built with the
//! narrow dependencies they use. What a module names is every `crate::NAME` in its source,
//! `use crate::{…}` groups included.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

const DOORS: &[&str] = &[
    "api",
    "mcp",
    "gateway",
    "events",
    "cli",
    "oauth",
    "llm_door",
    "otlp_door",
    "a2a_door",
];

/// The relay's source files, with the top-level module each belongs to.
fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../relay/src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let first = path
                    .strip_prefix(&root)
                    .unwrap()
                    .components()
                    .next()
                    .unwrap();
                let name = first.as_os_str().to_string_lossy();
                let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
                out.push((path, module));
            }
        }
    }
    out
}

/// The top-level modules `text` names through `crate::`.
fn named(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let after = rest.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // The top-level names of a `use crate::{…}` group.
            let (mut depth, mut item) = (1, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (c == ',' && depth == 1) {
                    out.insert(ident(&item));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            out.insert(ident(after));
        }
    }
    out.remove("");
    out
}

#[test]
fn doors_do_not_reach_into_each_other_and_the_domain_into_none() {
    let mut problems = Vec::new();
    for (path, module) in sources() {
        let is_door = DOORS.contains(&module.as_str());
        if !is_door && module != "domain" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for name in named(&text) {
            if DOORS.contains(&name.as_str()) && name != module {
                problems.push(format!("{} names crate::{name}", path.display()));
            }
            if module == "domain" && name == "state" {
                problems.push(format!("{} takes the doors' whole state", path.display()));
            }
        }
        if module == "domain" && text.contains("AppState") {
            problems.push(format!("{} names AppState", path.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_groups_and_paths() {
    let text = "use crate::{\n    api::{auth, x},\n    state::AppState, // crate::mcp in a comment\n};\nfn f() { crate::gateway::bearer(); }";
    let got: Vec<String> = named(text).into_iter().collect();
    assert_eq!(got, ["api", "gateway", "state"]);
}
