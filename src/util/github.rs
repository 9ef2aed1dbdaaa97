//! GitHub Actions workflow commands, escaped as GitHub documents, for `run --github` and
//! `lint --output github`.

use std::path::Path;

/// A workflow command's message.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=…,line=…,title=…::message` (or another level).
pub fn annotation(level: &str, file: &str, line: u64, column: Option<u64>, title: &str, message: &str) -> String {
    let column = column.map(|c| format!(",col={c}")).unwrap_or_default();
    format!(
        "::{level} file={},line={line}{column},title={}::{}",
        escape_property(file),
        escape_property(title),
        escape_data(message)
    )
}

/// A path as annotations want it: relative to the workspace (or the current folder).
pub fn workspace_path(path: &Path) -> String {
    let base = std::env::var_os("GITHUB_WORKSPACE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let base = base.canonicalize().unwrap_or(base);
    absolute.strip_prefix(&base).unwrap_or(&absolute).to_string_lossy().into_owned()
}

/// Sets a step output in `$GITHUB_OUTPUT` (false when GitHub gives none) as `name<<DELIMITER`,
/// with a random delimiter, so a value (a case's name, say) can never end it early.
pub fn set_output(name: &str, value: &str) -> std::io::Result<bool> {
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else { return Ok(false) };
    let delimiter = loop {
        let d = format!("ghadelimiter_{}{}", crate::util::ids::random_hex(16), crate::util::ids::random_hex(16));
        if !value.contains(&d) && !name.contains(&d) {
            break d;
        }
    };
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    write!(file, "{name}<<{delimiter}\n{value}\n{delimiter}\n")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_github_documents() {
        assert_eq!(escape_data("50% done\r\n::set-output name=x::y"), "50%25 done%0D%0A::set-output name=x::y");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(
            annotation("error", "examples/a,b.yaml", 7, Some(3), "FAIL x: y", "line 1\nline 2"),
            "::error file=examples/a%2Cb.yaml,line=7,col=3,title=FAIL x%3A y::line 1%0Aline 2"
        );
    }
}
