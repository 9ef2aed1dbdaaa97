//! Floating or pinned versions of what a run tests (the recurring-runs idea of Kubeflow
//! Pipelines): an operator's git source may say `latest` or a semver range, resolved against
//! the repository's tags at every run, or name a ref, used exactly as written. Each run records
//! what it used in a ledger; the summary says first what changed since the previous run.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use semver::{Version, VersionReq};
use sha2::{Digest, Sha256};

use crate::command;

/// Where kubevet keeps checkouts and ledgers between runs.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEVET_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubevet")
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn parse(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// The tag a constraint picks: `latest` (the highest release), a semver range (the highest
/// match), or, when it is neither, the constraint itself as a pinned ref. Pre-releases count
/// only when asked for.
pub fn pick(tags: &[String], constraint: &str, prereleases: bool) -> Result<(String, bool), String> {
    let range = match constraint {
        "latest" => None,
        other => match VersionReq::parse(other) {
            Ok(req) if parse(other).is_none() => Some(req),
            _ => return Ok((other.to_string(), false)),
        },
    };
    tags.iter()
        .filter_map(|t| parse(t).map(|v| (v, t)))
        .filter(|(v, _)| prereleases || v.pre.is_empty())
        .filter(|(v, _)| range.as_ref().is_none_or(|r| r.matches(v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| (t.clone(), true))
        .ok_or_else(|| {
            format!(
                "no tag matches {constraint:?} (pre-releases {})",
                if prereleases { "included" } else { "excluded" }
            )
        })
}

/// The repository's tags, from `git ls-remote`.
pub async fn remote_tags(url: &str) -> Result<Vec<String>, String> {
    let out = command::output("git", &["ls-remote", "--tags", "--refs", url], None).await?;
    Ok(out.lines().filter_map(|l| l.split('\t').nth(1)?.strip_prefix("refs/tags/").map(str::to_string)).collect())
}

/// A shallow checkout of `reference`, kept in the cache: each version is fetched once.
pub async fn checkout(url: &str, reference: &str) -> Result<PathBuf, String> {
    let dir = cache_dir().join("git").join(short_hash(url)).join(reference.replace('/', "_"));
    if dir.join(".git").is_dir() {
        return Ok(dir);
    }
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    let target = tmp.to_string_lossy().to_string();
    command::output("git", &["clone", "--quiet", "--depth", "1", "--branch", reference, url, &target], None).await?;
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
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

    #[test]
    fn constraints_pick_tags_in_semver_order() {
        assert_eq!(pick(&tags(), "latest", false), Ok(("v1.8.1".into(), true)));
        assert_eq!(pick(&tags(), "latest", true), Ok(("v1.9.0-rc.1".into(), true)));
        assert_eq!(pick(&tags(), "~1.7", false), Ok(("v1.7.0".into(), true)));
        assert_eq!(pick(&tags(), "v1.8.0", false), Ok(("v1.8.0".into(), false)), "a version is pinned as written");
        assert_eq!(pick(&tags(), "main", false), Ok(("main".into(), false)));
        assert!(pick(&tags(), ">=2", false).is_err());
    }

    #[test]
    fn changes_name_what_moved() {
        let before = Ledger::from([("op".into(), "v1.8.0".into()), ("same".into(), "v1".into())]);
        let after =
            Ledger::from([("op".into(), "v1.9.0".into()), ("same".into(), "v1".into()), ("new".into(), "v2".into())]);
        assert_eq!(changes(&before, &after), ["op v1.8.0 → v1.9.0"]);
    }
}
