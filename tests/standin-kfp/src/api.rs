//! The v2beta1 routes of the TEST STAND-IN, with the real server's rules where a client meets
//! them: what a missing or duplicate name gives, uploads' file names and error shape, a run's
//! empty display name (500), strict parameter types, terminate only while a run is active.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Multipart, Path, Query, State as With},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use crate::store::{ApiError, ApiResult, NEVER, Run, State, Version, fields, list, now, uuid};

type Q = Query<BTreeMap<String, String>>;

pub fn router(state: State) -> Router {
    let identity = axum::middleware::from_fn_with_state(state.clone(), identified);
    Router::new()
        .route("/apis/v2beta1/healthz", get(healthz))
        .route("/apis/v2beta1/pipelines/upload", post(upload_pipeline))
        .route("/apis/v2beta1/pipelines/upload_version", post(upload_version))
        .route("/apis/v2beta1/pipelines", get(list_pipelines).post(create_pipeline))
        .route("/apis/v2beta1/pipelines/names/{name}", get(pipeline_by_name))
        .route("/apis/v2beta1/pipelines/{id}", get(get_pipeline).delete(delete_pipeline))
        .route("/apis/v2beta1/pipelines/{id}/versions", get(list_versions))
        .route("/apis/v2beta1/pipelines/{id}/versions/{vid}", get(get_version).delete(delete_version))
        .route("/apis/v2beta1/experiments", get(list_experiments).post(create_experiment))
        .route("/apis/v2beta1/experiments/{id}", get(get_experiment).delete(delete_experiment))
        .route("/apis/v2beta1/runs", get(list_runs).post(create_run))
        .route("/apis/v2beta1/runs/{id}", get(get_run).delete(delete_run).post(run_action))
        .fallback(|| async { ApiError::Gateway(StatusCode::NOT_FOUND, "Not Found".into()) })
        .layer(identity)
        .with_state(state)
}

/// In multi-user mode every call but healthz names its user in the identity header, as KFP's
/// authentication (`apiserver/auth/`) wants; without it, KFP's 401.
async fn identified(
    With(state): With<State>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let open = request.uri().path() == "/apis/v2beta1/healthz";
    match &state.user_header {
        Some(header) if !open && request.headers().get(header.as_str()).is_none_or(|v| v.is_empty()) => {
            ApiError::Gateway(
                StatusCode::UNAUTHORIZED,
                "Failed to authorize with API: Unauthenticated: Request header error: there is no user identity header.".into(),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

async fn healthz(With(state): With<State>) -> Json<Value> {
    let multi_user = state.user_header.is_some();
    Json(
        json!({"commit_sha": "test-stand-in", "tag_name": "2.17.0-stand-in", "multi_user": multi_user, "pipeline_store": "database"}),
    )
}

fn body_json(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("proto: syntax error: {e}")))
}

// --- pipelines and versions -----------------------------------------------------------------

/// The `uploadfile` part of an upload: its file name and the compiled pipeline in it.
async fn uploaded(mut form: Multipart) -> ApiResult<(String, Value)> {
    let bad = |status: StatusCode, m: String| ApiError::Upload(status, m);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("uploadfile") {
            continue;
        }
        let file = field.file_name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("Failed to read the uploaded file: {e}")))?;
        if bytes.len() > 32 << 20 {
            return Err(bad(StatusCode::PAYLOAD_TOO_LARGE, "File size too large. Maximum supported size: 32MB".into()));
        }
        if ![".yaml", ".yml", ".json"].iter().any(|ext| file.ends_with(ext)) {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                format!(
                    "Failed to create a pipeline: unexpected pipeline file format {file:?}. Support .zip, .tar.gz, .json or YAML"
                ),
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("Failed to parse the pipeline spec: {e}")))?;
        let mut spec = docs.iter().find(|d| d.get("pipelineInfo").is_some()).cloned().ok_or_else(|| {
            bad(
                StatusCode::BAD_REQUEST,
                "Failed to parse the pipeline spec: no pipelineInfo (is this a compiled KFP v2 pipeline?)".into(),
            )
        })?;
        if spec.pointer("/pipelineInfo/name").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()) {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "Failed to create a pipeline: pipeline spec is invalid: pipelineInfo.name is empty".into(),
            ));
        }
        if let Some(platform) = docs.iter().find(|d| d.get("platforms").is_some()) {
            spec = json!({"pipeline_spec": spec, "platform_spec": platform});
        }
        return Ok((file, spec));
    }
    Err(bad(StatusCode::BAD_REQUEST, "Failed to create a pipeline: missing the uploadfile part".into()))
}

