use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand, ValueEnum};
use kubevet::{
    error::{self, Error},
    images, install,
    kubernetes::Cluster,
    plan::{self, PlanRow},
    report,
    run::{self, Outcome, RunOptions},
    suite, versions,
};

/// kubevet proves that the examples and operators of a Kubernetes project still work: every
/// example runs in its own namespace and is judged by its workload's own terminal state.
#[derive(Parser)]
#[command(name = "kubevet", version, about, long_about = None)]
struct Cli {
    /// Log lines as text or JSON (on standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More detail in the log (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LintOutput {
    Text,
    Json,
    Sarif,
    Junit,
}

#[derive(clap::Args)]
struct SuiteArgs {
    /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Only the examples whose path (relative to the suite) or case id matches; repeatable.
    #[arg(long = "select", value_name = "GLOB")]
    select: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every example of the suite on a cluster and report.
    Run {
        #[command(flatten)]
        suite: SuiteArgs,
        /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context (default: the current one).
        #[arg(long)]
        context: Option<String>,
        /// Where evidence goes: one folder per case.
        #[arg(long, default_value = "kubevet-artifacts")]
        artifacts: PathBuf,
        /// JUnit report file (default: <artifacts>/junit.xml).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Cases run at once (default: the suite's defaults.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Start no more cases after the first failure.
        #[arg(long)]
        fail_fast: bool,
        /// Leave the namespaces of cases that did not pass, for a look.
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// Check examples without a cluster: YAML, schemas (CRDs and built-in kinds, strict),
    /// compiled Kubeflow pipelines, policy rules.
    Lint {
        /// Files or directories (default: the suite's examples).
        paths: Vec<PathBuf>,
        /// The suite file, for its examples and its lint settings.
        #[arg(long)]
        suite: Option<PathBuf>,
        /// Directories of CRDs to check custom resources against (besides the embedded Kubeflow CRDs); repeatable.
        #[arg(long = "crds", value_name = "DIR")]
        crds: Vec<PathBuf>,
        /// Switch a policy rule off; repeatable.
        #[arg(long = "allow", value_name = "RULE")]
        allow: Vec<String>,
        /// Check against this cluster's own schemas (its /openapi/v2) instead of the built-in ones.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Kubeconfig context, with --kubeconfig.
        #[arg(long, requires = "kubeconfig")]
        context: Option<String>,
        #[arg(long, value_enum, default_value_t = LintOutput::Text)]
        output: LintOutput,
    },
    /// Print the plan: every case, its file, profile, timeout and tier.
    List {
        #[command(flatten)]
        suite: SuiteArgs,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Log lines on standard error; on a terminal (text format), a live display of the running
/// cases above them.
fn init_logging(format: LogFormat, verbose: u8) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let default = match verbose {
        0 => "kubevet=info",
        1 => "kubevet=debug",
        _ => "kubevet=trace,kube=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init(),
        LogFormat::Text if std::io::stderr().is_terminal() => {
            let mut live = tracing_indicatif::IndicatifLayer::new();
            let case_line = "{span_child_prefix}{spinner} {span_name}{{{span_fields}}} {elapsed}";
            if let Ok(style) = tracing_indicatif::style::ProgressStyle::with_template(case_line) {
                live = live.with_progress_style(style);
            }
            let lines = tracing_subscriber::fmt::layer().with_writer(live.get_stderr_writer());
            registry.with(lines).with(live).init();
        }
        LogFormat::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(std::io::stderr)).init()
        }
    }
}

/// The suite's operators rendered, for the CRDs among them.
fn render_operators(operators: &[kubevet::suite::Operator]) -> Result<Vec<(String, String)>, Error> {
    if operators.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Infrastructure(format!("async runtime: {e}")))?;
    runtime.block_on(async {
        let mut rendered = Vec::new();
        for op in operators {
            let (text, _) =
                install::render(op).await.map_err(|e| Error::Usage(format!("operator {}: {e}", op.name)))?;
            rendered.push((format!("operator {} ({})", op.name, op.kustomize.display()), text));
        }
        Ok(rendered)
    })
}

/// The schemas a cluster serves, for `lint --kubeconfig`.
fn cluster_openapi(kubeconfig: &std::path::Path, context: Option<&str>) -> Result<(serde_json::Value, String), Error> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Infrastructure(format!("async runtime: {e}")))?;
    runtime.block_on(async {
        let cluster = Cluster::connect(Some(kubeconfig), context).await?;
        let openapi = cluster.openapi_v2().await.map_err(Error::Infrastructure)?;
        Ok((openapi, cluster.server_version.clone()))
    })
}

