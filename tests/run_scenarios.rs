//! Scenarios (`kind: Scenario`) through the `kubevet` binary on the test cluster: the project's
//! own `scenarios/` and a fixture per step behaviour, each step read back from `result.json`
//! and JUnit (junitparser); strict reading of scenario files (exit 2 at file:line:col, and the
//! same mistakes as `kubevet lint` findings).

mod support;

use std::path::Path;

use serde_json::Value;
use support::{case, junit, kubevet, repo, run_suite, stderr, stdout};

fn result(artifacts: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(artifacts.join(id).join("result.json"))
        .unwrap_or_else(|e| panic!("{id}/result.json: {e}"));
    serde_json::from_str(&text).expect("result.json is JSON")
}

/// (section, name, action, outcome) of every step, and the detail of each.
fn steps(r: &Value) -> Vec<(String, String, String, String)> {
    r["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("section"), text("name"), text("action"), text("outcome"))
        })
        .collect()
}

fn detail(r: &Value, name: &str) -> String {
    let step = r["steps"].as_array().into_iter().flatten().find(|s| s["name"] == name);
    step.and_then(|s| s["detail"].as_str()).unwrap_or_else(|| panic!("no detail for step {name}: {r:#}")).to_string()
}

fn row(section: &str, name: &str, action: &str, outcome: &str) -> (String, String, String, String) {
    (section.into(), name.into(), action.into(), outcome.into())
}

#[test]
fn the_projects_scenarios_run_every_step_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kubevet()
        .current_dir(repo())
        .args(["run", "--select", "scenarios/**", "--kubeconfig"])
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path())
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));

    let lifecycle = result(dir.path(), "scenarios.pytorchjob-lifecycle");
    assert_eq!(lifecycle["outcome"], "passed", "{lifecycle:#}");
    assert_eq!(lifecycle["profile"], "scenario");
    let expected = [
        ("create the job", "apply"),
        ("it runs with both workers active", "assert"),
        ("its pods run and carry the operator's labels", "assert"),
        ("the master says its epoch", "logs"),
        ("a worker knows its rank", "exec"),
        ("delete the job", "delete"),
        ("its pods are gone", "wait"),
        ("and the job too", "error"),
    ];
    assert_eq!(steps(&lifecycle), expected.map(|(n, a)| row("steps", n, a, "passed")).to_vec());
    // The Running state comes only once the operator has started the pods: watched, not assumed.
    let running = &lifecycle["steps"][1];
    assert!(running["seconds"].as_f64().unwrap_or(0.0) > 0.2, "{running}");
    assert!(detail(&lifecycle, "a worker knows its rank").contains("rank=2"), "worker index 1 is rank 2");

    let rejected = result(dir.path(), "scenarios.rejected-job");
    assert_eq!(rejected["outcome"], "passed", "{rejected:#}");
    let refusal = detail(&rejected, "a Job with restartPolicy Always is refused");
    assert!(refusal.starts_with("rejected as expected: "), "{refusal}");
    assert!(refusal.contains("restartPolicy"), "{refusal}");

    // Expected to fail: the step that failed, what it saw, and the steps after it skipped.
    let failing = result(dir.path(), "scenarios.failing-assertion");
    assert_eq!(failing["outcome"], "passed");
    let reason = failing["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("failed as expected: steps[3] \"it succeeded twice\" (assert, line "), "{reason}");
    assert!(reason.contains("saw object.status.succeeded = 1"), "{reason}");
    assert_eq!(steps(&failing)[3], row("steps", "never reached", "script", "skipped"));

    let caught = result(dir.path(), "scenarios.catch-and-finally");
    assert_eq!(
        steps(&caught),
        vec![
            row("steps", &format!("settings for {}", "scenarios/catch-and-finally.yaml"), "apply", "passed"),
            row("steps", "the settings name their namespace", "script", "passed"),
            row("steps", "epochs is ten", "assert", "failed"),
            row("catch", "record the namespace", "script", "passed"),
            row("finally", "delete the settings", "delete", "passed"),
            row("finally", "they are gone", "wait", "passed"),
        ]
    );
    assert!(detail(&caught, "epochs is ten").ends_with("data.epochs: \"3\", want \"10\""));
    let namespace = caught["namespace"].as_str().expect("namespace");
    let recorded = std::fs::read_to_string(dir.path().join("scenarios.catch-and-finally/namespace-at-failure.txt"))
        .expect("the catch step's script kept its file in the case's artifacts");
    assert!(recorded.contains("configmap/settings"), "{recorded}");
    assert!(detail(&caught, "the settings name their namespace").contains(namespace));
    assert!(dir.path().join("scenarios.catch-and-finally/catch/01-record-the-namespace.log").is_file());

    // Every step is a line of the case's <system-out>, read by junitparser.
    let cases = junit(&dir.path().join("junit.xml"));
    let out = case(&cases, "scenarios/catch-and-finally.yaml")["system_out"].as_str().unwrap_or_default().to_string();
    assert!(out.contains("step catch \"record the namespace\" (script): passed"), "{out}");
    assert!(out.contains("step steps \"epochs is ten\" (assert): failed"), "{out}");
}

