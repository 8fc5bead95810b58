//! Reports over AI activity, from the daily rollups: counts, tokens, cost and latency
//! percentiles per project, user, tool, model, category and day; as JSON, CSV and, per project
//! and period, a Markdown report.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Activities, MAX_LIST};
use crate::{
    domain::{Caller, DomainError, DomainResult, Limit, budgets::micros_to_usd},
    store::{
        Scope,
        activity::{Activity, Dimension, LATENCY_BUCKETS, RollupFilter, RollupRow, bucket_latency},
    },
};

/// Longest period a report covers, days.
const MAX_DAYS: i64 = 366;
/// Most groups a report has.
const MAX_ROWS: usize = 10_000;

/// Which report.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this project's activities.
    #[serde(default)]
    pub project: Option<Uuid>,
    /// Only this user's.
    #[serde(default)]
    pub user: Option<Uuid>,
    /// Only this tool's.
    #[serde(default)]
    pub tool: Option<String>,
    /// Only this model's.
    #[serde(default)]
    pub model: Option<String>,
    /// First day (UTC), inclusive [default: the first of this month].
    #[serde(default)]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive [default: today].
    #[serde(default)]
    pub to: Option<NaiveDate>,
    /// Up to three of day, project, user, tool, model, category, comma-separated [default:
    /// model].
    #[serde(default)]
    pub group_by: Option<String>,
}

/// Figures of a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct Figures {
    /// Activities.
    pub activities: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input tokens served from cache.
    pub cached_tokens: i64,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// Median latency, milliseconds (within about 20%), of those that reported one.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, milliseconds (within about 20%).
    pub latency_p95_ms: Option<f64>,
}

/// What a group is: the values of the dimensions grouped by.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
pub struct GroupKey {
    /// The day, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// The project (absent for the group of activities without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<Uuid>,
    /// The project's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// The user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Uuid>,
    /// The user's e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_email: Option<String>,
    /// The tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The model (empty: not reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The category (empty: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// One group of a report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct ReportRow {
    /// The group.
    pub key: GroupKey,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// A report over a period.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
pub struct Report {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The dimensions grouped by.
    pub group_by: Vec<Dimension>,
    /// The groups: by day first when grouped by day, else by cost, highest first.
    pub rows: Vec<ReportRow>,
    /// Everything in the report.
    pub total: Figures,
}

/// Sums rows into figures with percentiles.
#[derive(Default)]
struct Acc {
    figures: Figures,
    cost_micros: i64,
    buckets: [i64; LATENCY_BUCKETS],
}

impl Acc {
    fn add(&mut self, r: &RollupRow) {
        let f = &mut self.figures;
        f.activities += r.activities;
        f.input_tokens += r.input_tokens;
        f.output_tokens += r.output_tokens;
        f.cached_tokens += r.cached_tokens;
        self.cost_micros += r.cost_micros;
        for (b, n) in self.buckets.iter_mut().zip(r.latency) {
            *b += n;
        }
    }

    fn finish(mut self) -> Figures {
        self.figures.cost_usd = micros_to_usd(self.cost_micros);
        let n: i64 = self.buckets.iter().sum();
        let pct = |q: f64| {
            let rank = ((n as f64) * q).ceil().max(1.0) as i64;
            let mut seen = 0;
            for (b, c) in self.buckets.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Some((bucket_latency(b as i32) * 10.0).round() / 10.0);
                }
            }
            None
        };
        if n > 0 {
            self.figures.latency_p50_ms = pct(0.50);
            self.figures.latency_p95_ms = pct(0.95);
        }
        self.figures
    }
}

/// Parses `group_by`.
fn dimensions(text: Option<&str>) -> DomainResult<Vec<Dimension>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(vec![Dimension::Model]);
    };
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim) {
        let d = Dimension::parse(name).ok_or_else(|| {
            DomainError::Invalid(format!(
                "group_by: unknown dimension {name:?}; use day, project, user, tool, model or category"
            ))
        })?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.len() > 3 {
        return Err(DomainError::Invalid(
            "group_by names at most three dimensions".into(),
        ));
    }
    Ok(out)
}

