//! OTLP over HTTP into activities: GenAI spans (and GenAI events, as log records) become
//! activities; metrics become usage counters per tool and model. Protobuf and JSON bodies are
//! decoded with the OpenTelemetry project's own generated types (`opentelemetry-proto`).
//!
//! What is read, current semantic convention names first and the older ones still exported by
//! tools and instrumentation libraries after them:
//! - model: `gen_ai.response.model`, `gen_ai.request.model`, `llm.request.model`, `model`;
//! - provider: `gen_ai.provider.name`, `gen_ai.system`;
//! - tokens: `gen_ai.usage.input_tokens` / `gen_ai.usage.prompt_tokens` /
//!   `llm.usage.prompt_tokens` / `input_tokens` / `input_token_count`, the same for output
//!   (`output_tokens`, `completion_tokens`, `output_token_count`), cached
//!   (`gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cached_tokens`, `cache_read_tokens`);
//! - cost: `gen_ai.usage.cost`, `cost_usd`, else the price table;
//! - text: `gen_ai.input.messages` / `gen_ai.prompt` / `gen_ai.prompt.0.content`, and
//!   `gen_ai.output.messages` / `gen_ai.completion` / `gen_ai.completion.0.content`;
//! - the rest: `gen_ai.operation.name`, `gen_ai.response.id`, `gen_ai.response.finish_reasons`,
//!   `gen_ai.conversation.id` (or `session.id`), and Fulcrum's own `fulcrum.project`,
//!   `fulcrum.tool`, `fulcrum.category`;
//! - the tool: `fulcrum.tool`, else the resource's `service.name`.
//!
//! A span is an activity when it names a model and is not a tool execution
//! (`gen_ai.operation.name = execute_tool`); a log record when its event name is a GenAI one
//! (`gen_ai.*`) or an API request event of a coding tool (`claude_code.api_request`,
//! `codex.api_request`, …) and it names a model. Spans are idempotent by trace and span id,
//! log records by their content, so an exporter's retry of traces or logs changes nothing.
//! A metric series keeps its latest total (cumulative temporality, also idempotent) or the sum
//! of its deltas (delta temporality: a retried export adds its points again).

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, KeyValue, any_value::Value as V},
    metrics::v1::{metric::Data, number_data_point::Value as Num},
};
use serde::Serialize;

/// Most activities or counter points one request may carry.
pub const MAX_ITEMS: usize = 10_000;
/// Largest OTLP body.
pub const MAX_BODY: usize = 16 << 20;

/// The three signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `/otlp/v1/traces`.
    Traces,
    /// `/otlp/v1/logs`.
    Logs,
    /// `/otlp/v1/metrics`.
    Metrics,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// An attribute value, flattened.
#[derive(Debug, Clone)]
pub enum Attr {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A list or map, as JSON text.
    Json(String),
}

