//! Recovery of replicas from their logs, on a committee of four pure nodes
//! whose messages are delivered synchronously and whose every step is
//! persisted before its outbox is sent, as the validator actor does.

use super::*;
use crate::app::{SignedTx, SwarmApp};
use crate::crypto::Keypair;
use crate::ledger::Ledger;
use crate::node::{Arrival, Node};
use crate::protocol::{
    AgentId, Batch, ClientId, Epoch, Evidence, Member, MembershipChange, Message, Output, Request,
    SignedMembershipChange, SignedMessage,
};
use crate::workload::{Workload, WorkloadSpec};
use std::collections::VecDeque;
use std::sync::Arc;

const N: usize = 4;
const BATCH: usize = 8;

struct Cluster {
    _home: tempfile::TempDir,
    options: WalOptions,
    /// Signs membership changes.
    operator: Keypair,
    specs: Vec<ReplicaSpec<SwarmApp>>,
    replicas: Vec<Node<SwarmApp>>,
    journals: Vec<Option<Journal>>,
    /// Outputs not yet delivered: (from, message, to-or-everyone).
    in_flight: VecDeque<(usize, Arc<SignedMessage>, Option<AgentId>)>,
    evidence: Vec<(usize, Evidence)>,
    /// Replicas whose outgoing messages are lost.
    muted: Vec<bool>,
    now: u64,
}

fn params() -> ProtocolParams {
    ProtocolParams {
        checkpoint_interval: 4,
        log_window: 8,
        max_batch_size: BATCH,
        max_in_flight_batches: 4,
        ..ProtocolParams::default()
    }
}

fn workload(transactions: usize) -> Workload {
    Workload::generate(&WorkloadSpec {
        seed: 5,
        accounts: 16,
        transactions,
        initial_balance: 1_000_000,
        max_amount: 100,
        overdraft_ratio: 0.0,
    })
}

impl Cluster {
    fn new(genesis: &Ledger) -> Cluster {
        let home = tempfile::tempdir().unwrap();
        let options = WalOptions::under_home(home.path(), false);
        let keys: Vec<Keypair> = (0..N).map(|i| Keypair::from_seed([i as u8 + 7; 32])).collect();
        let public: Vec<_> = keys.iter().map(Keypair::public_key).collect();
        let operator = Keypair::from_seed([99; 32]);
        let committee = Committee::numbered(Epoch(0), &public, "v", None).unwrap().with_operator(operator.public_key());
        let specs: Vec<ReplicaSpec<SwarmApp>> = keys
            .iter()
            .enumerate()
            .map(|(i, keypair)| ReplicaSpec {
                name: format!("v{}", i + 1),
                keypair: keypair.clone(),
                committee: committee.clone(),
                params: params(),
                genesis: SwarmApp::new(genesis.clone()),
                joined_in: None,
            })
            .collect();
        let mut cluster = Cluster {
            _home: home,
            options,
            operator,
            specs,
            replicas: Vec::new(),
            journals: Vec::new(),
            in_flight: VecDeque::new(),
            evidence: Vec::new(),
            muted: vec![false; N],
            now: 1,
        };
        for i in 0..N {
            let (replica, journal, recovery) = recover(&cluster.options, &cluster.specs[i], Micros(0)).unwrap();
            assert_eq!(recovery, Recovery::Fresh);
            cluster.replicas.push(replica);
            cluster.journals.push(Some(journal));
        }
        cluster
    }

    fn step(&mut self, i: usize, arrival: Arrival) -> Vec<Output> {
        self.now += 10;
        let node = &mut self.replicas[i];
        let ready = node.step(Micros(self.now), arrival);
        let journal = self.journals[i].as_mut().expect("replica is running");
        let logged = node.logged_state().expect("a recovered node is logged");
        let receipt = journal.persist(ready.write, logged).unwrap();
        let outputs = ready.outbox.release(&receipt).expect("the receipt of the step's own write opens its outbox");
        for output in &outputs {
            match output {
                Output::Broadcast(m) if !self.muted[i] => self.in_flight.push_back((i, m.clone(), None)),
                Output::SendTo(to, m) if !self.muted[i] => self.in_flight.push_back((i, m.clone(), Some(*to))),
                Output::Evidence(e) => self.evidence.push((i, e.clone())),
                _ => {}
            }
        }
        outputs
    }

    fn deliver_all(&mut self) {
        while let Some((from, message, to)) = self.in_flight.pop_front() {
            for i in (0..self.replicas.len()).filter(|&i| i != from && to.is_none_or(|to| to.0 as usize == i)) {
                if self.journals[i].is_some() {
                    self.step(i, Arrival::message(message.clone()));
                }
            }
        }
    }

    fn submit(&mut self, transfers: &[SignedTx]) {
        let requests: Vec<Request> =
            transfers.iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect();
        for i in 0..self.replicas.len() {
            if self.journals[i].is_some() {
                self.step(i, Arrival::Requests(requests.clone()));
            }
        }
        self.deliver_all();
    }

    /// Hands `transfers` to the primary alone and returns the PRE-PREPARE it signs; nothing is delivered.
    fn pre_prepare_of(&mut self, transfers: &[SignedTx]) -> Arc<SignedMessage> {
        let requests: Vec<Request> =
            transfers.iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect();
        let outputs = self.step(0, Arrival::Requests(requests));
        let pre_prepare = outputs.iter().find_map(|o| match o {
            Output::Broadcast(m) if matches!(m.message, Message::PrePrepare { .. }) => Some(m.clone()),
            _ => None,
        });
        self.in_flight.clear();
        pre_prepare.expect("the primary cuts a batch at once")
    }

