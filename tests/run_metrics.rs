//! Metric assertions over the TEST STAND-IN training operator's /metrics, which serves the
//! real v1 job counters and controller-runtime's reconcile series (`tests/fixtures/metrics`):
//! the built-in profile's assertions and an override's, that must hold and must not; the
//! namespace-less one inconclusive when two cases overlap; an unsupported function refused at
//! load. Read through `result.json`, junitparser and the evidence folder.

mod support;

use serde_json::Value;
use support::{case, junit, metric_check, repo, result_json, run_suite, stdout};

fn verdict_of(result: &Value, name: &str) -> String {
    metric_check(result, name)["verdict"].as_str().unwrap_or("").to_string()
}

#[test]
fn metric_assertions_hold_or_fail_on_what_the_operator_counted_in_the_cases_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/metrics/kubevet.yaml"), &artifacts);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "one assertion fails: {text}{}", support::stderr(&out));

    let passes = result_json(&artifacts, "examples.passes");
    assert_eq!(passes["outcome"], "passed", "{passes:#}");
    for name in [
        "no reconcile panics",
        "the operator counted the job",
        "the operator counted its success",
        "reconciled without errors",
    ] {
        assert_eq!(verdict_of(&passes, name), "passed", "{name}: {passes:#}");
    }
    assert_eq!(verdict_of(&passes, "the operator counted its failure"), "not judged");
    let created = metric_check(&passes, "the operator counted the job").clone();
    let namespace = passes["namespace"].as_str().expect("namespace").to_string();
    assert_eq!(
        created["expect"],
        format!("increase(training_operator_jobs_created_total{{job_namespace=\"{namespace}\"}}[1m]) >= 1")
    );
    assert_eq!(created["result"][0][1], 1.0, "{created:#}");

    // Failed as the suite expects: its failure counted, its success not judged.
    let fails = result_json(&artifacts, "examples.fails");
    assert_eq!(fails["outcome"], "passed", "{fails:#}");
    assert_eq!(verdict_of(&fails, "the operator counted its failure"), "passed");
    assert_eq!(verdict_of(&fails, "the operator counted its success"), "not judged");

    // The override's assertion asks for two jobs where the operator counted one.
    let once = result_json(&artifacts, "examples.counted-once");
    assert_eq!((once["outcome"].as_str(), once["class"].as_str()), (Some("failed"), Some("test")), "{once:#}");
    assert!(
        once["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("metric assertion \"counted twice\" did not hold: sum(increase("),
        "{once:#}"
    );
    assert_eq!(verdict_of(&once, "counted twice"), "failed");

    // Both snapshots kept, each with its route and time.
    let evidence = artifacts.join("examples.passes/metrics");
    for when in ["before", "after"] {
        let scrape =
            std::fs::read_to_string(evidence.join(format!("training-operator-{when}.txt"))).expect("scrape kept");
        assert!(
            scrape.starts_with(
                "# kubevet: /api/v1/namespaces/kubeflow/services/training-operator:8080/proxy/metrics at "
            ),
            "{scrape}"
        );
        assert!(scrape.contains("controller_runtime_reconcile_panics_total"), "{scrape}");
    }
    read_by_prometheus_client(&evidence.join("training-operator-after.txt"), &namespace, &created);
    let cases = junit(&artifacts.join("junit.xml"));
    let out_text = case(&cases, "examples/counted-once.yaml")["system_out"].as_str().unwrap_or("").to_string();
    assert!(out_text.contains("metrics \"counted twice\" (promql): failed"), "{out_text}");
    support::no_namespace_left(&cases);
}

