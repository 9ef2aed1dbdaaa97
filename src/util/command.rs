//! Every external program kubevet runs (kubectl, kustomize, helm, kind, docker) goes through
//! here: one place that says which tool is missing and how to get it, and that keeps the end
//! of a failing tool's own output in the error.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
};

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
        "papermill" => "install papermill and a kernel, which run notebook cases: pip install papermill ipykernel",
        _ => "install it and make sure it is on PATH",
    }
}

/// Why a program did not give kubevet what it asked for. Each message is whole (it names the
/// cause), since kubevet shows one line per error; the cause stays typed as the source.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{program} is not installed (not found on PATH): {}", install_hint(program))]
    NotInstalled { program: String },
    #[error("missing tools: {}", missing.iter().map(|p| format!("{p} ({})", install_hint(p))).collect::<Vec<_>>().join("; "))]
    MissingTools { missing: Vec<String> },
    #[error("cannot run {program}: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// It ran and failed: the end of its own standard error says why.
    #[error("{command} failed ({status}): {stderr_tail}")]
    Failed { command: String, status: ExitStatus, stderr_tail: String },
    #[error("an empty command")]
    Empty,
    #[error("{program}: no such program (looked in {} and on PATH)", dir.display())]
    NoSuchScript { program: String, dir: PathBuf },
}

impl From<CommandError> for super::error::Error {
    /// A tool that is missing or a command the user wrote that cannot start is theirs to
    /// mend; a tool that ran and failed is the machine's.
    fn from(e: CommandError) -> Self {
        use super::error::Error;
        match e {
            CommandError::NotInstalled { .. }
            | CommandError::MissingTools { .. }
            | CommandError::Empty
            | CommandError::NoSuchScript { .. } => Error::usage_from(e),
            CommandError::Start { .. } | CommandError::Failed { .. } => Error::infrastructure_from(e),
        }
    }
}

/// Runs a program to completion and returns its standard output.
pub async fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, CommandError> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = match command.output().await {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::NotInstalled { program: program.to_string() });
        }
        Err(source) => return Err(CommandError::Start { program: program.to_string(), source }),
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
    Err(CommandError::Failed {
        command: format!("{program} {}", args.join(" ")),
        status: out.status,
        stderr_tail: tail.join("\n"),
    })
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
pub fn require(programs: &[&str]) -> Result<(), CommandError> {
    let missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| p.to_string()).collect();
    if missing.is_empty() { Ok(()) } else { Err(CommandError::MissingTools { missing }) }
}

/// How a user's script ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; None when it was killed (by its timeout, an interrupt, or a signal).
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Stopped because the run was interrupted.
    pub interrupted: bool,
    /// Standard output, then standard error.
    pub output: String,
}

/// Runs a user's script: no shell (the argv as written), its own environment added, stopped
/// (the whole process group) when it outlasts `timeout`. Its output is drained while it runs,
/// so a script that timed out still shows what it printed.
pub async fn script(
    argv: &[String],
    env: &[(&str, String)],
    dir: &Path,
    timeout: std::time::Duration,
) -> Result<Finished, CommandError> {
    let (_keep, never) = tokio::sync::watch::channel(false);
    script_until(argv, env, dir, timeout, never).await
}

/// [`script`], also stopped when `cancel` turns true (an interrupt): the program and every
/// process it started, in its group or in sessions of their own (a Jupyter kernel).
pub async fn script_until(
    argv: &[String],
    env: &[(&str, String)],
    dir: &Path,
    timeout: std::time::Duration,
    mut cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Finished, CommandError> {
    let Some((program, args)) = argv.split_first() else { return Err(CommandError::Empty) };
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
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::NoSuchScript { program: program.clone(), dir: dir.to_path_buf() });
        }
        Err(source) => return Err(CommandError::Start { program: program.clone(), source }),
    };
    let stdout = tokio::spawn(drain(child.stdout.take()));
    let stderr = tokio::spawn(drain(child.stderr.take()));
    let stopped = async {
        tokio::select! {
            _ = tokio::time::sleep(timeout) => false,
            _ = cancel.wait_for(|c| *c) => true,
        }
    };
    let (code, timed_out, interrupted) = tokio::select! {
        waited = child.wait() => match waited {
            Ok(status) => (status.code(), false, false),
            Err(source) => return Err(CommandError::Start { program: program.clone(), source }),
        },
        interrupted = stopped => {
            kill_tree(child.id());
            let _ = child.wait().await;
            (None, !interrupted, interrupted)
        }
    };
    // A process that left the group may still hold a pipe open: what came so far is kept.
    let mut output = String::new();
    for pipe in [stdout, stderr] {
        match tokio::time::timeout(std::time::Duration::from_secs(2), pipe).await {
            Ok(Ok(text)) => output.push_str(&text),
            _ => output.push_str("\n[kubevet: the rest of this output was not read: a process outlived the script]\n"),
        }
    }
    Ok(Finished { code, timed_out, interrupted, output })
}