    /// Lets `rounds` retransmit intervals pass, every replica ticking once in each.
    fn tick(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.now += 300_000;
            for i in 0..self.replicas.len() {
                self.step(i, Arrival::Tick);
            }
            self.deliver_all();
        }
    }

    /// Hands `change`, signed by the operator, to every replica and runs
    /// until it has taken effect; the committee it leads to.
    fn change_membership(&mut self, change: MembershipChange) -> Committee {
        let next = change.apply(self.replicas[0].replica().committee()).unwrap();
        let signed = Arc::new(SignedMembershipChange::sign(change, &self.operator));
        for i in 0..self.replicas.len() {
            self.step(i, Arrival::Membership(signed.clone()));
        }
        self.deliver_all();
        self.tick(2);
        next
    }

    /// Starts a validator from `spec`'s log (a new one: it then catches up).
    fn start(&mut self, spec: ReplicaSpec<SwarmApp>) -> Recovery {
        let (replica, journal, recovery) = recover(&self.options, &spec, Micros(self.now)).unwrap();
        self.specs.push(spec);
        self.replicas.push(replica);
        self.journals.push(Some(journal));
        self.muted.push(false);
        recovery
    }

    /// Closes replica `i`'s log and rebuilds it from the file, as after a crash.
    fn crash_and_recover(&mut self, i: usize) -> Recovery {
        self.journals[i] = None;
        let (replica, journal, recovery) = recover(&self.options, &self.specs[i], Micros(self.now)).unwrap();
        self.replicas[i] = replica;
        self.journals[i] = Some(journal);
        recovery
    }
}

/// The digest of the built-in application a validator runs (its ledger and memory).
fn digest_of(replica: &Replica<SwarmApp>) -> crate::crypto::Digest {
    replica.app().digest()
}

#[test]
fn every_replica_rebuilt_from_its_log_holds_the_ledger_view_and_checkpoint_it_had() {
    let load = workload(BATCH * 14);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    for chunk in load.transfers.chunks(BATCH) {
        cluster.submit(chunk);
    }
    let before: Vec<_> = cluster
        .replicas
        .iter()
        .map(Node::replica)
        .map(|r| (digest_of(r), r.last_executed(), r.view(), r.stable_checkpoint().seq, r.stats().txs_committed))
        .collect();
    assert!(before[0].1 .0 >= 10, "the run executed {:?}", before[0].1);
    assert!(before[0].3 .0 >= 8, "checkpoints became stable: {:?}", before[0].3);
    for (i, before) in before.iter().enumerate() {
        let recovery = cluster.crash_and_recover(i);
        let Recovery::Wal { last_executed, stable_checkpoint, .. } = recovery else {
            panic!("replica {i} did not recover from its log: {recovery:?}");
        };
        let replica = cluster.replicas[i].replica();
        assert_eq!((last_executed, stable_checkpoint), (before.1, before.3), "replica {i}");
        assert_eq!(digest_of(replica), before.0, "replica {i}");
        assert_eq!(replica.last_executed(), before.1, "replica {i}");
        assert_eq!(replica.view(), before.2, "replica {i}");
        assert_eq!(replica.stable_checkpoint().seq, before.3, "replica {i}");
    }
    // The log was cut at the stable checkpoint: a snapshot and what followed it.
    let journal = cluster.journals[0].as_ref().unwrap();
    let records = journal.store.read_from(&journal.log, LogIndex(0), 1000).unwrap();
    assert!(records.len() < 40, "{} records left after truncation", records.len());
    assert!(matches!(WalRecord::<SwarmApp>::decode(&records[0].1), Ok(WalRecord::Snapshot { .. })));

    // The rebuilt committee goes on committing from where it was.
    let more = workload(BATCH * 16);
    for chunk in more.transfers[BATCH * 14..].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let first = (digest_of(cluster.replicas[0].replica()), cluster.replicas[0].replica().last_executed());
    assert!(first.1 > before[0].1, "nothing executed after the restart");
    assert!(cluster.replicas.iter().map(Node::replica).all(|r| (digest_of(r), r.last_executed()) == first));
    assert!(cluster.evidence.is_empty(), "{:?}", cluster.evidence);
}

#[test]
fn a_restarted_primary_never_assigns_a_sequence_number_it_already_assigned() {
    let load = workload(BATCH * 3);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers[..BATCH]);
    // The primary proposes a batch nobody receives, then crashes.
    cluster.muted[0] = true;
    let requests: Vec<Request> =
        load.transfers[BATCH..BATCH * 2].iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect();
    let lost = cluster.step(0, Arrival::Requests(requests));
    let (lost_seq, lost_digest) = lost
        .iter()
        .find_map(|o| match o {
            Output::Broadcast(m) => match m.message {
                Message::PrePrepare { seq, digest, .. } => Some((seq, digest)),
                _ => None,
            },
            _ => None,
        })
        .expect("the primary proposed");
    cluster.in_flight.clear();
    cluster.muted[0] = false;
    cluster.crash_and_recover(0);

    let requests: Vec<Request> =
        load.transfers[BATCH * 2..].iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect();
    let outputs = cluster.step(0, Arrival::Requests(requests));
    // Its first progress check after the restart sends the lost PRE-PREPARE
    // again, as it was; every new batch takes a new sequence number.
    let proposed: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => match m.message {
                Message::PrePrepare { seq, digest, .. } if digest != lost_digest => Some(seq),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(!proposed.is_empty(), "the restarted primary proposes");
    assert!(proposed.iter().all(|seq| *seq > lost_seq), "{proposed:?} reuses {lost_seq:?}");
}

