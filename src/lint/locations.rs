//! Schema locations, as users of kubeconform know them: a URL template over a kind's group,
//! kind and version (`https://…/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`,
//! so the community CRDs-catalog works as it is), or the plain URL of a file of CRDs (a
//! project's CRDs at a release tag). What is fetched is kept in kubevet's cache, keyed by its
//! URL, with its content hash to tell a damaged entry; `--offline` uses only the cache.

use std::{collections::HashMap, path::PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::{
    files::{cache_dir, short_hash, write_atomically},
    http,
};

/// One `--schema-location` / `lint.schemaLocations` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// Names one schema (or CRD) per kind.
    Template(String),
    /// A file of CRDs, fetched once.
    Crds(String),
}

impl Location {
    pub fn parse(text: &str) -> Location {
        if text.contains("{{") { Location::Template(text.to_string()) } else { Location::Crds(text.to_string()) }
    }

    pub fn text(&self) -> &str {
        match self {
            Location::Template(t) | Location::Crds(t) => t,
        }
    }
}

/// A kind's URL from a template: kubeconform's variables, with or without spaces inside the
/// braces. `ResourceKind` is the kind in lower case; `KindSuffix` is `-<version>` or
/// `-<group>-<version>`.
pub fn expand(template: &str, group: &str, version: &str, kind: &str) -> String {
    let first_label = group.split('.').next().unwrap_or_default();
    let kind_suffix = if group.is_empty() { format!("-{version}") } else { format!("-{first_label}-{version}") };
    let values = [
        ("Group", group.to_string()),
        ("ResourceKind", kind.to_lowercase()),
        ("ResourceAPIVersion", version.to_string()),
        ("KindSuffix", kind_suffix),
        ("StrictSuffix", "-strict".to_string()),
        ("NormalizedKubernetesVersion", "master".to_string()),
    ];
    let mut out = template.to_string();
    for (name, value) in values {
        for spelled in [format!("{{{{.{name}}}}}"), format!("{{{{ .{name} }}}}")] {
            out = out.replace(&spelled, &value);
        }
    }
    out
}

/// What became of one URL.
#[derive(Debug, Clone)]
enum Fetched {
    Body(String),
    /// The server has nothing there (a catalog without this kind).
    Missing,
    /// Not fetched: offline and not in the cache, or the fetch failed.
    Unavailable(String),
}

/// The schema locations of one lint, with what was fetched so far.
pub struct Locations {
    pub locations: Vec<Location>,
    pub offline: bool,
    fetched: HashMap<String, Fetched>,
    /// Why each location gave nothing for the kinds asked, for the `not-checked` note.
    pub misses: Vec<String>,
}

fn cache_files(url: &str) -> (PathBuf, PathBuf) {
    let dir = cache_dir().join("schemas");
    let key = short_hash(url);
    (dir.join(format!("{key}.body")), dir.join(format!("{key}.json")))
}

fn content_hash(body: &str) -> String {
    Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The cached body of a URL, if its record names this URL and its hash matches the body.
fn from_cache(url: &str) -> Option<String> {
    let (body_file, record_file) = cache_files(url);
    let record: Value = serde_json::from_str(&std::fs::read_to_string(record_file).ok()?).ok()?;
    let body = std::fs::read_to_string(body_file).ok()?;
    (record["url"] == url && record["sha256"] == content_hash(&body)).then_some(body)
}

fn to_cache(url: &str, body: &str) {
    let (body_file, record_file) = cache_files(url);
    let record = serde_json::json!({"url": url, "sha256": content_hash(body)});
    if let Err(e) = write_atomically(&body_file, body.as_bytes())
        .and_then(|_| write_atomically(&record_file, record.to_string().as_bytes()))
    {
        tracing::warn!(url, error = %e, "cannot keep a fetched schema in the cache");
    }
}

impl Locations {
    pub fn new(locations: Vec<Location>, offline: bool) -> Locations {
        Locations { locations, offline, fetched: HashMap::new(), misses: Vec::new() }
    }

    fn fetch(&mut self, url: &str) -> Fetched {
        if let Some(known) = self.fetched.get(url) {
            return known.clone();
        }
        let fetched = if let Some(body) = from_cache(url) {
            Fetched::Body(body)
        } else if self.offline {
            Fetched::Unavailable("not in the cache (--offline)".into())
        } else {
            match http::get(url, None) {
                Ok(r) if r.status == 200 => {
                    to_cache(url, &r.body);
                    Fetched::Body(r.body)
                }
                Ok(r) if r.status == 404 => Fetched::Missing,
                Ok(r) => Fetched::Unavailable(format!("HTTP {}", r.status)),
                Err(e) => Fetched::Unavailable(e.to_string()),
            }
        };
        self.fetched.insert(url.to_string(), fetched.clone());
        fetched
    }

    /// The URLs of one kind of location, in order.
    fn urls(&self, templates: bool) -> Vec<String> {
        let wanted = |l: &&Location| matches!(l, Location::Template(_)) == templates;
        self.locations.iter().filter(wanted).map(|l| l.text().to_string()).collect()
    }

    /// Every CRD in the plain-URL locations, with the URL it came from.
    pub fn crds(&mut self) -> Vec<(Value, String)> {
        let urls = self.urls(false);
        let mut crds = Vec::new();
        for url in urls {
            match self.fetch(&url) {
                Fetched::Body(body) => {
                    let docs: Vec<Value> = serde_saphyr::from_multiple(&body).unwrap_or_default();
                    let before = crds.len();
                    crds.extend(
                        docs.into_iter()
                            .filter(|d| d["kind"] == "CustomResourceDefinition")
                            .map(|d| (d, format!("the CRD at {url}"))),
                    );
                    if crds.len() == before {
                        self.misses.push(format!("{url} holds no CRD"));
                    }
                }
                Fetched::Missing => self.misses.push(format!("{url}: not found (HTTP 404)")),
                Fetched::Unavailable(why) => self.misses.push(format!("{url}: {why}")),
            }
        }
        crds
    }

    /// The first schema a template location has for this kind: a JSON Schema of the object,
    /// or a CRD (then the caller takes the version's schema from it); else why each gave none.
    pub fn for_kind(&mut self, group: &str, version: &str, kind: &str) -> Result<(Value, String), Vec<String>> {
        let mut misses = Vec::new();
        for template in self.urls(true) {
            let url = expand(&template, group, version, kind);
            match self.fetch(&url) {
                Fetched::Body(body) => match serde_saphyr::from_str::<Value>(&body) {
                    Ok(schema) => return Ok((schema, format!("the schema at {url}"))),
                    Err(e) => misses.push(format!("{url}: not JSON or YAML ({e})")),
                },
                Fetched::Missing => misses.push(format!("{url}: not found (HTTP 404)")),
                Fetched::Unavailable(why) => misses.push(format!("{url}: {why}")),
            }
        }
        Err(misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_as_kubeconform_does() {
        let catalog = "https://example.com/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json";
        assert_eq!(
            expand(catalog, "kubeflow.org", "v1", "PyTorchJob"),
            "https://example.com/kubeflow.org/pytorchjob_v1.json"
        );
        assert_eq!(
            expand("s/{{ .ResourceKind }}{{ .KindSuffix }}.json", "trainer.kubeflow.org", "v1alpha1", "TrainJob"),
            "s/trainjob-trainer-v1alpha1.json"
        );
        assert_eq!(Location::parse("https://e.com/crds.yaml"), Location::Crds("https://e.com/crds.yaml".into()));
    }
}
