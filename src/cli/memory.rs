//! `bftswarm memory store|retrieve|list|search`: the swarm's replicated
//! memory. A store is ordered by consensus; a read shows what f+1 validators
//! agree on; `retrieve --verify` checks a certified answer here, offline,
//! against the committee in the home's membership record.

use super::connect::ConnectionArgs;
use super::output::print_json;
use super::CliError;
use crate::app::verify_memory_get;
use crate::daemon::membership::MembershipRecord;
use crate::daemon::{value_of, DEFAULT_NAMESPACE};
use crate::protocol::{AgentId, CertifiedAnswer, Committee, VerifiedAnswer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    #[command(subcommand)]
    pub command: MemoryCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum MemoryCommand {
    /// Store a JSON value through consensus (text that is not JSON is stored
    /// as a JSON string); returns once the swarm committed it, with its seq.
    #[command(
        after_help = "Examples:\n  bftswarm memory store --key coordination/byzantine/malicious-detections --value '[{\"agent\": \"bft-agent-5\"}]'\n  bftswarm memory store --key tasks/lease --value holder-1 --ttl 500"
    )]
    Store {
        #[arg(long, value_name = "KEY")]
        key: String,
        #[arg(long, value_name = "JSON")]
        value: String,
        #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
        namespace: String,
        /// Sequence numbers (consensus time, one per ordered batch) until the
        /// value is gone on every validator alike.
        #[arg(long, value_name = "SEQS")]
        ttl: Option<u64>,
    },
    /// Print the value the swarm agreed on under a key (the daemon's own
    /// records, such as coordination/byzantine/view-changes, when no
    /// consensus write holds the key).
    #[command(
        after_help = "Examples:\n  bftswarm memory retrieve --key coordination/byzantine/view-changes\n  bftswarm memory retrieve --key tasks/lease --verify --json"
    )]
    Retrieve {
        #[arg(long, value_name = "KEY")]
        key: String,
        /// Only the replicated memory, in this namespace [default: default].
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Print the entry with its seq and writer, not only the value.
        #[arg(long)]
        json: bool,
        /// Fetch a certified answer and check it here against the committee:
        /// a Merkle path to a state digest signed by a quorum of checkpoints.
        #[arg(long)]
        verify: bool,
        /// With --verify: check this saved certified answer instead of fetching one.
        #[arg(long, value_name = "FILE", requires = "verify")]
        proof: Option<PathBuf>,
        /// With --verify: save the certified answer to FILE (to check again offline).
        #[arg(long, value_name = "FILE", requires = "verify", conflicts_with = "proof")]
        save_proof: Option<PathBuf>,
    },
    /// List the keys of a namespace, by prefix, as the swarm agreed on them.
    #[command(after_help = "Examples:\n  bftswarm memory list --namespace default --prefix tasks/")]
    List {
        #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
        namespace: String,
        #[arg(long, value_name = "PREFIX", default_value = "")]
        prefix: String,
    },
    /// Find keys starting with PREFIX in every namespace (or one).
    #[command(after_help = "Examples:\n  bftswarm memory search coordination/")]
    Search {
        #[arg(value_name = "PREFIX")]
        prefix: String,
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
    },
}

