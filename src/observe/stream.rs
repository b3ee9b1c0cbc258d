//! The live event stream: lifecycle events, each once per swarm, numbered,
//! kept in a bounded backlog and pushed to subscribers as server-sent events.
//!
//! An event's id is `<boot>-<n>`: `boot` names this process's life (its start
//! in Unix milliseconds), `n` counts from 1. A client that reconnects with
//! `Last-Event-ID` gets what followed that id; one whose id is from another
//! life (the daemon restarted) gets this life's whole backlog, since none of
//! it can have reached it.

use crate::events::{LifecycleEvent, OncePerSwarm};
use crate::hooks::HookEvent;
use actix::{Actor, Context, Handler};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events kept for reconnecting clients and the dashboard's first look, at
/// most this many and this many bytes (a batch's event lists its transfer ids).
pub const BACKLOG: usize = 10_000;
pub const BACKLOG_BYTES: usize = 32 << 20;
/// Events a slow subscriber may fall behind by before it is cut off (it reconnects and resumes).
const SUBSCRIBER_LAG: usize = 4096;
/// A comment line this often keeps idle connections (and their proxies) open
/// and lets a server notice a client that went away.
const KEEPALIVE: Duration = Duration::from_secs(10);

type Receiver = broadcast::Receiver<Arc<StreamEvent>>;

/// One numbered event, ready to send.
#[derive(Clone, Debug)]
pub struct StreamEvent {
    pub n: u64,
    pub kind: &'static str,
    pub json: String,
}

struct Inner {
    once: OncePerSwarm,
    next: u64,
    backlog: VecDeque<Arc<StreamEvent>>,
    backlog_bytes: usize,
    closed: bool,
}

pub struct EventLog {
    boot: u64,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<StreamEvent>>,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog::new()
    }
}

impl EventLog {
    pub fn new() -> EventLog {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let inner =
            Inner { once: OncePerSwarm::default(), next: 1, backlog: VecDeque::new(), backlog_bytes: 0, closed: false };
        EventLog { boot, inner: Mutex::new(inner), live: broadcast::channel(SUBSCRIBER_LAG).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers and keeps `event` unless another validator already reported it.
    pub fn push(&self, event: &LifecycleEvent) {
        let mut inner = self.lock();
        if inner.closed || !inner.once.first(event) {
            return;
        }
        let n = inner.next;
        inner.next += 1;
        let event = Arc::new(StreamEvent { n, kind: event.kind().name(), json: event.to_json_line() });
        inner.backlog_bytes += event.json.len();
        inner.backlog.push_back(event.clone());
        while inner.backlog.len() > BACKLOG || inner.backlog_bytes > BACKLOG_BYTES {
            let Some(oldest) = inner.backlog.pop_front() else { break };
            inner.backlog_bytes -= oldest.json.len();
        }
        // Sent under the lock, so a subscriber's backlog and live events neither overlap nor miss.
        let _ = self.live.send(event);
    }

    /// Ends every subscriber's stream (the process is stopping).
    pub fn close(&self) {
        self.lock().closed = true;
        let _ = self.live.send(Arc::new(StreamEvent { n: 0, kind: "", json: String::new() }));
    }

    /// What follows `last_event_id`, then a receiver of what comes next
    /// (none once the log is closed: the process is stopping).
    pub fn subscribe(&self, last_event_id: Option<&str>) -> (Vec<Arc<StreamEvent>>, Option<Receiver>) {
        let after = match last_event_id.and_then(parse_id) {
            Some((boot, n)) if boot == self.boot => n,
            _ => 0,
        };
        let inner = self.lock();
        let backlog = inner.backlog.iter().filter(|event| event.n > after).cloned().collect();
        (backlog, (!inner.closed).then(|| self.live.subscribe()))
    }

    /// The backlog's events, oldest first, as JSON values with their ids.
    pub fn recent(&self, limit: usize) -> Vec<serde_json::Value> {
        let inner = self.lock();
        let skip = inner.backlog.len().saturating_sub(limit);
        let parse = |event: &Arc<StreamEvent>| {
            let mut value: serde_json::Value = serde_json::from_str(&event.json).ok()?;
            value.as_object_mut()?.insert("id".into(), self.id(event.n).into());
            Some(value)
        };
        inner.backlog.iter().skip(skip).filter_map(parse).collect()
    }

    pub fn id(&self, n: u64) -> String {
        format!("{}-{n}", self.boot)
    }

    /// The stream's bytes: the backlog after `last_event_id`, then live
    /// events, until closed (or at once after the backlog, if it already is).
    pub fn sse(
        self: Arc<Self>,
        last_event_id: Option<&str>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        let (backlog, receiver) = self.subscribe(last_event_id);
        let sent = backlog.last().map_or(0, |event| event.n);
        let state = (self, VecDeque::from(backlog), receiver, sent);
        futures_util::stream::unfold(state, |(log, mut backlog, receiver, mut sent)| async move {
            if let Some(event) = backlog.pop_front() {
                let frame = log.frame(&event);
                return Some((Ok(frame), (log, backlog, receiver, sent)));
            }
            let mut receiver = receiver?;
            loop {
                match tokio::time::timeout(KEEPALIVE, receiver.recv()).await {
                    Err(_) => {
                        let keepalive = Ok(Bytes::from_static(b": keepalive\n\n"));
                        return Some((keepalive, (log, backlog, Some(receiver), sent)));
                    }
                    Ok(Ok(event)) if event.n == 0 => return None,
                    Ok(Ok(event)) if event.n <= sent => continue,
                    Ok(Ok(event)) => {
                        sent = event.n;
                        let frame = log.frame(&event);
                        return Some((Ok(frame), (log, backlog, Some(receiver), sent)));
                    }
                    // Fell too far behind: end; the client resumes from its last id.
                    Ok(Err(_)) => return None,
                }
            }
        })
    }

    fn frame(&self, event: &StreamEvent) -> Bytes {
        Bytes::from(format!("id: {}\nevent: {}\ndata: {}\n\n", self.id(event.n), event.kind, event.json))
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (boot, n) = id.trim().split_once('-')?;
    Some((boot.parse().ok()?, n.parse().ok()?))
}

/// Subscribes an [`EventLog`] to a swarm's event hub.
pub struct EventLogHook(pub Arc<EventLog>);

impl Actor for EventLogHook {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::hooks::HUB_MAILBOX);
    }
}

impl Handler<HookEvent> for EventLogHook {
    type Result = ();