#[allow(clippy::too_many_arguments)]
fn lint(
    paths: Vec<PathBuf>,
    suite_path: Option<PathBuf>,
    crds: Vec<PathBuf>,
    allow: Vec<String>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    output: LintOutput,
) -> Result<i32, Error> {
    use kubevet::lint::{self, LintOptions, Severity};
    // A suite is needed only to know the examples; its lint settings apply when there is one.
    let suite = match (&suite_path, paths.is_empty()) {
        (Some(p), _) => Some(suite::load(p)?),
        (None, true) => Some(suite::load(&suite::locate(None)?)?),
        (None, false) => suite::locate(None).ok().map(|p| suite::load(&p)).transpose()?,
    };
    for rule in &allow {
        if !lint::rules::RULES.iter().any(|r| r.name == rule) {
            let known: Vec<_> = lint::rules::RULES.iter().map(|r| r.name).collect();
            return Err(Error::Usage(format!("--allow {rule}: no such rule; rules: {}", known.join(", "))));
        }
    }
    let files = match (&suite, paths.is_empty()) {
        (Some(s), true) => plan::example_files(s).into_iter().map(|(path, _)| path).collect(),
        _ => lint::expand(&paths)?,
    };
    let settings = suite.as_ref().map(|s| s.lint.clone()).unwrap_or_default();
    let cluster_openapi = kubeconfig.as_deref().map(|k| cluster_openapi(k, context.as_deref())).transpose()?;
    let rendered = render_operators(suite.as_ref().map(|s| s.operators.as_slice()).unwrap_or_default())?;
    let options = LintOptions {
        allow: settings.allow.into_iter().chain(allow).collect(),
        crd_dirs: settings.crds.into_iter().chain(crds).collect(),
        rendered,
        cluster_openapi,
    };
    let report = lint::lint(&files, &options)?;
    match output {
        LintOutput::Text => print!("{}", lint::output::text(&report, std::io::stdout().is_terminal())),
        LintOutput::Json => println!("{}", lint::output::json(&report)),
        LintOutput::Sarif => println!("{}", lint::output::sarif(&report)),
        LintOutput::Junit => println!("{}", lint::output::junit(&report)),
    }
    if !matches!(output, LintOutput::Text) {
        eprintln!("{}", lint::output::summary(&report));
    }
    let findings = report.count(Severity::Error) + report.count(Severity::Warning);
    Ok(if findings > 0 { error::EXIT_CASE_FAILED } else { 0 })
}

