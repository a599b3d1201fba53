//! The benchmark's results: one document for tools (serialised as JSON) and the table a
//! person reads.

use std::fmt::Write;

use super::check::Agreement;
use super::cost::Kernel;
use super::timer::{Clock, Timing};
use super::training::{STEP_BLOCKS, StepEntry};

/// What limits a kernel by the roofline: its arithmetic or its memory traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Compute,
    Memory,
}

/// The adapter's ceilings, measured by `fma_peak` and `copy`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Ceilings {
    /// Peak arithmetic, in GFLOP/s (2 FLOP per multiply-add).
    pub fma_gflops: f64,
    /// Copy bandwidth, in GB/s (bytes read plus bytes written, 10^9 per GB).
    pub copy_gbs: f64,
}

impl Ceilings {
    /// FLOP per byte above which a kernel is compute-bound.
    pub fn ridge(&self) -> f64 {
        self.fma_gflops / self.copy_gbs
    }

    /// The least time the roofline allows for `flops` and `bytes`, in seconds.
    pub fn least_time(&self, flops: u64, bytes: u64) -> f64 {
        (flops as f64 / (self.fma_gflops * 1e9)).max(bytes as f64 / (self.copy_gbs * 1e9))
    }
}

/// One timed kernel.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KernelEntry {
    /// The launcher (`bench::cost::Kernel::name`).
    pub name: &'static str,
    pub shape: String,
    /// `"batch 32"`, `"square gemm"` or `"ceiling"`.
    pub group: String,
    /// Times one training step at this batch runs it (0: not part of the configured step).
    pub per_step: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub samples: usize,
    /// Runs per sample, in one submit.
    pub repeats: u32,
    pub flops: u64,
    pub bytes: u64,
    /// Achieved GFLOP/s at the median, for kernels with floating-point work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Achieved GB/s of compulsory traffic at the median.
    pub gbs: f64,
    pub bound: Bound,
    /// The roofline's least time over the median time: achieved / min(FMA peak, arithmetic
    /// intensity x copy bandwidth).
    pub fraction_of_ceiling: f64,
    /// The check against the CPU reference that preceded the timing.
    pub check: Agreement,
}

impl KernelEntry {
    pub fn new(
        kernel: &Kernel,
        group: &str,
        per_step: usize,
        timing: &Timing,
        check: Agreement,
        ceilings: &Ceilings,
    ) -> KernelEntry {
        let (flops, bytes) = (kernel.flops(), kernel.bytes());
        let t = timing.median_s;
        let compute = flops as f64 / (ceilings.fma_gflops * 1e9);
        let memory = bytes as f64 / (ceilings.copy_gbs * 1e9);
        KernelEntry {
            name: kernel.name(),
            shape: kernel.shape(),
            group: group.to_string(),
            per_step,
            median_ms: 1e3 * t,
            min_ms: 1e3 * timing.min_s,
            samples: timing.samples,
            repeats: timing.repeats,
            flops,
            bytes,
            gflops: (flops > 0).then(|| flops as f64 / t * 1e-9),
            gbs: bytes as f64 / t * 1e-9,
            bound: if compute >= memory {
                Bound::Compute
            } else {
                Bound::Memory
            },
            fraction_of_ceiling: ceilings.least_time(flops, bytes) / t,
            check,
        }
    }
}

/// The adapter the run measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub subgroup_kernels: bool,
    /// `GpuContext::kernel_choice`: the variants and the GEMM/convolution kernel set.
    pub kernels: String,
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub program: &'static str,
    pub version: &'static str,
    pub device: DeviceInfo,
    /// How kernel times were taken.
    pub clock: Clock,
    /// How step times were taken: always the wall clock, as training sees them.
    pub steps_clock: Clock,
    pub ceilings: Ceilings,
    /// `fma_peak` and `copy` themselves.
    pub ceiling_kernels: Vec<KernelEntry>,
    pub kernels: Vec<KernelEntry>,
    pub steps: Vec<StepEntry>,
}

