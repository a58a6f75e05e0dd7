//! The bound on requests in flight, shared by every caller of one generator.

use std::sync::{Condvar, Mutex};

/// A counting semaphore: the global bound on requests in flight.
#[derive(Debug)]
pub(super) struct Semaphore {
    available: Mutex<usize>,
    released: Condvar,
}

impl Semaphore {
    pub(super) fn new(permits: usize) -> Self {
        Semaphore {
            available: Mutex::new(permits),
            released: Condvar::new(),
        }
    }

    pub(super) fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap_or_else(|e| e.into_inner());
        while *available == 0 {
            available = self
                .released
                .wait(available)
                .unwrap_or_else(|e| e.into_inner());
        }
        *available -= 1;
        Permit(self)
    }
}

pub(super) struct Permit<'a>(&'a Semaphore);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.released.notify_one();
    }
}
