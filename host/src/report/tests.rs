use super::*;

#[test]
fn timestamps_are_rfc_3339_utc() {
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
    assert_eq!(rfc3339(at), "2023-11-14T22:13:20.123Z");
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
}
