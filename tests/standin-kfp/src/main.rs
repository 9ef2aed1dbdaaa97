//! TEST STAND-IN for the Kubeflow Pipelines API server. Not the real KFP.
//!
//! KFP's images cannot be pulled on the machines kubevet is tested on, so this one binary
//! plays the parts a client of KFP meets:
//! - `serve`: the v2beta1 REST API subset kubevet and the `kfp` SDK use (health, pipelines and
//!   versions with uploads, experiments, runs with terminate and delete), with KFP's JSON
//!   shapes and error rules (snake_case, zero values omitted, unknown body fields rejected,
//!   the upload error shape, strict parameter types); state is kept in memory;
//! - a run is executed as KFP's Argo backend would leave it in the cluster: a real
//!   `argoproj.io/v1alpha1` `Workflow` labelled `pipeline/runid`, one real pod per container
//!   task in dependency order (container `main`, KFP's labels and Argo's annotations, the
//!   executor's resources and accelerator as 2.17.0's driver sets them), and the Workflow's `status.phase` and `status.nodes` updated as Argo does;
//! - `copy-launcher` and `launch`: the launcher a task's pod runs its command through (as
//!   KFP's `kfp-launcher` does), which hands the task's output parameters back.
//!
//! As KFP 2.17.0 does (each switchable, see `runner::Modes`): retry nodes named `(N)`, a
//! driver pod per task, caching on (a cached task is a Skipped node with no pod), and KFP's
//! run state set only after a persistence lag, the Workflow then labelled
//! `pipeline/persistedFinalState`; `compressedNodes` over a size given.
//!
//! With `--multi-user-port`, a second KFP server in multi-user mode on that port (stores of
//! its own): the identity header required, experiments in a profile namespace, and runs,
//! Workflows and pods in their experiment's namespace.
//!
//! KFP's placeholders are filled as 2.17.0's driver and launcher fill them (`IfPresent`
//! expanded, `Concat` left as written), and artifacts are handed from task to task through a
//! folder of the node that plays KFP's object store (see `placeholders`).
//!
//! Deliberately partial: container tasks in the root DAG only (no Python executors, importers,
//! pipeline-level input artifacts, nested DAGs, conditions or loops).

mod api;
mod launcher;
mod placeholders;
mod runner;
mod store;

use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!(
        "usage: standin-kfp serve [--port N] [--multi-user-port M] | copy-launcher DEST | driver TASK; as …/launch: [--outputs a,b] -- COMMAND…"
    );
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    // Copied into a task's pod as /kfp-launcher/launch, the binary is the launcher by its name.
    if args.first().is_some_and(|a| a.ends_with("/launch")) {
        std::process::exit(launcher::launch(&args[1..]));
    }
    args.remove(0);
    match args.first().map(String::as_str) {
        Some("copy-launcher") => std::process::exit(launcher::copy_self(args.get(1).map(String::as_str))),
        // A task's driver pod: the server has decided (cache, inputs); the pod is its trace.
        Some("driver") => {
            println!("TEST STAND-IN KFP driver for task {}", args.get(1).map(String::as_str).unwrap_or("?"));
            std::process::exit(0)
        }
        Some("serve") => {
            let port_of = |flag: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .map(|i| args.get(i + 1).and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()))
            };
            serve(port_of("--port").unwrap_or(8888), port_of("--multi-user-port"))
        }
        _ => usage(),
    }
}

/// The API on `port`; with `multi_user_port`, a second KFP server in multi-user mode there,
/// with stores of its own and the same runner.
fn serve(port: u16, multi_user_port: Option<u16>) {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let client = kube::Client::try_default().await.expect("in-cluster Kubernetes client");
        let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "kubeflow".into());
        let launcher_image = runner::own_image(&client, &namespace).await;
        tracing::info!(%namespace, %launcher_image, "TEST STAND-IN KFP API server starting");
        let modes = runner::Modes::from_env();
        tracing::info!(?modes, "playing KFP 2.17.0's shape unless a mode says otherwise");
        let runner = std::sync::Arc::new(runner::Runner::new(client, namespace, launcher_image, modes));
        if let Some(port) = multi_user_port {
            let header = std::env::var("STANDIN_KFP_USER_HEADER").unwrap_or_else(|_| "kubeflow-userid".into());
            let app = api::router(store::State::new(runner.clone(), Some(header)));
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
                .await
                .expect("bind the multi-user API port");
            tokio::spawn(async move { axum::serve(listener, app).await.expect("serve multi-user") });
        }
        let app = api::router(store::State::new(runner, None));
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the API port");
        axum::serve(listener, app).await.expect("serve");
    });
}
