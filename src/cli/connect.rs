//! How a command finds its swarm: the home (`--home`, `BFTSWARM_HOME`, or
//! `.bftswarm` in the working directory), and from it the daemon's address
//! and token, each overridable (`--addr`/`BFTSWARM_ADDR`, `--token`/`BFTSWARM_TOKEN`).

use super::CliError;
use crate::api::client::ApiClient;
use crate::daemon::home::{Home, DEFAULT_HOME};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConnectionArgs {
    /// The swarm's home directory [default: .bftswarm in the working directory].
    #[arg(long, global = true, env = "BFTSWARM_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// The daemon's control API address [default: read from the home].
    #[arg(long, global = true, env = "BFTSWARM_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// The control API's bearer token [default: read from the home's `token` file].
    #[arg(long, global = true, env = "BFTSWARM_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ConnectionArgs {
    pub fn home(&self) -> Home {
        Home::at(self.home.as_deref().unwrap_or(std::path::Path::new(DEFAULT_HOME)))
    }

    /// A client for the daemon of this home; fails with how to start one
    /// when there is none.
    pub fn client(&self) -> Result<ApiClient, CliError> {
        let home = self.home();
        let addr = match &self.addr {
            Some(addr) => addr.clone(),
            None => match std::fs::read_to_string(home.addr()) {
                Ok(addr) => addr.trim().to_string(),
                Err(_) => return Err(not_running(&home)),
            },
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| CliError::Usage(format!("--addr {addr:?} is not an address; write it as 127.0.0.1:PORT")))?;
        if !addr.ip().is_loopback() {
            return Err(CliError::Usage(format!(
                "--addr {addr} is not a loopback address; the control API listens on loopback only"
            )));
        }
        let token = match &self.token {
            Some(token) => Some(token.clone()),
            None => home.read_token().ok(),
        };
        Ok(ApiClient::new(addr, token))
    }
}

pub fn not_running(home: &Home) -> CliError {
    let initialized = home.is_initialized();
    let hint = if initialized { "bftswarm swarm start" } else { "bftswarm swarm init" };
    CliError::NotRunning(format!(
        "no swarm daemon is running for {}; start one with `{hint}` (or pass --home / BFTSWARM_HOME)",
        home.root().display()
    ))
}
