//! Work done once per key, shared by concurrent callers.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// A map whose values are computed once per key, with concurrent callers for the same key
/// waiting for the first one instead of repeating its work. Failures are not remembered.
pub(super) struct OnceMap<K, V> {
    slots: Mutex<HashMap<K, Arc<Mutex<Option<V>>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> OnceMap<K, V> {
    pub(super) fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get_or_try_insert<E>(
        &self,
        key: &K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        let mut value = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = value.as_ref() {
            return Ok(value.clone());
        }
        let computed = init()?;
        *value = Some(computed.clone());
        Ok(computed)
    }
}