/// The period: `from` to `to`, defaulting to this month so far.
pub fn period(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> DomainResult<(NaiveDate, NaiveDate)> {
    let today = Utc::now().date_naive();
    let to = to.unwrap_or(today);
    let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    if from > to {
        return Err(DomainError::Invalid("from is after to".into()));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(DomainError::Invalid(format!(
            "a report covers at most {MAX_DAYS} days"
        )));
    }
    Ok((from, to))
}

impl Activities {
    /// A report over what the caller may see.
    pub async fn report(&self, caller: Caller, q: ReportQuery) -> DomainResult<Report> {
        caller.need(Scope::Read)?;
        let group_by = dimensions(q.group_by.as_deref())?;
        let (from, to) = period(q.from, q.to)?;
        let reachable = self.projects.reachable(caller).await?;
        let names: HashMap<Uuid, String> =
            reachable.iter().map(|p| (p.id, p.name.clone())).collect();
        let mut project = q.project;
        if let Some(p) = project
            && !names.contains_key(&p)
        {
            return Err(DomainError::NotFound("project"));
        }
        let mut user = caller.user;
        match caller.grant.limit {
            Limit::None => {}
            Limit::Project(p) => project = Some(p),
            // A workspace token sees its projects' activities only.
            Limit::Workspace(_) => user = Uuid::nil(),
        }
        let filter = RollupFilter {
            from_day: from.to_string(),
            to_day: to.to_string(),
            user,
            projects: names.keys().copied().collect(),
            project,
            only_user: q.user,
            tool: q.tool.map(|t| t.trim().to_ascii_lowercase()),
            model: q.model,
            group_by: group_by.clone(),
        };
        let rows = self.store.rollup_report(&filter).await?;
        let mut groups: HashMap<Vec<String>, Acc> = HashMap::new();
        let mut total = Acc::default();
        for r in &rows {
            total.add(r);
            groups.entry(r.key.clone()).or_default().add(r);
        }
        if groups.len() > MAX_ROWS {
            return Err(DomainError::Invalid(format!(
                "the report has {} groups, over {MAX_ROWS}: group by fewer dimensions or a shorter period",
                groups.len()
            )));
        }
        let mut emails: HashMap<Uuid, String> = HashMap::new();
        let mut out = Vec::with_capacity(groups.len());
        for (values, acc) in groups {
            let mut key = GroupKey::default();
            for (d, v) in group_by.iter().zip(values) {
                match d {
                    Dimension::Day => key.day = Some(v),
                    Dimension::Project => {
                        let id = Uuid::parse_str(&v).ok().filter(|u| !u.is_nil());
                        key.project_name = id.and_then(|i| names.get(&i).cloned());
                        key.project = id;
                    }
                    Dimension::User => {
                        let id = Uuid::parse_str(&v).ok();
                        if let Some(id) = id {
                            if !emails.contains_key(&id)
                                && let Some(u) = self.store.user_by_id(id).await?
                            {
                                emails.insert(id, u.email);
                            }
                            key.user_email = emails.get(&id).cloned();
                        }
                        key.user = id;
                    }
                    Dimension::Tool => key.tool = Some(v),
                    Dimension::Model => key.model = Some(v),
                    Dimension::Category => key.category = Some(v),
                }
            }
            out.push(ReportRow {
                key,
                figures: acc.finish(),
            });
        }
        if group_by.first() == Some(&Dimension::Day) {
            out.sort_by(|a, b| {
                a.key
                    .cmp(&b.key)
                    .then(b.figures.cost_usd.total_cmp(&a.figures.cost_usd))
            });
        } else {
            out.sort_by(|a, b| {
                b.figures
                    .cost_usd
                    .total_cmp(&a.figures.cost_usd)
                    .then(a.key.cmp(&b.key))
            });
        }
        Ok(Report {
            from,
            to,
            group_by,
            rows: out,
            total: total.finish(),
        })
    }

    /// Recent activities that changed code, newest first.
    pub async fn recent_changes(
        &self,
        caller: Caller,
        project: Option<Uuid>,
        limit: u32,
    ) -> DomainResult<Vec<Activity>> {
        self.list(
            caller,
            super::ActivityQuery {
                project,
                with_changes: Some(true),
                limit: Some(limit.min(MAX_LIST)),
                ..Default::default()
            },
        )
        .await
    }

    /// A project's report for a period, as Markdown: totals, then cost and use by model,
    /// tool, category, user and day, then the AI-assisted changes.
    pub async fn project_markdown(
        &self,
        caller: Caller,
        project: Uuid,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> DomainResult<String> {
        let p = self.projects.visible(caller, project).await?;
        let (from, to) = period(from, to)?;
        let by = |dims: &str| ReportQuery {
            project: Some(project),
            from: Some(from),
            to: Some(to),
            group_by: Some(dims.into()),
            ..Default::default()
        };
        let mut md = String::new();
        md.push_str(&format!(
            "# AI activity: {}\n\n{} to {} (UTC)\n\n",
            escape(&p.name),
            from,
            to
        ));
        let total = self.report(caller, by("model")).await?;
        let t = &total.total;
        md.push_str("| activities | input tokens | output tokens | cached tokens | cost | latency p50 | latency p95 |\n|---:|---:|---:|---:|---:|---:|---:|\n");
        md.push_str(&format!(
            "| {} | {} | {} | {} | ${:.4} | {} | {} |\n\n",
            t.activities,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cost_usd,
            ms(t.latency_p50_ms),
            ms(t.latency_p95_ms)
        ));
        for (title, dims) in [
            ("By model", "model"),
            ("By tool", "tool"),
            ("By category", "category"),
            ("By user", "user"),
            ("By day", "day"),
        ] {
            let r = if dims == "model" {
                total.clone()
            } else {
                self.report(caller, by(dims)).await?
            };
            md.push_str(&format!("## {title}\n\n"));
            if r.rows.is_empty() {
                md.push_str("No activity.\n\n");
                continue;
            }
            md.push_str(&format!(
                "| {dims} | activities | tokens in | tokens out | cost | p50 | p95 |\n|---|---:|---:|---:|---:|---:|---:|\n"
            ));
            for row in &r.rows {
                let f = &row.figures;
                md.push_str(&format!(
                    "| {} | {} | {} | {} | ${:.4} | {} | {} |\n",
                    escape(&label(&row.key)),
                    f.activities,
                    f.input_tokens,
                    f.output_tokens,
                    f.cost_usd,
                    ms(f.latency_p50_ms),
                    ms(f.latency_p95_ms)
                ));
            }
            md.push('\n');
        }
        let start = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let end = to
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let changes = self
            .store
            .list_activities(&crate::store::activity::ActivityFilter {
                user: caller.user,
                projects: vec![p.id],
                project: Some(p.id),
                tool: None,
                with_changes: true,
                before: end,
                since: start,
                limit: 50,
            })
            .await?;
        md.push_str("## AI-assisted changes\n\n");
        let in_period: Vec<&Activity> = changes
            .iter()
            .filter(|a| {
                let d = a.occurred_at.date_naive();
                d >= from && d <= to
            })
            .collect();
        if in_period.is_empty() {
            md.push_str("None recorded.\n");
        }
        for a in in_period {
            let files: Vec<String> = a
                .code_changes
                .0
                .iter()
                .take(10)
                .map(|c| match &c.commit {
                    Some(sha) => format!("`{}` ({})", escape(&c.path), &sha[..sha.len().min(12)]),
                    None => format!("`{}`", escape(&c.path)),
                })
                .collect();
            md.push_str(&format!(
                "- {} {}{}: {}\n",
                a.occurred_at.format("%Y-%m-%d %H:%M"),
                escape(&a.tool),
                a.model
                    .as_deref()
                    .map(|m| format!(" ({})", escape(m)))
                    .unwrap_or_default(),
                files.join(", ")
            ));
        }
        Ok(md)
    }
}

/// A group's name in one cell.
fn label(k: &GroupKey) -> String {
    let parts: Vec<String> = [
        k.day.clone(),
        k.project_name
            .clone()
            .or_else(|| k.project.map(|p| p.to_string())),
        k.user_email
            .clone()
            .or_else(|| k.user.map(|u| u.to_string())),
        k.tool.clone(),
        k.model.clone(),
        k.category.clone(),
    ]
    .into_iter()
    .flatten()
    .map(|s| if s.is_empty() { "(none)".into() } else { s })
    .collect();
    parts.join(" / ")
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0} ms"))
}

/// Text safe inside a Markdown table cell.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('`', "'")
}

