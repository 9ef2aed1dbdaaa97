//! Metric assertions over the TEST STAND-IN training operator's /metrics, which serves the
//! real v1 job counters and controller-runtime's reconcile series (`tests/fixtures/metrics`):
//! the built-in profile's assertions and an override's, that must hold and must not; the
//! namespace-less one inconclusive when two cases overlap; an unsupported function refused at
//! load. Read through `result.json`, junitparser and the evidence folder.

mod support;

use serde_json::Value;
use support::{case, junit, repo, result_json, run_suite, stdout};

fn verdicts(result: &Value) -> Vec<(String, String)> {
    result["metrics"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|c| (c["name"].as_str().unwrap_or("").into(), c["verdict"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

fn verdict_of(result: &Value, name: &str) -> String {
    verdicts(result)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {result:#}"))
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
    let created = passes["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|c| c["name"] == "the operator counted the job"))
        .cloned()
        .unwrap_or_default();
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
    let cases = junit(&artifacts.join("junit.xml"));
    let out_text = case(&cases, "examples/counted-once.yaml")["system_out"].as_str().unwrap_or("").to_string();
    assert!(out_text.contains("metrics \"counted twice\" (promql): failed"), "{out_text}");
    support::no_namespace_left(&cases);
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
        let panics = result["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|c| c["name"] == "no reconcile panics"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(panics["verdict"], "inconclusive", "{result:#}");
        assert_eq!(panics["overlapping"], serde_json::json!([other]), "{panics:#}");
        // What names the case's namespace is judged all the same.
        assert_eq!(verdict_of(&result, "the operator counted the job"), "passed", "{result:#}");
    }
}

#[test]
fn an_unsupported_promql_function_is_refused_at_its_position_when_the_suite_loads() {
    let out = support::kubevet()
        .args(["list", "--suite"])
        .arg(repo().join("tests/fixtures/metrics/kubevet.unsupported.yaml"))
        .output()
        .expect("kubevet list");
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("kubevet.unsupported.yaml:11:22: metric assertion: the function rate is not supported; use one of increase, delta, last_over_time, absent"), "{err}");
}