fn list(args: SuiteArgs, output: Output) -> Result<i32, Error> {
    let suite = suite::load(&suite::locate(args.suite.as_deref())?)?;
    let cases = plan::plan(&suite, &args.select)?;
    let rows: Vec<PlanRow> = cases.iter().map(PlanRow::from).collect();
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| Error::Usage(e.to_string()))?);
        }
        Output::Table => {
            let w = |f: fn(&PlanRow) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(0).max(min);
            let (wi, wf, wp) = (w(|r| r.id.len(), 2), w(|r| r.file.len(), 4), w(|r| r.profile.len(), 7));
            println!("{:<wi$}  {:<wf$}  {:<wp$}  {:>8}  TIER", "ID", "FILE", "PROFILE", "TIMEOUT");
            for r in &rows {
                let mut line = format!(
                    "{:<wi$}  {:<wf$}  {:<wp$}  {:>8}  {}",
                    r.id,
                    r.file,
                    r.profile,
                    r.timeout,
                    r.tier.unwrap_or("-")
                );
                if let Some(skip) = r.skip {
                    line.push_str(&format!("  (skipped: {skip})"));
                }
                if let Some(problem) = r.problem {
                    line.push_str(&format!("  (error: {problem})"));
                }
                println!("{line}");
            }
        }
    }
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
async fn run_suite(
    args: SuiteArgs,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    artifacts: PathBuf,
    junit: Option<PathBuf>,
    concurrency: Option<usize>,
    fail_fast: bool,
    keep_on_failure: bool,
) -> Result<i32, Error> {
    // Bad input is found before the cluster is touched.
    let suite = suite::load(&suite::locate(args.suite.as_deref())?)?;
    let mut cases = plan::plan(&suite, &args.select)?;
    if cases.is_empty() {
        return Err(Error::Usage(format!(
            "no example matches the suite's globs (and --select) under {}",
            suite.root.display()
        )));
    }
    let mut built = Vec::new();
    for image in &suite.images {
        let b = images::build(image).await.map_err(Error::Infrastructure)?;
        tracing::info!(image = %b.reference, cached = b.cached, "image ready");
        built.push(b);
    }
    for case in &mut cases {
        for object in &mut case.objects {
            images::rewrite(&mut object.value, &built);
        }
    }
    let cluster = Arc::new(Cluster::connect(kubeconfig.as_deref(), context.as_deref()).await?);
    let options = RunOptions { artifacts: artifacts.clone(), concurrency, fail_fast, keep_on_failure };
    let cancel = run::interrupt_signal();
    // The operators under test, in order, before any case; a failed install stops the run.
    let mut installs = Vec::new();
    let mut ledger = versions::Ledger::new();
    for operator in &suite.operators {
        tracing::info!(operator = %operator.name, "installing");
        let (result, applied, version) = install::Install {
            cluster: &cluster,
            operator,
            images: &built,
            artifacts: &artifacts,
            grace: suite.defaults.failure_grace.0,
            log_limit: suite.defaults.log_limit_bytes,
            cancel: cancel.clone(),
        }
        .run()
        .await;
        tracing::info!(operator = %operator.name, outcome = result.outcome.label(), reason = result.reason.as_deref().unwrap_or(""), "install ended");
        let failed = result.outcome != Outcome::Passed;
        if let Some(v) = version {
            ledger.insert(operator.name.clone(), v);
        }
        installs.push((result, applied));
        if failed {
            break;
        }
    }
    let failed_install = installs.iter().find(|(r, _)| r.outcome != Outcome::Passed).map(|(r, _)| r.name.clone());
    let mut report = match failed_install {
        Some(name) => {
            let reason = format!("not run: {name} failed to install");
            run::not_run(&cases, &artifacts, &reason, *cancel.borrow())
        }
        None => run::run(&suite, cases, cluster.clone(), options, cancel).await,
    };
    // Operator logs cover the whole run: collected again at its end.
    for (result, applied) in &mut installs {
        if result.outcome == Outcome::Passed {
            install::collect_logs(&cluster, applied, &result.artifacts, suite.defaults.log_limit_bytes).await;
        }
    }
    report.results.splice(0..0, installs.into_iter().map(|(r, _)| r));
    for (name, version) in &ledger {
        report.properties.push((format!("operator.{name}.version"), version.clone()));
    }
    // What floating versions resolved to is recorded per run; a change is the first thing said.
    let changed = versions::changes(&versions::swap_ledger(&suite.path, &ledger), &ledger);
    for change in &changed {
        report.properties.push(("changed".into(), change.clone()));
    }
    let run_json = serde_json::json!({"run": report.run_id, "kubernetes": cluster.server_version, "versions": ledger, "changed": changed});
    report::write_atomically(&artifacts.join("run.json"), run_json.to_string().as_bytes())
        .map_err(|e| Error::Infrastructure(format!("writing run.json: {e}")))?;
    for b in &built {
        report.properties.push((format!("image.{}", b.name), b.reference.clone()));
        report.properties.push((format!("image.{}.cache", b.name), if b.cached { "hit" } else { "miss" }.into()));
    }
    let junit_path = junit.unwrap_or_else(|| artifacts.join("junit.xml"));
    let xml = report::junit(&suite.name, &cluster.server_version, &report)
        .to_string()
        .map_err(|e| Error::Infrastructure(format!("rendering JUnit: {e}")))?;
    report::write_atomically(&junit_path, xml.as_bytes())
        .map_err(|e| Error::Infrastructure(format!("writing {}: {e}", junit_path.display())))?;
    if !changed.is_empty() {
        println!("changed since the previous run: {}", changed.join(", "));
    }
    print!("{}", report::summary(&report));
    println!("JUnit: {}  artifacts: {}", junit_path.display(), artifacts.display());
    tracing::info!(requests = cluster.requests(), "API requests sent");
    if report.interrupted {
        return Ok(error::EXIT_INTERRUPTED);
    }
    let failed =
        report.results.iter().any(|r| matches!(r.outcome, Outcome::Failed | Outcome::Error | Outcome::Interrupted));
    Ok(if failed { error::EXIT_CASE_FAILED } else { 0 })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let outcome = match cli.command {
        Command::List { suite, output } => list(suite, output),
        Command::Lint { paths, suite, crds, allow, kubeconfig, context, output } => {
            lint(paths, suite, crds, allow, kubeconfig, context, output)
        }
        Command::Run { suite, kubeconfig, context, artifacts, junit, concurrency, fail_fast, keep_on_failure } => {
            match tokio::runtime::Runtime::new() {
                Ok(rt) => rt.block_on(run_suite(
                    suite,
                    kubeconfig,
                    context,
                    artifacts,
                    junit,
                    concurrency,
                    fail_fast,
                    keep_on_failure,
                )),
                Err(e) => Err(Error::Infrastructure(format!("cannot start the async runtime: {e}"))),
            }
        }
    };
    match outcome {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("kubevet: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
