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
