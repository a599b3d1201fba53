//! The training step on the GPU: every tensor resident, the whole step recorded once into a
//! plan of dispatches, and per step only a 32-byte uniform goes up and, at log steps, a few
//! floats come back.

use std::collections::{HashMap, VecDeque};

use crate::gpu::{GpuContext, GpuTensor, Plan, arena, ops};
use crate::model::{
    D_FEATURES, G_BASE, IMAGE_LEN, Layout, ModelConfig, TensorSet, Weights, discriminator_specs,
    generator_specs, generator_state_specs,
};
use crate::rng::{dropout_scale, streams};
use crate::shapes::{StepConstants, adam_slot};
use crate::{Error, Result};

use super::{Half, StepInputs, StepMetrics, TrainState, Trainer, adam_steps};

/// Steps allowed in flight before the CPU waits, so progress, ETA and Ctrl-C stay honest.
const MAX_IN_FLIGHT: usize = 2;

/// One model's parameters, gradients and Adam moments: four arenas with the same layout,
/// so one dispatch updates the whole model.
struct ModelBuffers {
    param: (GpuTensor, Vec<GpuTensor>),
    grad: (GpuTensor, Vec<GpuTensor>),
    m: (GpuTensor, Vec<GpuTensor>),
    v: (GpuTensor, Vec<GpuTensor>),
}

impl ModelBuffers {
    fn new(ctx: &GpuContext, name: &str, set: &TensorSet, m: &TensorSet, v: &TensorSet) -> Self {
        let lens = set.lens();
        let filled = |what: &str, values: &TensorSet| {
            let arena = arena(ctx, &format!("{name}.{what}"), &lens);
            for (t, data) in arena.1.iter().zip(&values.data) {
                ctx.write(t, data);
            }
            arena
        };
        ModelBuffers {
            param: filled("param", set),
            grad: arena(ctx, &format!("{name}.grad"), &lens),
            m: filled("adam_m", m),
            v: filled("adam_v", v),
        }
    }

    fn p(&self, i: usize) -> &GpuTensor {
        &self.param.1[i]
    }

    fn g(&self, i: usize) -> &GpuTensor {
        &self.grad.1[i]
    }
}

/// G's activations and their gradients at one batch size.
struct GActs {
    n: usize,
    layout: Layout,
    noise: GpuTensor,
    dense: GpuTensor,
    dense_act: GpuTensor,
    bn_in: [GpuTensor; 3],
    bn_out: [GpuTensor; 3],
    mean: [GpuTensor; 3],
    var: [GpuTensor; 3],
    convt: [GpuTensor; 3],
    out: GpuTensor,
    // Gradients (the one at G's output is D's input gradient): at each conv-transpose
    // output (pre-activation), at each BatchNorm's output and input, and at the Dense layer.
    d_convt: [GpuTensor; 3],
    d_bn_out: [GpuTensor; 3],
    d_bn_in: [GpuTensor; 3],
    d_dense_act: GpuTensor,
    d_dense: GpuTensor,
}

impl GActs {
    fn new(ctx: &GpuContext, cfg: &ModelConfig, n: usize) -> Self {
        let l = cfg.layout(n);
        let s = |name: &str, len: usize| ctx.storage(&format!("g.{name}"), len);
        let per_layer = |name: &str, f: &dyn Fn(usize) -> usize| {
            [0, 1, 2].map(|i| s(&format!("{name}{i}"), f(i)))
        };
        let bn_len = |i: usize| l.g_bn[i].len();
        let convt_len = |i: usize| l.g_convt[i].input_len();
        let ch = |i: usize| l.g_bn[i].c;
        GActs {
            n,
            noise: s("noise", n * l.latent),
            dense: s("dense", n * l.g_dense_out),
            dense_act: s("dense_act", n * l.g_dense_out),
            bn_in: per_layer("bn_in", &bn_len),
            bn_out: per_layer("bn_out", &bn_len),
            mean: per_layer("bn_mean", &ch),
            var: per_layer("bn_var", &ch),
            convt: per_layer("convt", &convt_len),
            out: s("out", n * IMAGE_LEN),
            d_convt: per_layer("d_convt", &convt_len),
            d_bn_out: per_layer("d_bn_out", &bn_len),
            d_bn_in: per_layer("d_bn_in", &bn_len),
            d_dense_act: s("d_dense_act", n * l.g_dense_out),
            d_dense: s("d_dense", n * l.g_dense_out),
            layout: l,
        }
    }
}

