//! The ledger from outside through the real binary and a real daemon: a
//! user's own key file signs transfers the daemon only relays, balances are
//! certified and checked offline, a replay is refused as nonce-consumed, a
//! tampered signature gets a clear 400 and a wrong key file a one-line error.

mod common;

use bftswarm::crypto::Keypair;
use common::TestSwarm;
use serde_json::json;

fn active_n4() -> TestSwarm {
    let (swarm, _) = TestSwarm::init(&["--max-agents", "4"]);
    let spawned = swarm.json(&["agent", "spawn", "--count", "4", "--type", "validator", "--json"]);
    assert_eq!(spawned["swarm_status"], "active", "{spawned}");
    swarm
}

/// A validator's own key file in the home: a genesis account to fund the user from.
fn validator_key(swarm: &TestSwarm, name: &str) -> String {
    let keys = std::fs::read_dir(swarm.home.join("keys")).unwrap();
    let file = keys
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().contains(name))
        .unwrap_or_else(|| panic!("no key file for {name}"));
    file.to_str().unwrap().to_owned()
}

/// POSTs `signed` (a signed transaction's bytes) to the control API with the home's token.
fn post_tx(swarm: &TestSwarm, signed: &[u8]) -> String {
    let addr = std::fs::read_to_string(swarm.home.join("daemon.addr")).unwrap();
    let token = std::fs::read_to_string(swarm.home.join("token")).unwrap();
    let hex: String = signed.iter().map(|b| format!("{b:02x}")).collect();
    let body = json!({ "signed": hex }).to_string();
    let request = format!(
        "POST /v1/tx HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        token.trim(),
        body.len()
    );
    common::raw_request(addr.trim(), &request)
}

#[test]
fn n4f1_a_users_own_signed_transfers_are_ordered_and_its_balance_is_certified() {
    let swarm = active_n4();
    let user = Keypair::generate();
    let user_key = swarm.path("me.pem");
    std::fs::write(&user_key, user.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    let user_key = user_key.to_str().unwrap().to_owned();
    let me = user.public_key().to_string();

    // Never funded: certified absent, nothing to spend, nonce 0.
    let before = swarm.json(&["account", "show", &me, "--verify", "--json"]);
    assert_eq!((&before["verified"], &before["balance"], &before["next_nonce"]), (&json!(true), &json!(0), &json!(0)));

    // Funded from a validator's genesis account with its own key file.
    let funder = validator_key(&swarm, "bft-agent-1");
    let funding = swarm.json(&["tx", "submit", "--key", &funder, "--to", &me, "--amount", "500", "--json"]);
    assert_eq!(funding["outcome"], "committed", "{funding}");
    assert!(funding["validators"].as_array().unwrap().len() >= 2, "f+1 replied alike: {funding}");

    let paid = swarm.json(&["tx", "submit", "--key", &user_key, "--to", "bft-agent-2", "--amount", "120", "--json"]);
    assert_eq!((&paid["outcome"], &paid["nonce"]), (&json!("committed"), &json!(0)), "{paid}");
    assert!(paid["seq"].as_u64() > funding["seq"].as_u64(), "{paid} after {funding}");
    let shown = swarm.json(&["account", "show", &me, "--verify", "--json"]);
    assert_eq!((&shown["verified"], &shown["balance"], &shown["next_nonce"]), (&json!(true), &json!(380), &json!(1)));
    let signers = shown["signers"].as_array().unwrap();
    assert!(signers.len() >= 3 && signers.iter().all(|s| s.as_str().unwrap().starts_with("bft-agent-")), "{shown}");
    assert!(shown["checkpoint_seq"].as_u64() >= paid["seq"].as_u64(), "{shown} {paid}");
    let agreed = swarm.json(&["account", "show", &me]);
    assert_eq!(agreed, json!({"balance": 380, "next_nonce": 1}));

    // The spent nonce again: rejected, nothing moves.
    let replay =
        ["tx", "submit", "--key", &user_key, "--to", "bft-agent-2", "--amount", "120", "--nonce", "0", "--json"];
    let replayed = swarm.json(&replay);
    assert_eq!(
        (&replayed["outcome"], &replayed["reason"]),
        (&json!("rejected"), &json!("nonce-consumed")),
        "{replayed}"
    );
    let over = swarm.json(&["tx", "submit", "--key", &user_key, "--to", "bft-agent-2", "--amount", "9999", "--json"]);
    assert_eq!((&over["outcome"], &over["reason"]), (&json!("rejected"), &json!("insufficient-funds")), "{over}");
    // A refused transfer at its nonce still consumes the nonce (the ledger's rule), and moves nothing.
    assert_eq!(swarm.json(&["account", "show", &me]), json!({"balance": 380, "next_nonce": 2}));

    // A transfer whose signature no longer matches it, posted as any client
    // could: a clear 400, and nothing moves.
    let user_id = bftswarm::ledger::AccountId(user.public_key());
    let to = bftswarm::ledger::AccountId(Keypair::generate().public_key());
    let tx = bftswarm::app::Tx::transfer(bftswarm::daemon::tx_id(&user_id, 1), user_id, to, 5, 1);
    let mut signed = tx.sign(&user);
    signed.tx.as_transfer_mut().unwrap().amount = 300;
    let answer = post_tx(&swarm, &postcard::to_allocvec(&signed).unwrap());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("signature does not verify against its sender"), "{answer}");
    let garbage = post_tx(&swarm, b"not a transaction");
    assert!(garbage.starts_with("HTTP/1.1 400") && garbage.contains("does not decode"), "{garbage}");
    assert_eq!(swarm.json(&["account", "show", &me]), json!({"balance": 380, "next_nonce": 2}));

    // An account that is neither a validator's name nor a key.
    let unknown = swarm.fails(&["account", "show", "bft-agent-9"], 2);
    assert!(unknown.contains("neither a validator's name nor a 64-hex-digit public key"), "{unknown}");

    // A wrong key file: one line naming the file.
    let not_a_key = swarm.path("notes.txt");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let wrong = swarm.fails(&["tx", "submit", "--key", not_a_key.to_str().unwrap(), "--to", &me, "--amount", "1"], 2);
    assert!(wrong.trim().lines().count() == 1 && wrong.contains("notes.txt"), "{wrong}");
    swarm.json(&["swarm", "stop"]);
}
