//! The built-in application's dispatch: each part executes its own requests
//! with its own nonces, the rest is refused, and the snapshot, digest and
//! proofs cover both parts.

use super::*;
use crate::app::memory::{decode_get, Entry};
use crate::app::{merkle_path, verify_path, MemoryOp, Tx};
use crate::crypto::Keypair;
use crate::ledger::TxId;
use crate::protocol::ClientId;

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

fn account(seed: u8) -> AccountId {
    AccountId(key(seed).public_key())
}

fn request(seed: u8, id: u8, nonce: u64, op: Op) -> Request {
    let tx = Tx { id: TxId([id; 16]), from: account(seed), nonce, op };
    Request { client: ClientId(1), tx: tx.sign(&key(seed)) }
}

fn transfer(seed: u8, id: u8, nonce: u64, to: AccountId, amount: u64) -> Request {
    let tx = Tx::transfer(TxId([id; 16]), account(seed), to, amount, nonce);
    Request { client: ClientId(1), tx: tx.sign(&key(seed)) }
}

fn put(seed: u8, id: u8, nonce: u64, key: &str, ttl: Option<u64>) -> Request {
    let op = MemoryOp::Put { namespace: "ns".into(), key: key.into(), value: b"\"v\"".to_vec(), ttl };
    request(seed, id, nonce, Op::Memory(op))
}

fn funded() -> SwarmApp {
    SwarmApp::new(Ledger::with_genesis(&[(account(1), 100)]).unwrap())
}

fn outcomes(app: &mut SwarmApp, seq: u64, requests: &[Request]) -> Vec<TxOutcome> {
    app.execute(Seq(seq), requests).into_iter().map(Execution::outcome).collect()
}

fn get(key: &str) -> Vec<u8> {
    SwarmApp::memory_query(&MemoryQuery::Get { namespace: "ns".into(), key: key.into() })
}

fn answer(app: &SwarmApp, key: &str) -> Option<Entry> {
    decode_get(&app.query(&get(key))).unwrap()
}

#[test]
fn a_transfer_and_a_memory_write_of_one_signer_each_use_their_own_nonces() {
    let mut app = funded();
    let batch = [transfer(1, 1, 0, account(2), 30), put(1, 2, 0, "plan", None), transfer(1, 3, 1, account(2), 5)];
    assert_eq!(outcomes(&mut app, 1, &batch), [TxOutcome::Committed; 3]);
    assert_eq!(app.ledger().account(&account(2)).balance, 35);
    assert_eq!(app.ledger().account(&account(1)).next_nonce, 2);
    assert_eq!(app.memory().next_nonce(&account(1)), 1);
    assert_eq!(answer(&app, "plan").unwrap().writer, account(1));
    let keys: Vec<_> = batch.iter().map(SwarmApp::conflict_key).collect();
    assert_ne!(keys[0], keys[1], "one nonce in two parts is no double spend");
    assert_eq!(keys[0], Some((Part::Ledger, account(1), 0)));
    // The ledger's query, behind its tag: balance then next nonce.
    let ledger_answer = app.query(&SwarmApp::ledger_query(&account(2)));
    assert_eq!(ledger_answer, [35u64.to_le_bytes(), 0u64.to_le_bytes()].concat());
    assert_eq!(app.query(b""), Vec::<u8>::new());
    assert_eq!(app.query(&[9, 1, 2]), Vec::<u8>::new());
}

#[test]
fn another_applications_bytes_are_refused_before_ordering_and_if_ordered() {
    let mut app = funded();
    let foreign = request(1, 1, 0, Op::App(vec![1, 2, 3]));
    let unsupported = TxOutcome::Rejected(RejectReason::UnsupportedOp);
    assert_eq!(app.check(&foreign), Err(Refusal::Rejected(unsupported)));
    assert_eq!(SwarmApp::conflict_key(&foreign), None);
    let before = app.digest();
    let batch = [foreign, transfer(1, 2, 0, account(2), 1)];
    assert_eq!(outcomes(&mut app, 1, &batch), [unsupported, TxOutcome::Committed]);
    assert_eq!(app.ledger().account(&account(1)).next_nonce, 1, "the foreign request consumed no nonce");
    assert_ne!(app.digest(), before);
}

#[test]
fn checks_go_to_the_part_that_executes_the_request() {
    let mut app = funded();
    outcomes(&mut app, 1, &[transfer(1, 1, 0, account(2), 1), put(1, 2, 0, "k", None)]);
    let consumed = |received| Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::NonceConsumed { received })));
    assert_eq!(app.check(&transfer(1, 9, 0, account(2), 2)), consumed(0));
    assert_eq!(app.check(&put(1, 8, 0, "other", None)), consumed(0));
    assert_eq!(app.check(&put(1, 2, 0, "k", None)), Err(Refusal::Executed), "the same put again replays");
    assert_eq!(app.check(&put(1, 7, 1, "k", None)), Ok(()));
    let too_long = put(1, 6, 1, &"k".repeat(300), None);
    assert!(matches!(app.check(&too_long), Err(Refusal::Rejected(TxOutcome::Rejected(RejectReason::Refused { .. })))));
}

