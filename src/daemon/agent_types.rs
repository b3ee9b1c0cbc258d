//! The agent types the daemon can spawn: the `agents/` directory of its
//! working directory when there is one, else the definitions shipped with
//! bftswarm (`agents/validator.toml`, `agents/observer.toml`).

use crate::agents::{AgentDefinition, AgentError, AgentRegistry};
use std::path::Path;

const SHIPPED: [(&str, &str); 2] = [
    ("agents/validator.toml", include_str!("../../agents/validator.toml")),
    ("agents/observer.toml", include_str!("../../agents/observer.toml")),
];

pub fn agent_types() -> Result<AgentRegistry, AgentError> {
    let dir = Path::new("agents");
    if dir.is_dir() {
        return AgentDefinition::load_dir(dir);
    }
    let mut registry = AgentRegistry::default();
    for (path, text) in SHIPPED {
        let path = Path::new(path);
        registry.insert(AgentDefinition::from_toml_str(text, path)?, path.to_path_buf())?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_definitions_know_validators_and_observers() {
        let registry = super::agent_types().unwrap();
        let validator = registry.resolve("validator").unwrap();
        assert!(validator.voting);
        assert!(validator.capabilities.iter().any(|c| c == "consensus"));
        assert!(!registry.resolve("observer").unwrap().voting);
        assert!(registry.resolve("oracle").unwrap_err().to_string().contains("known types"));
    }
}