fn stem(file: &str) -> String {
    file.rsplit('/').next().unwrap_or(file).split('.').next().unwrap_or(file).to_string()
}

fn new_version(pipeline_id: &str, name: &str, q: &BTreeMap<String, String>, spec: Value) -> Version {
    let mut json = json!({
        "pipeline_id": pipeline_id,
        "pipeline_version_id": uuid(),
        "name": name,
        "display_name": q.get("display_name").filter(|d| !d.is_empty()).cloned().unwrap_or_else(|| name.to_string()),
        "created_at": now(),
        "pipeline_spec": spec.clone(),
    });
    if let Some(d) = q.get("description").filter(|d| !d.is_empty()) {
        json["description"] = json!(d);
    }
    Version { json, spec }
}

async fn upload_pipeline(With(state): With<State>, Query(q): Q, form: Multipart) -> ApiResult<Json<Value>> {
    let (file, spec) = uploaded(form).await?;
    let name =
        q.get("name").or(q.get("display_name")).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| stem(&file));
    let mut db = state.db();
    if db.pipelines.iter().any(|p| p["name"] == name.as_str()) {
        return Err(ApiError::Upload(
            StatusCode::CONFLICT,
            format!("Failed to create a pipeline and a pipeline version. The pipeline already exists: name {name:?}"),
        ));
    }
    let pipeline = pipeline_json(&name, &q);
    let id = pipeline["pipeline_id"].as_str().unwrap_or_default().to_string();
    db.versions.push(new_version(&id, &name, &q, spec));
    db.pipelines.push(pipeline.clone());
    Ok(Json(pipeline))
}

fn pipeline_json(name: &str, q: &BTreeMap<String, String>) -> Value {
    let mut p = json!({
        "pipeline_id": uuid(),
        "name": name,
        "display_name": q.get("display_name").filter(|d| !d.is_empty()).cloned().unwrap_or_else(|| name.to_string()),
        "created_at": now(),
    });
    if let Some(d) = q.get("description").filter(|d| !d.is_empty()) {
        p["description"] = json!(d);
    }
    p
}

async fn upload_version(With(state): With<State>, Query(q): Q, form: Multipart) -> ApiResult<Json<Value>> {
    let (file, spec) = uploaded(form).await?;
    let Some(pipeline_id) = q.get("pipelineid").filter(|p| !p.is_empty()).cloned() else {
        return Err(ApiError::Upload(
            StatusCode::BAD_REQUEST,
            "Failed to create a pipeline version due to error fetching pipeline id: Invalid input error: Please specify a pipeline id when creating versions".into(),
        ));
    };
    let name =
        q.get("name").or(q.get("display_name")).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| stem(&file));
    let mut db = state.db();
    if !db.pipelines.iter().any(|p| p["pipeline_id"] == pipeline_id.as_str()) {
        return Err(ApiError::Upload(
            StatusCode::NOT_FOUND,
            format!("Failed to create a pipeline version: pipeline {pipeline_id} not found"),
        ));
    }
    if db.versions.iter().any(|v| v.json["pipeline_id"] == pipeline_id.as_str() && v.json["name"] == name.as_str()) {
        return Err(ApiError::Upload(
            StatusCode::CONFLICT,
            format!(
                "Failed to create a pipeline version: a version named {name:?} already exists in pipeline {pipeline_id}"
            ),
        ));
    }
    let version = new_version(&pipeline_id, &name, &q, spec);
    let json = version.json.clone();
    db.versions.push(version);
    Ok(Json(json))
}

