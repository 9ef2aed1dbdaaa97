//! An operator's manifests: its version resolved (git tag, Helm repository or OCI tag), then
//! rendered with kustomize or `helm template`, and cached per resolved version and hash of
//! every input, so each version is rendered once and later runs (and `kubevet render`
//! ahead of them) reuse it. Install, lint and `kubevet render` all come through here.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::OperatorError;
use crate::{
    operators::versions::{self, Catalog, Constraint},
    suite::Suite,
    suite::{HelmChart, KustomizeTarget, Operator, Source},
    util::command,
    util::error::{EXIT_INFRASTRUCTURE, Error},
    util::files::{FileError, hash_files},
};

/// What rendering an operator gave.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub operator: String,
    /// The manifests, as the renderer printed them.
    pub text: String,
    /// The version a git or chart reference resolved to; none for a local directory.
    pub version: Option<String>,
    /// Whether the version came from `latest` or a range.
    pub floating: bool,
    /// Found in the render cache.
    pub cache_hit: bool,
    /// Whether the list of versions came from the resolution cache (within its TTL).
    pub listing_cached: bool,
    /// The cache file holding `text`.
    pub file: PathBuf,
    /// A local chart directory (inside the git checkout when there is one), for
    /// `helm upgrade --install`.
    pub chart_dir: Option<PathBuf>,
}

impl Rendered {
    pub fn cache_label(&self) -> &'static str {
        if self.cache_hit { "hit" } else { "miss" }
    }
}

/// Every operator resolved and rendered, in order; one failing does not stop the others.
pub async fn render_all(operators: &[Operator], ttl: Duration) -> Vec<Result<Rendered, OperatorError>> {
    let mut rendered = Vec::new();
    for op in operators {
        let r = render(op, ttl).await;
        match &r {
            Ok(r) => {
                tracing::info!(operator = %op.name, version = r.version.as_deref().unwrap_or("local"), render_cache = r.cache_label(), "operator rendered")
            }
            Err(e) => tracing::error!(operator = %op.name, error = %e, "rendering failed"),
        }
        rendered.push(r);
    }
    rendered
}

/// How to render one operator: the command, and what was resolved on the way.
struct Recipe {
    program: &'static str,
    args: Vec<String>,
    /// A chart's version, resolved from its repository or registry.
    chart: Option<versions::Resolution>,
    chart_dir: Option<PathBuf>,
    /// False for a remote kustomize target at a branch: the same URL may render differently.
    cacheable: bool,
}

/// Resolves, then renders unless the cache has this version with these inputs already.
/// `ttl` bounds how old a listing of versions may be.
pub async fn render(op: &Operator, ttl: Duration) -> Result<Rendered, OperatorError> {
    // A git source: its version is resolved and checked out; paths are inside the checkout.
    let (root, git) = match &op.git {
        Some(git) => {
            let catalog = Catalog::Git { url: git.url.clone() };
            let r = versions::resolve(&catalog, &Constraint::parse(&git.version), git.prereleases, ttl).await?;
            (Some(versions::checkout(&git.url, &r.version).await?), Some(r))
        }
        None => (None, None),
    };
    let inside = |p: &Path| root.as_ref().map(|r| r.join(p)).unwrap_or_else(|| p.to_path_buf());
    let mut hash = Sha256::new();
    let recipe = match &op.source {
        Source::Kustomize { target: KustomizeTarget::Dir(dir), args } => {
            kustomize_recipe(&inside(dir).to_string_lossy(), args, &mut hash, Some(&inside(dir)))?
        }
        Source::Kustomize { target: KustomizeTarget::Remote(url), args } => {
            kustomize_recipe(url, args, &mut hash, None)?
        }
        Source::Helm(chart) => helm_recipe(chart, &inside(Path::new(&chart.chart)), ttl, &mut hash).await?,
    };
    let resolution = recipe.chart.or(git);
    let version = resolution.as_ref().map(|r| r.version.clone());
    let input: String = hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let file = crate::util::files::cache_dir().join("rendered").join(crate::util::files::file_name(&op.name)).join(
        format!("{}-{input}.yaml", version.as_deref().map(crate::util::files::file_name).unwrap_or("local".into())),
    );
    let cached = if recipe.cacheable { std::fs::read_to_string(&file).ok() } else { None };
    let (text, cache_hit) = match cached {
        Some(text) => (text, true),
        None => {
            let args: Vec<&str> = recipe.args.iter().map(String::as_str).collect();
            let text = command::output(recipe.program, &args, None).await?;
            crate::util::files::write_atomically(&file, text.as_bytes()).map_err(|e| FileError::write(&file, e))?;
            (text, false)
        }
    };
    Ok(Rendered {
        operator: op.name.clone(),
        text,
        floating: resolution.as_ref().is_some_and(|r| r.floating),
        listing_cached: resolution.as_ref().is_some_and(|r| r.listing_cached),
        version,
        cache_hit,
        file,
        chart_dir: recipe.chart_dir,
    })
}

