use super::*;
use crate::app::{MemoryOp, Op};
use crate::crypto::Keypair;

fn account(seed: u8) -> (Keypair, AccountId) {
    let keypair = Keypair::from_seed([seed; 32]);
    let id = AccountId(keypair.public_key());
    (keypair, id)
}

fn transfer(from: AccountId, to: AccountId, amount: u64, nonce: u64) -> Tx {
    Tx::transfer(TxId([nonce as u8; 16]), from, to, amount, nonce)
}

#[test]
fn transfers_move_funds_and_conserve_supply() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 100), (bob, 5)]).unwrap();
    assert_eq!(ledger.execute(&transfer(alice, bob, 40, 0)), TxOutcome::Committed);
    assert_eq!((ledger.account(&alice).balance, ledger.account(&alice).next_nonce), (60, 1));
    assert_eq!(ledger.account(&bob).balance, 45);
    assert_eq!(ledger.balance_sum(), ledger.total_supply() as u128);
}

#[test]
fn rejections_table() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let cases = [
        (transfer(alice, bob, 10, 1), RejectReason::WrongNonce { expected: 0, received: 1 }),
        (transfer(alice, bob, 101, 0), RejectReason::InsufficientFunds { balance: 100, amount: 101 }),
        (transfer(alice, bob, 0, 0), RejectReason::ZeroAmount),
        (transfer(alice, alice, 5, 0), RejectReason::SelfTransfer),
    ];
    for (tx, reason) in cases {
        let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
        assert_eq!(ledger.execute(&tx), TxOutcome::Rejected(reason), "{tx:?}");
        assert_eq!(ledger.account(&alice).balance, 100);
        assert_eq!(ledger.balance_sum(), 100);
    }
}

#[test]
fn double_spend_with_one_nonce_commits_once() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let (_, carol) = account(3);
    let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
    assert_eq!(ledger.execute(&transfer(alice, bob, 100, 0)), TxOutcome::Committed);
    assert_eq!(
        ledger.execute(&transfer(alice, carol, 100, 0)),
        TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 })
    );
    assert_eq!(ledger.account(&carol).balance, 0);
}

#[test]
fn the_last_transfer_executed_again_is_answered_with_its_outcome_and_changes_nothing() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
    let first = transfer(alice, bob, 30, 0);
    assert_eq!(ledger.apply(&first), Execution::Applied(TxOutcome::Committed));
    let after_first = ledger.clone();
    assert_eq!(ledger.apply(&first), Execution::Replayed(TxOutcome::Committed));
    assert_eq!(ledger, after_first);
    // An older transfer, or another one reusing the nonce, is a wrong nonce.
    let conflicting = Tx { id: TxId([42; 16]), ..transfer(alice, bob, 30, 0) };
    assert!(matches!(
        ledger.apply(&conflicting),
        Execution::Applied(TxOutcome::Rejected(RejectReason::NonceConsumed { .. }))
    ));
    // A replica that got this state by snapshot answers the same way.
    let mut from_snapshot = after_first.clone();
    assert_eq!(from_snapshot.apply(&first), Execution::Replayed(TxOutcome::Committed));
}

#[test]
fn rejected_for_funds_still_consumes_the_nonce() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 10)]).unwrap();
    assert!(matches!(ledger.execute(&transfer(alice, bob, 11, 0)), TxOutcome::Rejected(_)));
    assert_eq!(ledger.execute(&transfer(alice, bob, 10, 1)), TxOutcome::Committed);
}

#[test]
fn state_digest_covers_balances_and_nonces() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let genesis = Ledger::with_genesis(&[(alice, 100), (bob, 100)]).unwrap();
    let mut moved = genesis.clone();
    moved.execute(&transfer(alice, bob, 1, 0));
    let mut nonce_only = genesis.clone();
    nonce_only.execute(&transfer(alice, bob, 1000, 0));
    let digests = [genesis.state_digest(), moved.state_digest(), nonce_only.state_digest()];
    assert_ne!(digests[0], digests[1]);
    assert_ne!(digests[0], digests[2]);
    assert_ne!(digests[1], digests[2]);
}

#[test]
fn signatures_bind_every_field() {
    let (alice_keys, alice) = account(1);
    let (_, bob) = account(2);
    let signed = transfer(alice, bob, 10, 0).sign(&alice_keys);
    assert!(signed.verify());
    let mut tampered = signed.clone();
    tampered.tx.as_transfer_mut().unwrap().amount = 11;
    assert!(!tampered.verify());
    let mut memo = signed.clone();
    memo.tx.as_transfer_mut().unwrap().memo = Some(String::new());
    assert!(!memo.verify(), "an empty memo differs from no memo");
}

