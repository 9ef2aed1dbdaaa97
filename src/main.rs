use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use kubevet::{
    error::{self, Error},
    kubernetes::Cluster,
    plan::{self, PlanRow},
    provision, render,
    run::{self, RunOptions},
    session::Session,
    suite::{self, Provider, Suite},
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

#[derive(Clone, Copy, ValueEnum)]
enum ClusterAction {
    Up,
    Down,
    Status,
}

/// The command line's say over the suite's `cluster:` section.
#[derive(clap::Args)]
struct ClusterArgs {
    /// kind or container (one cluster per Kubernetes version), or existing (default: the suite's cluster.provider; --kubeconfig or --context mean existing).
    #[arg(long, value_enum)]
    provider: Option<Provider>,
    /// Kubeconfig file of an existing cluster (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of an existing cluster (default: the current one).
    #[arg(long)]
    context: Option<String>,
    /// Only this Kubernetes version of the matrix: one cell, as one CI job runs it.
    #[arg(long = "k8s-version", value_name = "VERSION")]
    k8s_version: Option<String>,
    /// Use a kind cluster of the same name if there is one, and keep it after the run.
    #[arg(long)]
    reuse: bool,
}

impl ClusterArgs {
    fn apply(&self, suite: &mut Suite) -> Result<(), Error> {
        let c = &mut suite.cluster;
        c.provider = match (self.provider, self.kubeconfig.is_some() || self.context.is_some()) {
            (Some(Provider::Kind | Provider::Container), true) => {
                return Err(Error::Usage("--kubeconfig and --context are for an existing cluster".into()));
            }
            (Some(provider), _) => provider,
            (None, true) => Provider::Existing,
            (None, false) => c.provider,
        };
        if self.kubeconfig.is_some() {
            c.kubeconfig = self.kubeconfig.clone();
        }
        if self.context.is_some() {
            c.context = self.context.clone();
        }
        if self.k8s_version.is_some() && c.provider == Provider::Existing {
            return Err(Error::Usage(
                "--k8s-version picks a cell of a kind matrix; an existing cluster has its own version".into(),
            ));
        }
        if self.reuse && c.provider != Provider::Kind {
            return Err(Error::Usage(
                "--reuse keeps kind clusters between runs; other providers have none to keep".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run every example of the suite on a cluster and report.
    Run {
        #[command(flatten)]
        suite: SuiteArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
        /// List floating versions anew, ignoring the suite's defaults.resolveTtl.
        #[arg(long)]
        refresh: bool,
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
    /// Resolve and render every operator of the suite into the render cache, ahead of a run.
    Render {
        /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
        #[arg(long)]
        suite: Option<PathBuf>,
        /// Only these operators; repeatable.
        #[arg(long = "operator", value_name = "NAME")]
        operators: Vec<String>,
        /// List floating versions anew, ignoring the suite's defaults.resolveTtl.
        #[arg(long)]
        refresh: bool,
    },
    /// Bring the suite's clusters up, take them down, or say how they are (for local loops;
    /// `kubevet run --reuse` then runs on them).
    Cluster {
        #[arg(value_enum)]
        action: ClusterAction,
        /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
        #[arg(long)]
        suite: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
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

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Runtime::new().map_err(|e| Error::Infrastructure(format!("cannot start the async runtime: {e}")))
}

/// A suite, with `--refresh` overriding its `defaults.resolveTtl`.
fn load_suite(path: Option<&std::path::Path>, refresh: bool) -> Result<Suite, Error> {
    let mut suite = suite::load(&suite::locate(path)?)?;
    if refresh {
        suite.defaults.resolve_ttl = kubevet::duration::Dur(std::time::Duration::ZERO);
    }
    Ok(suite)
}

/// The suite's operators rendered (through the render cache), for the CRDs among them.
fn render_operators(suite: Option<&Suite>) -> Result<Vec<(String, String)>, Error> {
    let Some(suite) = suite.filter(|s| !s.operators.is_empty()) else { return Ok(Vec::new()) };
    let rendered = runtime()?.block_on(render::render_all(&suite.operators, suite.defaults.resolve_ttl.0));
    suite
        .operators
        .iter()
        .zip(rendered)
        .map(|(op, r)| match r {
            Ok(r) => Ok((format!("operator {} ({})", op.name, r.file.display()), r.text)),
            Err(e) => Err(Error::Usage(format!("operator {}: {e}", op.name))),
        })
        .collect()
}

/// `kubevet render`: every operator resolved and rendered into the cache, one line each.
fn render_suite(suite_path: Option<PathBuf>, only: Vec<String>, refresh: bool) -> Result<i32, Error> {
    let mut suite = load_suite(suite_path.as_deref(), refresh)?;
    for name in &only {
        if !suite.operators.iter().any(|o| &o.name == name) {
            let known: Vec<&str> = suite.operators.iter().map(|o| o.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--operator {name}: no such operator; the suite has: {}",
                known.join(", ")
            )));
        }
    }
    suite.operators.retain(|o| only.is_empty() || only.contains(&o.name));
    let rendered = runtime()?.block_on(render::render_all(&suite.operators, suite.defaults.resolve_ttl.0));
    let mut failed = false;
    println!("OPERATOR\tVERSION\tCACHE\tFILE");
    for (op, r) in suite.operators.iter().zip(rendered) {
        match r {
            Ok(r) => println!(
                "{}\t{}\t{}\t{}",
                op.name,
                r.version.as_deref().unwrap_or("local"),
                r.cache_label(),
                r.file.display()
            ),
            Err(e) => {
                eprintln!("kubevet: operator {}: {e}", op.name);
                failed = true;
            }
        }
    }
    Ok(if failed { error::EXIT_INFRASTRUCTURE } else { 0 })
}

/// `kubevet cluster up|down|status` for the suite's clusters.
fn cluster_command(action: ClusterAction, suite_path: Option<PathBuf>, args: ClusterArgs) -> Result<i32, Error> {
    let mut suite = suite::load(&suite::locate(suite_path.as_deref())?)?;
    args.apply(&mut suite)?;
    let settings = &suite.cluster;
    if settings.provider == Provider::Container {
        return Err(Error::Usage(
            "a container cluster lives for one run; for local loops use the kind provider".into(),
        ));
    }
    let cells = provision::cells(settings, args.k8s_version.as_deref()).map_err(Error::Usage)?;
    if settings.provider == Provider::Kind {
        kubevet::command::require(&["kind", "docker"]).map_err(Error::Usage)?;
    }
    runtime()?.block_on(async {
        // `up` finds existing clusters itself; down and status ask kind once for all cells.
        let existing = match (settings.provider, action) {
            (Provider::Kind, ClusterAction::Down | ClusterAction::Status) => {
                provision::kind_clusters().await.map_err(Error::Infrastructure)?
            }
            _ => Vec::new(),
        };
        for cell in &cells {
            let Some(name) = &cell.kind_cluster else {
                if matches!(action, ClusterAction::Up | ClusterAction::Down) {
                    println!("existing cluster: kubevet neither creates nor deletes it");
                }
                let cluster = Cluster::connect(settings.kubeconfig.as_deref(), settings.context.as_deref()).await?;
                println!("existing cluster reachable, Kubernetes {}", cluster.server_version);
                continue;
            };
            let image = cell.image.as_deref().unwrap_or_default();
            match action {
                ClusterAction::Up => {
                    let p = provision::up(settings, cell, true, run::interrupt_signal())
                        .await
                        .map_err(Error::Infrastructure)?;
                    let kubeconfig = p.kubeconfig.map(|k| k.display().to_string()).unwrap_or_default();
                    println!("{name}\tup\t{image}\t{kubeconfig}");
                }
                ClusterAction::Down if existing.contains(name) => {
                    provision::delete_kind(name).await.map_err(Error::Infrastructure)?;
                    println!("{name}\tdeleted");
                }
                ClusterAction::Down => println!("{name}\tnot found"),
                ClusterAction::Status if existing.contains(name) => {
                    let kubeconfig = provision::kind_kubeconfig(name);
                    let reachable = Cluster::connect(Some(&kubeconfig), Some(&format!("kind-{name}"))).await;
                    let state = reachable
                        .map(|c| format!("Kubernetes {}", c.server_version))
                        .unwrap_or_else(|e| format!("unreachable: {e}"));
                    println!("{name}\tup\t{image}\t{state}");
                }
                ClusterAction::Status => println!("{name}\tabsent\t{image}"),
            }
        }
        Ok(0)
    })
}

/// The schemas a cluster serves, for `lint --kubeconfig`.
fn cluster_openapi(kubeconfig: &std::path::Path, context: Option<&str>) -> Result<(serde_json::Value, String), Error> {
    runtime()?.block_on(async {
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
    let rendered = render_operators(suite.as_ref())?;
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
fn run_suite(
    args: SuiteArgs,
    cluster: ClusterArgs,
    refresh: bool,
    artifacts: PathBuf,
    junit: Option<PathBuf>,
    concurrency: Option<usize>,
    fail_fast: bool,
    keep_on_failure: bool,
) -> Result<i32, Error> {
    // Bad input is found before anything is created.
    let mut suite = load_suite(args.suite.as_deref(), refresh)?;
    cluster.apply(&mut suite)?;
    let cases = plan::plan(&suite, &args.select)?;
    if cases.is_empty() {
        return Err(Error::Usage(format!(
            "no example matches the suite's globs (and --select) under {}",
            suite.root.display()
        )));
    }
    let session = Session {
        suite,
        cases,
        k8s_version: cluster.k8s_version,
        reuse: cluster.reuse,
        junit,
        options: RunOptions { artifacts, concurrency, fail_fast, keep_on_failure },
    };
    runtime()?.block_on(session.run())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let outcome = match cli.command {
        Command::List { suite, output } => list(suite, output),
        Command::Lint { paths, suite, crds, allow, kubeconfig, context, output } => {
            lint(paths, suite, crds, allow, kubeconfig, context, output)
        }
        Command::Run { suite, cluster, refresh, artifacts, junit, concurrency, fail_fast, keep_on_failure } => {
            run_suite(suite, cluster, refresh, artifacts, junit, concurrency, fail_fast, keep_on_failure)
        }
        Command::Render { suite, operators, refresh } => render_suite(suite, operators, refresh),
        Command::Cluster { action, suite, cluster } => cluster_command(action, suite, cluster),
    };
    match outcome {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("kubevet: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
