//! Identifiers: random ones for runs and namespace suffixes, a case's from its file, KFP's names.

/// `len` random lowercase hex digits (at most 16), for namespace suffixes and run ids.
pub fn random_hex(len: usize) -> String {
    let mut bytes = [0u8; 8];
    // A clock-derived fallback is unique enough for a name suffix.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes = (nanos as u64).to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(16)].to_string()
}

/// A case's id from its file's path in the suite (`examples/pass-01.yaml` →
/// `examples.pass-01`): what its evidence folder and its history are keyed by.
pub fn case_id(rel: &str) -> String {
    let stem = [".yaml", ".yml", ".py", ".ipynb"].iter().find_map(|ext| rel.strip_suffix(ext)).unwrap_or(rel);
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '.' })
        .collect()
}

/// KFP's pattern for a pipeline's name (`pipelineInfo.name`, and every name its Kubernetes
/// pipeline store keeps): `^[a-z0-9][a-z0-9-]{0,127}$`.
pub fn is_kfp_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A name KFP takes for `text`: itself when it already fits [`is_kfp_name`] (and ends in a
/// letter or digit, as a DNS-1123 label must); else lowercased, every other character a `-`,
/// cut to fit, with a hash of the original text at the end so two texts never share a name.
pub fn kfp_name(text: &str) -> String {
    if is_kfp_name(text) && !text.ends_with('-') {
        return text.to_string();
    }
    let mut name = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let hash = super::files::short_hash(text);
    // 128 at most: the stem, a dash, 12 hex digits.
    let stem: String = name.trim_end_matches('-').chars().take(128 - 13).collect();
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() { format!("kv-{hash}") } else { format!("{stem}-{hash}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfp_names_fit_kfps_pattern() {
        assert_eq!(kfp_name("pipelines-train"), "pipelines-train");
        for text in ["my_pipeline", "Pipelines/Train.yaml", "-x-", "___", &"a".repeat(300), "é+%"] {
            let name = kfp_name(text);
            assert!(is_kfp_name(&name) && !name.ends_with('-'), "{text:?} → {name:?}");
        }
        assert_ne!(kfp_name("a_b"), kfp_name("a.b"), "names that fold alike stay apart");
        assert_eq!(kfp_name(&"a".repeat(300)).len(), 128);
        assert!(!is_kfp_name("Upper") && !is_kfp_name("-lead") && !is_kfp_name(""));
    }
}
