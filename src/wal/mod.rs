//! Each validator's write-ahead log: what it must remember across a crash,
//! written before anything that depends on it leaves the validator.
//!
//! One redb file per validator (`<home>/wal/<validator>.redb`), so validators
//! wait for the disk in parallel. The node says what each step must persist
//! ([`crate::node::LogWrite`]); the journal appends the writes of one mailbox
//! drain as one group commit ([`Journal::commit`]) and hands back the receipt
//! that lets their messages leave; at each stable checkpoint one snapshot
//! record replaces everything before it. On start, [`recover`] folds
//! the log back into a [`RecoveredState`] and restores the replica from it. A
//! log that fails its checksums, cannot be decoded, or belongs to another
//! validator is moved aside with a one-line error: the validator then starts
//! from genesis, passive (it cannot prove what it signed, so it votes only
//! past everything it could have voted on), and catches up from its peers.
//! A swarm whose every log is lost refuses to start ([`refuse_if_all_logs_lost`]).
//!
//! Without fsync a crash rolls the log back silently: redb keeps only its
//! last durable commit, so a killed process (or machine) may come back
//! believing it signed less than it did, and sign another message in a slot
//! it signed before. So a log opened without fsync is marked open, durably
//! (`<file>.unsynced`), before its first commit; a clean close makes every
//! commit durable and then removes the mark. A log found still marked was
//! not closed cleanly: its validator keeps what the log holds but starts
//! passive ([`Recovery::Unclean`]), like one whose log was damaged.

#[cfg(test)]
mod tests;

pub use crate::node::{FoldError, Identity, WalRecord};

use crate::app::Application;
use crate::crypto::Keypair;
use crate::ledger::Ledger;
use crate::node::{LogWrite, Node, Receipt};
use crate::protocol::{AgentId, Committee, Micros, Passive, ProtocolParams, RecoveredState, Replica, Seq, View};
use crate::store::{LogIndex, RedbOptions, RedbStore, Storage, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Records read per call while recovering.
const READ_CHUNK: usize = 1024;

/// Where the logs live and how hard they are pushed to disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// The directory of the logs: `<home>/wal`.
    pub dir: PathBuf,
    /// Wait for the disk on every group commit. Off, a crash may lose the last
    /// commits (up to 63: redb keeps non-durable commits in memory until a
    /// durable one), a process killed with SIGKILL included; such a log is
    /// marked open until a clean close, and a crash brings its validator
    /// back passive.
    pub fsync: bool,
    /// This swarm ran before: a founder whose log is missing starts passive.
    /// Its logs said so when these options were made, or the caller's own
    /// record says so (a hub started again: its node processes keep their
    /// logs in their own homes).
    pub swarm_ran: bool,
}

impl WalOptions {
    /// The logs of the swarm whose home is `home`, and whether one of them
    /// shows the swarm ran. Read here, before the launch opens any log: an
    /// open log is locked, so a founder whose log is missing could not read
    /// the logs of the peers opened before it.
    pub fn under_home(home: &Path, fsync: bool) -> WalOptions {
        let dir = home.join("wal");
        let swarm_ran = some_log_has_run(&dir, None);
        WalOptions { dir, fsync, swarm_ran }
    }

    /// The same logs, of a swarm its launcher knows ran before.
    pub fn of_a_swarm_that_ran(self, ran: bool) -> WalOptions {
        WalOptions { swarm_ran: self.swarm_ran || ran, ..self }
    }

    pub fn path_of(&self, validator: &str) -> PathBuf {
        self.dir.join(format!("{validator}.redb"))
    }
}

/// What a replica of the application `A` is made of besides its log.
#[derive(Clone)]
pub struct ReplicaSpec<A: Application = Ledger> {
    pub name: String,
    pub keypair: Keypair,
    /// The first epoch's committee.
    pub committee: Committee,
    pub params: ProtocolParams,
    pub genesis: A,
    /// The committee of the epoch this validator joined through a membership
    /// change; none for a member of the first epoch.
    pub joined_in: Option<Committee>,
}