/// `kubectl kustomize` (or `kustomize build` where only kustomize is installed); the input is
/// every file kustomize reads from `dir`, or a remote target's URL, and the arguments.
fn kustomize_recipe(
    target: &str,
    extra: &[String],
    hash: &mut Sha256,
    dir: Option<&Path>,
) -> Result<Recipe, OperatorError> {
    match dir {
        Some(dir) => hash_files(hash, dir, &kustomize_inputs(dir))?,
        None => hash.update(format!("remote {target}\0").as_bytes()),
    }
    hash.update(format!("kustomize {extra:?}\0").as_bytes());
    let mut args: Vec<String> = extra.to_vec();
    args.push(target.to_string());
    let (program, verb) = if command::on_path("kubectl") || !command::on_path("kustomize") {
        ("kubectl", "kustomize")
    } else {
        ("kustomize", "build")
    };
    args.insert(0, verb.into());
    // A remote target is the same every time only at a tag or a commit.
    let cacheable = dir.is_some() || immutable_ref(target);
    Ok(Recipe { program, args, chart: None, chart_dir: None, cacheable })
}

/// `helm template --include-crds`; a repository or OCI chart's version is resolved first. The
/// input is the chart's files (local) or its reference and version, the values files and
/// every flag.
async fn helm_recipe(
    chart: &HelmChart,
    local_dir: &Path,
    ttl: Duration,
    hash: &mut Sha256,
) -> Result<Recipe, OperatorError> {
    let (resolution, chart_dir) = if chart.is_local() {
        hash_files(hash, local_dir, &tree(local_dir))?;
        (None, Some(local_dir.to_path_buf()))
    } else {
        let catalog = match &chart.repo {
            Some(repo) => Catalog::HelmRepo { url: repo.clone(), chart: chart.chart.clone() },
            None => Catalog::Oci { reference: chart.chart.clone(), plain_http: chart.plain_http },
        };
        let constraint = Constraint::parse(chart.version.as_deref().unwrap_or("latest"));
        let r = versions::resolve(&catalog, &constraint, chart.prereleases, ttl).await?;
        hash.update(format!("chart {} {:?} {}\0", chart.chart, chart.repo, r.version).as_bytes());
        (Some(r), None)
    };
    for file in &chart.values {
        hash.update(std::fs::read(file).map_err(|e| FileError::read(file, e))?);
    }
    let location =
        chart_dir.as_ref().map(|d: &PathBuf| d.to_string_lossy().into_owned()).unwrap_or(chart.chart.clone());
    let mut args = vec!["template".to_string(), chart.release.clone(), location];
    args.extend(helm_flags(chart, resolution.as_ref().map(|r| r.version.as_str())));
    args.push("--include-crds".into());
    hash.update(format!("helm {:?}\0", &args[3..]).as_bytes());
    Ok(Recipe { program: "helm", args, chart: resolution, chart_dir, cacheable: true })
}

/// The flags `helm template` and `helm upgrade` share: namespace, version, repository, values,
/// `--set`s (in key order), plain HTTP for a registry without TLS.
pub fn helm_flags(chart: &HelmChart, version: Option<&str>) -> Vec<String> {
    let mut flags = vec!["--namespace".to_string(), chart.namespace.clone()];
    if let Some(v) = version {
        flags.extend(["--version".into(), v.to_string()]);
    }
    if let Some(repo) = &chart.repo {
        flags.extend(["--repo".into(), repo.clone()]);
    }
    for file in &chart.values {
        flags.extend(["--values".into(), file.to_string_lossy().into_owned()]);
    }
    for (key, value) in &chart.set {
        flags.extend(["--set".into(), format!("{key}={value}")]);
    }
    if chart.plain_http {
        flags.push("--plain-http".into());
    }
    flags
}

/// Whether a remote kustomize target names a tag (a version) or a commit in its `ref=` (or
/// `version=`), rather than a branch or nothing.
fn immutable_ref(url: &str) -> bool {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| *k == "ref" || *k == "version").any(
        |(_, v)| {
            (v.len() == 40 && v.chars().all(|c| c.is_ascii_hexdigit()))
                || semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).is_ok()
        },
    )
}

/// Every file under `dir`, `.git` left out.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.is_file())
        .collect()
}

