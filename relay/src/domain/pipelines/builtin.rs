//! The pipelines shipped with the relay: definitions like any other (`relay/pipelines/*.toml`),
//! with no code path of their own.

use std::collections::BTreeMap;

/// The pipeline a run gets when it names none.
pub const DEFAULT: &str = "systemcrafter";

/// The built-in pipelines' names.
pub const NAMES: &[&str] = &["systemcrafter", "feature"];

/// The definition of built-in pipeline `name`, and the prompts it uses besides its own text
/// (none: the built-in prompts are in the definitions).
pub fn get(name: &str) -> Option<(String, BTreeMap<String, String>)> {
    let text = match name {
        "systemcrafter" => include_str!("../../../pipelines/systemcrafter.toml"),
        "feature" => include_str!("../../../pipelines/feature.toml"),
        _ => return None,
    };
    Some((text.to_owned(), BTreeMap::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pipelines::Definition;

    #[test]
    fn every_builtin_pipeline_parses() {
        for name in NAMES {
            let (text, _) = get(name).unwrap();
            let d = Definition::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&d.name, name);
        }
        let d = Definition::parse(&get(DEFAULT).unwrap().0).unwrap();
        let names: Vec<&str> = d.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "requirements",
                "architecture",
                "api",
                "database",
                "backend",
                "frontend",
                "infrastructure",
                "build",
                "qa",
                "deploy",
                "recovery"
            ]
        );
        assert_eq!(
            d.recovery_for("qa").map(|s| s.name.as_str()),
            Some("recovery")
        );
    }
}