pub fn execute(args: &MemoryArgs) -> Result<(), CliError> {
    let client = args.connection.client()?;
    match &args.command {
        MemoryCommand::Store { key, value, namespace, ttl } => {
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            let body = json!({ "key": key, "value": value, "namespace": namespace, "ttl": ttl });
            let answer: Value = client.post("/v1/memory", &body)?;
            Ok(print_json(&answer)?)
        }
        MemoryCommand::Retrieve { key, namespace, json, verify: false, .. } => {
            let mut path = format!("/v1/memory?key={}", percent_encode(key));
            if let Some(namespace) = namespace {
                path.push_str(&format!("&namespace={}", percent_encode(namespace)));
            }
            let answer: Value = client.get(&path)?;
            Ok(print_json(if *json { &answer } else { &answer["value"] })?)
        }
        MemoryCommand::Retrieve { key, namespace, json, verify: true, proof, save_proof } => {
            let namespace = namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            let certificate = match proof {
                Some(file) => read_proof(file)?,
                None => {
                    let path = format!(
                        "/v1/memory/certified?key={}&namespace={}",
                        percent_encode(key),
                        percent_encode(namespace)
                    );
                    let answer: Value = client.get(&path)?;
                    answer["certificate"].as_str().unwrap_or_default().to_owned()
                }
            };
            if let Some(file) = save_proof {
                std::fs::write(file, format!("{certificate}\n"))
                    .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", file.display())))?;
            }
            let verified = verify(&args.connection.home(), &certificate, namespace, key)?;
            Ok(print_json(if *json { &verified } else { &verified["value"] })?)
        }
        MemoryCommand::List { namespace, prefix } => {
            let path =
                format!("/v1/memory/list?namespace={}&prefix={}", percent_encode(namespace), percent_encode(prefix));
            let answer: Value = client.get(&path)?;
            Ok(print_json(&answer)?)
        }
        MemoryCommand::Search { prefix, namespace } => {
            let mut path = format!("/v1/memory/list?prefix={}", percent_encode(prefix));
            if let Some(namespace) = namespace {
                path.push_str(&format!("&namespace={}", percent_encode(namespace)));
            }
            let answer: Value = client.get(&path)?;
            Ok(print_json(&answer)?)
        }
    }
}

fn read_proof(file: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("cannot read the proof file {}: {e}", file.display())))?;
    Ok(text.trim().to_owned())
}

/// Checks a certified answer (hex of its postcard encoding) for
/// `namespace`/`key` against the committee of its epoch from the home's
/// membership record, and shows what it proves and who signed it.
fn verify(home: &crate::daemon::home::Home, certificate: &str, namespace: &str, key: &str) -> Result<Value, CliError> {
    let (certified, committee) = decode_certificate(home, certificate)?;
    let (entry, verified) =
        verify_memory_get(&certified, namespace, key, &committee).map_err(|error| refused(error.to_string()))?;
    let signers = signer_names(&committee, &verified);
    Ok(json!({
        "namespace": namespace,
        "key": key,
        "found": entry.is_some(),
        "value": entry.as_ref().map(|entry| value_of(&entry.value)),
        "seq": entry.as_ref().map(|entry| entry.written_at.0),
        "writer": entry.as_ref().map(|entry| entry.writer.to_string()),
        "verified": true,
        "checkpoint_seq": verified.seq.0,
        "epoch": committee.epoch().0,
        "signers": signers,
        "quorum": committee.quorum(),
    }))
}

fn refused(why: String) -> CliError {
    CliError::Usage(format!("the certified answer is refused: {why}"))
}

/// A certified answer (hex of its postcard encoding) and the committee of
/// its epoch from the home's membership record, to check it against.
pub(super) fn decode_certificate(
    home: &crate::daemon::home::Home,
    certificate: &str,
) -> Result<(CertifiedAnswer, Committee), CliError> {
    let bytes = crate::crypto::from_hex(certificate).ok_or_else(|| refused("it is not hex".into()))?;
    let certified: CertifiedAnswer =
        postcard::from_bytes(&bytes).map_err(|_| refused("it is not a certified answer".into()))?;
    let record = MembershipRecord::load(home).map_err(|e| CliError::Usage(e.to_string()))?;
    let epoch = certified.checkpoint.first().map(|vote| vote.epoch);
    let committee = record
        .committees
        .iter()
        .find(|committee| Some(committee.epoch()) == epoch)
        .ok_or_else(|| refused("no committee of this home signed it".into()))?;
    Ok((certified, committee.clone()))
}

/// The names of the members who certified `verified`.
pub(super) fn signer_names(committee: &Committee, verified: &VerifiedAnswer) -> Vec<String> {
    let name = |id: &AgentId| committee.member(*id).map_or_else(|| id.to_string(), |member| member.name.clone());
    verified.signers.iter().map(name).collect()
}

/// Encodes a key for a query string: everything but unreserved characters and '/'.
pub(super) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_percent_encoded_for_the_query() {
        assert_eq!(super::percent_encode("coordination/byzantine/x y&z"), "coordination/byzantine/x%20y%26z");
    }
}