/// The files kustomize reads for `dir`: its tree, and every local file or directory its
/// kustomization files name outside of it (bases, components, resources), followed
/// through their own kustomizations. Remote bases count by their URL, in the file naming them.
fn kustomize_inputs(dir: &Path) -> BTreeSet<PathBuf> {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    fn visit(dir: &Path, seen: &mut BTreeSet<PathBuf>, files: &mut BTreeSet<PathBuf>) {
        let Ok(dir) = dir.canonicalize() else { return };
        if !seen.insert(dir.clone()) {
            return;
        }
        for file in tree(&dir) {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if matches!(name.as_str(), "kustomization.yaml" | "kustomization.yml" | "Kustomization")
                && let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(value) = serde_saphyr::from_str::<Value>(&text)
            {
                let mut named = Vec::new();
                strings(&value, &mut named);
                let parent = file.parent().unwrap_or(&dir).to_path_buf();
                for path in named.iter().filter_map(|n| parent.join(n).canonicalize().ok()) {
                    if path.starts_with(&dir) {
                        continue;
                    }
                    if path.is_dir() {
                        visit(&path, seen, files);
                    } else if path.is_file() {
                        files.insert(path);
                    }
                }
            }
            files.insert(file);
        }
    }
    let mut files = BTreeSet::new();
    visit(dir, &mut BTreeSet::new(), &mut files);
    files
}

/// `kubevet render`: every operator (or those named) resolved and rendered into the cache,
/// one line each: `OPERATOR  VERSION  CACHE  FILE`. Exit 0, or 3 if one could not be rendered.
pub async fn command(suite: &Suite, only: &[String]) -> Result<i32, Error> {
    for name in only {
        if !suite.operators.iter().any(|o| &o.name == name) {
            let known: Vec<&str> = suite.operators.iter().map(|o| o.name.as_str()).collect();
            return Err(Error::usage(format!(
                "--operator {name}: no such operator; the suite has: {}",
                known.join(", ")
            )));
        }
    }
    let chosen: Vec<Operator> =
        suite.operators.iter().filter(|o| only.is_empty() || only.contains(&o.name)).cloned().collect();
    let rendered = render_all(&chosen, suite.defaults.resolve_ttl.0).await;
    let mut failed = false;
    println!("OPERATOR\tVERSION\tCACHE\tFILE");
    for (op, r) in chosen.iter().zip(rendered) {
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
    Ok(if failed { EXIT_INFRASTRUCTURE } else { 0 })
}

/// The suite's operators rendered (through the render cache), for the CRDs among them:
/// (where from, manifests).
pub async fn manifests(suite: &Suite) -> Result<Vec<(String, String)>, Error> {
    let rendered = render_all(&suite.operators, suite.defaults.resolve_ttl.0).await;
    suite
        .operators
        .iter()
        .zip(rendered)
        .map(|(op, r)| match r {
            Ok(r) => Ok((format!("operator {} ({})", op.name, r.file.display()), r.text)),
            Err(e) => Err(Error::usage_because(format!("operator {}", op.name), e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tags_and_commits_make_a_remote_target_cacheable() {
        assert!(immutable_ref("https://github.com/kubeflow/trainer//manifests/overlays/standalone?ref=v1.9.0"));
        assert!(immutable_ref("github.com/org/repo//deploy?timeout=90s&ref=0123456789abcdef0123456789abcdef01234567"));
        assert!(!immutable_ref("https://github.com/kubeflow/trainer//manifests?ref=master"));
        assert!(!immutable_ref("https://github.com/kubeflow/trainer//manifests"));
    }

    #[test]
    fn kustomize_inputs_follow_references_outside_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (overlay, base, crds) = (dir.path().join("overlay"), dir.path().join("base"), dir.path().join("crds"));
        for d in [&overlay, &base, &crds] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(overlay.join("kustomization.yaml"), "resources: [../base, ../crds/a.yaml]\n").expect("write");
        std::fs::write(base.join("kustomization.yaml"), "resources: [deploy.yaml]\n").expect("write");
        std::fs::write(base.join("deploy.yaml"), "kind: Deployment\n").expect("write");
        std::fs::write(crds.join("a.yaml"), "kind: CustomResourceDefinition\n").expect("write");
        std::fs::write(crds.join("unrelated.yaml"), "x\n").expect("write");
        let names: Vec<String> = kustomize_inputs(&overlay)
            .iter()
            .map(|p| {
                crate::util::files::relative(&overlay.canonicalize().expect("exists"), p).to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(
            names,
            ["../base/deploy.yaml", "../base/kustomization.yaml", "../crds/a.yaml", "kustomization.yaml"]
        );
    }
}
