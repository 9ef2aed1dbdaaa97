//! The TEST STAND-IN's memory: pipelines, versions, experiments and runs, kept as the JSON KFP
//! serves (snake_case, zero values left out), and the list rules of KFP's API: filters (URL-
//! decoded twice, as the real server does), sorting, page sizes clamped to 200.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::runner::Runner;

/// An error as KFP's gRPC gateway writes it (`code`, `message`, `details`), or as its upload
/// handlers do (`error_message`, `error_details`).
#[derive(Debug)]
pub enum ApiError {
    Gateway(StatusCode, String),
    Upload(StatusCode, String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::Gateway(StatusCode::BAD_REQUEST, message.into())
    }
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::Gateway(StatusCode::NOT_FOUND, format!("{what} {id} not found: ResourceNotFoundError"))
    }
}

/// gRPC codes for HTTP statuses, as grpc-gateway maps them back.
fn grpc_code(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 3,
        404 => 5,
        409 => 6,
        412 => 9,
        501 => 12,
        _ => 13,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Gateway(status, message) => {
                let body = json!({"code": grpc_code(status), "message": message, "details": []});
                (status, axum::Json(body)).into_response()
            }
            ApiError::Upload(status, message) => {
                let body = json!({"error_message": message, "error_details": message});
                (status, axum::Json(body)).into_response()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A stored pipeline version: what is served, and the spec runs execute.
pub struct Version {
    pub json: Value,
    pub spec: Value,
}

/// A run as served, and what its executor needs.
pub struct Run {
    pub json: Value,
    pub terminate: Option<tokio::sync::watch::Sender<bool>>,
    /// The Workflow's name, once created.
    pub workflow: Option<String>,
    /// Where its Workflow and pods are.
    pub namespace: String,
    /// Reads left before `GET /runs/{id}` fails (the `fail-run-reads-after` fault); none: no fault.
    pub reads_left: Option<u32>,
}

#[derive(Default)]
pub struct Db {
    pub pipelines: Vec<Value>,
    pub versions: Vec<Version>,
    pub experiments: Vec<Value>,
    pub runs: BTreeMap<String, Run>,
    /// KFP's cache: a task's key → its output parameters and the run that made them (an
    /// entry lives as long as that run).
    pub cache: BTreeMap<String, (Map<String, Value>, String)>,
}

#[derive(Clone)]
pub struct State {
    db: Arc<Mutex<Db>>,
    pub runner: Arc<Runner>,
    /// Multi-user mode: the header that must name the caller (KFP's `kubeflow-userid`), and
    /// runs live in their experiment's (profile) namespace.
    pub user_header: Option<String>,
}

impl State {
    pub fn new(runner: Arc<Runner>, user_header: Option<String>) -> State {
        State { db: Arc::default(), runner, user_header }
    }

    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes a run, and stamps its state history when its state changed.
    pub fn update_run(&self, id: &str, change: impl FnOnce(&mut Run)) {
        let mut db = self.db();
        if let Some(run) = db.runs.get_mut(id) {
            let before = run.json.get("state").cloned();
            change(run);
            let after = run.json.get("state").cloned();
            if after != before
                && let Some(state) = after
            {
                push(&mut run.json, "state_history", json!({"update_time": now(), "state": state}));
            }
        }
    }
}

pub fn push(object: &mut Value, key: &str, item: Value) {
    if !object[key].is_array() {
        object[key] = json!([]);
    }
    if let Some(list) = object[key].as_array_mut() {
        list.push(item);
    }
}

/// RFC 3339 at KFP's one-second resolution.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// KFP's "not yet" time.
pub const NEVER: &str = "1970-01-01T00:00:00Z";

/// A random UUID (version 4), as KFP's ids are.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `displayName` → `display_name`: request bodies may use either.
fn snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A request body's fields, snake_cased, every one of them known (the real server rejects an
/// unknown field with 400).
pub fn fields(body: &Value, allowed: &[&str]) -> ApiResult<Map<String, Value>> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::invalid("proto: syntax error (line 1:1): unexpected token: the body must be an object"));
    };
    let mut out = Map::new();
    for (key, value) in object {
        let key = snake(key);
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::invalid(format!("proto: (line 1:2): unknown field {key:?}")));
        }
        out.insert(key, value.clone());
    }
    Ok(out)
}

