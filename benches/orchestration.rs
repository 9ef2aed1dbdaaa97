//! Orchestration benchmark: N Jobs of D seconds each at concurrency C on the test cluster,
//! with the kubelet's part played by bench-pod-completer (as KWOK does), so the figures measure
//! kubevet: wall time against the ideal ceil(N/C)×D, the time a slot is held beyond the
//! workload's own D, detection latency, API requests and CPU per case. It runs twice, with the
//! kubelets sampled for each case's CPU and memory and, as the peer in the same run, without,
//! and prints what sampling costs; then the latency of one scrape through the API server's
//! proxy (a kubelet's `/metrics/resource`, `/metrics/cadvisor` and `/stats/summary`, the
//! operator's `/metrics`).
//!
//! Then the cluster's floor, measured in the same run: BENCH_FLOOR_N (40) busybox Jobs of 1–3 s
//! with the real kubelet at concurrency 10, run by `kubevet run` and, as the floor, applied 10
//! at a time with kubectl into one namespace made beforehand and waited for with `kubectl
//! wait`; prints kubevet's wall time over the floor's, without and with the floor's cleanup
//! (its namespace deleted and waited for, as kubevet waits for each case's).
//!
//! Needs the test cluster (tests/cluster/up). Run: cargo bench --bench orchestration
//! Environment: KUBEVET_TEST_KUBECONFIG, BENCH_N (200), BENCH_C (20), BENCH_D (2),
//! BENCH_FLOOR_N (40; 0 skips the floor).

mod support;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

use kubevet::{
    cluster::Cluster,
    plan,
    run::{self, RunOptions},
    suite,
};

const NODE: &str = "kubevet-bench-node";

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User plus system CPU time of this process, in milliseconds (from /proc, in clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 10.0
}

fn write_suite(dir: &Path, n: usize, c: usize) {
    std::fs::create_dir_all(dir.join("examples")).expect("suite dir");
    std::fs::write(
        dir.join("kubevet.yaml"),
        format!("apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults:\n  concurrency: {c}\n  timeout: 2m\n"),
    )
    .expect("suite");
    for i in 0..n {
        let job = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: bench-{i}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      nodeName: {NODE}\n      tolerations: [{{operator: Exists}}]\n      containers:\n        - name: main\n          image: kubevet.test/busybox:1.35\n          imagePullPolicy: Never\n"
        );
        std::fs::write(dir.join("examples").join(format!("job-{i:03}.yaml")), job).expect("example");
    }
}

fn completer(kubeconfig: &Path, d: f64, record: &Path) -> std::process::Child {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "-p", "bench-pod-completer", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building bench-pod-completer failed");
    Command::new(root.join("target/release/bench-pod-completer"))
        .arg(kubeconfig)
        .arg(NODE)
        .arg(d.to_string())
        .arg(record)
        .spawn()
        .expect("bench-pod-completer starts")
}

/// `kubectl ARGS` on the test cluster; a failure ends the benchmark.
fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// kubevet's wall time over the cluster's floor, both on the same real Jobs.
fn floor(kubeconfig: &Path, n: usize) {
    let work = tempfile::tempdir().expect("tempdir");
    let examples = work.path().join("examples");
    std::fs::create_dir_all(&examples).expect("mkdir");
    let mut files = Vec::new();
    for i in 0..n {
        let job = format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: floor-{i}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: kubevet.test/busybox:1.35\n          imagePullPolicy: IfNotPresent\n          command: [\"sleep\", \"{}\"]\n",
            1 + i % 3
        );
        let file = examples.join(format!("floor-{i:03}.yaml"));
        std::fs::write(&file, job).expect("example");
        files.push(file);
    }
    let suite = work.path().join("kubevet.yaml");
    std::fs::write(
        &suite,
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata:\n  name: floor\ndefaults:\n  concurrency: 10\n",
    )
    .expect("suite");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kubevet"))
        .args(["run", "--no-history", "--suite"])
        .arg(&suite)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--artifacts")
        .arg(work.path().join("artifacts"))
        .env("KUBEVET_CACHE", work.path().join("cache"))
        .output()
        .expect("kubevet runs");
    let kubevet_s = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "kubevet run: {}", String::from_utf8_lossy(&out.stdout));
    let namespace = format!("kubevet-floor-{}", std::process::id());
    kubectl(kubeconfig, &["create", "namespace", &namespace]);
    let start = Instant::now();
    let indices: Vec<usize> = (0..n).collect();
    for batch in indices.chunks(10) {
        let names: Vec<String> = batch.iter().map(|&i| files[i].to_string_lossy().into_owned()).collect();
        let mut apply = vec!["apply", "-n", namespace.as_str()];
        for name in &names {
            apply.extend(["-f", name.as_str()]);
        }
        kubectl(kubeconfig, &apply);
        let jobs: Vec<String> = batch.iter().map(|i| format!("job/floor-{i}")).collect();
        let mut wait = vec!["wait", "-n", namespace.as_str(), "--for=condition=complete", "--timeout=120s"];
        wait.extend(jobs.iter().map(String::as_str));
        kubectl(kubeconfig, &wait);
    }
    let floor_s = start.elapsed().as_secs_f64();
    // kubevet also leaves the cluster as it found it, and waits until it has: the floor of that
    // is one namespace deleted and waited for, which Kubernetes' namespace controller starts
    // only namespaceDeletionGracePeriod (5 s) after the delete.
    kubectl(kubeconfig, &["delete", "namespace", &namespace, "--wait=true"]);
    let cleanup_s = start.elapsed().as_secs_f64() - floor_s;
    println!(
        "floor: jobs={n} concurrency=10 kubevet_wall_s={kubevet_s:.1} floor_s={floor_s:.1} wall_over_floor={:.3} floor_cleanup_s={cleanup_s:.1} wall_over_floor_with_cleanup={:.3}",
        kubevet_s / floor_s,
        kubevet_s / (floor_s + cleanup_s)
    );
}

