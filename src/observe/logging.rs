//! Log output: text or JSON lines on stderr through tracing-subscriber, with
//! colour only when stderr is a terminal (a log redirected to a file carries
//! no escape codes), and a level the bench can change while running.

use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

static RELOAD: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the process's logger: `RUST_LOG` if set, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::stderr().is_terminal();
    let text = (format == LogFormat::Text)
        .then(|| tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr));
    let json = (format == LogFormat::Json)
        .then(|| tracing_subscriber::fmt::layer().json().with_current_span(false).with_writer(std::io::stderr));
    if tracing_subscriber::registry().with(filter).with(text).with(json).try_init().is_ok() {
        let _ = RELOAD.set(handle);
    }
}

/// Changes what is logged from now on (`"info"`, `"warn"`); false when no
/// logger of ours is installed or the directive does not parse.
pub fn set_level(directive: &str) -> bool {
    let (Some(handle), Ok(filter)) = (RELOAD.get(), EnvFilter::try_new(directive)) else { return false };
    handle.reload(filter).is_ok()
}