impl<A: Application> ReplicaSpec<A> {
    /// The committee whose member this validator first was.
    fn own_committee(&self) -> &Committee {
        self.joined_in.as_ref().unwrap_or(&self.committee)
    }

    fn identity(&self) -> Option<Identity> {
        let member = self.own_committee().members().iter().find(|m| m.public_key == self.keypair.public_key())?;
        Some(Identity { agent: member.id, public_key: member.public_key, genesis: self.genesis.digest() })
    }

    /// The replica before anything of its log is applied: new in the first
    /// epoch, or joining in the epoch it joined.
    fn new_replica(&self, id: AgentId) -> Replica<A> {
        let (keypair, params, genesis) = (self.keypair.clone(), self.params.clone(), self.genesis.clone());
        match &self.joined_in {
            None => Replica::new(id, keypair, self.committee.clone(), params, genesis),
            Some(joined) => Replica::joining(id, keypair, self.committee.clone(), joined.clone(), params, genesis),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("WAL record {index} of {log} is damaged: {reason}")]
    Damaged { log: String, index: u64, reason: FoldError },
    #[error("WAL of {log} was written {found}, not by this validator's key for this genesis (another swarm used this home?)")]
    Foreign { log: String, found: String },
    #[error("WAL of {log} does not start with its identity")]
    NoIdentity { log: String },
    #[error("validator {0} is not a member of its committee")]
    NotAMember(String),
    #[error("cannot write the open mark {} of a WAL without fsync: {source}", path.display())]
    Mark {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot move the damaged WAL {} aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How a validator came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Recovery {
    /// No log yet: a new validator.
    Fresh,
    /// Rebuilt from its log; `passive` while an earlier loss keeps it from voting.
    Wal { records: u64, view: View, stable_checkpoint: Seq, last_executed: Seq, passive: bool },
    /// The log was unusable: moved to `moved_to`, started from genesis,
    /// passive (it cannot prove what it signed), catching up from its peers.
    Discarded { error: String, moved_to: PathBuf },
    /// A founder's log is missing while its peers' logs show the swarm ran:
    /// started from genesis, passive, catching up from its peers.
    Missing,
    /// Written without fsync and not closed cleanly (the process or the
    /// machine crashed): its last commits may be lost, so it was rebuilt from
    /// what the log holds, passive, and catches up from its peers.
    Unclean { records: u64, stable_checkpoint: Seq, last_executed: Seq },
}

impl Recovery {
    /// The validator cannot prove what it signed before this start.
    pub fn lost_its_record(&self) -> bool {
        matches!(
            self,
            Recovery::Discarded { .. }
                | Recovery::Missing
                | Recovery::Unclean { .. }
                | Recovery::Wal { passive: true, .. }
        )
    }
}

/// Why a swarm refuses to start from its logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error(
        "every validator's write-ahead log is damaged, missing or cut short by a crash without fsync ({}): none can \
         prove what it signed, so the swarm \
         cannot resume without risking equivocation; restore the logs from a backup, or remove the wal directory \
         to start a new swarm from genesis",
        logs.join(", ")
    )]
    AllLogsDamaged { logs: Vec<String> },
}

/// Refuses a launch in which no validator can prove what it signed: passive
/// validators wait for active peers to learn a bound from, and a swarm of
/// only passive ones would either never vote or vote blind. `recoveries`
/// names each validator launched from a log.
pub fn refuse_if_all_logs_lost<'a>(
    recoveries: impl IntoIterator<Item = (&'a str, &'a Recovery)>,
) -> Result<(), RecoveryError> {
    let mut lost = Vec::new();
    for (name, recovery) in recoveries {
        if !recovery.lost_its_record() {
            return Ok(());
        }
        lost.push(name.to_owned());
    }
    if lost.is_empty() {
        return Ok(());
    }
    Err(RecoveryError::AllLogsDamaged { logs: lost })
}

