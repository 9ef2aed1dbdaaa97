//! Files and folders: the cache folder, atomic writes, content hashes, safe file names.

use std::{
    io::Write,
    path::{Component, Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// Where kubevet keeps checkouts, rendered manifests, resolutions and ledgers between runs.
/// The path made absolute against the current directory (as given when that fails), for a
/// program kubevet runs elsewhere.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEVET_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubevet")
}

/// A short, stable name for a text (a URL, a path) in cache file names.
pub fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Writes the file whole or not at all: a reader never sees half a report.
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `to` relative to `from`, so a hash does not depend on where a checkout lives.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf = from[common..].iter().map(|_| Component::ParentDir).collect();
    path.extend(&to[common..]);
    path
}

/// A file kubevet could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FileError {
    pub fn read(path: &Path, source: std::io::Error) -> FileError {
        FileError::Read { path: path.to_path_buf(), source }
    }

    pub fn write(path: &Path, source: std::io::Error) -> FileError {
        FileError::Write { path: path.to_path_buf(), source }
    }
}

/// Adds each file's path (relative to `root`) and content to `hash`; a file that cannot be
/// read is an error naming it, never hashed as empty.
pub fn hash_files<'a>(
    hash: &mut Sha256,
    root: &Path,
    files: impl IntoIterator<Item = &'a PathBuf>,
) -> Result<(), FileError> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for file in files {
        let content = std::fs::read(file).map_err(|e| FileError::read(file, e))?;
        hash.update(relative(&root, file).to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(content);
        hash.update([0]);
    }
    Ok(())
}

/// A name safe to use as one path component.
pub fn file_name(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    match cleaned.trim_start_matches('.') {
        "" => "_".to_string(),
        rest => rest.to_string(),
    }
}

/// Copies the files under `from` into `to`, keeping their layout.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_climb_out() {
        assert_eq!(file_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(file_name("worker-0"), "worker-0");
        assert_eq!(file_name(""), "_");
    }
}
