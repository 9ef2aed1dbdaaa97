use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use kubevet::{
    cluster::{
        clean::{Runs, clean_clusters},
        manage::{Action, manage},
    },
    history,
    lint::{
        self,
        command::{Format, LintCommand},
    },
    matrix,
    operators::render,
    plan,
    report::terminal::ColorChoice,
    run::RunOptions,
    session::Session,
    suite::{self, Provider, Suite},
    sweep,
    util::{self, duration::Dur, error::Error},
};

/// kubevet proves that the examples and operators of a Kubernetes project still work: every
/// example runs in its own namespace and is judged by its workload's own terminal state.
#[derive(Parser)]
#[command(name = "kubevet", version, about, long_about = None)]
struct Cli {
    /// Log lines as text or JSON (on standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log lines on standard error: -v info, -vv debug (every retried request), -vvv trace;
    /// RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    color: ColorArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorChoice {
    fn from(c: ColorArg) -> ColorChoice {
        match c {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }
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
    Github,
}

#[derive(clap::Args)]
struct SuiteArgs {
    /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Only the examples whose path (relative to the suite) or case id matches; repeatable.
    #[arg(long = "select", value_name = "GLOB")]
    select: Vec<String>,
    /// Only the cases of this tier (the `tier` overrides give); repeatable.
    #[arg(long = "tier", value_name = "NAME")]
    tiers: Vec<String>,
    /// Only the cases a change since REF touches (git merge-base REF HEAD, then the working
    /// tree): their own files, what they apply or run, the images they build, the CRDs and
    /// operators of their kinds; everything when the suite changed or the base is not found.
    #[arg(long, value_name = "REF")]
    changed_since: Option<String>,
}

/// What narrows the suite's selection beyond globs and tiers, read before planning.
#[derive(Default)]
struct Narrowed {
    changed: Option<plan::changed::ChangedSince>,
    only: Option<std::collections::BTreeSet<String>>,
}

impl SuiteArgs {
    fn selection<'a>(&'a self, narrowed: &'a Narrowed) -> plan::Selection<'a> {
        plan::Selection {
            globs: &self.select,
            tiers: &self.tiers,
            changed: narrowed.changed.as_ref(),
            only: narrowed.only.as_ref(),
        }
    }

    /// `--changed-since`, read with git (before any async runtime runs).
    fn narrowed(&self, suite: &Suite) -> Result<Narrowed, Error> {
        let changed = match &self.changed_since {
            Some(reference) => Some(util::block_on(plan::changed::changed_since(suite, reference))?),
            None => None,
        };
        if let Some(plan::changed::ChangedSince::Everything(why)) = &changed {
            let _ = writeln!(std::io::stderr(), "kubevet: --changed-since: {why}");
        }
        Ok(Narrowed { changed, only: None })
    }
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
                return Err(Error::usage("--kubeconfig and --context are for an existing cluster"));
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
            return Err(Error::usage(
                "--k8s-version picks a cell of a kind matrix; an existing cluster has its own version",
            ));
        }
        if self.reuse && c.provider != Provider::Kind {
            return Err(Error::usage("--reuse keeps kind clusters between runs; other providers have none to keep"));
        }
        Ok(())
    }
}

/// How `kubevet run` runs and reports, beyond the suite and the cluster.
#[derive(clap::Args)]
struct RunArgs {
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
    /// Retries of a case that fails in a class the suite retries (default: the suite's, per
    /// example, profile and defaults).
    #[arg(long)]
    retries: Option<u32>,
    /// Start no more cases after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Leave the namespaces of cases that did not pass, for a look.
    #[arg(long)]
    keep_on_failure: bool,
    /// Do not sample the cases' pods' CPU and memory from the kubelets (no `nodes/proxy` reads;
    /// no usage figures).
    #[arg(long)]
    no_usage: bool,
    /// GitHub Actions output: a group per case, annotations on the example files, a step
    /// summary (default when GITHUB_ACTIONS=true).
    #[arg(long)]
    github: bool,
    #[command(flatten)]
    history: HistoryArgs,
    /// Write the HTML report (the run, its history and health) to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write a CTRF (Common Test Report Format) JSON report to this file.
    #[arg(long, value_name = "FILE")]
    ctrf: Option<PathBuf>,
    /// Run one shard of a plan `kubevet plan` wrote (with --shard): exactly its cases, on its
    /// Kubernetes version.
    #[arg(long, value_name = "FILE", requires = "shard", conflicts_with_all = ["select", "tiers", "changed_since", "rerun_failed", "k8s_version"])]
    plan: Option<PathBuf>,
    /// The shard of --plan to run (its id, as the plan's matrix gives it).
    #[arg(long, value_name = "ID", requires = "plan")]
    shard: Option<String>,
    /// Only the cases that did not pass in the suite's last run in the history (per cell).
    #[arg(long, conflicts_with = "no_history")]
    rerun_failed: bool,
}