#[test]
fn duplicate_genesis_account_is_an_error() {
    let (_, alice) = account(1);
    assert!(matches!(Ledger::with_genesis(&[(alice, 1), (alice, 2)]), Err(GenesisError::DuplicateAccount(_))));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever is thrown at it — wrong nonces, overdrafts, zero amounts,
        /// replays — the ledger conserves supply, never goes negative, and
        /// commits each (account, nonce) at most once.
        #[test]
        fn any_sequence_of_transfers_conserves_supply_and_commits_each_nonce_once(
            genesis in proptest::collection::vec(0u64..1_000, 2..6),
            transfers in proptest::collection::vec((0usize..6, 0usize..6, 0u64..1_500, 0u64..8), 0..200),
        ) {
            let ids: Vec<AccountId> = (0..genesis.len()).map(|i| account(i as u8 + 1).1).collect();
            let balances: Vec<(AccountId, u64)> = ids.iter().copied().zip(genesis.iter().copied()).collect();
            let mut ledger = Ledger::with_genesis(&balances).unwrap();
            let mut committed = std::collections::HashSet::new();
            for (from, to, amount, nonce) in transfers {
                let (from, to) = (ids[from % ids.len()], ids[to % ids.len()]);
                let before = ledger.account(&from);
                // A replay (same transfer again) is answered with its first outcome and changes nothing.
                let execution = ledger.apply(&transfer(from, to, amount, nonce));
                if execution == Execution::Applied(TxOutcome::Committed) {
                    prop_assert!(committed.insert((from, nonce)), "nonce {} of {:?} committed twice", nonce, from);
                    prop_assert!(amount <= before.balance);
                }
                prop_assert_eq!(ledger.balance_sum(), ledger.total_supply() as u128);
            }
        }
    }
}

#[test]
fn totals_count_every_executed_transfer_by_outcome_and_replays_count_once() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 100), (bob, 5)]).unwrap();
    let first = transfer(alice, bob, 40, 0);
    ledger.execute(&first);
    ledger.execute(&first);
    ledger.execute(&transfer(alice, bob, 500, 1));
    ledger.execute(&transfer(alice, bob, 1, 7));
    ledger.execute(&transfer(bob, bob, 1, 0));
    let totals = ledger.totals();
    assert_eq!((totals.committed, totals.rejected_total()), (1, 3));
    let by_reason: Vec<(&str, u64)> = totals.rejected_by_reason().into_iter().collect();
    assert_eq!(by_reason, [("insufficient-funds", 1), ("self-transfer", 1), ("wrong-nonce", 1)]);
    ledger.execute(&transfer(alice, bob, 2, 0));
    assert_eq!(ledger.totals().rejected_by_reason().get("nonce-consumed"), Some(&1));
}

#[test]
fn totals_are_under_the_state_digest_and_travel_with_a_snapshot() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let genesis = Ledger::with_genesis(&[(alice, 100), (bob, 5)]).unwrap();
    let mut rejected_once = genesis.clone();
    rejected_once.execute(&transfer(alice, bob, 1, 9));
    assert_eq!(rejected_once.accounts().count(), genesis.accounts().count());
    assert_ne!(rejected_once.state_digest(), genesis.state_digest(), "a rejection changes the replicated totals");
    let bytes = postcard::to_stdvec(&rejected_once).unwrap();
    let restored: Ledger = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(restored.totals(), rejected_once.totals());
    assert_eq!(restored.state_digest(), rejected_once.state_digest());
}

mod snapshots {
    use super::*;
    use crate::app::{merkle_path, Application, Chunk, Snapshot};
    use crate::ledger::app::ACCOUNT_CHUNK_HEADER as HEADER;

    /// A ledger of `accounts` funded accounts where every kind of last transfer occurs.
    fn busy_ledger(accounts: usize) -> Ledger {
        let ids: Vec<AccountId> = (0..accounts).map(|i| account_of(i as u64)).collect();
        let balances: Vec<(AccountId, u64)> = ids.iter().map(|id| (*id, 100)).collect();
        let mut ledger = Ledger::with_genesis(&balances).unwrap();
        for (i, from) in ids.iter().enumerate() {
            let to = ids[(i + 1) % ids.len()];
            let amount = [10, 0, 1_000, 5][i % 4];
            let to = if i % 4 == 3 { *from } else { to };
            ledger.execute(&transfer(*from, to, amount, 0));
        }
        ledger.execute(&transfer(ids[0], ids[1 % ids.len()], 1, 0));
        ledger.execute(&transfer(ids[0], ids[1 % ids.len()], 1, 9));
        ledger
    }

