//! Writes the swarm's view history to the memory store under
//! `coordination/byzantine/view-changes`, in the tutorial's shape
//! (`[{view, primary, start, end}]`), by listening to `view-changed` events.
//! Every validator announces each view it installs; the first announcement of
//! a view closes the previous entry and opens the next.

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
        let entries = vec![ViewEntry { view: 0, primary, start: launched_at, end: None }];
        let recorder = ViewChangeRecorder { names, entries, memory };
        recorder.save();
        recorder
    }

    /// Records `view` with `primary` installed at `timestamp`; older or known views change nothing.
    pub fn record(&mut self, view: u64, primary: AgentId, timestamp: &str) -> bool {
        if self.entries.last().is_some_and(|last| last.view >= view) {
            return false;
        }
        if let Some(last) = self.entries.last_mut() {
            last.end = Some(timestamp.to_string());
        }
        let name = self.names.get(primary.0 as usize).cloned().unwrap_or_else(|| primary.to_string());
        self.entries.push(ViewEntry { view, primary: name, start: timestamp.to_string(), end: None });
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
        if let LifecycleEvent::ViewChanged { timestamp, view, primary, .. } = event.0.as_ref() {
            if self.record(*view, *primary, timestamp) {
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
        assert!(recorder.record(1, AgentId(1), "t1"));
        assert!(!recorder.record(1, AgentId(1), "t1-again"), "every validator announces the view");
        assert!(!recorder.record(0, AgentId(0), "late"));
        recorder.save();
        let stored = memory.lock().unwrap().retrieve(VIEW_CHANGES_KEY).unwrap().unwrap();
        assert_eq!(
            stored,
            serde_json::json!([
                {"view": 0, "primary": "bft-agent-1", "start": "t0", "end": "t1"},
                {"view": 1, "primary": "bft-agent-2", "start": "t1", "end": null}
            ])
        );
    }
}
