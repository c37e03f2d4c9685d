//! `Shared<T>`: a value the whole daemon reads and SIGHUP replaces whole (the users file, the
//! TLS certificate). Readers take the `Arc` in force at the moment they need it (at a login, at
//! AUTH TLS); a reload swaps in a new one; a session that already has its value keeps it. The
//! lock is held only to clone or replace one `Arc`, never across anything else.
//!
//! It knows nothing of what it holds, so every module may use it without an import cycle.

use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct Shared<T>(RwLock<Arc<T>>);

impl<T> Shared<T> {
    pub fn new(value: Arc<T>) -> Shared<T> {
        Shared(RwLock::new(value))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value for every later `get`.
    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_what_they_took_and_later_ones_get_the_new_value() {
        let shared = Shared::new(Arc::new(1));
        let before = shared.get();
        shared.set(Arc::new(2));
        assert_eq!((*before, *shared.get()), (1, 2));
    }
}