/// What one orchestration run measured.
struct Measured {
    report: kubevet::outcome::RunReport,
    requests: u64,
    cpu: f64,
    wall: Duration,
    returned: std::time::SystemTime,
}

fn orchestrate(runtime: &tokio::runtime::Runtime, kubeconfig: &Path, work: &Path, sample_usage: bool) -> Measured {
    let suite = suite::load(&work.join("kubevet.yaml")).expect("suite");
    let cases = plan::plan(&suite, Default::default()).expect("plan");
    runtime.block_on(async {
        let cluster = Arc::new(Cluster::connect(Some(kubeconfig), None).await.expect("cluster"));
        let (cpu0, requests0, start) = (cpu_ms(), cluster.requests(), Instant::now());
        let options = RunOptions {
            artifacts: work.join(if sample_usage { "artifacts-sampled" } else { "artifacts-unsampled" }),
            concurrency: None,
            fail_fast: false,
            keep_on_failure: false,
            github: false,
            cluster_deleted_after: false,
            sample_usage,
        };
        let report = run::run(
            &suite,
            cases,
            cluster.clone(),
            options,
            kubevet::util::interrupt::interrupt_signal(),
            Arc::new(kubevet::outcome::Quiet),
        )
        .await;
        Measured {
            report,
            requests: cluster.requests() - requests0,
            cpu: cpu_ms() - cpu0,
            wall: start.elapsed(),
            returned: std::time::SystemTime::now(),
        }
    })
}

/// The figures of one run, printed as one line; its requests and CPU per case returned.
fn print_figures(
    m: &Measured,
    completions: &HashMap<String, f64>,
    (n, c, d): (usize, usize, f64),
    sampling: &str,
) -> (f64, f64) {
    let report = &m.report;
    let passed = report.results.iter().filter(|r| r.outcome == kubevet::outcome::Outcome::Passed).count();
    let unix_ms =
        |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    let mut overhead: Vec<f64> = report.results.iter().map(|r| (r.seconds - d) * 1000.0).collect();
    let mut detect: Vec<f64> = report
        .results
        .iter()
        .filter_map(|r| {
            let pod = format!("{}/{}", r.namespace.as_deref()?, r.pods.first()?);
            Some(unix_ms(r.ended?) - completions.get(&pod)?)
        })
        .collect();
    let last_end = report.results.iter().filter_map(|r| r.finished_at).max().map(unix_ms).unwrap_or(0.0);
    let wall_s = m.wall.as_secs_f64();
    // From the last case giving its slot back to the run returning: waiting for namespaces.
    let tail_s = ((unix_ms(m.returned) - last_end) / 1000.0).max(0.0);
    let ideal_s = (n as f64 / c as f64).ceil() * d;
    eprintln!("sampling {sampling}: cases passed: {passed}/{n}; detections measured: {}", detect.len());
    for phase in ["apply", "scheduling", "running", "collecting", "cleanup"] {
        let mut seconds: Vec<f64> = report
            .results
            .iter()
            .flat_map(|r| r.phases.iter().filter(|p| p.name == phase).map(|p| p.seconds * 1000.0))
            .collect();
        eprintln!(
            "sampling {sampling}: phase {phase}: p50_ms={:.0} p99_ms={:.0}",
            support::percentile(&mut seconds, 50.0),
            support::percentile(&mut seconds, 99.0)
        );
    }
    let (requests_per_case, cpu_per_case) = (m.requests as f64 / n as f64, m.cpu / n as f64);
    println!(
        "orchestration: sampling={sampling} n={n} concurrency={c} duration_s={d} wall_s={wall_s:.2} ideal_s={ideal_s:.0} wall_over_ideal={:.3} slot_overhead_p50_ms={:.0} slot_overhead_p99_ms={:.0} tail_s={tail_s:.2} requests_per_case={requests_per_case:.1} detect_p50_ms={:.0} detect_p99_ms={:.0} cpu_ms_per_case={cpu_per_case:.1}",
        (wall_s - tail_s) / ideal_s,
        support::percentile(&mut overhead, 50.0),
        support::percentile(&mut overhead, 99.0),
        support::percentile(&mut detect, 50.0),
        support::percentile(&mut detect, 99.0),
    );
    (requests_per_case, cpu_per_case)
}

