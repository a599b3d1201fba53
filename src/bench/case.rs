//! One kernel made ready to time: seeded inputs on the GPU, the plan of its launcher, and
//! what each output must hold by the CPU reference. [`Case::verify`] runs the plan once and
//! compares; only a kernel that passes is timed.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};

use super::check::{Agreement, Subject, Tolerance, compare};
use super::cost::Kernel;
use super::sampled::sample_indices;
use super::{contractions, pointwise};
use crate::Result;
use crate::gpu::{GpuContext, GpuTensor, Plan};
use crate::shapes::StepConstants;

/// Contractions up to this much work are checked against the whole CPU reference (a fraction
/// of a second of its plain loops); larger ones on [`SAMPLED_ENTRIES`] elements in f64.
pub const FULL_REFERENCE_MAX_FLOPS: u64 = 100_000_000;

/// Elements of each output a sampled check computes.
pub const SAMPLED_ENTRIES: usize = 128;

/// What an output must hold.
enum Expect {
    /// Every element, from the CPU reference.
    All(Vec<f32>),
    /// Some elements `(index, value)`, computed in f64.
    Sampled(Vec<(usize, f64)>),
}

struct Output {
    name: &'static str,
    tensor: GpuTensor,
    expect: Expect,
    tolerance: Tolerance,
}

/// A kernel with its inputs, plan and reference.
pub struct Case {
    pub kernel: Kernel,
    plan: Plan,
    outputs: Vec<Output>,
    // Held so that nothing the plan binds is freed while it may run.
    _inputs: Vec<GpuTensor>,
    _uniforms: Vec<wgpu::Buffer>,
}

impl Case {
    /// Uploads inputs drawn from `seed`, records the kernel's launcher into a plan, and
    /// computes the reference (whole, or sampled for large contractions).
    pub fn new(ctx: &GpuContext, kernel: Kernel, seed: u64) -> Result<Case> {
        let mut b = Builder {
            ctx,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            seed,
            full: kernel.flops() <= FULL_REFERENCE_MAX_FLOPS,
            plan: Plan::labelled(kernel.name()),
            inputs: Vec::new(),
            uniforms: Vec::new(),
            outputs: Vec::new(),
        };
        if !contractions::build(&mut b, &kernel)? {
            pointwise::build(&mut b, &kernel)?;
        }
        Ok(Case {
            kernel,
            plan: b.plan,
            outputs: b.outputs,
            _inputs: b.inputs,
            _uniforms: b.uniforms,
        })
    }

    /// The kernel's dispatches.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs the plan once and compares every output with its reference. Call it before any
    /// other run: some kernels update their inputs in place (Adam, BatchNorm's running
    /// statistics), and the reference is of the first run.
    pub fn verify(&self, ctx: &GpuContext) -> Result<Agreement> {
        ctx.run(&[&self.plan])?;
        let shape = self.kernel.shape();
        let mut agreement = Agreement::default();
        for out in &self.outputs {
            let got = ctx.read(&out.tensor)?;
            let subject = Subject {
                kernel: self.kernel.name(),
                shape: &shape,
                output: out.name,
            };
            let a = match &out.expect {
                Expect::All(want) => {
                    let entries = want.iter().enumerate().map(|(i, &v)| (i, v as f64));
                    compare(&subject, &got, entries, out.tolerance)?
                }
                Expect::Sampled(entries) => {
                    compare(&subject, &got, entries.iter().copied(), out.tolerance)?
                }
            };
            agreement = agreement.merge(a);
        }
        Ok(agreement)
    }

    /// Moves one expected value of every output a hundred tolerances away, so that
    /// [`Case::verify`] must fail: how a test shows the check catches a wrong kernel.
    pub fn perturb_reference(&mut self) {
        for out in &mut self.outputs {
            let t = out.tolerance;
            let shift = |v: f64| v + 100.0 * (t.atol + t.rtol * v.abs()) + 1e-3;
            match &mut out.expect {
                Expect::All(v) => {
                    if let Some(x) = v.last_mut() {
                        *x = shift(*x as f64) as f32;
                    }
                }
                Expect::Sampled(e) => {
                    if let Some((_, x)) = e.last_mut() {
                        *x = shift(*x);
                    }
                }
            }
        }
    }
}

/// Collects a case's pieces while a family's `build` makes them.
pub(super) struct Builder<'a> {
    pub ctx: &'a GpuContext,
    rng: Xoshiro256PlusPlus,
    /// Also the seed of the step uniform the random kernels read.
    pub seed: u64,
    /// Whether a contraction is checked whole (else on sampled elements).
    pub full: bool,
    pub plan: Plan,
    inputs: Vec<GpuTensor>,
    uniforms: Vec<wgpu::Buffer>,
    outputs: Vec<Output>,
}

impl Builder<'_> {
    /// `n` values uniform in `[lo, hi)`.
    pub fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.random_range(lo..hi)).collect()
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// A new GPU tensor holding `data`, kept alive with the case.
    pub fn input(&mut self, label: &str, data: &[f32]) -> GpuTensor {
        let t = self.ctx.upload(label, data);
        self.inputs.push(t.clone());
        t
    }

    /// A new GPU tensor of u32 words holding `data`.
    pub fn input_u32(&mut self, label: &str, data: &[u32]) -> GpuTensor {
        let t = self.ctx.upload_u32(label, data);
        self.inputs.push(t.clone());
        t
    }

    /// An output tensor full of NaN, so an element the kernel never writes fails the check.
    pub fn output(&mut self, label: &str, len: usize) -> GpuTensor {
        self.input(label, &vec![f32::NAN; len])
    }

    /// The per-step uniform of the random and Adam kernels: this case's seed, step 5, and
    /// `lr_t` in every slot.
    pub fn step_uniform(&mut self, lr_t: f32) -> (wgpu::Buffer, StepConstants) {
        let constants = StepConstants {
            seed_lo: self.seed as u32,
            seed_hi: (self.seed >> 32) as u32,
            step: 5,
            _pad: 0,
            lr_t: [lr_t; 4],
        };
        let buffer = self.ctx.step_uniform(&constants);
        self.uniforms.push(buffer.clone());
        (buffer, constants)
    }

    /// `tensor` must hold `want` everywhere.
    pub fn expect(&mut self, name: &'static str, tensor: &GpuTensor, want: Vec<f32>, t: Tolerance) {
        self.outputs.push(Output {
            name,
            tensor: tensor.clone(),
            expect: Expect::All(want),
            tolerance: t,
        });
    }

    /// `tensor` (of `len` elements) must hold `entry(i)` at sampled indices `i`.
    pub fn expect_sampled(
        &mut self,
        name: &'static str,
        tensor: &GpuTensor,
        t: Tolerance,
        entry: impl Fn(usize) -> f64,
    ) {
        let entries = sample_indices(tensor.len, SAMPLED_ENTRIES)
            .into_iter()
            .map(|i| (i, entry(i)))
            .collect();
        self.outputs.push(Output {
            name,
            tensor: tensor.clone(),
            expect: Expect::Sampled(entries),
            tolerance: t,
        });
    }
}
