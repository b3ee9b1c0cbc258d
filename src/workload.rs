//! The client workload: accounts with genesis balances and transfers among them,
//! drawn from a seed and signed before any clock starts.

use crate::app::{SignedTx, Tx};
use crate::crypto::Keypair;
use crate::ledger::{AccountId, TxId};
use crate::rng::SeededRng;

#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub seed: u64,
    pub accounts: usize,
    pub transactions: usize,
    pub initial_balance: u64,
    pub max_amount: u64,
    /// Fraction of transfers signed for more than the whole supply: they must be rejected.
    pub overdraft_ratio: f64,
}

pub struct Workload {
    pub accounts: Vec<Keypair>,
    pub genesis: Vec<(AccountId, u64)>,
    pub transfers: Vec<SignedTx>,
    /// How many transfers were generated as overdrafts (expected rejections).
    pub overdrafts: usize,
}

impl Workload {
    /// Transfer i is sent by account i mod accounts, so consecutive transfers
    /// come from different accounts and a window of in-flight requests rarely
    /// waits for one account's previous nonce. Signing uses every core.
    pub fn generate(spec: &WorkloadSpec) -> Workload {
        let mut rng = SeededRng::new(spec.seed);
        let accounts: Vec<Keypair> = (0..spec.accounts.max(2)).map(|_| Keypair::from_seed(rng.bytes())).collect();
        let ids: Vec<AccountId> = accounts.iter().map(|k| AccountId(k.public_key())).collect();
        let genesis = ids.iter().map(|id| (*id, spec.initial_balance)).collect();
        let supply = spec.initial_balance.saturating_mul(ids.len() as u64);
        let mut nonces = vec![0u64; ids.len()];
        let mut overdrafts = 0;
        let unsigned: Vec<(usize, Tx)> = (0..spec.transactions)
            .map(|i| {
                let from = i % ids.len();
                let to = (from + 1 + rng.below(ids.len() as u64 - 1) as usize) % ids.len();
                let overdraft = rng.chance(spec.overdraft_ratio);
                overdrafts += overdraft as usize;
                let amount = if overdraft { supply.saturating_add(1) } else { rng.between(1, spec.max_amount.max(1)) };
                let nonce = nonces[from];
                nonces[from] += 1;
                let transfer = Tx::transfer(TxId(rng.bytes()), ids[from], ids[to], amount, nonce);
                (from, transfer)
            })
            .collect();
        let transfers = sign_in_parallel(&accounts, unsigned);
        Workload { accounts, genesis, transfers, overdrafts }
    }
}

pub(crate) fn sign_in_parallel(accounts: &[Keypair], unsigned: Vec<(usize, Tx)>) -> Vec<SignedTx> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = unsigned.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = unsigned
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|(from, t)| t.clone().sign(&accounts[*from])).collect::<Vec<_>>())
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> WorkloadSpec {
        WorkloadSpec {
            seed,
            accounts: 5,
            transactions: 40,
            initial_balance: 1000,
            max_amount: 10,
            overdraft_ratio: 0.25,
        }
    }

    #[test]
    fn same_seed_same_workload_and_every_signature_valid() {
        let a = Workload::generate(&spec(7));
        let b = Workload::generate(&spec(7));
        assert_eq!(a.transfers, b.transfers);
        assert_eq!(a.transfers.len(), 40);
        assert!(a.transfers.iter().all(SignedTx::verify));
        assert_ne!(Workload::generate(&spec(8)).transfers, a.transfers);
    }

    #[test]
    fn nonces_are_consecutive_per_account_and_overdrafts_exceed_supply() {
        let workload = Workload::generate(&spec(3));
        for account in &workload.genesis {
            let nonces: Vec<u64> =
                workload.transfers.iter().filter(|t| t.from() == account.0).map(|t| t.nonce()).collect();
            assert_eq!(nonces, (0..nonces.len() as u64).collect::<Vec<_>>());
        }
        let big = workload.transfers.iter().filter(|t| t.tx.as_transfer().is_some_and(|t| t.amount > 5000)).count();
        assert_eq!(big, workload.overdrafts);
        assert!(workload.overdrafts > 0);
    }
}
