//! The memory's rules: writes and their limits, TTL in consensus time,
//! replays, snapshots, and answers read back out of one chunk.

use super::*;
use crate::app::{merkle_path, verify_path, Tx};
use crate::crypto::Keypair;
use crate::ledger::TxId;
use crate::protocol::ClientId;

struct Signer {
    key: Keypair,
    nonce: u64,
}

impl Signer {
    fn new(seed: u8) -> Signer {
        Signer { key: Keypair::from_seed([seed; 32]), nonce: 0 }
    }

    fn account(&self) -> AccountId {
        AccountId(self.key.public_key())
    }

    fn request(&mut self, op: MemoryOp) -> Request {
        let nonce = self.nonce;
        self.nonce += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&nonce.to_le_bytes());
        id[8] = self.key.public_key().0[0];
        let tx = Tx { id: TxId(id), from: self.account(), nonce, op: Op::Memory(op) };
        Request { client: ClientId(1), tx: tx.sign(&self.key) }
    }

    fn put(&mut self, namespace: &str, key: &str, value: &[u8], ttl: Option<u64>) -> Request {
        let op = MemoryOp::Put { namespace: namespace.into(), key: key.into(), value: value.to_vec(), ttl };
        self.request(op)
    }

    fn delete(&mut self, namespace: &str, key: &str) -> Request {
        self.request(MemoryOp::Delete { namespace: namespace.into(), key: key.into() })
    }
}

fn outcomes(memory: &mut Memory, seq: u64, requests: &[Request]) -> Vec<TxOutcome> {
    memory.execute(Seq(seq), requests).into_iter().map(Execution::outcome).collect()
}

fn refused(code: u64) -> TxOutcome {
    TxOutcome::Rejected(RejectReason::Refused { code })
}

fn get(namespace: &str, key: &str) -> Vec<u8> {
    MemoryQuery::Get { namespace: namespace.into(), key: key.into() }.encode()
}

#[test]
fn a_put_is_read_back_with_its_writer_and_a_delete_removes_it() {
    let (mut alice, mut bob) = (Signer::new(1), Signer::new(2));
    let mut memory = Memory::default();
    let batch = [alice.put("swarm", "leader", b"\"v1\"", None), bob.put("swarm", "plan", b"{}", None)];
    assert_eq!(outcomes(&mut memory, 1, &batch), [TxOutcome::Committed; 2]);
    let entry = memory.get("swarm", "leader").unwrap();
    assert_eq!((entry.value.as_slice(), entry.writer, entry.written_at), (&b"\"v1\""[..], alice.account(), Seq(1)));
    // Any signer writes in any namespace: bob overwrites alice's key, and is recorded as its writer.
    assert_eq!(outcomes(&mut memory, 2, &[bob.put("swarm", "leader", b"\"v2\"", None)]), [TxOutcome::Committed]);
    assert_eq!(memory.get("swarm", "leader").unwrap().writer, bob.account());
    assert_eq!(decode_get(&memory.query(&get("swarm", "leader"))).unwrap().unwrap().value, b"\"v2\"");
    let list = MemoryQuery::List { namespace: "swarm".into(), prefix: "l".into() }.encode();
    let listed = decode_list(&memory.query(&list)).unwrap();
    assert_eq!(listed.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["leader"]);
    assert_eq!(outcomes(&mut memory, 3, &[alice.delete("swarm", "leader")]), [TxOutcome::Committed]);
    assert_eq!(decode_get(&memory.query(&get("swarm", "leader"))), Some(None));
    assert_eq!(outcomes(&mut memory, 4, &[alice.delete("swarm", "leader")]), [refused(NO_SUCH_KEY)]);
    assert_eq!(memory.len(), 1);
    assert_eq!(memory.query(b"not a query"), Vec::<u8>::new());
}

#[test]
fn an_entry_with_a_ttl_is_gone_from_queries_and_digest_at_the_seq_it_expires() {
    let mut alice = Signer::new(1);
    let mut memory = Memory::default();
    outcomes(&mut memory, 3, &[alice.put("tasks", "lease", b"1", Some(2)), alice.put("tasks", "keep", b"2", None)]);
    let without_lease = {
        let mut other = memory.clone();
        other.entries.remove(&("tasks".to_owned(), "lease".to_owned()));
        other
    };
    assert_eq!(memory.get("tasks", "lease").unwrap().expires_at, Some(Seq(5)));
    outcomes(&mut memory, 4, &[]);
    assert!(memory.get("tasks", "lease").is_some(), "alive until seq 5");
    // An empty batch at seq 5 is enough: consensus time moved.
    outcomes(&mut memory, 5, &[]);
    assert_eq!(memory.get("tasks", "lease"), None);
    assert_eq!(decode_get(&memory.query(&get("tasks", "lease"))), Some(None));
    assert!(memory.get("tasks", "keep").is_some());
    let bucket = 1 + bucket_of("tasks", "lease");
    assert_eq!(memory.snapshot().chunks[bucket], without_lease.snapshot().chunks[bucket]);
    assert!(memory.expiries.is_empty());
}

