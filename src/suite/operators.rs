//! The suite's `operators:`: where each operator's manifests come from (a kustomize target or
//! a Helm chart, possibly inside a git repository at a floating version) and how to install it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::{
    util::duration::Dur,
    util::error::{Error, Result},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct OperatorFile {
    name: Spanned<String>,
    git: Option<GitFile>,
    kustomize: Option<Spanned<String>>,
    #[serde(default)]
    kustomize_args: Vec<String>,
    helm: Option<HelmFile>,
    #[serde(default)]
    images: Vec<Spanned<String>>,
    timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitFile {
    url: String,
    version: Spanned<String>,
    #[serde(default)]
    prereleases: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HelmFile {
    chart: Spanned<String>,
    repo: Option<String>,
    version: Option<Spanned<String>>,
    #[serde(default)]
    prereleases: bool,
    release: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    values: Vec<Spanned<String>>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    install: HelmInstall,
    #[serde(default)]
    plain_http: bool,
}

/// A repository an operator comes from, at a floating (`latest`, a semver range) or pinned
/// (a tag or branch) version.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub url: String,
    pub version: String,
    pub prereleases: bool,
}

/// How a Helm chart gets onto the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HelmInstall {
    /// `helm template`, then server-side apply by kubevet: no release, no hooks.
    #[default]
    Template,
    /// `helm upgrade --install --wait`, for charts that need their hooks.
    Upgrade,
}

/// A Helm chart: a local directory, a chart in a repository, or an `oci://` reference.
#[derive(Debug, Clone)]
pub struct HelmChart {
    /// A path (inside the git checkout when there is one), a chart name in `repo`, or `oci://…`.
    pub chart: String,
    pub repo: Option<String>,
    /// `latest`, a semver range or a version; none means what the chart directory holds.
    pub version: Option<String>,
    pub prereleases: bool,
    pub release: String,
    pub namespace: String,
    pub values: Vec<PathBuf>,
    pub set: BTreeMap<String, String>,
    pub install: HelmInstall,
    pub plain_http: bool,
}

impl HelmChart {
    pub fn is_local(&self) -> bool {
        self.repo.is_none() && !self.chart.starts_with("oci://")
    }
}

/// Where an operator's manifests come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A kustomize target, rendered with `kubectl kustomize` and these extra arguments.
    Kustomize {
        target: KustomizeTarget,
        args: Vec<String>,
    },
    Helm(HelmChart),
}

/// What kustomize renders.
#[derive(Debug, Clone, PartialEq)]
pub enum KustomizeTarget {
    /// A directory: relative to the suite, or inside the operator's git checkout.
    Dir(PathBuf),
    /// A remote target kustomize fetches itself, such as
    /// `https://github.com/kubeflow/trainer//manifests/overlays/standalone?ref=v1.9.0`.
    Remote(String),
}

impl KustomizeTarget {
    fn parse(text: &str) -> Option<KustomizeTarget> {
        let remote = text.contains("://") || text.starts_with("github.com/") || text.starts_with("git@");
        remote.then(|| KustomizeTarget::Remote(text.to_string()))
    }
}

/// An operator under test, installed before any case.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    /// A repository the source's paths are inside of.
    pub git: Option<GitSource>,
    pub source: Source,
    /// Image references swapped in the rendered manifests, like `kustomize edit set image`.
    pub set_images: Vec<super::images::Retag>,
    pub timeout: std::time::Duration,
}

