//! Metric assertions over what a case's own workload serves while it runs (a training script's
//! counter and gauge on :9090, `tests/fixtures/metrics-workload`): read through the API server's
//! pod proxy every couple of seconds until the verdict, every read kept; assertions that hold
//! and one that does not; an endpoint behind a token filter named as the infrastructure error
//! it is. Read through `result.json`, junitparser and prometheus_client's parser.

mod support;

use support::{case, junit, metric_check as check, repo, result_json, run_suite, stdout};

#[test]
fn a_training_scripts_own_metrics_are_read_while_it_runs_and_asserted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let html = dir.path().join("workload-metrics-report.html");
    let out = support::kubevet()
        .args(["run", "--no-history", "--suite"])
        .arg(repo().join("tests/fixtures/metrics-workload/kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "the token-filtered case errs: {}{}", stdout(&out), support::stderr(&out));

    let trained = result_json(&artifacts, "examples.serves-metrics");
    assert_eq!(trained["outcome"], "passed", "{trained:#}");
    let namespace = trained["namespace"].as_str().expect("namespace").to_string();
    let steps = check(&trained, "trained ten steps");
    assert_eq!(steps["verdict"], "passed", "{steps:#}");
    // The series carry the pod's namespace and name, as Prometheus' Kubernetes discovery adds.
    let series = format!("train_steps_total{{namespace={namespace:?},pod=\"serves-metrics-master-0\"}}");
    assert_eq!(steps["after"], serde_json::json!([[series, 10.0]]), "{steps:#}");
    assert_eq!(steps["before"], serde_json::json!([]), "nothing ran before the case: {steps:#}");
    let loss = check(&trained, "the loss fell");
    assert_eq!(loss["verdict"], "passed", "{loss:#}");
    assert!(loss["result"][0][1].as_f64().is_some_and(|v| v < 0.2), "{loss:#}");

    // Every read kept, its route and time first, and readable by prometheus_client.
    let folder = artifacts.join("examples.serves-metrics/metrics");
    let mut reads: Vec<_> = std::fs::read_dir(&folder)
        .expect("metrics evidence")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("training-script-serves-metrics-master-0-"))
        })
        .collect();
    reads.sort();
    assert!(reads.len() >= 2, "read more than once while it ran: {reads:?}");
    let last = reads.last().expect("a read");
    let text = std::fs::read_to_string(last).expect("read kept");
    assert!(
        text.starts_with(&format!(
            "# kubevet: /api/v1/namespaces/{namespace}/pods/serves-metrics-master-0:9090/proxy/metrics at "
        )),
        "{text}"
    );
    let families = support::exposition(last);
    let counter = families.iter().find(|f| f["name"] == "train_steps").expect("train_steps read");
    assert_eq!((counter["type"].as_str(), counter["samples"][0]["value"].as_f64()), (Some("counter"), Some(10.0)));
    let notes = trained["collectProblems"].to_string();
    assert!(
        notes.contains(&format!("metrics source training-script: {} reads of 1 pods, 1 answered", reads.len())),
        "{notes}"
    );

    // The report, in a real headless Chromium: each assertion with its verdict and every
    // series it read before (nothing: the script did not exist), after, and the change.
    let dom = support::chromium_dom(&format!("file://{}", html.display()));
    let table = dom.find("id=\"metric-assertions\"").map(|i| &dom[i..i + dom[i..].find("</table>\n").unwrap_or(0)]);
    let table = table.expect("the report's metric assertions");
    let row =
        table.find("trained ten steps").map(|i| &table[i..i + table[i..].find("</tr>\n").unwrap_or(0)]).unwrap_or("");
    assert!(row.contains("class=\"cell passed\">passed</td>"), "{row}");
    assert!(
        row.contains("<td class=\"before\">—</td><td class=\"after\">10</td><td class=\"change\">+10</td>"),
        "{row}"
    );
    assert!(row.contains(&format!("namespace=\"{namespace}\"")), "{row}");

    // The endpoint wants a token: an infrastructure error naming the route, not a verdict.
    let filtered = result_json(&artifacts, "examples.needs-token");
    assert_eq!(
        (filtered["outcome"].as_str(), filtered["class"].as_str()),
        (Some("error"), Some("infrastructure")),
        "{filtered:#}"
    );
    let reason = filtered["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("metrics source token-filtered at /api/v1/namespaces/"), "{reason}");
    assert!(
        reason
            .contains("/pods/needs-token-master-0:8443/proxy/metrics answered 401: the endpoint wants a bearer token"),
        "{reason}"
    );
    let cases = junit(&artifacts.join("junit.xml"));
    assert!(case(&cases, "examples/needs-token.yaml")["result"] == "error", "{cases:#?}");
    support::no_namespace_left(&cases);
}

#[test]
fn a_workload_metric_short_of_its_assertion_fails_the_case_as_the_examples_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    let out = run_suite(&repo().join("tests/fixtures/metrics-workload/kubevet.undertrained.yaml"), &artifacts);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), support::stderr(&out));
    let result = result_json(&artifacts, "examples.serves-metrics");
    assert_eq!((result["outcome"].as_str(), result["class"].as_str()), (Some("failed"), Some("test")), "{result:#}");
    assert_eq!(check(&result, "trained a hundred steps")["verdict"], "failed");
    let reason = result["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("metric assertion \"trained a hundred steps\" did not hold: increase(train_steps_total[1m]) >= 100 → no series (read: train_steps_total{"),
        "{reason}"
    );
    assert!(reason.ends_with("} 10)"), "the last read is the script's last step: {reason}");
}
