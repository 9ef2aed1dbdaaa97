//! TEST STAND-IN for Kubeflow Trainer v2 and JobSet. Not the real operators.
//!
//! Their images cannot be pulled where kubevet is tested, and the test cluster runs
//! Kubernetes 1.20, older than either supports. This binary plays both against the real CRDs,
//! written from their sources (Trainer master 8c0f505, JobSet v0.12.0):
//! - a TrainJob controller: TrainJob + (Cluster)TrainingRuntime → a JobSet of the TrainJob's
//!   name (see [`trainjob`]): runtime patches merged, the trainer's and initializers'
//!   containers filled in, status copied back from the JobSet;
//! - a JobSet controller: JobSet → real `batch/v1` Jobs `<jobset>-<rjob>-<index>` and a
//!   headless Service, run by Kubernetes' own Job controller; success and failure policies,
//!   restarts and `dependsOn` (see [`jobset`]);
//! - an admission webhook (see [`indexer`]) for what 1.20 lacks: Indexed Jobs' per-pod
//!   completion index, hostname and name; JobSet defaulting. Kubernetes 1.20 has no
//!   `Job.status.ready` either: the JobSet controller counts ready pods itself.
//!
//! Left out: runtime snapshots, the TrainJob and JobSet validating webhooks (a TrainJob the
//! real webhook refuses, as one whose dataset initializer has no `initializer` volume, is
//! taken here), the MPI, JAX, XGBoost and Flux plugins, gang scheduling, exclusive placement,
//! in-order startup, Job suspension (1.20 has none: a suspended JobSet's Jobs are not created
//! until it resumes), RestartJob actions.

mod indexer;
mod jobset;
mod trainjob;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{Pod, Service},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};
use serde_json::{Value, json};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn jobsets() -> ApiResource {
    resource("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets")
}

fn trainjobs() -> ApiResource {
    resource("trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs")
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn tolerate_exists(result: Result<impl Sized, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}

struct Ctx {
    client: Client,
    recorder: Recorder,
}

impl Ctx {
    async fn warn(&self, obj: &DynamicObject, ar: &ApiResource, reason: &str, note: String) {
        let reference = obj.object_ref(ar);
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Reconciling".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            warn!(error = %e, "cannot record an event");
        }
    }

    async fn patch_status(&self, obj: &DynamicObject, ar: &ApiResource, status: Value) -> Result<(), Error> {
        if obj.data.get("status") == Some(&status) {
            return Ok(());
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &obj.namespace().unwrap_or_default(), ar);
        api.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
        Ok(())
    }
}

async fn reconcile_jobset(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let mut spec = obj.data.get("spec").cloned().unwrap_or_else(|| json!({}));
    jobset::default_spec(&mut spec);
    let view = jobset::JobSetView {
        name: obj.name_any(),
        namespace: ns.clone(),
        uid: obj.uid().unwrap_or_default(),
        spec,
        status: obj.data.get("status").cloned().unwrap_or_else(|| json!({})),
    };
    let selector = ListParams::default().labels(&format!("{}={}", jobset::NAME_KEY, view.name));
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == view.uid)
    };
    let jobs: Vec<Job> = jobs_api.list(&selector).await?.items.into_iter().filter(|j| owned(&j.metadata)).collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut ready = BTreeMap::new();
    for pod in pods.list(&selector).await?.items {
        let is_ready = pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Ready" && c.status == "True");
        if let (true, Some(job)) = (is_ready, pod.labels().get("job-name")) {
            *ready.entry(job.clone()).or_insert(0) += 1;
        }
    }
    let plan = view.reconcile(&view.classify(jobs), &ready, &now());
    for name in &plan.delete {
        tolerate_exists(jobs_api.delete(name, &DeleteParams::foreground()).await)?;
    }
    if let Some(service) = plan.service {
        let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
        if services.get_opt(&view.subdomain()).await?.is_none() {
            tolerate_exists(services.create(&PostParams::default(), &serde_json::from_value(service)?).await)?;
        }
    }
    for job in plan.create {
        let job: Job = serde_json::from_value(job)?;
        info!(jobset = %view.name, job = %job.name_any(), "creating job");
        if let Err(e) = tolerate_exists(jobs_api.create(&PostParams::default(), &job).await) {
            ctx.warn(
                &obj,
                &jobsets(),
                "JobCreationFailed",
                format!("job {:?} creation failed with error: {e}", job.name_any()),
            )
            .await;
            return Err(e.into());
        }
    }
    for (reason, message) in plan.events {
        ctx.warn(&obj, &jobsets(), &reason, message).await;
    }
    ctx.patch_status(&obj, &jobsets(), plan.status).await?;
    Ok(Action::requeue(Duration::from_secs(120)))
}

