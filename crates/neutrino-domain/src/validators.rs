//! neutron-lib's attribute validators that several resources share.

/// Whether `value` is UUID-like as oslo's `uuidutils.is_uuid_like` judges it: 32 hex digits,
/// dashes anywhere (Python's `uuid.UUID` drops them all), braces or a `urn:uuid:` prefix, in
/// any case.
pub fn is_uuid_like(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let bare = lower.strip_prefix("urn:").unwrap_or(&lower);
    let bare = bare.strip_prefix("uuid:").unwrap_or(bare);
    let bare = bare.strip_prefix('{').and_then(|b| b.strip_suffix('}')).unwrap_or(bare);
    let digits: String = bare.chars().filter(|c| *c != '-').collect();
    digits.len() == 32 && digits.chars().all(|c| c.is_ascii_hexdigit())
}

/// neutron-lib's `type:uuid` message.
pub fn not_a_uuid(value: &str) -> String {
    format!("'{value}' is not a valid UUID")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_with_and_without_dashes_are_uuid_like() {
        assert!(is_uuid_like("8d7d375d-dce1-4e51-a3c5-904fb3e2f618"));
        assert!(is_uuid_like("0af5df9dd3384d9c84d174f6a9ff2cc8"), "a Keystone project id");
        assert!(is_uuid_like("{8D7D375D-DCE1-4E51-A3C5-904FB3E2F618}"));
        assert!(is_uuid_like("urn:uuid:8d7d375d-dce1-4e51-a3c5-904fb3e2f618"));
        assert!(!is_uuid_like("foo-addr-scope"));
        assert!(!is_uuid_like("8d7d375d-dce1-4e51-a3c5-904fb3e2f61"));
        assert!(is_uuid_like("8d7d375ddce1-4e51-a3c5-904fb3e2f618-"), "as Python's uuid.UUID");
        assert!(!is_uuid_like(""));
    }
}
