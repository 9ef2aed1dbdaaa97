//! Bad input and a missing cluster: distinct exit codes and messages that say what and where,
//! never a panic.

mod support;

use support::{kubevet, repo, stderr};

#[test]
fn a_malformed_example_is_exit_2_with_file_line_and_column() {
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("tests/fixtures/malformed/kubevet.yaml"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("tests/fixtures/malformed/examples/broken.yaml:7:3: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_suite_key_is_exit_2_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = dir.path().join("kubevet.yaml");
    std::fs::write(
        &suite,
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\ndefaults:\n  concurrency: 2\n  timout: 5m\n",
    )
    .expect("write");
    let out = kubevet().args(["list", "--suite"]).arg(&suite).output().expect("kubevet runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("kubevet.yaml:5:3: unknown field `timout`"), "{err}");
}

#[test]
fn an_unreachable_cluster_is_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .expect("write");
    let out = kubevet()
        .args(["run", "--suite"])
        .arg(repo().join("kubevet.yaml"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .output()
        .expect("kubevet runs");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cluster at https://127.0.0.1:9/ unreachable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The report is still written: a cluster error case, every example not run.
    let cases = support::junit(&dir.path().join("artifacts/junit.xml"));
    let cluster = support::case(&cases, "cluster");
    assert_eq!(cluster["result"], "error");
    assert!(cluster["message"].as_str().unwrap_or("").contains("unreachable"), "{cluster:#?}");
    assert!(cases.len() > 1 && cases.iter().skip(1).all(|c| c["result"] != "passed"), "{cases:#?}");
}

/// Library words a user should never have to read.
const LIBRARY_TERMS: &[&str] = &["u64", "usize", "DuplicateKeyPolicy", "budget breached", "Nodes {", "panicked"];

#[test]
fn bad_input_is_said_in_the_users_terms_with_where_and_what_to_write() {
    let head = "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\n";
    let bomb = {
        let mut s = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  x0: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n",
        );
        for i in 1..9u8 {
            let (this, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            s.push_str(&format!("  x{i}: &{this} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        }
        s
    };
    // (suite body, example file, where, what is said, the hint or another part of the message)
    let corpus: &[(&str, &str, &str, &str, &str)] = &[
        (
            "defaults: {concurrency: four}\n",
            "",
            "kubevet.yaml:3:25",
            "expected a whole number, found `four`",
            "like `4`",
        ),
        (
            "defaults:\n  timeout: 1m\n  timeout: 2m\n",
            "",
            "kubevet.yaml:5:3",
            "`timeout` appears more than once",
            "keep one",
        ),
        ("defaults: {concurrency: 0}\n", "", "kubevet.yaml:3:25", "concurrency must be at least 1", "concurrency: 4"),
        (
            "operators:\n  - name: op\n    git: {url: https://example.com/r, version: '>>>1'}\n    kustomize: deploy\n",
            "",
            "kubevet.yaml:5:48",
            "version \">>>1\" is not a semver range",
            "a semver range such as",
        ),
        ("examples: {include: \"examples/*.yaml\"}\n", "", "kubevet.yaml:3:21", "expected a list", "`- item`"),
        ("", &bomb, "examples/a.yaml:", "expands beyond kubevet's limits", "aliases of aliases"),
        // Long digit runs: a duration no clock can hold, and one merely beyond the range.
        (
            "defaults: {timeout: 99999999999999999999h}\n",
            "",
            "kubevet.yaml:3:21",
            "is too long",
            "from 0s to 720h (30 days)",
        ),
        ("defaults:\n  failureGrace: 721h\n", "", "kubevet.yaml:4:17", "is too long", "from 0s to 720h"),
        (
            "overrides:\n  - path: examples/a.yaml\n    timeout: 100000000000000000000000000000000000000s\n",
            "",
            "kubevet.yaml:5:14",
            "is too long",
            "from 0s to 720h",
        ),
    ];
    for (body, example, place, said, hint) in corpus {
        let dir = tempfile::tempdir().expect("tempdir");
        let suite = dir.path().join("kubevet.yaml");
        std::fs::write(&suite, format!("{head}{body}")).expect("write");
        std::fs::create_dir_all(dir.path().join("examples")).expect("mkdir");
        let example =
            if example.is_empty() { "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n" } else { example };
        std::fs::write(dir.path().join("examples/a.yaml"), example).expect("write");
        for command in ["list", "run"] {
            let out = kubevet().args([command, "--suite"]).arg(&suite).output().expect("kubevet runs");
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{command} {body}: {err}");
            assert!(err.contains(place) && err.contains(said) && err.contains(hint), "{command} {body}:\n{err}");
            for term in LIBRARY_TERMS {
                assert!(!err.contains(term), "{command}: {term:?} in {err}");
            }
        }
    }
}

#[test]
fn an_empty_example_is_reported_by_run_list_and_lint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = dir.path().join("kubevet.yaml");
    std::fs::write(&suite, "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\n").expect("write");
    std::fs::create_dir_all(dir.path().join("examples")).expect("mkdir");
    std::fs::write(dir.path().join("examples/empty.yaml"), "# nothing yet\n---\n---\n").expect("write");
    let list = kubevet().args(["list", "--suite"]).arg(&suite).output().expect("kubevet runs");
    assert!(
        support::stdout(&list).contains("(error: this file holds no Kubernetes object"),
        "{}",
        support::stdout(&list)
    );
    let lint = kubevet().args(["lint", "--suite"]).arg(&suite).args(["--output", "json"]).output().expect("runs");
    assert_eq!(lint.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&lint.stdout).expect("JSON");
    assert_eq!(report["findings"][0]["rule"], "empty-file", "{report}");
    assert_eq!((report["findings"][0]["line"].as_u64(), report["findings"][0]["column"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn list_and_run_say_the_same_when_no_example_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = dir.path().join("kubevet.yaml");
    std::fs::write(
        &suite,
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nexamples: {include: [\"nowhere/*.yaml\"]}\n",
    )
    .expect("write");
    let said: Vec<(Option<i32>, String)> = ["list", "run"]
        .iter()
        .map(|command| {
            let out = kubevet().args([command, "--suite"]).arg(&suite).output().expect("kubevet runs");
            (out.status.code(), stderr(&out))
        })
        .collect();
    assert_eq!(said[0], said[1]);
    assert_eq!(said[0].0, Some(2));
    assert!(said[0].1.contains("no example matches the suite's globs"), "{}", said[0].1);
}

#[test]
fn absurd_counts_on_the_command_line_are_exit_2_with_the_allowed_range() {
    for (command, flag, value) in [
        ("health", "--days", "99999999999999999999"),
        ("health", "--days", "9223372036854775807"),
        ("report", "--runs", "0"),
        ("health", "--runs", "18446744073709551616"),
    ] {
        let out = kubevet().args([command, flag, value]).output().expect("kubevet runs");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command} {flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains("expected a whole number from 1 to "), "{command} {flag}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