/// The last lines of a program's output, joined by ` | `, for a reason.
pub fn tail(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let kept = lines[lines.len().saturating_sub(5)..].join(" | ");
    (!kept.is_empty()).then(|| kept.chars().take(400).collect())
}

/// Everything a pipe gives until it closes.
pub async fn drain(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// SIGKILL to the process group a script leads (it was started as the group's leader) and to
/// the group of every process descended from it, read from `/proc` before anything is killed:
/// a Jupyter kernel runs in a session of its own, and its children in its group.
fn kill_tree(leader: Option<u32>) {
    let Some(leader) = leader.and_then(|id| i32::try_from(id).ok()) else { return };
    let mut groups = descendant_groups(leader);
    groups.insert(leader);
    for group in groups {
        let Some(pid) = rustix::process::Pid::from_raw(group) else { continue };
        if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL)
            && group == leader
        {
            tracing::warn!(group, error = %e, "cannot stop a script's process group");
        }
    }
}

/// The process groups of every descendant of `root`, by the parent links of `/proc/*/stat`
/// (empty where there is no `/proc`).
fn descendant_groups(root: i32) -> std::collections::BTreeSet<i32> {
    let mut table: Vec<(i32, i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses, so read
        // after its last `)`.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        if let (Some(ppid), Some(pgrp)) =
            (fields.get(1).and_then(|f| f.parse().ok()), fields.get(2).and_then(|f| f.parse().ok()))
        {
            table.push((pid, ppid, pgrp));
        }
    }
    let mut inside = std::collections::BTreeSet::from([root]);
    let mut groups = std::collections::BTreeSet::new();
    // Parents before children is not guaranteed by pid order: repeat until nothing is added.
    loop {
        let before = inside.len();
        for (pid, ppid, pgrp) in &table {
            if inside.contains(ppid) && inside.insert(*pid) {
                groups.insert(*pgrp);
            }
        }
        if inside.len() == before {
            return groups;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> Finished {
        let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = std::env::temp_dir();
        runtime
            .block_on(script_run(&argv, &dir, std::time::Duration::from_millis(timeout_ms)))
            .expect("the script starts")
    }

    async fn script_run(argv: &[String], dir: &Path, timeout: std::time::Duration) -> Result<Finished, CommandError> {
        script(argv, &[], dir, timeout).await
    }

    #[test]
    fn a_timed_out_script_keeps_what_it_printed_and_its_group_is_stopped() {
        let marker = std::env::temp_dir().join(format!("kubevet-group-{}", std::process::id()));
        let script = format!("echo started; echo on stderr >&2; (sleep 3; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let done = sh(&script, 500);
        assert!(done.timed_out && done.code.is_none(), "{done:?}");
        assert!(done.output.contains("started") && done.output.contains("on stderr"), "{done:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the sleep was killed, not waited for");
        std::thread::sleep(std::time::Duration::from_secs(4));
        assert!(!marker.exists(), "the script's child in its process group was killed too");
    }

    #[test]
    fn a_process_in_a_session_of_its_own_is_stopped_with_the_script() {
        // As a Jupyter kernel is started by papermill: `start_new_session`.
        let marker = std::env::temp_dir().join(format!("kubevet-session-{}", std::process::id()));
        let script = format!("setsid sh -c 'sleep 3; touch {}' & sleep 1; sleep 30", marker.display());
        let done = sh(&script, 1500);
        assert!(done.timed_out, "{done:?}");
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert!(!marker.exists(), "the process in its own session was killed too");
    }

    #[test]
    fn a_script_that_ends_gives_its_code_and_both_outputs() {
        let done = sh("printf out; printf err >&2; exit 3", 5000);
        assert_eq!((done.code, done.timed_out, done.output.as_str()), (Some(3), false, "outerr"));
    }
}
