//! kubevet's GitHub Action (action.yml and action/kubevet-action.sh): its scripts run as the
//! runner runs them, with a fake $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY and artifacts moved as
//! upload/download-artifact move them, against the test cluster; and its text checked for
//! what GitHub's hardening guide asks (inputs through env:, actions pinned by commit SHA).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{junit, kubeconfig, repo, stderr, stdout};

/// The action's script in `mode`, with `inputs` as the action's `env:` gives them.
fn action(mode: &str, dir: &Path, inputs: &[(&str, &Path)]) -> Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kubevet"));
    let path = format!("{}:{}", bin.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(repo().join("action/kubevet-action.sh"));
    cmd.arg(mode)
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", kubeconfig())
        .env("KUBEVET_CACHE", dir.join("cache"))
        .env("GITHUB_OUTPUT", dir.join(format!("output-{mode}")))
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_RUN_ATTEMPT", "1");
    for (name, value) in inputs {
        cmd.env(name, value);
    }
    cmd.output().expect("the action's script runs")
}

/// `name<<DELIMITER` and `name=value` outputs, as the runner reads them.
fn outputs(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut found = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            found.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            found.insert(name.to_string(), value.to_string());
        } else {
            panic!("not an output line: {line:?}");
        }
    }
    found
}

fn write_suite(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("examples")).expect("mkdir");
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("examples/action-{i}.yaml")),
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: action-{i}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: kubevet.test/busybox:1.35\n          imagePullPolicy: IfNotPresent\n          command: [\"sh\", \"-c\", \"echo {i}\"]\n"),
        )
        .expect("write");
    }
    let suite = dir.join("kubevet.yaml");
    std::fs::write(
        &suite,
        "apiVersion: kubevet.dev/v1alpha1\nkind: Suite\nmetadata:\n  name: action-suite\ndefaults:\n  concurrency: 1\n",
    )
    .expect("write");
    suite
}

#[test]
fn the_action_plans_runs_each_shard_and_merges_with_a_withheld_shard_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = write_suite(dir.path());
    let shards_dir = dir.path().join("downloaded");
    let plan_file = dir.path().join("plan/kubevet-plan.json");
    let out = action(
        "plan",
        dir.path(),
        &[
            ("KUBEVET_ACTION_SUITE", &suite),
            ("KUBEVET_ACTION_PLAN", &plan_file),
            ("KUBEVET_ACTION_MAX_SHARDS", Path::new("3")),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let planned = outputs(&dir.path().join("output-plan"));
    assert_eq!(planned["shards"], "3");
    let matrix: Value = serde_json::from_str(&planned["matrix"]).expect("matrix JSON");
    let shards: Vec<String> = matrix["include"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["shard"].as_str().map(str::to_string))
        .collect();
    // The plan job's upload, as the merge job's download lays it out.
    std::fs::create_dir_all(shards_dir.join("kubevet-plan")).expect("mkdir");
    std::fs::copy(&plan_file, shards_dir.join("kubevet-plan/kubevet-plan.json")).expect("copy the plan");

    // Every shard but the first runs; each names its artifact by its shard and attempt.
    for shard in &shards[1..] {
        let artifacts = dir.path().join(format!("artifacts-{shard}"));
        let _ = std::fs::remove_file(dir.path().join("output-run"));
        let out = action(
            "run",
            dir.path(),
            &[
                ("KUBEVET_ACTION_SUITE", &suite),
                ("KUBEVET_ACTION_PLAN", &plan_file),
                ("KUBEVET_ACTION_SHARD", Path::new(shard)),
                ("KUBEVET_ACTION_ARTIFACTS", &artifacts),
            ],
        );
        assert!(out.status.success(), "{shard}: {}{}", stdout(&out), stderr(&out));
        let name = outputs(&dir.path().join("output-run"))["artifact-name"].clone();
        assert_eq!(name, format!("kubevet-run-{shard}-attempt-1"));
        std::fs::rename(&artifacts, shards_dir.join(&name)).expect("the upload, downloaded");
    }
    let merged = dir.path().join("merged");
    let out = action(
        "merge",
        dir.path(),
        &[("KUBEVET_ACTION_SUITE", &suite), ("KUBEVET_ACTION_SHARDS", &shards_dir), ("KUBEVET_ACTION_MERGED", &merged)],
    );
    assert_eq!(out.status.code(), Some(3), "a shard is missing: {}{}", stdout(&out), stderr(&out));
    let cases = junit(&merged.join("junit.xml"));
    assert_eq!(cases.len(), 3, "{cases:#?}");
    assert_eq!(cases.iter().filter(|c| c["result"] == "passed").count(), 2);
    let missing = cases.iter().find(|c| c["result"] == "error").expect("the withheld shard's case");
    assert!(
        missing["message"].as_str().is_some_and(|m| m.contains(&format!("shard {} reported nothing", shards[0]))),
        "{missing}"
    );
    assert!(merged.join("report.html").is_file(), "the HTML report over the matrix");
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).expect("the step summary");
    assert!(summary.contains("| shard | cases | predicted | actual | actual ÷ predicted |"), "{summary}");
    assert!(summary.contains(&format!("| {} | 1 | ", shards[0])) && summary.contains("reported nothing"), "{summary}");
    // The history got the merged run, for the next plan.
    assert!(dir.path().join("cache/history.sqlite").is_file());
}