async fn create_pipeline(With(state): With<State>, body: Bytes) -> ApiResult<Json<Value>> {
    let f = fields(&body_json(&body)?, &["name", "display_name", "description", "namespace"])?;
    let text = |k: &str| f.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let Some(name) = text("name").or(text("display_name")) else {
        return Err(ApiError::invalid("Invalid input error: pipeline's name cannot be empty"));
    };
    let mut db = state.db();
    if db.pipelines.iter().any(|p| p["name"] == name.as_str()) {
        return Err(ApiError::Gateway(
            StatusCode::CONFLICT,
            format!("Already exist error: pipeline with name {name:?} already exists"),
        ));
    }
    let q: BTreeMap<String, String> = [("display_name", text("display_name")), ("description", text("description"))]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    let p = pipeline_json(&name, &q);
    db.pipelines.push(p.clone());
    Ok(Json(p))
}

async fn list_pipelines(With(state): With<State>, Query(q): Q) -> ApiResult<Json<Value>> {
    let items = state.db().pipelines.clone();
    list(items, "pipelines", &q).map(Json)
}

async fn pipeline_by_name(With(state): With<State>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let db = state.db();
    db.pipelines
        .iter()
        .find(|p| p["name"] == name.as_str())
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Pipeline", &name))
}

async fn get_pipeline(With(state): With<State>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let db = state.db();
    db.pipelines
        .iter()
        .find(|p| p["pipeline_id"] == id.as_str())
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Pipeline", &id))
}

async fn delete_pipeline(With(state): With<State>, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let mut db = state.db();
    if !db.pipelines.iter().any(|p| p["pipeline_id"] == id.as_str()) {
        return Err(ApiError::not_found("Pipeline", &id));
    }
    let has_versions = db.versions.iter().any(|v| v.json["pipeline_id"] == id.as_str());
    if has_versions && q.get("cascade").map(String::as_str) != Some("true") {
        return Err(ApiError::Gateway(
            StatusCode::PRECONDITION_FAILED,
            format!("Failed to delete pipeline {id}: it has pipeline versions; delete them first or pass cascade=true"),
        ));
    }
    db.versions.retain(|v| v.json["pipeline_id"] != id.as_str());
    db.pipelines.retain(|p| p["pipeline_id"] != id.as_str());
    Ok(Json(json!({})))
}

async fn list_versions(With(state): With<State>, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let db = state.db();
    if !db.pipelines.iter().any(|p| p["pipeline_id"] == id.as_str()) {
        return Err(ApiError::not_found("Pipeline", &id));
    }
    let items = db.versions.iter().filter(|v| v.json["pipeline_id"] == id.as_str()).map(|v| v.json.clone()).collect();
    list(items, "pipeline_versions", &q).map(Json)
}

