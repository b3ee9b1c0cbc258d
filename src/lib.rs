pub mod config;
pub mod crypto;
pub mod ledger;
pub mod protocol;
pub mod rng;
pub mod sim;
pub mod workload;