#[test]
fn a_put_again_replaces_the_expiry_and_a_delete_forgets_it() {
    let mut alice = Signer::new(1);
    let mut memory = Memory::default();
    outcomes(&mut memory, 1, &[alice.put("ns", "k", b"1", Some(2))]);
    outcomes(&mut memory, 2, &[alice.put("ns", "k", b"2", Some(10))]);
    outcomes(&mut memory, 3, &[]);
    assert_eq!(memory.get("ns", "k").unwrap().value, b"2", "the first put's expiry does not remove the second");
    assert_eq!(memory.get("ns", "k").unwrap().expires_at, Some(Seq(12)));
    outcomes(&mut memory, 4, &[alice.put("ns", "k", b"3", None)]);
    outcomes(&mut memory, 12, &[]);
    assert_eq!(memory.get("ns", "k").unwrap().value, b"3", "a put without TTL never expires");
    outcomes(&mut memory, 13, &[alice.put("ns", "t", b"1", Some(1)), alice.delete("ns", "t")]);
    assert!(memory.expiries.is_empty());
}

#[test]
fn writes_beyond_the_limits_are_refused_before_ordering_and_if_ordered() {
    let mut alice = Signer::new(1);
    let mut memory = Memory::default();
    let cases = [
        (alice.put("", "k", b"1", None), EMPTY_NAME),
        (alice.put("ns", "", b"1", None), EMPTY_NAME),
        (alice.put(&"n".repeat(MAX_NAMESPACE_BYTES + 1), "k", b"1", None), NAMESPACE_TOO_LONG),
        (alice.put("ns", &"k".repeat(MAX_KEY_BYTES + 1), b"1", None), KEY_TOO_LONG),
        (alice.put("ns", "k", &vec![0; MAX_VALUE_BYTES + 1], None), VALUE_TOO_LARGE),
        (alice.put("ns", "k", b"1", Some(0)), ZERO_TTL),
        (alice.delete("ns", &"k".repeat(MAX_KEY_BYTES + 1)), KEY_TOO_LONG),
    ];
    for (seq, (request, code)) in cases.into_iter().enumerate() {
        assert_eq!(memory.check(&request), Err(Refusal::Rejected(refused(code))), "{}", refusal_reason(code));
        assert_eq!(outcomes(&mut memory, seq as u64 + 1, &[request]), [refused(code)]);
    }
    assert!(memory.is_empty());
    let at_limits =
        alice.put(&"n".repeat(MAX_NAMESPACE_BYTES), &"k".repeat(MAX_KEY_BYTES), &[7; MAX_VALUE_BYTES], None);
    assert_eq!(memory.check(&at_limits), Ok(()));
    assert_eq!(outcomes(&mut memory, 9, &[at_limits]), [TxOutcome::Committed]);
}

#[test]
fn a_full_memory_refuses_a_new_key_but_still_overwrites_an_old_one() {
    let mut alice = Signer::new(1);
    let mut memory = Memory::default();
    let entry = Entry { value: vec![1], writer: alice.account(), written_at: Seq(1), expires_at: None };
    for i in 0..MAX_ENTRIES {
        memory.entries.insert(("ns".into(), format!("{i}")), entry.clone());
    }
    assert_eq!(outcomes(&mut memory, 2, &[alice.put("ns", "new", b"1", None)]), [refused(MEMORY_FULL)]);
    assert_eq!(outcomes(&mut memory, 3, &[alice.put("ns", "7", b"2", None)]), [TxOutcome::Committed]);
}

#[test]
fn a_replayed_write_changes_nothing_and_a_second_write_on_one_nonce_is_refused() {
    let mut alice = Signer::new(1);
    let mut memory = Memory::default();
    let put = alice.put("ns", "k", b"1", None);
    outcomes(&mut memory, 1, std::slice::from_ref(&put));
    let before = memory.digest();
    assert_eq!(memory.execute(Seq(2), std::slice::from_ref(&put)), [Execution::Replayed(TxOutcome::Committed)]);
    assert_eq!(memory.check(&put), Err(Refusal::Executed));
    alice.nonce = 0;
    let rival = alice.put("ns", "k", b"2", None);
    let consumed = TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 });
    assert_eq!(memory.check(&rival), Err(Refusal::Rejected(consumed)));
    assert_eq!(Memory::conflict_key(&rival), Memory::conflict_key(&put));
    assert_eq!(outcomes(&mut memory, 3, &[rival]), [consumed]);
    assert_eq!(memory.get("ns", "k").unwrap().value, b"1");
    // Only the seq moved (it is in the header).
    assert_ne!(memory.digest(), before);
    assert_eq!(memory.snapshot().chunks[1..], Memory::restore(&memory.snapshot()).unwrap().snapshot().chunks[1..]);
}

