//! The deterministic simulation over many seeds. A failure prints each failing
//! seed with the one-line command that replays it.

use bftswarm::sim::{self, Scenario, SimConfig, SimReport};

/// Seeds per scenario; CI runs the default (10,480 seeds in all), a soak run
/// raises it. Cheap scenarios (lossy network, mixed faults, crashes and
/// damaged logs, silent or slow primaries) run the most; those whose runs are
/// long (equivocating primary, partition, lagging validator, the retired
/// coalition's reconfiguration) run fewer. A failing seed prints the one
/// line that replays it.
fn seed_count(default: u64) -> u64 {
    std::env::var("BFTSWARM_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the seeds on every core, in a fixed assignment so results do not depend on timing.
fn run_seeds(seeds: std::ops::Range<u64>, config: impl Fn(u64) -> SimConfig + Sync) -> Vec<SimReport> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let config = &config;
    let seeds = &seeds;
    let mut reports: Vec<SimReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    seeds
                        .clone()
                        .filter(|seed| seed % threads == worker)
                        .map(|seed| sim::run(&config(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a simulation thread panicked")).collect()
    });
    reports.sort_by_key(|r| r.seed);
    reports
}

fn assert_all_pass(reports: &[SimReport]) {
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!("seed {} (n = {}): {:?}\n  replay: {}", r.seed, r.validators, r.violations, r.replay_command())
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} seeds failed:\n{}", failures.len(), reports.len(), failures.join("\n"));
}

#[test]
fn n4_to_n7_lossy_network_keeps_safety_and_commits_everything_after_healing() {
    let reports = run_seeds(0..seed_count(1000) * 3 / 2, |seed| SimConfig::from_seed(seed, Scenario::LossyNetwork));
    assert_all_pass(&reports);
    let completed: usize = reports.iter().map(|r| r.completed).sum();
    let expected: usize = reports.iter().map(|r| r.transactions).sum();
    assert_eq!(completed, expected);
    // The runs did reach checkpoints and garbage collection, not just the first batches.
    assert!(reports.iter().filter(|r| r.highest_executed > 6).count() > reports.len() / 2);
}

#[test]
fn equivocating_primary_never_splits_honest_replicas_and_is_voted_out() {
    let reports = run_seeds(0..seed_count(1000) / 2, |seed| SimConfig::from_seed(seed, Scenario::EquivocatingPrimary));
    assert_all_pass(&reports);
    // The equivocation was seen and proven by honest replicas in most runs,
    // and the detector convicted the primary on that evidence (and nobody else:
    // a false conviction fails the run).
    assert!(reports.iter().filter(|r| r.evidence > 0).count() > reports.len() / 2);
    let convicted = reports.iter().filter(|r| r.convicted == [bftswarm::protocol::AgentId(0)]).count();
    assert!(convicted > reports.len() / 2, "only {convicted} of {} runs convicted the primary", reports.len());
}

#[test]
fn silent_primary_is_replaced_by_a_view_change_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000), |seed| SimConfig::from_seed(seed, Scenario::SilentPrimary));
    assert_all_pass(&reports);
    // The crash did force view changes: most runs ended beyond view 0.
    let changed = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.views_installed > 0)).count();
    assert!(changed > reports.len() / 2, "only {changed} of {} runs changed view", reports.len());
}

#[test]
fn partitioned_minority_or_majority_recovers_after_healing_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 3 / 10, |seed| SimConfig::from_seed(seed, Scenario::Partition));
    assert_all_pass(&reports);
    // A primary cut off from the majority is voted out while requests wait: a
    // censorship strike against an honest agent, never enough to convict it.
    let struck = reports.iter().filter(|r| r.honest_primary_strikes > 0).count();
    assert!(struck > reports.len() / 5, "only {struck} of {} runs struck the cut-off primary", reports.len());
    assert!(reports.iter().all(|r| r.honest_primary_strikes < 3));
}

