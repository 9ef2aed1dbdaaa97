//! `kubevet lint` as a command: which files, which schemas (the suite's CRD folders, its
//! operators' rendered CRDs, a cluster's own), which rules, and the output format.

use std::{io::IsTerminal, path::PathBuf};

use super::{LintOptions, Severity, output, rules::RULES};
use crate::{
    cluster::Cluster,
    operators::render,
    plan,
    suite::{self, Suite},
    util::{
        self,
        error::{EXIT_CASE_FAILED, Error, Result},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Junit,
    Github,
}

pub struct LintCommand {
    /// Files or directories; none: the suite's examples.
    pub paths: Vec<PathBuf>,
    pub suite: Option<PathBuf>,
    pub crds: Vec<PathBuf>,
    /// Schema locations: URL templates over group, kind and version, or CRD URLs.
    pub schema_locations: Vec<String>,
    /// Use only what the cache holds of the schema locations.
    pub offline: bool,
    pub allow: Vec<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub format: Format,
}

/// Every rule a suite or the command line switches off must exist.
fn check_allowed(suite: Option<&Suite>, allow: &[String]) -> Result<()> {
    let known = || RULES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
    let exists = |name: &str| RULES.iter().any(|r| r.name == name);
    if let Some(suite) = suite
        && let Some(rule) = suite.lint.allow.iter().find(|r| !exists(&r.name))
    {
        return Err(Error::input(
            &suite.path,
            rule.line,
            rule.column,
            format!("unknown lint rule {:?}; rules: {}", rule.name, known()),
        ));
    }
    match allow.iter().find(|r| !exists(r)) {
        Some(rule) => Err(Error::usage(format!("--allow {rule}: no such rule; rules: {}", known()))),
        None => Ok(()),
    }
}

pub fn run(command: LintCommand) -> Result<i32> {
    let LintCommand { paths, suite, crds, schema_locations, offline, allow, kubeconfig, context, format } = command;
    // A suite is needed only to know the examples; its lint settings apply when there is one.
    let suite = match (&suite, paths.is_empty()) {
        (Some(p), _) => Some(suite::load(p)?),
        (None, true) => Some(suite::load_found(None)?),
        (None, false) => suite::locate(None).ok().map(|p| suite::load(&p)).transpose()?,
    };
    check_allowed(suite.as_ref(), &allow)?;
    let picked = suite.as_ref().map(plan::example_files).unwrap_or_default();
    // Python pipelines are the SDK's to check (kubevet lints what they compile into).
    let files: Vec<PathBuf> = match (&suite, paths.is_empty()) {
        (Some(_), true) => picked.iter().filter(|p| !p.rel.ends_with(".py")).map(|p| p.path.clone()).collect(),
        _ => super::expand(&paths)?,
    };
    // What the suite gives each pipeline to run with, by file.
    let pipeline_parameters = match &suite {
        Some(s) => picked
            .into_iter()
            .filter(|p| p.example)
            .map(|p| {
                let (given, at) = plan::pipeline_parameters(s, &p.rel);
                (p.path, given, at)
            })
            .collect(),
        None => Vec::new(),
    };
    let settings = suite.as_ref().map(|s| s.lint.clone()).unwrap_or_default();
    let (cluster_openapi, rendered) = util::block_on(async {
        let openapi = match &kubeconfig {
            Some(k) => {
                let cluster = Cluster::connect(Some(k), context.as_deref()).await?;
                let openapi = cluster.openapi_v2().await.map_err(Error::infrastructure_from)?;
                Some((openapi, cluster.server_version.clone()))
            }
            None => None,
        };
        let rendered = match &suite {
            Some(s) if !s.operators.is_empty() => render::manifests(s).await?,
            _ => Vec::new(),
        };
        Ok::<_, Error>((openapi, rendered))
    })??;
    let options = LintOptions {
        allow: settings.allow.into_iter().map(|r| r.name).chain(allow).collect(),
        crd_dirs: settings.crds.into_iter().chain(crds).collect(),
        schema_locations: schema_locations.into_iter().chain(settings.schema_locations).collect(),
        offline,
        rendered,
        cluster_openapi,
        pipeline_parameters,
        metrics: suite.as_ref().map(|s| s.metrics.clone()).unwrap_or_default(),
    };
    let report = super::lint(&files, &options)?;
    match format {
        Format::Text => print!("{}", output::text(&report, std::io::stdout().is_terminal())),
        Format::Json => println!("{}", output::json(&report)),
        Format::Sarif => println!("{}", output::sarif(&report)),
        Format::Junit => println!("{}", output::junit(&report)),
        Format::Github => print!("{}", output::github(&report)),
    }
    if format != Format::Text {
        eprintln!("{}", output::summary(&report));
    }
    let findings = report.count(Severity::Error) + report.count(Severity::Warning);
    Ok(if findings > 0 { EXIT_CASE_FAILED } else { 0 })
}
