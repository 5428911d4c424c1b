//! Which GPUs a worker rank owns, from what Slurm and CUDA tell it, matched to NVML's devices.
//!
//! NVML's indices are not CUDA's and not Slurm's, so ownership is settled by UUID:
//! - `CUDA_VISIBLE_DEVICES` entries that are UUIDs (`GPU-…`, `MIG-…`, or a unique prefix, as
//!   CUDA accepts) name their device directly.
//! - Numeric entries are read against Slurm's *global* GPU ids (`SLURM_STEP_GPUS`, in a batch
//!   step `SLURM_JOB_GPUS`): the ids "are not relative to any device cgroup", while
//!   `CUDA_VISIBLE_DEVICES` is renumbered inside one (`0` for the step's first GPU). So when the
//!   two lists hold the same ids they are the global ids themselves; otherwise entry `k` is the
//!   step's `k`-th GPU.
//! - Slurm numbers a node's GPUs by sorting them by PCI bus id (gres.conf(5)); a global id is
//!   therefore a position in NVML's devices sorted by bus id, or, where a device cgroup leaves
//!   NVML only the step's GPUs, a position in the step's list.
//! - Without `CUDA_VISIBLE_DEVICES` but with Slurm GPU ids (every task of the step sees all of
//!   the node's), local task `i` takes the `i`-th id, round robin, and the worker sets
//!   `CUDA_VISIBLE_DEVICES` to that GPU's UUID for its mapper.
//! - Outside Slurm, a numeric entry is an NVML index (CUDA's order with
//!   `CUDA_DEVICE_ORDER=PCI_BUS_ID`).

/// What the task's environment says about GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuEnv {
    pub cuda_visible_devices: Option<String>,
    /// `SLURM_STEP_GPUS`, else `SLURM_JOB_GPUS`.
    pub slurm_gpus: Option<String>,
    /// `SLURM_LOCALID`.
    pub local_id: Option<u32>,
}

impl GpuEnv {
    /// From this process's environment.
    pub fn from_env() -> GpuEnv {
        let var = |k: &str| std::env::var(k).ok();
        GpuEnv {
            cuda_visible_devices: var("CUDA_VISIBLE_DEVICES"),
            slurm_gpus: var("SLURM_STEP_GPUS")
                .filter(|s| !s.trim().is_empty())
                .or_else(|| var("SLURM_JOB_GPUS")),
            local_id: var("SLURM_LOCALID").and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// One device as NVML lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub uuid: String,
    pub pci_bus_id: String,
}

/// The GPUs a worker owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedGpus {
    /// Their UUIDs, in the order CUDA will number them.
    pub uuids: Vec<String>,
    /// The `CUDA_VISIBLE_DEVICES` its mapper needs, when the environment does not already say.
    pub cuda_visible_devices: Option<String>,
}

/// Why the environment's GPUs could not be matched to NVML's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuOwnerError {
    #[error("CUDA_VISIBLE_DEVICES names GPU {0}, which NVML does not list ({1})")]
    UnknownUuid(String, String),
    #[error("CUDA_VISIBLE_DEVICES entry {entry:?} is neither a GPU index nor a UUID")]
    BadEntry { entry: String },
    #[error("CUDA_VISIBLE_DEVICES entry {entry} has no GPU among Slurm's {slurm:?}")]
    NotInStep { entry: u32, slurm: Vec<u32> },
    #[error("GPU {global} (Slurm's global id) is not among the {count} GPU(s) NVML lists")]
    NoSuchGlobal { global: u32, count: usize },
    #[error("Slurm GPU id {0:?} is not a number")]
    BadSlurmId(String),
}

fn list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// The UUID of the GPU with Slurm's global id `g`: position `g` in the devices sorted by PCI bus
/// id or, where a device cgroup left NVML only the step's GPUs (`slurm`), in the same order,
/// that GPU's position in the step's list.
fn global_uuid(g: u32, slurm: &[u32], devices: &[DeviceInfo]) -> Result<String, GpuOwnerError> {
    let mut by_bus: Vec<&DeviceInfo> = devices.iter().collect();
    by_bus.sort_by_key(|d| d.pci_bus_id.to_ascii_lowercase());
    let pos = if (g as usize) < by_bus.len() {
        Some(g as usize)
    } else {
        slurm
            .iter()
            .position(|s| *s == g)
            .filter(|_| by_bus.len() == slurm.len())
    };
    pos.map(|p| by_bus[p].uuid.clone())
        .ok_or(GpuOwnerError::NoSuchGlobal {
            global: g,
            count: devices.len(),
        })
}