/// A report as CSV: one line per group, its dimensions first.
pub fn csv(report: &Report) -> Result<String, DomainError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = Vec::new();
    for d in &report.group_by {
        header.push(d.as_str());
        match d {
            Dimension::Project => header.push("project_name"),
            Dimension::User => header.push("user_email"),
            _ => {}
        }
    }
    header.extend([
        "activities",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
        "latency_p50_ms",
        "latency_p95_ms",
    ]);
    let internal = |e: ::csv::Error| DomainError::Internal(e.to_string());
    w.write_record(&header).map_err(internal)?;
    for row in &report.rows {
        let k = &row.key;
        let mut rec: Vec<String> = Vec::new();
        for d in &report.group_by {
            match d {
                Dimension::Day => rec.push(k.day.clone().unwrap_or_default()),
                Dimension::Project => {
                    rec.push(k.project.map(|p| p.to_string()).unwrap_or_default());
                    rec.push(k.project_name.clone().unwrap_or_default());
                }
                Dimension::User => {
                    rec.push(k.user.map(|p| p.to_string()).unwrap_or_default());
                    rec.push(k.user_email.clone().unwrap_or_default());
                }
                Dimension::Tool => rec.push(k.tool.clone().unwrap_or_default()),
                Dimension::Model => rec.push(k.model.clone().unwrap_or_default()),
                Dimension::Category => rec.push(k.category.clone().unwrap_or_default()),
            }
        }
        let f = &row.figures;
        rec.extend([
            f.activities.to_string(),
            f.input_tokens.to_string(),
            f.output_tokens.to_string(),
            f.cached_tokens.to_string(),
            format!("{:.6}", f.cost_usd),
            f.latency_p50_ms.map(|v| v.to_string()).unwrap_or_default(),
            f.latency_p95_ms.map(|v| v.to_string()).unwrap_or_default(),
        ]);
        w.write_record(&rec).map_err(internal)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| DomainError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut acc = Acc::default();
        for (ms, n) in [(100, 50), (1000, 45), (10_000, 5)] {
            let mut latency = [0; LATENCY_BUCKETS];
            latency[crate::store::activity::latency_bucket(Some(ms)) as usize] = n;
            acc.add(&RollupRow {
                latency,
                activities: n,
                cost_micros: 10,
                ..Default::default()
            });
        }
        let f = acc.finish();
        assert_eq!(f.activities, 100);
        let p50 = f.latency_p50_ms.unwrap();
        let p95 = f.latency_p95_ms.unwrap();
        assert!((80.0..120.0).contains(&p50), "{p50}");
        assert!((800.0..1200.0).contains(&p95), "{p95}");
    }

    #[test]
    fn group_by_is_checked() {
        assert_eq!(dimensions(None).unwrap(), vec![Dimension::Model]);
        assert_eq!(
            dimensions(Some("day, model")).unwrap(),
            vec![Dimension::Day, Dimension::Model]
        );
        assert!(dimensions(Some("day,password")).is_err());
        assert!(dimensions(Some("day,model,tool,user")).is_err());
    }
}
