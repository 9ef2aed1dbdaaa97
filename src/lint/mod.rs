//! `kubevet lint`: the fast tier, no cluster. YAML syntax, object identity, schemas (CRDs and
//! built-in kinds, strict), compiled Kubeflow pipelines, and policy rules; every finding at
//! its file:line:col.

pub mod command;
pub mod crd_rules;
mod finding;
pub mod kfp;
pub mod locations;
mod notebook;
pub mod output;
pub mod positions;
pub mod rules;
pub mod schema;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{
    util::error::{Error, Result},
    util::yaml,
};
pub use finding::{Finding, Severity};
use schema::{Lookup, SchemaStore};

/// The checks that are not policy rules, named for reports (they cannot be allowed away).
pub const CHECKS: &[(&str, &str)] = &[
    ("yaml-syntax", "the file is not valid YAML (duplicate keys included)"),
    ("empty-file", "the file holds no Kubernetes object"),
    ("object-identity", "a document lacks apiVersion, kind or metadata.name (or generateName)"),
    ("schema", "an object does not match its schema (CRD or Kubernetes built-in), unknown fields included"),
    ("kfp-pipeline", "a compiled Kubeflow pipeline would be rejected on upload"),
    ("kfp-pipeline-name", "a compiled pipeline's pipelineInfo.name is not one KFP takes"),
    ("kfp-placeholder", "a compiled pipeline's container argument KFP 2.17.0 passes on unresolved (Concat)"),
    (
        "pipeline-parameters",
        "the suite's run parameters for a pipeline: an undeclared name, a wrong type, a required one missing",
    ),
    (
        "scenario",
        "a scenario file (kind: Scenario) kubevet cannot run: an unknown key, bad CEL or regular expression, a missing file",
    ),
    ("crd-rule", "an object breaks a validation rule of its CRD (x-kubernetes-validations, evaluated offline)"),
    (
        "not-checked",
        "something kubevet could not check: a kind without a schema, a CRD rule using a function kubevet lacks",
    ),
];

pub struct FileReport {
    pub path: PathBuf,
    /// The path as the user sees it.
    pub name: String,
    pub text: String,
    pub documents: usize,
    pub findings: Vec<Finding>,
}

pub struct LintReport {
    pub files: Vec<FileReport>,
}

impl LintReport {
    pub fn documents(&self) -> usize {
        self.files.iter().map(|f| f.documents).sum()
    }
    pub fn count(&self, severity: Severity) -> usize {
        self.files.iter().flat_map(|f| &f.findings).filter(|f| f.severity == severity).count()
    }
}

#[derive(Default)]
pub struct LintOptions {
    pub allow: Vec<String>,
    pub crd_dirs: Vec<PathBuf>,
    /// Schema locations (URL templates or CRD URLs), and whether only the cache may serve them.
    pub schema_locations: Vec<String>,
    pub offline: bool,
    /// Rendered manifests (the suite's operators) whose CRDs describe the examples' custom
    /// resources: (where from, YAML).
    pub rendered: Vec<(String, String)>,
    /// A cluster's `/openapi/v2` and its version, to check against instead of the built-in schemas.
    pub cluster_openapi: Option<(Value, String)>,
    /// The run parameters the suite gives each pipeline file, and where (`kubevet.yaml:LINE`):
    /// checked against what the pipeline declares.
    pub pipeline_parameters: Vec<(PathBuf, serde_json::Map<String, Value>, String)>,
    /// The suite's metric sources, which scenarios' metrics steps name.
    pub metrics: crate::suite::metrics::MetricsSettings,
}

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "ClusterTrainingRuntime",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// Every YAML file under a directory, or the file itself.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = ignore::WalkBuilder::new(path)
                .require_git(false)
                .build()
                .filter_map(|e| e.ok())
                .map(|e| e.into_path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "ipynb"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Error::usage(format!("{}: no such file or directory", path.display())));
        }
    }
    Ok(files)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::usage_because(format!("{}: cannot read", path.display()), e))
}

struct Parsed {
    report: FileReport,
    documents: Vec<yaml::Document>,
}