#[test]
fn another_applications_operation_is_refused_as_unsupported() {
    let alice = Keypair::from_seed([1; 32]);
    let from = AccountId(alice.public_key());
    let mut memory = Memory::default();
    let unsupported = TxOutcome::Rejected(RejectReason::UnsupportedOp);
    for (nonce, op) in [Op::App(vec![1]), Tx::transfer(TxId([1; 16]), from, from, 5, 0).op].into_iter().enumerate() {
        let tx = Tx { id: TxId([nonce as u8 + 1; 16]), from, nonce: nonce as u64, op };
        let request = Request { client: ClientId(1), tx: tx.sign(&alice) };
        assert_eq!(memory.check(&request), Err(Refusal::Rejected(unsupported)));
        assert_eq!(outcomes(&mut memory, 1, &[request]), [unsupported]);
    }
    assert!(memory.is_empty());
}

fn sample() -> Memory {
    let (mut alice, mut bob) = (Signer::new(1), Signer::new(2));
    let mut memory = Memory::default();
    let mut batch: Vec<Request> =
        (0..200).map(|i| alice.put("agents", &format!("a{i}"), b"{\"ok\":true}", None)).collect();
    batch.push(bob.put("leases", "l1", b"1", Some(50)));
    batch.push(bob.put("leases", "l2", b"2", Some(3)));
    outcomes(&mut memory, 7, &batch);
    memory
}

#[test]
fn a_memory_restored_from_its_snapshot_is_the_same_memory_and_expires_alike() {
    let mut memory = sample();
    let snapshot = memory.snapshot();
    assert_eq!(snapshot.chunks.len(), 1 + BUCKETS);
    assert_eq!(snapshot.root(), memory.digest());
    let mut restored = Memory::restore(&snapshot).unwrap();
    assert_eq!(restored, memory);
    outcomes(&mut memory, 10, &[]);
    outcomes(&mut restored, 10, &[]);
    assert_eq!(restored.get("leases", "l2"), None);
    assert_eq!(restored.digest(), memory.digest());
    assert_ne!(Memory::default().digest(), memory.digest());
}

#[test]
fn a_snapshot_the_memory_would_not_have_written_is_refused() {
    let memory = sample();
    let snapshot = memory.snapshot();
    let occupied = (1..=BUCKETS).find(|&i| decode_bucket(&snapshot.chunks[i], i - 1).is_some_and(|e| e.len() >= 2));
    let occupied = occupied.expect("200 keys share a bucket somewhere");
    let damage = |change: &dyn Fn(&mut Snapshot)| {
        let mut damaged = snapshot.clone();
        change(&mut damaged);
        Memory::restore(&damaged).map(|_| ()).map_err(|e| e.chunk)
    };
    assert_eq!(damage(&|s| s.chunks.truncate(BUCKETS)), Err(0));
    assert_eq!(damage(&|s| s.chunks[0].0.push(0)), Err(0));
    assert_eq!(damage(&|s| s.chunks.swap(occupied, occupied % BUCKETS + 1)), Err(occupied.min(occupied % BUCKETS + 1)));
    let reversed = {
        let mut entries = decode_bucket(&snapshot.chunks[occupied], occupied - 1).unwrap();
        entries.reverse();
        postcard_bytes(&(BUCKET_DOMAIN, (occupied - 1) as u32, entries))
    };
    assert_eq!(damage(&|s| s.chunks[occupied].0 = reversed.clone()), Err(occupied));
    // An expired entry in a state whose seq is past its expiry.
    let stale_header = postcard_bytes(&(HEADER_DOMAIN, Seq(10), memory.writers.iter().collect::<Vec<_>>()));
    let l2 = 1 + bucket_of("leases", "l2");
    assert_eq!(damage(&|s| s.chunks[0].0 = stale_header.clone()), Err(l2));
    assert_eq!(damage(&|_| ()), Ok(()));
}

#[test]
fn a_get_is_read_back_out_of_its_bucket_chunk_alone_present_or_absent() {
    let memory = sample();
    let snapshot = memory.snapshot();
    let leaves: Vec<Digest> = snapshot.chunks.iter().map(Chunk::hash).collect();
    for (namespace, key) in [("agents", "a3"), ("leases", "l1"), ("agents", "nobody"), ("other", "a3")] {
        let query = get(namespace, key);
        let index = memory.proving_chunk(&query).unwrap();
        let chunk = &snapshot.chunks[index];
        assert_eq!(Memory::answer_from_chunk(&query, chunk), Some(memory.query(&query)), "{namespace}/{key}");
        assert!(verify_path(memory.digest(), chunk.hash(), &merkle_path(&leaves, index).unwrap()));
        // Another bucket's chunk, or the header, answers nothing.
        let other = &snapshot.chunks[index % BUCKETS + 1];
        assert_eq!(Memory::answer_from_chunk(&query, other), None);
        assert_eq!(Memory::answer_from_chunk(&query, &snapshot.chunks[0]), None);
    }
    let list = MemoryQuery::List { namespace: "agents".into(), prefix: String::new() }.encode();
    assert_eq!(memory.proving_chunk(&list), None);
    assert_eq!(decode_list(&memory.query(&list)).unwrap().len(), 200);
}