#[test]
fn a_restarted_backup_reports_a_conflicting_pre_prepare_instead_of_preparing_it() {
    let load = workload(BATCH * 2);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    // Backup 1 receives the pre-prepare and prepares it; nothing else arrives.
    let pre_prepare = cluster.pre_prepare_of(&load.transfers[..BATCH]);
    cluster.step(1, Arrival::message(pre_prepare.clone()));
    cluster.in_flight.clear();
    cluster.crash_and_recover(1);

    // An equivocating primary now sends another batch for the same slot.
    let Message::PrePrepare { view, seq, .. } = pre_prepare.message else { unreachable!() };
    let other = Arc::new(Batch::of(
        load.transfers[BATCH..].iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect(),
    ));
    let other_digest = other.digest();
    let message = Message::PrePrepare { view, seq, digest: other_digest, batch: other };
    let conflicting = Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &cluster.specs[0].keypair));
    let outputs = cluster.step(1, Arrival::message(conflicting));
    // (Its first progress check resends its PREPARE of the first batch, as it was.)
    let prepares = outputs
        .iter()
        .filter(|o| matches!(o, Output::Broadcast(m) if matches!(m.message, Message::Prepare { digest, .. } if digest == other_digest)))
        .count();
    assert_eq!(prepares, 0, "the restarted backup prepared a second batch for {seq:?}");
    assert!(cluster.evidence.iter().any(|(at, e)| *at == 1 && matches!(e, Evidence::Equivocation { .. })));
}

#[test]
fn a_damaged_log_is_moved_aside_and_the_replica_starts_from_genesis_then_catches_up() {
    let load = workload(BATCH * 12);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    for chunk in load.transfers[..BATCH * 10].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let journal = cluster.journals[2].as_mut().unwrap();
    let last = journal.store.append(&journal.log, &[]).unwrap();
    let mut raw = journal.store.raw_record(&journal.log, last.0).unwrap();
    let end = raw.len() - 1;
    raw[end] ^= 0xff;
    journal.store.write_raw_record(&journal.log, last.0, &raw).unwrap();

    let recovery = cluster.crash_and_recover(2);
    let Recovery::Discarded { error, moved_to } = recovery else { panic!("expected a discarded log: {recovery:?}") };
    assert!(error.contains("checksum mismatch") && error.contains("v3"), "{error}");
    assert!(moved_to.exists(), "{moved_to:?}");
    assert_eq!(cluster.replicas[2].replica().last_executed(), crate::protocol::Seq(0));

    // The others go on; the restarted replica catches up by state transfer.
    for chunk in load.transfers[BATCH * 10..].chunks(BATCH) {
        cluster.submit(chunk);
    }
    for _ in 0..3 {
        cluster.now += 1_000_000;
        for i in 0..N {
            cluster.step(i, Arrival::Tick);
        }
        cluster.deliver_all();
    }
    let expected = digest_of(cluster.replicas[0].replica());
    assert_eq!(digest_of(cluster.replicas[2].replica()), expected);
    // A second restart recovers from the new log, not from genesis.
    assert!(matches!(cluster.crash_and_recover(2), Recovery::Wal { .. }));
    assert_eq!(digest_of(cluster.replicas[2].replica()), expected);
}

/// Where a replica is: (ledger, last executed, view, stable checkpoint, epoch, member).
fn position(replica: &Replica<SwarmApp>) -> (crate::crypto::Digest, Seq, View, Seq, Epoch, bool) {
    let epoch = replica.committee().epoch();
    let member = replica.committee().contains(replica.id()) && !replica.is_retired();
    (digest_of(replica), replica.last_executed(), replica.view(), replica.stable_checkpoint().seq, epoch, member)
}

#[test]
fn a_validator_that_joined_later_rebuilds_from_its_log_in_the_epoch_it_joined() {
    let load = workload(BATCH * 12);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    for chunk in load.transfers[..BATCH * 4].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let key = Keypair::from_seed([42; 32]);
    let member = Member { id: AgentId(N as u32), name: "v5".into(), public_key: key.public_key() };
    let add = MembershipChange { from_epoch: Epoch(0), add: vec![member], remove: Vec::new(), f: None };
    let joined = cluster.change_membership(add);
    assert!(
        cluster.replicas.iter().map(Node::replica).all(|r| r.committee().epoch() == Epoch(1)),
        "the change took effect"
    );

    let spec = ReplicaSpec { name: "v5".into(), keypair: key, joined_in: Some(joined), ..cluster.specs[0].clone() };
    assert_eq!(cluster.start(spec.clone()), Recovery::Fresh);
    cluster.tick(3);
    let caught_up = position(cluster.replicas[N].replica());
    assert_eq!(caught_up.0, digest_of(cluster.replicas[0].replica()), "the joiner caught up by state transfer");
    assert!(caught_up.5, "the joiner runs as a member: {caught_up:?}");

    // Right after its state transfer, its stable checkpoint is the one the change took effect at.
    let recovery = cluster.crash_and_recover(N);
    assert!(matches!(recovery, Recovery::Wal { .. }), "{recovery:?}");
    assert_eq!(position(cluster.replicas[N].replica()), caught_up);

    // It takes part: what follows commits everywhere, then it rebuilds from its log again.
    for chunk in load.transfers[BATCH * 4..].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let before = position(cluster.replicas[N].replica());
    assert!(before.1 > caught_up.1 && before.3 > caught_up.3, "{before:?} after {caught_up:?}");
    assert!(cluster.replicas.iter().map(Node::replica).all(|r| position(r) == before), "the ledgers agree");
    let recovery = cluster.crash_and_recover(N);
    assert!(matches!(recovery, Recovery::Wal { .. }), "{recovery:?}");
    assert_eq!(position(cluster.replicas[N].replica()), before);
    assert!(cluster.evidence.is_empty(), "{:?}", cluster.evidence);

    // The log is this key's: another key joining under the same name does not replay it.
    cluster.journals[N] = None;
    let other = Keypair::from_seed([43; 32]);
    let member = Member { id: AgentId(N as u32), name: "v5".into(), public_key: other.public_key() };
    let add = MembershipChange { from_epoch: Epoch(0), add: vec![member], remove: Vec::new(), f: None };
    let joined = add.apply(&cluster.specs[0].committee).unwrap();
    let impostor = ReplicaSpec { keypair: other, joined_in: Some(joined), ..spec };
    let (replica, _, recovery) = recover(&cluster.options, &impostor, Micros(0)).unwrap();
    let Recovery::Discarded { error, .. } = recovery else { panic!("replayed another key's log: {recovery:?}") };
    assert!(error.contains("not by this validator's key"), "{error}");
    assert_eq!(replica.replica().last_executed(), Seq(0));
}

