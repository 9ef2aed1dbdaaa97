//! Every external program kubevet runs (kubectl, kustomize, helm, kind, docker) goes through
//! here: one place that says which tool is missing and how to get it, and that keeps the end
//! of a failing tool's own output in the error.

use std::{path::Path, process::Stdio};

use tokio::process::Command;

/// How to install each tool kubevet may run, for the error when it is missing.
fn install_hint(program: &str) -> &'static str {
    match program {
        "kubectl" => "install kubectl (https://kubernetes.io/docs/tasks/tools/); it has kustomize built in",
        "kustomize" => "install kustomize, or use kubectl, which has it built in",
        "helm" => "install helm (https://helm.sh/docs/intro/install/)",
        "kind" => "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
        "docker" => "install Docker and start its engine",
        "kfp" => "install the Kubeflow Pipelines SDK, which compiles Python pipelines: pip install kfp",
        _ => "install it and make sure it is on PATH",
    }
}

/// Runs a program to completion and returns its standard output.
pub async fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = match command.output().await {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{program} is not installed (not found on PATH): {}", install_hint(program)));
        }
        Err(e) => return Err(format!("cannot run {program}: {e}")),
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{program} {} failed ({}): {}", args.join(" "), out.status, tail.join("\n")))
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Every program of `programs` that is not on PATH, named with how to install it: checked
/// before anything is created, so a missing tool never leaves half a setup behind.
pub fn require(programs: &[&str]) -> Result<(), String> {
    let missing: Vec<String> =
        programs.iter().filter(|p| !on_path(p)).map(|p| format!("{p} ({})", install_hint(p))).collect();
    if missing.is_empty() { Ok(()) } else { Err(format!("missing tools: {}", missing.join("; "))) }
}

/// How a user's script ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; None when it was killed (by its timeout, or a signal).
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Standard output, then standard error.
    pub output: String,
}

/// Runs a user's script: no shell (the argv as written), its own environment added, stopped
/// (the whole process group) when it outlasts `timeout`.
pub async fn script(
    argv: &[String],
    env: &[(&str, String)],
    dir: &Path,
    timeout: std::time::Duration,
) -> Result<Finished, String> {
    let Some((program, args)) = argv.split_first() else { return Err("an empty command".into()) };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{program}: no such program (looked in {} and on PATH)", dir.display()));
        }
        Err(e) => return Err(format!("cannot run {program}: {e}")),
    };
    let group = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            Ok(Finished { code: out.status.code(), timed_out: false, output })
        }
        Ok(Err(e)) => Err(format!("{program}: {e}")),
        Err(_) => {
            // The child itself is killed on drop; its own children share its process group.
            if let Some(pid) = group {
                let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            }
            Ok(Finished { code: None, timed_out: true, output: String::new() })
        }
    }
}