/// D's activations and their gradients at one batch size.
struct DActs {
    n: usize,
    layout: Layout,
    conv: [GpuTensor; 2],
    act: [GpuTensor; 2],
    mask: [GpuTensor; 2],
    dropped: [GpuTensor; 2],
    features: GpuTensor,
    logits: GpuTensor,
    per_sample: GpuTensor,
    d_logits: GpuTensor,
    d_features: GpuTensor,
    d_dropped: [GpuTensor; 2],
    d_act: [GpuTensor; 2],
    d_conv: [GpuTensor; 2],
    d_input: GpuTensor,
}

impl DActs {
    fn new(ctx: &GpuContext, cfg: &ModelConfig, n: usize) -> Self {
        let l = cfg.layout(n);
        let s = |name: &str, len: usize| ctx.storage(&format!("d.{name}"), len);
        let per_layer =
            |name: &str| [0, 1].map(|i| s(&format!("{name}{i}"), l.d_conv[i].output_len()));
        DActs {
            n,
            conv: per_layer("conv"),
            act: per_layer("act"),
            mask: per_layer("mask"),
            dropped: per_layer("dropped"),
            features: s("features", n * D_FEATURES),
            logits: s("logits", n),
            per_sample: s("loss_per_sample", n),
            d_logits: s("d_logits", n),
            d_features: s("d_features", n * D_FEATURES),
            d_dropped: per_layer("d_dropped"),
            d_act: per_layer("d_act"),
            d_conv: per_layer("d_conv"),
            d_input: s("d_input", n * IMAGE_LEN),
            layout: l,
        }
    }
}

/// G's parameter indices (see `model::generator_specs`).
mod gi {
    pub const DENSE_W: usize = 0;
    pub const DENSE_B: usize = 1;
    pub const BN: [usize; 3] = [2, 6, 10];
    pub const CONVT: [usize; 3] = [4, 8, 12];
}

/// D's parameter indices (see `model::discriminator_specs`).
mod di {
    pub const CONV: [usize; 2] = [0, 2];
    pub const DENSE_W: usize = 4;
    pub const DENSE_B: usize = 5;
}

#[derive(Clone, Copy, PartialEq)]
enum BnMode {
    Training,
    Inference,
}

pub struct GpuTrainer {
    ctx: GpuContext,
    cfg: ModelConfig,
    seed: u64,
    step: u64,
    g: ModelBuffers,
    g_state: (GpuTensor, Vec<GpuTensor>),
    d: ModelBuffers,
    step_uniform: wgpu::Buffer,
    /// Three `[loss, accuracy]` slots: D on real, D on fake, G.
    metrics: (GpuTensor, Vec<GpuTensor>),
    real: GpuTensor,
    g_acts: GActs,
    /// Draws the step's real batch and D's noise.
    draw_inputs: Plan,
    /// G's fakes and D's two updates.
    d_updates: Plan,
    /// Draws G's noise (into the same buffer: D's noise is used up by then).
    draw_noise_g: Plan,
    /// G's update through the frozen D.
    g_update: Plan,
    /// Inference-mode generators by batch size, for sample grids.
    generators: HashMap<usize, (GActs, Plan)>,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

impl GpuTrainer {
    /// Uploads the weights and the training set (`IMAGE_LEN` bytes per image; may be empty
    /// when every step's inputs are injected) and records the step's plans once.
    pub fn new(
        ctx: GpuContext,
        cfg: ModelConfig,
        weights: &Weights,
        seed: u64,
        images: &[u8],
        sample_count: usize,
    ) -> Result<Self> {
        let state = TrainState::fresh(weights.clone());
        Self::from_state(ctx, cfg, &state, seed, images, sample_count)
    }