/// Where the run history is.
#[derive(clap::Args, Clone)]
struct HistoryArgs {
    /// The history database (default: history.sqlite in kubevet's cache folder).
    #[arg(long, value_name = "PATH")]
    history: Option<PathBuf>,
    /// Do not add this run to any history.
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
}

impl HistoryArgs {
    fn path(&self) -> Option<PathBuf> {
        (!self.no_history).then(|| self.history.clone().unwrap_or_else(history::default_path))
    }
}

/// Which runs health and the report look at.
/// A whole number from MIN to MAX; anything else (a long digit run included) is refused with
/// the range, never wrapped or clamped.
fn whole_number<const MIN: u64, const MAX: u64>(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (MIN..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {MIN} to {MAX}")),
    }
}

#[derive(clap::Args)]
struct WindowArgs {
    /// The history database (default: history.sqlite in kubevet's cache folder).
    #[arg(long, value_name = "PATH")]
    history: Option<PathBuf>,
    /// The suite file whose runs to take (default: kubevet.yaml here or above; without one,
    /// every suite's).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// At most this many of the latest runs (1 to 100000).
    #[arg(long, default_value_t = 20, value_parser = whole_number::<1, 100_000>)]
    runs: u64,
    /// Only runs of the last DAYS days (1 to 36500).
    #[arg(long, default_value_t = 14, value_parser = whole_number::<1, 36_500>)]
    days: u64,
}

impl WindowArgs {
    fn history(&self) -> PathBuf {
        self.history.clone().unwrap_or_else(history::default_path)
    }

    /// The suite's name, when one is given or found.
    fn suite_name(&self) -> Result<Option<String>, Error> {
        match &self.suite {
            Some(path) => Ok(Some(suite::load(path)?.name)),
            // Only a missing suite file widens the window to every suite: a broken one is
            // an error, not a silent change of what health or the report covers.
            None => match suite::locate(None) {
                Ok(path) => Ok(Some(suite::load(&path)?.name)),
                Err(_) => Ok(None),
            },
        }
    }

    fn window(&self) -> history::Window {
        // Both are bounded by their parser, so they fit.
        history::Window {
            runs: usize::try_from(self.runs).unwrap_or(usize::MAX),
            days: i64::try_from(self.days).unwrap_or(36_500),
        }
    }
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Add runs made elsewhere (run.json files, JUnit XML files where no run.json was kept, or
    /// folders holding them: each CI job's artifacts); a run already there is not added twice.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The history database (default: history.sqlite in kubevet's cache folder).
        #[arg(long, value_name = "PATH")]
        history: Option<PathBuf>,
        /// The suite a JUnit file's runs belong to, when its <testsuite> names do not say it
        /// (kubevet's own JUnit does).
        #[arg(long, value_name = "NAME")]
        suite_name: Option<String>,
        /// The Kubernetes version a JUnit file's runs were asked for, when it does not say it
        /// (none: an existing cluster, as `run` without a matrix).
        #[arg(long, value_name = "VERSION")]
        k8s_version: Option<String>,
    },
}

/// What `kubevet plan` is asked.
#[derive(clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    suite: SuiteArgs,
    /// Only this Kubernetes version of the matrix.
    #[arg(long = "k8s-version", value_name = "VERSION")]
    k8s_version: Option<String>,
    /// The history database the durations come from (default: history.sqlite in kubevet's
    /// cache folder; `kubevet history import` fills it from CI artifacts).
    #[arg(long, value_name = "PATH")]
    history: Option<PathBuf>,
    /// Only the cases that did not pass in the suite's last run, per cell.
    #[arg(long)]
    rerun_failed: bool,
    /// At most this many shards per Kubernetes version (1 to 256; GitHub's 256 jobs per
    /// matrix are shared by the versions).
    #[arg(long, value_parser = whole_number::<1, 256>)]
    max_shards: Option<u64>,
    /// The fewest shards whose every job is predicted to take at most this long (1 to 1440).
    #[arg(long, value_parser = whole_number::<1, 1440>)]
    target_minutes: Option<u64>,
    /// Cases a job runs at once (default: the suite's defaults.concurrency).
    #[arg(long, value_parser = whole_number::<1, 1000>)]
    concurrency: Option<u64>,
    /// The plan file.
    #[arg(long, default_value = "kubevet-plan.json")]
    output: PathBuf,
    /// Also write the GitHub matrix JSON to this file.
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,
}