impl Report {
    /// The report as a person reads it.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let d = &self.device;
        let _ = writeln!(
            out,
            "gan-gpu bench on {} ({}, {}), driver {} {}, kernels {}",
            d.adapter, d.backend, d.device_type, d.driver, d.driver_info, d.kernels
        );
        let _ = writeln!(
            out,
            "kernel times: {}; a sample is R runs in one submit, divided by R",
            self.clock.describe()
        );
        let c = &self.ceilings;
        let _ = writeln!(
            out,
            "ceilings: {:.1} GFLOP/s (fma_peak), {:.1} GB/s (copy); ridge point {:.1} FLOP/byte\n",
            c.fma_gflops,
            c.copy_gbs,
            c.ridge()
        );

        let mut groups: Vec<&str> = Vec::new();
        for e in self.ceiling_kernels.iter().chain(&self.kernels) {
            if !groups.contains(&e.group.as_str()) {
                groups.push(&e.group);
            }
        }
        for group in groups {
            let rows: Vec<&KernelEntry> = self
                .ceiling_kernels
                .iter()
                .chain(&self.kernels)
                .filter(|e| e.group == group)
                .collect();
            kernel_table(&mut out, group, &rows);
        }
        if !self.steps.is_empty() {
            step_table(&mut out, &self.steps);
        }
        out
    }
}

fn kernel_table(out: &mut String, group: &str, rows: &[&KernelEntry]) {
    // What the kernels add up to per step, to hold against the step's own time.
    let step_ms: f64 = rows.iter().map(|e| e.median_ms * e.per_step as f64).sum();
    if step_ms > 0.0 {
        let _ = writeln!(
            out,
            "{group} (medians x runs per step add up to {step_ms:.1} ms per step)"
        );
    } else {
        let _ = writeln!(out, "{group}");
    }
    let _ = writeln!(
        out,
        "  {:<33} {:<34} {:>6} {:>10} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "kernel",
        "shape",
        "x/step",
        "median ms",
        "min ms",
        "GFLOP/s",
        "GB/s",
        "bound",
        "roofline",
        "samples"
    );
    for e in rows {
        let gflops = e.gflops.map_or("-".to_string(), |g| format!("{g:.2}"));
        let bound = match e.bound {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
        };
        let _ = writeln!(
            out,
            "  {:<33} {:<34} {:>6} {:>10.4} {:>10.4} {:>8} {:>8.2} {:>7} {:>7.1}% {:>5}x{}",
            e.name,
            e.shape,
            e.per_step,
            e.median_ms,
            e.min_ms,
            gflops,
            e.gbs,
            bound,
            100.0 * e.fraction_of_ceiling,
            e.samples,
            e.repeats
        );
    }
    out.push('\n');
}

fn step_table(out: &mut String, steps: &[StepEntry]) {
    let _ = writeln!(
        out,
        "training step (wall clock: steps submitted back to back until the last one's metrics \
         are read; the GPU after one warm-up step, in {STEP_BLOCKS} blocks, the median block's \
         time per step)"
    );
    let _ = writeln!(
        out,
        "  {:<6} {:>5} {:>5} {:>10} {:>9} {:>8} {:>7} {:>10} {:>8} {:>7} {:>7} {:>8}",
        "device",
        "batch",
        "steps",
        "ms/step",
        "images/s",
        "GFLOP",
        "GFLOP/s",
        "dispatches",
        "cmd bufs",
        "submits",
        "objects",
        "bytes"
    );
    for s in steps {
        let _ = writeln!(
            out,
            "  {:<6} {:>5} {:>5} {:>10.1} {:>9.1} {:>8.3} {:>7.2} {:>10} {:>8} {:>7} {:>7} {:>8}",
            s.device,
            s.batch,
            s.steps_timed,
            s.ms_per_step,
            s.images_per_s,
            s.gflop_per_step,
            s.gflops,
            s.dispatches,
            s.command_buffers,
            s.submits,
            s.objects_created,
            s.bytes_transferred
        );
    }
}