impl Attr {
    fn text(&self) -> String {
        match self {
            Self::Str(s) | Self::Json(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn any_json(v: &AnyValue) -> serde_json::Value {
    match &v.value {
        Some(V::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(V::IntValue(i)) => (*i).into(),
        Some(V::DoubleValue(f)) => (*f).into(),
        Some(V::BoolValue(b)) => (*b).into(),
        Some(V::ArrayValue(a)) => a.values.iter().map(any_json).collect(),
        Some(V::KvlistValue(kv)) => kv
            .values
            .iter()
            .map(|k| {
                (
                    k.key.clone(),
                    k.value.as_ref().map_or(serde_json::Value::Null, any_json),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Some(V::BytesValue(_)) | None => serde_json::Value::Null,
        #[allow(unreachable_patterns)]
        _ => serde_json::Value::Null,
    }
}

fn attr(v: &AnyValue) -> Option<Attr> {
    Some(match v.value.as_ref()? {
        V::StringValue(s) => Attr::Str(s.clone()),
        V::IntValue(i) => Attr::Int(*i),
        V::DoubleValue(f) => Attr::Float(*f),
        V::BoolValue(b) => Attr::Bool(*b),
        V::ArrayValue(_) | V::KvlistValue(_) => Attr::Json(any_json(v).to_string()),
        _ => return None,
    })
}

/// Attributes by name: the resource's, then the record's over them.
#[derive(Debug, Default, Clone)]
pub struct Attrs(HashMap<String, Attr>);

impl Attrs {
    fn add(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            if let Some(a) = kv.value.as_ref().and_then(attr) {
                self.0.insert(kv.key.clone(), a);
            }
        }
    }

    fn with(&self, kvs: &[KeyValue]) -> Self {
        let mut a = self.clone();
        a.add(kvs);
        a
    }

    /// The first of `names` present, as text.
    pub fn text(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|n| self.0.get(*n))
            .map(Attr::text)
            .filter(|s| !s.is_empty())
    }

    /// The first of `names` present, as a number.
    pub fn number(&self, names: &[&str]) -> Option<f64> {
        names.iter().find_map(|n| self.0.get(*n)?.number())
    }
}

/// A GenAI record read from OTLP, before it is checked and stored.
#[derive(Debug, Clone, Default)]
pub struct OtlpActivity {
    /// Its idempotency key.
    pub client_id: String,
    /// `fulcrum.project`: a project id or name.
    pub project: Option<String>,
    /// The tool.
    pub tool: String,
    /// `fulcrum.category`.
    pub category: Option<String>,
    /// The provider.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// The operation.
    pub operation: Option<String>,
    /// Tokens.
    pub input_tokens: u64,
    /// Tokens.
    pub output_tokens: u64,
    /// Tokens.
    pub cached_tokens: u64,
    /// Cost, if the record carried one.
    pub cost_usd: Option<f64>,
    /// Latency.
    pub latency_ms: Option<u64>,
    /// Why it ended.
    pub finish_reason: Option<String>,
    /// The conversation.
    pub conversation_id: Option<String>,
    /// The prompt.
    pub prompt: Option<String>,
    /// The response.
    pub response: Option<String>,
    /// When.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A usage counter point read from OTLP metrics.
#[derive(Debug, Clone, Serialize)]
pub struct CounterPoint {
    /// Identifies the series (metric, resource and point attributes, start time).
    pub series: String,
    /// `fulcrum.project`.
    pub project: Option<String>,
    /// The tool.
    pub tool: String,
    /// The model (empty when the point names none).
    pub model: String,
    /// The metric's name.
    pub metric: String,
    /// What it counts (`input`, `output`, `cacheRead`, … from `gen_ai.token.type` or `type`).
    pub kind: String,
    /// Its value (a cumulative total, or a delta).
    pub value: f64,
    /// Whether `value` is a delta to add (else the series' total so far).
    pub delta: bool,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// Not a valid message of its signal.
    #[error("the body is not a valid OTLP {0} request: {1}")]
    Malformed(&'static str, String),
    /// Too many records.
    #[error("the request holds more than {MAX_ITEMS} GenAI records; export in smaller batches")]
    TooMany,
}

const MODEL: &[&str] = &[
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.request.model",
    "model",
];
const PROVIDER: &[&str] = &["gen_ai.provider.name", "gen_ai.system", "llm.vendor"];
const INPUT: &[&str] = &[
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "input_tokens",
    "input_token_count",
];
const OUTPUT: &[&str] = &[
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "output_tokens",
    "output_token_count",
];
const CACHED: &[&str] = &[
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cached_tokens",
    "cache_read_tokens",
    "cached_token_count",
];
const PROMPT: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.prompt",
    "gen_ai.prompt.0.content",
    "llm.prompts.0.content",
    "prompt",
];
const RESPONSE: &[&str] = &[
    "gen_ai.output.messages",
    "gen_ai.completion",
    "gen_ai.completion.0.content",
    "llm.completions.0.content",
];

fn time(nanos: u64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| Utc.timestamp_nanos(nanos.min(i64::MAX as u64) as i64))
}

fn tokens(a: &Attrs, names: &[&str]) -> u64 {
    a.number(names)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map_or(0, |n| n as u64)
}

fn tool_of(a: &Attrs) -> String {
    a.text(&["fulcrum.tool", "service.name"])
        .unwrap_or_else(|| "otlp".into())
}

/// What a record's attributes say, given it is a GenAI record.
fn activity(a: &Attrs, client_id: String) -> OtlpActivity {
    OtlpActivity {
        client_id,
        project: a.text(&["fulcrum.project"]),
        tool: tool_of(a),
        category: a.text(&["fulcrum.category"]),
        provider: a.text(PROVIDER),
        model: a.text(MODEL),
        operation: a.text(&["gen_ai.operation.name"]),
        input_tokens: tokens(a, INPUT),
        output_tokens: tokens(a, OUTPUT),
        cached_tokens: tokens(a, CACHED),
        cost_usd: a.number(&["gen_ai.usage.cost", "cost_usd"]),
        latency_ms: a
            .number(&["duration_ms"])
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n as u64),
        finish_reason: a
            .text(&["gen_ai.response.finish_reasons", "finish_reason"])
            .map(|r| {
                // A list arrives as JSON text: its first reason.
                serde_json::from_str::<Vec<String>>(&r)
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or(r)
            }),
        conversation_id: a.text(&["gen_ai.conversation.id", "session.id", "conversation.id"]),
        prompt: a.text(PROMPT),
        response: a.text(RESPONSE),
        occurred_at: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    crate::auth::hex(bytes)
}

/// Decodes a request body of `signal`.
fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    what: &'static str,
    encoding: Encoding,
    body: &[u8],
) -> Result<T, OtlpError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| OtlpError::Malformed(what, e.to_string()))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| OtlpError::Malformed(what, e.to_string()))
        }
    }
}

