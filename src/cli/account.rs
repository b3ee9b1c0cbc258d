//! `bftswarm account show` and `bftswarm tx submit`: the ledger from outside.
//! A balance is what f+1 validators agree on, and `--verify` checks a
//! certified answer here, offline, against the home's committee. A transfer
//! is signed here with the user's own key file; the daemon only relays it.

use super::connect::ConnectionArgs;
use super::memory::{decode_certificate, percent_encode, signer_names};
use super::output::print_json;
use super::CliError;
use crate::app::{verify_account, Op, Transfer, Tx};
use crate::crypto::Keypair;
use crate::ledger::AccountId;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// An account's balance and next nonce, as f+1 validators agree on them.
    #[command(
        after_help = "Examples:\n  bftswarm account show bft-agent-1\n  bftswarm account show 0x3b6a…(64 hex digits) --verify --json"
    )]
    Show {
        /// A validator's name or a 64-hex-digit public key.
        #[arg(value_name = "ACCOUNT")]
        account: String,
        /// Print the whole answer as JSON, not only balance and nonce.
        #[arg(long)]
        json: bool,
        /// Fetch a certified answer and check it here against the committee.
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct TxArgs {
    #[command(subcommand)]
    pub command: TxCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum TxCommand {
    /// Sign a transfer with your key file and order it through consensus.
    #[command(after_help = "Examples:\n  bftswarm tx submit --key me.pem --to bft-agent-2 --amount 10")]
    Submit {
        /// Your Ed25519 key (PKCS#8 PEM); it never leaves this process.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A validator's name or a 64-hex-digit public key.
        #[arg(long, value_name = "ACCOUNT")]
        to: String,
        #[arg(long, value_name = "N")]
        amount: u64,
        /// Defaults to your account's next nonce as f+1 validators agree on it.
        #[arg(long, value_name = "N")]
        nonce: Option<u64>,
        #[arg(long, value_name = "TEXT")]
        memo: Option<String>,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn execute_account(args: &AccountArgs) -> Result<(), CliError> {
    let client = args.connection.client()?;
    let AccountCommand::Show { account, json, verify } = &args.command;
    let path = format!("/v1/accounts/{}", percent_encode(account));
    if !verify {
        let answer: Value = client.get(&path)?;
        let short = json!({ "balance": answer["balance"], "next_nonce": answer["next_nonce"] });
        return Ok(print_json(if *json { &answer } else { &short })?);
    }
    let answer: Value = client.get(&format!("{path}/certified"))?;
    let id = account_of(answer["account"].as_str().unwrap_or_default())?;
    let (certified, committee) =
        decode_certificate(&args.connection.home(), answer["certificate"].as_str().unwrap_or_default())?;
    let (proven, verified) = verify_account(&certified, &id, &committee)
        .map_err(|error| CliError::Usage(format!("the certified answer is refused: {error}")))?;
    let shown = json!({
        "account": id.to_string(),
        "balance": proven.balance,
        "next_nonce": proven.next_nonce,
        "verified": true,
        "checkpoint_seq": verified.seq.0,
        "epoch": committee.epoch().0,
        "signers": signer_names(&committee, &verified),
        "quorum": committee.quorum(),
    });
    let short = json!({ "balance": proven.balance, "next_nonce": proven.next_nonce, "verified": true });
    Ok(print_json(if *json { &shown } else { &short })?)
}

pub fn execute_tx(args: &TxArgs) -> Result<(), CliError> {
    let TxCommand::Submit { key, to, amount, nonce, memo, json } = &args.command;
    let owner = Keypair::read_pem_file(key).map_err(|error| CliError::Usage(error.to_string()))?;
    let client = args.connection.client()?;
    let from = AccountId(owner.public_key());
    let to_answer: Value = client.get(&format!("/v1/accounts/{}", percent_encode(to)))?;
    let to = account_of(to_answer["account"].as_str().unwrap_or_default())?;
    let nonce = match nonce {
        Some(nonce) => *nonce,
        None => {
            let mine: Value = client.get(&format!("/v1/accounts/{from}"))?;
            mine["next_nonce"].as_u64().ok_or_else(|| CliError::Usage("the daemon sent no next nonce".into()))?
        }
    };
    let transfer = Transfer { to, amount: *amount, memo: memo.clone() };
    let tx = Tx { id: crate::daemon::tx_id(&from, nonce), from, nonce, op: Op::Transfer(transfer) };
    let signed = tx.sign(&owner);
    let bytes = postcard::to_allocvec(&signed).map_err(|e| CliError::Usage(e.to_string()))?;
    let answer: Value = client.post("/v1/tx", &json!({ "signed": crate::crypto::hex(&bytes) }))?;
    let short = json!({ "outcome": answer["outcome"], "reason": answer["reason"], "nonce": answer["nonce"] });
    Ok(print_json(if *json { &answer } else { &short })?)
}

fn account_of(text: &str) -> Result<AccountId, CliError> {
    crate::daemon::parse_account(text).ok_or_else(|| CliError::Usage(format!("the daemon named no account: {text}")))
}