    /// Like [`GpuTrainer::new`], continuing from `state` (e.g. a checkpoint's) with the seed
    /// it was trained with.
    pub fn from_state(
        ctx: GpuContext,
        cfg: ModelConfig,
        state: &TrainState,
        seed: u64,
        images: &[u8],
        sample_count: usize,
    ) -> Result<Self> {
        let n = cfg.batch;
        let weights = &state.weights;
        let g = ModelBuffers::new(&ctx, "g", &weights.g, &state.g_m, &state.g_v);
        let d = ModelBuffers::new(&ctx, "d", &weights.d, &state.d_m, &state.d_v);
        let g_state = arena(&ctx, "g.bn_running", &weights.g_state.lens());
        for (t, data) in g_state.1.iter().zip(&weights.g_state.data) {
            ctx.write(t, data);
        }
        let step_uniform = ctx.step_uniform(&StepConstants::default());
        let metrics = arena(&ctx, "metrics", &[2, 2, 2]);
        let ones = ctx.upload("target.ones", &vec![1.0; n]);
        let zeros = ctx.upload("target.zeros", &vec![0.0; n]);
        let real = ctx.storage("real_batch", n * IMAGE_LEN);
        let g_acts = GActs::new(&ctx, &cfg, n);
        let d_acts = DActs::new(&ctx, &cfg, n);

        // The dataset, uploaded once as bytes packed four to a u32.
        let count = images.len() / IMAGE_LEN;
        let mut words = vec![0u32; images.len().div_ceil(4).max(1)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..images.len()].copy_from_slice(images);
        let dataset = ctx.upload_u32("dataset", &words);

        let mut trainer = GpuTrainer {
            ctx,
            cfg,
            seed,
            step: state.step,
            g,
            g_state,
            d,
            step_uniform,
            metrics,
            real,
            g_acts,
            draw_inputs: Plan::new(),
            d_updates: Plan::new(),
            draw_noise_g: Plan::new(),
            g_update: Plan::new(),
            generators: HashMap::new(),
            in_flight: VecDeque::new(),
        };
        trainer.draw_inputs = trainer.record_inputs(&dataset, count)?;
        trainer.d_updates = trainer.record_d_updates(&d_acts, &ones, &zeros)?;
        let mut draw_noise_g = Plan::new();
        let noise = &trainer.g_acts.noise;
        ops::normal_noise(
            &trainer.ctx,
            &mut draw_noise_g,
            &trainer.step_uniform,
            streams::NOISE_G,
            noise,
        )?;
        trainer.draw_noise_g = draw_noise_g;
        trainer.g_update = trainer.record_g_update(&d_acts, &ones)?;
        trainer.generator_for(sample_count)?;
        Ok(trainer)
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The gradients the last update of each model used, read back: G's (from its update
    /// through the frozen D) and D's (from its update on the fake batch).
    pub fn gradients(&self) -> Result<(TensorSet, TensorSet)> {
        let g = TensorSet::zeros(generator_specs(self.cfg.latent_dim));
        let d = TensorSet::zeros(discriminator_specs());
        Ok((
            self.read_set(&g, &self.g.grad.1)?,
            self.read_set(&d, &self.d.grad.1)?,
        ))
    }

    /// Every dispatch of the step, in order: its label and the number of workgroups.
    pub fn step_dispatches(&self) -> Vec<(String, [u32; 3])> {
        self.step_plans()
            .iter()
            .flat_map(|p| p.dispatches())
            .map(|d| (d.label.clone(), d.workgroups))
            .collect()
    }

    /// Wall-clock time of each dispatch of the step run alone (`repeats` times after one
    /// warm-up, median), in step order. Rerunning dispatches out of turn changes the weights,
    /// so the trainer should not be trained further afterwards.
    pub fn time_step_dispatches(&mut self, repeats: usize) -> Result<Vec<(String, f64)>> {
        let dispatches: Vec<_> = self
            .step_plans()
            .iter()
            .flat_map(|p| p.dispatches().iter().cloned())
            .collect();
        let mut times = Vec::with_capacity(dispatches.len());
        for d in dispatches {
            let mut plan = Plan::labelled(&d.label);
            plan.push(d.clone());
            self.ctx.run(&[&plan])?;
            let mut samples: Vec<f64> = (0..repeats.max(1))
                .map(|_| {
                    let start = std::time::Instant::now();
                    self.ctx
                        .run(&[&plan])
                        .map(|_| start.elapsed().as_secs_f64())
                })
                .collect::<Result<_>>()?;
            samples.sort_by(f64::total_cmp);
            times.push((d.label, samples[samples.len() / 2]));
        }
        Ok(times)
    }

    fn step_plans(&self) -> [&Plan; 4] {
        [
            &self.draw_inputs,
            &self.d_updates,
            &self.draw_noise_g,
            &self.g_update,
        ]
    }

    fn record_inputs(&self, dataset: &GpuTensor, count: usize) -> Result<Plan> {
        let ctx = &self.ctx;
        let mut plan = Plan::new();
        if count > 0 {
            ops::gather_batch(
                ctx,
                &mut plan,
                &self.step_uniform,
                dataset,
                IMAGE_LEN,
                count,
                streams::BATCH_INDICES,
                &self.real,
            )?;
        }
        ops::normal_noise(
            ctx,
            &mut plan,
            &self.step_uniform,
            streams::NOISE_D,
            &self.g_acts.noise,
        )?;
        Ok(plan)
    }

    fn record_d_updates(
        &self,
        d_acts: &DActs,
        ones: &GpuTensor,
        zeros: &GpuTensor,
    ) -> Result<Plan> {
        let ctx = &self.ctx;
        let mut plan = Plan::new();
        let g = &self.g_acts;
        let fake_mode = match self.cfg.fake_bn {
            crate::model::FakeBnMode::Inference => BnMode::Inference,
            crate::model::FakeBnMode::Training => BnMode::Training,
        };

        // Fakes for D from noise_d (already in g.noise).
        self.g_forward(&mut plan, g, fake_mode)?;

        // D on the real batch, then on the fakes.
        let updates = [
            (
                &self.real,
                ones,
                streams::DROPOUT_D_REAL,
                adam_slot::D_REAL,
                0,
            ),
            (&g.out, zeros, streams::DROPOUT_D_FAKE, adam_slot::D_FAKE, 1),
        ];
        for (input, target, stream, slot, metric) in updates {
            self.d_forward(&mut plan, d_acts, input, stream)?;
            ops::sigmoid_bce(
                ctx,
                &mut plan,
                &d_acts.logits,
                target,
                &d_acts.per_sample,
                &d_acts.d_logits,
                &self.metrics.1[metric],
            )?;
            self.d_backward(&mut plan, d_acts, input, true, false)?;
            adam(ctx, &mut plan, &self.cfg, &self.step_uniform, slot, &self.d)?;
        }
        Ok(plan)
    }

    /// G through the frozen D, on fresh noise: only D's input gradient is computed.
    fn record_g_update(&self, d_acts: &DActs, ones: &GpuTensor) -> Result<Plan> {
        let ctx = &self.ctx;
        let mut plan = Plan::new();
        let g = &self.g_acts;
        self.g_forward(&mut plan, g, BnMode::Training)?;
        self.d_forward(&mut plan, d_acts, &g.out, streams::DROPOUT_G_STEP)?;
        ops::sigmoid_bce(
            ctx,
            &mut plan,
            &d_acts.logits,
            ones,
            &d_acts.per_sample,
            &d_acts.d_logits,
            &self.metrics.1[2],
        )?;
        self.d_backward(&mut plan, d_acts, &g.out, false, true)?;
        self.g_backward(&mut plan, g, &d_acts.d_input)?;
        adam(
            ctx,
            &mut plan,
            &self.cfg,
            &self.step_uniform,
            adam_slot::G,
            &self.g,
        )?;
        Ok(plan)
    }

    fn g_forward(&self, plan: &mut Plan, a: &GActs, mode: BnMode) -> Result<()> {
        let ctx = &self.ctx;
        let l = &a.layout;
        let (n, alpha) = (a.n, self.cfg.leaky_alpha);
        let w = &self.g;

        // Dense, LeakyReLU, Keras' NHWC reshape turned into NCHW.
        ops::dense_forward(
            ctx,
            plan,
            n,
            l.latent,
            l.g_dense_out,
            &a.noise,
            w.p(gi::DENSE_W),
            w.p(gi::DENSE_B),
            &a.dense,
        )?;
        ops::leaky_relu_forward(ctx, plan, &a.dense, &a.dense_act, alpha)?;
        let (c0, h0, w0) = G_BASE;
        ops::permute_last_two(ctx, plan, &a.dense_act, &a.bn_in[0], n, h0 * w0, c0)?;

        for layer in 0..3 {
            // BatchNorm, the transposed conv, then LeakyReLU (tanh at the end).
            let s = l.g_bn[layer];
            let (gamma, beta) = (w.p(gi::BN[layer]), w.p(gi::BN[layer] + 1));
            let (rm, rv) = (&self.g_state.1[2 * layer], &self.g_state.1[2 * layer + 1]);
            match mode {
                BnMode::Training => ops::batchnorm_forward_train(
                    ctx,
                    plan,
                    &s,
                    &a.bn_in[layer],
                    gamma,
                    beta,
                    rm,
                    rv,
                    &a.bn_out[layer],
                    &a.mean[layer],
                    &a.var[layer],
                )?,
                BnMode::Inference => ops::batchnorm_forward_inference(
                    ctx,
                    plan,
                    &s,
                    &a.bn_in[layer],
                    gamma,
                    beta,
                    rm,
                    rv,
                    &a.bn_out[layer],
                )?,
            }
            let geo = l.g_convt[layer];
            let (cw, cb) = (w.p(gi::CONVT[layer]), w.p(gi::CONVT[layer] + 1));
            ops::conv_transpose2d_forward(
                ctx,
                plan,
                &geo,
                &a.bn_out[layer],
                cw,
                Some(cb),
                &a.convt[layer],
            )?;
            if layer < 2 {
                ops::leaky_relu_forward(ctx, plan, &a.convt[layer], &a.bn_in[layer + 1], alpha)?;
            } else {
                ops::tanh_forward(ctx, plan, &a.convt[layer], &a.out)?;
            }
        }
        Ok(())
    }

    fn g_backward(&self, plan: &mut Plan, a: &GActs, d_out: &GpuTensor) -> Result<()> {
        let ctx = &self.ctx;
        let l = &a.layout;
        let (n, alpha) = (a.n, self.cfg.leaky_alpha);
        let w = &self.g;

        ops::tanh_backward(ctx, plan, &a.out, d_out, &a.d_convt[2])?;
        for layer in (0..3).rev() {
            // Transposed conv: bias, weight and input gradients.
            let geo = l.g_convt[layer];
            let (wi, bi) = (gi::CONVT[layer], gi::CONVT[layer] + 1);
            let dy = &a.d_convt[layer];
            ops::bias_backward(
                ctx,
                plan,
                dy,
                w.g(bi),
                n,
                geo.in_channels,
                geo.in_h * geo.in_w,
            )?;
            ops::conv_transpose2d_backward_weight(ctx, plan, &geo, &a.bn_out[layer], dy, w.g(wi))?;
            ops::conv_transpose2d_backward_input(ctx, plan, &geo, dy, w.p(wi), &a.d_bn_out[layer])?;

            // BatchNorm, then the LeakyReLU below it.
            let s = l.g_bn[layer];
            let bn = gi::BN[layer];
            ops::batchnorm_backward(
                ctx,
                plan,
                &s,
                &a.bn_in[layer],
                &a.d_bn_out[layer],
                w.p(bn),
                &a.mean[layer],
                &a.var[layer],
                &a.d_bn_in[layer],
                w.g(bn),
                w.g(bn + 1),
            )?;
            if layer > 0 {
                ops::leaky_relu_backward(
                    ctx,
                    plan,
                    &a.convt[layer - 1],
                    &a.d_bn_in[layer],
                    &a.d_convt[layer - 1],
                    alpha,
                )?;
            }
        }

        // Undo the reshape, then LeakyReLU and Dense.
        let (c0, h0, w0) = G_BASE;
        ops::permute_last_two(ctx, plan, &a.d_bn_in[0], &a.d_dense_act, n, c0, h0 * w0)?;
        ops::leaky_relu_backward(ctx, plan, &a.dense, &a.d_dense_act, &a.d_dense, alpha)?;
        ops::dense_backward(
            ctx,
            plan,
            n,
            l.latent,
            l.g_dense_out,
            &a.noise,
            w.p(gi::DENSE_W),
            &a.d_dense,
            None,
            w.g(gi::DENSE_W),
            w.g(gi::DENSE_B),
        )
    }

    fn d_forward(&self, plan: &mut Plan, a: &DActs, input: &GpuTensor, stream: u32) -> Result<()> {
        let ctx = &self.ctx;
        let l = &a.layout;
        let w = &self.d;
        let scale = dropout_scale(self.cfg.dropout_rate);
        for layer in 0..2 {
            // Conv + bias, LeakyReLU, dropout.
            let geo = l.d_conv[layer];
            let x = if layer == 0 { input } else { &a.dropped[0] };
            let (cw, cb) = (w.p(di::CONV[layer]), w.p(di::CONV[layer] + 1));
            ops::conv2d_forward(ctx, plan, &geo, x, cw, Some(cb), &a.conv[layer])?;
            ops::leaky_relu_forward(
                ctx,
                plan,
                &a.conv[layer],
                &a.act[layer],
                self.cfg.leaky_alpha,
            )?;
            ops::dropout_mask(
                ctx,
                plan,
                &self.step_uniform,
                stream + layer as u32,
                self.cfg.dropout_rate,
                &a.mask[layer],
            )?;
            ops::dropout_apply(
                ctx,
                plan,
                &a.act[layer],
                &a.mask[layer],
                scale,
                &a.dropped[layer],
            )?;
        }

        // Keras flattens NHWC: [n, 128, 49] -> [n, 49, 128], then Dense(1).
        let geo = l.d_conv[1];
        ops::permute_last_two(
            ctx,
            plan,
            &a.dropped[1],
            &a.features,
            a.n,
            geo.out_channels,
            geo.out_h * geo.out_w,
        )?;
        ops::dense_forward(
            ctx,
            plan,
            a.n,
            D_FEATURES,
            1,
            &a.features,
            w.p(di::DENSE_W),
            w.p(di::DENSE_B),
            &a.logits,
        )
    }

    fn d_backward(
        &self,
        plan: &mut Plan,
        a: &DActs,
        input: &GpuTensor,
        param_grads: bool,
        input_grad: bool,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let l = &a.layout;
        let w = &self.d;
        let n = a.n;
        let scale = dropout_scale(self.cfg.dropout_rate);

        // Dense head and the NHWC flatten. Its weight gradient goes to a scratch slot when D
        // is frozen: the G step never touches D's gradient arena.
        if param_grads {
            ops::dense_backward(
                ctx,
                plan,
                n,
                D_FEATURES,
                1,
                &a.features,
                w.p(di::DENSE_W),
                &a.d_logits,
                Some(&a.d_features),
                w.g(di::DENSE_W),
                w.g(di::DENSE_B),
            )?;
        } else {
            let shape = crate::shapes::GemmShape {
                m: n,
                n: D_FEATURES,
                k: 1,
                trans_a: false,
                trans_b: true,
            };
            ops::gemm(
                ctx,
                plan,
                &shape,
                &a.d_logits,
                w.p(di::DENSE_W),
                &a.d_features,
            )?;
        }
        let geo = l.d_conv[1];
        ops::permute_last_two(
            ctx,
            plan,
            &a.d_features,
            &a.d_dropped[1],
            n,
            geo.out_h * geo.out_w,
            geo.out_channels,
        )?;

        for layer in (0..2).rev() {
            // Dropout, LeakyReLU, then the conv's gradients.
            let geo = l.d_conv[layer];
            ops::dropout_apply(
                ctx,
                plan,
                &a.d_dropped[layer],
                &a.mask[layer],
                scale,
                &a.d_act[layer],
            )?;
            ops::leaky_relu_backward(
                ctx,
                plan,
                &a.conv[layer],
                &a.d_act[layer],
                &a.d_conv[layer],
                self.cfg.leaky_alpha,
            )?;
            if param_grads {
                let x = if layer == 0 { input } else { &a.dropped[0] };
                let (wi, bi) = (di::CONV[layer], di::CONV[layer] + 1);
                ops::bias_backward(
                    ctx,
                    plan,
                    &a.d_conv[layer],
                    w.g(bi),
                    n,
                    geo.out_channels,
                    geo.out_h * geo.out_w,
                )?;
                ops::conv2d_backward_weight(ctx, plan, &geo, x, &a.d_conv[layer], w.g(wi))?;
            }
            if layer > 0 {
                ops::conv2d_backward_input(
                    ctx,
                    plan,
                    &geo,
                    &a.d_conv[1],
                    w.p(di::CONV[1]),
                    &a.d_dropped[0],
                )?;
            } else if input_grad {
                ops::conv2d_backward_input(
                    ctx,
                    plan,
                    &geo,
                    &a.d_conv[0],
                    w.p(di::CONV[0]),
                    &a.d_input,
                )?;
            }
        }
        Ok(())
    }

    /// The inference-mode generator plan for `count` latent vectors, built on first use.
    fn generator_for(&mut self, count: usize) -> Result<&(GActs, Plan)> {
        if !self.generators.contains_key(&count) {
            let acts = GActs::new(&self.ctx, &self.cfg, count);
            let mut plan = Plan::new();
            self.g_forward(&mut plan, &acts, BnMode::Inference)?;
            self.generators.insert(count, (acts, plan));
        }
        Ok(&self.generators[&count])
    }

    fn constants(&self) -> StepConstants {
        let t = adam_steps(self.step);
        let mut lr_t = [0.0; 4];
        lr_t[adam_slot::D_REAL as usize] = self.cfg.adam.lr_t(t[0]);
        lr_t[adam_slot::D_FAKE as usize] = self.cfg.adam.lr_t(t[1]);
        lr_t[adam_slot::G as usize] = self.cfg.adam.lr_t(t[2]);
        StepConstants {
            seed_lo: self.seed as u32,
            seed_hi: (self.seed >> 32) as u32,
            step: self.step as u32,
            _pad: 0,
            lr_t,
        }
    }

    /// Submits one step: the step uniform, then one command buffer.
    fn submit_step(&mut self) -> Result<()> {
        self.submit_half(Half::Discriminator, true)
    }

    /// Writes the current step's uniform and submits the plans of `half` (and of the G half
    /// after it when `through`) as one command buffer, keeping at most `MAX_IN_FLIGHT`
    /// submissions outstanding. Advances the step once the G half is submitted.
    fn submit_half(&mut self, half: Half, through: bool) -> Result<()> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(index) = self.in_flight.pop_front() {
                self.ctx.wait(index)?;
            }
        }
        let constants = self.constants();
        self.ctx.write_step_uniform(&self.step_uniform, &constants);
        let d_half = [&self.draw_inputs, &self.d_updates];
        let g_half = [&self.draw_noise_g, &self.g_update];
        let plans: Vec<&Plan> = match (half, through) {
            (Half::Discriminator, true) => d_half.into_iter().chain(g_half).collect(),
            (Half::Discriminator, false) => d_half.to_vec(),
            (Half::Generator, _) => g_half.to_vec(),
        };
        let index = self.ctx.submit(&plans)?;
        self.in_flight.push_back(index);
        if half == Half::Generator || through {
            self.step += 1;
        }
        Ok(())
    }

