//! Notebook benchmark: the passing notebooks of `tests/fixtures/notebooks` run by kubevet (one
//! at a time, then four at once), and the same notebooks run by papermill in a loop in one
//! namespace, the way Kubeflow Trainer's CI runs its notebooks (`hack/e2e-run-notebook.sh`:
//! papermill per notebook, one after another, no namespace of their own), in the same
//! session. Prints kubevet's wall time over the loop's, per notebook case the time from the
//! notebook's end to kubevet's verdict (which includes waiting for the workloads a notebook
//! left running, which the loop does not), and the API requests per case.
//!
//! Needs the test cluster (tests/cluster/up), papermill and ipykernel.
//! Run: cargo bench --bench notebooks. Environment: KUBEVET_TEST_KUBECONFIG.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use serde_json::Value;

/// The fixture notebooks that pass, with the papermill parameters the fixture suite gives them.
const NOTEBOOKS: &[(&str, &[&str])] = &[
    ("creates-job", &[]),
    ("leaves-job-running", &[]),
    ("local-only", &[]),
    ("parameters", &["-p", "epochs", "3", "-p", "run_name", "tuned", "-r", "seed", "007"]),
    ("gpu-parameters", &["-p", "num_gpu", "0"]),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl").args(["--kubeconfig", kubeconfig]).args(args).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubevet on the fixture suite, those notebooks only: wall seconds, and the run's folder.
fn kubevet(kubeconfig: &str, dir: &Path, concurrency: usize) -> (f64, PathBuf) {
    // A copy of the fixture suite, at this concurrency.
    let copy = dir.join(format!("suite-{concurrency}"));
    let copied = Command::new("cp").arg("-r").arg(repo().join("tests/fixtures/notebooks")).arg(&copy).status();
    assert!(copied.is_ok_and(|s| s.success()), "copying the fixture suite");
    let suite = copy.join("kubevet.yaml");
    let fixture = std::fs::read_to_string(&suite).expect("suite");
    std::fs::write(&suite, fixture.replace("  concurrency: 4", &format!("  concurrency: {concurrency}")))
        .expect("suite");
    let artifacts = dir.join(format!("artifacts-{concurrency}"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubevet"));
    command.env("KUBEVET_CACHE", dir.join("cache")).args(["run", "--no-history", "--suite"]).arg(&suite);
    for (name, _) in NOTEBOOKS {
        command.args(["--select", &format!("examples/{name}.ipynb")]);
    }
    command.args(["--kubeconfig", kubeconfig]).arg("--artifacts").arg(&artifacts);
    let started = Instant::now();
    let out = command.output().expect("kubevet runs");
    let wall = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (wall, artifacts)
}

/// papermill on each notebook in turn, in one namespace: wall seconds.
fn papermill_loop(kubeconfig: &str, dir: &Path) -> f64 {
    let namespace = "bench-notebooks-loop";
    kubectl(kubeconfig, &["create", "namespace", namespace]);
    let config = dir.join("loop-kubeconfig");
    std::fs::copy(kubeconfig, &config).expect("kubeconfig copy");
    let config_path = config.to_str().expect("utf-8");
    kubectl(config_path, &["config", "set-context", "--current", "--namespace", namespace]);
    // The image a notebook's Job runs, built first as a CI job would (not timed).
    let image = "kubevet.test/notebook-trainer:loop";
    let context = repo().join("tests/fixtures/notebooks/trainer-image");
    let built = Command::new("docker").args(["build", "-q", "-t", image]).arg(&context).output().expect("docker runs");
    assert!(built.status.success(), "docker build: {}", String::from_utf8_lossy(&built.stderr));
    let images = format!("{{\"kubevet.test/notebook-trainer\": \"{image}\"}}");
    let started = Instant::now();
    for (name, parameters) in NOTEBOOKS {
        let input = repo().join(format!("tests/fixtures/notebooks/examples/{name}.ipynb"));
        let out = Command::new("papermill")
            .arg(&input)
            .arg(dir.join(format!("loop-{name}.ipynb")))
            .args(["--kernel", "python3", "--no-progress-bar"])
            .args(*parameters)
            .current_dir(input.parent().expect("folder"))
            .env("KUBECONFIG", &config)
            .env("KUBEVET_NAMESPACE", namespace)
            .env("KUBEVET_CASE", format!("examples/{name}.ipynb"))
            .env("KUBEVET_ARTIFACTS", dir)
            .env("KUBEVET_IMAGES", &images)
            .output()
            .expect("papermill runs");
        assert!(out.status.success(), "papermill {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let wall = started.elapsed().as_secs_f64();
    kubectl(kubeconfig, &["delete", "namespace", namespace, "--wait=true"]);
    wall
}

fn main() {
    let kubeconfig =
        std::env::var("KUBEVET_TEST_KUBECONFIG").unwrap_or_else(|_| "/var/lib/kubevet-testcluster/kubeconfig".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let loop_s = papermill_loop(&kubeconfig, dir.path());
    let (one_s, artifacts) = kubevet(&kubeconfig, dir.path(), 1);
    let (four_s, _) = kubevet(&kubeconfig, dir.path(), 4);
    let mut after = Vec::new();
    let mut requests = 0.0;
    for (name, _) in NOTEBOOKS {
        let text = std::fs::read_to_string(artifacts.join(format!("examples.{name}/result.json"))).unwrap_or_default();
        let result: Value = serde_json::from_str(&text).unwrap_or_default();
        let seconds = result.pointer("/notebook/verdictAfterSeconds").and_then(Value::as_f64).unwrap_or(f64::NAN);
        println!("notebook: case={name} verdict_after_notebook_s={seconds:.2} seconds={:.2}", result["seconds"]);
        after.push(seconds);
    }
    let run: Value = serde_json::from_str(&std::fs::read_to_string(artifacts.join("run.json")).unwrap_or_default())
        .unwrap_or_default();
    requests += run.pointer("/cells/0/requests/sent").and_then(Value::as_f64).unwrap_or(f64::NAN);
    let n = NOTEBOOKS.len();
    let (a50, amax) = (support::percentile(&mut after.clone(), 50.0), support::percentile(&mut after, 100.0));
    println!(
        "notebooks: n={n} papermill_loop_s={loop_s:.1} kubevet_serial_s={one_s:.1} kubevet_serial_over_loop={:.2} kubevet_concurrency4_s={four_s:.1} kubevet_concurrency4_over_loop={:.2} verdict_after_notebook_p50_s={a50:.2} verdict_after_notebook_max_s={amax:.2} requests_per_case={:.1}",
        one_s / loop_s,
        four_s / loop_s,
        requests / n as f64
    );
}