/// One `operators:` entry, resolved: paths against the suite's folder (or inside the git
/// checkout), every mistake at its file:line:col.
pub(super) fn load(path: &Path, base: &Path, op: &OperatorFile) -> Result<Operator> {
    let at = |loc: &Location, msg: String| Error::input(path, loc.line(), loc.column(), msg);
    for version in
        op.git.as_ref().map(|g| &g.version).into_iter().chain(op.helm.as_ref().and_then(|h| h.version.as_ref()))
    {
        check_version(&version.value).map_err(|e| {
            at(&version.referenced, e).with_hint(
                "write `latest`, a semver range such as \"~1.8\" or \">=0.3, <0.5\", or a tag or branch exactly as it is named",
            )
        })?;
    }
    let git = op.git.as_ref().map(|g| GitSource {
        url: g.url.clone(),
        version: g.version.value.clone(),
        prereleases: g.prereleases,
    });
    // Paths are inside the repository for a git source, else relative to the suite.
    let local = |p: &Spanned<String>, what: &str| -> Result<PathBuf> {
        if git.is_some() {
            return Ok(PathBuf::from(&p.value));
        }
        let dir = base.join(&p.value);
        if !dir.exists() {
            return Err(at(&p.referenced, format!("{what} {} does not exist", dir.display())));
        }
        Ok(dir)
    };
    let source = match (&op.kustomize, &op.helm) {
        (Some(k), None) => {
            let target = match KustomizeTarget::parse(&k.value) {
                Some(_) if git.is_some() => {
                    return Err(at(&k.referenced, "a remote kustomize target cannot also come from git".into()));
                }
                Some(remote) => remote,
                None => KustomizeTarget::Dir(local(k, "kustomize directory")?),
            };
            Source::Kustomize { target, args: op.kustomize_args.clone() }
        }
        (None, Some(h)) => {
            let remote = h.repo.is_some() || h.chart.value.starts_with("oci://");
            if remote && git.is_some() {
                return Err(at(
                    &h.chart.referenced,
                    "a chart from a repository or OCI registry cannot also come from git".into(),
                ));
            }
            if remote && h.version.is_none() {
                return Err(at(
                    &h.chart.referenced,
                    format!("chart {:?} needs a version: latest, a semver range or a version", h.chart.value),
                ));
            }
            let chart = if remote {
                h.chart.value.clone()
            } else {
                local(&h.chart, "chart directory")?.to_string_lossy().into_owned()
            };
            let values = h
                .values
                .iter()
                .map(|v| {
                    let file = base.join(&v.value);
                    if file.is_file() {
                        Ok(file)
                    } else {
                        Err(at(&v.referenced, format!("values file {} does not exist", file.display())))
                    }
                })
                .collect::<Result<_>>()?;
            Source::Helm(HelmChart {
                chart,
                repo: h.repo.clone(),
                version: h.version.as_ref().map(|v| v.value.clone()),
                prereleases: h.prereleases,
                release: h.release.clone().unwrap_or_else(|| op.name.value.clone()),
                namespace: h.namespace.clone().unwrap_or_else(|| op.name.value.clone()),
                values,
                set: h.set.clone(),
                install: h.install,
                plain_http: h.plain_http,
            })
        }
        _ => {
            return Err(at(
                &op.name.referenced,
                format!("operator {:?} needs exactly one of kustomize and helm", op.name.value),
            ));
        }
    };
    if let (Source::Helm(HelmChart { install: HelmInstall::Upgrade, .. }), Some(first)) = (&source, op.images.first()) {
        let why =
            "images: cannot apply to `install: upgrade` (helm applies the manifests); use the chart's values instead";
        return Err(at(&first.referenced, why.into()));
    }
    let set_images = op
        .images
        .iter()
        .map(|i| super::images::Retag::parse(&i.value).map_err(|e| at(&i.referenced, e)))
        .collect::<Result<_>>()?;
    Ok(Operator {
        name: op.name.value.clone(),
        git,
        source,
        set_images,
        timeout: op.timeout.map(|t| t.0).unwrap_or(std::time::Duration::from_secs(300)),
    })
}
/// A version that reads as a range (it starts with an operator or lists several) must be one
/// semver understands: `>>>1` would otherwise be looked up as a tag and fail only at install.
fn check_version(text: &str) -> std::result::Result<(), String> {
    let looks_like_a_range = text.starts_with(['<', '>', '=', '~', '^', '*']) || text.contains(',');
    match semver::VersionReq::parse(text) {
        Err(e) if looks_like_a_range => Err(format!("version {text:?} is not a semver range: {e}")),
        _ if text.trim().is_empty() => Err("version is empty".into()),
        _ => Ok(()),
    }
}
