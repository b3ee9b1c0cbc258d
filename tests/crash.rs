//! kill -9: a swarm in a child process (`bftswarm durability-probe`) is
//! killed with SIGKILL at random moments, more than twenty times, and started
//! again from the same home each time. Afterwards every transfer that had been
//! acknowledged to the client is committed, every validator holds the same
//! ledger, and no validator ever signed two different messages for one slot
//! (every log is read after every kill and compared with all earlier reads).
//!
//! `BFTSWARM_CRASH_SEED=N cargo test --test crash` replays one schedule of kills.

use bftswarm::app::{Application, SwarmApp};
use bftswarm::cli::probe::ProbeWorkload;
use bftswarm::ledger::AccountId;
use bftswarm::protocol::{AgentId, Message, MessageKind, SignedMessage};
use bftswarm::rng::SeededRng;
use bftswarm::wal::{read_state, WalOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const VALIDATORS: [&str; 4] = ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-4"];
const KILLS: usize = 22;

fn probe(home: &Path, round: usize, transfers: usize, settle: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bftswarm"));
    command
        .args(["durability-probe", "--round", &round.to_string(), "--transfers", &transfers.to_string()])
        .arg("--home")
        .arg(home)
        // Small checkpoints, so that kills also land in snapshots and truncations.
        .env("BFTSWARM_CONSENSUS__CHECKPOINT_INTERVAL", "5")
        .env("BFTSWARM_CONSENSUS__VIEW_CHANGE_TIMEOUT_MS", "1000")
        .env("BFTSWARM_CLIENT__REQUEST_RETRY_MS", "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if settle {
        command.arg("--settle");
    }
    command.spawn().expect("the probe starts")
}

fn collect_lines(child: &mut Child) -> JoinHandle<Vec<String>> {
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect())
}

/// Every message a validator signed, by (signer, kind, view, seq): one signature each, ever.
#[derive(Default)]
struct Signed(BTreeMap<(AgentId, MessageKind, u64, u64), [u8; 64]>);

impl Signed {
    fn slot(message: &SignedMessage) -> Option<(AgentId, MessageKind, u64, u64)> {
        let (view, seq) = match message.message {
            Message::PrePrepare { view, seq, .. } | Message::Prepare { view, seq, .. } => (view.0, seq.0),
            Message::Commit { view, seq, .. } => (view.0, seq.0),
            Message::Checkpoint { seq, .. } => (0, seq.0),
            // A replica may ask for a view again after leaving its view change (src/sim/restart.rs).
            _ => return None,
        };
        Some((message.sender, message.message.kind(), view, seq))
    }

    /// Reads every validator's log and fails on a second, different signature for a slot.
    fn audit(&mut self, home: &Path, when: &str) -> usize {
        let wal = WalOptions::under_home(home, true);
        for (i, name) in VALIDATORS.iter().enumerate() {
            let (_, state) = read_state::<SwarmApp>(&wal.path_of(name), name).unwrap_or_else(|e| panic!("{when}: {e}"));
            for message in state.own_messages(AgentId(i as u32)) {
                let Some(slot) = Signed::slot(&message) else { continue };
                let signature = message.signature.0;
                let known = self.0.entry(slot).or_insert(signature);
                assert!(*known == signature, "{when}: {name} signed two different messages for {slot:?}");
            }
        }
        self.0.len()
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_transfer_and_no_validator_equivocates() {
    let seed = std::env::var("BFTSWARM_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_251_121);
    eprintln!("crash schedule seed {seed}; replay: BFTSWARM_CRASH_SEED={seed} cargo test --test crash");
    let mut rng = SeededRng::new(seed);
    let home = tempfile::tempdir().unwrap();
    let home = home.path().join("swarm");
    let mut acked: Vec<(usize, u64)> = Vec::new();
    let mut signed = Signed::default();
    let mut killed = 0;
    let started = Instant::now();
    for round in 0..KILLS {
        let mut child = probe(&home, round, 2_000, false);
        let lines = collect_lines(&mut child);
        std::thread::sleep(Duration::from_millis(rng.between(80, 700)));
        if child.try_wait().expect("the probe can be waited for").is_none() {
            killed += 1;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let lines = lines.join().unwrap();
        acked.extend(lines.iter().filter_map(|line| parse_ack(line)));
        signed.audit(&home, &format!("after kill {round}"));
    }
    assert!(killed >= 20, "only {killed} probes were still running when killed");
    assert!(acked.len() > 100, "only {} transfers were acknowledged in all", acked.len());

    let mut child = probe(&home, KILLS, 40, true);
    let lines = collect_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    let status = child.wait().unwrap();
    let lines = lines.join().unwrap();
    assert!(status.success(), "the final probe failed: {lines:?}");
    acked.extend(lines.iter().filter_map(|line| parse_ack(line)));
    let validators: Vec<Vec<&str>> =
        lines.iter().filter(|l| l.starts_with("validator ")).map(|l| l.split(' ').collect()).collect();
    assert_eq!(validators.len(), 4, "{lines:?}");
    for fields in &validators {
        assert_eq!(fields[2..4], validators[0][2..4], "validators disagree: {validators:?}");
        assert_eq!(fields[4], "0", "{} found evidence of equivocation", fields[1]);
    }
    let audited = signed.audit(&home, "at the end");

    // What each validator's log holds: the ledger every validator agrees on,
    // with every acknowledged transfer in it.
    let workload = ProbeWorkload::new().unwrap();
    let wal = WalOptions::under_home(&home, true);
    let genesis = SwarmApp::new(workload.genesis.clone());
    let apps: Vec<SwarmApp> =
        VALIDATORS.iter().map(|name| read_state(&wal.path_of(name), name).unwrap().1.app(&genesis)).collect();
    let ledgers: Vec<_> = apps.iter().map(SwarmApp::ledger).collect();
    for ((name, ledger), app) in VALIDATORS.iter().zip(&ledgers).zip(&apps) {
        assert_eq!(app.digest().to_string(), validators[0][3], "{name}'s log holds another state");
        assert_eq!(ledger.balance_sum(), ledger.total_supply() as u128);
    }
    for (from, nonce) in &acked {
        let account = ledgers[0].account(&AccountId(workload.accounts[*from].public_key()));
        assert!(account.next_nonce > *nonce, "acknowledged transfer {from}/{nonce} is lost");
    }
    eprintln!(
        "{killed} kills, {} acknowledged transfers kept, {audited} signed messages audited, {:.1} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `ack <account> <nonce> committed` -> (account, nonce).
fn parse_ack(line: &str) -> Option<(usize, u64)> {
    let mut fields = line.strip_prefix("ack ")?.split(' ');
    let from = fields.next()?.parse().ok()?;
    let nonce = fields.next()?.parse().ok()?;
    (fields.next()? == "committed").then_some((from, nonce))
}
