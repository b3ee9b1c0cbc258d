//! The `--watch` commands: they follow the daemon's event stream
//! (`/v1/events`) until Ctrl-C instead of polling, and when the daemon goes
//! away (a restart) they wait for it, reconnect with the last event id seen,
//! and carry on.
//!
//! `byzantine status --watch` prints a status line when view, primary or
//! progress moved, and each new view change once, in the tutorial's event
//! shape; `byzantine detect-malicious --watch` prints each detection once.

use super::connect::ConnectionArgs;
use super::output::{paint_status, print_line, OutputArgs};
use super::CliError;
use crate::api::client::ApiClient;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long to wait before reconnecting to a daemon that went away.
const RECONNECT_EVERY: Duration = Duration::from_millis(300);

/// What [`follow`] tells its caller about.
enum Heard<'a> {
    /// Connected (again): look at everything afresh.
    Connected,
    /// An event of this kind.
    Event(&'a str),
    /// Nothing for a moment.
    Quiet,
}

/// Follows the event stream forever, reconnecting across daemon restarts
/// and resuming after the last event seen; `on` hears of each connection,
/// event and quiet moment, with a client of the daemon as it is now.
fn follow(
    connection: &ConnectionArgs,
    mut on: impl FnMut(&ApiClient, Heard) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut last_id: Option<String> = None;
    let mut said_waiting = false;
    loop {
        // The address changes when the daemon restarts: resolve it each time.
        let opened = connection.client().and_then(|client| {
            let stream = client.events(last_id.as_deref())?;
            Ok((client, stream))
        });
        let (client, mut stream) = match opened {
            Ok(opened) => opened,
            // A mistake in the command (a bad --addr) will not heal by waiting.
            Err(error @ CliError::Usage(_)) => return Err(error),
            Err(error) => {
                if !said_waiting {
                    eprintln!("note: waiting for the daemon ({error})");
                    said_waiting = true;
                }
                std::thread::sleep(RECONNECT_EVERY);
                continue;
            }
        };
        said_waiting = false;
        on(&client, Heard::Connected)?;
        loop {
            match stream.next_event() {
                Ok(Some(event)) => {
                    on(&client, Heard::Event(&event.kind))?;
                    last_id = Some(event.id);
                }
                Ok(None) => on(&client, Heard::Quiet)?,
                Err(_) => break,
            }
        }
        // The daemon may be stopping: give it a moment before asking again.
        std::thread::sleep(RECONNECT_EVERY);
    }
}

pub fn status(connection: &ConnectionArgs, interval_ms: u64, output: OutputArgs) -> Result<(), CliError> {
    // Events can come by the thousand per second: look at the status at most this often.
    let interval = Duration::from_millis(interval_ms.max(50));
    let json = output.json_by_default();
    let mut last_line = String::new();
    let mut view_changes_seen = 0;
    let mut looked_at = Instant::now();
    // Events arrived since the last look.
    let mut unseen = true;
    follow(connection, |client, heard| {
        match heard {
            Heard::Connected => unseen = true,
            Heard::Event(_) => {
                unseen = true;
                if looked_at.elapsed() < interval {
                    return Ok(());
                }
            }
            Heard::Quiet if !unseen => return Ok(()),
            Heard::Quiet => {}
        }
        looked_at = Instant::now();
        unseen = false;
        // Before the swarm launches there is no status yet; the stream says when it changes.
        let Ok(status) = client.get::<Value>("/v1/byzantine/status") else { return Ok(()) };
        let events = status["view_changes"].as_array().cloned().unwrap_or_default();
        // A restarted swarm starts its view history anew.
        view_changes_seen = view_changes_seen.min(events.len());
        for event in &events[view_changes_seen..] {
            print_line(&event.to_string())?;
        }
        view_changes_seen = events.len();
        let line = summary(&status, json);
        if line != last_line {
            print_line(&line)?;
            last_line = line;
        }
        Ok(())
    })
}

/// Prints each detection once, as a JSON line: those so far, then each new one as it is made.
pub fn detections(connection: &ConnectionArgs) -> Result<(), CliError> {
    let mut printed = 0;
    follow(connection, |client, heard| {
        if !matches!(heard, Heard::Connected | Heard::Event("malicious-detected" | "agent-quarantined")) {
            return Ok(());
        }
        let log: Value = client.get("/v1/byzantine/detection-log")?;
        let records = log.as_array().cloned().unwrap_or_default();
        for record in records.iter().skip(printed) {
            print_line(&record.to_string())?;
        }
        printed = printed.max(records.len());
        Ok(())
    })
}

fn summary(status: &Value, json: bool) -> String {
    if json {
        let mut compact = status.clone();
        if let Value::Object(fields) = &mut compact {
            fields.remove("view_changes");
        }
        return compact.to_string();
    }
    format!(
        "{}: view {} primary {}, executed up to seq {}, {} committed, {} rejected, faulty: {}",
        paint_status(status["status"].as_str().unwrap_or("unknown")),
        status["view"],
        status["primary"].as_str().unwrap_or("?"),
        status["last_executed"],
        status["transactions_committed"],
        status["transactions_rejected"],
        status["faulty_agents"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map_or("none".into(), |a| { a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ") }),
    )
}