pub fn lint(files: &[PathBuf], options: &LintOptions) -> Result<LintReport> {
    let mut store = SchemaStore::default();
    store.sources.push("CRDs among the linted files".into());
    if !options.crd_dirs.is_empty() {
        store.sources.push(format!("{} CRD folders (--crds, lint.crds)", options.crd_dirs.len()));
    }
    if !options.rendered.is_empty() {
        store.sources.push(format!("the CRDs of {} operators", options.rendered.len()));
    }
    if let Some((openapi, version)) = &options.cluster_openapi {
        store.use_cluster(openapi.clone(), version);
        store.sources.push(format!("the cluster's /openapi/v2 (Kubernetes {version})"));
    }
    if !options.schema_locations.is_empty() {
        let parsed = options.schema_locations.iter().map(|l| locations::Location::parse(l)).collect();
        let mut remote = locations::Locations::new(parsed, options.offline);
        for (crd, origin) in remote.crds() {
            store.add_fallback_crd(&crd, origin);
        }
        store.sources.append(&mut remote.misses);
        store.locations = Some(remote);
    } else {
        store.sources.push("no schema locations".into());
    }
    for (origin, text) in &options.rendered {
        for doc in yaml::documents(Path::new(origin), text).unwrap_or_default() {
            if doc.value["kind"] == "CustomResourceDefinition" {
                store.add_crd(&doc.value, origin.clone());
            }
        }
    }
    for file in expand(&options.crd_dirs)? {
        let text = read(&file)?;
        for doc in yaml::documents(&file, &text).unwrap_or_default() {
            if doc.value["kind"] == "CustomResourceDefinition" {
                store.add_crd(&doc.value, file.display().to_string());
            }
        }
    }
    let mut parsed = Vec::new();
    for path in files {
        let text = read(path)?;
        let name = path.display().to_string();
        let mut report = FileReport { path: path.clone(), name, text, documents: 0, findings: Vec::new() };
        if notebook::is_notebook(path) {
            report.documents = 1;
            let given =
                options.pipeline_parameters.iter().find(|(p, _, _)| p == path).map(|(_, g, at)| (g, at.as_str()));
            report.findings = notebook::check(path, &report.text, given);
            parsed.push(Parsed { report, documents: Vec::new() });
            continue;
        }
        // A scenario is read as `run` reads it: strictly, its CEL compiled, its files found.
        if crate::plan::scenario::is_scenario(&report.text) {
            report.documents = 1;
            match crate::plan::scenario::read(path, &report.text, &options.metrics) {
                Ok(_) => {}
                Err(Error::Input { path: at, line, column, message, hint }) => {
                    let message = match hint {
                        Some(hint) => format!("{message} (help: {hint})"),
                        None => message,
                    };
                    // A mistake in a file the scenario applies is named with its own place.
                    let (message, line, column) = match at == *path {
                        true => (message, line, column),
                        false => (format!("{}:{line}:{column}: {message}", at.display()), 1, 1),
                    };
                    let mut f = Finding::new("scenario", Severity::Error, "", message);
                    (f.line, f.column) = (line as usize, column as usize);
                    report.findings.push(f);
                }
                Err(other) => return Err(other),
            }
            parsed.push(Parsed { report, documents: Vec::new() });
            continue;
        }
        let documents = match yaml::documents(path, &report.text) {
            Ok(docs) => docs,
            Err(Error::Input { line, column, message, .. }) => {
                let rule = "yaml-syntax";
                let mut f = Finding::new(rule, Severity::Error, "", message);
                (f.line, f.column) = (line as usize, column as usize);
                report.findings.push(f);
                Vec::new()
            }
            Err(other) => return Err(other),
        };
        // CRDs among the linted files describe the custom resources beside them.
        for doc in documents.iter().filter(|d| d.value["kind"] == "CustomResourceDefinition") {
            store.add_crd(&doc.value, report.name.clone());
        }
        report.documents = documents.len();
        if documents.is_empty() && report.findings.is_empty() {
            let mut f = Finding::new("empty-file", Severity::Error, "", crate::plan::EMPTY_FILE.into());
            (f.line, f.column) = (1, 1);
            report.findings.push(f);
        }
        parsed.push(Parsed { report, documents });
    }
    let files = parsed.into_iter().map(|p| check_file(p, &mut store, options)).collect();
    Ok(LintReport { files })
}

fn check_document(doc: &Value, store: &mut SchemaStore) -> Vec<Finding> {
    if kfp::is_platform_spec(doc) {
        return Vec::new();
    }
    if kfp::is_pipeline(doc) {
        return kfp::check(doc);
    }
    let mut out = Vec::new();
    let named = doc.pointer("/metadata/generateName").and_then(Value::as_str).is_some_and(|g| !g.is_empty());
    for (pointer, what) in [("/apiVersion", "apiVersion"), ("/kind", "kind"), ("/metadata/name", "metadata.name")] {
        if pointer == "/metadata/name" && named {
            continue;
        }
        if doc.pointer(pointer).and_then(Value::as_str).is_none_or(str::is_empty) {
            let at = if doc.pointer(pointer).is_some() { pointer } else { "" };
            out.push(Finding::new("object-identity", Severity::Error, at, format!("object without {what}")));
        }
    }
    let (Some(api_version), Some(kind)) = (doc["apiVersion"].as_str(), doc["kind"].as_str()) else { return out };
    match store.lookup(api_version, kind) {
        Lookup::Found(schema) => {
            for v in schema.check(doc) {
                out.push(Finding::new(
                    "schema",
                    Severity::Error,
                    &v.pointer,
                    format!("{} (against {})", v.message, schema.origin),
                ));
            }
            out.extend(schema.rules.check(doc, &schema.origin));
        }
        Lookup::UnknownVersion(served) => out.push(Finding::new(
            "schema",
            Severity::Error,
            "/apiVersion",
            format!("{kind} has no version {api_version}; its CRD serves {}", served.join(", ")),
        )),
        Lookup::Unknown(tried) => out.push(Finding::new(
            "not-checked",
            Severity::Note,
            "/kind",
            format!(
                "no schema for {kind} ({api_version}); tried: {}. Add its CRD with --crds DIR or lint.crds, list the operator that brings it, or name a schema location (--schema-location URL, lint.schemaLocations)",
                tried.join("; ")
            ),
        )),
        Lookup::Broken(e) => out.push(Finding::new("schema", Severity::Error, "/kind", e)),
    }
    out.extend(rules::check(doc, !CLUSTER_SCOPED.contains(&kind)));
    out
}