/// What `kubevet run` (and each run of `kubevet sweep`) is asked: the suite, the cluster, how
/// to run and report.
#[derive(clap::Args)]
struct RunCommand {
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run every example of the suite on a cluster and report.
    Run(RunCommand),
    /// Check examples without a cluster: YAML, schemas (CRDs and built-in kinds, strict),
    /// compiled Kubeflow pipelines, policy rules.
    Lint {
        /// Files or directories (default: the suite's examples).
        paths: Vec<PathBuf>,
        /// The suite file, for its examples and its lint settings.
        #[arg(long)]
        suite: Option<PathBuf>,
        /// Directories of CRDs to check custom resources against; repeatable.
        #[arg(long = "crds", value_name = "DIR")]
        crds: Vec<PathBuf>,
        /// Where to fetch schemas of kinds nothing else describes: a URL template over
        /// {{.Group}}, {{.ResourceKind}}, {{.ResourceAPIVersion}} (kubeconform's), or the URL of a
        /// file of CRDs; repeatable, tried in order; kept in kubevet's cache.
        #[arg(long = "schema-location", value_name = "URL")]
        schema_locations: Vec<String>,
        /// Use only the schemas already in the cache; fetch nothing.
        #[arg(long)]
        offline: bool,
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
    /// Delete what kubevet left on a cluster (case namespaces and the cluster-scoped objects
    /// they applied), found by the run label; operators are left alone.
    Clean {
        /// Only what this run left (its id is in run.json, JUnit and the summary).
        #[arg(long, value_name = "ID", conflicts_with = "all", required_unless_present = "all")]
        run: Option<String>,
        /// Whatever any kubevet run left.
        #[arg(long)]
        all: bool,
        /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
        #[arg(long)]
        suite: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The run history: import runs made elsewhere.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Health per example, per Kubernetes version and overall: state, score, pass rate,
    /// flakiness, duration trend, and regressions on one version.
    Health {
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Write the HTML report of the history's latest run: the matrix, the history grid,
    /// health and trends, in one file that opens offline.
    Report {
        #[command(flatten)]
        window: WindowArgs,
        /// The HTML file (default: kubevet-artifacts/report.html).
        #[arg(long, default_value = "kubevet-artifacts/report.html")]
        output: PathBuf,
    },
    /// Stay up and run the suite at each trigger of a cron schedule (history appended, report
    /// written each time); never two runs at once, no catch-up of missed triggers.
    Sweep {
        /// A cron schedule: five fields, or six with seconds first.
        #[arg(long, required_unless_present = "once")]
        schedule: Option<String>,
        /// One sweep now, then exit with its exit code.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        run: RunCommand,
    },
    /// Plan a CI matrix once: the selection's cases per Kubernetes version, split into shards
    /// balanced by their durations in the history; a plan file, and the GitHub matrix in
    /// $GITHUB_OUTPUT (`matrix`, `shards`, `plan`). Each job then runs `kubevet run --plan
    /// FILE --shard ID`.
    Plan(PlanArgs),
    /// Merge what the jobs of a matrix wrote (their artifacts folders, searched for
    /// run.json) into one run: one JUnit with a testsuite per Kubernetes version, one run.json,
    /// one CTRF, the summary with each shard's predicted and actual time, the history updated
    /// once. With --plan, a shard that reported nothing is reported, its cases "not run".
    Merge {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// The suite file (default: kubevet.yaml here or in the nearest parent up to the repository root).
        #[arg(long)]
        suite: Option<PathBuf>,
        /// The plan the shards ran: every shard of it must be there, or is reported missing.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Where the merged run.json, junit.xml and ctrf.json go.
        #[arg(long, default_value = "kubevet-merged")]
        output: PathBuf,
        #[command(flatten)]
        history: HistoryArgs,
        /// Write the HTML report (the merged run, its history and health) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// GitHub Actions output: groups, annotations, the step summary (default when
        /// GITHUB_ACTIONS=true).
        #[arg(long)]
        github: bool,
    },
    /// Print the plan: every case, its file, profile, timeout and tier.
    List {
        #[command(flatten)]
        suite: SuiteArgs,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Log lines on standard error: as JSON (from info up), or as text only when asked for
/// (`-v` info, `-vv` debug, `-vvv` trace; warnings always), since a run's own lines are the
/// finished cases and the live area.
fn init_logging(format: LogFormat, verbose: u8, color: ColorChoice) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let default = match (format, verbose) {
        (LogFormat::Json, 0) | (_, 1) => "kubevet=info",
        (LogFormat::Text, 0) => "kubevet=warn",
        (_, 2) => "kubevet=debug",
        _ => "kubevet=trace,kube=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init(),
        LogFormat::Text => {
            let ansi = color.enabled(std::io::stderr().is_terminal());
            registry.with(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).init()
        }
    }
}

/// A suite, with `--refresh` overriding its `defaults.resolveTtl`.
fn load_suite(path: Option<&std::path::Path>, refresh: bool) -> Result<Suite, Error> {
    let mut suite = suite::load_found(path)?;
    if refresh {
        suite.defaults.resolve_ttl = Dur(std::time::Duration::ZERO);
    }
    Ok(suite)
}

/// A run as the command line asks for it: the suite read, the cases planned (bad input is
/// found here, before anything is created).
fn session(command: &RunCommand, color: ColorChoice) -> Result<Option<Session>, Error> {
    let RunCommand { suite: args, cluster, run } = command;
    let mut suite = load_suite(args.suite.as_deref(), run.refresh)?;
    cluster.apply(&mut suite)?;
    let mut narrowed = args.narrowed(&suite)?;
    let mut k8s_version = cluster.k8s_version.clone();
    let shard = match (&run.plan, &run.shard) {
        (Some(plan), Some(id)) => Some(util::block_on(matrix::shard(&suite, plan, id))??),
        _ => None,
    };
    if let Some(shard) = &shard {
        narrowed.only = Some(shard.cases.clone());
        k8s_version = shard.kubernetes.clone();
    }
    if run.rerun_failed {
        let failed = matrix::failed_last_run(&run.history.path().unwrap_or_else(history::default_path), &suite)?;
        let cell = k8s_version.clone();
        narrowed.only = Some(match failed.get(&cell) {
            Some(ids) if cell.is_some() => ids.clone(),
            _ => failed.into_values().flatten().collect(),
        });
    }
    let selection = args.selection(&narrowed);
    let mut cases = plan::plan_some(&suite, selection)?;
    if cases.is_empty() {
        println!("{}", plan::nothing_selected(selection));
        return Ok(None);
    }
    if let Some(retries) = run.retries {
        cases.iter_mut().for_each(|c| c.retries = retries);
    }
    Ok(Some(Session {
        shard: shard.map(|s| s.reference),
        suite,
        cases,
        k8s_version,
        reuse: cluster.reuse,
        junit: run.junit.clone(),
        color,
        options: RunOptions {
            artifacts: run.artifacts.clone(),
            concurrency: run.concurrency,
            fail_fast: run.fail_fast,
            keep_on_failure: run.keep_on_failure,
            github: run.github || std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            cluster_deleted_after: false,
            sample_usage: !run.no_usage,
        },
        history: run.history.path(),
        html: run.html.clone(),
        ctrf: run.ctrf.clone(),
    }))
}

/// Each kind of error's exit code: decided here, and only here.
fn exit_code(e: &Error) -> i32 {
    use util::error::{EXIT_BAD_INPUT, EXIT_HISTORY, EXIT_INFRASTRUCTURE};
    match e {
        Error::Input { .. } | Error::Usage { .. } => EXIT_BAD_INPUT,
        Error::Infrastructure { .. } => EXIT_INFRASTRUCTURE,
        Error::History { .. } => EXIT_HISTORY,
    }
}

/// `kubevet plan`: the selection and the history into a plan file and the GitHub matrix.
fn plan_command(args: PlanArgs) -> Result<i32, Error> {
    let PlanArgs {
        suite: selection,
        k8s_version,
        history,
        rerun_failed,
        max_shards,
        target_minutes,
        concurrency,
        output,
        matrix,
    } = args;
    let suite = suite::load_found(selection.suite.as_deref())?;
    let narrowed = selection.narrowed(&suite)?;
    let history = history.unwrap_or_else(history::default_path);
    let failed = rerun_failed.then(|| matrix::failed_last_run(&history, &suite)).transpose()?;
    let request = matrix::PlanRequest {
        suite: &suite,
        selection: selection.selection(&narrowed),
        k8s_version: k8s_version.as_deref(),
        history: Some(&history),
        failed: failed.as_ref(),
        max_shards: max_shards.map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
        target_seconds: target_minutes.map(|m| m as f64 * 60.0),
        concurrency: concurrency.map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
        output: &output,
        matrix: matrix.as_deref(),
    };
    util::block_on(matrix::plan_command(request))?
}

fn lint_format(output: LintOutput) -> Format {
    match output {
        LintOutput::Text => Format::Text,
        LintOutput::Json => Format::Json,
        LintOutput::Sarif => Format::Sarif,
        LintOutput::Junit => Format::Junit,
        LintOutput::Github => Format::Github,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = ColorChoice::from(cli.color);
    init_logging(cli.log_format, cli.verbose, color);
    match dispatch(cli.command, color) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)),
        Err(e) => {
            // The exit code says it even when standard error is closed.
            let _ = writeln!(std::io::stderr(), "kubevet: {e}");
            ExitCode::from(u8::try_from(exit_code(&e)).unwrap_or(u8::MAX))
        }
    }
}

/// Each subcommand to the module that owns its work.
fn dispatch(command: Command, color: ColorChoice) -> Result<i32, Error> {
    match command {
        Command::List { suite: args, output } => suite::load_found(args.suite.as_deref()).and_then(|suite| {
            let narrowed = args.narrowed(&suite)?;
            plan::list(&suite, args.selection(&narrowed), matches!(output, Output::Json))
        }),
        Command::Plan(args) => plan_command(args),
        Command::Lint { paths, suite, crds, schema_locations, offline, allow, kubeconfig, context, output } => {
            lint::command::run(LintCommand {
                paths,
                suite,
                crds,
                schema_locations,
                offline,
                allow,
                kubeconfig,
                context,
                format: lint_format(output),
            })
        }
        Command::Merge { dirs, suite, plan, output, history, html, github } => suite::load_found(suite.as_deref())
            .and_then(|suite| {
                matrix::merge::merge_command(matrix::merge::MergeRequest {
                    suite: &suite,
                    dirs: &dirs,
                    plan: plan.as_deref(),
                    output: &output,
                    history: history.path(),
                    html,
                    github: github || std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
                })
            }),
        Command::Run(command) => session(&command, color).and_then(|session| match session {
            Some(session) => util::block_on(async { session.run(util::interrupt::interrupt_signal()).await })?,
            None => Ok(0),
        }),
        Command::Sweep { schedule, once, run } => {
            schedule.as_deref().map(sweep::schedule).transpose().and_then(|cron| {
                if run.suite.changed_since.is_some() || run.run.plan.is_some() || run.run.rerun_failed {
                    return Err(Error::usage(
                        "a sweep runs the whole suite: --changed-since, --plan and --rerun-failed are for one run",
                    ));
                }
                // The first run's input is checked before the sweep starts waiting.
                session(&run, color)?;
                let whole = || session(&run, color)?.ok_or_else(|| Error::usage("the suite has no case"));
                util::block_on(sweep::sweep(cron, once, whole))?
            })
        }
        Command::History { command: HistoryCommand::Import { paths, history: path, suite_name, k8s_version } } => {
            let junit = history::JunitDefaults { suite: suite_name, kubernetes: k8s_version };
            history::import(&path.unwrap_or_else(history::default_path), &paths, &junit)
        }
        Command::Health { window, output } => window.suite_name().and_then(|name| {
            history::health_command(&window.history(), name.as_deref(), window.window(), matches!(output, Output::Json))
        }),
        Command::Report { window, output } => window
            .suite_name()
            .and_then(|name| history::report_command(&window.history(), name.as_deref(), window.window(), &output)),
        Command::Render { suite, operators, refresh } => {
            load_suite(suite.as_deref(), refresh).and_then(|suite| {
                let rendered = util::block_on(render::command(&suite, &operators))??;
                // Python pipelines are compiled into their cache too (not when operators are named).
                let compiled = if operators.is_empty() {
                    util::block_on(kubevet::plan::pipeline::compile_command(&suite))??
                } else {
                    0
                };
                Ok(rendered.max(compiled))
            })
        }
        Command::Clean { run, all: _, suite, cluster } => suite::load_found(suite.as_deref()).and_then(|mut suite| {
            cluster.apply(&mut suite)?;
            let runs = run.map(Runs::One).unwrap_or(Runs::All);
            let timeout = suite.defaults.cleanup_timeout.0;
            util::block_on(clean_clusters(&suite.cluster, cluster.k8s_version.as_deref(), &runs, timeout))?
        }),
        Command::Cluster { action, suite, cluster } => suite::load_found(suite.as_deref()).and_then(|mut suite| {
            cluster.apply(&mut suite)?;
            let action = match action {
                ClusterAction::Up => Action::Up,
                ClusterAction::Down => Action::Down,
                ClusterAction::Status => Action::Status,
            };
            util::block_on(manage(action, &suite.cluster, cluster.k8s_version.as_deref()))?
        }),
    }
}