    fn account_of(i: u64) -> AccountId {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&i.to_le_bytes());
        AccountId(Keypair::from_seed(seed).public_key())
    }

    #[test]
    fn a_ledger_restored_from_its_chunks_is_the_same_ledger_and_its_digest_is_their_root() {
        for accounts in [1, ACCOUNTS_PER_CHUNK, ACCOUNTS_PER_CHUNK * 2 + 3] {
            let ledger = busy_ledger(accounts);
            let snapshot = ledger.snapshot();
            assert_eq!(snapshot.chunks.len(), 1 + accounts.div_ceil(ACCOUNTS_PER_CHUNK));
            assert_eq!(snapshot.root(), ledger.digest());
            assert_eq!(Ledger::restore(&snapshot), Ok(ledger.clone()), "{accounts} accounts");
        }
    }

    #[test]
    fn one_account_is_proven_against_the_digest_by_its_chunk_alone() {
        let ledger = busy_ledger(ACCOUNTS_PER_CHUNK * 3);
        let snapshot = ledger.snapshot();
        let hashes: Vec<_> = snapshot.chunks.iter().map(Chunk::hash).collect();
        let path = merkle_path(&hashes, 2).unwrap();
        assert!(Snapshot::verify_chunk(ledger.digest(), &snapshot.chunks[2], &path));
        let mut richer = snapshot.chunks[2].clone();
        richer.0[HEADER + 32] ^= 0x80;
        assert!(!Snapshot::verify_chunk(ledger.digest(), &richer, &path));
    }

    #[test]
    fn damaged_or_non_canonical_chunks_are_refused_with_the_chunk_named() {
        let ledger = busy_ledger(ACCOUNTS_PER_CHUNK * 2);
        let good = ledger.snapshot();
        let damage = |change: &dyn Fn(&mut Snapshot)| {
            let mut snapshot = good.clone();
            change(&mut snapshot);
            Ledger::restore(&snapshot).map(|_| ()).map_err(|error| (error.chunk, error.reason))
        };
        assert_eq!(damage(&|s| s.chunks.clear()), Err((0, "no header chunk")));
        assert_eq!(damage(&|s| s.chunks[0].0[0] = b'x'), Err((0, "not a ledger snapshot")));
        assert_eq!(damage(&|s| s.chunks[0].0.push(0)), Err((0, "trailing bytes")));
        assert_eq!(damage(&|s| s.chunks[1].0.truncate(HEADER + 100)), Err((1, "cut short")));
        assert_eq!(damage(&|s| s.chunks[1].0[0] = b'x'), Err((1, "not an account chunk")));
        assert_eq!(damage(&|s| s.chunks[1].0[HEADER - 33] = 2), Err((1, "bad bound")));
        let bounds = "bounds are not the neighbouring chunks' keys";
        assert_eq!(damage(&|s| s.chunks.swap(1, 2)), Err((1, bounds)));
        assert_eq!(damage(&|s| s.chunks[2].0[HEADER - 65] ^= 1), Err((2, bounds)));
        assert_eq!(damage(&|s| s.chunks.push(s.chunks[2].clone())), Err((2, bounds)), "chunk 2 is no longer the last");
        assert_eq!(damage(&|s| s.chunks.push(Chunk(Vec::new()))), Err((3, "cut short")));
        let empty = |s: &mut Snapshot| s.chunks.push(Chunk(s.chunks[2].0[..HEADER].to_vec()));
        assert_eq!(damage(&empty), Err((3, "accounts not cut as the ledger cuts them")));
        assert_eq!(damage(&|s| s.chunks[2].0[HEADER + 32] ^= 1), Err((0, "balances do not add up to the supply")));
        // The first account's last-transfer tag.
        assert_eq!(damage(&|s| s.chunks[1].0[HEADER + 48] = 7), Err((1, "bad last-transfer tag")));
        assert_eq!(damage(&|_| ()), Ok(()));
    }

    /// Every outcome a last transfer can have comes back from a snapshot as
    /// it was; an outcome encoded with a field its kind does not have is
    /// refused (two encodings of one ledger would be two state digests).
    #[test]
    fn every_last_transfer_outcome_survives_a_snapshot_and_a_non_canonical_one_is_refused() {
        use RejectReason::*;
        let (_, alice) = account(1);
        let outcomes = [
            TxOutcome::Committed,
            TxOutcome::Rejected(WrongNonce { expected: 3, received: 9 }),
            TxOutcome::Rejected(InsufficientFunds { balance: 5, amount: 7 }),
            TxOutcome::Rejected(ZeroAmount),
            TxOutcome::Rejected(SelfTransfer),
            TxOutcome::Rejected(NonceConsumed { received: 4 }),
            TxOutcome::Rejected(Refused { code: 11 }),
            TxOutcome::Rejected(UnsupportedOp),
        ];
        // The one account's record: key 32, balance 8, nonce 8, flag 1, id 16, digest 32, then the outcome.
        const OUTCOME_AT: usize = 32 + 8 + 8 + 1 + 16 + 32;
        for outcome in outcomes {
            let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
            let last = LastTransfer { id: TxId([3; 16]), digest: crate::crypto::Digest([4; 32]), outcome };
            ledger.accounts.get_mut(&alice).unwrap().last = Some(last);
            let snapshot = ledger.snapshot();
            assert_eq!(Ledger::restore(&snapshot), Ok(ledger.clone()), "{outcome:?}");
            let tag = snapshot.chunks[1].0[OUTCOME_AT];
            // A field the outcome does not carry, set: the first for those with none, the second for those with one.
            let unused = match tag {
                0 | 3 | 4 | 7 => Some(OUTCOME_AT + 1),
                5 | 6 => Some(OUTCOME_AT + 1 + 8),
                _ => None,
            };
            if let Some(unused) = unused {
                let mut damaged = snapshot.clone();
                damaged.chunks[1].0[unused] = 1;
                let refused = Ledger::restore(&damaged).map_err(|error| (error.chunk, error.reason));
                assert_eq!(refused, Err((1, "bad outcome")), "{outcome:?}");
            }
        }
    }

    #[test]
    fn an_account_or_its_absence_is_read_from_its_chunk_alone_and_no_other_chunk_answers() {
        let ledger = busy_ledger(ACCOUNTS_PER_CHUNK * 2 + 3);
        let snapshot = ledger.snapshot();
        let ids: Vec<AccountId> = ledger.accounts().map(|(id, _)| *id).collect();
        let mut queries: Vec<[u8; 32]> = ids.iter().map(|id| id.0 .0).collect();
        // Absent keys: before all, just past each chunk's last account, after all.
        let mut past = |id: &AccountId| {
            let mut key = id.0 .0;
            key[31] = key[31].wrapping_add(1);
            queries.push(key);
        };
        past(&ids[ACCOUNTS_PER_CHUNK - 1]);
        past(&ids[ACCOUNTS_PER_CHUNK * 2 - 1]);
        past(&ids[ids.len() - 1]);
        queries.extend([[0u8; 32], [0xff; 32]]);
        for key in queries {
            let index = ledger.proving_chunk(&key).unwrap();
            let answer = Ledger::answer_from_chunk(&key, &snapshot.chunks[index]);
            assert_eq!(answer, Some(ledger.query(&key)), "chunk {index}");
            // A key in the gap between two chunks is proven absent by both; no
            // chunk answers anything but the truth, and only its own holds an account.
            for other in (0..snapshot.chunks.len()).filter(|other| *other != index) {
                let read = Ledger::answer_from_chunk(&key, &snapshot.chunks[other]);
                let present = ids.iter().any(|id| id.0 .0 == key);
                assert!(read.is_none() || (!present && read == answer), "chunk {other}");
            }
        }
        let absent = ledger.query(&[0xff; 32]);
        assert_eq!(crate::ledger::decode_balance(&absent), Some((0, 0)));
        assert_eq!(Ledger::default().proving_chunk(&[1; 32]), None, "no accounts: no chunk proves anything");
        assert_eq!(ledger.proving_chunk(b"short"), None);
    }

    #[test]
    fn a_balance_query_answers_balance_and_next_nonce() {
        let (_, alice) = account(1);
        let (_, bob) = account(2);
        let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
        ledger.execute(&transfer(alice, bob, 30, 0));
        let answer = ledger.query(&alice.0 .0);
        assert_eq!(answer, [70u64.to_le_bytes(), 1u64.to_le_bytes()].concat());
        assert_eq!(ledger.query(b"short"), Vec::<u8>::new());
    }
}

