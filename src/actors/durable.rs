//! The write-ahead log side of a durable validator: the node rebuilt from
//! the log before the actor starts ([`RecoveredValidator`]), and the log kept
//! while it runs ([`DurableLog`]): each step's write is recorded as it
//! happens, its outbox is held, and one commit per mailbox drain opens them.

use super::now;
use crate::app::{Application, SwarmApp};
use crate::node::{LogWrite, Node, Outbox, Receipt};
use crate::protocol::{Output, RecoveredState};
use crate::wal::{Journal, Recovery, ReplicaSpec, WalError, WalOptions};

/// A node rebuilt from its write-ahead log, with the open log: what
/// [`super::Validator::recovered`] starts from. Opened on the caller's thread
/// so that a log that cannot be opened is an error of the launch.
pub struct RecoveredValidator<A: Application = SwarmApp> {
    pub(super) spec: ReplicaSpec<A>,
    pub(super) node: Node<A>,
    pub(super) log: DurableLog<A>,
}

impl<A: Application> RecoveredValidator<A> {
    pub fn open(spec: ReplicaSpec<A>, options: WalOptions) -> Result<RecoveredValidator<A>, WalError> {
        let (node, journal, recovery) = crate::wal::recover(&options, &spec, now())?;
        log_recovery(&spec.name, &recovery);
        let log = DurableLog {
            options,
            spec: spec.clone(),
            journal: Some(journal),
            recovery,
            held: Vec::new(),
            receipt: Receipt::default(),
            flush_scheduled: false,
        };
        Ok(RecoveredValidator { spec, node, log })
    }

    pub fn recovery(&self) -> &Recovery {
        &self.log.recovery
    }
}

/// A running validator's log and the outboxes waiting for its next commit.
pub(super) struct DurableLog<A: Application> {
    options: WalOptions,
    spec: ReplicaSpec<A>,
    /// None after a failed reopen: the validator then sends nothing, as a crashed one.
    journal: Option<Journal>,
    recovery: Recovery,
    /// Outboxes of steps whose writes are not committed yet, in step order.
    held: Vec<Outbox>,
    /// The newest receipt the log gave: what it holds for sure.
    receipt: Receipt,
    flush_scheduled: bool,
}

/// A durable validator's reminder to itself, handled once its mailbox is
/// drained: commit the log, then send what the drained deliveries produced.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct FlushLog;

impl<A: Application> DurableLog<A> {
    pub(super) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The last sequence number executed that the committed log holds; none while the log is gone.
    pub(super) fn logged_executed(&self) -> Option<crate::protocol::Seq> {
        self.journal.as_ref().map(Journal::committed_executed)
    }

    /// Records one step's write; its outbox comes back when the log already
    /// holds all it depends on, else it waits for the next commit (the
    /// caller schedules a [`FlushLog`] when this says so).
    pub(super) fn record(&mut self, write: LogWrite<A>, outbox: Outbox) -> (Option<Vec<Output>>, bool) {
        let Some(journal) = &mut self.journal else { return (None, false) };
        journal.record(write);
        // A step whose outbox opens with the last receipt came after every
        // held one was committed: nothing earlier is waiting, order is kept.
        match outbox.release(&self.receipt) {
            Ok(outputs) => return (Some(outputs), false),
            Err(outbox) => self.held.push(outbox),
        }
        (None, !std::mem::replace(&mut self.flush_scheduled, true))
    }

    /// Commits what was recorded and hands back the outputs that may now be
    /// sent; none when the log is gone. On an error nothing may be sent.
    pub(super) fn commit(&mut self, logged: Option<&RecoveredState<A>>) -> Result<Option<Vec<Output>>, WalError> {
        self.flush_scheduled = false;
        let held = std::mem::take(&mut self.held);
        let (Some(journal), Some(logged)) = (self.journal.as_mut(), logged) else { return Ok(None) };
        self.receipt = journal.commit(logged)?;
        let mut outputs = Vec::new();
        for outbox in held {
            match outbox.release(&self.receipt) {
                Ok(released) => outputs.extend(released),
                // The receipt covers every recorded write; kept for the next commit all the same.
                Err(outbox) => self.held.push(outbox),
            }
        }
        Ok(Some(outputs))
    }

    /// Forgets everything not committed (as a crash does) and rebuilds the
    /// node from the log; none if the log cannot be reopened.
    pub(super) fn reopen(&mut self) -> Option<Node<A>> {
        self.held.clear();
        self.receipt = Receipt::default();
        self.flush_scheduled = false;
        // Closes the file first: redb locks it for one open database.
        self.journal = None;
        match crate::wal::recover(&self.options, &self.spec, now()) {
            Ok((node, journal, recovery)) => {
                log_recovery(&self.spec.name, &recovery);
                self.journal = Some(journal);
                self.recovery = recovery;
                Some(node)
            }
            Err(error) => {
                tracing::error!(validator = %self.spec.name, %error, "cannot reopen the write-ahead log; the validator stays silent");
                None
            }
        }
    }
}

fn log_recovery(name: &str, recovery: &Recovery) {
    match recovery {
        Recovery::Fresh => tracing::debug!(validator = %name, "new write-ahead log"),
        Recovery::Wal { records, view, stable_checkpoint, last_executed, passive } => tracing::info!(
            validator = %name, records, %view, %stable_checkpoint, %last_executed, passive,
            "rebuilt from the write-ahead log"
        ),
        // The error itself was logged where the log was found damaged or missing.
        Recovery::Discarded { .. } | Recovery::Missing => {
            tracing::info!(validator = %name, "started passive from genesis")
        }
        Recovery::Unclean { records, stable_checkpoint, last_executed } => tracing::info!(
            validator = %name, records, %stable_checkpoint, %last_executed,
            "rebuilt from the write-ahead log, passive: it was not closed cleanly without fsync"
        ),
    }
}