#[test]
fn f_validators_with_random_faults_never_break_safety_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 3 / 2, |seed| SimConfig::from_seed(seed, Scenario::MixedFaults));
    assert_all_pass(&reports);
    // Faults that leave proof (equivocation, invalid proposals) or f+1 accusations
    // (corrupted signatures) are convicted; no honest agent ever is (that fails the run).
    let convicting = reports.iter().filter(|r| !r.convicted.is_empty()).count();
    assert!(convicting > reports.len() / 10, "only {convicting} of {} runs convicted anyone", reports.len());
}

#[test]
fn validators_added_then_removed_under_load_take_effect_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 2 / 5, |seed| SimConfig::from_seed(seed, Scenario::Reconfiguration));
    assert_all_pass(&reports);
    // Both changes took effect (else ReconfigurationIncomplete) and the added validators caught up by state transfer.
    assert!(reports.iter().all(|r| r.epoch == 2));
    let transferred = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.snapshots_installed > 0)).count();
    assert!(transferred > reports.len() / 2, "only {transferred} of {} runs used state transfer", reports.len());
}

#[test]
fn a_validator_ten_checkpoints_behind_catches_up_by_state_transfer() {
    let reports =
        run_seeds(0..seed_count(1000) * 3 / 10, |seed| SimConfig::from_seed(seed, Scenario::LaggingValidator));
    assert_all_pass(&reports);
    let transferred = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.snapshots_installed > 0)).count();
    assert!(transferred > reports.len() / 2, "only {transferred} of {} runs used state transfer", reports.len());
}

#[test]
fn a_slow_primary_is_replaced_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 4 / 5, |seed| SimConfig::from_seed(seed, Scenario::SlowPrimary));
    assert_all_pass(&reports);
    let changed = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.views_installed > 0)).count();
    assert!(changed > reports.len() / 2, "only {changed} of {} runs replaced the slow primary", reports.len());
    // The slow primary is honest here: f+1 backups saw requests wait, so it
    // earns one censorship strike (it looks like a censor for a view), but it
    // leads one view only and three strikes are needed; a conviction would
    // fail the run as a FalseConviction.
    let struck = reports.iter().filter(|r| r.honest_primary_strikes == 1).count();
    assert!(struck > reports.len() / 2, "only {struck} of {} runs struck the slow primary", reports.len());
}

#[test]
fn f_byzantine_agents_twins_and_false_accusers_never_convict_the_honest_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000), |seed| SimConfig::from_seed(seed, Scenario::ByzantineAgents));
    assert_all_pass(&reports);
    let runs = reports.len();
    // Twins did equivocate where an honest replica could compare, and every
    // such equivocation convicted (else EquivocationNotConvicted fails the run).
    let delivered = reports.iter().filter(|r| r.delivered_equivocations > 0).count();
    assert!(delivered > runs / 10, "only {delivered} of {runs} runs delivered an equivocation");
    let convicting = reports.iter().filter(|r| !r.convicted.is_empty()).count();
    assert!(convicting > runs / 4, "only {convicting} of {runs} runs convicted anyone");
}

/// f validators lie together, accusing one honest agent (one of them as
/// twins, two instances sharing a key, each accusing): the f+1 rule and
/// counting accusers rather than reports keep the honest agent free.
#[test]
fn f_false_accusers_with_or_without_a_twin_never_convict_the_honest() {
    for twin in [false, true] {
        let reports = run_seeds(0..seed_count(1000) / 25, |seed| {
            SimConfig::from_seed(seed, Scenario::ByzantineAgents).with_false_accusers(twin)
        });
        assert_all_pass(&reports);
    }
}

#[test]
fn same_seed_replays_the_same_run() {
    for scenario in Scenario::ALL {
        let config = SimConfig::from_seed(17, scenario);
        let (a, b) = (sim::run(&config), sim::run(&config));
        assert_eq!((a.events, a.sim_time_us, a.completed), (b.events, b.sim_time_us, b.completed));
        assert_eq!(a.violations, b.violations);
    }
}

