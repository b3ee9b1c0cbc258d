//! Writes the swarm's view history to the memory store under
//! `coordination/byzantine/view-changes`, in the tutorial's shape
//! (`[{view, primary, start, end}]`, plus the membership `epoch` the view
//! counts in: each epoch starts in view 0), by listening to `view-changed`
//! events. Every validator announces each view it installs; the first
//! announcement of a view closes the previous entry and opens the next.

use crate::events::LifecycleEvent;
use crate::hooks::HookEvent;
use crate::protocol::AgentId;
use crate::store::MemoryStore;
use actix::{Actor, Context, Handler};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};

pub const VIEW_CHANGES_KEY: &str = "coordination/byzantine/view-changes";

/// The most views kept; older ones are dropped from the front.
const MAX_ENTRIES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewEntry {
    pub epoch: u64,
    pub view: u64,
    pub primary: String,
    pub start: String,
    pub end: Option<String>,
}

pub struct ViewChangeRecorder {
    names: Vec<String>,
    entries: Vec<ViewEntry>,
    memory: Arc<Mutex<MemoryStore>>,
}

impl ViewChangeRecorder {
    /// Starts the history with view 0 under `names[0]`, from `launched_at`.
    pub fn new(names: Vec<String>, launched_at: String, memory: Arc<Mutex<MemoryStore>>) -> ViewChangeRecorder {
        let primary = names.first().cloned().unwrap_or_default();
        let entries = vec![ViewEntry { epoch: 0, view: 0, primary, start: launched_at, end: None }];
        let recorder = ViewChangeRecorder { names, entries, memory };
        recorder.save();
        recorder
    }

    /// Records `view` of `epoch` with `primary` installed at `timestamp`;
    /// older or known views change nothing.
    pub fn record(&mut self, epoch: u64, view: u64, primary: AgentId, timestamp: &str) -> bool {
        if self.entries.last().is_some_and(|last| (last.epoch, last.view) >= (epoch, view)) {
            return false;
        }
        if let Some(last) = self.entries.last_mut() {
            last.end = Some(timestamp.to_string());
        }
        let name = self.names.get(primary.0 as usize).cloned().unwrap_or_else(|| primary.to_string());
        self.entries.push(ViewEntry { epoch, view, primary: name, start: timestamp.to_string(), end: None });
        if self.entries.len() > MAX_ENTRIES {
            self.entries.remove(0);
        }
        true
    }

    pub fn entries(&self) -> &[ViewEntry] {
        &self.entries
    }

    fn save(&self) {
        let value = match serde_json::to_value(&self.entries) {
            Ok(value) => value,
            Err(error) => return tracing::warn!(%error, "cannot encode the view history"),
        };
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = memory.store(VIEW_CHANGES_KEY, &value, None) {
            tracing::warn!(%error, "cannot store the view history");
        }
    }
}

impl Actor for ViewChangeRecorder {
    type Context = Context<Self>;
}

impl Handler<HookEvent> for ViewChangeRecorder {
    type Result = ();

    fn handle(&mut self, event: HookEvent, _: &mut Context<Self>) {
        if let LifecycleEvent::ViewChanged { timestamp, epoch, view, primary, .. } = event.0.as_ref() {
            if self.record(*epoch, *view, *primary, timestamp) {
                self.save();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_view_is_recorded_once_and_closes_the_one_before() {
        let memory = Arc::new(Mutex::new(MemoryStore::in_memory()));
        let names: Vec<String> = (1..=4).map(|i| format!("bft-agent-{i}")).collect();
        let mut recorder = ViewChangeRecorder::new(names, "t0".into(), memory.clone());
        assert!(recorder.record(0, 1, AgentId(1), "t1"));
        assert!(!recorder.record(0, 1, AgentId(1), "t1-again"), "every validator announces the view");
        assert!(!recorder.record(0, 0, AgentId(0), "late"));
        // Epoch 1 starts in view 0; its view 1 is a new entry.
        assert!(recorder.record(1, 1, AgentId(2), "t2"));
        recorder.save();
        let stored = memory.lock().unwrap().retrieve(VIEW_CHANGES_KEY).unwrap().unwrap();
        assert_eq!(
            stored,
            serde_json::json!([
                {"epoch": 0, "view": 0, "primary": "bft-agent-1", "start": "t0", "end": "t1"},
                {"epoch": 0, "view": 1, "primary": "bft-agent-2", "start": "t1", "end": "t2"},
                {"epoch": 1, "view": 1, "primary": "bft-agent-3", "start": "t2", "end": null}
            ])
        );
    }
}
