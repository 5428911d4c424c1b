//! GPU health and utilisation from NVML, behind a trait so the worker can be tested without a
//! GPU. NVML is loaded at run time (nvml-wrapper); on a machine without a driver the sampler is
//! [`NoGpu`] and the job report says "no GPU" — never a crash.

use flywheel_protocol::GpuSample;

/// Reads one GPU.
///
/// Contract: `sample` never blocks for long and never panics; `None` means no reading (no GPU,
/// or NVML failed this time).
pub trait GpuSampler: Send {
    fn sample(&mut self) -> Option<GpuSample>;
}

/// A worker without a GPU.
pub struct NoGpu;

impl GpuSampler for NoGpu {
    fn sample(&mut self) -> Option<GpuSample> {
        None
    }
}

/// A sampler replaying given readings (tests); the last one repeats.
pub struct FakeSampler {
    readings: Vec<GpuSample>,
    next: usize,
}

impl FakeSampler {
    pub fn new(readings: Vec<GpuSample>) -> FakeSampler {
        FakeSampler { readings, next: 0 }
    }
}

impl GpuSampler for FakeSampler {
    fn sample(&mut self) -> Option<GpuSample> {
        let s = self
            .readings
            .get(self.next.min(self.readings.len().saturating_sub(1)))
            .cloned();
        self.next += 1;
        s
    }
}

/// A GPU as the worker names it to NVML: a UUID (what Slurm/CUDA ownership resolves to, see
/// [`crate::gpu_owner`]) or, on one machine without Slurm, an NVML index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuId {
    Index(u32),
    Uuid(String),
}

impl std::fmt::Display for GpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuId::Index(i) => write!(f, "{i}"),
            GpuId::Uuid(u) => f.write_str(u),
        }
    }
}

/// NVML's view of the devices a worker owns.
pub struct NvmlSampler {
    nvml: NvmlRef,
    gpus: Vec<GpuId>,
}

