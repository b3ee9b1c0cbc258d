//! The swarm's built-in application, what the actors, the daemon and node
//! processes replicate: the transfer ledger and the Byzantine-tolerant
//! memory side by side, each request dispatched by its operation's kind.
//!
//! The parts are independent (a transfer never reads the memory, a memory
//! write never reads a balance), so each keeps its own nonces per signer and
//! a request's conflict key names its part. Another application's bytes
//! (`Op::App`) are refused before ordering.
//!
//! The snapshot is the ledger's chunks, then the memory's 257; the digest is
//! the Merkle root over all of them, so one memory bucket proves a key's
//! answer against a certified digest with one path, as in the memory alone.

use super::memory::{decode_get, Entry, Memory, MemoryQuery, BUCKETS};
use super::{merkle_root, Application, Chunk, Op, Refusal, RestoreError, Snapshot};
use crate::crypto::Digest;
use crate::ledger::{AccountId, Execution, Ledger, RejectReason, TxOutcome};
use crate::protocol::{verify_certified, CertificateError, CertifiedAnswer, Committee, Request, Seq, VerifiedAnswer};

/// The ledger and the memory, replicated as one state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwarmApp {
    ledger: Ledger,
    memory: Memory,
}

/// Which part of the [`SwarmApp`] a request belongs to: nonces count per part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Ledger,
    Memory,
}

/// The first byte of a [`SwarmApp`] query: which part answers the rest.
const LEDGER_QUERY: u8 = 0;
const MEMORY_QUERY: u8 = 1;

/// Memory chunks at the end of every snapshot: the header and the buckets.
const MEMORY_CHUNKS: usize = 1 + BUCKETS;

impl SwarmApp {
    /// The swarm's state at genesis: `ledger`'s accounts and an empty memory.
    pub fn new(ledger: Ledger) -> SwarmApp {
        SwarmApp { ledger, memory: Memory::default() }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// A ledger query ([`Ledger`]'s `query`: an account key) as this application reads it.
    pub fn ledger_query(account: &AccountId) -> Vec<u8> {
        [&[LEDGER_QUERY][..], &account.0 .0].concat()
    }

    /// A memory query as this application reads it.
    pub fn memory_query(query: &MemoryQuery) -> Vec<u8> {
        [vec![MEMORY_QUERY], query.encode()].concat()
    }

    fn part_of(request: &Request) -> Option<Part> {
        match request.tx.tx.op {
            Op::Transfer(_) => Some(Part::Ledger),
            Op::Memory(_) => Some(Part::Memory),
            Op::App(_) => None,
        }
    }
}

/// Another application's operation: neither part executes it.
fn unsupported() -> TxOutcome {
    TxOutcome::Rejected(RejectReason::UnsupportedOp)
}

impl Application for SwarmApp {
    type ConflictKey = (Part, AccountId, u64);

    fn check(&self, request: &Request) -> Result<(), Refusal> {
        match SwarmApp::part_of(request) {
            Some(Part::Ledger) => self.ledger.check(request),
            Some(Part::Memory) => self.memory.check(request),
            None => Err(Refusal::Rejected(unsupported())),
        }
    }

    /// Each request on its part, in order; the memory's expiry for `seq`
    /// runs first even when the batch holds no memory write, so every
    /// replica's memory is at the same consensus time.
    fn execute(&mut self, seq: Seq, requests: &[Request]) -> Vec<Execution> {
        self.memory.execute(seq, &[]);
        if requests.iter().all(|request| SwarmApp::part_of(request) == Some(Part::Ledger)) {
            return Application::execute(&mut self.ledger, seq, requests);
        }
        let one = std::slice::from_ref;
        let executions = requests.iter().map(|request| match SwarmApp::part_of(request) {
            Some(Part::Ledger) => Application::execute(&mut self.ledger, seq, one(request)).pop(),
            Some(Part::Memory) => self.memory.execute(seq, one(request)).pop(),
            None => None,
        });
        executions.map(|execution| execution.unwrap_or(Execution::Applied(unsupported()))).collect()
    }

    fn conflict_key(request: &Request) -> Option<(Part, AccountId, u64)> {
        SwarmApp::part_of(request).map(|part| (part, request.tx.from(), request.tx.nonce()))
    }

    fn digest(&self) -> Digest {
        merkle_root(self.ledger.chunk_hashes().into_iter().chain(self.memory.chunk_hashes()))
    }

    /// The ledger's chunks, then the memory's.
    fn snapshot(&self) -> Snapshot {
        let mut chunks = self.ledger.snapshot().chunks;
        chunks.extend(self.memory.snapshot().chunks);
        Snapshot { chunks }
    }