/// What the TEST STAND-IN operator served, as a real consumer (prometheus_client's parser) reads
/// it: the v1 families with their types and help, the case's job counted in its namespace, and
/// every series kubevet reported for `check` with the value prometheus_client reads.
fn read_by_prometheus_client(scrape: &std::path::Path, namespace: &str, check: &Value) {
    let families = support::exposition(scrape);
    let family = |name: &str| {
        families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name} in {families:#?}"))
    };
    let created = family("training_operator_jobs_created");
    assert_eq!(
        (created["type"].as_str(), created["help"].as_str()),
        (Some("counter"), Some("Counts number of jobs created"))
    );
    assert!(
        created["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["name"] == "training_operator_jobs_created_total"
                && s["labels"] == serde_json::json!({"job_namespace": namespace, "framework": "pytorch"})
                && s["value"] == 1.0),
        "{created:#}"
    );
    assert_eq!(family("controller_runtime_reconcile")["type"], "counter");
    assert_eq!(family("process_start_time_seconds")["type"], "gauge");
    let read: Vec<(String, f64)> = families
        .iter()
        .flat_map(|f| f["samples"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            let labels = s["labels"].as_object().cloned().unwrap_or_default();
            let mut pairs: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or(""))).collect();
            pairs.sort();
            (
                format!("{}{{{}}}", s["name"].as_str().unwrap_or(""), pairs.join(",")),
                s["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    let reported = check["after"].as_array().cloned().unwrap_or_default();
    assert!(!reported.is_empty(), "{check:#}");
    for series in reported {
        let (name, value) = (series[0].as_str().unwrap_or(""), series[1].as_f64());
        assert!(
            read.iter().any(|(n, v)| n == name && Some(*v) == value),
            "kubevet read {name} {value:?}; prometheus_client: {read:?}"
        );
    }
}

#[test]
fn an_assertion_over_series_of_no_namespace_is_inconclusive_while_another_case_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/metrics/kubevet.overlap.yaml"), &artifacts);
    assert_eq!(out.status.code(), Some(0), "inconclusive fails nothing: {}{}", stdout(&out), support::stderr(&out));
    for (id, other) in
        [("examples.passes", "examples/counted-once.yaml"), ("examples.counted-once", "examples/passes.yaml")]
    {
        let result = result_json(&artifacts, id);
        let panics = metric_check(&result, "no reconcile panics");
        assert_eq!(panics["verdict"], "inconclusive", "{result:#}");
        assert_eq!(panics["overlapping"], serde_json::json!([other]), "{panics:#}");
        // What names the case's namespace is judged all the same.
        assert_eq!(verdict_of(&result, "the operator counted the job"), "passed", "{result:#}");
    }
}

#[test]
fn an_unsupported_promql_function_is_refused_at_its_position_when_the_suite_loads() {
    let err = support::refused_at_load(&repo().join("tests/fixtures/metrics/kubevet.unsupported.yaml"));
    assert!(err.contains("kubevet.unsupported.yaml:11:22: metric assertion: the function rate is not supported; use one of increase, delta, last_over_time, absent"), "{err}");
}

/// The first line a watch prints: `kubectl get --watch`, under `timeout`, so that a pod that
/// never comes fails the test instead of hanging it.
fn first_watched(args: &[&str]) -> String {
    use std::io::BufRead;
    let mut watch = std::process::Command::new("timeout")
        .args(["90", "kubectl", "--kubeconfig"])
        .arg(support::kubeconfig())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl watch runs");
    let mut line = String::new();
    let read = watch.stdout.take().map(|out| std::io::BufReader::new(out).read_line(&mut line));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(matches!(read, Some(Ok(n)) if n > 0), "the watch saw nothing: {args:?}");
    line.trim().to_string()
}

#[test]
fn an_operator_restarted_mid_case_counts_from_zero_and_only_what_a_lower_bound_proves_is_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let kubevet = support::kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/metrics/kubevet.restart.yaml"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(&artifacts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubevet runs");
    // Once the job's pod runs (the old operator counted the job), the operator restarts.
    let pod = first_watched(&[
        "get",
        "pods",
        "-A",
        "-l",
        "training.kubeflow.org/job-name=restarted-midway",
        "--field-selector",
        "status.phase=Running",
        "-o",
        "name",
        "--watch",
    ]);
    assert!(pod.starts_with("pod/restarted-midway"), "{pod}");
    support::kubectl_ok(&["-n", "kubeflow", "rollout", "restart", "deployment/standin-training-operator"]);
    support::kubectl_ok(&[
        "-n",
        "kubeflow",
        "rollout",
        "status",
        "deployment/standin-training-operator",
        "--timeout=90s",
    ]);
    let out = kubevet.wait_with_output().expect("kubevet ends");
    assert_eq!(out.status.code(), Some(0), "inconclusive fails nothing: {}{}", stdout(&out), support::stderr(&out));

    let result = result_json(&artifacts, "restart.restarted-midway");
    assert_eq!(result["outcome"], "passed", "{result:#}");
    let check = |name: &str| metric_check(&result, name);
    // A lower bound proves the job was counted, and its success.
    for name in ["the operator counted the job", "the operator counted its success"] {
        let c = check(name);
        assert_eq!(c["verdict"], "passed", "{c:#}");
        assert!(
            c["notes"][0].as_str().unwrap_or("").starts_with("the endpoint restarted between the snapshots"),
            "{c:#}"
        );
    }
    // It proves neither that no reconcile panicked nor that two jobs were not counted.
    for name in ["no reconcile panics", "counted twice"] {
        let c = check(name);
        assert_eq!(c["verdict"], "inconclusive", "{c:#}");
        assert!(
            c["notes"].as_array().into_iter().flatten().any(|n| n.as_str().unwrap_or("").contains("is lost")),
            "{c:#}"
        );
    }
    // The two snapshots are of two processes.
    let start = |when: &str| {
        let path = artifacts.join(format!("restart.restarted-midway/metrics/training-operator-{when}.txt"));
        let families = support::exposition(&path);
        families.iter().find(|f| f["name"] == "process_start_time_seconds").map(|f| f["samples"][0]["value"].clone())
    };
    let (before, after) = (start("before"), start("after"));
    assert!(before.is_some() && before != after, "{before:?} {after:?}");
}