/// `BFTSWARM_SIM_SEED=N BFTSWARM_SIM_SCENARIO=name cargo test --test simulation replay_one_seed -- --nocapture`
#[test]
fn replay_one_seed() {
    let seed = std::env::var("BFTSWARM_SIM_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let scenario = std::env::var("BFTSWARM_SIM_SCENARIO")
        .ok()
        .map(|name| Scenario::parse(&name).unwrap_or_else(|| panic!("unknown scenario {name}")))
        .unwrap_or(Scenario::LossyNetwork);
    let config = SimConfig::from_seed(seed, scenario);
    let report = sim::run(&config);
    println!("{config:#?}\n{report:#?}");
    assert!(report.passed(), "{:?}", report.violations);
}

#[test]
fn crash_restart_from_the_persisted_state_never_equivocates_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 6 / 5, |seed| SimConfig::from_seed(seed, Scenario::CrashRestart));
    assert_all_pass(&reports);
}

#[test]
fn retired_founders_forging_checkpoint_proofs_and_snapshots_convince_nobody_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) / 5, |seed| SimConfig::from_seed(seed, Scenario::RetiredCoalition));
    assert_all_pass(&reports);
    assert!(reports.iter().all(|r| r.epoch == 3), "every founder was retired, and a validator joined after");
    let forged = reports.iter().filter(|r| r.forged_messages > 0).count();
    assert!(forged > reports.len() / 2, "only {forged} of {} runs forged anything", reports.len());
    // f accomplices among the members that stay lie in the view-change plane too.
    let lied = reports.iter().filter(|r| r.lies_in_view_changes > 0).count();
    eprintln!("accomplices lied in view changes in {lied} of {} runs", reports.len());
    assert!(lied > reports.len() / 2, "accomplices lied in view changes in only {lied} of {} runs", reports.len());
}

#[test]
fn crashes_with_damaged_logs_never_equivocate_never_convict_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 6 / 5, |seed| SimConfig::from_seed(seed, Scenario::DamagedLogs));
    assert_all_pass(&reports);
    let damaged = reports.iter().filter(|r| r.damaged_restarts > 0).count();
    assert!(damaged > reports.len() / 2, "only {damaged} of {} runs damaged a log", reports.len());
    let resumed = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.passive_bound_learned > 0)).count();
    assert!(
        resumed > reports.len() / 3,
        "only {resumed} of {} runs saw a passive validator learn its bound",
        reports.len()
    );
}

#[test]
fn more_than_f_validators_losing_their_logs_at_once_never_equivocate_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) * 3 / 10, |seed| SimConfig::from_seed(seed, Scenario::LostLogsBeyondF));
    assert_all_pass(&reports);
    let beyond_f = reports.iter().filter(|r| r.damaged_restarts > (r.validators - 1) / 3).count();
    assert!(beyond_f > reports.len() * 9 / 10, "only {beyond_f} of {} runs lost more than f logs", reports.len());
}

#[test]
fn f_liars_in_the_view_change_plane_convince_nobody_and_every_transfer_commits() {
    let reports = run_seeds(0..seed_count(1000) / 5, |seed| SimConfig::from_seed(seed, Scenario::ViewChangeLiars));
    assert_all_pass(&reports);
    let lied = reports.iter().filter(|r| r.lies_told > 0).count();
    let in_view_changes = reports.iter().filter(|r| r.lies_in_view_changes > 0).count();
    eprintln!("{lied} of {} runs lied, {in_view_changes} in the view-change plane", reports.len());
    assert!(lied > reports.len() * 3 / 5, "only {lied} of {} runs told a lie", reports.len());
    assert!(
        in_view_changes > reports.len() / 3,
        "only {in_view_changes} of {} runs lied in a VIEW-CHANGE or NEW-VIEW",
        reports.len()
    );
    let rejected = reports.iter().filter(|r| r.replicas.iter().any(|x| x.stats.dropped_out_of_window > 0)).count();
    assert!(rejected > reports.len() / 4, "only {rejected} of {} runs met a window check", reports.len());
}