async fn get_version(With(state): With<State>, Path((id, vid)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let db = state.db();
    db.versions
        .iter()
        .find(|v| v.json["pipeline_id"] == id.as_str() && v.json["pipeline_version_id"] == vid.as_str())
        .map(|v| Json(v.json.clone()))
        .ok_or_else(|| ApiError::not_found("PipelineVersion", &vid))
}

async fn delete_version(With(state): With<State>, Path((id, vid)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let mut db = state.db();
    let before = db.versions.len();
    db.versions.retain(|v| !(v.json["pipeline_id"] == id.as_str() && v.json["pipeline_version_id"] == vid.as_str()));
    if db.versions.len() == before {
        return Err(ApiError::not_found("PipelineVersion", &vid));
    }
    Ok(Json(json!({})))
}

// --- experiments ----------------------------------------------------------------------------

async fn create_experiment(With(state): With<State>, body: Bytes) -> ApiResult<Json<Value>> {
    let f = fields(&body_json(&body)?, &["display_name", "description", "namespace"])?;
    let Some(name) = f.get("display_name").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return Err(ApiError::invalid("Invalid input error: Experiment must have a non-empty name"));
    };
    let namespace = f.get("namespace").and_then(Value::as_str).unwrap_or_default();
    if state.user_header.is_some() && namespace.is_empty() {
        return Err(ApiError::invalid(
            "Invalid input error: In multi-user mode, experiment namespace must be specified.",
        ));
    }
    let mut db = state.db();
    if db
        .experiments
        .iter()
        .any(|e| e["display_name"] == name && e["namespace"].as_str().unwrap_or_default() == namespace)
    {
        return Err(ApiError::Gateway(
            StatusCode::CONFLICT,
            format!(
                "Already exist error: Failed to create a new experiment. The name {name} already exists. Please specify a new name"
            ),
        ));
    }
    let mut e = json!({"experiment_id": uuid(), "display_name": name, "created_at": now(), "storage_state": "AVAILABLE", "last_run_created_at": NEVER});
    for k in ["description", "namespace"] {
        if let Some(v) = f.get(k).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            e[k] = v.clone();
        }
    }
    db.experiments.push(e.clone());
    Ok(Json(e))
}

async fn list_experiments(With(state): With<State>, Query(q): Q) -> ApiResult<Json<Value>> {
    let mut items = state.db().experiments.clone();
    if state.user_header.is_some() {
        let Some(namespace) = q.get("namespace").filter(|n| !n.is_empty()) else {
            return Err(ApiError::invalid(
                "Invalid input error: In multi-user mode, ListExperiment requires a namespace.",
            ));
        };
        items.retain(|e| e["namespace"] == namespace.as_str());
    }
    list(items, "experiments", &q).map(Json)
}

async fn get_experiment(With(state): With<State>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let db = state.db();
    db.experiments
        .iter()
        .find(|e| e["experiment_id"] == id.as_str())
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Experiment", &id))
}

async fn delete_experiment(With(state): With<State>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut db = state.db();
    let before = db.experiments.len();
    db.experiments.retain(|e| e["experiment_id"] != id.as_str());
    if db.experiments.len() == before {
        return Err(ApiError::not_found("Experiment", &id));
    }
    Ok(Json(json!({})))
}

// --- runs -----------------------------------------------------------------------------------

