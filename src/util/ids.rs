//! Random identifiers: run ids and namespace suffixes.

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
