//! `<data dir>/lab.json`: what a lab made, written before anything is made so that
//! `svcnet down` can remove it all after a crash of `svcnet up`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::plan::Cni;

pub const STATE_FILE: &str = "lab.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub prefix: String,
    pub data_dir: PathBuf,
    pub cni: Cni,
    /// Every lab namespace (pods' are found by name: `<prefix>-p-*`).
    pub namespaces: Vec<String>,
    /// CIDRs with an `unreachable` route in the host namespace, all at `route_metric`.
    pub host_routes: Vec<String>,
    pub route_metric: u32,
    /// The `svcnet up` process.
    pub up_pid: u32,
    /// Node agents (`ip netns exec` execs the agent, so this is the agent's pid).
    pub agents: Vec<AgentPid>,
    /// The API server URL on the host.
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPid {
    pub node: String,
    pub pid: u32,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_FILE)
}

impl LabState {
    /// The recorded lab, or `None` when there is none.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<LabState>> {
        let file = path(data_dir);
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let state =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a lab state file", file.display()))?;
        Ok(Some(state))
    }

    /// Writes the state atomically (temp file + rename) and syncs it, so a crash right after
    /// leaves either the old or the new state.
    pub fn save(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let file = path(&self.data_dir);
        let temp = file.with_extension("json.tmp");
        let mut out = std::fs::File::create(&temp).with_context(|| format!("writing {}", temp.display()))?;
        out.write_all(&serde_json::to_vec_pretty(self)?)?;
        out.sync_all()?;
        std::fs::rename(&temp, &file).with_context(|| format!("writing {}", file.display()))?;
        Ok(())
    }

    pub fn remove(data_dir: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path(data_dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap(), None);
        let state = LabState {
            prefix: "t".into(),
            data_dir: dir.path().into(),
            cni: Cni::FlannelVxlan,
            namespaces: vec!["t-vpc".into()],
            host_routes: vec!["10.244.0.0/16".into()],
            route_metric: 4242,
            up_pid: 1,
            agents: vec![AgentPid {
                node: "node1".into(),
                pid: 2,
            }],
            server: "http://127.0.0.1:6443".into(),
        };
        state.save().unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap(), Some(state));
        LabState::remove(dir.path()).unwrap();
        LabState::remove(dir.path()).unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap(), None);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{").unwrap();
        let error = LabState::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("lab.json"), "{error}");
    }
}
