//! `bftswarm memory store|retrieve`: the daemon's persistent memory store
//! (namespaced JSON values with optional TTL, in the home's database).

use super::connect::ConnectionArgs;
use super::output::print_json;
use super::CliError;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    #[command(subcommand)]
    pub command: MemoryCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum MemoryCommand {
    /// Store a JSON value (text that is not JSON is stored as a JSON string).
    #[command(
        after_help = "Examples:\n  bftswarm memory store --key coordination/byzantine/malicious-detections --value '[{\"agent\": \"bft-agent-5\"}]'\n  bftswarm memory store --key tasks/lease --value holder-1 --ttl 60000"
    )]
    Store {
        /// Slash-separated; the first segment is the namespace.
        #[arg(long, value_name = "KEY")]
        key: String,
        #[arg(long, value_name = "JSON")]
        value: String,
        /// Milliseconds until the value expires.
        #[arg(long, value_name = "MS")]
        ttl: Option<u64>,
    },
    /// Print the value stored under a key (the daemon writes view changes under coordination/byzantine/view-changes).
    #[command(after_help = "Examples:\n  bftswarm memory retrieve --key coordination/byzantine/view-changes")]
    Retrieve {
        #[arg(long, value_name = "KEY")]
        key: String,
    },
}

pub fn execute(args: &MemoryArgs) -> Result<(), CliError> {
    let client = args.connection.client()?;
    match &args.command {
        MemoryCommand::Store { key, value, ttl } => {
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            let answer: Value = client.post("/v1/memory", &json!({ "key": key, "value": value, "ttl_ms": ttl }))?;
            Ok(print_json(&answer)?)
        }
        MemoryCommand::Retrieve { key } => {
            let path = format!("/v1/memory?key={}", percent_encode(key));
            let answer: Value = client.get(&path)?;
            Ok(print_json(&answer["value"])?)
        }
    }
}

/// Encodes a key for a query string: everything but unreserved characters and '/'.
fn percent_encode(text: &str) -> String {
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