/// The GenAI activities of a traces request.
pub fn traces(encoding: Encoding, body: &[u8]) -> Result<Vec<OtlpActivity>, OtlpError> {
    let req: ExportTraceServiceRequest = decode("traces", encoding, body)?;
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let mut base = Attrs::default();
        if let Some(r) = &rs.resource {
            base.add(&r.attributes);
        }
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let a = base.with(&span.attributes);
                let op = a.text(&["gen_ai.operation.name"]);
                if a.text(MODEL).is_none() || op.as_deref() == Some("execute_tool") {
                    continue;
                }
                let mut act = activity(
                    &a,
                    format!("otlp:{}:{}", hex(&span.trace_id), hex(&span.span_id)),
                );
                // Text carried on the span's events (the older GenAI events).
                for e in &span.events {
                    let ea = Attrs::default().with(&e.attributes);
                    match e.name.as_str() {
                        "gen_ai.user.message" | "gen_ai.content.prompt" if act.prompt.is_none() => {
                            act.prompt = ea.text(&["content", "gen_ai.prompt"]);
                        }
                        "gen_ai.choice" | "gen_ai.content.completion" if act.response.is_none() => {
                            act.response = ea.text(&["message", "content", "gen_ai.completion"]);
                        }
                        _ => {}
                    }
                }
                let start = time(span.start_time_unix_nano);
                let end = time(span.end_time_unix_nano);
                act.occurred_at = start.or(end);
                if act.latency_ms.is_none()
                    && let (Some(s), Some(e)) = (start, end)
                {
                    act.latency_ms = Some((e - s).num_milliseconds().max(0) as u64);
                }
                out.push(act);
                if out.len() > MAX_ITEMS {
                    return Err(OtlpError::TooMany);
                }
            }
        }
    }
    Ok(out)
}

/// Whether a log record's event name is one this reads.
fn genai_event(name: &str) -> bool {
    name.starts_with("gen_ai.") || name.ends_with(".api_request")
}

/// The GenAI activities of a logs request.
pub fn logs(encoding: Encoding, body: &[u8]) -> Result<Vec<OtlpActivity>, OtlpError> {
    let req: ExportLogsServiceRequest = decode("logs", encoding, body)?;
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let mut base = Attrs::default();
        if let Some(r) = &rl.resource {
            base.add(&r.attributes);
        }
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let a = base.with(&rec.attributes);
                let name = if rec.event_name.is_empty() {
                    a.text(&["event.name"]).unwrap_or_default()
                } else {
                    rec.event_name.clone()
                };
                if !genai_event(&name) || a.text(MODEL).is_none() {
                    continue;
                }
                let key = {
                    let mut bytes = Vec::new();
                    prost::Message::encode(rec, &mut bytes)
                        .map_err(|e| OtlpError::Malformed("logs", e.to_string()))?;
                    crate::auth::sha256_hex(&bytes)
                };
                let mut act = activity(&a, format!("otlp-log:{key}"));
                if act.prompt.is_none()
                    && let Some(b) = &rec.body
                    && name.contains("user")
                {
                    act.prompt = attr(b).map(|x| x.text());
                }
                if act.response.is_none()
                    && let Some(b) = &rec.body
                    && name.contains("choice")
                {
                    act.response = attr(b).map(|x| x.text());
                }
                act.occurred_at = time(rec.time_unix_nano).or(time(rec.observed_time_unix_nano));
                out.push(act);
                if out.len() > MAX_ITEMS {
                    return Err(OtlpError::TooMany);
                }
            }
        }
    }
    Ok(out)
}

