//! The suite's `images:` (what to build) and image reference swaps (`old=new:tag`), shared by
//! built images and operators' `images:`.

use std::{collections::BTreeMap, path::PathBuf};

/// An image to build, from the suite's `images:`.
#[derive(Debug, Clone)]
pub struct Image {
    /// The repository examples refer to, such as `example.com/trainer`.
    pub name: String,
    pub context: PathBuf,
    /// Relative to the context.
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
}

/// The repository of an image reference: without its tag or digest.
pub fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// One image reference swapped for another: a built image, or an operator's `images:` entry
/// (`old=new:tag`, as `kustomize edit set image` takes it).
#[derive(Debug, Clone, PartialEq)]
pub struct Retag {
    /// The repository matched, whatever its tag or digest.
    pub repository: String,
    /// The new reference; without a tag or digest, the old one's is kept.
    pub reference: String,
}

impl Retag {
    /// `old=new[:tag|@digest]`, or `old:tag` / `old@digest` for a new tag on the same repository.
    pub fn parse(text: &str) -> Result<Retag, String> {
        let (repository, reference) = match text.split_once('=') {
            Some((old, new)) => (old.to_string(), new.to_string()),
            None => (repository(text).to_string(), text.to_string()),
        };
        if repository.is_empty() || reference.is_empty() || (reference == repository && !text.contains('=')) {
            return Err(format!("{text:?}: expected old=new:tag, old:tag or old@digest"));
        }
        Ok(Retag { repository, reference })
    }

    pub fn apply(&self, image: &str) -> String {
        if repository(&self.reference) != self.reference {
            return self.reference.clone();
        }
        format!("{}{}", self.reference, &image[repository(image).len()..])
    }
}