/// The runtime a TrainJob names: its spec, or why there is none.
async fn runtime_spec(client: &Client, tj: &DynamicObject) -> Result<Result<Value, String>, Error> {
    let reference = tj.data.pointer("/spec/runtimeRef").cloned().unwrap_or(Value::Null);
    let group = reference["apiGroup"].as_str().unwrap_or("trainer.kubeflow.org");
    let kind = reference["kind"].as_str().unwrap_or("ClusterTrainingRuntime");
    let name = reference["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match (group, kind) {
        ("trainer.kubeflow.org", "ClusterTrainingRuntime") => Api::all_with(
            client.clone(),
            &resource("trainer.kubeflow.org", "v1alpha1", kind, "clustertrainingruntimes"),
        ),
        ("trainer.kubeflow.org", "TrainingRuntime") => Api::namespaced_with(
            client.clone(),
            &tj.namespace().unwrap_or_default(),
            &resource("trainer.kubeflow.org", "v1alpha1", kind, "trainingruntimes"),
        ),
        _ => return Ok(Err(format!("unsupported runtime: {kind}.{group}"))),
    };
    Ok(api.get_opt(name).await?.map(|r| r.data["spec"].clone()).ok_or_else(|| format!("{kind} {name:?} not found")))
}

async fn reconcile_trainjob(obj: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let managed_by = obj.data.pointer("/spec/managedBy").and_then(Value::as_str);
    if managed_by.is_some_and(|m| m != "trainer.kubeflow.org/trainjob-controller") {
        return Ok(Action::await_change());
    }
    let tj = serde_json::to_value(obj.as_ref())?;
    let jobset_api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &jobsets());
    let mut existing = jobset_api.get_opt(&obj.name_any()).await?;
    let mut status = tj.get("status").cloned().unwrap_or_else(|| json!({}));
    if !trainjob::finished(&tj) && existing.is_none() {
        match runtime_spec(&ctx.client, &obj).await? {
            Ok(spec) => {
                let built: DynamicObject = serde_json::from_value(trainjob::build_jobset(&tj, &spec))?;
                info!(trainjob = %obj.name_any(), "creating jobset");
                existing = Some(jobset_api.create(&PostParams::default(), &built).await?);
            }
            Err(why) if why.starts_with("unsupported") => {
                let failed = json!({"type": "Failed", "status": "True", "reason": "TrainingRuntimeNotSupported", "message": why});
                jobset::set_condition(&mut status, failed, &now());
            }
            Err(why) => {
                let note = format!("TrainJob resources reconciliation failed: {why}");
                ctx.warn(&obj, &trainjobs(), "TrainJobResourcesCreationFailed", note).await;
            }
        }
    }
    let mut with_status = tj.clone();
    with_status["status"] = status;
    let existing = existing.map(serde_json::to_value).transpose()?;
    let mut status = trainjob::next_status(&with_status, existing.as_ref(), &now());
    let requeue = deadline(&tj, &mut status, &jobset_api).await?;
    ctx.patch_status(&obj, &trainjobs(), status).await?;
    Ok(requeue.map_or_else(|| Action::requeue(Duration::from_secs(120)), Action::requeue))
}

