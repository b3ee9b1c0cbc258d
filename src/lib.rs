//! bftswarm: an actor swarm whose validators agree under Byzantine faults.
//!
//! n ≥ 3f+1 validator agents order and execute signed transfers with PBFT
//! (Castro & Liskov). The protocol is a pure state machine
//! ([`protocol::Replica::step`]); the [`actors`] module runs it on actix, one
//! thread per validator, behind a supervisor hub; [`sim`] runs the same code on
//! a seeded simulated network with Byzantine agents.
//!
//! # Embedding a swarm
//!
//! ```
//! use bftswarm::actors::{Swarm, SwarmSpec};
//! use bftswarm::config::SwarmConfig;
//! use bftswarm::ledger::{Ledger, TxOutcome};
//! use bftswarm::protocol::ClientId;
//! use bftswarm::workload::{Workload, WorkloadSpec};
//! use std::sync::{atomic::AtomicU64, Arc};
//!
//! // Four validators (f = 1) from the embedded defaults.
//! let config = SwarmConfig::from_toml_str("[swarm]\nmax_agents = 4\n").unwrap();
//! // 100 transfers among 10 accounts, signed before anything runs.
//! let workload = Workload::generate(&WorkloadSpec {
//!     seed: 1, accounts: 10, transactions: 100, initial_balance: 1_000, max_amount: 10, overdraft_ratio: 0.0,
//! });
//! let genesis = Ledger::with_genesis(&workload.genesis).unwrap();
//! let spec = SwarmSpec::from_config(&config, genesis, 1).unwrap();
//!
//! actix::System::new().block_on(async move {
//!     let swarm = Swarm::launch(spec);
//!     let progress = Arc::new(AtomicU64::new(0));
//!     // The client accepts each outcome on f+1 matching signed replies.
//!     let run = swarm.run_client(ClientId(1), workload.transfers, 20, 1_000, progress).await.unwrap();
//!     assert!(run.completions.iter().all(|c| c.outcome == TxOutcome::Committed));
//!     // Every validator holds the same ledger.
//!     let statuses = swarm.settled_status(std::time::Duration::from_secs(5)).await;
//!     assert!(statuses.iter().all(|s| s.ledger_digest == statuses[0].ledger_digest));
//!     swarm.stop();
//! });
//! ```
//!
//! # Checking it under faults
//!
//! ```
//! use bftswarm::sim::{self, Scenario, SimConfig};
//!
//! // A primary that signs different batches for different backups is voted
//! // out, and no two honest validators ever execute different batches.
//! let report = sim::run(&SimConfig::from_seed(7, Scenario::EquivocatingPrimary));
//! assert!(report.passed(), "{:?}\nreplay: {}", report.violations, report.replay_command());
//! assert_eq!(report.completed, report.transactions);
//! ```

pub mod actors;
pub mod agents;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod detect;
pub mod events;
pub mod faults;
pub mod hooks;
pub mod ledger;
pub mod node;
pub mod observe;
pub mod protocol;
pub mod rng;
pub mod sim;
pub mod store;
pub mod transport;
pub mod wal;
pub mod workload;
