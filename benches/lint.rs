//! Lint benchmark: a generated corpus of 10,000 documents (Jobs, PyTorchJobs, TrainJobs and
//! compiled pipelines, a few with mistakes) linted on one thread, beside the Python tool
//! kubernetes-validate (PyPI) checking the corpus's built-in kinds (the Jobs), strictly and
//! against the same Kubernetes version.
//!
//! Run: cargo bench --bench lint (needs `pip install kubernetes-validate` for the peer line).
//! Environment: BENCH_DOCS (10000).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use kubevet::lint::{self, LintOptions, Severity, schema::BUILTIN_VERSION};

const DOCS_PER_FILE: usize = 100;

fn job(i: usize) -> String {
    let typo = if i.is_multiple_of(97) { "imagePullPolcy" } else { "imagePullPolicy" };
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: job-{i}\n  labels: {{app: bench, index: \"{i}\"}}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: registry.example/app:1.{i}\n          {typo}: IfNotPresent\n          command: [\"sh\", \"-c\", \"echo {i}\"]\n          env:\n            - {{name: INDEX, value: \"{i}\"}}\n          resources:\n            requests: {{cpu: 100m, memory: 64Mi}}\n            limits: {{memory: 128Mi}}\n"
    )
}

fn pytorchjob(i: usize) -> String {
    let replica = |rtype: &str, n: usize| {
        format!(
            "    {rtype}:\n      replicas: {n}\n      restartPolicy: Never\n      template:\n        spec:\n          containers:\n            - name: pytorch\n              image: registry.example/torch:2.{i}\n              command: [\"python3\", \"train.py\", \"--epochs=1\"]\n              resources:\n                requests: {{cpu: \"1\", memory: 1Gi}}\n"
        )
    };
    format!(
        "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata:\n  name: pt-{i}\nspec:\n  runPolicy: {{cleanPodPolicy: None, backoffLimit: 2}}\n  pytorchReplicaSpecs:\n{}{}",
        replica("Master", 1),
        replica("Worker", 1 + i % 3)
    )
}

/// Every 53rd breaks a CRD rule (`numProcPerNode` must be at least 1).
fn trainjob(i: usize) -> String {
    let procs = if i.is_multiple_of(53) { 0 } else { 1 };
    format!(
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata:\n  name: tj-{i}\nspec:\n  runtimeRef:\n    name: torch-distributed\n  trainer:\n    numNodes: {}\n    numProcPerNode: {procs}\n    image: registry.example/trainer:0.{i}\n    command: [torchrun, train.py]\n    resourcesPerNode:\n      requests: {{cpu: \"2\"}}\n",
        1 + i % 4
    )
}

fn pipeline(i: usize) -> String {
    format!(
        "components:\n  comp-step:\n    executorLabel: exec-step\ndeploymentSpec:\n  executors:\n    exec-step:\n      container:\n        image: python:3.12\n        command: [python3, -c, \"print({i})\"]\npipelineInfo:\n  name: pipeline-{i}\nroot:\n  dag:\n    tasks:\n      step:\n        componentRef:\n          name: comp-step\n        taskInfo:\n          name: step\nschemaVersion: 2.1.0\nsdkVersion: kfp-2.14.3\n"
    )
}

/// Writes the corpus; returns all files, and the files holding only built-in kinds (for the peer).
fn write_corpus(dir: &Path, docs: usize) -> (Vec<PathBuf>, Vec<PathBuf>, usize) {
    let (mut all, mut builtin, mut builtin_docs) = (Vec::new(), Vec::new(), 0);
    let mut i = 0;
    while i < docs {
        let file_index = i / DOCS_PER_FILE;
        let n = DOCS_PER_FILE.min(docs - i);
        // 40% Jobs, 25% PyTorchJobs, 15% TrainJobs, 20% pipelines, one kind per file.
        let (kind, make): (&str, fn(usize) -> String) = match file_index % 20 {
            0..=7 => ("jobs", job),
            8..=12 => ("pytorchjobs", pytorchjob),
            13..=15 => ("trainjobs", trainjob),
            _ => ("pipelines", pipeline),
        };
        let text = (i..i + n).map(make).collect::<Vec<_>>().join("---\n");
        let path = dir.join(format!("{file_index:04}-{kind}.yaml"));
        std::fs::write(&path, text).expect("write corpus");
        if kind == "jobs" {
            builtin.push(path.clone());
            builtin_docs += n;
        }
        all.push(path);
        i += n;
    }
    (all, builtin, builtin_docs)
}

fn main() {
    let docs: usize = std::env::var("BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, builtin_files, builtin_docs) = write_corpus(dir.path(), docs);
    // The Kubeflow CRDs are read from ../shared/data (beside the repository), as users pass theirs.
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/crds");
    let options = LintOptions { crd_dirs: vec![crds], ..Default::default() };

    let start = Instant::now();
    let report = lint::lint(&files, &options).expect("lint runs");
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(report.documents(), docs, "every document is read");
    let count = |rule: &str| report.files.iter().flat_map(|f| &f.findings).filter(|f| f.rule == rule).count();
    let (typos, broken_rules) = (count("schema"), count("crd-rule"));
    eprintln!(
        "kubevet: {} files, {docs} documents in {seconds:.3}s on one thread; {} errors ({typos} schema, {broken_rules} CRD rules), {} warnings, {} notes",
        files.len(),
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Note)
    );
    let ours = docs as f64 / seconds;

    let peer_start = Instant::now();
    let peer = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--no-warn", "-k", &format!("{BUILTIN_VERSION}.0")])
        .args(&builtin_files)
        .output();
    let peer_seconds = peer_start.elapsed().as_secs_f64();
    match peer {
        Ok(out) if out.status.code().is_some_and(|c| c <= 1) => {
            let failures = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("ERROR")).count();
            let theirs = builtin_docs as f64 / peer_seconds;
            eprintln!("kubernetes-validate: {builtin_docs} Job documents in {peer_seconds:.2}s; {failures} rejected");
            println!("peer: docs_per_s={theirs:.0}");
            println!("ratio: kubevet/peer={:.1}", ours / theirs);
        }
        Ok(out) => eprintln!("kubernetes-validate failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("kubernetes-validate not run ({e}): pip install kubernetes-validate"),
    }
    println!("lint: docs={docs} docs_per_s={ours:.0}");
    let mut rules = kubevet::lint::crd_rules::RuleCounts::default();
    for entry in std::fs::read_dir(options.crd_dirs[0].join("trainer.kubeflow.org")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Ok(crd) = serde_saphyr::from_str::<serde_json::Value>(&text) {
            rules.add(kubevet::lint::crd_rules::count_in_crd(&crd));
        }
    }
    println!(
        "crd_rules: trainer_total={} evaluated={} transition={} unsupported={} violations_found={broken_rules}",
        rules.total, rules.evaluated, rules.transition, rules.unsupported
    );
}