/// A founder that changed view in epoch 0 and then switched to epoch 1
/// (which starts in view 0) comes back from its log in epoch 1's view 0, not
/// in the view its log's last NEW-VIEW names, and takes part.
#[test]
fn a_founder_rebuilt_after_an_epoch_change_is_in_the_new_epochs_view_not_the_old_one() {
    let load = workload(BATCH * 8);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers[..BATCH]);
    for i in 0..N {
        cluster.step(i, Arrival::ForceViewChange);
    }
    cluster.deliver_all();
    assert!(cluster.replicas.iter().all(|node| node.replica().view() == View(1)));
    cluster.submit(&load.transfers[BATCH..BATCH * 2]);
    let key = Keypair::from_seed([42; 32]);
    let member = Member { id: AgentId(N as u32), name: "v5".into(), public_key: key.public_key() };
    cluster.change_membership(MembershipChange {
        from_epoch: Epoch(0),
        add: vec![member],
        remove: Vec::new(),
        f: None,
    });
    let before = position(cluster.replicas[1].replica());
    assert_eq!((before.2, before.4), (View(0), Epoch(1)), "{before:?}");

    let recovery = cluster.crash_and_recover(1);
    assert!(matches!(recovery, Recovery::Wal { .. }), "{recovery:?}");
    assert_eq!(position(cluster.replicas[1].replica()), before);
    // The new member is not started: the four founders are a quorum of five and must all take part.
    for chunk in load.transfers[BATCH * 2..].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let after = position(cluster.replicas[1].replica());
    assert!(after.1 > before.1, "{after:?} after {before:?}");
    assert!(cluster.replicas.iter().map(Node::replica).all(|r| position(r) == after), "the ledgers agree");
    assert!(cluster.evidence.is_empty(), "{:?}", cluster.evidence);
}

#[test]
fn a_log_of_another_genesis_is_not_replayed() {
    let load = workload(BATCH);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers);
    cluster.journals[1] = None;
    let mut other = cluster.specs[1].clone();
    other.genesis = SwarmApp::new(Ledger::with_genesis(&load.genesis[1..]).unwrap());
    let (replica, _, recovery) = recover(&cluster.options, &other, Micros(0)).unwrap();
    let Recovery::Discarded { error, .. } = recovery else { panic!("replayed another's log: {recovery:?}") };
    let genesis = SwarmApp::new(genesis).digest().to_string();
    assert!(error.contains(&format!("for genesis {}…, not by this validator's key", &genesis[..8])), "{error}");
    assert_eq!(replica.replica().last_executed(), crate::protocol::Seq(0));
}

#[test]
fn every_record_survives_encoding_and_garbage_is_an_error_not_a_panic() {
    let record = WalRecord::<SwarmApp>::Executed {
        seq: crate::protocol::Seq(3),
        digest: crate::crypto::Digest([1; 32]),
        batch: Some(Arc::new(Batch::default())),
    };
    assert_eq!(WalRecord::decode(&record.encode()), Ok(record));
    for garbage in [&[][..], &[1][..], &[2, 0, 0][..], &[1, 250, 250, 250, 250, 250, 1][..]] {
        assert!(WalRecord::<SwarmApp>::decode(garbage).is_err(), "{garbage:?}");
    }
}

/// A snapshot record keeps the built-in application as its snapshot chunks:
/// memory entries come back whole, and a chunk that does not decode makes
/// the record damaged (an error), never a different state.
#[test]
fn a_snapshot_record_keeps_the_memory_and_refuses_a_chunk_that_does_not_decode() {
    use crate::app::{MemoryOp, Op, Tx};
    use crate::protocol::RecoveredCheckpoint;
    let writer = Keypair::from_seed([3; 32]);
    let from = crate::ledger::AccountId(writer.public_key());
    let op = MemoryOp::Put { namespace: "ns".into(), key: "plan".into(), value: b"1".to_vec(), ttl: Some(9) };
    let tx = Tx { id: crate::ledger::TxId([1; 16]), from, nonce: 0, op: Op::Memory(op) };
    let mut app = SwarmApp::new(Ledger::with_genesis(&workload(1).genesis).unwrap());
    app.execute(Seq(1), &[Request { client: ClientId(0), tx: tx.sign(&writer) }]);
    assert!(app.memory().get("ns", "plan").is_some());
    let stable = RecoveredCheckpoint {
        seq: Seq(4),
        state_digest: crate::crypto::Digest([2; 32]),
        proof: Vec::new(),
        app: Arc::new(app.clone()),
        membership: Arc::default(),
    };
    let state = RecoveredState { stable: Some(stable), ..RecoveredState::default() };
    let identity = Identity { agent: AgentId(0), public_key: writer.public_key(), genesis: app.digest() };
    let record = WalRecord::Snapshot { identity, state };
    let encoded = record.encode();
    assert_eq!(WalRecord::<SwarmApp>::decode(&encoded), Ok(record));
    // One letter of the memory's header chunk changed: the chunks no longer restore a memory.
    let domain = b"bftswarm/memory-header/v1";
    let at = encoded.windows(domain.len()).position(|window| window == domain).expect("the memory's header chunk");
    let mut damaged = encoded.clone();
    damaged[at] = b'c';
    assert!(matches!(WalRecord::<SwarmApp>::decode(&damaged), Err(FoldError::Undecodable(_))));
}

