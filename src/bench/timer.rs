//! Timing plans: GPU timestamps where the device has them, else the wall clock around the
//! submit and the wait; and the sampling policy (warm-up, runs per sample, samples).
//!
//! A sample runs a plan R times in one compute pass of one submit and is divided by R, so
//! a kernel of a few microseconds is not drowned by the cost of a submit and a wait.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Plan};

/// How a sample's time is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// Timestamps the GPU writes at the start and the end of the sample's compute pass.
    GpuTimestamps,
    /// The CPU's monotonic clock from the submit to the end of the wait for it.
    WallClock,
}

impl Clock {
    pub fn describe(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => {
                "GPU timestamps at the start and end of each sample's compute pass"
            }
            Clock::WallClock => "wall clock from the submit to the end of the wait for it",
        }
    }
}

/// The query set and buffers of the two timestamps of one pass.
struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
}

/// Runs plans repeatedly and says how long that took.
pub struct Timer {
    ctx: GpuContext,
    queries: Option<Queries>,
}

/// Bytes of the two resolved u64 timestamps.
const STAMP_BYTES: u64 = 16;

impl Timer {
    /// GPU timestamps when the device has them and `wall_clock` is false.
    pub fn new(ctx: &GpuContext, wall_clock: bool) -> Result<Timer> {
        let queries = if ctx.timestamp_queries() && !wall_clock {
            Some(ctx.scoped("timestamp queries", || Queries {
                set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench:timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench:timestamps resolve"),
                    size: STAMP_BYTES,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench:timestamps readback"),
                    size: STAMP_BYTES,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                period_ns: ctx.queue.get_timestamp_period() as f64,
            })?)
        } else {
            None
        };
        Ok(Timer {
            ctx: ctx.clone(),
            queries,
        })
    }

    pub fn clock(&self) -> Clock {
        if self.queries.is_some() {
            Clock::GpuTimestamps
        } else {
            Clock::WallClock
        }
    }

    /// Seconds taken by `plans` run `repeats` times over in one compute pass of one submit.
    pub fn time(&self, plans: &[&Plan], repeats: u32) -> Result<f64> {
        let Some(q) = &self.queries else {
            let recorded = self.ctx.record(plans, repeats, None, |_| {})?;
            let start = Instant::now();
            let index = self.ctx.submit_recorded(recorded)?;
            self.ctx.wait(index)?;
            return Ok(start.elapsed().as_secs_f64());
        };

        let writes = wgpu::ComputePassTimestampWrites {
            query_set: &q.set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        };
        let recorded = self.ctx.record(plans, repeats, Some(writes), |encoder| {
            encoder.resolve_query_set(&q.set, 0..2, &q.resolve, 0);
            encoder.copy_buffer_to_buffer(&q.resolve, 0, &q.readback, 0, STAMP_BYTES);
        })?;
        let index = self.ctx.submit_recorded(recorded)?;
        let stamps = self.read_stamps(q, index)?;
        if stamps[1] < stamps[0] {
            return Err(Error::Gpu {
                label: "bench:timestamps".into(),
                message: format!(
                    "the end-of-pass timestamp {} is before the start {}; rerun with \
                     --wall-clock",
                    stamps[1], stamps[0]
                ),
            });
        }
        Ok((stamps[1] - stamps[0]) as f64 * q.period_ns * 1e-9)
    }

    fn read_stamps(&self, q: &Queries, index: wgpu::SubmissionIndex) -> Result<[u64; 2]> {
        let (sender, receiver) = std::sync::mpsc::channel();
        q.readback
            .map_async(wgpu::MapMode::Read, 0..STAMP_BYTES, move |r| {
                let _ = sender.send(r);
            });
        self.ctx.wait(index)?;
        let failed = |message: String| Error::Gpu {
            label: "bench:timestamps".into(),
            message,
        };
        match receiver.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => {
                return Err(failed(
                    "the timestamps were not mapped after the wait".into(),
                ));
            }
        }
        let mut stamps = [0u64; 2];
        match self.ctx.scoped("bench:timestamps", || {
            q.readback.get_mapped_range(0..STAMP_BYTES)
        })? {
            Ok(view) => stamps.copy_from_slice(bytemuck::cast_slice(&view)),
            Err(e) => return Err(failed(e.to_string())),
        }
        q.readback.unmap();
        Ok(stamps)
    }
}

