//! Tensor backends: burn's flex backend with autodiff on CPU (always built), and under the
//! `cuda` feature burn-cuda. [`run_on`] runs a job generic over the backend chosen at run time.
//!
//! A CUDA request is checked before any work: the feature must be compiled in and the driver
//! library must load and report a device ([`cuda_available`]); burn's own failure would be a
//! panic inside one of its threads.
//!
//! Why flex and not burn's ndarray backend: measured side by side on the `small` and `paper`
//! shapes of `bench/train-step.sh`, flex (SIMD kernels, gemm on rayon) trains JEPA 1.2–1.3×
//! faster, and its losses are bit-identical run to run. burn-cpu (CubeCL) needs an LLVM/MLIR
//! bundle downloaded at build time. What its bits depend on besides the binary: [`cpu_kernels`].

use burn::tensor::backend::AutodiffBackend;

use super::ModelError;
use crate::kinds::Backend;

/// The CPU training backend.
pub type CpuBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// The CUDA training backend.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>;

/// What a stage's record says about where it ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// `cpu` or `cuda`.
    pub backend: String,
    /// The device, e.g. `flex-cpu` or `cuda:0`.
    pub device: String,
    /// What the arithmetic depends on beyond the binary ([`cpu_kernels`], or `cuda`).
    pub kernels: String,
}

/// A computation written once for any autodiff backend.
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device, info: &DeviceInfo) -> Self::Output;
}

/// Why a backend cannot be used here.
pub fn check_backend(backend: Backend) -> Result<(), ModelError> {
    match backend {
        Backend::Cpu => Ok(()),
        Backend::Cuda => {
            if !cfg!(feature = "cuda") {
                return Err(ModelError::Backend("backend `cuda` was requested but this binary was built without CUDA support: rebuild with `cargo build --release --features cuda`, or use `--backend cpu`".to_string()));
            }
            cuda_available().map_err(|why| {
                ModelError::Backend(format!(
                    "backend `cuda` was requested but no usable CUDA driver was found: {why}"
                ))
            })
        }
    }
}

/// Keeps freed tensor buffers in the process heap instead of returning them to the kernel.
///
/// The CPU backend allocates a fresh buffer for nearly every op; with glibc's defaults any
/// buffer over 128 KiB is a fresh `mmap`, so large models spent ~40% of a training step in page
/// faults and page zeroing (measured with `perf` on the `paper` benchmark shapes). Raising the
/// mmap and trim thresholds lets those buffers be reused. Process-wide, idempotent, and without
/// effect on results.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The device a backend runs on (what records say).
pub fn device_info(backend: Backend) -> DeviceInfo {
    let (name, device) = match backend {
        Backend::Cpu => ("cpu", "flex-cpu"),
        Backend::Cuda => ("cuda", "cuda:0"),
    };
    DeviceInfo {
        backend: name.to_string(),
        device: device.to_string(),
        kernels: match backend {
            Backend::Cpu => cpu_kernels(),
            Backend::Cuda => "cuda".to_string(),
        },
    }
}

