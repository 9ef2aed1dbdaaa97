//! Pipeline cases through the `kubevet` binary, on the TEST STAND-IN KFP API server (installed
//! by kubevet as an operator): upstream container-only pipelines adapted to the local busybox,
//! a failing task named with its log, a Python pipeline compiled by the real SDK (a cache miss,
//! then a hit), a timeout that terminates the run, `expect: failure`, a floating `latest`
//! version that changes between two runs, an unreachable KFP; and the stand-in itself checked
//! with the official `kfp` SDK.

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;
use support::{case, junit, kubevet, repo, stderr, stdout};

/// The stand-in's API on the host (it runs on the host network, as a port-forward would give it).
const KFP: &str = "http://127.0.0.1:8888";

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/pipelines").join(name)
}

use support::result_json as result;

fn run(suite: &Path, artifacts: &Path, select: &[&str], cache: &Path) -> std::process::Output {
    let mut cmd = kubevet();
    cmd.env("KUBEVET_CACHE", cache).args(["run", "--no-history", "--suite"]).arg(suite);
    for s in select {
        cmd.args(["--select", s]);
    }
    cmd.arg("--kubeconfig").arg(support::kubeconfig()).arg("--artifacts").arg(artifacts).output().expect("kubevet runs")
}

/// The user's tasks (not their drivers): name and state.
fn tasks(r: &Value) -> Vec<(String, String)> {
    r["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["role"] == "task")
        .map(|t| {
            (t["task"].as_str().unwrap_or_default().to_string(), t["state"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn upstream_pipelines_run_and_are_judged_by_their_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = run(&fixture("kubevet.yaml"), &dir.path().join("a"), &["examples/**"], &cache);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "three cases fail: {text}");
    let a = dir.path().join("a");

    let after = result(&a, "examples.pipeline-with-after");
    assert_eq!(after["outcome"], "passed", "{after:#}");
    assert_eq!(after["profile"], "pipeline");
    // Dependency order: the third task starts after the first two ended.
    let rows = tasks(&after);
    assert_eq!(rows.len(), 3, "{after:#}");
    assert!(rows.iter().all(|(_, s)| s == "Succeeded"), "{rows:?}");
    let row =
        |t: &str| after["tasks"].as_array().unwrap().iter().find(|r| r["task"] == t && r["role"] == "task").unwrap();
    let started = |t: &str| row(t)["started"].as_str().unwrap().to_string();
    let ended = |t: &str| row(t)["ended"].as_str().unwrap().to_string();
    // Each task's driver is a row of its own, marked as such (KFP runs one pod per driver).
    let drivers = after["tasks"].as_array().unwrap().iter().filter(|r| r["role"] == "driver").count();
    assert_eq!(drivers, 3, "{after:#}");
    assert!(
        started("print-text-3") >= ended("print-text-2") && started("print-text-2") >= ended("print-text"),
        "{after:#}"
    );
    let pipeline = &after["pipeline"];
    assert_eq!(pipeline["state"], "SUCCEEDED");
    assert_eq!(pipeline["watched"], true, "followed by watching its Workflow");
    assert!(pipeline["version"].as_str().unwrap().starts_with("kv-"), "named by content hash: {pipeline}");
    assert!(pipeline["requests"].as_u64().unwrap() <= 12, "KFP requests per case: {pipeline}");
    assert!(after["cleanup"].as_str().unwrap().contains("deleted KFP run"), "{after:#}");
    // Evidence: the run as KFP reports it, the Workflow, each task pod's main log.
    let case_dir = a.join("examples.pipeline-with-after");
    let run: Value = serde_json::from_str(&std::fs::read_to_string(case_dir.join("kfp-run.json")).unwrap()).unwrap();
    assert_eq!(run["state"], "SUCCEEDED");
    let workflow: Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir.join("workflow.json")).unwrap()).unwrap();
    assert_eq!(workflow["status"]["phase"], "Succeeded");
    assert_eq!(workflow["metadata"]["labels"]["pipeline/runid"], pipeline["runId"]);
    let pod = row("print-text-3")["pod"].as_str().unwrap();
    let log = std::fs::read_to_string(case_dir.join("pods").join(pod).join("main.log")).unwrap();
    assert!(log.contains("3rd task"), "{log}");

    // An output parameter handed from one task to the next.
    let pc = result(&a, "examples.producer-consumer-param-pipeline");
    assert_eq!(pc["outcome"], "passed", "{pc:#}");
    let consumer =
        pc["tasks"].as_array().unwrap().iter().find(|t| t["task"] == "consumer" && t["role"] == "task").unwrap()["pod"]
            .as_str()
            .unwrap()
            .to_string();
    let log = std::fs::read_to_string(
        a.join("examples.producer-consumer-param-pipeline/pods").join(consumer).join("main.log"),
    )
    .unwrap();
    assert!(log.contains("Hello world, this is an output parameter"), "{log}");

    // Typed parameters from the override (an integer as a number).
    assert_eq!(result(&a, "examples.typed-parameters")["outcome"], "passed");
    assert_eq!(result(&a, "examples.container-component-with-no-inputs")["outcome"], "passed");

    // A failing task: named, with its message; the task after it never ran.
    let failing = result(&a, "examples.failing-task");
    assert_eq!(failing["outcome"], "failed");
    assert_eq!(failing["class"], "test");
    assert_eq!(failing["reason"], "pipeline run FAILED: task train failed: Error (exit code 3)", "{failing:#}");
    assert_eq!(tasks(&failing), vec![("prepare".into(), "Succeeded".into()), ("train".into(), "Failed".into())]);
    assert!(failing["seconds"].as_f64().unwrap() < 60.0, "fails fast: {failing:#}");

    // A timeout terminates the run and says which tasks were still running.
    let slow = result(&a, "examples.slow-task");
    assert_eq!(slow["class"], "timeout", "{slow:#}");
    assert!(
        slow["reason"].as_str().unwrap().contains("the run was terminated; tasks still running: sleep"),
        "{slow:#}"
    );

    // A task pod stuck pulling its image ends the case after failureGrace, as a job's would.
    let stuck = result(&a, "examples.unpullable-image");
    assert_eq!(stuck["outcome"], "failed", "{stuck:#}");
    let reason = stuck["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("pod unpullable-image-")
            && (reason.contains("ImagePullBackOff") || reason.contains("ErrImagePull")),
        "{reason}"
    );
    assert!(reason.ends_with("; the run was terminated"), "{reason}");
    assert!(stuck["seconds"].as_f64().unwrap() < 120.0, "not the 15-minute timeout: {stuck:#}");

    // JUnit, read by junitparser: the failing task's log tail in <system-out>.
    let cases = junit(&a.join("junit.xml"));
    let junit_case = case(&cases, "examples/failing-task.yaml");
    let out = junit_case["system_out"].as_str().unwrap_or_default();
    assert!(out.contains("container main") && out.contains("loss=nan"), "{junit_case:#}");
}

#[test]
fn a_python_pipeline_is_compiled_once_per_version_of_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let render = || {
        kubevet()
            .env("KUBEVET_CACHE", &cache)
            .args(["render", "--suite"])
            .arg(fixture("kubevet.yaml"))
            .output()
            .expect("kubevet render")
    };
    let first = render();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let line = stdout(&first).lines().find(|l| l.starts_with("python/hello.py")).unwrap_or_default().to_string();
    assert!(line.contains("\tmiss\t"), "first compile is a miss: {}", stdout(&first));
    let second = render();
    assert!(
        stdout(&second).lines().any(|l| l.starts_with("python/hello.py") && l.contains("\thit\t")),
        "{}",
        stdout(&second)
    );
    let compiled: Vec<_> = std::fs::read_dir(cache.join("pipelines")).unwrap().flatten().collect();
    assert_eq!(compiled.len(), 1, "one compiled file: {compiled:?}");

    // The run reuses what render compiled, and the pipeline runs.
    let out = run(&fixture("kubevet.yaml"), &dir.path().join("a"), &["python/**"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let hello = result(&dir.path().join("a"), "python.hello");
    assert_eq!(hello["outcome"], "passed", "{hello:#}");
    assert_eq!(hello["pipeline"]["compiled"], "cache hit", "{hello:#}");
    let say = hello["tasks"].as_array().unwrap().iter().find(|t| t["role"] == "task").expect("the task's row");
    let pod = say["pod"].as_str().unwrap();
    let log = std::fs::read_to_string(dir.path().join("a/python.hello/pods").join(pod).join("main.log")).unwrap();
    assert!(log.contains("said: hello from Python"), "{log}");

    // Without the SDK on PATH (and a cache of its own), the case says how to get it.
    let out = kubevet()
        .env("KUBEVET_CACHE", dir.path().join("empty-cache"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["run", "--no-history", "--select", "python/**", "--suite"])
        .arg(fixture("kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path().join("b"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let r = result(&dir.path().join("b"), "python.hello");
    assert_eq!(r["outcome"], "error", "{r:#}");
    assert!(
        r["reason"].as_str().unwrap().contains("kfp is not installed")
            && r["reason"].as_str().unwrap().contains("pip install kfp"),
        "{r:#}"
    );
}

#[test]
fn an_expected_failure_passes_and_an_unreachable_kfp_is_the_infrastructures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out =
        run(&fixture("kubevet.expect-failure.yaml"), &dir.path().join("a"), &["examples/failing-task.yaml"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let failing = result(&dir.path().join("a"), "examples.failing-task");
    assert_eq!(failing["outcome"], "passed");
    assert!(
        failing["reason"].as_str().unwrap().starts_with("failed as expected: run FAILED: task train failed"),
        "{failing:#}"
    );

    let out = run(
        &fixture("kubevet.unreachable.yaml"),
        &dir.path().join("b"),
        &["examples/pipeline-with-after.yaml"],
        &cache,
    );
    assert_eq!(out.status.code(), Some(1), "a case that did not pass: {}\n{}", stdout(&out), stderr(&out));
    let r = result(&dir.path().join("b"), "examples.pipeline-with-after");
    assert_eq!(r["outcome"], "error");
    assert_eq!(r["class"], "infrastructure");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("KFP is unreachable or unhealthy")
            && reason.contains("service no-such-kfp:http in namespace kubeflow"),
        "{reason}"
    );
}

#[test]
fn kfp_at_an_endpoint_with_a_token_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = fixture("kubevet.endpoint.yaml");
    let mut cmd = kubevet();
    cmd.env("KUBEVET_CACHE", dir.path().join("cache")).env("KUBEVET_TEST_KFP_TOKEN", "not-checked-by-the-stand-in");
    let out = cmd
        .args(["run", "--no-history", "--select", "examples/pipeline-with-after.yaml", "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(support::kubeconfig())
        .arg("--artifacts")
        .arg(dir.path().join("a"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(result(&dir.path().join("a"), "examples.pipeline-with-after")["pipeline"]["state"], "SUCCEEDED");

    // Without the variable: an infrastructure error that names it, before any request.
    let out = run(&suite, &dir.path().join("b"), &["examples/pipeline-with-after.yaml"], &dir.path().join("cache"));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let r = result(&dir.path().join("b"), "examples.pipeline-with-after");
    assert_eq!(r["class"], "infrastructure");
    assert!(r["reason"].as_str().unwrap().contains("KUBEVET_TEST_KFP_TOKEN is not set"), "{r:#}");
}

#[test]
fn without_a_workflow_kind_to_watch_the_run_is_polled_and_that_is_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No --kubeconfig: the suite's own cluster, the KWOK container.
    let out = kubevet()
        .env("KUBEVET_CACHE", dir.path().join("cache"))
        .args(["run", "--no-history", "--suite"])
        .arg(fixture("kubevet.polled.yaml"))
        .arg("--artifacts")
        .arg(dir.path().join("a"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let r = result(&dir.path().join("a"), "examples.container-component-with-no-inputs");
    assert_eq!(r["outcome"], "passed", "{r:#}");
    assert_eq!(r["pipeline"]["watched"], false, "{r:#}");
    let said =
        r["collectProblems"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("\n");
    assert!(said.contains("the run was followed by polling KFP's API"), "{r:#}");
}

/// Uploads `file` to the stand-in as version `version` of pipeline `name` with the kfp SDK.
/// A copy of a compiled pipeline under its own `pipelineInfo.name`: KFP scopes its cache by
/// that name, so no other test's kept run can answer this one's tasks from the cache.
fn renamed(file: &Path, name: &str, dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(file).expect("pipeline file");
    let mut doc: Value = serde_saphyr::from_str(&text).expect("a compiled pipeline");
    doc["pipelineInfo"]["name"] = Value::String(name.to_string());
    let copy = dir.join(format!("{name}.json"));
    std::fs::write(&copy, doc.to_string()).expect("write");
    copy
}

fn upload_version(name: &str, version: &str, file: &Path) {
    let script = r#"
import sys, kfp
name, version, path = sys.argv[1:4]
c = kfp.Client(host=sys.argv[4])
pid = c.get_pipeline_id(name)
if pid is None:
    # An upload makes the pipeline with a first version of its own, in the same second as
    # the one wanted: removed, so that "latest" is not decided by a tie of ids.
    pid = c.upload_pipeline(path, pipeline_name=name).pipeline_id
    for v in c.list_pipeline_versions(pid).pipeline_versions:
        c.delete_pipeline_version(pid, v.pipeline_version_id)
c.upload_pipeline_version(path, pipeline_version_name=version, pipeline_id=pid)
"#;
    let out = Command::new("python3").args(["-c", script, name, version]).arg(file).arg(KFP).output().expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_floating_latest_version_is_resolved_at_every_run_and_its_change_said_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let name = format!("churn-model-{}", std::process::id());
    let suite = dir.path().join("kubevet.yaml");
    std::fs::write(
        &suite,
        format!(
            "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nextends: {}\nexamples:\n  include: [\"none/**\"]\npipelines:\n  existing:\n    - name: {name}\n      version: latest\n",
            fixture("kubevet.yaml").display()
        ),
    )
    .unwrap();
    let examples = fixture("examples");
    let v3 = renamed(&examples.join("container-component-with-no-inputs.yaml"), &format!("{name}-v3"), dir.path());
    upload_version(&name, "v3", &v3);
    let out = run(&suite, &dir.path().join("a"), &[], &cache);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let first = result(&dir.path().join("a"), &format!("pipelines.{name}"));
    assert_eq!(first["pipeline"]["version"], "v3", "{first:#}");
    assert_eq!(first["pipeline"]["asked"], "latest");
    assert_eq!(first["tasks"][0]["task"], "hello-world-container");

    // KFP's created_at has one-second resolution: the new version is a second newer.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v4 = renamed(&examples.join("pipeline-with-after.yaml"), &format!("{name}-v4"), dir.path());
    upload_version(&name, "v4", &v4);
    let out = run(&suite, &dir.path().join("b"), &[], &cache);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert_eq!(first_line, format!("changed since the previous run: pipeline {name} v3 → v4"), "{text}");
    let second = result(&dir.path().join("b"), &format!("pipelines.{name}"));
    assert_eq!(second["pipeline"]["version"], "v4");
    assert_eq!(tasks(&second).len(), 3, "the new version's three tasks ran: {second:#}");
    let run_json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b/run.json")).unwrap()).unwrap();
    assert_eq!(run_json["versions"][format!("pipeline {name}")], "v4", "{run_json:#}");
    let junit_text = std::fs::read_to_string(dir.path().join("b/junit.xml")).unwrap();
    assert!(junit_text.contains(&format!("name=\"pipeline.{name}.version\" value=\"v4\"")), "{junit_text}");
}

#[test]
fn the_standin_speaks_kfp_to_the_official_sdk() {
    let out = Command::new("python3")
        .arg(repo().join("tests/standin-kfp/sdk_check.py"))
        .arg(KFP)
        .arg(fixture("examples"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(stdout(&out).lines().last().unwrap_or_default()).expect("JSON");
    assert_eq!(seen["duplicate_upload"]["status"], 409);
    assert!(seen["duplicate_upload"]["body"]["error_message"].is_string(), "the upload error shape: {seen:#}");
    let versions = seen["versions"].as_array().expect("versions");
    assert!(versions.len() == 2 && versions.iter().any(|v| v == "v2"), "the upload's version and v2: {seen:#}");
    assert_eq!(seen["experiment_again"], true);
    assert_eq!(seen["with_after"]["state"], "SUCCEEDED");
    // KFP's caching, as the SDK sees it: a second identical run's tasks are skipped, and the
    // SDK's enable_caching=False runs them.
    let cached: Vec<&str> =
        seen["cached_again"].as_array().expect("cached_again").iter().filter_map(Value::as_str).collect();
    assert_eq!(cached, ["print-text", "print-text-2", "print-text-3"], "{seen:#}");
    assert_eq!(seen["cache_off"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["producer_consumer"], "SUCCEEDED");
    assert_eq!(seen["typed"], "SUCCEEDED");
    for rule in ["undeclared_parameter", "string_for_integer", "missing_required"] {
        assert_eq!(seen[rule]["status"], 400, "{rule}: {seen:#}");
        assert_eq!(seen[rule]["body"]["code"], 3);
    }
    assert_eq!(seen["failing"]["state"], "FAILED");
    assert!(seen["failing"]["failed_tasks"].as_array().unwrap().iter().any(|t| t == "train"), "{seen:#}");
    assert_eq!(seen["terminated"], "FAILED");
    assert_eq!(seen["terminate_again"]["status"], 400);
    assert_eq!(seen["deleted_run"]["status"], 404);
    assert_eq!(seen["delete_with_versions"]["status"], 412);
}

#[test]
fn an_existing_pipeline_named_with_a_plus_a_percent_and_a_space_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    // KFP decodes a list filter twice (HTTP, then url.QueryUnescape), as the stand-in does:
    // encoded once, `+` would be a space and `%` an escape, and the pipeline never found.
    let name = format!("Churn + model 100% {}", std::process::id());
    let compiled = fixture("examples").join("container-component-with-no-inputs.yaml");
    upload_version(&name, "first cut", &renamed(&compiled, "churn-model-odd-name", dir.path()));
    let suite = dir.path().join("kubevet.yaml");
    let body = format!(
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nextends: {}\nexamples:\n  include: [\"none/**\"]\npipelines:\n  existing:\n    - name: {}\n      version: latest\n",
        fixture("kubevet.yaml").display(),
        serde_json::to_string(&name).expect("a YAML string")
    );
    std::fs::write(&suite, body).expect("write");
    let artifacts = dir.path().join("a");
    let out = run(&suite, &artifacts, &[], &cache);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let id = std::fs::read_dir(&artifacts)
        .expect("artifacts")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("pipelines."))
        .expect("the case's folder");
    let r = result(&artifacts, &id);
    assert_eq!((&r["outcome"], &r["pipeline"]["version"]), (&"passed".into(), &"first cut".into()), "{r:#}");
}

#[test]
fn a_pipelines_pods_are_measured_as_a_jobs_are_and_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("a");
    let out = run(&fixture("kubevet.usage.yaml"), &artifacts, &[], &dir.path().join("cache"));
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let burns = result(&artifacts, "usage.burns-cpu");
    let pod_of = |r: &Value, role: &str| -> Vec<String> {
        let rows = r["tasks"].as_array().into_iter().flatten().filter(|t| t["role"] == role);
        rows.filter_map(|t| t["pod"].as_str().map(str::to_string)).collect()
    };
    let (task_pod, driver_pod) = (pod_of(&burns, "task"), pod_of(&burns, "driver"));
    assert_eq!((task_pod.len(), driver_pod.len()), (1, 1), "{burns:#}");
    let usage = burns["usage"].as_array().cloned().unwrap_or_default();
    let of = |pod: &str, container: &str| {
        usage.iter().find(|u| u["pod"] == pod && u["container"] == container).cloned().unwrap_or_default()
    };

    // The task's container: its requests as KFP's driver sets them from the compiled
    // resources, and its CPU time within 10 % of what its kernel counted.
    let main = of(&task_pod[0], "main");
    assert_eq!((&main["cpuRequestCores"], &main["cpuLimitCores"]), (&0.5.into(), &1.0.into()), "{main:#}");
    assert_eq!((&main["memoryRequestBytes"], &main["memoryLimitBytes"]), (&67_108_864.0.into(), &256e6.into()));
    let log = std::fs::read_to_string(artifacts.join("usage.burns-cpu/pods").join(&task_pod[0]).join("main.log"))
        .expect("the task's log");
    let truth: f64 = log
        .lines()
        .find_map(|l| l.strip_prefix("cpu_seconds="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cpu_seconds= in {log}"));
    let measured = main["cpuSeconds"].as_f64().unwrap_or_else(|| panic!("no cpuSeconds: {main:#}"));
    let error = (measured - truth).abs() / truth;
    eprintln!(
        "accuracy: pipeline task cpu_seconds truth={truth:.3} measured={measured:.3} error={:.1}%",
        error * 100.0
    );
    assert!(error < 0.10, "{measured} against the kernel's {truth}: {main:#}");
    assert!(main["peakMemoryBytes"].as_f64().is_some_and(|b| b > 1e6), "{main:#}");
    // Its init container (the launcher's copy) and its driver (which ends within a second,
    // between two samples, so its figures are said to be of low confidence) are its too.
    assert_eq!(of(&task_pod[0], "kfp-launcher")["init"], true, "{usage:#?}");
    assert_eq!(of(&driver_pod[0], "main")["pod"], driver_pod[0].as_str(), "{usage:#?}");
    assert!(burns["collectProblems"].as_array().is_some_and(Vec::is_empty), "every kubelet read was read: {burns:#}");

    // Each case has its own pods only, in its figures and in the samples kept as its evidence,
    // though both ran at once in KFP's one namespace.
    let beside = result(&artifacts, "usage.beside-it");
    for (id, r) in [("usage.burns-cpu", &burns), ("usage.beside-it", &beside)] {
        let own: Vec<String> = pod_of(r, "task").into_iter().chain(pod_of(r, "driver")).collect();
        let measured: Vec<&str> =
            r["usage"].as_array().into_iter().flatten().filter_map(|u| u["pod"].as_str()).collect();
        assert!(!measured.is_empty() && measured.iter().all(|p| own.iter().any(|o| o == p)), "{own:?} {measured:?}");
        let kept = std::fs::read_to_string(artifacts.join(id).join("usage-samples.json")).expect("the samples");
        let kept: Value = serde_json::from_str(&kept).expect("JSON");
        let sampled: Vec<&String> = kept["series"].as_object().map(|s| s.keys().collect()).unwrap_or_default();
        assert!(!sampled.is_empty() && sampled.iter().all(|p| own.contains(p)), "{own:?} {sampled:?}");
    }
}