/// How long one read of each of the real node's kubelet routes the sampler reads and of the stand-in
/// training operator's `/metrics` take through the API server's proxy (and the request layer).
fn scrape_latency(runtime: &tokio::runtime::Runtime, kubeconfig: &Path) {
    runtime.block_on(async {
        let cluster = Cluster::connect(Some(kubeconfig), None).await.expect("cluster");
        let node = cluster
            .node_names()
            .await
            .expect("nodes")
            .into_iter()
            .find(|n| n != NODE)
            .expect("the test cluster's node");
        let routes = [
            ("kubelet_resource", format!("/api/v1/nodes/{node}/proxy/metrics/resource")),
            ("kubelet_cadvisor", format!("/api/v1/nodes/{node}/proxy/metrics/cadvisor")),
            ("kubelet_summary", format!("/api/v1/nodes/{node}/proxy/stats/summary")),
            ("operator", "/api/v1/namespaces/kubeflow/services/training-operator:8080/proxy/metrics".to_string()),
        ];
        for (name, route) in routes {
            let mut ms = Vec::new();
            let mut bytes = 0;
            for _ in 0..30 {
                let start = Instant::now();
                match cluster.proxied_text(&route).await {
                    Ok(text) => {
                        ms.push(start.elapsed().as_secs_f64() * 1000.0);
                        bytes = text.len();
                    }
                    Err(e) => eprintln!("scrape {name}: {}", e.message),
                }
            }
            println!(
                "scrape: route={name} reads={} bytes={bytes} p50_ms={:.1} p99_ms={:.1}",
                ms.len(),
                support::percentile(&mut ms.clone(), 50.0),
                support::percentile(&mut ms, 99.0)
            );
        }
    });
}

fn main() {
    tracing_subscriber::fmt().with_env_filter("kubevet=warn").with_writer(std::io::stderr).init();
    let n = env_number("BENCH_N", 200.0) as usize;
    let c = env_number("BENCH_C", 20.0) as usize;
    let d = env_number("BENCH_D", 2.0);
    let kubeconfig = std::env::var_os("KUBEVET_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kubevet-testcluster/kubeconfig"));
    assert!(kubeconfig.is_file(), "no test cluster at {}: run tests/cluster/up", kubeconfig.display());
    let work = tempfile::tempdir().expect("tempdir");
    write_suite(work.path(), n, c);
    let record = work.path().join("completions.txt");
    let mut helper = completer(&kubeconfig, d, &record);
    std::thread::sleep(Duration::from_secs(2));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The same cases with the kubelets sampled and, as the peer, without.
    let sampled = orchestrate(&runtime, &kubeconfig, work.path(), true);
    let unsampled = orchestrate(&runtime, &kubeconfig, work.path(), false);
    let _ = helper.kill();
    let _ = helper.wait();
    let _ = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["delete", "node", NODE, "--wait=false"])
        .output();

    let completions: HashMap<String, f64> = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(pod, ms)| Some((pod.to_string(), ms.parse().ok()?))))
        .collect();
    let on = print_figures(&sampled, &completions, (n, c, d), "on");
    let off = print_figures(&unsampled, &completions, (n, c, d), "off");
    println!(
        "sampling cost: requests_per_case={:+.1} cpu_ms_per_case={:+.1} wall_on_over_off={:.3}",
        on.0 - off.0,
        on.1 - off.1,
        sampled.wall.as_secs_f64() / unsampled.wall.as_secs_f64()
    );
    scrape_latency(&runtime, &kubeconfig);
    let floor_n = env_number("BENCH_FLOOR_N", 40.0) as usize;
    if floor_n > 0 {
        floor(&kubeconfig, floor_n);
    }
}
