//! The write-ahead log side of a durable validator: the replica rebuilt from
//! the log before the actor starts ([`RecoveredValidator`]), and the log kept
//! while it runs ([`DurableLog`]): each step is recorded as it happens, the
//! outputs are held, and one commit per mailbox drain lets them go.

use super::now;
use crate::protocol::{Output, Replica};
use crate::wal::{Journal, Recovery, ReplicaSpec, WalError, WalOptions};

/// A replica rebuilt from its write-ahead log, with the open log: what
/// [`super::Validator::recovered`] starts from. Opened on the caller's thread
/// so that a log that cannot be opened is an error of the launch.
pub struct RecoveredValidator {
    pub(super) spec: ReplicaSpec,
    pub(super) replica: Replica,
    pub(super) log: DurableLog,
}

impl RecoveredValidator {
    pub fn open(spec: ReplicaSpec, options: WalOptions) -> Result<RecoveredValidator, WalError> {
        let (replica, journal, recovery) = crate::wal::recover(&options, &spec, now())?;
        log_recovery(&spec.name, &recovery);
        let log = DurableLog {
            options,
            spec: spec.clone(),
            journal: Some(journal),
            recovery,
            unsent: Vec::new(),
            flush_scheduled: false,
        };
        Ok(RecoveredValidator { spec, replica, log })
    }

    pub fn recovery(&self) -> &Recovery {
        &self.log.recovery
    }
}

/// A running validator's log and the outputs waiting for its next commit.
pub(super) struct DurableLog {
    options: WalOptions,
    spec: ReplicaSpec,
    /// None after a failed reopen: the validator then sends nothing, as a crashed one.
    journal: Option<Journal>,
    recovery: Recovery,
    unsent: Vec<Output>,
    flush_scheduled: bool,
}

/// A durable validator's reminder to itself, handled once its mailbox is
/// drained: commit the log, then send what the drained deliveries produced.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct FlushLog;

impl DurableLog {
    pub(super) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The last sequence number executed that the committed log holds; none while the log is gone.
    pub(super) fn logged_executed(&self) -> Option<crate::protocol::Seq> {
        self.journal.as_ref().map(Journal::committed_executed)
    }

    /// Records one step (the replica as the step left it) and holds its
    /// outputs; true when the caller must schedule a [`FlushLog`].
    pub(super) fn record(&mut self, outputs: Vec<Output>, replica: &Replica) -> bool {
        if let Some(journal) = &mut self.journal {
            journal.record(&outputs, replica);
        }
        self.unsent.extend(outputs);
        !std::mem::replace(&mut self.flush_scheduled, true)
    }

    /// Commits what was recorded and hands back the outputs that may now be
    /// sent; none when the log is gone. On an error nothing may be sent.
    pub(super) fn commit(&mut self) -> Result<Option<Vec<Output>>, WalError> {
        self.flush_scheduled = false;
        let outputs = std::mem::take(&mut self.unsent);
        match self.journal.as_mut().map(Journal::commit) {
            Some(Ok(())) => Ok(Some(outputs)),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }

    /// Forgets everything not committed (as a crash does) and rebuilds the
    /// replica from the log; none if the log cannot be reopened.
    pub(super) fn reopen(&mut self) -> Option<Replica> {
        self.unsent.clear();
        self.flush_scheduled = false;
        // Closes the file first: redb locks it for one open database.
        self.journal = None;
        match crate::wal::recover(&self.options, &self.spec, now()) {
            Ok((replica, journal, recovery)) => {
                log_recovery(&self.spec.name, &recovery);
                self.journal = Some(journal);
                self.recovery = recovery;
                Some(replica)
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
