//! The examples' behaviour, asserted: each example is a thin `main` over
//! functions that these tests call.

#[allow(dead_code)]
#[path = "../examples/custom_app.rs"]
mod custom_app;

#[allow(dead_code)]
#[path = "../examples/custom_agent.rs"]
mod custom_agent;

#[allow(dead_code)]
#[path = "../examples/custom_hook.rs"]
mod custom_hook;

#[allow(dead_code)]
#[path = "../examples/custom_validator.rs"]
mod custom_validator;

use bftswarm::actors::BatchExecuted;
use bftswarm::events::{EventKind, LifecycleEvent};
use bftswarm::ledger::{Execution, Ledger, RejectReason, TxOutcome};
use bftswarm::protocol::{AgentId, Batch, ClientId, Executed, Request, Seq, View};
use bftswarm::workload::{Workload, WorkloadSpec};
use custom_agent::{AuditReport, Auditor};
use std::sync::{Arc, Mutex};

#[actix::test]
async fn custom_agent_auditor_re_executes_every_batch_and_matches_every_checkpoint() {
    let (report, executed) = custom_agent::audited_run(600).await;
    assert!(report.alarms.is_empty(), "{:?}", report.alarms);
    assert!(executed >= 4, "{executed}");
    assert_eq!(report.batches_applied, executed, "{report:?}");
    // checkpoint_interval = 4: every fourth batch is a stable checkpoint.
    assert!(report.checkpoints_matched >= report.batches_applied / 4 - 1, "{report:?}");
}

/// A user's actor holds a seat in the committee: it votes, executes the same
/// ledger as the built-in validators, and does its own thing (flags large transfers).
#[actix::test]
async fn custom_validator_takes_part_in_consensus_and_flags_every_large_transfer() {
    let (report, digests, committed) = custom_validator::run_with_compliance(400, 900).await;
    assert_eq!(committed.len(), 400);
    assert_eq!(digests.len(), 3, "the three built-in validators");
    assert!(digests.iter().all(|digest| *digest == report.ledger_digest), "{digests:?} vs {report:?}");
    let mut expected: Vec<u64> = committed.into_iter().filter(|amount| *amount > 900).collect();
    let mut flagged = report.flagged.clone();
    expected.sort_unstable();
    flagged.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(flagged, expected);
    assert_eq!(report.rejected_inbound, 0);
}

/// What every run of the task board example must show, over TCP or not.
fn assert_the_board_story(run: &custom_app::BoardRun, tasks: u64) {
    use bftswarm::app::task_board::TaskState;
    assert!(run.disagreeing.is_empty(), "{run:?}");
    assert_eq!((run.steps, run.committed), (2 * tasks as usize, 2 * tasks as usize), "{run:?}");
    // The equivocating primary proven, quarantined and replaced through a membership epoch.
    let convicted = [("board-1".to_owned(), "equivocation".to_owned(), Some("board-8".to_owned()))];
    assert_eq!(run.convicted, convicted, "{run:?}");
    assert_eq!(run.members.len(), 7, "{run:?}");
    assert!(run.members.contains(&"board-8".to_owned()) && !run.members.contains(&"board-1".to_owned()), "{run:?}");
    assert!(run.views_installed >= 1, "{run:?}");
    assert!(run.snapshots_installed_by_cut_off >= 1, "{run:?}");
    assert!(run.crashed_rebuilt_from_log, "{run:?}");
    // Each honest task done by the agent whose share it is, the forged and
    // stolen completions of task 0 notwithstanding.
    assert_eq!(run.board.len(), tasks as usize + 2, "{run:?}");
    for (task, state) in run.board[..tasks as usize].iter().enumerate() {
        assert_eq!(*state, TaskState::Done(run.honest[task % run.honest.len()]), "task {task}");
    }
    // The two claims signed with one nonce: exactly one executed.
    let byzantine = run.byzantine.unwrap();
    let prizes = &run.board[tasks as usize..];
    assert_eq!(prizes.iter().filter(|state| **state == TaskState::Claimed(byzantine)).count(), 1, "{prizes:?}");
    assert_eq!(prizes.iter().filter(|state| **state == TaskState::Open).count(), 1, "{prizes:?}");
}

