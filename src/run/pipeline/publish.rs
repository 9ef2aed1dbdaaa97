//! Getting a pipeline's version into KFP: a file uploaded as a version named by its content
//! hash (reused when already there), a pipeline already in KFP resolved to its newest or
//! pinned version; and the suite's experiment, made on first use.

use serde_json::{Value, json};

use super::{API, Made, Stop, infrastructure, refused_or_infrastructure};
use crate::{
    cluster::kfp::{Kfp, encode, filter_equals},
    outcome::{CaseResult, Outcome},
    plan::{PipelineCase, PipelineSource, pipeline},
    run::case::CaseRun,
    suite::FailureClass,
};

impl CaseRun<'_> {
    /// The pipeline's id, the version to run and its spec: uploaded (or reused by content
    /// hash) for a file, resolved now for a pipeline already in KFP.
    pub(super) async fn pipeline_version(
        &self,
        kfp: &Kfp,
        p: &PipelineCase,
        result: &mut CaseResult,
        made: &mut Made,
    ) -> Result<(String, String, Value), Stop> {
        let found = kfp
            .get(&format!("{API}/pipelines?filter={}", filter_equals("name", &p.name)))
            .await
            .map_err(|e| infrastructure("looking up the pipeline", &e))?;
        let existing_id = found["pipelines"][0]["pipeline_id"].as_str().map(str::to_string);
        let record = |result: &mut CaseResult, version: &Value, asked: Option<String>, uploaded: bool| {
            if let Some(r) = result.pipeline.as_mut() {
                r.version = version["name"].as_str().unwrap_or_default().to_string();
                r.version_id = version["pipeline_version_id"].as_str().unwrap_or_default().to_string();
                r.asked = asked;
                r.uploaded = uploaded;
            }
        };
        match &p.source {
            PipelineSource::Existing { version } => {
                let Some(id) = existing_id else {
                    return Err((
                        Outcome::Failed,
                        Some(FailureClass::Example),
                        format!("pipeline {:?} does not exist in KFP ({})", p.name, kfp.shown),
                    ));
                };
                let listed = kfp
                    .get(&format!("{API}/pipelines/{id}/versions?sort_by={}&page_size=200", encode("created_at desc")))
                    .await
                    .map_err(|e| infrastructure("listing the pipeline's versions", &e))?;
                let versions: Vec<Value> = listed["pipeline_versions"].as_array().cloned().unwrap_or_default();
                let key = |v: &Value| {
                    (
                        v["created_at"].as_str().unwrap_or_default().to_string(),
                        v["pipeline_version_id"].as_str().unwrap_or_default().to_string(),
                    )
                };
                // KFP's latest: the newest by created_at (one-second resolution), then by id.
                let chosen = match version.as_str() {
                    "latest" => versions.iter().max_by_key(|v| key(v)),
                    name => versions.iter().find(|v| v["name"] == name || v["display_name"] == name),
                };
                let Some(chosen) = chosen.cloned() else {
                    let names: Vec<&str> = versions.iter().filter_map(|v| v["name"].as_str()).collect();
                    return Err((
                        Outcome::Failed,
                        Some(FailureClass::Example),
                        format!("pipeline {:?} has no version {version:?} (it has: {})", p.name, names.join(", ")),
                    ));
                };
                record(result, &chosen, Some(version.clone()), false);
                let spec = chosen["pipeline_spec"].clone();
                let spec = spec.get("pipeline_spec").cloned().unwrap_or(spec);
                let vid = chosen["pipeline_version_id"].as_str().unwrap_or_default().to_string();
                Ok((id, vid, spec))
            }
            PipelineSource::Compiled { spec, platform } => {
                let (text, version_name) = pipeline::upload(spec, platform.as_ref());
                let id = match existing_id {
                    Some(id) => id,
                    None => {
                        let body = json!({"name": p.name, "display_name": p.name, "description": format!("kubevet: {}", self.case.name)});
                        let created = match kfp.post(&format!("{API}/pipelines"), &body).await {
                            Ok(c) => {
                                made.pipeline_id = c["pipeline_id"].as_str().map(str::to_string);
                                c
                            }
                            // Made meanwhile by another run: use that one.
                            Err(e) if e.status == Some(409) => kfp
                                .get(&format!("{API}/pipelines?filter={}", filter_equals("name", &p.name)))
                                .await
                                .map_err(|e| infrastructure("looking up the pipeline", &e))?["pipelines"][0]
                                .clone(),
                            Err(e) => return Err(refused_or_infrastructure("creating the pipeline", &e)),
                        };
                        created["pipeline_id"].as_str().unwrap_or_default().to_string()
                    }
                };
                let versions_of =
                    format!("{API}/pipelines/{id}/versions?filter={}", filter_equals("name", &version_name));
                let listed = kfp.get(&versions_of).await.map_err(|e| infrastructure("looking up the version", &e))?;
                if let Some(v) = listed["pipeline_versions"].get(0) {
                    record(result, v, None, false);
                    return Ok((id, v["pipeline_version_id"].as_str().unwrap_or_default().to_string(), spec.clone()));
                }
                let path = format!("{API}/pipelines/upload_version?name={}&pipelineid={id}", encode(&version_name));
                let file = format!("{}.yaml", crate::util::files::file_name(&self.case.id));
                let version = match kfp.upload(&path, &file, &text).await {
                    Ok(v) => {
                        made.version_id = v["pipeline_version_id"].as_str().map(str::to_string);
                        record(result, &v, None, true);
                        v
                    }
                    Err(e) if e.status == Some(409) => {
                        let v = kfp
                            .get(&versions_of)
                            .await
                            .map_err(|e| infrastructure("looking up the version", &e))?["pipeline_versions"][0]
                            .clone();
                        record(result, &v, None, false);
                        v
                    }
                    Err(e) => return Err(refused_or_infrastructure("uploading the pipeline", &e)),
                };
                Ok((id, version["pipeline_version_id"].as_str().unwrap_or_default().to_string(), spec.clone()))
            }
            PipelineSource::Python(path) => Err((Outcome::Error, None, format!("{} was not compiled", path.display()))),
        }
    }

    /// The suite's experiment (`pipelines.experiment`, else the suite's name), made on first use.
    pub(super) async fn experiment(&self, kfp: &Kfp, multi_user: bool) -> Result<String, Stop> {
        // The suite's name made one KFP takes; a name the suite gives is used as written.
        let default_name = crate::util::ids::kfp_name(self.suite_name);
        let name = self.pipelines.experiment.as_deref().unwrap_or(&default_name);
        let namespace = if multi_user { format!("&namespace={}", encode(&kfp.namespace)) } else { String::new() };
        let find = format!("{API}/experiments?filter={}{namespace}", filter_equals("display_name", name));
        let id_of = |v: &Value| v["experiments"][0]["experiment_id"].as_str().map(str::to_string);
        if let Some(id) = id_of(&kfp.get(&find).await.map_err(|e| infrastructure("looking up the experiment", &e))?) {
            return Ok(id);
        }
        let mut body = json!({"display_name": name, "description": "runs of kubevet's pipeline cases"});
        if multi_user {
            body["namespace"] = json!(kfp.namespace);
        }
        match kfp.post(&format!("{API}/experiments"), &body).await {
            Ok(e) => Ok(e["experiment_id"].as_str().unwrap_or_default().to_string()),
            Err(e) if e.status == Some(409) => {
                id_of(&kfp.get(&find).await.map_err(|e| infrastructure("looking up the experiment", &e))?)
                    .ok_or_else(|| infrastructure("the experiment", &e))
            }
            Err(e) => Err(infrastructure("creating the experiment", &e)),
        }
    }
}
