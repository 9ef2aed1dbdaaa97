//! Pipeline benchmark: N pipeline cases at once on the TEST STAND-IN KFP API server, and the
//! same N runs waited for by KFP's own SDK (`wait_for_run_completion`, 5 s polling) in the same
//! session. Detection latency is from the moment a run's Workflow ended (the stand-in's
//! millisecond annotation; Argo's own `finishedAt` has one-second resolution) to the moment
//! kubevet saw it (`pipeline.seenEndedAt` in result.json) or the SDK's wait returned. Also KFP
//! and Kubernetes API requests per pipeline case.
//!
//! Needs the test cluster with the stand-in installed (tests/cluster/up,
//! tests/standin-kfp/install) and the kfp SDK. Run: cargo bench --bench pipelines
//! The stand-in plays KFP 2.17.0 (retry nodes, a driver pod per task) with a persistence lag
//! of BENCH_LAG_SECONDS (10): KFP reports the run's end that long after its Workflow's, so the
//! verdict latency (the Workflow's end to kubevet's verdict, which waits for KFP's state) is
//! printed beside the detection latency, and the SDK's wait meets the same lag.
//! Environment: KUBEVET_TEST_KUBECONFIG, BENCH_N (20), BENCH_LAG_SECONDS (10).

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;

const KFP: &str = "http://127.0.0.1:8888";

/// A one-task pipeline whose task takes about two seconds.
const PIPELINE: &str = r#"components:
  comp-work:
    executorLabel: exec-work
deploymentSpec:
  executors:
    exec-work:
      container:
        command: [sh, -c, "echo working; sleep 2; echo done"]
        image: kubevet.test/busybox:1.35
pipelineInfo:
  name: bench-work
  description: "standin: persistence-lag-seconds=LAG"
root:
  dag:
    tasks:
      work:
        componentRef:
          name: comp-work
        taskInfo:
          name: work
schemaVersion: 2.1.0
sdkVersion: kfp-2.15.2
"#;

fn millis(text: &str) -> f64 {
    text.parse::<jiff::Timestamp>().map(|t| t.as_millisecond() as f64).unwrap_or(f64::NAN)
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default()
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let lag: f64 = std::env::var("BENCH_LAG_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let pipeline = PIPELINE.replace("LAG", &lag.to_string());
    let kubeconfig =
        std::env::var("KUBEVET_TEST_KUBECONFIG").unwrap_or_else(|_| "/var/lib/kubevet-testcluster/kubeconfig".into());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("examples")).expect("examples");
    std::fs::write(
        dir.path().join("kubevet.yaml"),
        format!("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata:\n  name: bench-pipelines\ndefaults:\n  concurrency: {n}\n  timeout: 5m\n"),
    )
    .expect("suite");
    for i in 0..n {
        std::fs::write(dir.path().join("examples").join(format!("p-{i:03}.yaml")), &pipeline).expect("pipeline");
    }
    let artifacts = dir.path().join("artifacts");
    let out = Command::new(env!("CARGO_BIN_EXE_kubevet"))
        .env("KUBEVET_CACHE", dir.path().join("cache"))
        .args(["run", "--no-history", "--suite"])
        .arg(dir.path().join("kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .expect("kubevet runs");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let mut detect = Vec::new();
    let mut verdict = Vec::new();
    let mut kfp_requests = 0.0;
    for i in 0..n {
        let case = artifacts.join(format!("examples.p-{i:03}"));
        let result = read(&case.join("result.json"));
        let workflow = read(&case.join("workflow.json"));
        let ended = workflow
            .pointer("/metadata/annotations/kubevet.test~1finished-at")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let seen = result.pointer("/pipeline/seenEndedAt").and_then(Value::as_str).unwrap_or_default();
        detect.push(millis(seen) - millis(ended));
        let waited = result.pointer("/pipeline/stateLagSeconds").and_then(Value::as_f64).unwrap_or(f64::NAN);
        verdict.push(millis(seen) - millis(ended) + waited * 1000.0);
        kfp_requests += result.pointer("/pipeline/requests").and_then(Value::as_f64).unwrap_or(0.0);
    }
    let run = read(&artifacts.join("run.json"));
    let k8s_requests = run.pointer("/cells/0/requests/sent").and_then(Value::as_f64).unwrap_or(f64::NAN);

    let file = dir.path().join("examples/p-000.yaml");
    let peer = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pipelines_sdk_peer.py"))
        .arg(KFP)
        .arg(&file)
        .arg(n.to_string())
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("python3 runs the SDK peer");
    assert!(peer.status.success(), "{}", String::from_utf8_lossy(&peer.stderr));
    let peer: Value =
        serde_json::from_slice(peer.stdout.rsplit(|b| *b == b'\n').find(|l| !l.is_empty()).unwrap_or_default())
            .expect("the peer's JSON");
    let mut sdk: Vec<f64> = peer["latencies_ms"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();

    let (k50, k99) = (support::percentile(&mut detect, 50.0), support::percentile(&mut detect, 99.0));
    let (v50, v99) = (support::percentile(&mut verdict, 50.0), support::percentile(&mut verdict, 99.0));
    let (s50, s99) = (support::percentile(&mut sdk, 50.0), support::percentile(&mut sdk, 99.0));
    println!(
        "pipelines: n={n} lag_s={lag} kubevet_detect_p50_ms={k50:.0} kubevet_detect_p99_ms={k99:.0} kubevet_verdict_p50_ms={v50:.0} kubevet_verdict_p99_ms={v99:.0} sdk_wait_p50_ms={s50:.0} sdk_wait_p99_ms={s99:.0} sdk_over_kubevet_verdict_p50={:.2} kfp_requests_per_case={:.1} k8s_requests_per_case={:.1}",
        s50 / v50.max(1.0),
        kfp_requests / n as f64,
        k8s_requests / n as f64
    );
}
