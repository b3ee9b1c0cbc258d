//! Config errors: one line each, naming the field or variable and the fix.

use std::path::PathBuf;

use super::EnvOverrides;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} not found; pass an existing file to --config", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}; check that it is a readable file", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// `origin` is the file path, or "the given TOML" for in-memory text.
    #[error("{origin} is not valid TOML: {message}; fix the syntax")]
    Parse { origin: String, message: String },

    /// `section` is empty for an unknown top-level table.
    #[error("{}", unknown_field_line(field, section, origin, valid))]
    UnknownField { field: String, section: String, origin: String, valid: String },

    #[error("{field} in {origin} {message}; fix the value")]
    Type { field: String, origin: String, message: String },

    /// A value that parses but breaks a rule; `field` is e.g. `consensus.checkpoint_interval`.
    #[error("{field} {message}")]
    Invalid { field: &'static str, message: String },

    #[error("environment variable {var} {message}")]
    Env { var: String, message: String },
}

fn unknown_field_line(field: &str, section: &str, origin: &str, valid: &str) -> String {
    let suggestion = closest(field, valid).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
    if section.is_empty() {
        format!("unknown section [{field}] in {origin}; {suggestion}valid sections: {valid}")
    } else {
        format!("unknown field `{field}` in [{section}] ({origin}); {suggestion}valid fields: {valid}")
    }
}

/// Turns the `config` crate's error into ours, blaming the environment
/// variable when one set the offending key and `origin` (the file) otherwise.
pub(super) fn translate(error: ::config::ConfigError, origin: &str, env: &EnvOverrides) -> ConfigError {
    use ::config::ConfigError as Raw;
    match error {
        Raw::FileParse { cause, .. } => {
            ConfigError::Parse { origin: origin.to_string(), message: one_line(&cause.to_string()) }
        }
        Raw::Type { unexpected, expected, key, .. } => {
            let key = key.unwrap_or_default();
            let expected = plain(expected);
            match env.get(&key) {
                Some((var, value)) => ConfigError::Env {
                    var: var.clone(),
                    message: format!("= {value:?} is not a valid {key} (expected {expected}); fix or unset it"),
                },
                None => ConfigError::Type {
                    field: key,
                    origin: origin.to_string(),
                    message: format!("is {unexpected}, expected {expected}"),
                },
            }
        }
        Raw::At { error, key, .. } => match *error {
            Raw::Message(message) => from_message(&message, key.as_deref().unwrap_or(""), origin, env),
            other => translate(other, origin, env),
        },
        Raw::Message(message) => from_message(&message, "", origin, env),
        other => ConfigError::Parse { origin: origin.to_string(), message: one_line(&other.to_string()) },
    }
}

/// serde reports unknown fields only as text:
/// "unknown field `x`, expected one of `a`, `b`".
fn from_message(message: &str, section: &str, origin: &str, env: &EnvOverrides) -> ConfigError {
    let parsed = message.strip_prefix("unknown field `").and_then(|rest| {
        let (field, rest) = rest.split_once('`')?;
        let valid = rest.trim_start_matches(", expected ").trim_start_matches("one of ");
        Some((field.to_string(), valid.to_string()))
    });
    let Some((field, valid)) = parsed else {
        let field = if section.is_empty() { "config" } else { section };
        return ConfigError::Type {
            field: field.to_string(),
            origin: origin.to_string(),
            message: format!("is invalid: {}", one_line(message)),
        };
    };
    let key = if section.is_empty() { field.clone() } else { format!("{section}.{field}") };
    // A variable sets a whole section only through its keys, so an unknown
    // section from the environment shows up as its first key.
    let from_env = env.get(&key).or_else(|| {
        env.by_key.iter().find(|(k, _)| section.is_empty() && k.split('.').next() == Some(&field)).map(|(_, v)| v)
    });
    match from_env {
        Some((var, _)) => ConfigError::Env {
            var: var.clone(),
            message: format!(
                "sets {}; unset it or use one of {valid}",
                if section.is_empty() {
                    format!("unknown section [{field}]")
                } else {
                    format!("unknown field `{field}` in [{section}]")
                }
            ),
        },
        None => ConfigError::UnknownField { field, section: section.to_string(), origin: origin.to_string(), valid },
    }
}

/// The `config` crate's names for the types our fields use (all integers are unsigned).
fn plain(expected: &str) -> &str {
    match expected {
        "an integer" | "an unsigned 64 bit or less integer" => "a non-negative integer",
        "a floating point" => "a number",
        "a boolean" => "true or false",
        other => other,
    }
}

/// TOML errors span several lines (a source excerpt and a caret); keep the
/// position and the reason.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | ") && !l.starts_with('^'))
        .collect();
    lines.join(": ")
}

/// The valid name within edit distance 2 of `name`, if there is one.
fn closest(name: &str, valid: &str) -> Option<String> {
    valid
        .split(", ")
        .map(|v| v.trim_matches('`').trim_start_matches("or ").trim_matches('`'))
        .map(|v| (edit_distance(name, v), v))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, v)| v.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