#[test]
fn each_step_behaviour_on_fixtures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_suite(&repo().join("tests/fixtures/scenarios/kubevet.yaml"), dir.path());
    assert_eq!(out.status.code(), Some(1), "the timed-out scenario fails the run\n{}", stderr(&out));

    let wait = result(dir.path(), "wait-condition");
    assert_eq!(wait["outcome"], "passed", "{wait:#}");
    assert_eq!(steps(&wait)[1], row("steps", "complete", "wait", "passed"));
    // {{case}} and {{namespace}} are substituted in the objects applied and in the match.
    assert!(detail(&wait, "labelled and succeeded").contains("exists and matches"));
    // The pods its steps made are measured as an example's are, their samples kept.
    let usage = wait["usage"].as_array().cloned().unwrap_or_default();
    assert!(
        usage.iter().any(|u| u["pod"].as_str().is_some_and(|p| p.starts_with("slow-")) && u["container"] == "main"),
        "{wait:#}"
    );
    assert!(dir.path().join("wait-condition/usage-samples.json").is_file());

    let appears = result(dir.path(), "error-appears");
    assert_eq!(appears["outcome"], "passed", "{appears:#}");
    let step = &appears["steps"][1];
    assert_eq!(step["outcome"], "failed");
    assert_eq!(step["detail"], "ConfigMap late exists");
    let seconds = step["seconds"].as_f64().unwrap_or(99.0);
    assert!(seconds < 15.0, "the error step fails when the object appears, not at the end of its hold: {seconds}");

    let exec = result(dir.path(), "exec-fails");
    let reason = exec["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exit code 4 in pod sleeper; output: checking kv-exec-fails-"), "{reason}");
    assert!(
        std::fs::read_to_string(dir.path().join("exec-fails/steps/03-a-check-inside.log"))
            .is_ok_and(|t| t.starts_with("checking kv-exec-fails-"))
    );

    // Set-based selectors are the API server's: none of its pods matches `app in (…)`.
    let no_pod = result(dir.path(), "logs-of-no-pod");
    assert_eq!(no_pod["steps"][0]["detail"], "no pod matches app in (trainer, server) to read logs from");
    assert_eq!(no_pod["outcome"], "passed", "expected to fail: {no_pod:#}");

    let accepted = result(dir.path(), "accepted-not-rejected");
    let reason = accepted["reason"].as_str().unwrap_or_default();
    assert!(reason.ends_with("the API server accepted it; expected a rejection matching /Invalid value/"), "{reason}");

    let timeout = result(dir.path(), "scenario-timeout");
    assert_eq!((timeout["outcome"].as_str(), timeout["class"].as_str()), (Some("failed"), Some("timeout")));
    let reason = timeout["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the scenario's timeout (4s) ran out during steps[1] \"a configmap nobody makes\""),
        "{reason}"
    );
    assert_eq!(steps(&timeout)[1], row("finally", "finally still runs", "script", "passed"));
}

/// A suite in a fresh folder holding one scenario file.
fn bad_scenario(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kubevet.yaml"), "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\n").expect("write");
    std::fs::create_dir(dir.path().join("scenarios")).expect("mkdir");
    let file = dir.path().join("scenarios/bad.yaml");
    std::fs::write(&file, text).expect("write");
    (dir, file)
}

#[test]
fn scenario_mistakes_are_exit_2_at_file_line_col_and_lint_findings() {
    let head = "apiVersion: kubevet.dev/v1alpha1\nkind: Scenario\nspec:\n  steps:\n";
    let cases: [(&str, &str, &str); 5] = [
        (
            "    - assert: {apiVersion: v1, kind: Pod, name: p, cel: 'object.status.phase =='}\n",
            ":5:80: invalid CEL: Syntax error",
            "write a CEL expression",
        ),
        ("    - asert: {apiVersion: v1, kind: Pod, name: p}\n", ":5:7: unknown field `asert`", ""),
        (
            "    - apply: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}\n      expectError: '(unclosed'\n",
            ":6:20: invalid regular expression",
            "",
        ),
        (
            "    - assert:\n        apiVersion: v1\n        kind: Service\n        name: s\n        cel: url(object.spec.externalName).getHost() != ''\n",
            ":9:14: uses `url()`, a Kubernetes CEL function kubevet does not evaluate",
            "kubevet's CEL has the standard library",
        ),
        (
            "    - script: [cat]\n      exec: {command: [cat]}\n",
            ":5:7: a step has exactly one of apply, assert, error, wait, script, exec, logs, delete",
            "split it into two steps",
        ),
    ];
    for (body, message, hint) in cases {
        let (dir, file) = bad_scenario(&format!("{head}{body}"));
        let out = kubevet().current_dir(dir.path()).arg("list").output().expect("kubevet runs");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(&format!("{}{message}", file.display())), "{body}: {err}");
        assert!(err.contains(hint), "{body}: {err}");
        assert!(!err.contains("panicked"), "{err}");

        let out = kubevet().current_dir(dir.path()).args(["lint", "--output", "json"]).output().expect("kubevet runs");
        assert_eq!(out.status.code(), Some(1), "{body}: {}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let finding = &report["findings"][0];
        let (line, column) = {
            let mut parts = message.trim_start_matches(':').split(':');
            (
                parts.next().unwrap_or("0").parse::<u64>().unwrap_or(0),
                parts.next().unwrap_or("0").parse::<u64>().unwrap_or(0),
            )
        };
        assert_eq!(finding["rule"], "scenario", "{report:#}");
        assert_eq!((finding["line"].as_u64(), finding["column"].as_u64()), (Some(line), Some(column)), "{report:#}");
    }
}