/// The process's NVML, or one of the sampler's own (a test's, loaded from a chosen library).
enum NvmlRef {
    Process(&'static nvml_wrapper::Nvml),
    Own(Box<nvml_wrapper::Nvml>),
}

impl std::ops::Deref for NvmlRef {
    type Target = nvml_wrapper::Nvml;
    fn deref(&self) -> &nvml_wrapper::Nvml {
        match self {
            NvmlRef::Process(n) => n,
            NvmlRef::Own(n) => n,
        }
    }
}

/// NVML, loaded and initialised once per process and never shut down: every worker thread and
/// rank 0's GPU resolution share it, and no thread's reading can race an unload of the library.
fn process_nvml() -> Result<&'static nvml_wrapper::Nvml, &'static str> {
    static NVML: std::sync::OnceLock<Result<nvml_wrapper::Nvml, String>> =
        std::sync::OnceLock::new();
    NVML.get_or_init(|| nvml_wrapper::Nvml::init().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(String::as_str)
}

impl NvmlSampler {
    /// Samples `gpus` (at least one) through `nvml`.
    pub fn new(nvml: nvml_wrapper::Nvml, gpus: Vec<GpuId>) -> NvmlSampler {
        NvmlSampler {
            nvml: NvmlRef::Own(Box::new(nvml)),
            gpus,
        }
    }

    fn sample_one(&self, id: &GpuId) -> GpuSample {
        use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
        use nvml_wrapper::error::NvmlError;
        let device = match id {
            GpuId::Index(i) => self.nvml.device_by_index(*i),
            GpuId::Uuid(u) => self.nvml.device_by_uuid(u.as_str()),
        };
        let device = match device {
            Ok(d) => d,
            Err(e) => {
                let problem = match e {
                    NvmlError::GpuLost => {
                        format!("GPU {id} has fallen off the bus (NVML: GPU lost)")
                    }
                    e => format!("GPU {id} is not reachable through NVML: {e}"),
                };
                return GpuSample {
                    index: match id {
                        GpuId::Index(i) => *i,
                        GpuId::Uuid(_) => 0,
                    },
                    uuid: match id {
                        GpuId::Index(_) => None,
                        GpuId::Uuid(u) => Some(u.clone()),
                    },
                    name: String::new(),
                    utilization: 0,
                    memory_used_mb: 0,
                    memory_total_mb: 0,
                    power_w: None,
                    temperature_c: None,
                    ecc_uncorrected: None,
                    problem: Some(problem),
                };
            }
        };
        let util = device.utilization_rates();
        let lost = matches!(util, Err(NvmlError::GpuLost));
        let mem = device.memory_info().ok();
        let ecc = device
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .ok();
        let uuid = device.uuid().ok().or_else(|| match id {
            GpuId::Uuid(u) => Some(u.clone()),
            GpuId::Index(_) => None,
        });
        let problem = if lost {
            Some(format!("GPU {id} has fallen off the bus (NVML: GPU lost)"))
        } else {
            ecc.filter(|n| *n > 0)
                .map(|n| format!("{n} uncorrected ECC error(s)"))
        };
        GpuSample {
            index: device.index().unwrap_or(match id {
                GpuId::Index(i) => *i,
                GpuId::Uuid(_) => 0,
            }),
            uuid,
            name: device.name().unwrap_or_default(),
            utilization: util.map(|u| u.gpu).unwrap_or(0),
            memory_used_mb: mem.as_ref().map(|m| m.used >> 20).unwrap_or(0),
            memory_total_mb: mem.as_ref().map(|m| m.total >> 20).unwrap_or(0),
            power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
            ecc_uncorrected: ecc,
            problem,
        }
    }
}

impl GpuSampler for NvmlSampler {
    /// A worker with several GPUs reports the first one that is sick, else its first.
    fn sample(&mut self) -> Option<GpuSample> {
        let samples: Vec<GpuSample> = self.gpus.iter().map(|g| self.sample_one(g)).collect();
        let sick = samples.iter().position(|s| s.problem.is_some());
        samples.into_iter().nth(sick.unwrap_or(0))
    }
}

/// A reading when `every` has passed since the last (then `last` moves on), else `None`.
pub(crate) fn sample_every(
    sampler: &mut Box<dyn GpuSampler>,
    last: &mut std::time::Instant,
    every: std::time::Duration,
) -> Option<GpuSample> {
    if last.elapsed() < every {
        return None;
    }
    *last = std::time::Instant::now();
    sampler.sample()
}

/// How many GPUs NVML sees (0 without a driver).
pub fn gpu_count() -> u32 {
    process_nvml()
        .ok()
        .and_then(|n| n.device_count().ok())
        .unwrap_or(0)
}

/// Every device NVML lists, in NVML's order.
pub fn nvml_devices(nvml: &nvml_wrapper::Nvml) -> Vec<crate::gpu_owner::DeviceInfo> {
    let n = nvml.device_count().unwrap_or(0);
    (0..n)
        .filter_map(|i| nvml.device_by_index(i).ok())
        .filter_map(|d| {
            Some(crate::gpu_owner::DeviceInfo {
                uuid: d.uuid().ok()?,
                pci_bus_id: d.pci_info().map(|p| p.bus_id).unwrap_or_default(),
            })
        })
        .collect()
}

/// The GPUs this process owns by what Slurm and CUDA say in its environment (see
/// [`crate::gpu_owner`]), matched to NVML's devices; none where NVML does not load. A mismatch
/// is logged and leaves the worker without GPU readings rather than stopping it.
pub fn owned_gpus_from_env() -> crate::gpu_owner::OwnedGpus {
    let env = crate::gpu_owner::GpuEnv::from_env();
    if env.cuda_visible_devices.is_none() && env.slurm_gpus.is_none() {
        return Default::default();
    }
    let nvml = match process_nvml() {
        Ok(n) => n,
        Err(e) => {
            tracing::info!("no GPU readings: NVML is not available ({e})");
            return Default::default();
        }
    };
    match crate::gpu_owner::owned_gpus(&env, &nvml_devices(nvml)) {
        Ok(owned) => owned,
        Err(e) => {
            tracing::warn!("no GPU readings for this worker: {e}");
            Default::default()
        }
    }
}

/// The sampler for the GPUs `gpus`, or [`NoGpu`] (with a one-line notice) when there are none or
/// NVML does not load.
pub fn gpu_sampler(gpus: &[GpuId]) -> Box<dyn GpuSampler> {
    if gpus.is_empty() {
        return Box::new(NoGpu);
    }
    match process_nvml() {
        Ok(nvml) => Box::new(NvmlSampler {
            nvml: NvmlRef::Process(nvml),
            gpus: gpus.to_vec(),
        }),
        Err(e) => {
            tracing::info!("no GPU readings: NVML is not available ({e})");
            Box::new(NoGpu)
        }
    }
}

impl crate::WorkerConfig {
    /// Takes the GPUs this task owns from what Slurm and CUDA say in its environment (see
    /// [`crate::gpu_owner`]); where every task sees all of a node's GPUs it also sets its
    /// mapper's `CUDA_VISIBLE_DEVICES` to the one it owns.
    pub fn own_gpus_from_env(&mut self) {
        let owned = crate::owned_gpus_from_env();
        if let Some(v) = owned.cuda_visible_devices {
            self.extra_env.push(("CUDA_VISIBLE_DEVICES".into(), v));
        }
        self.gpus = owned.uuids.into_iter().map(crate::GpuId::Uuid).collect();
        if !self.gpus.is_empty() {
            tracing::info!(
                "worker {} on {} owns GPU(s) {}",
                self.rank,
                self.host,
                self.gpus
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_replays_and_no_gpu_reads_nothing() {
        let s = GpuSample {
            index: 0,
            uuid: None,
            name: "Fake H100".into(),
            utilization: 97,
            memory_used_mb: 1000,
            memory_total_mb: 80000,
            power_w: Some(300.0),
            temperature_c: Some(60),
            ecc_uncorrected: Some(0),
            problem: None,
        };
        let mut f = FakeSampler::new(vec![
            s.clone(),
            GpuSample {
                utilization: 50,
                ..s.clone()
            },
        ]);
        assert_eq!(f.sample().expect("a reading").utilization, 97);
        assert_eq!(f.sample().expect("a reading").utilization, 50);
        assert_eq!(f.sample().expect("a reading").utilization, 50);
        assert_eq!(NoGpu.sample(), None);
    }

    #[test]
    fn readings_are_taken_once_an_interval() {
        let s = GpuSample {
            index: 0,
            uuid: None,
            name: "g".into(),
            utilization: 5,
            memory_used_mb: 0,
            memory_total_mb: 0,
            power_w: None,
            temperature_c: None,
            ecc_uncorrected: None,
            problem: None,
        };
        let mut sampler: Box<dyn GpuSampler> = Box::new(FakeSampler::new(vec![s]));
        let every = std::time::Duration::from_millis(50);
        let mut last = std::time::Instant::now();
        assert_eq!(
            sample_every(&mut sampler, &mut last, every),
            None,
            "too early"
        );
        std::thread::sleep(every);
        assert!(sample_every(&mut sampler, &mut last, every).is_some());
        assert_eq!(
            sample_every(&mut sampler, &mut last, every),
            None,
            "just taken"
        );
        let mut none: Box<dyn GpuSampler> = Box::new(NoGpu);
        let mut long_ago = std::time::Instant::now() - every;
        assert_eq!(
            sample_every(&mut none, &mut long_ago, every),
            None,
            "no GPU, no reading"
        );
    }

    #[test]
    fn without_a_driver_the_sampler_is_no_gpu() {
        // On machines without an NVIDIA driver NVML does not load; that must not crash.
        if gpu_count() == 0 {
            assert_eq!(gpu_sampler(&[GpuId::Index(0)]).sample(), None);
        }
    }

    /// The fake NVML (slurm/fake-nvml), built as a dev-dependency next to this test binary.
    fn fake_nvml() -> Option<std::path::PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let lib = exe.parent()?.join("libflywheel_fake_nvml.so");
        lib.is_file().then_some(lib)
    }

    #[test]
    fn the_real_nvml_path_reads_owned_gpus_by_uuid_and_sees_them_fall_sick() {
        let lib = fake_nvml().expect("the fake NVML cdylib is built next to the tests");
        let dir = tempfile::tempdir().expect("temp dir");
        let gpu0 = dir.path().join("nodeT-gpu0");
        let gpu1 = dir.path().join("nodeT-gpu1");
        std::fs::write(
            &gpu0,
            "uuid=GPU-aaaa\nutil=10\nmem_used_mb=100\nmem_total_mb=1000\n",
        )
        .expect("state");
        std::fs::write(&gpu1, "uuid=GPU-bbbb\nutil=55\nmem_used_mb=300\nmem_total_mb=1000\npci_bus_id=00000000:00:01.0\n")
            .expect("state");
        std::env::set_var("FAKE_NVML_STATE", dir.path());
        std::env::set_var("FAKE_NVML_NODE", "nodeT");
        let nvml = || {
            nvml_wrapper::Nvml::builder()
                .lib_path(lib.as_os_str())
                .init()
                .expect("the fake NVML loads")
        };
        // NVML lists both; gpu1's bus id sorts first, so it is Slurm's GPU 0.
        let devices = nvml_devices(&nvml());
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].pci_bus_id, "00000000:00:01.0");
        let env = crate::gpu_owner::GpuEnv {
            cuda_visible_devices: Some("0".into()),
            slurm_gpus: Some("0".into()),
            local_id: Some(0),
        };
        let owned = crate::gpu_owner::owned_gpus(&env, &devices).expect("resolves");
        assert_eq!(owned.uuids, ["GPU-bbbb"]);

        let mut s = NvmlSampler::new(nvml(), vec![GpuId::Uuid("GPU-bbbb".into())]);
        let first = s.sample().expect("a reading");
        assert_eq!(first.uuid.as_deref(), Some("GPU-bbbb"));
        assert_eq!(first.index, 1);
        assert_eq!(
            (
                first.utilization,
                first.memory_used_mb,
                first.memory_total_mb
            ),
            (55, 300, 1000)
        );
        assert_eq!(first.problem, None);
        // The file is read at every call: a test flips the GPU sick while it is sampled.
        std::fs::write(&gpu1, "uuid=GPU-bbbb\nutil=55\necc_uncorrected=2\n").expect("state");
        let sick = s.sample().expect("a reading");
        assert_eq!(sick.ecc_uncorrected, Some(2));
        assert_eq!(sick.problem.as_deref(), Some("2 uncorrected ECC error(s)"));
        std::fs::write(&gpu1, "uuid=GPU-bbbb\nlost=1\n").expect("state");
        let lost = s.sample().expect("a reading");
        assert!(
            lost.problem
                .as_deref()
                .is_some_and(|p| p.contains("fallen off the bus")),
            "{lost:?}"
        );
        // Of two owned GPUs, the sick one is reported.
        let mut both = NvmlSampler::new(
            nvml(),
            vec![GpuId::Uuid("GPU-aaaa".into()), GpuId::Index(1)],
        );
        assert!(both.sample().expect("a reading").problem.is_some());
        std::fs::write(&gpu1, "uuid=GPU-bbbb\n").expect("state");
        assert_eq!(
            both.sample().expect("a reading").uuid.as_deref(),
            Some("GPU-aaaa")
        );
        // A UUID NVML does not list is a problem too, naming it.
        let mut gone = NvmlSampler::new(nvml(), vec![GpuId::Uuid("GPU-cccc".into())]);
        let g = gone.sample().expect("a reading");
        assert!(
            g.problem.as_deref().is_some_and(|p| p.contains("GPU-cccc")),
            "{g:?}"
        );
    }
}