    fn handle(&mut self, HookEvent(event): HookEvent, _: &mut Context<Self>) {
        self.0.push(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AgentId;

    fn view_changed(agent: u32, view: u64) -> LifecycleEvent {
        LifecycleEvent::ViewChanged {
            timestamp: "t".into(),
            agent: AgentId(agent),
            epoch: 0,
            view,
            primary: AgentId(1),
        }
    }

    #[test]
    fn a_client_resumes_after_its_last_id_and_one_from_another_life_gets_everything() {
        let log = EventLog::new();
        for (agent, view) in [(0, 1), (1, 1), (0, 2), (2, 3)] {
            log.push(&view_changed(agent, view));
        }
        let (all, _) = log.subscribe(None);
        assert_eq!(all.iter().map(|e| e.n).collect::<Vec<_>>(), [1, 2, 3], "each view change once");
        let (rest, _) = log.subscribe(Some(&log.id(2)));
        assert_eq!(rest.iter().map(|e| e.n).collect::<Vec<_>>(), [3]);
        let (after_restart, _) = log.subscribe(Some(&format!("{}-2", log.boot - 1)));
        assert_eq!(after_restart.len(), 3);
        let (garbage, _) = log.subscribe(Some("not an id"));
        assert_eq!(garbage.len(), 3);
    }

    #[actix::test]
    async fn a_stream_opened_after_the_close_ends_after_its_backlog() {
        use futures_util::StreamExt;
        let log = Arc::new(EventLog::new());
        log.push(&view_changed(0, 1));
        log.close();
        let frames: Vec<_> = log.clone().sse(None).collect().await;
        assert_eq!(frames.len(), 1, "the backlog, then the end: a stopping daemon is not held open");
    }

    #[actix::test]
    async fn the_stream_sends_the_backlog_then_live_events_and_ends_when_closed() {
        use futures_util::StreamExt;
        let log = Arc::new(EventLog::new());
        log.push(&view_changed(0, 1));
        let stream = log.clone().sse(None);
        let mut stream = std::pin::pin!(stream);
        let first = stream.next().await.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&first).starts_with(&format!("id: {}\nevent: view-changed\ndata: {{", log.id(1)))
        );
        log.push(&view_changed(3, 2));
        let second = stream.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&second).contains("\"view\":2"));
        log.close();
        assert!(stream.next().await.is_none());
    }
}