/// Backup 1 prepared a batch, then its log was damaged (its last record cut
/// mid-record). Restarted, it cannot prove what it signed: it rejoins
/// passive, so an equivocating primary's second batch for that slot gets no
/// PREPARE from it (which would convict an honest validator), it catches up
/// without voting, the ledgers agree, and once past every slot it could have
/// signed it votes again.
#[test]
fn a_validator_whose_log_was_truncated_rejoins_passive_and_is_never_convicted() {
    let load = workload(BATCH * 16);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    for chunk in load.transfers[..BATCH * 3].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let pre_prepare = cluster.pre_prepare_of(&load.transfers[BATCH * 3..BATCH * 4]);
    let prepared = cluster.step(1, Arrival::message(pre_prepare.clone()));
    assert!(prepared.iter().any(|o| matches!(o, Output::Broadcast(m) if matches!(m.message, Message::Prepare { .. }))));
    cluster.in_flight.clear();

    let journal = cluster.journals[1].as_mut().unwrap();
    let last = journal.store.append(&journal.log, &[]).unwrap();
    let mut raw = journal.store.raw_record(&journal.log, last.0).unwrap();
    raw.truncate(raw.len() / 2);
    journal.store.write_raw_record(&journal.log, last.0, &raw).unwrap();
    let recovery = cluster.crash_and_recover(1);
    assert!(matches!(recovery, Recovery::Discarded { .. }), "{recovery:?}");
    assert!(cluster.replicas[1].replica().is_passive());

    let (seq, votes) = votes_for_another_batch(&mut cluster, &pre_prepare, &load.transfers[BATCH * 5..BATCH * 6]);
    assert_eq!(votes, 0, "the validator that lost its log voted again in {seq:?}");
    // A crash while passive keeps it passive: the log says so.
    assert!(matches!(cluster.crash_and_recover(1), Recovery::Wal { passive: true, .. }));
    assert!(cluster.replicas[1].replica().is_passive());

    // The honest primary goes on (its batch for that slot reaches everyone).
    cluster.in_flight.push_back((0, pre_prepare, None));
    cluster.deliver_all();
    for chunk in load.transfers[BATCH * 6..].chunks(BATCH) {
        cluster.submit(chunk);
    }
    cluster.tick(3);
    let expected = digest_of(cluster.replicas[0].replica());
    for i in 0..N {
        assert_eq!(digest_of(cluster.replicas[i].replica()), expected, "replica {i}");
    }
    assert!(cluster.evidence.iter().all(|(_, e)| e.accused() != AgentId(1)), "{:?}", cluster.evidence);
    assert!(
        !cluster.replicas[1].replica().is_passive(),
        "still passive at {:?}",
        cluster.replicas[1].replica().stable_checkpoint().seq
    );
    assert!(cluster.replicas[1].replica().stats().votes_withheld_passive > 0);
}

/// With every log damaged no validator can prove what it signed: the swarm
/// refuses to start, with an error naming the logs, rather than resetting
/// to genesis as if the logs were intact.
#[test]
fn a_swarm_whose_every_log_is_damaged_refuses_to_start() {
    let lost = |name: &str| Recovery::Discarded { error: format!("{name} damaged"), moved_to: PathBuf::from(name) };
    let (a, b) = (lost("v1"), Recovery::Missing);
    let intact =
        Recovery::Wal { records: 3, view: View(0), stable_checkpoint: Seq(0), last_executed: Seq(1), passive: false };
    let error = refuse_if_all_logs_lost([("v1", &a), ("v2", &b)]).unwrap_err();
    assert_eq!(error, RecoveryError::AllLogsDamaged { logs: vec!["v1".into(), "v2".into()] });
    assert!(error.to_string().contains("v1, v2") && error.to_string().contains("restore the logs"), "{error}");
    assert_eq!(refuse_if_all_logs_lost([("v1", &a), ("v2", &b), ("v3", &intact)]), Ok(()));
    assert_eq!(refuse_if_all_logs_lost([("v1", &Recovery::Fresh)]), Ok(()));
}