/// A validator's open log; what it holds is its node's
/// [`Node::logged_state`] (the node folds every write it asks for).
pub struct Journal {
    store: RedbStore,
    log: String,
    identity: Identity,
    /// The open mark of a log written without fsync, removed on a clean close.
    unsynced_mark: Option<PathBuf>,
    /// Encoded records of the steps since the last commit.
    pending: Vec<Vec<u8>>,
    /// A checkpoint became stable since the last commit: write a snapshot instead.
    snapshot_due: bool,
    /// Covers every write recorded since the last commit, once it is committed.
    pending_receipt: Receipt,
    /// The last sequence number executed that the log holds, as of the last commit.
    committed_executed: Seq,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("log", &self.log).finish_non_exhaustive()
    }
}

/// Opens the log of `spec.name` under `options.dir` and rebuilds the node
/// (its replica, and the mirror of what the log holds) from it. A damaged log is moved aside (logged, and reported in the
/// [`Recovery`]); only errors that leave no way to keep a log are returned:
/// the file is locked by another process, or the directory is unusable.
pub fn recover<A: Application>(
    options: &WalOptions,
    spec: &ReplicaSpec<A>,
    now: Micros,
) -> Result<(Node<A>, Journal, Recovery), WalError> {
    let identity = spec.identity().ok_or_else(|| WalError::NotAMember(spec.name.clone()))?;
    std::fs::create_dir_all(&options.dir).map_err(|source| StoreError::Home { path: options.dir.clone(), source })?;
    let path = options.path_of(&spec.name);
    let redb = RedbOptions { fsync: options.fsync, ..RedbOptions::default() };
    let missing = !path.exists()
        && spec.joined_in.is_none()
        && (options.swarm_ran || some_log_has_run(&options.dir, Some(&spec.name)));
    let mark = unsynced_mark(&path);
    let unclean = mark.exists();
    if !options.fsync {
        // Durable before the first commit that is not: a crash from here on is seen.
        set_mark(&mark)?;
    }
    let (mut journal, mut state, mut recovery) = match open_and_read(&path, redb, &spec.name, identity) {
        Ok((journal, _, _)) if missing => {
            tracing::error!(
                "the write-ahead log of {} is missing while the swarm ran before (its peers' logs or its record show \
                 it): it starts passive from genesis and catches up from its peers",
                spec.name
            );
            (journal, RecoveredState::default(), Recovery::Missing)
        }
        Ok((journal, state, records)) => {
            let recovery = if records == 0 {
                Recovery::Fresh
            } else {
                Recovery::Wal {
                    records,
                    view: state.view,
                    stable_checkpoint: state.stable_seq(),
                    last_executed: state.last_executed(),
                    passive: state.passive.is_some(),
                }
            };
            (journal, state, recovery)
        }
        Err(WalError::Store(StoreError::Locked { path })) => return Err(StoreError::Locked { path }.into()),
        Err(error) => {
            let moved_to = move_aside(&path)?;
            tracing::error!(
                "{error}; moved it to {} and starting {} from genesis: it catches up from its peers",
                moved_to.display(),
                spec.name
            );
            let (journal, state, _) = open_and_read(&path, redb, &spec.name, identity)?;
            (journal, state, Recovery::Discarded { error: error.to_string(), moved_to })
        }
    };
    let rolled_back = match &recovery {
        Recovery::Wal { records, stable_checkpoint, last_executed, .. } => {
            Some((*records, *stable_checkpoint, *last_executed))
        }
        // Even its identity may have been in the commits the crash lost.
        Recovery::Fresh => Some((0, Seq(0), Seq(0))),
        Recovery::Discarded { .. } | Recovery::Missing | Recovery::Unclean { .. } => None,
    };
    if let (true, Some((records, stable_checkpoint, last_executed))) = (unclean, rolled_back) {
        tracing::error!(
            "the write-ahead log of {} was written without fsync and not closed cleanly (the process or the machine \
             crashed): its last commits may be lost, so it starts passive from what the log holds and catches up \
             from its peers",
            spec.name
        );
        recovery = Recovery::Unclean { records, stable_checkpoint, last_executed };
    }
    if matches!(recovery, Recovery::Discarded { .. } | Recovery::Missing | Recovery::Unclean { .. }) {
        // Durable before the replica runs: a crash while passive must not
        // bring it back as a replica that trusts its new, short log.
        state.passive = Some(Passive::default());
        journal.store.append(&journal.log, &[WalRecord::<A>::Passive(state.passive).encode()])?;
    }
    if options.fsync {
        // Every commit from here on is durable, the passive record above included.
        clear_mark(&mark);
    } else {
        journal.unsynced_mark = Some(mark);
    }
    let replica = spec.new_replica(identity.agent).restored(state.clone(), now);
    Ok((Node::logged(replica, state), journal, recovery))
}