/// `reconcileDeadline`: past `activeDeadlineSeconds` the TrainJob fails and its JobSet goes.
async fn deadline(tj: &Value, status: &mut Value, jobset_api: &Api<DynamicObject>) -> Result<Option<Duration>, Error> {
    let seconds = tj.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_u64).unwrap_or(0);
    let created = tj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let finished = trainjob::finished(&json!({"status": status}));
    let (false, true, Some(created)) = (finished, seconds > 0, created) else { return Ok(None) };
    let elapsed = u64::try_from(jiff::Timestamp::now().duration_since(created).as_secs()).unwrap_or(0);
    if elapsed < seconds {
        return Ok(Some(Duration::from_secs(seconds - elapsed)));
    }
    let failed = json!({"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "TrainJob exceeded its active deadline"});
    jobset::set_condition(status, failed, &now());
    let name = tj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    tolerate_exists(jobset_api.delete(name, &DeleteParams::background()).await)?;
    Ok(None)
}

fn error_policy(_obj: Arc<DynamicObject>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn run_jobsets(ctx: Arc<Ctx>) {
    let client = ctx.client.clone();
    let labelled = watcher::Config::default().labels(jobset::NAME_KEY);
    Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &jobsets()),
        watcher::Config::default(),
        jobsets(),
    )
    .owns(Api::<Job>::all(client.clone()), labelled.clone())
    .watches(Api::<Pod>::all(client), labelled, |pod: Pod| {
        let name = pod.labels().get(jobset::NAME_KEY).cloned()?;
        Some(ObjectRef::new_with(&name, jobsets()).within(&pod.namespace()?))
    })
    .shutdown_on_signal()
    .run(reconcile_jobset, error_policy, ctx)
    .for_each(|_| futures::future::ready(()))
    .await;
}

async fn run_trainjobs(ctx: Arc<Ctx>) {
    let client = ctx.client.clone();
    Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &trainjobs()),
        watcher::Config::default(),
        trainjobs(),
    )
    .owns_with(Api::<DynamicObject>::all_with(client, &jobsets()), jobsets(), watcher::Config::default())
    .shutdown_on_signal()
    .run(reconcile_trainjob, error_policy, ctx)
    .for_each(|_| futures::future::ready(()))
    .await;
}

/// Serves the webhook over TLS with the certificate the install made.
async fn serve_webhook(client: Client, listen: SocketAddr, cert: &str, key: &str) -> Result<(), String> {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("{listen}: {e}"))?;
    let app = indexer::router(client);
    info!(%listen, "webhook serving");
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            if let Err(e) = served {
                warn!(error = %e, "webhook connection");
            }
        });
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let arg = |name: &str, default: &str| -> String {
        let args: Vec<String> = std::env::args().collect();
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.into())
    };
    let listen: SocketAddr = match arg("--listen", "127.0.0.1:9443").parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("standin-trainer: --listen: {e}");
            std::process::exit(2);
        }
    };
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("standin-trainer: cannot build a Kubernetes client: {e}");
            std::process::exit(1);
        }
    };
    info!("TEST STAND-IN for Kubeflow Trainer v2 and JobSet; not the real operators");
    let reporter = |name: &str| Reporter { controller: name.into(), instance: None };
    let jobset_ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter("jobset-controller")),
    });
    let trainjob_ctx =
        Arc::new(Ctx { client: client.clone(), recorder: Recorder::new(client.clone(), reporter("trainer")) });
    let (cert, key) = (arg("--cert", "/certs/tls.crt"), arg("--key", "/certs/tls.key"));
    tokio::select! {
        served = serve_webhook(client, listen, &cert, &key) => {
            if let Err(e) = served {
                eprintln!("standin-trainer: webhook: {e}");
                std::process::exit(1);
            }
        }
        _ = async { tokio::join!(run_jobsets(jobset_ctx), run_trainjobs(trainjob_ctx)) } => {}
    }
}