/// Without fsync, a crash keeps only what redb made durable: the log comes
/// back shorter than what the validator signed, and looks intact. The open
/// mark tells: that validator comes back passive with what its log holds,
/// and does not vote again in a slot it voted in.
#[test]
fn a_log_without_fsync_that_was_not_closed_cleanly_comes_back_passive() {
    let load = workload(BATCH * 6);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers[..BATCH]);
    // The disk as a SIGKILL (or a machine crash) now would leave it.
    let path = cluster.options.path_of("v2");
    let files = [path.clone(), unsynced_mark(&path)];
    let disk: Vec<_> =
        files.iter().filter(|file| file.exists()).map(|file| (file, std::fs::read(file).unwrap())).collect();
    for chunk in load.transfers[BATCH..BATCH * 3].chunks(BATCH) {
        cluster.submit(chunk);
    }
    let pre_prepare = cluster.pre_prepare_of(&load.transfers[BATCH * 3..BATCH * 4]);
    let voted = cluster.step(1, Arrival::message(pre_prepare.clone()));
    assert!(voted.iter().any(|o| matches!(o, Output::Broadcast(m) if matches!(m.message, Message::Prepare { .. }))));
    cluster.in_flight.clear();

    // The process is gone; what it committed after the moment above never reached the disk.
    cluster.journals[1] = None;
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    for (file, bytes) in &disk {
        std::fs::write(file, bytes).unwrap();
    }
    let (replica, journal, recovery) = recover(&cluster.options, &cluster.specs[1], Micros(cluster.now)).unwrap();
    assert!(matches!(recovery, Recovery::Unclean { .. }), "{recovery:?}");
    assert!(recovery.lost_its_record());
    assert!(replica.replica().is_passive());
    (cluster.replicas[1], cluster.journals[1]) = (replica, Some(journal));

    let (seq, votes) = votes_for_another_batch(&mut cluster, &pre_prepare, &load.transfers[BATCH * 5..]);
    assert_eq!(votes, 0, "the validator whose log rolled back voted again in {seq:?}");

    // A clean close makes every commit durable and removes the mark: the next start is not passive.
    cluster.journals[0] = None;
    assert!(!unsynced_mark(&cluster.options.path_of("v1")).exists());
    let (replica, _, recovery) = recover(&cluster.options, &cluster.specs[0], Micros(cluster.now)).unwrap();
    assert!(matches!(recovery, Recovery::Wal { passive: false, .. }), "{recovery:?}");
    assert!(!replica.replica().is_passive());
}

/// A passive validator learns its bound from its peers, and its log keeps
/// it: restarted, it resumes with the same bound instead of waiting to hear
/// a quorum again. Found by mutation testing: restoring the passive state
/// without its bound survived every test.
#[test]
fn a_passive_validator_restarted_keeps_the_bound_it_learned() {
    let load = workload(BATCH * 3);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers[..BATCH]);
    let journal = cluster.journals[1].as_mut().unwrap();
    let last = journal.store.append(&journal.log, &[]).unwrap();
    let mut raw = journal.store.raw_record(&journal.log, last.0).unwrap();
    raw.truncate(raw.len() / 2);
    journal.store.write_raw_record(&journal.log, last.0, &raw).unwrap();
    assert!(matches!(cluster.crash_and_recover(1), Recovery::Discarded { .. }));
    assert_eq!(cluster.replicas[1].replica().passive(), Some(Passive { bound: None }));

    cluster.submit(&load.transfers[BATCH..BATCH * 2]);
    let learned = cluster.replicas[1].replica().passive();
    assert!(matches!(learned, Some(Passive { bound: Some(_) })), "no bound learned: {learned:?}");
    assert!(matches!(cluster.crash_and_recover(1), Recovery::Wal { passive: true, .. }));
    assert_eq!(cluster.replicas[1].replica().passive(), learned);
}

/// A backup restarted after executing seq 1 (above its stable checkpoint)
/// still holds the slot's prepared certificate and the digest it executed:
/// its VIEW-CHANGE carries the certificate, and it prepares the same batch
/// again when the new view re-proposes it. Found by mutation testing:
/// restoring the slot without either survived every test.
#[test]
fn a_restarted_backup_carries_its_prepared_certificate_into_the_next_view() {
    let load = workload(BATCH);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers);
    assert_eq!(
        (cluster.replicas[2].replica().last_executed(), cluster.replicas[2].replica().stable_checkpoint().seq),
        (Seq(1), Seq(0))
    );
    assert!(matches!(cluster.crash_and_recover(2), Recovery::Wal { passive: false, .. }));
    cluster.in_flight.clear();

    let sign = |cluster: &Cluster, from: usize, message: Message| {
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(from as u32), &cluster.specs[from].keypair))
    };
    let ask = |cluster: &Cluster, from: usize| {
        let message = Message::ViewChange {
            new_view: View(1),
            stable_seq: Seq(0),
            stable_digest: crate::crypto::Digest::default(),
            checkpoint_proof: vec![],
            prepared: vec![],
            passive: false,
        };
        sign(cluster, from, message)
    };
    let (first, third) = (ask(&cluster, 1), ask(&cluster, 3));
    let mut outputs = cluster.step(2, Arrival::message(first.clone()));
    outputs.extend(cluster.step(2, Arrival::message(third.clone())));
    let own = outputs
        .iter()
        .find_map(|o| match o {
            Output::Broadcast(m) if matches!(m.message, Message::ViewChange { .. }) => Some(m.clone()),
            _ => None,
        })
        .expect("f+1 VIEW-CHANGEs make it join view 1");
    let Message::ViewChange { ref prepared, .. } = own.message else { unreachable!() };
    let slots: Vec<_> =
        prepared.iter().filter_map(|c| c.slot()).map(|(_, seq, digest, batch)| (seq, digest, batch.clone())).collect();
    assert_eq!(
        slots.iter().map(|(seq, ..)| *seq).collect::<Vec<_>>(),
        vec![Seq(1)],
        "the certificate of seq 1 was lost"
    );
    let (_, digest, batch) = slots[0].clone();

    let again = sign(&cluster, 1, Message::PrePrepare { view: View(1), seq: Seq(1), digest, batch });
    let message =
        Message::NewView { view: View(1), view_changes: vec![first, own.clone(), third], pre_prepares: vec![again] };
    let outputs = cluster.step(2, Arrival::message(sign(&cluster, 1, message)));
    assert_eq!(cluster.replicas[2].replica().view(), View(1));
    let prepares_again = outputs.iter().any(
        |o| matches!(o, Output::Broadcast(m) if m.message == Message::Prepare { view: View(1), seq: Seq(1), digest }),
    );
    assert!(prepares_again, "it did not prepare the batch it executed at seq 1 again");
    assert_eq!(cluster.replicas[2].replica().stats().dropped_conflicts_executed, 0);
}

