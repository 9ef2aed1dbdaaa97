//! Policy rules: things that are valid Kubernetes but make an example fail, flake or mislead.
//! Each is named, on by default, and can be allowed in the suite (`lint.allow`) or with
//! `--allow RULE`.

use serde_json::Value;

use super::finding::{Finding, Severity};

pub struct Rule {
    pub name: &'static str,
    pub summary: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule {
        name: "image-not-pinned",
        summary: "a container image has no tag or uses :latest, so the example changes under you",
    },
    Rule {
        name: "pull-always-unpinned",
        summary: "imagePullPolicy: Always with an image not pinned by digest pulls whatever the tag points to today",
    },
    Rule {
        name: "hard-coded-namespace",
        summary: "metadata.namespace is set, so the example cannot run in a namespace of its own",
    },
    Rule {
        name: "no-resource-requests",
        summary: "a container has no resources.requests, so scheduling is unpredictable on a busy cluster",
    },
    Rule { name: "container-without-name", summary: "a container has no name" },
    Rule {
        name: "restart-policy-hides-failures",
        summary: "restartPolicy OnFailure or Always in a job restarts failed containers in place, hiding failures",
    },
];

/// Kinds whose pods are batch work: restarting in place hides a failure there.
fn is_job_like(kind: &str) -> bool {
    matches!(kind, "Job" | "CronJob" | "PyTorchJob" | "TFJob" | "MPIJob" | "XGBoostJob" | "PaddleJob" | "JAXJob")
}

/// An image is pinned when it names a digest, or a tag other than latest.
fn tag_state(image: &str) -> (bool, bool) {
    if image.contains('@') {
        return (true, true);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => (tag != "latest", false),
        None => (false, false),
    }
}

fn visit<'a>(value: &'a Value, pointer: String, f: &mut impl FnMut(&str, &'a Value, String)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                f(k, v, child.clone());
                visit(v, child, f);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                visit(v, format!("{pointer}/{i}"), f);
            }
        }
        _ => {}
    }
}

/// Every rule over one Kubernetes object; `namespaced` is false for cluster-scoped kinds.
pub fn check(doc: &Value, namespaced: bool) -> Vec<Finding> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    let warn = |rule, pointer: &str, message: String| Finding::new(rule, Severity::Warning, pointer, message);
    if namespaced && let Some(ns) = doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        out.push(warn(
            "hard-coded-namespace",
            "/metadata/namespace",
            format!("namespace {ns:?} is hard-coded; leave it out so the example runs wherever it is applied"),
        ));
    }
    let job_like = is_job_like(kind);
    visit(doc, String::new(), &mut |key, value, pointer| {
        if matches!(key, "containers" | "initContainers")
            && let Some(containers) = value.as_array()
        {
            for (i, c) in containers.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                let name = c["name"].as_str();
                if name.is_none_or(str::is_empty) {
                    out.push(warn("container-without-name", &at, "container without a name".into()));
                }
                let label = name.unwrap_or("(unnamed)");
                if let Some(image) = c["image"].as_str() {
                    let (pinned, digest) = tag_state(image);
                    if !pinned {
                        out.push(warn("image-not-pinned", &format!("{at}/image"), format!("container {label}: image {image:?} is not pinned (no tag, or :latest); use a version tag or a digest")));
                    }
                    if c["imagePullPolicy"] == "Always" && !digest {
                        out.push(warn("pull-always-unpinned", &format!("{at}/imagePullPolicy"), format!("container {label}: imagePullPolicy Always with {image:?}, which is not pinned by digest")));
                    }
                }
                if c.pointer("/resources/requests").and_then(Value::as_object).is_none_or(|r| r.is_empty()) {
                    out.push(warn("no-resource-requests", &at, format!("container {label} has no resources.requests")));
                }
            }
        }
        if job_like && key == "restartPolicy" && matches!(value.as_str(), Some("OnFailure" | "Always")) {
            out.push(warn("restart-policy-hides-failures", &pointer, format!("restartPolicy {} in a {kind} restarts failed containers in place: the failure is hidden unless it repeats past the backoff limit; use Never (or ExitCode for training jobs)", value.as_str().unwrap_or_default())));
        }
    });
    out
}