#[test]
fn the_action_refuses_inputs_that_could_write_outputs_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = write_suite(dir.path());
    for (input, value) in [
        ("KUBEVET_ACTION_SHARD", "cluster-1of1\nmatrix=injected"),
        ("KUBEVET_ACTION_ARTIFACTS_NAME", "x$(touch pwned)"),
        ("KUBEVET_ACTION_K8S_VERSION", "1.34\nartifact-name=evil"),
    ] {
        let mut inputs: Vec<(&str, &Path)> =
            vec![("KUBEVET_ACTION_SUITE", &suite), ("KUBEVET_ACTION_ARTIFACTS", Path::new("a"))];
        let plan = dir.path().join("p.json");
        if input == "KUBEVET_ACTION_SHARD" {
            inputs.push(("KUBEVET_ACTION_PLAN", &plan));
        }
        inputs.push((input, Path::new(value)));
        let _ = std::fs::remove_file(dir.path().join("output-run"));
        let out = action("run", dir.path(), &inputs);
        assert_eq!(out.status.code(), Some(2), "{input}: {}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("::error title=kubevet action::"), "{}", stdout(&out));
        assert!(outputs(&dir.path().join("output-run")).is_empty(), "{input} wrote an output");
        assert!(!dir.path().join("pwned").exists());
    }
}

#[test]
fn the_action_passes_inputs_through_env_and_pins_every_action_by_commit() {
    // The steps read with PyYAML, not by kubevet's code: (file, run script or "", uses or "",
    // shell or "") per step of the action and of the project's workflow.
    let script = r#"
import json, sys, yaml
steps = []
action = yaml.safe_load(open(sys.argv[1]))
for s in action["runs"]["steps"]:
    steps.append(["action.yml", s.get("run", ""), s.get("uses", ""), s.get("shell", "")])
workflow = yaml.safe_load(open(sys.argv[2]))
for job in workflow["jobs"].values():
    for s in job.get("steps", []):
        steps.append(["examples.yml", s.get("run", ""), s.get("uses", ""), "bash"])
print(json.dumps({"steps": steps, "using": action["runs"]["using"], "permissions": workflow.get("permissions")}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(repo().join("action.yml"))
        .arg(repo().join(".github/workflows/examples.yml"))
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let read: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(read["using"], "composite");
    assert_eq!(read["permissions"], serde_json::json!({"contents": "read"}), "minimal permissions");
    let steps = read["steps"].as_array().expect("steps");
    assert!(steps.len() > 10, "{steps:?}");
    for step in steps {
        let (file, run, uses, shell) =
            (&step[0], step[1].as_str().unwrap_or(""), step[2].as_str().unwrap_or(""), &step[3]);
        assert!(!run.contains("${{"), "{file}: an expression inside a script (pass it through env:): {run}");
        if !run.is_empty() {
            assert_eq!(shell, "bash", "{file}: a composite run step declares its shell: {run}");
        }
        if !uses.is_empty() && uses != "./" {
            let sha = uses.rsplit_once('@').map(|(_, s)| s).unwrap_or("");
            assert!(
                sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{file}: {uses} is not pinned by a commit"
            );
        }
    }
}
