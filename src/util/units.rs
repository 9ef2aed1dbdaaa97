//! Sizes shown to people.

/// Bytes in MiB, one decimal: `101.3 MiB`.
pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1_048_576.0)
}