fn check_file(parsed: Parsed, store: &mut SchemaStore, options: &LintOptions) -> FileReport {
    let Parsed { mut report, documents } = parsed;
    let mut per_doc: Vec<(usize, Vec<Finding>)> = Vec::new();
    let parameters = options.pipeline_parameters.iter().find(|(p, _, _)| *p == report.path);
    for (i, doc) in documents.iter().enumerate() {
        let mut findings = check_document(&doc.value, store);
        if let Some((_, given, at)) = parameters.filter(|_| kfp::is_pipeline(&doc.value)) {
            findings.extend(kfp::check_parameters(&doc.value, given, at));
        }
        let findings: Vec<Finding> =
            findings.into_iter().filter(|f| !options.allow.iter().any(|a| a == f.rule)).collect();
        if !findings.is_empty() {
            per_doc.push((i, findings));
        }
    }
    if !per_doc.is_empty() {
        // Positions are worked out only for files that have something to show.
        let index = positions::index(&report.text);
        for (i, findings) in per_doc {
            let doc = &documents[i];
            let map = index.iter().find(|m| m.get("").is_some_and(|p| p.line as u64 == doc.line));
            for mut f in findings {
                let at = map.and_then(|m| positions::locate(m, &f.pointer));
                match at {
                    Some(p) => (f.line, f.column, f.span) = (p.line, p.column, (p.offset, p.len)),
                    None => (f.line, f.column) = (doc.line as usize, doc.column as usize),
                }
                report.findings.push(f);
            }
        }
    }
    for f in &mut report.findings {
        f.file = report.name.clone();
        if f.span == (0, 0) && f.line > 0 {
            f.span = (line_offset(&report.text, f.line) + f.column.saturating_sub(1), 1);
        }
    }
    report.findings.sort_by_key(|f| (f.line, f.column, f.severity));
    // A note says something about a kind or a rule, not a document: once per file.
    let mut told = std::collections::HashSet::new();
    report.findings.retain(|f| f.rule != "not-checked" || told.insert(f.message.clone()));
    report
}

fn line_offset(text: &str, line: usize) -> usize {
    text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(name: &str, text: &str, allow: &[&str]) -> Vec<(String, usize)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let options = LintOptions { allow: allow.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let report = lint(&[path], &options).expect("lint");
        report.files[0].findings.iter().map(|f| (f.rule.to_string(), f.line)).collect()
    }

    const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox:1.36\n          resources: {requests: {cpu: 10m}}\n";

    #[test]
    fn a_clean_job_has_no_finding() {
        assert_eq!(lint_text("ok.yaml", JOB, &[]), vec![]);
    }

    #[test]
    fn every_rule_fires_where_it_should() {
        let bad = JOB
            .replace("name: j\n", "name: j\n  namespace: kubeflow\n")
            .replace("restartPolicy: Never", "restartPolicy: OnFailure")
            .replace("image: busybox:1.36", "image: busybox\n          imagePullPolicy: Always")
            .replace("          resources: {requests: {cpu: 10m}}\n", "        - image: python:3.12@sha256:abc\n          imagePullPolicy: Always\n          resources: {requests: {cpu: 1}}\n");
        let found = lint_text("bad.yaml", &bad, &[]);
        assert_eq!(
            found,
            vec![
                ("hard-coded-namespace".into(), 5),
                ("restart-policy-hides-failures".into(), 9),
                ("no-resource-requests".into(), 11),
                ("image-not-pinned".into(), 12),
                ("pull-always-unpinned".into(), 13),
                ("schema".into(), 14),
                ("container-without-name".into(), 14),
            ],
            "{bad}"
        );
        let allowed = lint_text("bad.yaml", &bad, &["no-resource-requests", "hard-coded-namespace"]);
        assert_eq!(allowed.len(), 5);
    }

    #[test]
    fn syntax_and_identity_errors_have_positions() {
        assert_eq!(lint_text("dup.yaml", "kind: Job\nkind: Pod\n", &[]), vec![("yaml-syntax".into(), 2)]);
        let found = lint_text(
            "anon.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
            &[],
        );
        assert_eq!(found, vec![("object-identity".into(), 1)]);
    }
}