/// Whether a metric's name is one this keeps.
fn kept_metric(name: &str) -> bool {
    ["gen_ai.", "claude_code.", "codex.", "copilot.", "cursor."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The usage counter points of a metrics request.
pub fn metrics(encoding: Encoding, body: &[u8]) -> Result<Vec<CounterPoint>, OtlpError> {
    let req: ExportMetricsServiceRequest = decode("metrics", encoding, body)?;
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let mut base = Attrs::default();
        let mut resource_key = String::new();
        if let Some(r) = &rm.resource {
            base.add(&r.attributes);
            let mut kv: Vec<String> = r
                .attributes
                .iter()
                .map(|k| format!("{}={:?}", k.key, k.value))
                .collect();
            kv.sort();
            resource_key = kv.join(",");
        }
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                if !kept_metric(&m.name) {
                    continue;
                }
                // (attributes, start, value, delta) of each point.
                let points: Vec<(&[KeyValue], u64, f64, bool)> = match &m.data {
                    Some(Data::Sum(s)) => s
                        .data_points
                        .iter()
                        .map(|p| {
                            let v = match p.value {
                                Some(Num::AsDouble(d)) => d,
                                Some(Num::AsInt(i)) => i as f64,
                                None => 0.0,
                            };
                            (
                                &p.attributes[..],
                                p.start_time_unix_nano,
                                v,
                                s.aggregation_temporality == 1,
                            )
                        })
                        .collect(),
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| {
                            (
                                &p.attributes[..],
                                p.start_time_unix_nano,
                                p.sum.unwrap_or(0.0),
                                h.aggregation_temporality == 1,
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (attrs, start, value, delta) in points {
                    if !value.is_finite() {
                        continue;
                    }
                    let a = base.with(attrs);
                    let mut kv: Vec<String> = attrs
                        .iter()
                        .map(|k| format!("{}={:?}", k.key, k.value))
                        .collect();
                    kv.sort();
                    let series = crate::auth::sha256_hex(
                        format!("{}|{resource_key}|{}|{start}", m.name, kv.join(",")).as_bytes(),
                    );
                    out.push(CounterPoint {
                        series,
                        project: a.text(&["fulcrum.project"]),
                        tool: tool_of(&a),
                        model: a.text(MODEL).unwrap_or_default(),
                        metric: m.name.clone(),
                        kind: a
                            .text(&["gen_ai.token.type", "type", "token.type"])
                            .unwrap_or_default(),
                        value,
                        delta,
                    });
                    if out.len() > MAX_ITEMS {
                        return Err(OtlpError::TooMany);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_with_current_and_older_names_become_activities() {
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my-agent"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "name": "chat gpt-4o", "kind": 3,
                 "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001500000000",
                 "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 30}},
                    {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}
                 ]},
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175",
                 "name": "old", "attributes": [
                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                    {"key": "llm.request.model", "value": {"stringValue": "gpt-3.5-turbo"}},
                    {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "7"}},
                    {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "3"}}
                 ]},
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b176",
                 "name": "a tool", "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}
                 ]},
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b177",
                 "name": "GET /", "attributes": []}
            ]}]
        }]});
        let acts = traces(Encoding::Json, body.to_string().as_bytes()).unwrap();
        assert_eq!(acts.len(), 2);
        let a = &acts[0];
        assert_eq!(
            a.client_id,
            "otlp:5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
        );
        assert_eq!((a.input_tokens, a.output_tokens), (120, 30));
        assert_eq!(a.latency_ms, Some(1500));
        assert_eq!(a.tool, "my-agent");
        assert_eq!(a.finish_reason.as_deref(), Some("stop"));
        let b = &acts[1];
        assert_eq!(b.model.as_deref(), Some("gpt-3.5-turbo"));
        assert_eq!(b.provider.as_deref(), Some("openai"));
        assert_eq!((b.input_tokens, b.output_tokens), (7, 3));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(traces(Encoding::Protobuf, b"\xff\xff\xff\xff").is_err());
        assert!(logs(Encoding::Json, b"{\"resourceLogs\": 3}").is_err());
        assert!(metrics(Encoding::Json, b"not json").is_err());
        assert!(traces(Encoding::Json, b"{}").unwrap().is_empty());
    }
}