/// The GPUs this task owns among `devices` (NVML's, in NVML's order).
pub fn owned_gpus(env: &GpuEnv, devices: &[DeviceInfo]) -> Result<OwnedGpus, GpuOwnerError> {
    let slurm: Vec<u32> = match &env.slurm_gpus {
        Some(s) => list(s)
            .into_iter()
            .map(|e| e.parse().map_err(|_| GpuOwnerError::BadSlurmId(e.into())))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let global = |g: u32| global_uuid(g, &slurm, devices);
    let Some(cvd) = env.cuda_visible_devices.as_deref() else {
        // Every task of the step sees the node's GPUs: local task i takes the i-th.
        let Some(g) = env
            .local_id
            .and_then(|l| slurm.get(l as usize % slurm.len().max(1)))
        else {
            return Ok(OwnedGpus::default());
        };
        let uuid = global(*g)?;
        return Ok(OwnedGpus {
            cuda_visible_devices: Some(uuid.clone()),
            uuids: vec![uuid],
        });
    };
    let entries = list(cvd);
    // "-1" or "NoDevFiles": no GPU.
    if entries
        .iter()
        .any(|e| *e == "-1" || e.eq_ignore_ascii_case("NoDevFiles"))
    {
        return Ok(OwnedGpus::default());
    }
    let numbers: Vec<Option<u32>> = entries.iter().map(|e| e.parse().ok()).collect();
    let same_as_slurm = {
        let mut a: Vec<u32> = numbers.iter().flatten().copied().collect();
        let mut b = slurm.clone();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    };
    let mut uuids = Vec::new();
    for (entry, number) in entries.iter().zip(numbers) {
        let uuid = match number {
            Some(k) if slurm.is_empty() => devices.get(k as usize).map(|d| d.uuid.clone()).ok_or(
                GpuOwnerError::NoSuchGlobal {
                    global: k,
                    count: devices.len(),
                },
            )?,
            Some(k) if same_as_slurm => global(k)?,
            Some(k) => global(*slurm.get(k as usize).ok_or(GpuOwnerError::NotInStep {
                entry: k,
                slurm: slurm.clone(),
            })?)?,
            None if entry.starts_with("GPU-") || entry.starts_with("MIG-") => {
                let found: Vec<&DeviceInfo> = devices
                    .iter()
                    .filter(|d| d.uuid.starts_with(entry))
                    .collect();
                match found.as_slice() {
                    [d] => d.uuid.clone(),
                    _ => {
                        let known: Vec<&str> = devices.iter().map(|d| d.uuid.as_str()).collect();
                        return Err(GpuOwnerError::UnknownUuid(
                            entry.to_string(),
                            known.join(", "),
                        ));
                    }
                }
            }
            None => {
                return Err(GpuOwnerError::BadEntry {
                    entry: entry.to_string(),
                })
            }
        };
        uuids.push(uuid);
    }
    Ok(OwnedGpus {
        uuids,
        cuda_visible_devices: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four GPUs, NVML listing them out of bus order.
    fn devices() -> Vec<DeviceInfo> {
        [
            ("GPU-c", "00000000:03:00.0"),
            ("GPU-a", "00000000:01:00.0"),
            ("GPU-d", "00000000:04:00.0"),
            ("GPU-b", "00000000:02:00.0"),
        ]
        .iter()
        .map(|(u, b)| DeviceInfo {
            uuid: u.to_string(),
            pci_bus_id: b.to_string(),
        })
        .collect()
    }

    fn env(cvd: Option<&str>, slurm: Option<&str>, local: Option<u32>) -> GpuEnv {
        GpuEnv {
            cuda_visible_devices: cvd.map(String::from),
            slurm_gpus: slurm.map(String::from),
            local_id: local,
        }
    }

    fn uuids(e: GpuEnv) -> Vec<String> {
        owned_gpus(&e, &devices()).expect("resolves").uuids
    }

    #[test]
    fn slurm_global_ids_are_positions_in_bus_order() {
        // No device cgroup: CUDA_VISIBLE_DEVICES holds the global ids themselves.
        assert_eq!(uuids(env(Some("1"), Some("1"), Some(1))), ["GPU-b"]);
        assert_eq!(
            uuids(env(Some("2,3"), Some("2,3"), None)),
            ["GPU-c", "GPU-d"]
        );
        // A device cgroup renumbered CUDA's view: entry 0 is the step's first GPU.
        assert_eq!(uuids(env(Some("0"), Some("3"), Some(0))), ["GPU-d"]);
        assert_eq!(
            uuids(env(Some("1,0"), Some("2,3"), None)),
            ["GPU-d", "GPU-c"]
        );
    }

    #[test]
    fn a_cgroup_that_hides_the_other_gpus_from_nvml_still_resolves() {
        let only_step: Vec<DeviceInfo> = devices()
            .into_iter()
            .filter(|d| d.uuid == "GPU-d")
            .collect();
        let got = owned_gpus(&env(Some("0"), Some("3"), Some(0)), &only_step).expect("resolves");
        assert_eq!(got.uuids, ["GPU-d"]);
    }

    #[test]
    fn uuids_in_cuda_visible_devices_name_the_device() {
        assert_eq!(
            uuids(env(Some("GPU-b,GPU-c"), Some("0,1"), None)),
            ["GPU-b", "GPU-c"]
        );
        let many: Vec<DeviceInfo> = vec![
            DeviceInfo {
                uuid: "GPU-1234-aaaa".into(),
                pci_bus_id: "0:1:0.0".into(),
            },
            DeviceInfo {
                uuid: "GPU-1234-bbbb".into(),
                pci_bus_id: "0:2:0.0".into(),
            },
        ];
        let prefix =
            owned_gpus(&env(Some("GPU-1234-b"), None, None), &many).expect("a unique prefix");
        assert_eq!(prefix.uuids, ["GPU-1234-bbbb"]);
        assert!(matches!(
            owned_gpus(&env(Some("GPU-1234"), None, None), &many),
            Err(GpuOwnerError::UnknownUuid(..))
        ));
        assert!(matches!(
            owned_gpus(&env(Some("GPU-zzz"), None, None), &devices()),
            Err(GpuOwnerError::UnknownUuid(..))
        ));
    }

    #[test]
    fn without_cuda_visible_devices_local_tasks_share_the_slurm_gpus() {
        let got = owned_gpus(&env(None, Some("0,1"), Some(3)), &devices()).expect("resolves");
        assert_eq!(got.uuids, ["GPU-b"]);
        assert_eq!(got.cuda_visible_devices.as_deref(), Some("GPU-b"));
        assert_eq!(
            owned_gpus(&env(None, None, Some(0)), &devices()),
            Ok(OwnedGpus::default())
        );
    }

    #[test]
    fn outside_slurm_an_index_is_nvmls() {
        assert_eq!(uuids(env(Some("0"), None, None)), ["GPU-c"]);
        assert_eq!(
            uuids(env(Some("-1"), Some("0"), None)),
            Vec::<String>::new()
        );
        assert_eq!(uuids(env(Some(""), None, None)), Vec::<String>::new());
    }

    #[test]
    fn what_cannot_be_matched_is_an_error_naming_it() {
        let e = owned_gpus(&env(Some("7"), Some("7"), None), &devices()).expect_err("no GPU 7");
        assert_eq!(
            e.to_string(),
            "GPU 7 (Slurm's global id) is not among the 4 GPU(s) NVML lists"
        );
        assert!(matches!(
            owned_gpus(&env(Some("2"), Some("0,1"), None), &devices()),
            Err(GpuOwnerError::NotInStep { entry: 2, .. })
        ));
        assert!(matches!(
            owned_gpus(&env(Some("x"), None, None), &devices()),
            Err(GpuOwnerError::BadEntry { .. })
        ));
        assert!(matches!(
            owned_gpus(&env(Some("0"), Some("gpu0"), None), &devices()),
            Err(GpuOwnerError::BadSlurmId(_))
        ));
    }
}
