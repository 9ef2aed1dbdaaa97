//! The TEST STAND-IN's Prometheus endpoint, as the real Training Operator v1 serves it
//! (release-1.9: `--metrics-bind-address :8080`, plain HTTP, no auth): the job counters of
//! `pkg/common/metrics.go` (`training_operator_jobs_{created,deleted,successful,failed,restarted}_total`
//! with labels `job_namespace` and `framework`, each appearing at its first increment),
//! controller-runtime's reconcile series per controller (`<kind>-controller`, initialised at
//! zero when the controller starts, as controller-runtime does), and `process_start_time_seconds`.
//! Written here in the text format by hand: a test stand-in, not a client library.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tracing::warn;

/// Series by metric name, then by their rendered labels.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<&'static str, BTreeMap<String, f64>>>,
    start: f64,
}

const HELP: &[(&str, &str, &str)] = &[
    ("training_operator_jobs_created_total", "counter", "Counts number of jobs created"),
    ("training_operator_jobs_deleted_total", "counter", "Counts number of jobs deleted"),
    ("training_operator_jobs_successful_total", "counter", "Counts number of jobs successful"),
    ("training_operator_jobs_failed_total", "counter", "Counts number of jobs failed"),
    ("training_operator_jobs_restarted_total", "counter", "Counts number of jobs restarted"),
    ("controller_runtime_reconcile_total", "counter", "Total number of reconciliations per controller"),
    ("controller_runtime_reconcile_errors_total", "counter", "Total number of reconciliation errors per controller"),
    ("controller_runtime_reconcile_panics_total", "counter", "Total number of reconciliation panics per controller"),
    (
        "controller_runtime_terminal_reconcile_errors_total",
        "counter",
        "Total number of terminal reconciliation errors per controller",
    ),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
];

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Metrics {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        Metrics { series: Mutex::default(), start }
    }

    fn add(&self, name: &'static str, labels: &[(&str, &str)], by: f64) {
        let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        *series.entry(name).or_default().entry(rendered.join(",")).or_default() += by;
    }

    /// A job counter of `pkg/common/metrics.go` (`created`, `successful`, `failed`…).
    pub fn job(&self, what: &str, namespace: &str, framework: &str) {
        let name = match what {
            "created" => "training_operator_jobs_created_total",
            "deleted" => "training_operator_jobs_deleted_total",
            "successful" => "training_operator_jobs_successful_total",
            "failed" => "training_operator_jobs_failed_total",
            _ => "training_operator_jobs_restarted_total",
        };
        self.add(name, &[("job_namespace", namespace), ("framework", framework)], 1.0);
    }

    /// controller-runtime's series of a controller, at zero, as it initialises them.
    pub fn controller_started(&self, controller: &str) {
        for result in ["error", "requeue", "requeue_after", "success"] {
            self.add("controller_runtime_reconcile_total", &[("controller", controller), ("result", result)], 0.0);
        }
        for name in [
            "controller_runtime_reconcile_errors_total",
            "controller_runtime_reconcile_panics_total",
            "controller_runtime_terminal_reconcile_errors_total",
        ] {
            self.add(name, &[("controller", controller)], 0.0);
        }
    }

    /// One reconcile of `controller` ended: `success` or `error` (controller-runtime's results).
    pub fn reconciled(&self, controller: &str, result: &str) {
        self.add("controller_runtime_reconcile_total", &[("controller", controller), ("result", result)], 1.0);
        if result == "error" {
            self.add("controller_runtime_reconcile_errors_total", &[("controller", controller)], 1.0);
        }
    }

    fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let values: Vec<(String, f64)> = if *name == "process_start_time_seconds" {
                vec![(String::new(), self.start)]
            } else {
                series.get(name).map(|s| s.iter().map(|(l, v)| (l.clone(), *v)).collect()).unwrap_or_default()
            };
            if values.is_empty() {
                continue;
            }
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in values {
                let labels = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        }
        out
    }

    /// Serves `/metrics` on `address` (any other path: 404), one request per connection.
    pub async fn serve(&'static self, address: &str) {
        // On the host network a rollout's new pod starts while the old one still holds the
        // port: bind again until it is free.
        let listener = loop {
            match TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(e) => {
                    warn!(error = %e, address, "cannot serve metrics yet; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let read = stream.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..read]);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) =
                    if path == "/metrics" { ("200 OK", self.render()) } else { ("404 Not Found", String::new()) };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    }
}
