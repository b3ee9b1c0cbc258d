//! A certified memory answer checks offline against its committee, and every
//! alteration of it (answer, chunk, path, digests, signatures, signers, seq,
//! epoch) is refused with its own error.

use super::*;
use crate::app::memory::{bucket_of, decode_get, Memory, MemoryQuery, BUCKETS};
use crate::app::{MemoryOp, Op, Tx};
use crate::crypto::Keypair;
use crate::ledger::{AccountId, TxId};
use crate::protocol::membership::{checkpoint_digest, MembershipState};
use crate::protocol::{ClientId, Request};

const SEQ: Seq = Seq(8);

struct Fixture {
    keys: Vec<Keypair>,
    committee: Committee,
    memory: Memory,
}

fn fixture() -> Fixture {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 40; 32])).collect();
    let public: Vec<_> = keys.iter().map(Keypair::public_key).collect();
    let committee = Committee::numbered(Epoch(0), &public, "v", None).unwrap();
    let writer = Keypair::from_seed([9; 32]);
    let from = AccountId(writer.public_key());
    let requests: Vec<Request> = (0..30u64)
        .map(|nonce| {
            let op = MemoryOp::Put {
                namespace: "swarm".into(),
                key: format!("k{nonce}"),
                value: vec![nonce as u8],
                ttl: None,
            };
            let tx = Tx { id: TxId([nonce as u8; 16]), from, nonce, op: Op::Memory(op) };
            Request { client: ClientId(1), tx: tx.sign(&writer) }
        })
        .collect();
    let mut memory = Memory::default();
    memory.execute(SEQ, &requests);
    Fixture { keys, committee, memory }
}

fn get(key: &str) -> Vec<u8> {
    MemoryQuery::Get { namespace: "swarm".into(), key: key.into() }.encode()
}

impl Fixture {
    fn vote(&self, signer: usize, seq: Seq, state_digest: Digest) -> Arc<SignedMessage> {
        let message = Message::Checkpoint { seq, state_digest };
        Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(signer as u32), &self.keys[signer]))
    }

    /// `memory`'s answer to `query`, certified by `signers` at [`SEQ`].
    fn certify(&self, memory: &Memory, query: &[u8], signers: &[usize]) -> CertifiedAnswer {
        let membership = MembershipState::default();
        let state_digest = checkpoint_digest(memory.digest(), &membership);
        let votes = signers.iter().map(|&i| self.vote(i, SEQ, state_digest)).collect();
        CertifiedAnswer::build(memory, &memory.snapshot(), query, membership.digest(), SEQ, votes).unwrap()
    }

    fn answer(&self, query: &[u8]) -> CertifiedAnswer {
        self.certify(&self.memory, query, &[0, 1, 2])
    }

    fn verify(&self, certified: &CertifiedAnswer) -> Result<VerifiedAnswer, CertificateError> {
        verify_certified::<Memory>(certified, &self.committee)
    }
}

#[test]
fn a_certified_value_and_a_certified_absence_verify_with_their_signers() {
    let f = fixture();
    let verified = f.verify(&f.answer(&get("k7"))).unwrap();
    assert_eq!(decode_get(&verified.answer).unwrap().unwrap().value, [7]);
    assert_eq!((verified.seq, verified.signers), (SEQ, vec![AgentId(0), AgentId(1), AgentId(2)]));
    let absent = f.verify(&f.answer(&get("nobody"))).unwrap();
    assert_eq!(decode_get(&absent.answer), Some(None));
    // All four signing is fine too; the path is short (a bucket of 257 leaves).
    let all = f.certify(&f.memory, &get("k7"), &[3, 1, 0, 2]);
    assert_eq!(f.verify(&all).unwrap().signers.len(), 4);
    assert!(all.path.siblings.len() <= 9);
}

#[test]
fn an_altered_answer_is_refused() {
    let f = fixture();
    let mut certified = f.answer(&get("k7"));
    let lie = f.answer(&get("k8")).answer;
    certified.answer = lie;
    assert_eq!(f.verify(&certified), Err(CertificateError::AnswerAltered));
    // Claiming absence for a present key is a lie of the same kind.
    certified.answer = f.answer(&get("nobody")).answer;
    assert_eq!(f.verify(&certified), Err(CertificateError::AnswerAltered));
}

#[test]
fn a_chunk_of_another_key_or_an_altered_query_is_refused() {
    let f = fixture();
    let mut certified = f.answer(&get("k7"));
    let other = (0..100).map(|i| format!("x{i}")).find(|k| bucket_of("swarm", k) != bucket_of("swarm", "k7")).unwrap();
    certified.query = get(&other);
    assert_eq!(f.verify(&certified), Err(CertificateError::ChunkDoesNotAnswer));
    certified.query = b"garbage".to_vec();
    assert_eq!(f.verify(&certified), Err(CertificateError::ChunkDoesNotAnswer));
}

