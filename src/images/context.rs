//! What Docker sends as a build context, decided as Docker decides it: only the context root's
//! `.dockerignore` (or BuildKit's `<Dockerfile>.dockerignore` beside the Dockerfile, which
//! takes precedence) counts, with Docker's own pattern rules (moby's patternmatcher), not
//! gitignore's: each line trimmed, `#` comments, `!` exceptions, patterns cleaned as Go's
//! `filepath.Clean` does with a leading `/` dropped; `*` and `?` stop at `/`, `**` spans
//! directories; a pattern excludes a path when it matches the path or any of its parents,
//! and the last matching line decides. A nested `.dockerignore` is an ordinary file.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::ImageError;
use crate::util::files::FileError;

/// Why Docker could not use a `.dockerignore` pattern.
#[derive(Debug, thiserror::Error)]
enum PatternError {
    #[error("ends with a lone \\")]
    LoneBackslash,
    #[error("has a [ with no closing ]")]
    UnclosedClass,
    #[error("{0}")]
    Regex(#[from] regex::Error),
}

/// One line of a `.dockerignore`.
#[derive(Debug)]
struct Rule {
    pattern: Regex,
    exception: bool,
}

/// The rules of one `.dockerignore` file.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

/// Go's `filepath.Clean` on a `/`-separated pattern: `.` and empty parts dropped, `..`
/// folded, no trailing `/`.
fn clean(pattern: &str) -> String {
    let rooted = pattern.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if rooted => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// A pattern as the regular expression moby's patternmatcher builds from it.
fn translate(pattern: &str) -> Result<Regex, PatternError> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => re.push_str(&regex::escape(&next.to_string())),
                None => return Err(PatternError::LoneBackslash),
            },
            _ if in_class => match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '^' | '-' => re.push(c),
                c if c.is_alphanumeric() => re.push(c),
                c => re.push_str(&format!("\\{c}")),
            },
            '[' => {
                in_class = true;
                re.push('[');
            }
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                re.push_str(if chars.peek().is_none() { ".*" } else { "(.*/)?" });
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    if in_class {
        return Err(PatternError::UnclosedClass);
    }
    re.push('$');
    Ok(Regex::new(&re)?)
}

impl Ignore {
    /// Reads a `.dockerignore`'s text; a line Docker could not use is an error naming it.
    pub fn parse(text: &str, file: &Path) -> Result<Ignore, ImageError> {
        let refused =
            |number: usize, problem: String| ImageError::Ignore { file: file.to_path_buf(), line: number + 1, problem };
        let mut rules = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                return Err(refused(number, "a lone ! excludes nothing".into()));
            }
            let cleaned = clean(pattern);
            let cleaned = cleaned.strip_prefix('/').filter(|p| !p.is_empty()).unwrap_or(&cleaned);
            let pattern = translate(cleaned).map_err(|e| refused(number, format!("pattern {pattern:?} {e}")))?;
            rules.push(Rule { pattern, exception });
        }
        Ok(Ignore { rules })
    }

    /// Whether Docker leaves out `path` (relative to the context root, `/`-separated).
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            let mut prefixes = path.match_indices('/').map(|(i, _)| &path[..i]).chain(std::iter::once(path));
            if prefixes.any(|p| rule.pattern.is_match(p)) {
                excluded = !rule.exception;
            }
        }
        excluded
    }
}

/// The files Docker would send for a build of `dockerfile` (relative to `context`), sorted;
/// the Dockerfile itself is always among them, as Docker always reads it.
pub fn files(context: &Path, dockerfile: &str) -> Result<Vec<PathBuf>, ImageError> {
    let beside = context.join(format!("{dockerfile}.dockerignore"));
    let root = context.join(".dockerignore");
    let ignore = match [beside, root].into_iter().find(|f| f.is_file()) {
        Some(file) => {
            let text = std::fs::read_to_string(&file).map_err(|e| FileError::read(&file, e))?;
            Ignore::parse(&text, &file)?
        }
        None => Ignore::default(),
    };
    let mut files = Vec::new();
    for entry in ignore::WalkBuilder::new(context).standard_filters(false).build() {
        let entry = entry.map_err(|source| ImageError::Walk { context: context.to_path_buf(), source })?;
        let path = entry.into_path();
        if !path.is_file() {
            continue;
        }
        let relative = path.strip_prefix(context).unwrap_or(&path).to_string_lossy().into_owned();
        if !ignore.excludes(&relative) {
            files.push(path);
        }
    }
    let dockerfile = context.join(dockerfile);
    if dockerfile.is_file() && !files.contains(&dockerfile) {
        files.push(dockerfile);
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Ignore {
        Ignore::parse(text, Path::new(".dockerignore")).expect("rules")
    }

    #[test]
    fn patterns_follow_dockers_rules() {
        let r = rules("# a comment\n*.md\n!README.md\n/build/\nnode_modules\n**/*.pyc\ndocs/**\n");
        assert!(r.excludes("notes.md") && !r.excludes("README.md"));
        assert!(!r.excludes("sub/notes.md"), "* stops at /, and patterns are anchored at the root");
        assert!(r.excludes("build/out.bin") && r.excludes("node_modules/x/y.js"), "a parent's match excludes");
        assert!(r.excludes("a.pyc") && r.excludes("a/b/c.pyc"), "** spans zero or more directories");
        assert!(r.excludes("docs/a/b.txt") && !r.excludes("docs.txt"));
        assert!(!r.excludes("src/main.py"));
    }

    #[test]
    fn the_last_matching_line_decides_and_cleaning_applies() {
        let r = rules("./Dockerfile\n!Dockerfile\nDockerfile\n");
        assert!(r.excludes("Dockerfile"));
        let r = rules("a/../b\n[abc].txt\nfile?.log\n");
        assert!(r.excludes("b") && !r.excludes("a"));
        assert!(r.excludes("a.txt") && !r.excludes("d.txt"));
        assert!(r.excludes("file1.log") && !r.excludes("file10.log"));
    }

    #[test]
    fn lines_docker_refuses_are_named() {
        let e = Ignore::parse("ok\n!\n", Path::new("ctx/.dockerignore")).expect_err("a lone !");
        assert!(e.to_string().starts_with("ctx/.dockerignore:2:"), "{e}");
        let e = Ignore::parse("[abc\n", Path::new(".dockerignore")).expect_err("unterminated class");
        assert!(e.to_string().contains("no closing ]"), "{e}");
    }
}