/// One run of an application scenario, as [`assert_application_runs`] reads it.
struct AppRun<'a> {
    seed: u64,
    validators: usize,
    violations: &'a [String],
    answered_all: bool,
    caught_up_by_snapshot: bool,
}

/// What every application scenario must show over its seeds: no violation,
/// every request answered, and the cut-off validator caught up by the
/// application's snapshot in more than three runs in four.
fn assert_application_runs<'a>(runs: impl Iterator<Item = AppRun<'a>>) {
    let runs: Vec<AppRun> = runs.collect();
    let failures: Vec<String> = runs
        .iter()
        .filter(|r| !r.violations.is_empty())
        .map(|r| format!("seed {} (n = {}): {:?}", r.seed, r.validators, r.violations))
        .collect();
    assert!(failures.is_empty(), "{} of {} seeds failed:\n{}", failures.len(), runs.len(), failures.join("\n"));
    assert!(runs.iter().all(|r| r.answered_all));
    let transferred = runs.iter().filter(|r| r.caught_up_by_snapshot).count();
    assert!(transferred > runs.len() * 3 / 4, "{transferred} of {} installed a snapshot", runs.len());
}

/// The second application through the same interface: the task board on a
/// lossy network, with a validator cut off until it needs the board's
/// snapshot, and a Byzantine agent stealing claims and signing two steps on
/// one nonce. Agreement on every batch and on the application's digest, the
/// board's rules over the agreed outcomes, every step answered.
#[test]
fn the_task_board_runs_through_the_same_replica_and_every_replica_agrees_on_its_digest() {
    let reports: Vec<_> = (0..seed_count(1000) / 10).map(sim::task_board::run).collect();
    // The cut-off validator caught up through the board's chunks, not its log.
    assert_application_runs(reports.iter().map(|r| AppRun {
        seed: r.seed,
        validators: r.validators,
        violations: &r.violations,
        answered_all: r.completed == r.steps,
        caught_up_by_snapshot: r.snapshots_installed > 0,
    }));
    // The Byzantine agent (last) never steps twice on one task, so it completes
    // nothing; it can block at most the five tasks it claims, so the honest
    // agents finish at least the other eight of the thirteen.
    for report in &reports {
        let (honest, byzantine) = report.done_by.split_at(report.done_by.len() - 1);
        assert_eq!(byzantine, [0], "seed {}", report.seed);
        assert!(honest.iter().sum::<usize>() >= 8, "seed {}: {:?}", report.seed, report.done_by);
    }
}

/// Byzantine-tolerant memory on the same replica: honest writers (entries
/// with a TTL expire mid-run), a validator that catches up by the memory's
/// snapshot, and a Byzantine writer that double-writes one nonce, forges a
/// put in another's name, corrupts its signature and replays writes.
/// Agreement on every batch and on the memory's digest, no forged or replayed
/// write, every replica's entries those the agreed writes leave, and a
/// certified answer verified offline against the committee.
#[test]
fn byzantine_tolerant_memory_agrees_expires_in_consensus_time_and_certifies_answers_offline() {
    let reports: Vec<_> = (0..seed_count(1000) / 10).map(sim::memory::run).collect();
    assert_application_runs(reports.iter().map(|r| AppRun {
        seed: r.seed,
        validators: r.validators,
        violations: &r.violations,
        answered_all: r.completed == r.steps,
        caught_up_by_snapshot: r.snapshots_installed > 0,
    }));
    let expired = reports.iter().filter(|r| r.expired > 0).count();
    assert!(expired > reports.len() * 3 / 4, "entries expired mid-run in only {expired} of {} runs", reports.len());
    for report in &reports {
        let (signers, quorum) = (report.certified_signers, report.quorum);
        assert!(signers >= quorum && quorum > 0, "seed {}: {signers} signers of {quorum}", report.seed);
    }
}
