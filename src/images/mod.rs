//! Images the examples and operators need, built with Docker before the run. Each is tagged
//! with a hash of what goes into it (the build context's files, the Dockerfile, build
//! arguments, target), so an unchanged image is found and not rebuilt; examples and operator
//! manifests that name the image's repository get the built reference.

mod context;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    suite::images::{Image, Retag, repository},
    util::{
        command::{self, CommandError},
        files::FileError,
    },
};

/// Why an image could not be had. A `.dockerignore` Docker would refuse, an unreadable file
/// and a failed `docker build` are each the image's error, reported as its result.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A `.dockerignore` line Docker could not use.
    #[error("{}:{line}: {problem}", file.display())]
    Ignore { file: std::path::PathBuf, line: usize, problem: String },
    #[error("reading the build context {}: {source}", context.display())]
    Walk {
        context: std::path::PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("building {image}: {source}")]
    Build {
        image: String,
        #[source]
        source: CommandError,
    },
}

#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    /// `name:kv-<hash>`.
    pub reference: String,
    /// Found already built: the cache was hit.
    pub cached: bool,
}

/// The hash of everything that decides the image: the files Docker would send as the build
/// context (with Docker's own `.dockerignore` rules, see [`context`]), the Dockerfile
/// whether or not it is ignored, build arguments and target. A file that cannot be read is
/// an error: hashing it as empty could keep a stale image's tag.
pub fn content_hash(image: &Image) -> Result<String, ImageError> {
    let files = context::files(&image.context, &image.dockerfile)?;
    let mut hash = Sha256::new();
    crate::util::files::hash_files(&mut hash, &image.context, &files)?;
    for (k, v) in &image.build_args {
        hash.update(format!("arg {k}={v}\0").as_bytes());
    }
    hash.update(
        format!("dockerfile {}\0target {}\0", image.dockerfile, image.target.as_deref().unwrap_or("")).as_bytes(),
    );
    Ok(hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// Builds the image unless an image with the same content hash exists already.
pub async fn build(image: &Image) -> Result<Built, ImageError> {
    let reference = format!("{}:kv-{}", image.name, content_hash(image)?);
    if command::output("docker", &["image", "inspect", "--format", "{{.Id}}", &reference], None).await.is_ok() {
        return Ok(Built { name: image.name.clone(), reference, cached: true });
    }
    let context = image.context.to_string_lossy().to_string();
    let dockerfile = image.context.join(&image.dockerfile).to_string_lossy().to_string();
    let mut args: Vec<String> =
        vec!["build".into(), "--quiet".into(), "-t".into(), reference.clone(), "-f".into(), dockerfile];
    for (k, v) in &image.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if let Some(target) = &image.target {
        args.extend(["--target".into(), target.clone()]);
    }
    args.push(context);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command::output("docker", &args, None)
        .await
        .map_err(|source| ImageError::Build { image: image.name.clone(), source })?;
    Ok(Built { name: image.name.clone(), reference, cached: false })
}

impl Built {
    pub fn retag(&self) -> Retag {
        Retag { repository: self.name.clone(), reference: self.reference.clone() }
    }
}

/// Points every container image of `object` whose repository a retag names at its new
/// reference; returns how many it changed.
/// A compiled pipeline's executor images (`deploymentSpec.executors.*.container.image`)
/// pointed at the built images, as [`rewrite`] does for containers.
pub fn rewrite_pipeline(spec: &mut Value, retags: &[Retag]) -> usize {
    let Some(executors) = spec.pointer_mut("/deploymentSpec/executors").and_then(Value::as_object_mut) else {
        return 0;
    };
    let mut changed = 0;
    for container in executors.values_mut().filter_map(|e| e.get_mut("container")) {
        let Some(image) = container.get("image").and_then(Value::as_str) else { continue };
        if let Some(r) = retags.iter().find(|r| repository(image) == r.repository) {
            container["image"] = Value::String(r.apply(image));
            changed += 1;
        }
    }
    changed
}

pub fn rewrite(object: &mut Value, retags: &[Retag]) -> usize {
    let mut changed = 0;
    match object {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if matches!(key.as_str(), "containers" | "initContainers")
                    && let Some(containers) = value.as_array_mut()
                {
                    for c in containers {
                        let Some(image) = c.get("image").and_then(Value::as_str) else { continue };
                        if let Some(r) = retags.iter().find(|r| repository(image) == r.repository) {
                            c["image"] = Value::String(r.apply(image));
                            changed += 1;
                        }
                    }
                } else {
                    changed += rewrite(value, retags);
                }
            }
        }
        Value::Array(items) => changed += items.iter_mut().map(|v| rewrite(v, retags)).sum::<usize>(),
        _ => {}
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repositories_ignore_tags_and_digests_but_not_registry_ports() {
        assert_eq!(repository("example.com/app:1.2"), "example.com/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app:v1@sha256:abc"), "localhost:5000/app");
        assert_eq!(repository("app"), "app");
    }

    #[test]
    fn only_matching_container_images_are_rewritten() {
        let built =
            [Built { name: "example.com/app".into(), reference: "example.com/app:kv-abc".into(), cached: false }
                .retag()];
        let mut job = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "example.com/app:dev"}],
            "containers": [{"name": "c", "image": "example.com/app"}, {"name": "s", "image": "busybox:1.36"}]}}}});
        assert_eq!(rewrite(&mut job, &built), 2);
        assert_eq!(job.pointer("/spec/template/spec/containers/0/image"), Some(&json!("example.com/app:kv-abc")));
        assert_eq!(job.pointer("/spec/template/spec/containers/1/image"), Some(&json!("busybox:1.36")));
    }

    #[test]
    fn pipeline_executor_images_are_rewritten() {
        let swap = Retag::parse("ghcr.io/org/trainer=kubevet.test/trainer:kv-1").expect("parses");
        let mut spec = serde_json::json!({"deploymentSpec": {"executors": {
            "exec-a": {"container": {"image": "ghcr.io/org/trainer:v1"}},
            "exec-b": {"container": {"image": "alpine"}},
        }}});
        assert_eq!(rewrite_pipeline(&mut spec, &[swap]), 1);
        assert_eq!(spec["deploymentSpec"]["executors"]["exec-a"]["container"]["image"], "kubevet.test/trainer:kv-1");
        assert_eq!(spec["deploymentSpec"]["executors"]["exec-b"]["container"]["image"], "alpine");
    }

    #[test]
    fn set_images_read_like_kustomize_edit_set_image() {
        let swap = Retag::parse("ghcr.io/op/controller=localhost/op:dev").expect("parses");
        let mut pod = json!({"containers": [{"image": "ghcr.io/op/controller:v1.9.0"}]});
        assert_eq!(rewrite(&mut pod, &[swap]), 1);
        assert_eq!(pod["containers"][0]["image"], "localhost/op:dev");
        let rename = Retag::parse("ghcr.io/op/controller=mirror.local/controller").expect("parses");
        let mut pod = json!({"containers": [{"image": "ghcr.io/op/controller:v1.9.0"}]});
        rewrite(&mut pod, &[rename]);
        assert_eq!(pod["containers"][0]["image"], "mirror.local/controller:v1.9.0", "no new tag keeps the old one");
        let tag = Retag::parse("ghcr.io/op/controller:v2").expect("parses");
        assert_eq!(tag.repository, "ghcr.io/op/controller");
        assert!(Retag::parse("plain").is_err());
    }

    #[test]
    fn the_hash_changes_with_a_file_and_an_argument_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(dir.path().join("data.txt"), "one").expect("write");
        let mut image = Image {
            name: "app".into(),
            context: dir.path().to_path_buf(),
            dockerfile: "Dockerfile".into(),
            build_args: std::collections::BTreeMap::new(),
            target: None,
        };
        let first = content_hash(&image).expect("hash");
        assert_eq!(content_hash(&image).expect("hash"), first);
        std::fs::write(dir.path().join("data.txt"), "two").expect("write");
        let second = content_hash(&image).expect("hash");
        assert_ne!(second, first);
        image.build_args.insert("V".into(), "1".into());
        assert_ne!(content_hash(&image).expect("hash"), second);
    }
}
