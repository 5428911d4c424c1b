//! **Test support, never shipped.** A fake `libnvidia-ml.so.1`: the NVML entry points flywheel's
//! NVML path (nvml-wrapper) calls, answering from one `key=value` file per GPU (see
//! [`state`]), so the real NVML code path runs on a cluster without GPUs. `slurm/local-cluster.sh`
//! installs it in a directory only its nodes' tasks put on `LD_LIBRARY_PATH`; docs/testing.md
//! describes the files.
//!
//! A device handle is the GPU's index + 1 cast to a pointer; every query reads the GPU's file
//! again, so writing `ecc_uncorrected=1` or `lost=1` into it takes effect at the next call.

pub mod state;

use state::{Gpu, Node};
use std::ffi::{c_char, c_uint, c_ulonglong, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};

/// `nvmlReturn_t` values (nvml.h).
pub type NvmlReturn = c_uint;
pub const SUCCESS: NvmlReturn = 0;
pub const ERROR_UNINITIALIZED: NvmlReturn = 1;
pub const ERROR_INVALID_ARGUMENT: NvmlReturn = 2;
pub const ERROR_NOT_FOUND: NvmlReturn = 6;
pub const ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
pub const ERROR_DRIVER_NOT_LOADED: NvmlReturn = 9;
pub const ERROR_GPU_IS_LOST: NvmlReturn = 15;

/// `nvmlDevice_t`: an opaque pointer.
pub type Device = *mut c_void;

/// `nvmlPciInfo_t`.
#[repr(C)]
pub struct PciInfo {
    pub bus_id_legacy: [c_char; 16],
    pub domain: c_uint,
    pub bus: c_uint,
    pub device: c_uint,
    pub pci_device_id: c_uint,
    pub pci_sub_system_id: c_uint,
    pub bus_id: [c_char; 32],
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    pub gpu: c_uint,
    pub memory: c_uint,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    pub version: c_uint,
    pub total: c_ulonglong,
    pub reserved: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

/// `nvmlMemory_t`.
#[repr(C)]
pub struct Memory {
    pub total: c_ulonglong,
    pub free: c_ulonglong,
    pub used: c_ulonglong,
}

/// NVML is reference counted: every init needs a shutdown.
static INITS: AtomicU32 = AtomicU32::new(0);

fn handle(index: u32) -> Device {
    (index as usize + 1) as Device
}

/// The GPU behind a handle, read now, or the NVML error to return.
fn gpu_of(device: Device) -> Result<Gpu, NvmlReturn> {
    if INITS.load(Ordering::SeqCst) == 0 {
        return Err(ERROR_UNINITIALIZED);
    }
    let index = (device as usize)
        .checked_sub(1)
        .ok_or(ERROR_INVALID_ARGUMENT)?;
    let gpu = Node::from_env()
        .gpu(index as u32)
        .ok_or(ERROR_GPU_IS_LOST)?;
    if gpu.lost {
        return Err(ERROR_GPU_IS_LOST);
    }
    Ok(gpu)
}

/// Runs `f` on the GPU behind `device`, returning its status.
fn with_gpu(device: Device, f: impl FnOnce(&Gpu) -> NvmlReturn) -> NvmlReturn {
    match gpu_of(device) {
        Ok(g) => f(&g),
        Err(e) => e,
    }
}

/// Copies `s` and a NUL into `buf` of `len` bytes.
///
/// # Safety
/// `buf` must be valid for `len` bytes.
unsafe fn put_str(s: &str, buf: *mut c_char, len: c_uint) -> NvmlReturn {
    if buf.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    let bytes = s.as_bytes();
    if bytes.len() + 1 > len as usize {
        return ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: the caller gave `len` bytes, and `bytes.len() + 1 <= len`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    SUCCESS
}

/// Writes `v` through `out` when it is not null.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> NvmlReturn {
    if out.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: checked non-null; the caller promises it is valid.
    unsafe { out.write(v) };
    SUCCESS
}

/// Finds the node's GPU matching `pred` and writes its handle.
///
/// # Safety
/// `device` must be null or valid for a write.
unsafe fn find(device: *mut Device, pred: impl Fn(&Gpu) -> bool) -> NvmlReturn {
    if INITS.load(Ordering::SeqCst) == 0 {
        return ERROR_UNINITIALIZED;
    }
    match Node::from_env().gpus().iter().find(|g| pred(g)) {
        // SAFETY: forwarded from the caller.
        Some(g) => unsafe { put(device, handle(g.index)) },
        None => ERROR_NOT_FOUND,
    }
}

/// # Safety
/// `s` must be null or a NUL-terminated string.
unsafe fn arg_str(s: *const c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: the caller promises a NUL-terminated string.
    Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> NvmlReturn {
    if !Node::from_env().dir.is_dir() {
        return ERROR_DRIVER_NOT_LOADED;
    }
    INITS.fetch_add(1, Ordering::SeqCst);
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlInit() -> NvmlReturn {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    nvmlInit_v2()
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> NvmlReturn {
    match INITS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => SUCCESS,
        Err(_) => ERROR_UNINITIALIZED,
    }
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(result: NvmlReturn) -> *const c_char {
    let s: &'static CStr = match result {
        SUCCESS => c"Success",
        ERROR_UNINITIALIZED => c"Uninitialized",
        ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        ERROR_NOT_FOUND => c"Not Found",
        ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        ERROR_GPU_IS_LOST => c"GPU is lost",
        _ => c"Unknown Error",
    };
    s.as_ptr()
}

/// # Safety
/// `version` must be valid for `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { put_str("550.0-fake", version, length) }
}

/// # Safety
/// `version` must be valid for `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { put_str("12.550.0-fake", version, length) }
}

/// # Safety
/// `count` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> NvmlReturn {
    if INITS.load(Ordering::SeqCst) == 0 {
        return ERROR_UNINITIALIZED;
    }
    // SAFETY: forwarded from the caller.
    unsafe { put(count, Node::from_env().count()) }
}