/// KFP's strict parameter rules: declared names only, required ones given, JSON types that
/// match (an integer must be a JSON number without a fraction, never a string).
fn check_parameters(spec: &Value, given: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let declared =
        spec.pointer("/root/inputDefinitions/parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    for name in given.keys() {
        if !declared.contains_key(name) {
            return Err(ApiError::invalid(format!(
                "Invalid input error: parameter {name:?} is not declared by the pipeline"
            )));
        }
    }
    let mut out = Map::new();
    for (name, decl) in &declared {
        let value = match given.get(name).or(decl.get("defaultValue")) {
            Some(v) => v.clone(),
            None if decl["isOptional"] == true => continue,
            None => {
                return Err(ApiError::invalid(format!(
                    "Invalid input error: parameter {name:?} is required and has no default"
                )));
            }
        };
        let kind = decl["parameterType"].as_str().unwrap_or("STRING");
        let fits = match kind {
            "STRING" => value.is_string(),
            "NUMBER_INTEGER" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
            "NUMBER_DOUBLE" => value.is_number(),
            "BOOLEAN" => value.is_boolean(),
            "LIST" => value.is_array(),
            "STRUCT" => value.is_object(),
            _ => true,
        };
        if !fits {
            return Err(ApiError::invalid(format!(
                "Invalid input error: parameter {name:?} must be of type {kind}, got {value}"
            )));
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

async fn create_run(With(state): With<State>, body: Bytes) -> ApiResult<Json<Value>> {
    let allowed = [
        "display_name",
        "description",
        "experiment_id",
        "pipeline_version_reference",
        "pipeline_spec",
        "runtime_config",
        "service_account",
        "pipeline_version_id",
        "recurring_run_id",
    ];
    let f = fields(&body_json(&body)?, &allowed)?;
    let display_name = f.get("display_name").and_then(Value::as_str).unwrap_or_default().to_string();
    if display_name.is_empty() {
        // As the real server answers (its tests depend on it): a 500, not a 400.
        return Err(ApiError::Gateway(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error: Failed to create a run: the run's display name is empty".into(),
        ));
    }
    let reference = match f.get("pipeline_version_reference") {
        Some(r) => fields(r, &["pipeline_id", "pipeline_version_id"])?,
        None => Map::new(),
    };
    let runtime = match f.get("runtime_config") {
        Some(r) => fields(r, &["parameters", "pipeline_root"])?,
        None => Map::new(),
    };
    let given = runtime.get("parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut db = state.db();
    let experiment_id = match f.get("experiment_id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(id) if db.experiments.iter().any(|e| e["experiment_id"] == id) => id.to_string(),
        Some(id) => return Err(ApiError::not_found("Experiment", id)),
        None if state.user_header.is_some() => {
            return Err(ApiError::invalid("Invalid input error: In multi-user mode, a run needs an experiment."));
        }
        None => default_experiment(&mut db.experiments),
    };
    // Multi-user: the run lives in its experiment's (profile) namespace; else in KFP's own.
    let namespace = db
        .experiments
        .iter()
        .find(|e| e["experiment_id"] == experiment_id.as_str())
        .and_then(|e| e["namespace"].as_str())
        .filter(|_| state.user_header.is_some())
        .map(str::to_string)
        .unwrap_or_else(|| state.runner.namespace.clone());
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
    };
    let (spec, reference) = if let Some(spec) = f.get("pipeline_spec") {
        (spec.clone(), None)
    } else {
        let Some(pipeline_id) = text(&reference, "pipeline_id") else {
            return Err(ApiError::invalid(
                "Invalid input error: a run needs pipeline_version_reference.pipeline_id or pipeline_spec",
            ));
        };
        // Without a version id, the newest version, resolved now (KFP 2.5+).
        let version = match text(&reference, "pipeline_version_id") {
            Some(vid) => db.versions.iter().find(|v| {
                v.json["pipeline_id"] == pipeline_id.as_str() && v.json["pipeline_version_id"] == vid.as_str()
            }),
            None => db.versions.iter().filter(|v| v.json["pipeline_id"] == pipeline_id.as_str()).max_by(|a, b| {
                (a.json["created_at"].as_str(), a.json["pipeline_version_id"].as_str())
                    .cmp(&(b.json["created_at"].as_str(), b.json["pipeline_version_id"].as_str()))
            }),
        };
        let Some(version) = version else {
            return Err(ApiError::not_found("PipelineVersion of pipeline", &pipeline_id));
        };
        let reference = json!({"pipeline_id": pipeline_id, "pipeline_version_id": version.json["pipeline_version_id"]});
        (version.spec.clone(), Some(reference))
    };
    let ir = spec.get("pipeline_spec").cloned().unwrap_or_else(|| spec.clone());
    let parameters = check_parameters(&ir, &given)?;
    let run_id = uuid();
    let created = now();
    let mut run = json!({
        "run_id": run_id,
        "display_name": display_name,
        "experiment_id": experiment_id,
        "runtime_config": {"parameters": given},
        "service_account": f.get("service_account").cloned().unwrap_or(json!("pipeline-runner")),
        "created_at": created,
        "scheduled_at": created,
        "finished_at": NEVER,
        "state": "PENDING",
        "state_history": [{"update_time": created, "state": "PENDING"}],
        "storage_state": "AVAILABLE",
    });
    match reference {
        Some(r) => run["pipeline_version_reference"] = r,
        None => run["pipeline_spec"] = spec.clone(),
    }
    if let Some(d) = f.get("description") {
        run["description"] = d.clone();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    db.runs.insert(
        run_id.clone(),
        Run {
            json: run.clone(),
            terminate: Some(stop),
            workflow: None,
            namespace: namespace.clone(),
            reads_left: state.runner.modes.for_pipeline(&ir).fail_run_reads_after,
        },
    );
    drop(db);
    let runner = state.runner.clone();
    tokio::spawn(runner.execute(state.clone(), run_id, namespace, ir, parameters, stopped));
    Ok(Json(run))
}

fn default_experiment(experiments: &mut Vec<Value>) -> String {
    if let Some(e) = experiments.iter().find(|e| e["display_name"] == "Default") {
        return e["experiment_id"].as_str().unwrap_or_default().to_string();
    }
    let id = uuid();
    experiments.push(
        json!({"experiment_id": id, "display_name": "Default", "created_at": now(), "storage_state": "AVAILABLE"}),
    );
    id
}

async fn list_runs(With(state): With<State>, Query(q): Q) -> ApiResult<Json<Value>> {
    let db = state.db();
    let items = db
        .runs
        .values()
        .filter(|r| q.get("experiment_id").is_none_or(|e| r.json["experiment_id"] == e.as_str()))
        .map(|r| r.json.clone())
        .collect();
    list(items, "runs", &q).map(Json)
}

async fn get_run(With(state): With<State>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let mut db = state.db();
    let run = db.runs.get_mut(&id).ok_or_else(|| ApiError::not_found("Run", &id))?;
    match run.reads_left.as_mut() {
        // The `fail-run-reads-after` fault: KFP's own words when its database is unreachable.
        Some(0) => Err(ApiError::Gateway(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Internal error: Failed to get a run: InternalServerError: Failed to get run {id}: dial tcp 10.96.0.7:3306: connect: connection refused (TEST STAND-IN fault)"
            ),
        )),
        Some(left) => {
            *left -= 1;
            Ok(Json(run.json.clone()))
        }
        None => Ok(Json(run.json.clone())),
    }
}

/// `POST /runs/{id}:terminate` (the only action served here).
async fn run_action(With(state): With<State>, Path(action): Path<String>) -> ApiResult<Json<Value>> {
    let Some(id) = action.strip_suffix(":terminate") else {
        return Err(ApiError::Gateway(
            StatusCode::NOT_IMPLEMENTED,
            format!("this TEST STAND-IN serves only :terminate, not {action:?}"),
        ));
    };
    let state_now = {
        let db = state.db();
        let run = db.runs.get(id).ok_or_else(|| ApiError::not_found("Run", id))?;
        run.json["state"].as_str().unwrap_or("RUNTIME_STATE_UNSPECIFIED").to_string()
    };
    if !matches!(state_now.as_str(), "PENDING" | "RUNNING" | "PAUSED") {
        return Err(ApiError::Gateway(
            StatusCode::BAD_REQUEST,
            format!("Failed to terminate a run {id}: Invalid input error: cannot terminate a run in state {state_now}"),
        ));
    }
    state.update_run(id, |run| {
        run.json["state"] = json!("CANCELING");
        if let Some(stop) = &run.terminate {
            let _ = stop.send(true);
        }
    });
    Ok(Json(json!({})))
}

async fn delete_run(With(state): With<State>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let run = state.db().runs.remove(&id).ok_or_else(|| ApiError::not_found("Run", &id))?;
    // What the run put in the cache goes with it, as KFP's cache entries go with their run.
    state.db().cache.retain(|_, (_, made_by)| made_by != &id);
    if let Some(stop) = &run.terminate {
        let _ = stop.send(true);
    }
    state
        .runner
        .delete(&run.namespace, &id, run.workflow.as_deref())
        .await
        .map_err(|e| ApiError::Gateway(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(json!({})))
}