#[test]
fn a_ttl_runs_out_on_batches_that_hold_only_transfers() {
    let mut app = funded();
    outcomes(&mut app, 1, &[put(1, 1, 0, "lease", Some(2))]);
    outcomes(&mut app, 2, &[transfer(1, 2, 0, account(2), 1)]);
    assert!(answer(&app, "lease").is_some());
    outcomes(&mut app, 3, &[transfer(1, 3, 1, account(2), 1)]);
    assert_eq!(answer(&app, "lease"), None);
}

#[test]
fn the_digest_is_the_root_over_the_ledgers_chunks_then_the_memorys_and_both_restore() {
    let mut app = SwarmApp::new(Ledger::with_genesis(&[(account(1), 1_000)]).unwrap());
    // 300 accounts: the ledger's chunks grow past two, and the memory's follow them.
    let to = |n: u64| {
        let mut bytes = [1u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        AccountId(crate::crypto::PublicKey(bytes))
    };
    let batch: Vec<Request> = (0..300u64).map(|n| transfer(1, n as u8, n, to(n), 1)).collect();
    assert!(outcomes(&mut app, 1, &batch).iter().all(|outcome| *outcome == TxOutcome::Committed));
    outcomes(&mut app, 2, &[put(1, 1, 0, "a", None), put(1, 2, 1, "b", Some(50))]);
    assert_eq!(app.ledger().chunk_count(), 3);
    let snapshot = app.snapshot();
    assert_eq!(snapshot.chunks.len(), 3 + 1 + BUCKETS);
    assert_eq!(app.digest(), snapshot.root());
    assert_eq!(SwarmApp::restore(&snapshot), Ok(app.clone()));
    let mut memory_changed = app.clone();
    outcomes(&mut memory_changed, 3, &[put(1, 3, 2, "a", None)]);
    assert_ne!(memory_changed.digest(), app.digest());
}

#[test]
fn a_damaged_or_short_snapshot_is_refused_naming_the_chunk() {
    let mut app = funded();
    outcomes(&mut app, 1, &[put(1, 1, 0, "k", None)]);
    let snapshot = app.snapshot();
    let short = Snapshot { chunks: snapshot.chunks[..BUCKETS].to_vec() };
    assert_eq!(SwarmApp::restore(&short).unwrap_err().chunk, 0);
    let ledger_chunks = app.ledger().chunk_count();
    let bucket = ledger_chunks + 1 + crate::app::memory::bucket_of("ns", "k");
    let mut damaged = snapshot.clone();
    damaged.chunks[bucket].0.push(0);
    assert_eq!(SwarmApp::restore(&damaged).unwrap_err().chunk, bucket);
    let mut no_ledger = snapshot.clone();
    no_ledger.chunks.remove(0);
    assert!(SwarmApp::restore(&no_ledger).is_err());
}

#[test]
fn a_memory_answer_is_read_from_its_bucket_and_proven_against_the_whole_digest() {
    let mut app = funded();
    outcomes(&mut app, 1, &[put(1, 1, 0, "present", None), transfer(1, 2, 0, account(2), 5)]);
    let snapshot = app.snapshot();
    let leaves: Vec<Digest> = snapshot.chunks.iter().map(Chunk::hash).collect();
    for key in ["present", "absent"] {
        let query = get(key);
        let index = app.proving_chunk(&query).unwrap();
        assert!(index >= app.ledger().chunk_count(), "{key}: a memory chunk");
        let chunk = &snapshot.chunks[index];
        assert_eq!(SwarmApp::answer_from_chunk(&query, chunk), Some(app.query(&query)), "{key}");
        assert!(verify_path(app.digest(), chunk.hash(), &merkle_path(&leaves, index).unwrap()));
        // Another chunk does not answer it: not its bucket, or a ledger chunk.
        assert_eq!(SwarmApp::answer_from_chunk(&query, &snapshot.chunks[index - 1]), None);
        assert_eq!(SwarmApp::answer_from_chunk(&query, &snapshot.chunks[0]), None);
    }
    // An account query is read from a ledger chunk, never from the header or a memory chunk.
    let ledger_query = SwarmApp::ledger_query(&account(1));
    assert_eq!(app.proving_chunk(&ledger_query), Some(1));
    assert_eq!(SwarmApp::answer_from_chunk(&ledger_query, &snapshot.chunks[1]), Some(app.query(&ledger_query)));
    assert_eq!(SwarmApp::answer_from_chunk(&ledger_query, &snapshot.chunks[0]), None);
    assert_eq!(SwarmApp::answer_from_chunk(&ledger_query, &snapshot.chunks[2]), None);
}

/// A committee of four and `app`'s answer to `query`, certified by three of them at seq 8.
fn certified(app: &SwarmApp, query: &[u8]) -> (crate::protocol::Committee, crate::protocol::CertifiedAnswer) {
    use crate::protocol::membership::{checkpoint_digest, MembershipState};
    use crate::protocol::{AgentId, CertifiedAnswer, Committee, Epoch, Message, SignedMessage};
    use std::sync::Arc;
    let keys: Vec<Keypair> = (0..4u8).map(|i| key(i + 40)).collect();
    let public: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public, "v", None).unwrap();
    let membership = MembershipState::default();
    let state_digest = checkpoint_digest(app.digest(), &membership);
    let vote = |i: usize| {
        let message = Message::Checkpoint { seq: Seq(8), state_digest };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(i as u32), &keys[i]))
    };
    let votes = (0..3).map(vote).collect();
    let answer = CertifiedAnswer::build(app, &app.snapshot(), query, membership.digest(), Seq(8), votes).unwrap();
    (committee, answer)
}

