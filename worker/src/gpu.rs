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

/// NVML's view of one device.
pub struct NvmlSampler {
    nvml: nvml_wrapper::Nvml,
    index: u32,
}

impl GpuSampler for NvmlSampler {
    fn sample(&mut self) -> Option<GpuSample> {
        use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
        use nvml_wrapper::error::NvmlError;
        let device = match self.nvml.device_by_index(self.index) {
            Ok(d) => d,
            Err(e) => {
                return Some(GpuSample {
                    index: self.index,
                    name: String::new(),
                    utilization: 0,
                    memory_used_mb: 0,
                    memory_total_mb: 0,
                    power_w: None,
                    temperature_c: None,
                    ecc_uncorrected: None,
                    problem: Some(format!(
                        "GPU {} is not reachable through NVML: {e}",
                        self.index
                    )),
                })
            }
        };
        let util = device.utilization_rates();
        let lost = matches!(util, Err(NvmlError::GpuLost));
        let mem = device.memory_info().ok();
        let ecc = device
            .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
            .ok();
        let problem = if lost {
            Some("GPU has fallen off the bus (NVML: GPU lost)".to_string())
        } else {
            ecc.filter(|n| *n > 0)
                .map(|n| format!("{n} uncorrected ECC error(s)"))
        };
        Some(GpuSample {
            index: self.index,
            name: device.name().unwrap_or_default(),
            utilization: util.map(|u| u.gpu).unwrap_or(0),
            memory_used_mb: mem.as_ref().map(|m| m.used >> 20).unwrap_or(0),
            memory_total_mb: mem.as_ref().map(|m| m.total >> 20).unwrap_or(0),
            power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
            ecc_uncorrected: ecc,
            problem,
        })
    }
}

/// How many GPUs NVML sees (0 without a driver).
pub fn gpu_count() -> u32 {
    nvml_wrapper::Nvml::init()
        .and_then(|n| n.device_count())
        .unwrap_or(0)
}

/// The sampler for the GPU with NVML index `index`, or [`NoGpu`] (with a one-line notice) when
/// there is none.
pub fn gpu_sampler(index: Option<u32>) -> Box<dyn GpuSampler> {
    let Some(index) = index else {
        return Box::new(NoGpu);
    };
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => Box::new(NvmlSampler { nvml, index }),
        Err(e) => {
            tracing::info!("no GPU readings: NVML is not available ({e})");
            Box::new(NoGpu)
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
    fn without_a_driver_the_sampler_is_no_gpu() {
        // On machines without an NVIDIA driver NVML does not load; that must not crash.
        if gpu_count() == 0 {
            assert_eq!(gpu_sampler(Some(0)).sample(), None);
        }
    }
}