/// Whether a validator's log under `dir` (but `except`'s) holds more than
/// its identity: the swarm has run, so a founder without a log lost it. A
/// log open elsewhere (locked) cannot tell.
fn some_log_has_run(dir: &Path, except: Option<&str>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.filter_map(Result::ok).any(|entry| {
        let path = entry.path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_owned();
        path.extension().is_some_and(|ext| ext == "redb")
            && except != Some(name.as_str())
            && RedbStore::open_file(&path, RedbOptions::default())
                .ok()
                .and_then(|store| store.read_from(&name, LogIndex(0), 2).ok())
                .is_some_and(|records| records.len() > 1)
    })
}

/// Reads a whole log back: its state and how many records it held.
pub fn read_state<A: Application>(path: &Path, log: &str) -> Result<(Identity, RecoveredState<A>), WalError> {
    let store = RedbStore::open_file(path, RedbOptions::default())?;
    let (identity, state, _) = fold_log(&store, log, None)?;
    identity.map(|identity| (identity, state)).ok_or_else(|| WalError::NoIdentity { log: log.to_owned() })
}

fn open_and_read<A: Application>(
    path: &Path,
    options: RedbOptions,
    log: &str,
    identity: Identity,
) -> Result<(Journal, RecoveredState<A>, u64), WalError> {
    let mut store = RedbStore::open_file(path, options)?;
    let (_, state, records) = fold_log(&store, log, Some(identity))?;
    if records == 0 {
        store.append(log, &[WalRecord::<A>::Identity(identity).encode()])?;
    }
    let committed_executed = state.last_executed();
    let journal = Journal {
        store,
        log: log.to_owned(),
        identity,
        unsynced_mark: None,
        pending: Vec::new(),
        snapshot_due: false,
        pending_receipt: Receipt::default(),
        committed_executed,
    };
    Ok((journal, state, records))
}

/// Folds every record of `log`; with `expected`, refuses a log of another identity.
fn fold_log<A: Application>(
    store: &RedbStore,
    log: &str,
    expected: Option<Identity>,
) -> Result<(Option<Identity>, RecoveredState<A>, u64), WalError> {
    let mut state = RecoveredState::default();
    let mut identity = None;
    let mut count = 0u64;
    let mut from = LogIndex(0);
    loop {
        let chunk = store.read_from(log, from, READ_CHUNK)?;
        let done = chunk.len() < READ_CHUNK;
        for (index, bytes) in chunk {
            let damaged = |reason| WalError::Damaged { log: log.to_owned(), index: index.0, reason };
            let record = WalRecord::<A>::decode(&bytes).map_err(damaged)?;
            let found = match &record {
                WalRecord::Identity(found) | WalRecord::Snapshot { identity: found, .. } => Some(*found),
                _ => None,
            };
            if let Some(found) = found {
                if expected.is_some_and(|expected| expected != found) {
                    let key = found.public_key.to_string();
                    let genesis = found.genesis.to_string();
                    let found = format!("by key {}… for genesis {}…", &key[..10], &genesis[..8]);
                    return Err(WalError::Foreign { log: log.to_owned(), found });
                }
                identity = Some(found);
            } else if identity.is_none() {
                return Err(WalError::NoIdentity { log: log.to_owned() });
            }
            record.fold_into(&mut state).map_err(damaged)?;
            count += 1;
            from = LogIndex(index.0 + 1);
        }
        if done {
            return Ok((identity, state, count));
        }
    }
}