/// The user's own application on `Swarm<TaskBoard>`: a Byzantine primary
/// proven, convicted, voted out and replaced; a Byzantine agent that gets one
/// claim of its two and no forged or stolen completion; a validator caught up
/// by state transfer, one rebuilt from its log, and one board on all of them.
#[actix::test]
async fn custom_app_task_board_survives_a_byzantine_primary_and_agent_a_view_change_and_a_state_transfer() {
    let home = tempfile::tempdir().unwrap();
    let run = custom_app::run_task_board(24, home.path(), false).await;
    assert_the_board_story(&run, 24);
    assert!(run.remote.is_empty(), "{run:?}");
    // The five honest founders connected when it was sent (the replacement too, if it had joined).
    assert!(run.forgery_refused_by >= 5, "{run:?}");
}

/// The same with two of the validators in node processes (threads with a
/// System of their own each), joined to the swarm's hub over loopback TCP:
/// their board's digest is the others'.
#[actix::test]
async fn custom_app_task_board_runs_the_same_with_validators_over_tcp() {
    let home = tempfile::tempdir().unwrap();
    let run = custom_app::run_task_board(24, home.path(), true).await;
    assert_the_board_story(&run, 24);
    assert_eq!(run.remote, ["board-3", "board-6"], "{run:?}");
    assert!(run.forgery_refused_by >= 3, "{run:?}");
}

/// A genesis and one honest executed batch of three transfers at seq 1.
fn honest_batch() -> (Ledger, Executed) {
    let spec = WorkloadSpec {
        seed: 1,
        accounts: 4,
        transactions: 3,
        initial_balance: 1_000,
        max_amount: 10,
        overdraft_ratio: 0.0,
    };
    let workload = Workload::generate(&spec);
    let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
    let requests: Vec<Request> = workload.transfers.into_iter().map(|tx| Request { client: ClientId(1), tx }).collect();
    let mut ledger = genesis.clone();
    let executions = requests.iter().map(|r| ledger.apply(&r.tx.tx)).collect();
    let batch = Arc::new(Batch::of(requests));
    (genesis, Executed { seq: Seq(1), view: View(0), digest: batch.digest(), batch, executions })
}

fn audit(genesis: Ledger, batches: Vec<Executed>) -> AuditReport {
    let report = Arc::new(Mutex::new(AuditReport::default()));
    let mut auditor = Auditor::new(genesis, report.clone(), 16);
    for executed in batches {
        auditor.check_batch(0, executed);
    }
    let report = report.lock().unwrap().clone();
    report
}

#[test]
fn custom_agent_auditor_is_silent_on_an_honest_batch_and_alarms_on_tampered_ones() {
    let (genesis, honest) = honest_batch();
    assert!(honest.executions.iter().all(|e| *e == Execution::Applied(TxOutcome::Committed)));
    let report = audit(genesis.clone(), vec![honest.clone()]);
    assert_eq!((report.batches_applied, report.alarms.len()), (1, 0), "{report:?}");

    // A validator that reports an outcome the ledger does not produce.
    let mut lying = honest.clone();
    lying.executions[1] = Execution::Applied(TxOutcome::Rejected(RejectReason::ZeroAmount));
    let report = audit(genesis.clone(), vec![lying]);
    assert_eq!(report.alarms.len(), 1, "{report:?}");
    assert!(report.alarms[0].contains("re-executes to Applied(Committed)"), "{report:?}");

    // A batch whose contents were changed after it was agreed on.
    let mut tampered = honest.clone();
    let mut batch = (*tampered.batch).clone();
    batch.requests[0].tx.tx.as_transfer_mut().unwrap().amount += 1;
    tampered.batch = Arc::new(batch);
    let report = audit(genesis.clone(), vec![tampered]);
    assert_eq!(report.batches_applied, 0);
    assert!(report.alarms[0].contains("does not match its digest"), "{report:?}");

    // A second validator that executed a different outcome for the same seq.
    let mut other = honest.clone();
    other.executions[2] = Execution::Applied(TxOutcome::Rejected(RejectReason::SelfTransfer));
    let report = audit(genesis, vec![honest, other]);
    assert_eq!(report.alarms.len(), 1, "{report:?}");
    assert!(report.alarms[0].contains("different batch or outcome at seq 1"), "{report:?}");
}