    fn read_model(&self, set: &TensorSet, m: &ModelBuffers) -> Result<[TensorSet; 3]> {
        Ok([
            self.read_set(set, &m.param.1)?,
            self.read_set(set, &m.m.1)?,
            self.read_set(set, &m.v.1)?,
        ])
    }

    fn read_set(&self, specs: &TensorSet, parts: &[GpuTensor]) -> Result<TensorSet> {
        let mut set = specs.clone();
        for (data, t) in set.data.iter_mut().zip(parts) {
            *data = self.ctx.read(t)?;
        }
        Ok(set)
    }
}

fn adam(
    ctx: &GpuContext,
    plan: &mut Plan,
    cfg: &ModelConfig,
    step: &wgpu::Buffer,
    slot: u32,
    m: &ModelBuffers,
) -> Result<()> {
    ops::adam_update(
        ctx, plan, &cfg.adam, step, slot, &m.param.0, &m.grad.0, &m.m.0, &m.v.0,
    )
}

impl Trainer for GpuTrainer {
    fn step(&mut self) -> Result<()> {
        self.submit_step()
    }

    fn half_step(&mut self, half: Half) -> Result<()> {
        self.submit_half(half, false)
    }

    fn step_with(&mut self, inputs: &StepInputs) -> Result<()> {
        let expect = [
            ("real batch", inputs.real.len(), self.real.len),
            ("noise_d", inputs.noise_d.len(), self.g_acts.noise.len),
            ("noise_g", inputs.noise_g.len(), self.g_acts.noise.len),
        ];
        for (what, got, want) in expect {
            if got != want {
                return Err(Error::ShapeMismatch {
                    op: format!("step input {what}"),
                    expected: want.to_string(),
                    got: got.to_string(),
                });
            }
        }
        // Uploads are queued in order with submissions, so noise_g can replace noise_d in
        // the shared buffer between the two halves.
        self.ctx.write(&self.real, &inputs.real);
        self.ctx.write(&self.g_acts.noise, &inputs.noise_d);
        self.ctx
            .write_step_uniform(&self.step_uniform, &self.constants());
        self.ctx.run(&[&self.d_updates])?;
        self.ctx.write(&self.g_acts.noise, &inputs.noise_g);
        self.ctx.run(&[&self.g_update])?;
        self.step += 1;
        Ok(())
    }

