//! Floating or pinned versions of what a run tests (the recurring-runs idea of Kubeflow
//! Pipelines). A source may say `latest` or a semver range, resolved against what its catalog
//! lists (a git repository's tags, a Helm repository's `index.yaml`, an OCI chart's tags), or
//! name a version, used exactly as written and never looked up. Catalog listings are cached
//! for a TTL. Each run records what it used in a ledger; the summary says first what changed
//! since the previous run.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use semver::{Version, VersionReq};
use serde_json::{Value, json};

use super::OperatorError;
use crate::util::{
    command,
    files::{FileError, cache_dir, short_hash},
    http::{self, Response},
};

fn parse(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// What a source asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// The highest release.
    Latest,
    /// The highest release the range matches.
    Range(VersionReq),
    /// Exactly this tag, branch or chart version: never looked up.
    Pinned(String),
}

impl Constraint {
    pub fn parse(text: &str) -> Constraint {
        match text {
            "latest" => Constraint::Latest,
            other => match VersionReq::parse(other) {
                Ok(req) if parse(other).is_none() => Constraint::Range(req),
                _ => Constraint::Pinned(other.to_string()),
            },
        }
    }
}

/// The version a floating constraint picks among `available`. Pre-releases count only when
/// asked for.
/// No listed version meets a floating constraint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("no version matches {wanted:?} among {listed} listed (pre-releases {})", if *prereleases { "included" } else { "excluded" })]
pub struct NoMatch {
    pub wanted: String,
    pub listed: usize,
    pub prereleases: bool,
}