#[actix::test]
async fn custom_hook_hears_the_launch_and_every_committed_batch() {
    let record = custom_hook::watched_run(150).await;
    let first = &record.events[0];
    assert!(matches!(first, LifecycleEvent::SwarmInitialized { swarm, validators: 4, .. } if swarm == "watched-swarm"));
    let spawned: Vec<AgentId> = record
        .events
        .iter()
        .filter_map(|e| match e {
            LifecycleEvent::AgentSpawned { agent, .. } => Some(*agent),
            _ => None,
        })
        .collect();
    assert_eq!(spawned, vec![AgentId(0), AgentId(1), AgentId(2), AgentId(3)]);
    assert_eq!(custom_hook::committed_count(&record), 150);
    assert!(record.events.iter().all(|e| custom_hook::ByzantineWatch::kinds().contains(e.kind())));
    assert!(record.events.iter().any(|e| e.kind() == EventKind::TransactionCommitted));
    assert!(record.to_replace.is_empty(), "an honest swarm has nobody to replace");
}

/// The tutorial's onMaliciousDetected: an equivocating primary is caught by
/// honest validators, the hook persists the detection and requests a
/// replacement, and the swarm swaps the accused for a fresh validator through
/// consensus while every transfer commits.
#[actix::test]
async fn custom_hook_persists_a_detection_and_the_accused_is_replaced() {
    let run = custom_hook::replacement_run(600).await;
    assert_eq!(run.committed, 600);
    assert_eq!(run.record.to_replace, vec![AgentId(0)], "only the equivocating primary is accused");
    let persisted = run.persisted.as_array().expect("detections persisted as a JSON list");
    assert!(!persisted.is_empty());
    assert!(persisted.iter().all(|d| d["detected_agent"] == 0 && d["fault_type"] == "equivocation"), "{persisted:?}");
    assert_eq!(run.replacements.len(), 1);
    let change = &run.replacements[0];
    assert_eq!((change.epoch, change.validators), (1, 7));
    assert_eq!(change.removed, ["bft-agent-1"]);
    assert!(
        !run.members.contains(&"bft-agent-1".to_string()) && run.members.contains(&change.added[0]),
        "{:?}",
        run.members
    );
}

#[test]
fn custom_agent_auditor_accepts_batches_from_every_validator() {
    let (genesis, honest) = honest_batch();
    let report = Arc::new(Mutex::new(AuditReport::default()));
    let mut auditor = Auditor::new(genesis, report.clone(), 16);
    for agent in 0..4 {
        let executed = BatchExecuted { agent: AgentId(agent), executed: honest.clone() };
        auditor.check_batch(executed.agent.0, executed.executed);
    }
    let report = report.lock().unwrap().clone();
    assert_eq!((report.batches_applied, report.alarms.len()), (1, 0), "{report:?}");
}

/// `cargo test` builds the examples next to the test binaries: run `embed` as a user would.
#[test]
fn embed_example_runs_a_swarm_from_a_config_file_and_all_validators_agree() {
    let test_binary = std::env::current_exe().expect("the test knows its own path");
    let Some(profile_dir) = test_binary.parent().and_then(|deps| deps.parent()) else {
        panic!("unexpected test binary location {}", test_binary.display())
    };
    let example = profile_dir.join("examples").join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    let output = std::process::Command::new(&example)
        .args(["config/default.toml", "200"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", example.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("200 of 200 transfers committed"), "{stdout}");
    assert!(stdout.contains("all 4 validators hold the same ledger"), "{stdout}");
}
