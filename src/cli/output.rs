//! How commands print: JSON when asked (`--json`) or when stdout is not a
//! terminal (for commands whose tutorial output is JSON), tables and a little
//! colour for a person at a terminal; no colour with `NO_COLOR` or when piped.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;
use std::io::{IsTerminal, Write};

#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct OutputArgs {
    /// Print JSON (the default when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    /// JSON for commands whose tutorial output is JSON: asked for, or piped.
    pub fn json_by_default(self) -> bool {
        self.json || !std::io::stdout().is_terminal()
    }
}

/// Prints pretty JSON and a newline; a closed pipe is not an error.
pub fn print_json(value: &impl serde::Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    print_line(&text)
}

/// Prints one line to stdout.
pub fn print_line(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    ignore_broken_pipe(writeln!(stdout, "{line}").and_then(|()| stdout.flush()))
}

fn ignore_broken_pipe(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header.iter().copied());
    table
}

/// A JSON object as a two-column table (nested values shown as compact JSON).
pub fn object_table(value: &Value) -> Table {
    let mut table = table(&["field", "value"]);
    if let Value::Object(fields) = value {
        for (key, value) in fields {
            table.add_row([key.clone(), scalar(value)]);
        }
    }
    table
}

pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Colours a status word on a terminal that allows colour.
pub fn paint_status(status: &str) -> String {
    let colour = match status {
        "healthy" | "active" | "intact" | "ok" => "32",
        "initializing" | "pending" | "standby" | "stopping" => "33",
        _ => "31",
    };
    if colour_allowed() {
        format!("\x1b[{colour}m{status}\x1b[0m")
    } else {
        status.to_string()
    }
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}
