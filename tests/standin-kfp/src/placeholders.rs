//! How KFP 2.17.0 fills a task's command line, read from its source: the driver expands each
//! `IfPresent` clause of `command` and `args` and resolves input parameters
//! (`backend/src/v2/driver/util.go`, `resolveContainerArgs`: an input is present when the
//! executor input holds a value for it that is not null, and a parameter it does not hold is
//! an error); the launcher then replaces every placeholder by plain substitution
//! (`backend/src/v2/component/launcher_v2.go`, `getPlaceholders`), an artifact's `.path`
//! being its URI's local path (`LocalPathForURI`: `minio://b/p` is `/minio/b/p`). 2.17.0
//! resolves `Concat` nowhere: its JSON reaches the command as written, here too.
//!
//! Artifacts live under KFP's default pipeline root, `minio://mlpipeline/v2/artifacts`, at
//! `<pipeline>/<run>/<task>/<salt>/<name>` as the driver names them; in this TEST STAND-IN
//! the object store is a folder of the (single) node mounted at `/minio` in every task pod,
//! so a producer's file is where its consumer reads it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// KFP's default pipeline root (`backend/src/v2/config/env.go`).
pub const PIPELINE_ROOT: &str = "minio://mlpipeline/v2/artifacts";
/// Where the launcher's local paths of `minio://` URIs start, in every task pod.
pub const MINIO_MOUNT: &str = "/minio";
/// The node's folder that plays the object store.
pub const NODE_STORE: &str = "/var/lib/standin-kfp/minio";

/// The local path of an artifact's URI, as the launcher maps it.
pub fn local_path(uri: &str) -> Option<String> {
    uri.strip_prefix("minio://").map(|rest| format!("{MINIO_MOUNT}/{rest}"))
}

/// What one task's placeholders stand for.
#[derive(Debug, Default)]
pub struct TaskValues {
    /// Input parameters as the launcher writes them; a null one is `""`.
    pub parameters: BTreeMap<String, String>,
    /// The input parameters with a value that is not null: what `IfPresent` calls present.
    pub present: BTreeSet<String>,
    /// Input and output artifacts, by name, as URIs.
    pub input_artifacts: BTreeMap<String, String>,
    pub output_artifacts: BTreeMap<String, String>,
    /// Output parameter name → the file the command writes it to.
    pub output_files: BTreeMap<String, String>,
    pub run_id: String,
    pub task: String,
}

impl TaskValues {
    /// One word of the compiled `command` or `args`: none, one or several words of the
    /// command line (an `IfPresent` clause's chosen list).
    pub fn expand(&self, word: &str) -> Result<Vec<String>, String> {
        if !word.trim_start().starts_with("{\"IfPresent\":") {
            return Ok(vec![self.substitute(word)?]);
        }
        let clause: Value = serde_json::from_str(word).map_err(|e| format!("failed to parse IfPresent JSON: {e}"))?;
        let clause = &clause["IfPresent"];
        let name = clause["InputName"].as_str().unwrap_or_default();
        let chosen = if self.present.contains(name) { &clause["Then"] } else { &clause["Else"] };
        match chosen {
            Value::Null => Ok(Vec::new()),
            Value::String(s) => Ok(vec![self.substitute(s)?]),
            Value::Array(items) => items
                .iter()
                .map(|item| match item.as_str() {
                    Some(s) => self.substitute(s),
                    None => Err(format!("non-string item in IfPresent Then/Else array: {item}")),
                })
                .collect(),
            other => Err(format!("unexpected type in IfPresent Then/Else: {other}")),
        }
    }

    /// Every placeholder of `text` replaced; an input parameter the task does not have is an
    /// error, as the driver's.
    pub fn substitute(&self, text: &str) -> Result<String, String> {
        let mut s = text.to_string();
        for (name, value) in &self.parameters {
            s = s.replace(&format!("{{{{$.inputs.parameters['{name}']}}}}"), value);
        }
        if let Some(start) = s.find("{{$.inputs.parameters['") {
            let rest = &s[start + "{{$.inputs.parameters['".len()..];
            let name = rest.split('\'').next().unwrap_or_default();
            return Err(format!("failed to resolve input parameters: parameter {name:?} not found in executor input"));
        }
        for (direction, artifacts) in [("inputs", &self.input_artifacts), ("outputs", &self.output_artifacts)] {
            for (name, uri) in artifacts {
                s = s.replace(&format!("{{{{$.{direction}.artifacts['{name}'].uri}}}}"), uri);
                if let Some(path) = local_path(uri) {
                    s = s.replace(&format!("{{{{$.{direction}.artifacts['{name}'].path}}}}"), &path);
                }
            }
        }
        for (name, file) in &self.output_files {
            s = s.replace(&format!("{{{{$.outputs.parameters['{name}'].output_file}}}}"), file);
        }
        Ok(s.replace("{{$.pipeline_job_uuid}}", &self.run_id).replace("{{$.pipeline_task_name}}", &self.task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TaskValues {
        TaskValues {
            parameters: BTreeMap::from([("given".into(), "7".into()), ("unset".into(), String::new())]),
            present: BTreeSet::from(["given".to_string()]),
            input_artifacts: BTreeMap::from([("data".into(), format!("{PIPELINE_ROOT}/p/r/up/1/data"))]),
            output_artifacts: BTreeMap::from([("model".into(), format!("{PIPELINE_ROOT}/p/r/t/2/model"))]),
            output_files: BTreeMap::from([("n".into(), "/tmp/kfp/outputs/n".into())]),
            run_id: "r".into(),
            task: "t".into(),
        }
    }

    #[test]
    fn if_present_picks_then_or_else_and_resolves_inside() {
        let v = values();
        let then = r#"{"IfPresent": {"InputName": "given", "Then": ["--n", "{{$.inputs.parameters['given']}}"], "Else": ["--none"]}}"#;
        assert_eq!(v.expand(then), Ok(vec!["--n".to_string(), "7".to_string()]));
        let absent = r#"{"IfPresent": {"InputName": "unset", "Then": ["--u"], "Else": "no-{{$.pipeline_task_name}}"}}"#;
        assert_eq!(v.expand(absent), Ok(vec!["no-t".to_string()]));
        let no_else = r#"{"IfPresent": {"InputName": "missing", "Then": ["--m"]}}"#;
        assert_eq!(v.expand(no_else), Ok(vec![]));
        let nested = r#"{"IfPresent": {"InputName": "given", "Then": [{"Concat": ["a", "b"]}]}}"#;
        assert!(v.expand(nested).is_err_and(|e| e.contains("non-string item")));
    }

    #[test]
    fn artifacts_are_local_paths_and_concat_stays_as_2_17_leaves_it() {
        let v = values();
        let word = "{{$.inputs.artifacts['data'].path}} {{$.outputs.artifacts['model'].uri}}";
        assert_eq!(
            v.expand(word),
            Ok(vec![format!("/minio/mlpipeline/v2/artifacts/p/r/up/1/data {PIPELINE_ROOT}/p/r/t/2/model")])
        );
        let concat = r#"{"Concat": ["a", "{{$.inputs.parameters['given']}}"]}"#;
        assert_eq!(v.expand(concat), Ok(vec![r#"{"Concat": ["a", "7"]}"#.to_string()]));
        assert!(v.expand("{{$.inputs.parameters['other']}}").is_err_and(|e| e.contains("\"other\" not found")));
    }
}
