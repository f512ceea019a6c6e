//! The link's state, shared by the two concurrent sides and saved to disk after every step (never in dry-run).

use crate::state::{LinkState, StateError, StateFiles};
use std::sync::Mutex;

pub struct Journal {
    state: Mutex<LinkState>,
    /// None in dry-run: nothing is written.
    files: Option<StateFiles>,
}

impl Journal {
    pub fn new(state: LinkState, files: Option<StateFiles>) -> Self {
        Journal {
            state: Mutex::new(state),
            files,
        }
    }

    pub fn read<T>(&self, f: impl FnOnce(&LinkState) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }

    /// Change the state and persist it at once, so that a crash right after loses nothing.
    pub fn record(&self, f: impl FnOnce(&mut LinkState)) -> Result<(), StateError> {
        let mut s = self.state.lock().expect("state lock");
        f(&mut s);
        match &self.files {
            Some(files) => files.save(&s),
            None => Ok(()),
        }
    }

    pub fn snapshot(&self) -> LinkState {
        self.read(Clone::clone)
    }
}
