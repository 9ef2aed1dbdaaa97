//! `kubevet run` builds the suite's images with the real Docker engine, tagged by content: an
//! unchanged context is a cache hit (no rebuild), a changed file a miss with a new tag, and
//! the example that names the repository runs the built image.

mod support;

use std::path::Path;

use support::{junit, repo};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// (image reference, cache hit or miss, the example's result)
fn run(suite: &Path) -> (String, String, String) {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let out = support::run_suite(suite, artifacts.path());
    assert_eq!(out.status.code(), Some(0), "{}\n{}", support::stdout(&out), support::stderr(&out));
    let cases = junit(&artifacts.path().join("junit.xml"));
    let props = &cases[0]["suite_properties"];
    let reference = props["image.kubevet.test/hello-app"].as_str().unwrap_or("").to_string();
    let cache = props["image.kubevet.test/hello-app.cache"].as_str().unwrap_or("").to_string();
    (reference, cache, cases[0]["result"].as_str().unwrap_or("").to_string())
}

#[test]
fn images_are_built_once_per_content_and_used_by_the_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("scenarios/images"), dir.path());
    // A unique file makes this test's first build a miss whatever an earlier run left in Docker.
    std::fs::write(dir.path().join("app/nonce.txt"), format!("{:?}", std::time::SystemTime::now())).expect("write");
    let suite = dir.path().join("kubevet.yaml");

    let (first, cache, result) = run(&suite);
    assert!(first.starts_with("kubevet.test/hello-app:kv-"), "{first}");
    assert_eq!((cache.as_str(), result.as_str()), ("miss", "passed"));

    let (second, cache, result) = run(&suite);
    assert_eq!(second, first, "same content, same tag");
    assert_eq!((cache.as_str(), result.as_str()), ("hit", "passed"));

    std::fs::write(dir.path().join("app/extra.txt"), "a changed build context").expect("write");
    let (third, cache, result) = run(&suite);
    assert_ne!(third, first, "a changed file makes a new tag");
    assert_eq!((cache.as_str(), result.as_str()), ("miss", "passed"));
    let _ = std::process::Command::new("docker").args(["image", "rm", &first, &third]).output();
}