#[test]
fn a_scenarios_metrics_step_judges_what_the_operator_counted_since_its_first_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/metrics/kubevet.scenario.yaml"), &artifacts);
    assert_eq!(out.status.code(), Some(1), "one scenario fails: {}{}", stdout(&out), support::stderr(&out));

    let counted = result_json(&artifacts, "scenario-steps.counted");
    assert_eq!(counted["outcome"], "passed", "{counted:#}");
    for name in ["counted the job", "counted its success", "no reconcile panics"] {
        assert_eq!(verdict_of(&counted, name), "passed", "{name}: {counted:#}");
    }
    let step = counted["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["action"] == "metrics"))
        .cloned()
        .unwrap_or_default();
    assert_eq!((step["name"].as_str(), step["outcome"].as_str()), (Some("the operator counted it"), Some("passed")));
    // The snapshot before the first step, and the one the step read, each kept.
    let evidence = artifacts.join("scenario-steps.counted/metrics");
    for file in ["training-operator-before.txt", "training-operator-line-11.txt"] {
        let scrape = std::fs::read_to_string(evidence.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            scrape.starts_with("# kubevet: /api/v1/namespaces/kubeflow/services/training-operator:8080/proxy/metrics")
        );
    }

    let twice = result_json(&artifacts, "scenario-steps.counted-twice");
    assert_eq!((twice["outcome"].as_str(), twice["class"].as_str()), (Some("failed"), Some("test")), "{twice:#}");
    let reason = twice["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("steps[3] \"counted twice\" (metrics, line 11) failed: metric assertion \"counted twice\" did not hold: increase("),
        "{reason}"
    );
    assert!(reason.ends_with("} 1)"), "what it read: {reason}");
    let skipped = twice["steps"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "never reached")).cloned();
    assert_eq!(skipped.map(|s| s["outcome"].clone()), Some(Value::from("skipped")));
}

#[test]
fn a_scenarios_metrics_step_with_when_is_refused_at_its_position() {
    let err = support::refused_at_load(&repo().join("tests/fixtures/metrics/kubevet.scenario-when.yaml"));
    assert!(
        err.contains("scenario-when/when.yaml:6:7: `when` is for an example's assertions: a scenario's step is judged when it runs"),
        "{err}"
    );
}
