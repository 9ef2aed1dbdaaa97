//! TEST STAND-IN for the Kubeflow training operator (kubeflow.org/v1). Not the real operator.
//!
//! The real operator's images cannot be pulled on the machines kubevet is tested on, so this
//! small controller reconciles the real PyTorchJob and TFJob CRDs the way the real one does:
//! one pod per replica from the replica spec's own pod template (with the real labels, env
//! and a headless service per replica), conditions Created → Running → Succeeded | Failed with
//! the real reason strings, `replicaStatuses`, and the real success and failure rules.
//! It is deliberately partial: no elastic policy, no gang scheduling, no suspend.

mod job;
mod metrics;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{Controller, controller::Action, watcher},
};
use tracing::{info, warn};

use crate::job::{Framework, JobView, Verdict};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("job {0}: {1}")]
    Spec(String, String),
}

struct Ctx {
    client: Client,
    framework: Framework,
    resource: ApiResource,
    /// The jobs this process has seen: the real operator counts a job created on its create
    /// event, which a controller also gets for every existing job when it starts.
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

static METRICS: std::sync::LazyLock<metrics::Metrics> = std::sync::LazyLock::new(metrics::Metrics::new);

/// controller-runtime's name for the controller (`pytorchjob-controller`), and the framework
/// label of the job counters (`pytorch`, `tensorflow`), as the real operator has them.
fn controller(framework: Framework) -> &'static str {
    match framework {
        Framework::PyTorch => "pytorchjob-controller",
        Framework::TensorFlow => "tfjob-controller",
    }
}

fn framework_label(framework: Framework) -> &'static str {
    match framework {
        Framework::PyTorch => "pytorch",
        Framework::TensorFlow => "tensorflow",
    }
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let result = reconcile_job(obj, ctx.clone()).await;
    METRICS.reconciled(controller(ctx.framework), if result.is_ok() { "success" } else { "error" });
    result
}

async fn reconcile_job(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let first_seen =
        ctx.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(obj.uid().unwrap_or_default());
    if first_seen {
        METRICS.job("created", &ns, framework_label(ctx.framework));
    }
    let job = JobView::parse(&obj, ctx.framework).map_err(|e| Error::Spec(name.clone(), e))?;
    if job.finished() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("training.kubeflow.org/job-name={name}");
    let existing = pods.list(&kube::api::ListParams::default().labels(&selector)).await?;

    for wanted in job.desired_pods() {
        if !existing.items.iter().any(|p| p.name_any() == wanted.name) {
            let pod = job.build_pod(&wanted);
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => info!(job = %name, pod = %wanted.name, "created pod"),
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if services.get_opt(&wanted.name).await?.is_none() {
            match services.create(&PostParams::default(), &job.build_service(&wanted)).await {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    let verdict = job.judge(&existing.items);
    let status = job.next_status(&verdict, &existing.items);
    if Some(&status) != obj.data.get("status") {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ctx.resource);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        info!(job = %name, verdict = ?verdict, "status updated");
        // As the real UpdateJobStatus: counted when the job's status becomes terminal.
        match verdict {
            Verdict::Succeeded(_) => METRICS.job("successful", &ns, framework_label(ctx.framework)),
            Verdict::Failed(_) => METRICS.job("failed", &ns, framework_label(ctx.framework)),
            _ => {}
        }
    }
    if matches!(verdict, Verdict::Succeeded(_) | Verdict::Failed(_)) {
        for pod in job.pods_to_clean(&existing.items) {
            let _ = pods.delete(&pod, &DeleteParams::background()).await;
        }
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.is_already_exists())
}

fn error_policy(_obj: Arc<DynamicObject>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn run_controller(client: Client, framework: Framework) {
    let gvk = GroupVersionKind::gvk("kubeflow.org", "v1", framework.kind());
    let resource = ApiResource::from_gvk_with_plural(&gvk, framework.plural());
    let jobs: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let pods: Api<Pod> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client, framework, resource: resource.clone(), seen: Default::default() });
    METRICS.controller_started(controller(framework));
    info!(kind = framework.kind(), "controller starting");
    Controller::new_with(jobs, watcher::Config::default(), resource)
        .owns_with(pods, (), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("standin-training-operator: cannot build a Kubernetes client: {e}");
            std::process::exit(1);
        }
    };
    info!("TEST STAND-IN for the Kubeflow training operator; not the real operator");
    // The real operator's `--metrics-bind-address :8080` (METRICS_ADDRESS overrides it).
    let address = std::env::var("METRICS_ADDRESS").unwrap_or_else(|_| "0.0.0.0:8080".into());
    // As controller-runtime's manager: on SIGTERM the process stops, controllers and metrics
    // server alike (PID 1 of a pod would otherwise outlive its rollout by the grace period,
    // reconciling and serving the old counters beside the new pod).
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("standin-training-operator: cannot handle SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM: exiting"),
        _ = async {
            tokio::join!(
                METRICS.serve(&address),
                run_controller(client.clone(), Framework::PyTorch),
                run_controller(client, Framework::TensorFlow),
            )
        } => {}
    }
}
