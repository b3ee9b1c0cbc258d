//! Agent definitions: one TOML file per agent type in `agents/`
//! (`validator.toml`, `observer.toml`, …) saying what the type is, what it can
//! do, whether it votes, and its mailbox bound.
//!
//! ```toml
//! type = "observer"
//! description = "Non-voting agent that sees committed batches and lifecycle events"
//! capabilities = ["execution-audit", "event-subscription"]
//! voting = false
//! mailbox = 1024
//! ```
//!
//! [`AgentDefinition::load_dir`] reads every `*.toml` of a directory into an
//! [`AgentRegistry`]; [`AgentRegistry::resolve`] finds a type by name. Every
//! mistake (unreadable file, invalid TOML, an unknown field, a type defined
//! twice, an unknown type) is one line naming the file or the type.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest mailbox a definition may ask for, in actor messages (each a batch).
pub const MAX_MAILBOX: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefinition {
    #[serde(rename = "type")]
    pub agent_type: String,
    pub description: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Whether agents of this type are committee members (validators) or observers.
    #[serde(default)]
    pub voting: bool,
    /// Mailbox bound, in actor messages; unset means the runtime's default.
    #[serde(default)]
    pub mailbox: Option<usize>,
    /// Agents of this type are named `<name_prefix>1`, `<name_prefix>2`, …
    #[serde(default)]
    pub name_prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read agent definitions from {}: {source}; pass a readable directory of *.toml files", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid agent definition: {message}; fix the file", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("agent type {agent_type:?} is defined twice, in {} and {}; remove or rename one", first.display(), second.display())]
    Duplicate { agent_type: String, first: PathBuf, second: PathBuf },
    #[error("unknown agent type {agent_type:?}; known types: {known} (one TOML file each in agents/)")]
    Unknown { agent_type: String, known: String },
}

impl AgentDefinition {
    /// Reads every `*.toml` file of `dir`, in name order.
    pub fn load_dir(dir: &Path) -> Result<AgentRegistry, AgentError> {
        let read_error = |source| AgentError::Read { path: dir.to_path_buf(), source };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut registry = AgentRegistry::default();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|source| AgentError::Read { path: path.clone(), source })?;
            let definition = AgentDefinition::from_toml_str(&text, &path)?;
            registry.insert(definition, path)?;
        }
        Ok(registry)
    }

    /// Parses one definition; `path` only names it in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<AgentDefinition, AgentError> {
        use ::config::{Config, File, FileFormat};
        let invalid = |message: String| AgentError::Invalid { path: path.to_path_buf(), message };
        let definition: AgentDefinition = Config::builder()
            .add_source(File::from_str(text, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|error| invalid(one_line(&error.to_string())))?;
        if definition.agent_type.trim().is_empty() {
            return Err(invalid("`type` is empty; name the agent type, e.g. \"observer\"".into()));
        }
        if let Some(mailbox) = definition.mailbox {
            if !(1..=MAX_MAILBOX).contains(&mailbox) {
                return Err(invalid(format!("`mailbox` is {mailbox}; it must be between 1 and {MAX_MAILBOX}")));
            }
        }
        Ok(definition)
    }
}

/// The known agent types, by name.
#[derive(Clone, Debug, Default)]
pub struct AgentRegistry {
    definitions: BTreeMap<String, (AgentDefinition, PathBuf)>,
}

impl AgentRegistry {
    /// Adds a definition read from `path`; a second definition of one type is an error.
    pub fn insert(&mut self, definition: AgentDefinition, path: PathBuf) -> Result<(), AgentError> {
        if let Some((_, first)) = self.definitions.get(&definition.agent_type) {
            let agent_type = definition.agent_type.clone();
            return Err(AgentError::Duplicate { agent_type, first: first.clone(), second: path });
        }
        self.definitions.insert(definition.agent_type.clone(), (definition, path));
        Ok(())
    }

    pub fn resolve(&self, agent_type: &str) -> Result<&AgentDefinition, AgentError> {
        match self.definitions.get(agent_type) {
            Some((definition, _)) => Ok(definition),
            None => Err(AgentError::Unknown { agent_type: agent_type.into(), known: self.known() }),
        }
    }

    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.definitions.keys().map(String::as_str)
    }

    fn known(&self) -> String {
        match self.definitions.is_empty() {
            true => "none".into(),
            false => self.types().collect::<Vec<_>>().join(", "),
        }
    }
}

/// TOML errors span several lines (an excerpt and a caret); keep the reason.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with('^')).collect();
    lines.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) {
        std::fs::write(dir.path().join(name), text).unwrap();
    }

    #[test]
    fn shipped_definitions_load_and_resolve() {
        let registry = AgentDefinition::load_dir(Path::new("agents")).unwrap();
        let validator = registry.resolve("validator").unwrap();
        assert!(validator.voting);
        assert!(validator.capabilities.iter().any(|c| c == "consensus"));
        assert!(!registry.resolve("observer").unwrap().voting);
    }

    #[test]
    fn unknown_type_names_the_known_ones() {
        let registry = AgentDefinition::load_dir(Path::new("agents")).unwrap();
        let error = registry.resolve("auditor").unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown agent type \"auditor\"; known types: observer, validator (one TOML file each in agents/)"
        );
    }

    #[test]
    fn unknown_field_invalid_toml_and_duplicates_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir, "a.toml", "type = \"a\"\ndescription = \"x\"\nmailboxx = 3\n");
        let error = AgentDefinition::load_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a.toml is not a valid agent definition") && error.contains("mailboxx"), "{error}");
        assert!(!error.contains('\n'));

        write(&dir, "a.toml", "type = \"a\"\ndescription = \n");
        let error = AgentDefinition::load_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("a.toml is not a valid agent definition") && !error.contains('\n'), "{error}");

        write(&dir, "a.toml", "type = \"a\"\ndescription = \"x\"\n");
        write(&dir, "b.toml", "type = \"a\"\ndescription = \"y\"\n");
        let error = AgentDefinition::load_dir(dir.path()).unwrap_err().to_string();
        assert!(error.starts_with("agent type \"a\" is defined twice"), "{error}");
    }

    #[test]
    fn a_zero_mailbox_is_refused() {
        let error =
            AgentDefinition::from_toml_str("type = \"a\"\ndescription = \"x\"\nmailbox = 0\n", Path::new("a.toml"));
        assert!(error.unwrap_err().to_string().contains("`mailbox` is 0"));
    }
}