/// # Safety
/// `device` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut Device,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    unsafe { find(device, |g| g.index == index) }
}

/// # Safety
/// `uuid` must be a NUL-terminated string; `device` null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut Device,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    let Some(uuid) = (unsafe { arg_str(uuid) }) else {
        return ERROR_INVALID_ARGUMENT;
    };
    // SAFETY: forwarded from the caller.
    unsafe { find(device, |g| g.uuid == uuid) }
}

/// # Safety
/// `bus_id` must be a NUL-terminated string; `device` null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByPciBusId_v2(
    bus_id: *const c_char,
    device: *mut Device,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    let Some(id) = (unsafe { arg_str(bus_id) }) else {
        return ERROR_INVALID_ARGUMENT;
    };
    // SAFETY: forwarded from the caller.
    unsafe { find(device, |g| g.pci_bus_id.eq_ignore_ascii_case(&id)) }
}

/// # Safety
/// `name` must be valid for `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: Device,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put_str(&g.name, name, length) })
}

/// # Safety
/// `uuid` must be valid for `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: Device,
    uuid: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put_str(&g.uuid, uuid, length) })
}

/// # Safety
/// `index` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: Device, index: *mut c_uint) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put(index, g.index) })
}

/// # Safety
/// `minor` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMinorNumber(
    device: Device,
    minor: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put(minor, g.minor) })
}

fn c_chars<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, b) in out.iter_mut().zip(s.bytes().take(N - 1)) {
        *o = b as c_char;
    }
    out
}

/// # Safety
/// `pci` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(device: Device, pci: *mut PciInfo) -> NvmlReturn {
    with_gpu(device, |g| {
        // "DDDDDDDD:BB:DD.F": domain, bus and device as NVML gives them.
        let field = |i: usize| {
            g.pci_bus_id
                .split([':', '.'])
                .nth(i)
                .and_then(|s| c_uint::from_str_radix(s, 16).ok())
                .unwrap_or(0)
        };
        let info = PciInfo {
            bus_id_legacy: c_chars(&g.pci_bus_id[g.pci_bus_id.len().saturating_sub(12)..]),
            domain: field(0),
            bus: field(1),
            device: field(2),
            pci_device_id: 0x2330_10de,
            pci_sub_system_id: 0,
            bus_id: c_chars(&g.pci_bus_id),
        };
        // SAFETY: forwarded from the caller.
        unsafe { put(pci, info) }
    })
}

/// # Safety
/// `utilization` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: Device,
    utilization: *mut Utilization,
) -> NvmlReturn {
    with_gpu(device, |g| {
        let u = Utilization {
            gpu: g.util,
            memory: (g.mem_used_mb * 100 / g.mem_total_mb.max(1)) as c_uint,
        };
        // SAFETY: forwarded from the caller.
        unsafe { put(utilization, u) }
    })
}

fn mib(mb: u64) -> c_ulonglong {
    mb << 20
}

/// # Safety
/// `memory` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: Device,
    memory: *mut MemoryV2,
) -> NvmlReturn {
    with_gpu(device, |g| {
        let m = MemoryV2 {
            version: (std::mem::size_of::<MemoryV2>() | (2 << 24)) as c_uint,
            total: mib(g.mem_total_mb),
            reserved: 0,
            free: mib(g.mem_total_mb.saturating_sub(g.mem_used_mb)),
            used: mib(g.mem_used_mb),
        };
        // SAFETY: forwarded from the caller.
        unsafe { put(memory, m) }
    })
}

/// # Safety
/// `memory` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: Device,
    memory: *mut Memory,
) -> NvmlReturn {
    with_gpu(device, |g| {
        let m = Memory {
            total: mib(g.mem_total_mb),
            free: mib(g.mem_total_mb.saturating_sub(g.mem_used_mb)),
            used: mib(g.mem_used_mb),
        };
        // SAFETY: forwarded from the caller.
        unsafe { put(memory, m) }
    })
}

/// # Safety
/// `temp` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Device,
    _sensor: c_uint,
    temp: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put(temp, g.temp_c) })
}

/// # Safety
/// `power` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Device, power: *mut c_uint) -> NvmlReturn {
    // SAFETY: forwarded from the caller.
    with_gpu(device, |g| unsafe { put(power, g.power_w * 1000) })
}

/// Uncorrected errors (`error_type` 1) are the file's `ecc_uncorrected`; corrected ones are 0.
///
/// # Safety
/// `count` must be null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: Device,
    error_type: c_uint,
    _counter_type: c_uint,
    count: *mut c_ulonglong,
) -> NvmlReturn {
    with_gpu(device, |g| {
        let n = if error_type == 1 {
            g.ecc_uncorrected
        } else {
            0
        };
        // SAFETY: forwarded from the caller.
        unsafe { put(count, n) }
    })
}