#[test]
fn check_orders_a_fresh_nonce_replays_the_transfer_that_used_it_and_refuses_any_other() {
    use crate::app::{Application, Refusal};
    use crate::protocol::{ClientId, Request};
    let (alice_keys, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
    let request =
        |amount, nonce| Request { client: ClientId(1), tx: transfer(alice, bob, amount, nonce).sign(&alice_keys) };
    let first = request(10, 0);
    assert_eq!(ledger.check(&first), Ok(()));
    let executions = Application::execute(&mut ledger, crate::protocol::Seq(1), std::slice::from_ref(&first));
    assert_eq!(executions, [Execution::Applied(TxOutcome::Committed)]);
    assert_eq!(ledger.check(&first), Err(Refusal::Executed));
    let consumed = TxOutcome::Rejected(RejectReason::NonceConsumed { received: 0 });
    assert_eq!(ledger.check(&request(11, 0)), Err(Refusal::Rejected(consumed)));
    assert_eq!(ledger.check(&request(11, 5)), Ok(()), "ahead of the nonce: ordered, then rejected as out of order");
    assert_eq!(Ledger::conflict_key(&request(11, 0)), Ledger::conflict_key(&first));
    assert_ne!(Ledger::conflict_key(&request(10, 1)), Ledger::conflict_key(&first));
}

#[test]
fn a_nonce_is_consumed_once_a_transfer_with_it_executed_and_not_before() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
    assert!(!ledger.nonce_consumed(&transfer(alice, bob, 1, 0)));
    assert_eq!(ledger.execute(&transfer(alice, bob, 1, 0)), TxOutcome::Committed);
    // Another transfer with the spent nonce is consumed; the next nonce and an unknown sender are not.
    let rival = Tx { id: TxId([77; 16]), ..transfer(alice, bob, 2, 0) };
    assert!(ledger.nonce_consumed(&rival));
    assert!(!ledger.nonce_consumed(&transfer(alice, bob, 1, 1)));
    assert!(!ledger.nonce_consumed(&transfer(bob, alice, 1, 0)));
}