pub fn pick(available: &[String], constraint: &Constraint, prereleases: bool) -> Result<String, NoMatch> {
    let range = match constraint {
        Constraint::Pinned(version) => return Ok(version.clone()),
        Constraint::Latest => None,
        Constraint::Range(req) => Some(req),
    };
    available
        .iter()
        .filter_map(|t| parse(t).map(|v| (v, t)))
        .filter(|(v, _)| prereleases || v.pre.is_empty())
        .filter(|(v, _)| range.is_none_or(|r| r.matches(v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t.clone())
        .ok_or_else(|| NoMatch {
            wanted: range.map_or_else(|| "latest".into(), |r| r.to_string()),
            listed: available.len(),
            prereleases,
        })
}

/// Where a source's versions are listed.
#[derive(Debug, Clone, PartialEq)]
pub enum Catalog {
    /// A git repository's tags, from `git ls-remote`.
    Git { url: String },
    /// A Helm repository's `index.yaml` (http, https or file URL) and a chart in it.
    HelmRepo { url: String, chart: String },
    /// An OCI chart's tags, from the registry's `/v2/<name>/tags/list`.
    Oci { reference: String, plain_http: bool },
}

impl Catalog {
    fn key(&self) -> String {
        match self {
            Catalog::Git { url } => format!("git {url}"),
            Catalog::HelmRepo { url, chart } => format!("helm {url} {chart}"),
            Catalog::Oci { reference, .. } => format!("oci {reference}"),
        }
    }

    async fn list(&self) -> Result<Vec<String>, OperatorError> {
        match self {
            Catalog::Git { url } => remote_tags(url).await,
            Catalog::HelmRepo { url, chart } => helm_index_versions(url, chart).await,
            Catalog::Oci { reference, plain_http } => oci_tags(reference, *plain_http).await,
        }
    }
}

/// A resolved version and whether its catalog listing came from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub version: String,
    pub floating: bool,
    pub listing_cached: bool,
}

/// Resolves `constraint` against `catalog`. Listings younger than `ttl` are reused from the
/// cache; a pinned constraint never lists anything.
pub async fn resolve(
    catalog: &Catalog,
    constraint: &Constraint,
    prereleases: bool,
    ttl: Duration,
) -> Result<Resolution, OperatorError> {
    if let Constraint::Pinned(version) = constraint {
        return Ok(Resolution { version: version.clone(), floating: false, listing_cached: false });
    }
    let path = cache_dir().join("listings").join(format!("{}.json", short_hash(&catalog.key())));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let cached = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(|v| {
            v["catalog"] == catalog.key() && now.saturating_sub(v["listedAt"].as_u64().unwrap_or(0)) < ttl.as_secs()
        })
        .and_then(|v| serde_json::from_value::<Vec<String>>(v["versions"].clone()).ok());
    let (available, listing_cached) = match cached {
        Some(versions) => (versions, true),
        None => {
            let versions = catalog
                .list()
                .await
                .map_err(|e| OperatorError::ListingFailed { catalog: catalog.key(), source: Box::new(e) })?;
            let record = json!({"catalog": catalog.key(), "listedAt": now, "versions": versions});
            let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
            let _ = crate::util::files::write_atomically(&path, record.to_string().as_bytes());
            (versions, false)
        }
    };
    let version = pick(&available, constraint, prereleases)
        .map_err(|source| OperatorError::NoVersion { catalog: catalog.key(), source })?;
    Ok(Resolution { version, floating: true, listing_cached })
}

/// The repository's tags, from `git ls-remote`.
async fn remote_tags(url: &str) -> Result<Vec<String>, OperatorError> {
    let out = command::output("git", &["ls-remote", "--tags", "--refs", url], None).await?;
    Ok(out.lines().filter_map(|l| l.split('\t').nth(1)?.strip_prefix("refs/tags/").map(str::to_string)).collect())
}

/// A shallow checkout of `reference`, kept in the cache: each version is fetched once.
pub async fn checkout(url: &str, reference: &str) -> Result<PathBuf, OperatorError> {
    let dir = cache_dir().join("git").join(short_hash(url)).join(reference.replace('/', "_"));
    if dir.join(".git").is_dir() {
        return Ok(dir);
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let parent = tmp.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| FileError::write(parent, e))?;
    let target = tmp.to_string_lossy().to_string();
    command::output("git", &["clone", "--quiet", "--depth", "1", "--branch", reference, url, &target], None).await?;
    std::fs::rename(&tmp, &dir).map_err(|e| FileError::write(&dir, e))?;
    Ok(dir)
}

/// One GET, off the async runtime's threads.
async fn get(url: &str, bearer: Option<&str>) -> Result<Response, OperatorError> {
    let (owned, bearer) = (url.to_string(), bearer.map(str::to_string));
    let answer = tokio::task::spawn_blocking(move || http::get(&owned, bearer.as_deref())).await;
    let answer = answer.map_err(|e| OperatorError::Listing { url: url.to_string(), problem: format!("GET: {e}") })?;
    Ok(answer?)
}

/// The versions of `chart` in a Helm repository's `index.yaml`.
async fn helm_index_versions(repo: &str, chart: &str) -> Result<Vec<String>, OperatorError> {
    let url = format!("{}/index.yaml", repo.trim_end_matches('/'));
    let listing = |problem: String| OperatorError::Listing { url: url.clone(), problem };
    let response = get(&url, None).await?;
    if response.status != 200 {
        return Err(listing(format!("HTTP {}", response.status)));
    }
    let index: Value = serde_saphyr::from_str(&response.body).map_err(|e| listing(format!("not a Helm index: {e}")))?;
    let entries = index["entries"][chart].as_array().ok_or_else(|| {
        let known: Vec<&str> =
            index["entries"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        listing(format!("no chart {chart:?}; it has: {}", known.join(", ")))
    })?;
    Ok(entries.iter().filter_map(|e| e["version"].as_str().map(str::to_string)).collect())
}

/// A `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge's parameters.
fn bearer_challenge(header: &str) -> Option<BTreeMap<String, String>> {
    let params = header.strip_prefix("Bearer ")?;
    let re = regex::Regex::new(r#"(\w+)="([^"]*)""#).ok()?;
    Some(re.captures_iter(params).map(|c| (c[1].to_string(), c[2].to_string())).collect())
}

/// An OCI chart's tags. Registries that want a token (anonymous pulls included) answer 401
/// with a Bearer challenge, which is followed once. Helm stores `+` in versions as `_` in tags.
async fn oci_tags(reference: &str, plain_http: bool) -> Result<Vec<String>, OperatorError> {
    let refused = |problem: &str| OperatorError::Listing { url: reference.to_string(), problem: problem.to_string() };
    let path = reference.strip_prefix("oci://").ok_or_else(|| refused("an OCI chart starts with oci://"))?;
    let (host, name) = path.split_once('/').ok_or_else(|| refused("no repository after the host"))?;
    let scheme = if plain_http { "http" } else { "https" };
    let url = format!("{scheme}://{host}/v2/{name}/tags/list");
    let mut response = get(&url, None).await?;
    if response.status == 401
        && let Some(challenge) = response.authenticate.as_deref().and_then(bearer_challenge)
        && let Some(realm) = challenge.get("realm")
    {
        let mut token_url = format!("{realm}?scope=repository:{name}:pull");
        if let Some(service) = challenge.get("service") {
            token_url.push_str(&format!("&service={service}"));
        }
        let token = get(&token_url, None).await?;
        let token: Value = serde_json::from_str(&token.body)
            .map_err(|e| OperatorError::Listing { url: token_url.clone(), problem: e.to_string() })?;
        let token = token["token"].as_str().or(token["access_token"].as_str()).unwrap_or_default().to_string();
        response = get(&url, Some(&token)).await?;
    }
    let listing = |problem: String| OperatorError::Listing { url: url.clone(), problem };
    if response.status != 200 {
        return Err(listing(format!("HTTP {}", response.status)));
    }
    let list: Value = serde_json::from_str(&response.body).map_err(|e| listing(e.to_string()))?;
    Ok(list["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(|t| t.replace('_', "+")).collect())
}

/// What each floating or pinned source resolved to in one run: name → version.
pub type Ledger = BTreeMap<String, String>;

fn ledger_path(suite: &Path) -> PathBuf {
    let key = std::fs::canonicalize(suite).unwrap_or_else(|_| suite.to_path_buf());
    cache_dir().join("ledgers").join(format!("{}.json", short_hash(&key.to_string_lossy())))
}

/// The previous run's ledger of this suite, and records this run's in its place.
pub fn swap_ledger(suite: &Path, ledger: &Ledger) -> Ledger {
    let path = ledger_path(suite);
    let previous = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_string_pretty(ledger) {
        let _ = std::fs::write(&path, text);
    }
    previous
}

/// "name old → new" for every source whose version changed since the previous run.
pub fn changes(previous: &Ledger, current: &Ledger) -> Vec<String> {
    current
        .iter()
        .filter_map(|(name, now)| match previous.get(name) {
            Some(before) if before != now => Some(format!("{name} {before} → {now}")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> Vec<String> {
        ["v1.7.0", "v1.8.0", "v1.8.1", "v1.9.0-rc.1", "not-a-version"].iter().map(|t| t.to_string()).collect()
    }

    fn pick_str(constraint: &str, pre: bool) -> Result<String, NoMatch> {
        pick(&tags(), &Constraint::parse(constraint), pre)
    }

    #[test]
    fn constraints_pick_tags_in_semver_order() {
        assert_eq!(pick_str("latest", false), Ok("v1.8.1".into()));
        assert_eq!(pick_str("latest", true), Ok("v1.9.0-rc.1".into()));
        assert_eq!(pick_str("~1.7", false), Ok("v1.7.0".into()));
        assert_eq!(Constraint::parse("v1.8.0"), Constraint::Pinned("v1.8.0".into()), "a version is pinned as written");
        assert_eq!(Constraint::parse("1.8.0"), Constraint::Pinned("1.8.0".into()));
        assert_eq!(Constraint::parse("main"), Constraint::Pinned("main".into()));
        assert!(pick_str(">=2", false).is_err());
    }

    #[test]
    fn bearer_challenges_are_read() {
        let c =
            bearer_challenge(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#);
        let c = c.expect("a challenge");
        assert_eq!(c["realm"], "https://ghcr.io/token");
        assert_eq!(c["service"], "ghcr.io");
        assert_eq!(bearer_challenge("Basic realm=\"x\""), None);
    }

    #[test]
    fn changes_name_what_moved() {
        let before = Ledger::from([("op".into(), "v1.8.0".into()), ("same".into(), "v1".into())]);
        let after =
            Ledger::from([("op".into(), "v1.9.0".into()), ("same".into(), "v1".into()), ("new".into(), "v2".into())]);
        assert_eq!(changes(&before, &after), ["op v1.8.0 → v1.9.0"]);
    }
}
