//! What every hook of a frontend gets besides its arguments: `config_settings` and the
//! guest's environment.

use crate::sandbox;
use serde_json::Value;
use std::collections::BTreeMap;

/// `-C` settings added to `base` (`--config-json`) as the JSON object the hooks get:
/// repeated keys become lists.
pub(super) fn config_settings_json(
    base: serde_json::Map<String, Value>,
    settings: &[(String, String)],
) -> Value {
    let mut map: BTreeMap<String, Value> = base.into_iter().collect();
    for (key, value) in settings {
        match map.get_mut(key) {
            None => {
                map.insert(key.clone(), Value::String(value.clone()));
            }
            Some(Value::Array(items)) => items.push(Value::String(value.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.clone())]);
            }
        }
    }
    Value::Object(map.into_iter().collect())
}

/// The guest's whole environment: a fixed set, `SOURCE_DATE_EPOCH` from the host when set
/// and `host_epoch`, and what the user passed with `--env` (which wins).
pub(crate) fn guest_environment(
    user: &[(String, String)],
    host_epoch: bool,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = sandbox::base_environment().into_iter().collect();
    if host_epoch && let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        env.insert("SOURCE_DATE_EPOCH".into(), epoch);
    }
    for (key, value) in user {
        env.insert(key.clone(), value.clone());
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_config_settings_become_lists() {
        let settings = [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x".to_string()),
            ("a".to_string(), "2".to_string()),
            ("a".to_string(), "3".to_string()),
        ];
        assert_eq!(
            config_settings_json(Default::default(), &settings),
            serde_json::json!({"a": ["1", "2", "3"], "b": "x"})
        );
    }

    #[test]
    fn config_json_is_the_base_of_the_settings() {
        let base = serde_json::json!({"nested": {"k": [1, true]}, "a": "0"});
        let serde_json::Value::Object(base) = base else {
            unreachable!()
        };
        assert_eq!(
            config_settings_json(base, &[("a".into(), "1".into())]),
            serde_json::json!({"nested": {"k": [1, true]}, "a": ["0", "1"]})
        );
    }

    #[test]
    fn guest_environment_is_fixed_plus_user() {
        let env = guest_environment(
            &[
                ("HOME".into(), "/tmp/elsewhere".into()),
                ("X".into(), "1".into()),
            ],
            true,
        );
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("HOME"), Some("/tmp/elsewhere"));
        assert_eq!(get("X"), Some("1"));
        assert_eq!(get("TMPDIR"), Some("/tmp"));
        assert_eq!(get("PATH"), None);
    }
}