#[test]
fn an_altered_chunk_with_a_matching_answer_does_not_prove_against_the_digest() {
    let f = fixture();
    let honest = f.answer(&get("k7"));
    // A state where k7 holds another value: its chunk and answer agree, its path is the honest one.
    let mut forged_memory = f.memory.clone();
    let writer = Keypair::from_seed([9; 32]);
    let op = MemoryOp::Put { namespace: "swarm".into(), key: "k7".into(), value: vec![99], ttl: None };
    let tx = Tx { id: TxId([99; 16]), from: AccountId(writer.public_key()), nonce: 30, op: Op::Memory(op) };
    forged_memory.execute(SEQ, &[Request { client: ClientId(1), tx: tx.sign(&writer) }]);
    let forged = f.certify(&forged_memory, &get("k7"), &[0, 1, 2]);
    let tampered = CertifiedAnswer { chunk: forged.chunk, answer: forged.answer, ..honest.clone() };
    assert_eq!(f.verify(&tampered), Err(CertificateError::PathDoesNotProve));
    let mut path = honest.clone();
    path.path.siblings[0].1 .0[0] ^= 1;
    assert_eq!(f.verify(&path), Err(CertificateError::PathDoesNotProve));
    let mut digest = honest.clone();
    digest.app_digest.0[0] ^= 1;
    assert_eq!(f.verify(&digest), Err(CertificateError::PathDoesNotProve));
}

#[test]
fn a_whole_forged_state_is_refused_by_the_checkpoint_signatures() {
    let f = fixture();
    let honest = f.answer(&get("k7"));
    let mut forged_memory = f.memory.clone();
    forged_memory.execute(Seq(SEQ.0 + 1), &[]);
    // Chunk, path and application digest all of the forged state; the votes are the honest ones.
    let forged = f.certify(&forged_memory, &get("k7"), &[0, 1, 2]);
    let tampered = CertifiedAnswer { checkpoint: honest.checkpoint.clone(), ..forged };
    assert_eq!(f.verify(&tampered), Err(CertificateError::OtherCheckpoint { index: 0, seq: SEQ }));
    let mut membership = honest.clone();
    membership.membership_digest.0[0] ^= 1;
    assert_eq!(f.verify(&membership), Err(CertificateError::OtherCheckpoint { index: 0, seq: SEQ }));
}

#[test]
fn a_checkpoint_of_another_seq_is_refused() {
    let f = fixture();
    let mut certified = f.answer(&get("k7"));
    certified.seq = Seq(SEQ.0 + 8);
    assert_eq!(f.verify(&certified), Err(CertificateError::OtherCheckpoint { index: 0, seq: Seq(SEQ.0 + 8) }));
    let mut one_elsewhere = f.answer(&get("k7"));
    let Message::Checkpoint { state_digest, .. } = one_elsewhere.checkpoint[1].message else { unreachable!() };
    one_elsewhere.checkpoint[1] = f.vote(1, Seq(SEQ.0 + 8), state_digest);
    assert_eq!(f.verify(&one_elsewhere), Err(CertificateError::OtherCheckpoint { index: 1, seq: SEQ }));
}

#[test]
fn a_signature_by_a_non_member_is_refused() {
    let f = fixture();
    let outsider = Keypair::from_seed([77; 32]);
    let honest = f.answer(&get("k7"));
    let Message::Checkpoint { state_digest, .. } = honest.checkpoint[0].message else { unreachable!() };
    let message = Message::Checkpoint { seq: SEQ, state_digest };
    let mut stranger = honest.clone();
    stranger.checkpoint[2] = Arc::new(SignedMessage::sign(message.clone(), Epoch(0), AgentId(9), &outsider));
    assert_eq!(f.verify(&stranger), Err(CertificateError::NotAMember { index: 2, sender: AgentId(9) }));
    // Posing as member 3 with the outsider's key.
    let mut impostor = honest.clone();
    impostor.checkpoint[2] = Arc::new(SignedMessage::sign(message, Epoch(0), AgentId(3), &outsider));
    assert_eq!(f.verify(&impostor), Err(CertificateError::BadSignature { index: 2, sender: AgentId(3) }));
    let mut corrupted = honest;
    let mut vote = (*corrupted.checkpoint[1]).clone();
    vote.signature.0[0] ^= 1;
    corrupted.checkpoint[1] = Arc::new(vote);
    assert_eq!(f.verify(&corrupted), Err(CertificateError::BadSignature { index: 1, sender: AgentId(1) }));
}

#[test]
fn fewer_than_a_quorum_of_distinct_members_is_refused() {
    let f = fixture();
    let two = f.certify(&f.memory, &get("k7"), &[0, 2]);
    assert_eq!(f.verify(&two), Err(CertificateError::TooFewSigners { signers: 2, quorum: 3 }));
    let repeated = f.certify(&f.memory, &get("k7"), &[0, 2, 0]);
    assert_eq!(f.verify(&repeated), Err(CertificateError::DuplicateSigner { sender: AgentId(0) }));
    let none = f.certify(&f.memory, &get("k7"), &[]);
    assert_eq!(f.verify(&none), Err(CertificateError::TooFewSigners { signers: 0, quorum: 3 }));
}

#[test]
fn votes_of_another_epoch_than_the_committee_given_are_refused() {
    let f = fixture();
    let public: Vec<_> = f.keys.iter().map(Keypair::public_key).collect();
    let later = Committee::numbered(Epoch(1), &public, "v", None).unwrap();
    let refused = verify_certified::<Memory>(&f.answer(&get("k7")), &later);
    assert_eq!(refused, Err(CertificateError::WrongEpoch { index: 0, expected: Epoch(1), found: Epoch(0) }));
}

#[test]
fn an_application_that_proves_nothing_gives_no_certified_answer() {
    let ledger = crate::ledger::Ledger::default();
    let snapshot = crate::app::Application::snapshot(&ledger);
    assert_eq!(CertifiedAnswer::build(&ledger, &snapshot, &[0; 32], Digest([0; 32]), SEQ, Vec::new()), None);
    assert_eq!(BUCKETS + 1, fixture().memory.snapshot().chunks.len());
}