/// Go's `url.QueryUnescape`: the second decoding KFP gives a filter.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The list rules: `filter` (EQUALS, NOT_EQUALS, IS_SUBSTRING on string fields), `sort_by`
/// (`field` or `field desc`; default `created_at` ascending), `page_size` (default 20, at
/// most 200) and `page_token` (an offset here). An empty list is served as `{}`.
pub fn list(items: Vec<Value>, key: &str, query: &BTreeMap<String, String>) -> ApiResult<Value> {
    let mut items = items;
    if let Some(filter) = query.get("filter").filter(|f| !f.is_empty()) {
        let filter: Value = serde_json::from_str(&unescape(filter))
            .map_err(|e| ApiError::invalid(format!("Invalid input error: failed to parse filter: {e}")))?;
        for p in filter["predicates"].as_array().into_iter().flatten() {
            let field = p["key"].as_str().unwrap_or_default().to_string();
            let op = p.get("operation").or_else(|| p.get("op")).and_then(Value::as_str).unwrap_or("EQUALS");
            let wanted = p.get("string_value").or_else(|| p.get("stringValue")).and_then(Value::as_str);
            let Some(wanted) = wanted.map(str::to_string) else {
                return Err(ApiError::invalid("Invalid input error: this TEST STAND-IN filters on string values only"));
            };
            let have = |v: &Value| v[field.as_str()].as_str().unwrap_or_default().to_string();
            match op {
                "EQUALS" => items.retain(|v| have(v) == wanted),
                "NOT_EQUALS" => items.retain(|v| have(v) != wanted),
                "IS_SUBSTRING" => items.retain(|v| have(v).contains(&wanted)),
                other => {
                    return Err(ApiError::invalid(format!("Invalid input error: unsupported operation {other}")));
                }
            }
        }
    }
    let sort = query.get("sort_by").map(String::as_str).unwrap_or("created_at");
    let (field, descending) = match sort.split_once(' ') {
        Some((f, dir)) => (f, dir.trim().eq_ignore_ascii_case("desc")),
        None => (sort, false),
    };
    // The id breaks ties of a one-second created_at, as KFP's latest-version rule does.
    let id_key = format!("{}_id", key.trim_end_matches('s'));
    items.sort_by(|a, b| {
        let by = |v: &Value| (v[field].as_str().unwrap_or_default().to_string(), v[id_key.as_str()].to_string());
        by(a).cmp(&by(b))
    });
    if descending {
        items.reverse();
    }
    let total = items.len();
    let size = query.get("page_size").and_then(|s| s.parse::<usize>().ok()).filter(|s| *s > 0).unwrap_or(20).min(200);
    let offset = query.get("page_token").and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let page: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let mut out = json!({});
    if !page.is_empty() {
        out[key] = Value::Array(page);
    }
    if total > 0 {
        out["total_size"] = json!(total);
    }
    if offset + size < total {
        out["next_page_token"] = json!((offset + size).to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_decoded_a_second_time() {
        assert_eq!(unescape("a%2Bb+c%"), "a+b c%");
    }

    #[test]
    fn lists_filter_sort_and_page() {
        let items = vec![
            json!({"name": "b", "created_at": "2026-01-01T00:00:02Z"}),
            json!({"name": "a", "created_at": "2026-01-01T00:00:01Z"}),
        ];
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let newest =
            list(items.clone(), "pipelines", &q(&[("sort_by", "created_at desc"), ("page_size", "1")])).unwrap();
        assert_eq!(newest["pipelines"][0]["name"], "b");
        assert_eq!(newest["next_page_token"], "1");
        let filter = r#"{"predicates":[{"key":"name","operation":"EQUALS","string_value":"a"}]}"#;
        let found = list(items.clone(), "pipelines", &q(&[("filter", filter)])).unwrap();
        assert_eq!(found["total_size"], 1);
        let none = list(items, "pipelines", &q(&[("filter", &filter.replace("\"a\"", "\"z\""))])).unwrap();
        assert_eq!(none, json!({}));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(fields(&json!({"displayName": "x"}), &["display_name"]).is_ok());
        assert!(fields(&json!({"bogus": 1}), &["display_name"]).is_err());
    }
}