/// The CPU kernels this process runs, in words: what a model's bits depend on besides the
/// binary and its inputs, e.g. `simd V3, gemm fma k-block 512`.
///
/// burn's CPU backend picks its kernels when it runs, from the CPU it finds: the SIMD level of
/// its elementwise and reduction kernels (macerator: `V4` AVX-512, `V3` AVX2+FMA, `V2` SSE4.2,
/// `Scalar`; a wider vector sums in another order), the matrix-multiply microkernel (gemm:
/// AVX-512, FMA or neither; a fused multiply-add rounds once, a wider tile sums in another
/// order), and gemm's k-block, which it sizes from the L1 data cache (a sum over `k` is
/// rounded once per block; the other blocks only split the output among tiles and threads).
/// The cache itself is not part of the signature: an Intel Xeon with a 48 KiB 12-way L1d and
/// an AMD EPYC with a 32 KiB 8-way one both get k-block 512 with AVX-512, and `reproduce` of
/// the paper experiment on the second against a lock made on the first gave all 801 items
/// identical. Two machines with the same signature run the same instructions on the same data
/// in the same order, so the same binary gives the same bits; with different signatures the
/// artifacts may differ in the last bits, and `reproduce` compares metrics within the lock's
/// tolerances instead. The fused LayerNorm and softmax ([`super::fused`]) add nothing here:
/// their arithmetic is the same on every CPU.
pub fn cpu_kernels() -> String {
    let simd = format!("{:?}", macerator::Arch::new());
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    let gemm = {
        // gemm's f32 microkernel is 64 × 6 with AVX-512 (built with its `x86-v4` kernels,
        // Cargo.toml) and 16 × 6 with FMA; the k-block is sized for it.
        let tile = if std::arch::is_x86_feature_detected!("avx512f") {
            Some(("avx512", 64))
        } else if std::arch::is_x86_feature_detected!("fma") {
            Some(("fma", 16))
        } else {
            None
        };
        match tile {
            Some((name, mr)) => {
                let kc = gemm_common::cache::kernel_params(1 << 12, 1 << 12, 1 << 20, mr, 6, 4).kc;
                format!("{name} k-block {kc}")
            }
            None => "scalar".to_string(),
        }
    };
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let gemm = std::env::consts::ARCH.to_string();
    format!("simd {simd}, gemm {gemm}")
}

/// Runs `job` on `backend` (checked first).
pub fn run_on<J: BackendJob>(backend: Backend, job: J) -> Result<J::Output, ModelError> {
    check_backend(backend)?;
    match backend {
        Backend::Cpu => {
            tune_allocator();
            Ok(job.run::<CpuBackend>(Default::default(), &device_info(backend)))
        }
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(job.run::<CudaBackend>(Default::default(), &device_info(backend))),
        #[cfg(not(feature = "cuda"))]
        Backend::Cuda => Err(ModelError::Backend(
            "backend `cuda` is not compiled into this binary".to_string(),
        )),
    }
}

/// Loads the CUDA driver library (`libcuda.so.1`), initializes it and counts devices. Leaves the
/// library loaded on success (burn loads it again).
pub fn cuda_available() -> Result<(), String> {
    // SAFETY: dlopen/dlsym/dlerror are called with NUL-terminated names; the symbols are cast to
    // the driver API's documented C signatures `CUresult cuInit(unsigned)` and
    // `CUresult cuDeviceGetCount(int*)`.
    unsafe {
        let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let why = if err.is_null() {
                "unknown error".to_string()
            } else {
                std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return Err(format!("cannot load `libcuda.so.1` ({why})"));
        }
        let init = libc::dlsym(handle, c"cuInit".as_ptr());
        let count = libc::dlsym(handle, c"cuDeviceGetCount".as_ptr());
        if init.is_null() || count.is_null() {
            libc::dlclose(handle);
            return Err("`libcuda.so.1` lacks `cuInit`/`cuDeviceGetCount`".to_string());
        }
        let init: extern "C" fn(u32) -> i32 = std::mem::transmute(init);
        let count: extern "C" fn(*mut i32) -> i32 = std::mem::transmute(count);
        let rc = init(0);
        if rc != 0 {
            return Err(format!("`cuInit` failed with CUDA error {rc}"));
        }
        let mut n = 0i32;
        let rc = count(&mut n);
        if rc != 0 {
            return Err(format!("`cuDeviceGetCount` failed with CUDA error {rc}"));
        }
        if n < 1 {
            return Err("the CUDA driver reports no device".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_kernel_signature_names_the_simd_level_and_the_gemm_path() {
        let k = cpu_kernels();
        assert!(k.starts_with("simd "), "{k}");
        assert!(k.contains(", gemm "), "{k}");
        assert_eq!(k, cpu_kernels(), "the signature is stable within a process");
    }

    #[test]
    fn cpu_is_always_available() {
        assert!(check_backend(Backend::Cpu).is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = check_backend(Backend::Cuda).unwrap_err().to_string();
        assert!(e.contains("built without CUDA support"), "{e}");
    }
}