#[test]
fn a_certified_memory_get_verifies_offline_and_a_tampered_or_foreign_proof_is_refused() {
    use crate::protocol::CertificateError;
    let mut app = funded();
    outcomes(&mut app, 8, &[put(1, 1, 0, "plan", None), transfer(1, 2, 0, account(2), 5)]);
    let (committee, answer) = certified(&app, &get("plan"));
    let (entry, verified) = verify_memory_get(&answer, "ns", "plan", &committee).unwrap();
    assert_eq!(entry.unwrap().value, b"\"v\"");
    assert_eq!(verified.signers.len(), 3);
    // The value altered in the answer, or in the chunk it is read from.
    let mut altered = answer.clone();
    let mut other = app.clone();
    outcomes(&mut other, 9, &[put(1, 3, 1, "plan", None)]);
    altered.answer = other.query(&get("plan"));
    let refused = verify_memory_get(&altered, "ns", "plan", &committee);
    assert_eq!(refused.unwrap_err(), ProofError::Certificate(CertificateError::AnswerAltered));
    let mut chunk_altered = answer.clone();
    let at = chunk_altered.chunk.0.len() - 40;
    chunk_altered.chunk.0[at] ^= 1;
    assert!(verify_memory_get(&chunk_altered, "ns", "plan", &committee).is_err());
    // A true proof of another key is no proof of this one.
    let (_, absent) = certified(&app, &get("absent"));
    assert!(matches!(verify_memory_get(&absent, "ns", "plan", &committee), Err(ProofError::OtherQuery { .. })));
    // Too few signers.
    let mut short = answer.clone();
    short.checkpoint.truncate(2);
    let refused = verify_memory_get(&short, "ns", "plan", &committee);
    assert_eq!(
        refused.unwrap_err(),
        ProofError::Certificate(CertificateError::TooFewSigners { signers: 2, quorum: 3 })
    );
}

#[test]
fn a_certified_account_answer_verifies_offline_and_a_tampered_one_is_refused() {
    use crate::protocol::CertificateError;
    let mut app = funded();
    outcomes(&mut app, 8, &[transfer(1, 1, 0, account(2), 30), put(1, 2, 0, "plan", None)]);
    let (committee, answer) = certified(&app, &SwarmApp::ledger_query(&account(1)));
    let (proven, verified) = verify_account(&answer, &account(1), &committee).unwrap();
    assert_eq!(proven, ProvenAccount { balance: 70, next_nonce: 1 });
    assert_eq!(verified.signers.len(), 3);
    // An account the ledger never held is proven absent: nothing to spend, nonce 0.
    let (committee, absent) = certified(&app, &SwarmApp::ledger_query(&account(9)));
    let (proven, _) = verify_account(&absent, &account(9), &committee).unwrap();
    assert_eq!(proven, ProvenAccount { balance: 0, next_nonce: 0 });
    // A richer balance in the answer, or in the chunk it is read from.
    let mut richer = answer.clone();
    richer.answer[0] ^= 0x80;
    let refused = verify_account(&richer, &account(1), &committee).unwrap_err();
    assert_eq!(refused, ProofError::Certificate(CertificateError::AnswerAltered));
    let mut chunk_altered = answer.clone();
    let key = account(1).0 .0;
    let record = chunk_altered.chunk.0.windows(32).rposition(|window| window == key).unwrap();
    chunk_altered.chunk.0[record + 32 + 7] ^= 1;
    chunk_altered.answer = SwarmApp::answer_from_chunk(&chunk_altered.query, &chunk_altered.chunk).unwrap();
    let refused = verify_account(&chunk_altered, &account(1), &committee).unwrap_err();
    assert_eq!(refused, ProofError::Certificate(CertificateError::PathDoesNotProve));
    // A true proof of another account, or of a memory key, proves nothing about this one.
    assert!(matches!(verify_account(&absent, &account(1), &committee), Err(ProofError::OtherQuery { .. })));
    let (_, memory) = certified(&app, &get("plan"));
    assert!(matches!(verify_account(&memory, &account(1), &committee), Err(ProofError::OtherQuery { .. })));
}