#[test]
fn the_state_digest_covers_each_accounts_last_transfer() {
    let (_, alice) = account(1);
    let (_, bob) = account(2);
    let after = |id: u8| {
        let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
        assert_eq!(ledger.execute(&Tx { id: TxId([id; 16]), ..transfer(alice, bob, 10, 0) }), TxOutcome::Committed);
        ledger
    };
    // Same balances and nonces; another transfer last: a replay would be answered differently.
    assert_ne!(after(1).state_digest(), after(2).state_digest());
    assert_eq!(after(1).state_digest(), after(1).state_digest());
}

#[test]
fn the_ledger_refuses_an_operation_that_is_not_a_transfer_before_ordering_and_rejects_it_if_ordered() {
    use crate::app::{Application, Refusal};
    use crate::protocol::{ClientId, Request, Seq};
    let (alice_keys, alice) = account(1);
    let mut ledger = Ledger::with_genesis(&[(alice, 100)]).unwrap();
    let put = MemoryOp::Put { namespace: "ns".into(), key: "k".into(), value: b"1".to_vec(), ttl: None };
    let unsupported = TxOutcome::Rejected(RejectReason::UnsupportedOp);
    for op in [Op::Memory(put), Op::App(vec![1, 2])] {
        let nonce = ledger.account(&alice).next_nonce;
        let tx = Tx { id: TxId([nonce as u8 + 1; 16]), from: alice, nonce, op };
        let request = Request { client: ClientId(1), tx: tx.sign(&alice_keys) };
        assert_eq!(ledger.check(&request), Err(Refusal::Rejected(unsupported)));
        // Ordered anyway (a Byzantine primary): rejected, the nonce consumed, no balance moved.
        assert_eq!(
            Application::execute(&mut ledger, Seq(1), std::slice::from_ref(&request)),
            [Execution::Applied(unsupported)]
        );
        assert_eq!(ledger.account(&alice), Account { next_nonce: nonce + 1, ..ledger.account(&alice) });
        assert_eq!(ledger.account(&alice).balance, 100);
    }
    assert_eq!(ledger.totals().rejected_by_reason().get("unsupported-op"), Some(&2));
}
