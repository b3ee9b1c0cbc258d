//! `byzantine status --watch`: looks at the swarm every interval until Ctrl-C
//! and prints what changed — a status line when view, primary or progress
//! moved, and each new view change once, in the tutorial's event shape.

use super::connect::ConnectionArgs;
use super::output::{paint_status, print_line, OutputArgs};
use super::CliError;
use serde_json::Value;
use std::time::Duration;

pub fn status(connection: &ConnectionArgs, interval_ms: u64, output: OutputArgs) -> Result<(), CliError> {
    let client = connection.client()?;
    let interval = Duration::from_millis(interval_ms.max(50));
    let json = output.json_by_default();
    let mut last_line = String::new();
    let mut view_changes_seen = 0;
    loop {
        let status: Value = client.get("/v1/byzantine/status")?;
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
        std::thread::sleep(interval);
    }
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
