//! `kubevet lint` through the binary, on the real upstream files in ../shared/data and on
//! fixtures: findings at file:line:col, every output format read by a real consumer, exit codes.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{kubevet, repo, stderr, stdout};

fn shared_data() -> PathBuf {
    let dir = repo().join("../shared/data");
    assert!(dir.is_dir(), "the upstream test data is expected at {} (shared/ beside the repository)", dir.display());
    dir
}

/// `kubevet lint` with the upstream Kubeflow CRDs of ../shared/data as a CRD folder: the
/// project keeps no copy of them.
fn lint(args: &[&str]) -> std::process::Command {
    let mut command = kubevet();
    command.current_dir(repo()).arg("lint").args(args).arg("--crds").arg(shared_data().join("crds"));
    command
}

fn lint_json(args: &[&str]) -> (i32, Value) {
    let out = lint(args).args(["--output", "json"]).output().expect("kubevet runs");
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), json)
}

/// (file name, line, rule) of every finding, notes included.
fn findings(report: &Value) -> Vec<(String, u64, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
            (file, f["line"].as_u64().unwrap_or(0), f["rule"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn real_upstream_examples_lint_with_the_expected_findings() {
    let data = shared_data();
    let (code, report) = lint_json(&[data.join("examples").to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    let found = findings(&report);
    let expected: Vec<(&str, u64, &str)> = vec![
        // The compiled pipeline the KFP API server rejects: empty pipelineInfo.name.
        ("invalid-no_name.yaml", 16, "kfp-pipeline"),
        // Trainer v2: valid, their CRDs' CEL rules (evaluated offline) included.
        ("torch_distributed-runtime.yaml", 37, "no-resource-requests"),
        // Training operator v1: namespace kubeflow hard-coded, OnFailure, no requests, Always pulls, :latest.
        ("pytorch-simple.yaml", 5, "hard-coded-namespace"),
        ("pytorch-simple.yaml", 10, "restart-policy-hides-failures"),
        ("pytorch-simple.yaml", 14, "no-resource-requests"),
        ("pytorch-simple.yaml", 16, "pull-always-unpinned"),
        ("pytorch-simple.yaml", 23, "restart-policy-hides-failures"),
        ("pytorch-simple.yaml", 27, "no-resource-requests"),
        ("pytorch-simple.yaml", 29, "pull-always-unpinned"),
        ("tensorflow-simple.yaml", 5, "hard-coded-namespace"),
        ("tensorflow-simple.yaml", 10, "restart-policy-hides-failures"),
        ("tensorflow-simple.yaml", 14, "no-resource-requests"),
        ("tensorflow-simple.yaml", 15, "image-not-pinned"),
        ("xgboostjob.yaml", 13, "no-resource-requests"),
        ("xgboostjob.yaml", 14, "image-not-pinned"),
        ("xgboostjob.yaml", 18, "pull-always-unpinned"),
        ("xgboostjob.yaml", 32, "no-resource-requests"),
        ("xgboostjob.yaml", 33, "image-not-pinned"),
        ("xgboostjob.yaml", 37, "pull-always-unpinned"),
    ];
    let expected: Vec<(String, u64, String)> = expected.into_iter().map(|(f, l, r)| (f.into(), l, r.into())).collect();
    assert_eq!(found, expected);
    assert_eq!(
        (report["files"].as_u64(), report["documents"].as_u64(), report["errors"].as_u64()),
        // 11 files: shared/data gained three container-only pipelines, which lint clean.
        (Some(11), Some(11), Some(1))
    );
}

#[test]
fn an_unknown_field_deep_in_a_pod_template_is_found_on_its_line() {
    let (code, report) = lint_json(&["tests/fixtures/lint/pytorchjob-typo.yaml"]);
    assert_eq!(code, 1);
    let f = &report["findings"].as_array().expect("findings")[0];
    assert_eq!(f["rule"], "schema");
    assert_eq!((f["line"].as_u64(), f["column"].as_u64()), (Some(20), Some(15)));
    let message = f["message"].as_str().unwrap_or("");
    assert!(
        message
            .starts_with("unknown field \"spec.pytorchReplicaSpecs.Master.template.spec.containers[0].volumeMount\""),
        "{message}"
    );
}

#[test]
fn text_output_shows_the_source_line_and_a_caret() {
    let out = lint(&["tests/fixtures/lint/pytorchjob-typo.yaml"]).output().expect("kubevet runs");
    let text = stdout(&out);
    assert!(text.contains("tests/fixtures/lint/pytorchjob-typo.yaml:20:15"), "{text}");
    assert!(text.contains("20 │               volumeMount:"), "{text}");
    assert!(text.contains("───┬───"), "{text}");
    assert!(text.ends_with("kubevet lint: 1 files, 1 documents: 1 errors, 0 warnings, 0 notes\n"), "{text}");
}

#[test]
fn malformed_yaml_is_a_finding_with_its_position_and_a_missing_file_is_exit_2() {
    let (code, report) = lint_json(&["tests/fixtures/lint/malformed.yaml"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&report), vec![("malformed.yaml".to_string(), 6, "yaml-syntax".to_string())]);
    let out = kubevet()
        .current_dir(repo())
        .args(["lint", "tests/fixtures/lint/no-such-file.yaml"])
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-file.yaml: no such file or directory"), "{}", stderr(&out));
}

#[test]
fn the_suite_picks_the_files_and_allows_rules() {
    let (code, report) = lint_json(&["--suite", "tests/fixtures/lint/kubevet.yaml"]);
    let rules: Vec<String> = findings(&report).into_iter().map(|(_, _, r)| r).collect();
    assert_eq!(code, 1, "{report}");
    assert_eq!(rules, ["schema"], "the typo is found; the allowed rule is not reported");
    let (code, report) = lint_json(&["tests/fixtures/lint/clean-job.yaml"]);
    assert_eq!((code, report["findings"].as_array().map(Vec::len)), (0, Some(0)));
}

#[test]
fn sarif_and_junit_outputs_are_well_formed() {
    let out = lint(&["tests/fixtures/lint/pytorchjob-typo.yaml", "--output", "sarif"]).output().expect("runs");
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "schema");
    assert_eq!(result["level"], "error");
    assert_eq!(result["locations"][0]["physicalLocation"]["region"]["startLine"], 20);
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules.iter().any(|r| r["id"] == "image-not-pinned"));

    let dir = tempfile::tempdir().expect("tempdir");
    let out =
        lint(&["tests/fixtures/lint/pytorchjob-typo.yaml", "tests/fixtures/lint/clean-job.yaml", "--output", "junit"])
            .output()
            .expect("runs");
    let path = dir.path().join("lint.xml");
    std::fs::write(&path, &out.stdout).expect("write");
    let cases = support::junit(&path);
    assert_eq!(cases.len(), 2);
    assert_eq!(support::case(&cases, "tests/fixtures/lint/pytorchjob-typo.yaml")["result"], "failure");
    assert_eq!(support::case(&cases, "tests/fixtures/lint/clean-job.yaml")["result"], "passed");
}

#[test]
fn with_a_kubeconfig_the_clusters_own_schema_decides() {
    let (code, report) = lint_json(&["tests/fixtures/lint/job-newer-fields.yaml"]);
    assert_eq!((code, report["findings"].as_array().map(Vec::len)), (0, Some(0)), "valid for Kubernetes 1.33");
    let kubeconfig = support::kubeconfig();
    let (code, report) =
        lint_json(&["tests/fixtures/lint/job-newer-fields.yaml", "--kubeconfig", kubeconfig.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    let messages: Vec<&str> =
        report["findings"].as_array().expect("findings").iter().filter_map(|f| f["message"].as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown field \"spec.suspend\" (against the cluster's schema (Kubernetes v1.20.2))",
            "unknown field \"spec.podFailurePolicy\" (against the cluster's schema (Kubernetes v1.20.2))",
        ]
    );
}

#[test]
fn the_suites_operators_provide_crds_for_the_examples() {
    let (code, report) = lint_json(&["--suite", "tests/fixtures/lint-operator/kubevet.yaml"]);
    assert_eq!(code, 1);
    let messages: Vec<&str> =
        report["findings"].as_array().expect("findings").iter().filter_map(|f| f["message"].as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("spec.size: 0 is less than the minimum of 1 (against operator widgets"),
        "{}",
        messages[0]
    );
    assert!(messages[1].starts_with("unknown field \"spec.colour\" (against operator widgets"), "{}", messages[1]);
}

/// `python3 -m http.server` on 127.0.0.1 serving a folder, stopped when dropped.
struct Served {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, log: PathBuf) -> Served {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new("python3")
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("python3 serves");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let port = line.split("port ").nth(1).and_then(|r| r.split_whitespace().next()).expect("the port").to_string();
    Served { child, url: format!("http://127.0.0.1:{port}"), log }
}

fn lint_with_locations(cache: &std::path::Path, args: &[&str]) -> Value {
    let out = kubevet()
        .env("KUBEVET_CACHE", cache)
        .current_dir(repo())
        .arg("lint")
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("kubevet runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
}

#[test]
fn kubeflow_crds_come_from_a_schema_location_once_and_then_from_the_cache() {
    let data = shared_data();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let examples = [data.join("examples/training-v1"), data.join("examples/trainer-v2")];
    let examples: Vec<&str> = examples.iter().map(|p| p.to_str().expect("utf-8")).collect();
    // The reference: the same CRDs given as a folder.
    let (_, expected) = lint_json(&examples);
    let server = serve(&data.join("crds"), dir.path().join("server.log"));
    // kubeconform's template convention, over the layout of shared/data/crds.
    let template = format!("{}/{{{{.Group}}}}/{{{{ .ResourceKind }}}}s.yaml", server.url);
    let args: Vec<&str> = examples.iter().copied().chain(["--schema-location", &template]).collect();
    let report = lint_with_locations(&cache, &args);
    assert_eq!(findings(&report), findings(&expected), "the same findings as with the CRDs as files");
    let messages: Vec<&str> =
        report["findings"].as_array().into_iter().flatten().filter_map(|f| f["message"].as_str()).collect();
    assert!(!messages.iter().any(|m| m.contains("no schema for")), "{messages:?}");
    let fetched = std::fs::read_to_string(&server.log).expect("server log");
    assert_eq!(fetched.matches("GET /kubeflow.org/pytorchjobs.yaml").count(), 1, "fetched once:\n{fetched}");
    assert!(fetched.contains("GET /trainer.kubeflow.org/clustertrainingruntimes.yaml"), "{fetched}");
    drop(server);

    // The server is gone: --offline lints from the cache alone.
    let offline: Vec<&str> = args.iter().copied().chain(["--offline"]).collect();
    assert_eq!(findings(&lint_with_locations(&cache, &offline)), findings(&expected));
    // With an empty cache, offline has nothing: each kind is a note naming what was tried.
    let report = lint_with_locations(&dir.path().join("empty-cache"), &offline);
    let notes: Vec<&str> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["rule"] == "not-checked")
        .filter_map(|f| f["message"].as_str())
        .collect();
    let pytorch = notes.iter().find(|m| m.starts_with("no schema for PyTorchJob (kubeflow.org/v1)")).expect("a note");
    assert!(pytorch.contains("kubeflow.org/pytorchjobs.yaml: not in the cache (--offline)"), "{pytorch}");
    assert!(pytorch.contains("--schema-location URL"), "says how to add one: {pytorch}");
}

#[test]
fn a_plain_crd_url_is_a_schema_location_too() {
    let data = shared_data();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&data.join("crds"), dir.path().join("server.log"));
    let url = format!("{}/kubeflow.org/pytorchjobs.yaml", server.url);
    let report = lint_with_locations(
        &dir.path().join("cache"),
        &["tests/fixtures/lint/pytorchjob-typo.yaml", "--schema-location", &url],
    );
    let schema: Vec<&Value> =
        report["findings"].as_array().into_iter().flatten().filter(|f| f["rule"] == "schema").collect();
    assert_eq!(schema.len(), 1, "{report}");
    assert_eq!((schema[0]["line"].as_u64(), schema[0]["column"].as_u64()), (Some(20), Some(15)));
    assert!(schema[0]["message"].as_str().unwrap_or("").contains(&format!("against the CRD at {url}")), "{report}");
}

#[test]
fn the_crds_own_cel_rules_are_evaluated_offline_at_the_field_that_breaks_them() {
    let (code, report) = lint_json(&["tests/fixtures/crd-rules"]);
    assert_eq!(code, 1);
    let found: Vec<(String, u64, u64, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
            let message = f["message"].as_str().unwrap_or("");
            (file, f["line"].as_u64().unwrap_or(0), f["column"].as_u64().unwrap_or(0), message.to_string())
        })
        .collect();
    let expected = [
        ("runtime-breaks-rules.yaml", 7, 3, "spec.mlPolicy: Only one of the policy can be configured"),
        (
            "runtime-breaks-rules.yaml",
            11,
            7,
            "spec.mlPolicy.mpi.numProcPerNode: NumProcPerNode in mpiPolicy must be >= 1",
        ),
        ("trainjob-breaks-rules.yaml", 6, 3, "the object: metadata.name must match RFC 1035 DNS label format"),
        (
            "trainjob-breaks-rules.yaml",
            10,
            3,
            "spec.managedBy: ManagedBy must be trainer.kubeflow.org/trainjob-controller",
        ),
        (
            "trainjob-breaks-rules.yaml",
            13,
            7,
            "spec.initializer.dataset.storageUri: storageUri may be empty, or it must be a valid URI",
        ),
        (
            "trainjob-breaks-rules.yaml",
            16,
            5,
            "spec.trainer.numProcPerNode: numProcPerNode must be greater than or equal to 1",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((file, line, column, message), (want_file, want_line, want_column, want)) in found.iter().zip(expected) {
        assert_eq!((file.as_str(), *line, *column), (want_file, want_line, want_column), "{message}");
        assert!(message.starts_with(want), "{message}");
        assert!(message.contains("(rule `"), "the rule itself is named: {message}");
    }
    assert!(report["findings"].as_array().into_iter().flatten().all(|f| f["rule"] == "crd-rule"));
}

#[test]
fn a_pipelines_run_parameters_are_checked_against_its_declarations() {
    let (code, report) = lint_json(&["--suite", "tests/fixtures/pipelines/kubevet.bad-parameters.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    let mut found: Vec<(String, u64, String)> =
        findings(&report).into_iter().filter(|(_, _, rule)| rule == "pipeline-parameters").collect();
    found.sort();
    // At the declarations: text (producer-consumer-param-pipeline.yaml:86), the pipeline's
    // root for the undeclared name (typed-parameters.yaml:27), epochs (:43).
    assert_eq!(
        found,
        vec![
            ("producer-consumer-param-pipeline.yaml".into(), 86, "pipeline-parameters".into()),
            ("typed-parameters.yaml".into(), 27, "pipeline-parameters".into()),
            ("typed-parameters.yaml".into(), 43, "pipeline-parameters".into()),
        ],
        "{report:#}"
    );
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "pipeline-parameters")
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains(
            "\"epochs\" is declared NUMBER_INTEGER, but the suite gives \"3\" (write a whole number without quotes)"
        ) && m.contains("kubevet.bad-parameters.yaml:9")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m
                .contains("\"learning_rate\" is not declared by the pipeline (it declares: epochs, rate, verbose)")),
        "{messages:#?}"
    );

    // The run says the same before anything is uploaded: each case an error, not run.
    let out = kubevet()
        .current_dir(repo())
        .args(["list", "--suite", "tests/fixtures/pipelines/kubevet.bad-parameters.yaml"])
        .output()
        .expect("kubevet list");
    let text = stdout(&out);
    assert!(text.contains("(error: ") && text.contains("\"text\" is declared STRING, but the suite gives 5"), "{text}");
}

#[test]
fn a_pipeline_name_kfp_refuses_is_found_at_its_line_with_one_it_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("train_pipeline.yaml");
    let text = std::fs::read_to_string(
        repo().join("tests/fixtures/pipelines/examples/container-component-with-no-inputs.yaml"),
    )
    .expect("fixture")
    .replace("pipelineInfo:\n  name: v2-container-component-no-input", "pipelineInfo:\n  name: Train_Pipeline");
    std::fs::write(&file, &text).expect("write");
    let line = text.lines().position(|l| l.contains("name: Train_Pipeline")).expect("the name's line") as u64 + 1;
    let (code, report) = lint_json(&[file.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(findings(&report), vec![("train_pipeline.yaml".to_string(), line, "kfp-pipeline-name".to_string())]);
    let message = report["findings"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("^[a-z0-9][a-z0-9-]{0,127}$") && message.contains("write \"train-pipeline-"), "{message}");
}

#[test]
fn a_concat_placeholder_kfp_hands_on_as_text_is_a_warning_at_its_argument() {
    let file = repo().join("tests/fixtures/lint-kfp/concat-greeting.yaml");
    let text = std::fs::read_to_string(&file).expect("fixture");
    let line =
        text.lines().position(|l| l.contains(r#"'{"Concat": ["hello, ""#)).expect("the argument's line") as u64 + 1;
    let (code, report) = lint_json(&[file.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "a warning is a finding: {report:#}");
    assert_eq!(findings(&report), vec![("concat-greeting.yaml".to_string(), line, "kfp-placeholder".to_string())]);
    let finding = &report["findings"][0];
    assert_eq!(finding["severity"], "warning", "{finding:#}");
    let message = finding["message"].as_str().unwrap_or_default();
    assert!(message.contains("executor exec-greet") && message.contains("JSON text"), "{message}");
}

#[test]
fn notebooks_are_linted_as_run_reads_them() {
    let (code, report) = lint_json(&["--suite", "tests/fixtures/notebooks/kubevet.yaml"]);
    assert_eq!((code, findings(&report)), (0, vec![]), "the test notebooks are clean: {report}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(repo().join("tests/fixtures/notebooks/examples/local-only.ipynb"), dir.path().join("untagged.ipynb"))
        .expect("copy");
    std::fs::write(dir.path().join("broken.ipynb"), "{\n \"nbformat\": 4,\n \"cells\": [\n").expect("write");
    std::fs::write(
        dir.path().join("kubevet.yaml"),
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nexamples:\n  include: [\"*.ipynb\"]\noverrides:\n  - path: untagged.ipynb\n    parameters: {epochs: 2}\n",
    )
    .expect("write");
    let suite = dir.path().join("kubevet.yaml");
    let (code, report) = lint_json(&["--suite", suite.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{report}");
    let found = findings(&report);
    assert_eq!(
        found,
        [
            ("broken.ipynb".to_string(), 4, "notebook".to_string()),
            ("untagged.ipynb".to_string(), 1, "notebook-parameters".to_string())
        ],
        "{report}"
    );
}