    fn metrics(&mut self) -> Result<StepMetrics> {
        let m = self.ctx.read(&self.metrics.0)?;
        let slot = |i: usize| {
            let offset = (self.metrics.1[i].offset - self.metrics.0.offset) as usize / 4;
            (m[offset], m[offset + 1])
        };
        let ((d_loss_real, d_acc_real), (d_loss_fake, d_acc_fake), (g_loss, _)) =
            (slot(0), slot(1), slot(2));
        Ok(StepMetrics {
            d_loss_real,
            d_loss_fake,
            d_acc_real,
            d_acc_fake,
            g_loss,
        })
    }

    fn generate(&mut self, latent: &[f32]) -> Result<Vec<f32>> {
        let count = latent.len() / self.cfg.latent_dim;
        if count == 0 || !latent.len().is_multiple_of(self.cfg.latent_dim) {
            return Err(Error::ShapeMismatch {
                op: "generate".into(),
                expected: format!("a multiple of {} latent values", self.cfg.latent_dim),
                got: latent.len().to_string(),
            });
        }
        self.generator_for(count)?;
        let (acts, plan) = &self.generators[&count];
        self.ctx.write(&acts.noise, latent);
        self.ctx.run(&[plan])?;
        self.ctx.read(&acts.out)
    }

    fn weights(&mut self) -> Result<Weights> {
        let g = TensorSet::zeros(generator_specs(self.cfg.latent_dim));
        let g_state = TensorSet::zeros(generator_state_specs());
        let d = TensorSet::zeros(discriminator_specs());
        Ok(Weights {
            g: self.read_set(&g, &self.g.param.1)?,
            g_state: self.read_set(&g_state, &self.g_state.1)?,
            d: self.read_set(&d, &self.d.param.1)?,
        })
    }

    fn state(&mut self) -> Result<TrainState> {
        let weights = self.weights()?;
        let [_, g_m, g_v] = self.read_model(&weights.g, &self.g)?;
        let [_, d_m, d_v] = self.read_model(&weights.d, &self.d)?;
        Ok(TrainState {
            weights,
            g_m,
            g_v,
            d_m,
            d_v,
            step: self.step,
        })
    }

    fn steps_done(&self) -> u64 {
        self.step
    }

    fn bytes_transferred(&self) -> u64 {
        self.ctx.bytes_transferred()
    }
}