    /// The last 257 chunks are the memory's (its shape never changes), the
    /// ones before them the ledger's.
    fn restore(snapshot: &Snapshot) -> Result<SwarmApp, RestoreError> {
        let Some(split) = snapshot.chunks.len().checked_sub(MEMORY_CHUNKS) else {
            return Err(RestoreError { chunk: 0, reason: "fewer chunks than the memory alone has" });
        };
        let (ledger, memory) = snapshot.chunks.split_at(split);
        let ledger = Ledger::restore(&Snapshot { chunks: ledger.to_vec() })?;
        let memory = Memory::restore(&Snapshot { chunks: memory.to_vec() })
            .map_err(|error| RestoreError { chunk: split + error.chunk, ..error })?;
        Ok(SwarmApp { ledger, memory })
    }

    /// A tag byte naming the part, then that part's query.
    fn query(&self, query: &[u8]) -> Vec<u8> {
        match query.split_first() {
            Some((&LEDGER_QUERY, rest)) => self.ledger.query(rest),
            Some((&MEMORY_QUERY, rest)) => self.memory.query(rest),
            _ => Vec::new(),
        }
    }

    /// An account: its ledger chunk; a memory get: its bucket, after the ledger's chunks.
    fn proving_chunk(&self, query: &[u8]) -> Option<usize> {
        match query.split_first()? {
            (&LEDGER_QUERY, rest) => self.ledger.proving_chunk(rest),
            (&MEMORY_QUERY, rest) => Some(self.ledger.chunk_count() + self.memory.proving_chunk(rest)?),
            _ => None,
        }
    }

    /// The memory reads its answer out of a bucket chunk; that chunk must
    /// decode as the canonical bucket of the queried key (its domain and
    /// bucket number are inside it), which no ledger chunk does.
    fn answer_from_chunk(query: &[u8], chunk: &Chunk) -> Option<Vec<u8>> {
        match query.split_first()? {
            (&LEDGER_QUERY, rest) => Ledger::answer_from_chunk(rest, chunk),
            (&MEMORY_QUERY, rest) => Memory::answer_from_chunk(rest, chunk),
            _ => None,
        }
    }
}

/// Why a certified answer to a [`SwarmApp`] query is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof answers another query than {asked}")]
    OtherQuery { asked: String },
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("the proven answer is not {expected}")]
    Undecodable { expected: &'static str },
}

/// What a certified answer proves about one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenAccount {
    pub balance: u64,
    pub next_nonce: u64,
}

/// Checks that `certified` answers exactly `asked` and that its proof holds.
fn verify_query(
    certified: &CertifiedAnswer,
    asked: &[u8],
    describe: impl FnOnce() -> String,
    committee: &Committee,
) -> Result<VerifiedAnswer, ProofError> {
    if certified.query != asked {
        return Err(ProofError::OtherQuery { asked: describe() });
    }
    Ok(verify_certified::<SwarmApp>(certified, committee)?)
}

/// Checks offline that `certified` proves `account`'s balance and next nonce
/// (zeros for an account the ledger does not hold) against `committee`.
pub fn verify_account(
    certified: &CertifiedAnswer,
    account: &AccountId,
    committee: &Committee,
) -> Result<(ProvenAccount, VerifiedAnswer), ProofError> {
    let asked = SwarmApp::ledger_query(account);
    let verified = verify_query(certified, &asked, || format!("account {account}"), committee)?;
    let expected = "an account's balance and nonce";
    let (balance, next_nonce) =
        crate::ledger::decode_balance(&verified.answer).ok_or(ProofError::Undecodable { expected })?;
    Ok((ProvenAccount { balance, next_nonce }, verified))
}

/// Checks offline that `certified` proves the value of `key` in `namespace`
/// (or its absence) against `committee`, the committee of the checkpoint's
/// epoch: the query must be exactly that get, and the proof must hold
/// ([`verify_certified`]). Returns the proven entry and who certified it.
pub fn verify_memory_get(
    certified: &CertifiedAnswer,
    namespace: &str,
    key: &str,
    committee: &Committee,
) -> Result<(Option<Entry>, VerifiedAnswer), ProofError> {
    let asked = SwarmApp::memory_query(&MemoryQuery::Get { namespace: namespace.to_owned(), key: key.to_owned() });
    let verified = verify_query(certified, &asked, || format!("{namespace}/{key}"), committee)?;
    let entry = decode_get(&verified.answer).ok_or(ProofError::Undecodable { expected: "a memory entry" })?;
    Ok((entry, verified))
}

#[cfg(test)]
#[path = "swarm_app_tests.rs"]
mod tests;