/// The primary pre-prepares `transfers` in the slot of `pre_prepare`, which
/// validator 1 saw before: the slot, and how many PREPAREs and COMMITs
/// validator 1 sends for the conflicting batch (a validator that cannot prove
/// what it signed must send none).
fn votes_for_another_batch(cluster: &mut Cluster, pre_prepare: &SignedMessage, transfers: &[SignedTx]) -> (Seq, usize) {
    let Message::PrePrepare { view, seq, .. } = pre_prepare.message else { unreachable!() };
    let other =
        Arc::new(Batch::of(transfers.iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect()));
    let message = Message::PrePrepare { view, seq, digest: other.digest(), batch: other };
    let conflicting = Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(0), &cluster.specs[0].keypair));
    let outputs = cluster.step(1, Arrival::message(conflicting));
    let votes = outputs
        .iter()
        .filter(|o| matches!(o, Output::Broadcast(m) if matches!(m.message, Message::Prepare { .. } | Message::Commit { .. })))
        .count();
    (seq, votes)
}

#[test]
fn a_founder_without_a_log_starts_passive_when_its_launcher_knows_the_swarm_ran() {
    let genesis = Ledger::with_genesis(&workload(BATCH).genesis).unwrap();
    let spec = Cluster::new(&genesis).specs[0].clone();
    // A node process keeps only its own log in its home: no peer's log beside it tells.
    let start = |ran: bool| {
        let home = tempfile::tempdir().unwrap();
        let options = WalOptions::under_home(home.path(), true).of_a_swarm_that_ran(ran);
        let (replica, _journal, recovery) = recover(&options, &spec, Micros(0)).unwrap();
        (recovery, replica.replica().passive().is_some())
    };
    assert_eq!(start(false), (Recovery::Fresh, false), "a first launch");
    assert_eq!(start(true), (Recovery::Missing, true), "the hub's record says it ran: the log was lost");
}

#[test]
fn a_second_membership_change_takes_effect_after_the_first() {
    let load = workload(BATCH * 2);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    cluster.submit(&load.transfers[..BATCH]);
    let member =
        Member { id: AgentId(N as u32), name: "v5".into(), public_key: Keypair::from_seed([42; 32]).public_key() };
    let add = MembershipChange { from_epoch: Epoch(0), add: vec![member], remove: Vec::new(), f: None };
    cluster.change_membership(add);
    cluster.submit(&load.transfers[BATCH..]);
    let remove = MembershipChange { from_epoch: Epoch(1), add: Vec::new(), remove: vec![AgentId(N as u32)], f: None };
    let last = cluster.change_membership(remove);
    for replica in cluster.replicas.iter().map(Node::replica) {
        assert_eq!((replica.committee().epoch(), replica.committee().n()), (Epoch(2), 4), "{:?}", replica.id());
    }
    assert_eq!(last.epoch(), Epoch(2));
    assert!(cluster.evidence.is_empty(), "{:?}", cluster.evidence);
}

#[test]
fn batches_pipelined_past_an_epoch_boundary_are_ordered_again_in_the_new_epoch() {
    let load = workload(BATCH * 5);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    for chunk in load.transfers[..BATCH * 2].chunks(BATCH) {
        cluster.submit(chunk);
    }
    // The change is ordered at seq 3 (due at checkpoint 4); the primary pipelines seqs 4 to 6 before it executes.
    let member =
        Member { id: AgentId(N as u32), name: "v5".into(), public_key: Keypair::from_seed([42; 32]).public_key() };
    let add = MembershipChange { from_epoch: Epoch(0), add: vec![member], remove: Vec::new(), f: None };
    let signed = Arc::new(SignedMembershipChange::sign(add, &cluster.operator));
    for i in 0..N {
        cluster.step(i, Arrival::Membership(signed.clone()));
    }
    let requests: Vec<Request> =
        load.transfers[BATCH * 2..].iter().map(|tx| Request { client: ClientId(0), tx: tx.clone() }).collect();
    for i in 0..N {
        cluster.step(i, Arrival::Requests(requests.clone()));
    }
    cluster.deliver_all();
    cluster.tick(3);
    for replica in cluster.replicas.iter().map(Node::replica) {
        let stats = replica.stats();
        assert_eq!(replica.committee().epoch(), Epoch(1));
        assert_eq!(stats.txs_committed + stats.txs_rejected, (BATCH * 5) as u64, "{:?}: {stats:?}", replica.id());
    }
}

#[test]
fn a_log_damaged_again_is_moved_aside_beside_the_first_never_over_it() {
    let genesis = Ledger::with_genesis(&workload(BATCH).genesis).unwrap();
    let spec = Cluster::new(&genesis).specs[0].clone();
    let home = tempfile::tempdir().unwrap();
    let options = WalOptions::under_home(home.path(), true);
    for n in 1..=3 {
        std::fs::create_dir_all(&options.dir).unwrap();
        std::fs::write(options.path_of(&spec.name), b"not a log").unwrap();
        let (_, _journal, recovery) = recover(&options, &spec, Micros(0)).unwrap();
        let Recovery::Discarded { moved_to, .. } = recovery else { panic!("garbage was replayed: {recovery:?}") };
        assert!(moved_to.to_string_lossy().ends_with(&format!(".damaged-{n}")), "{moved_to:?}");
        assert_eq!(std::fs::read(&moved_to).unwrap(), b"not a log", "an earlier damaged log was overwritten");
    }
}