/// The mark of `<file>` open without fsync: `<file>.unsynced`.
fn unsynced_mark(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".unsynced");
    PathBuf::from(name)
}

/// Creates the mark and makes it durable (the file and its directory entry).
fn set_mark(mark: &Path) -> Result<(), WalError> {
    let durable = || -> std::io::Result<()> {
        std::fs::File::create(mark)?.sync_all()?;
        sync_directory_of(mark)
    };
    durable().map_err(|source| WalError::Mark { path: mark.to_owned(), source })
}

/// Removes the mark once every commit is durable; a mark left behind only
/// makes the next start passive, so a failure is logged, not returned.
fn clear_mark(mark: &Path) {
    let removed = match std::fs::remove_file(mark) {
        Ok(()) => sync_directory_of(mark),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    };
    if let Err(error) = removed {
        tracing::warn!(mark = %mark.display(), %error, "cannot remove the write-ahead log's open mark; the next start is passive");
    }
}

fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Renames a damaged log to `<file>.damaged-<n>`, keeping earlier ones.
fn move_aside(path: &Path) -> Result<PathBuf, WalError> {
    let mut n = 1u32;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".damaged-{n}"));
        let target = PathBuf::from(name);
        if !target.exists() {
            return match std::fs::rename(path, &target) {
                Ok(()) => Ok(target),
                Err(source) => Err(WalError::MoveAside { path: path.to_owned(), source }),
            };
        }
        n += 1;
    }
}

impl Journal {
    /// Makes one step's write durable at once; the receipt opens its outbox.
    pub fn persist<A: Application>(
        &mut self,
        write: LogWrite<A>,
        logged: &RecoveredState<A>,
    ) -> Result<Receipt, WalError> {
        self.record(write);
        self.commit(logged)
    }

    /// Takes in what one step asks to persist; nothing is durable before [`Journal::commit`].
    pub fn record<A: Application>(&mut self, write: LogWrite<A>) {
        let (records, snapshot, receipt) = write.into_parts();
        self.pending_receipt = self.pending_receipt.and(receipt);
        self.snapshot_due |= snapshot;
        if !self.snapshot_due {
            self.pending.extend(records.iter().map(WalRecord::encode));
        }
    }

    /// Writes everything recorded since the last commit as one group commit;
    /// after a stable checkpoint, one snapshot of `logged` (the node's
    /// [`Node::logged_state`], which every recorded write is folded into)
    /// that replaces the whole log. The receipt covers every recorded write.
    pub fn commit<A: Application>(&mut self, logged: &RecoveredState<A>) -> Result<Receipt, WalError> {
        let _timed = crate::observe::WalCommitTimer::start();
        let records = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.snapshot_due) {
            let snapshot = WalRecord::Snapshot { identity: self.identity, state: logged.clone() };
            let at = self.store.append(&self.log, &[snapshot.encode()])?;
            self.store.truncate_before(&self.log, at)?;
        } else if !records.is_empty() {
            self.store.append(&self.log, &records)?;
        }
        self.committed_executed = logged.last_executed();
        Ok(self.pending_receipt)
    }

    /// How far a crash now would leave the replica's execution: the last
    /// sequence number executed that the committed log holds.
    pub fn committed_executed(&self) -> Seq {
        self.committed_executed
    }
}

impl Drop for Journal {
    /// A clean close: every commit made durable, then the open mark removed.
    fn drop(&mut self) {
        let Some(mark) = self.unsynced_mark.take() else { return };
        match self.store.sync() {
            Ok(()) => clear_mark(&mark),
            Err(error) => tracing::warn!(log = %self.log, %error, "final sync of the write-ahead log failed"),
        }
    }
}
