//! What calls cost: a table of prices per model, in US dollars per million tokens, from the
//! `[llm.prices]` section of the configuration and, when set, a prices file that is read again
//! whenever it changes (so prices can be updated without a release or a restart).
//!
//! ```toml
//! [llm.prices."gpt-4.1"]
//! input = 2.0          # per million input tokens
//! output = 8.0         # per million output tokens
//! cached_input = 0.5   # per million cached input tokens [default: input]
//!
//! [llm.prices."claude-sonnet-*"]   # a trailing * matches every model with this prefix
//! input = 3.0
//! output = 15.0
//! ```
//!
//! A model with no price costs nothing (a local model, say); its tokens are still counted.
//! Costs are kept in micro-dollars (millionths of a dollar), as integers.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use serde::Deserialize;

use super::Usage;

/// One model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million cached input tokens [default: `input`].
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// The cost of `usage`, in micro-dollars (a dollar per million tokens is a micro-dollar per
    /// token).
    pub fn cost_micros(&self, usage: &Usage) -> i64 {
        let cached = usage.cached_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        let micros = fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.output_tokens as f64 * self.output;
        micros.ceil().clamp(0.0, i64::MAX as f64) as i64
    }
}

/// Prices by model name; a key ending in `*` matches by prefix (the longest match wins).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    /// The price of `model`, if the table has one.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.0.get(model) {
            return Some(*p);
        }
        self.0
            .iter()
            .filter_map(|(k, p)| {
                let prefix = k.strip_suffix('*')?;
                model.starts_with(prefix).then_some((prefix.len(), *p))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
    }

    /// What `usage` of `model` costs, in micro-dollars (0 for an unpriced model).
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> i64 {
        self.price(model).map_or(0, |p| p.cost_micros(usage))
    }

    fn check(&self) -> Result<(), String> {
        for (model, p) in &self.0 {
            let all = [p.input, p.output, p.cached_input.unwrap_or(0.0)];
            if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!("the price of {model} must be a number ≥ 0"));
            }
        }
        Ok(())
    }
}

/// The prices in force: the configured table, overlaid by the prices file when there is one.
#[derive(Debug)]
pub struct Prices {
    base: PriceTable,
    file: Option<PathBuf>,
    cached: Mutex<Cached>,
}

#[derive(Debug)]
struct Cached {
    table: PriceTable,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

/// How often the prices file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(5);

impl Prices {
    /// The configured table, and the file read over it when set. A bad file fails here, at
    /// start; a bad edit later is logged and the last good table kept.
    pub fn new(base: PriceTable, file: Option<PathBuf>) -> Result<Self, String> {
        base.check()?;
        let prices = Self {
            cached: Mutex::new(Cached {
                table: base.clone(),
                modified: None,
                checked: None,
            }),
            base,
            file,
        };
        if let Some(path) = &prices.file {
            let file = read_file(path)?;
            let mut c = prices.cached.lock().expect("prices lock");
            c.table.0.extend(file.0);
            c.modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        }
        Ok(prices)
    }

    /// The table now (the file read again when it changed).
    pub fn table(&self) -> PriceTable {
        let mut c = self.cached.lock().expect("prices lock");
        if let Some(path) = &self.file
            && c.checked.is_none_or(|t| t.elapsed() >= RECHECK)
        {
            c.checked = Some(Instant::now());
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified != c.modified {
                c.modified = modified;
                match read_file(path) {
                    Ok(file) => {
                        let mut table = self.base.clone();
                        table.0.extend(file.0);
                        c.table = table;
                        tracing::info!(path = %path.display(), "prices file read again");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "prices file not read; the last prices stay");
                    }
                }
            }
        }
        c.table.clone()
    }
}

fn read_file(path: &std::path::Path) -> Result<PriceTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the prices file {}: {e}", path.display()))?;
    let table: PriceTable =
        toml::from_str(&text).map_err(|e| format!("the prices file {}: {e}", path.display()))?;
    table.check()?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_by_name_then_longest_prefix() {
        let t: PriceTable = toml::from_str(
            r#"
            "gpt-4.1" = { input = 2.0, output = 8.0, cached_input = 0.5 }
            "gpt-*" = { input = 1.0, output = 1.0 }
            "gpt-4*" = { input = 3.0, output = 3.0 }
            "#,
        )
        .unwrap();
        let u = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_tokens: 400,
            estimated: false,
        };
        // 600 × 2 + 400 × 0.5 + 100 × 8 micro-dollars.
        assert_eq!(t.cost_micros("gpt-4.1", &u), 2200);
        assert_eq!(t.price("gpt-4o").unwrap().input, 3.0);
        assert_eq!(t.price("gpt-3.5").unwrap().input, 1.0);
        assert_eq!(t.cost_micros("llama3", &u), 0);
    }
}
