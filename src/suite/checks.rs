//! The user's own checks (`checks:` on a profile or an override), run once a workload has its
//! verdict: a CEL expression over the workload and its pods, a script on the host, or a
//! command inside a container. Scenario steps reuse the same script and exec forms.

use std::{path::Path, sync::Arc, time::Duration};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::util::{
    cel::Expression,
    duration::Dur,
    error::{Error, Result},
};

/// How long a script or exec check may take unless it says.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    pub timeout: Dur,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    /// Over `object` (the workload as it ended), `pods` (its namespace's pods), `namespace`
    /// and `case`.
    Cel(Arc<Expression>),
    Script(Script),
    Exec(Exec),
}

/// A program run on the host, without a shell unless `shell: true`.
#[derive(Debug, Clone)]
pub struct Script {
    pub argv: Vec<String>,
    /// Where it runs: the folder of the file that names it.
    pub dir: std::path::PathBuf,
}

impl Script {
    /// The program, when it is a file beside the one that names it (`./check.sh`), not a
    /// command found on PATH.
    pub fn file(&self) -> Option<std::path::PathBuf> {
        let program = self.dir.join(self.argv.first()?);
        program.is_file().then_some(program)
    }
}

/// A command run in a container of a pod, through the API server.
#[derive(Debug, Clone)]
pub struct Exec {
    /// The pod: by replica (the profile's replica label), by label selector, or by name.
    pub replica: Option<String>,
    pub selector: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub command: Vec<String>,
}

/// A command as written: one string (split into words like a shell would, but run without
/// one) or a list of arguments.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Words {
    Line(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecFile {
    pub replica: Option<String>,
    pub selector: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub command: Spanned<Words>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckFile {
    name: Option<String>,
    cel: Option<Spanned<String>>,
    script: Option<Spanned<Words>>,
    #[serde(default)]
    shell: bool,
    exec: Option<ExecFile>,
    timeout: Option<Dur>,
}

/// A CEL expression written at `spanned`, compiled, its errors at file:line:col (the column
/// inside the expression added to where the expression starts, past an opening quote).
pub fn cel_at(path: &Path, text: &str, spanned: &Spanned<String>) -> Result<Arc<Expression>> {
    Expression::compile(&spanned.value).map(Arc::new).map_err(|e| {
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let row = text.lines().nth(line.saturating_sub(1) as usize).unwrap_or_default();
        let quoted = row.chars().nth(column.saturating_sub(1) as usize).is_some_and(|c| c == '\'' || c == '"');
        let inside = e.column.map(|c| c - 1 + u64::from(quoted)).unwrap_or(0);
        let hint = match &e.unsupported {
            Some(_) => "kubevet's CEL has the standard library, strings, lists, regex (matches, find, findAll) and quantities; write the check with those, or as a script",
            None => "write a CEL expression, like `object.status.succeeded == 2` (see README, Checks)",
        };
        Error::input(path, line, column + inside, e.message).with_hint(hint)
    })
}

/// The argument list of a command, checked: not empty; a line split into words.
pub fn words(path: &Path, spanned: &Spanned<Words>, shell: bool) -> Result<Vec<String>> {
    let at = |message: String| Error::input(path, spanned.referenced.line(), spanned.referenced.column(), message);
    let argv = match (&spanned.value, shell) {
        (Words::Line(line), true) => vec!["sh".to_string(), "-c".to_string(), line.clone()],
        (Words::List(list), true) => vec!["sh".to_string(), "-c".to_string(), list.join(" ")],
        (Words::Line(line), false) => shell_words::split(line).map_err(|e| {
            at(format!("cannot split this command into words: {e}"))
                .with_hint("close the quote, or write the command as a list of arguments")
        })?,
        (Words::List(list), false) => list.clone(),
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(at("an empty command".into())
            .with_hint("write the program and its arguments, like [\"./check.sh\", \"--model\"]"));
    }
    Ok(argv)
}

pub fn exec(path: &Path, file: &ExecFile) -> Result<Exec> {
    Ok(Exec {
        replica: file.replica.clone(),
        selector: file.selector.clone(),
        pod: file.pod.clone(),
        container: file.container.clone(),
        command: words(path, &file.command, false)?,
    })
}

pub fn check(path: &Path, text: &str, file: &Spanned<CheckFile>, index: usize) -> Result<Check> {
    let v = &file.value;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let (kind, described) = match (&v.cel, &v.script, &v.exec) {
        (Some(cel), None, None) => (CheckKind::Cel(cel_at(path, text, cel)?), cel.value.clone()),
        (None, Some(script), None) => {
            let argv = words(path, script, v.shell)?;
            let described = argv.join(" ");
            (CheckKind::Script(Script { argv, dir }), described)
        }
        (None, None, Some(e)) => {
            let exec = exec(path, e)?;
            let described = exec.command.join(" ");
            (CheckKind::Exec(exec), described)
        }
        _ => {
            return Err(Error::input(
                path,
                file.referenced.line(),
                file.referenced.column(),
                "a check has exactly one of cel, script or exec",
            )
            .with_hint("like `- {name: two workers, cel: \"object.status.replicaStatuses.Worker.succeeded == 2\"}`"));
        }
    };
    if v.shell && v.script.is_none() {
        return Err(Error::input(
            path,
            file.referenced.line(),
            file.referenced.column(),
            "shell: true is for a script check",
        ));
    }
    Ok(Check {
        name: v.name.clone().unwrap_or_else(|| format!("check {} ({})", index + 1, described)),
        kind,
        timeout: v.timeout.unwrap_or(Dur(DEFAULT_CHECK_TIMEOUT)),
    })
}