/// Logs of the previous record format (2: their snapshot records hold a
/// serialized ledger, not the built-in application's chunks) are never
/// decoded as this format: each is moved aside with a message naming the
/// format, and a swarm whose every log is of the old format refuses to start.
#[test]
fn a_log_of_the_previous_record_format_is_moved_aside_and_a_swarm_of_only_such_logs_refuses_to_start() {
    let genesis = Ledger::with_genesis(&workload(BATCH).genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    let mut recoveries = Vec::new();
    for i in 0..N {
        cluster.journals[i] = None;
        let spec = &cluster.specs[i];
        let path = cluster.options.path_of(&spec.name);
        std::fs::remove_file(&path).unwrap();
        let mut store = RedbStore::open_file(&path, RedbOptions::default()).unwrap();
        let identity = spec.identity().unwrap();
        let old = |record: &WalRecord<SwarmApp>| [&[2u8][..], &record.encode()[1..]].concat();
        // Its identity is this validator's: only the format tells the log apart.
        let pre_prepare = [2u8, 0x42, 0x00, 0x07];
        store.append(&spec.name, &[old(&WalRecord::Identity(identity)), pre_prepare.to_vec()]).unwrap();
        drop(store);
        let (replica, _, recovery) = recover(&cluster.options, spec, Micros(0)).unwrap();
        let Recovery::Discarded { error, moved_to } = &recovery else { panic!("replayed an old log: {recovery:?}") };
        assert!(
            error.contains("WAL record 1 of")
                && error.contains("another bftswarm release (record format 2, this release reads 3)"),
            "{error}"
        );
        assert!(moved_to.exists());
        assert_eq!(replica.replica().last_executed(), Seq(0));
        recoveries.push((spec.name.clone(), recovery));
    }
    let refused = refuse_if_all_logs_lost(recoveries.iter().map(|(name, recovery)| (name.as_str(), recovery)));
    assert!(matches!(refused, Err(RecoveryError::AllLogsDamaged { logs }) if logs.len() == N));
}

/// A founder whose log vanished while its peers' logs beside it show the
/// swarm ran (they hold more than their identity) may have signed before:
/// it starts passive, even relaunched after its peers, whose logs are open
/// (locked) by then. Before anything ran, a founder without a log is new.
#[test]
fn a_founder_whose_log_vanished_beside_its_peers_logs_starts_passive() {
    /// Stops every validator, removes `i`'s log and relaunches them all, `i`
    /// last, with options made at the launch as a launcher makes them.
    fn relaunch_without_the_log_of(cluster: &mut Cluster, i: usize) -> Recovery {
        cluster.journals.iter_mut().for_each(|journal| *journal = None);
        let path = cluster.options.path_of(&cluster.specs[i].name);
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_file(unsynced_mark(&path));
        cluster.options = WalOptions::under_home(cluster._home.path(), false);
        for peer in (0..N).filter(|&peer| peer != i) {
            cluster.crash_and_recover(peer);
        }
        cluster.crash_and_recover(i)
    }
    let load = workload(BATCH);
    let genesis = Ledger::with_genesis(&load.genesis).unwrap();
    let mut cluster = Cluster::new(&genesis);
    let last = N - 1;
    assert_eq!(
        relaunch_without_the_log_of(&mut cluster, last),
        Recovery::Fresh,
        "its peers' logs hold their identity only"
    );
    cluster.submit(&load.transfers);
    assert_eq!(cluster.replicas[last].replica().last_executed(), Seq(1));
    assert_eq!(relaunch_without_the_log_of(&mut cluster, last), Recovery::Missing);
    assert!(cluster.replicas[last].replica().is_passive());
}

/// A log longer than one read (`READ_CHUNK` records) is folded whole, each
/// record once: the record count is exact, and the last record (here: the
/// validator is passive) is not missed.
#[test]
fn a_log_longer_than_one_read_is_folded_whole_and_each_record_counted_once() {
    let genesis = Ledger::with_genesis(&workload(BATCH).genesis).unwrap();
    let spec = Cluster::new(&genesis).specs[0].clone();
    let home = tempfile::tempdir().unwrap();
    let options = WalOptions::under_home(home.path(), true);
    std::fs::create_dir_all(&options.dir).unwrap();
    let records = 2 * READ_CHUNK + 5;
    let mut log = vec![WalRecord::<SwarmApp>::Identity(spec.identity().unwrap()).encode()];
    log.extend((2..records).map(|_| WalRecord::<SwarmApp>::Passive(None).encode()));
    log.push(WalRecord::<SwarmApp>::Passive(Some(Passive::default())).encode());
    let mut store = RedbStore::open_file(&options.path_of(&spec.name), RedbOptions::default()).unwrap();
    store.append(&spec.name, &log).unwrap();
    drop(store);
    let (replica, _journal, recovery) = recover(&options, &spec, Micros(0)).unwrap();
    let whole = Recovery::Wal {
        records: records as u64,
        view: View(0),
        stable_checkpoint: Seq(0),
        last_executed: Seq(0),
        passive: true,
    };
    assert_eq!(recovery, whole);
    assert!(replica.replica().is_passive());
}
