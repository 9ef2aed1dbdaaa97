//! `kubevet run` builds the suite's images with the real Docker engine, tagged by content: an
//! unchanged context is a cache hit (no rebuild), a changed file a miss with a new tag, and
//! the example that names the repository runs the built image.

mod support;

use std::path::Path;

use support::{junit, repo};

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
    support::copy_dir(&repo().join("tests/fixtures/images"), dir.path());
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

/// Docker's rules, not gitignore's: the Dockerfile counts though `.dockerignore` lists it (Docker
/// reads it all the same), a nested `.dockerignore` is an ordinary file, and only what the
/// context root's file excludes leaves the tag alone.
#[test]
fn a_dockerfile_edit_behind_a_dockerignore_makes_a_new_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(&repo().join("tests/fixtures/images"), dir.path());
    let app = dir.path().join("app");
    std::fs::write(app.join("nonce.txt"), format!("{:?}", std::time::SystemTime::now())).expect("write");
    std::fs::write(app.join(".dockerignore"), "# as many projects write it\nDockerfile\n.dockerignore\n*.md\n")
        .expect("write");
    std::fs::create_dir_all(app.join("docs")).expect("mkdir");
    std::fs::write(app.join("docs/.dockerignore"), "*\n").expect("write");
    std::fs::write(app.join("docs/readme.txt"), "sent: Docker reads only the root's .dockerignore").expect("write");
    let suite = dir.path().join("kubevet.yaml");

    let (first, cache, result) = run(&suite);
    assert_eq!((cache.as_str(), result.as_str()), ("miss", "passed"));

    let dockerfile = std::fs::read_to_string(app.join("Dockerfile")).expect("Dockerfile");
    std::fs::write(app.join("Dockerfile"), format!("{dockerfile}LABEL edited=yes\n")).expect("write");
    let (second, cache, _) = run(&suite);
    assert_ne!(second, first, "a Dockerfile edit makes a new tag even when .dockerignore lists the Dockerfile");
    assert_eq!(cache, "miss");

    std::fs::write(app.join("docs/readme.txt"), "changed").expect("write");
    let (third, _, _) = run(&suite);
    assert_ne!(third, second, "a nested .dockerignore excludes nothing");

    std::fs::write(app.join("notes.md"), "left out by the root's *.md").expect("write");
    let (fourth, cache, _) = run(&suite);
    assert_eq!((fourth.as_str(), cache.as_str()), (third.as_str(), "hit"), "an excluded file leaves the tag alone");
    let _ = std::process::Command::new("docker").args(["image", "rm", &first, &second, &third]).output();
}

#[test]
fn a_failed_build_is_a_reported_error_and_no_example_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::copy_dir(&repo().join("tests/fixtures/images"), dir.path());
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        "FROM kubevet.test/busybox:1.35\nRUN echo the build breaks here; exit 7\n",
    )
    .expect("write");
    let artifacts = dir.path().join("artifacts");
    let out = support::run_suite(&dir.path().join("kubevet.yaml"), &artifacts);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", support::stdout(&out), support::stderr(&out));
    let cases = junit(&artifacts.join("junit.xml"));
    let image = support::case(&cases, "image kubevet.test/hello-app");
    assert_eq!((image["classname"].as_str(), image["result"].as_str()), (Some("image"), Some("error")));
    let message = image["message"].as_str().unwrap_or("");
    assert!(message.starts_with("infrastructure: building kubevet.test/hello-app: docker build"), "{message}");
    assert!(message.contains("returned a non-zero code: 7"), "the build's own words: {message}");
    let example = support::case(&cases, "examples/built-image-job.yaml");
    assert_eq!(example["message"], "infrastructure: not run: image kubevet.test/hello-app failed to build");
}