/// How long to sample a kernel for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Each sample runs the plan until about this long (R runs in one submit).
    pub target_sample: Duration,
    /// Samples are taken until about this much time is spent...
    pub budget: Duration,
    /// ...but at least this many...
    pub min_samples: usize,
    /// ...and at most this many.
    pub max_samples: usize,
    /// A kernel whose fewest samples would take longer than this gets only as many as fit,
    /// and never fewer than two: on a software rasterizer the largest kernels run for
    /// seconds, where two samples say as much as three.
    pub max_time: Duration,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            target_sample: Duration::from_millis(10),
            budget: Duration::from_millis(80),
            min_samples: 3,
            max_samples: 10,
            max_time: Duration::from_secs(2),
        }
    }
}

/// Most runs one sample records into its pass.
const MAX_REPEATS: u32 = 4096;

/// A kernel's time per run.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Seconds per run: the median and the minimum over the samples.
    pub median_s: f64,
    pub min_s: f64,
    pub samples: usize,
    /// Runs per sample.
    pub repeats: u32,
}

/// How a kernel is sampled, from one first run: runs per sample and samples in all.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplePlan {
    pub repeats: u32,
    pub samples: usize,
    /// Seconds per run of the samples taken so far.
    times: Vec<f64>,
}

impl SamplePlan {
    /// Times one run of `plans` (already run once, by the check, which warms them up) and
    /// sizes the samples from it. When one run is already as long as a sample, that run is
    /// the first sample, so the slowest kernels are not run once more for nothing.
    pub fn new(timer: &Timer, plans: &[&Plan], sampling: &Sampling) -> Result<SamplePlan> {
        let once = timer.time(plans, 1)?.max(1e-9);
        let target = sampling.target_sample.as_secs_f64();
        let repeats = ((target / once).ceil() as u32).clamp(1, MAX_REPEATS);
        let per_sample = once * repeats as f64;
        let samples = ((sampling.budget.as_secs_f64() / per_sample) as usize)
            .clamp(sampling.min_samples.max(1), sampling.max_samples.max(1));
        let fit = (sampling.max_time.as_secs_f64() / per_sample) as usize;
        let times = if repeats == 1 { vec![once] } else { Vec::new() };
        Ok(SamplePlan {
            repeats,
            samples: samples.min(fit.max(2)),
            times,
        })
    }

    /// Takes samples until `count` have been taken in all (or all of them).
    pub fn take(&mut self, timer: &Timer, plans: &[&Plan], count: usize) -> Result<()> {
        while self.times.len() < count.min(self.samples) {
            self.times
                .push(timer.time(plans, self.repeats)? / self.repeats as f64);
        }
        Ok(())
    }

    /// The median and minimum over the samples taken.
    pub fn timing(&self) -> Timing {
        let mut times = self.times.clone();
        times.sort_by(f64::total_cmp);
        Timing {
            median_s: median(&times),
            min_s: times[0],
            samples: times.len(),
            repeats: self.repeats,
        }
    }
}

/// Samples `plans` as [`SamplePlan`] sizes them, all samples at once.
pub fn measure(timer: &Timer, plans: &[&Plan], sampling: &Sampling) -> Result<Timing> {
    let mut plan = SamplePlan::new(timer, plans, sampling)?;
    plan.take(timer, plans, plan.samples)?;
    Ok(plan.timing())
}

/// The median of sorted, non-empty `v`.
pub fn median(v: &[f64]) -> f64 {
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        0.5 * (v[mid - 1] + v[mid])
    } else {
        v[mid]
    }
}
