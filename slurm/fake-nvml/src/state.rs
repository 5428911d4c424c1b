//! The fake GPUs' state: one file per GPU, `$FAKE_NVML_STATE/<node>-gpu<index>`, read at every
//! call so a test (or a user) can change a GPU while a job runs.

use std::collections::HashMap;
use std::path::PathBuf;

/// Where the state files are when `FAKE_NVML_STATE` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/tmp/flywheel-fake-nvml";

/// One fake GPU as its file describes it (missing keys take the defaults below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub pci_bus_id: String,
    pub minor: u32,
    pub util: u32,
    pub mem_used_mb: u64,
    pub mem_total_mb: u64,
    pub ecc_uncorrected: u64,
    pub temp_c: u32,
    pub power_w: u32,
    pub lost: bool,
}

impl Gpu {
    /// Parses a state file's `key=value` lines; unknown keys and blank or `#` lines are ignored,
    /// and a value that is not a number leaves that key at its default.
    pub fn parse(node: &str, index: u32, text: &str) -> Gpu {
        let kv: HashMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let num = |k: &str, d: u64| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let text = |k: &str, d: String| kv.get(k).map(|v| v.to_string()).unwrap_or(d);
        Gpu {
            index,
            uuid: text("uuid", format!("GPU-fake-{node}-{index}")),
            name: text("name", "Fake NVML GPU".into()),
            pci_bus_id: text("pci_bus_id", format!("00000000:{:02X}:00.0", index + 1)),
            minor: num("minor", u64::from(index)) as u32,
            util: num("util", 0).min(100) as u32,
            mem_used_mb: num("mem_used_mb", 0),
            mem_total_mb: num("mem_total_mb", 81_559),
            ecc_uncorrected: num("ecc_uncorrected", 0),
            temp_c: num("temp_c", 40) as u32,
            power_w: num("power_w", 100) as u32,
            lost: num("lost", 0) != 0,
        }
    }
}

/// The state directory and the node whose GPUs this process sees.
#[derive(Debug, Clone)]
pub struct Node {
    pub dir: PathBuf,
    pub name: String,
}

impl Node {
    /// From the environment: `FAKE_NVML_STATE` (else [`DEFAULT_STATE_DIR`]) and the node's name
    /// from `FAKE_NVML_NODE`, else Slurm's `SLURMD_NODENAME`, else the host name.
    pub fn from_env() -> Node {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let dir = var("FAKE_NVML_STATE").unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let name = var("FAKE_NVML_NODE")
            .or_else(|| var("SLURMD_NODENAME"))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_default();
        Node {
            dir: dir.into(),
            name,
        }
    }

    fn file(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}-gpu{index}", self.name))
    }

    /// GPUs are numbered from 0 with no gaps: the count is the first index without a file.
    pub fn count(&self) -> u32 {
        (0..1024).find(|i| !self.file(*i).is_file()).unwrap_or(1024)
    }

    /// GPU `index`, read now; `None` when its file is gone.
    pub fn gpu(&self, index: u32) -> Option<Gpu> {
        let text = std::fs::read_to_string(self.file(index)).ok()?;
        Some(Gpu::parse(&self.name, index, &text))
    }

    /// Every GPU of the node, read now.
    pub fn gpus(&self) -> Vec<Gpu> {
        (0..self.count()).filter_map(|i| self.gpu(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_sets_what_it_names_and_defaults_the_rest() {
        let g = Gpu::parse(
            "node2",
            1,
            "# a comment\nuuid=GPU-abc\nutil=73\nmem_used_mb=1024\nlost=1\nutil_typo\nmem_total_mb=x\n",
        );
        assert_eq!(g.uuid, "GPU-abc");
        assert_eq!(g.util, 73);
        assert_eq!(g.mem_used_mb, 1024);
        assert_eq!(g.mem_total_mb, 81_559);
        assert!(g.lost);
        assert_eq!(g.ecc_uncorrected, 0);
        assert_eq!(g.pci_bus_id, "00000000:02:00.0");
        assert_eq!(Gpu::parse("node2", 0, "").uuid, "GPU-fake-node2-0");
        assert_eq!(Gpu::parse("n", 0, "util=250").util, 100);
    }

    #[test]
    fn a_node_has_the_gpus_whose_files_exist_in_order() {
        let dir = std::env::temp_dir().join(format!("fake-nvml-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for i in 0..2 {
            std::fs::write(
                dir.join(format!("nodeA-gpu{i}")),
                format!("util={}\n", 10 * i),
            )
            .expect("state file");
        }
        std::fs::write(dir.join("nodeB-gpu0"), "util=5\n").expect("state file");
        let node = Node {
            dir: dir.clone(),
            name: "nodeA".into(),
        };
        assert_eq!(node.count(), 2);
        assert_eq!(
            node.gpus().iter().map(|g| g.util).collect::<Vec<_>>(),
            [0, 10]
        );
        std::fs::remove_file(dir.join("nodeA-gpu1")).expect("remove");
        assert_eq!(node.count(), 1);
        assert_eq!(node.gpu(1), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
