//! The training step on the CPU reference ops: slow, plain, and the yardstick the GPU
//! step is checked against.

use crate::cpu;
use crate::model::Layout;
use crate::model::{D_FEATURES, G_BASE, IMAGE_LEN, ModelConfig, TensorSet, Weights};
use crate::rng::{dropout_scale, streams};
use crate::shapes::{StepConstants, adam_slot};
use crate::{Error, Result};

use super::{Half, StepInputs, StepMetrics, TrainState, Trainer, adam_steps};

/// G's parameter indices in `Weights::g` (see `model::generator_specs`).
mod gi {
    pub const DENSE_W: usize = 0;
    pub const DENSE_B: usize = 1;
    /// BatchNorm `l`: gamma at `BN[l]`, beta at `BN[l] + 1`.
    pub const BN: [usize; 3] = [2, 6, 10];
    /// Transposed conv `l`: weight at `CONVT[l]`, bias at `CONVT[l] + 1`.
    pub const CONVT: [usize; 3] = [4, 8, 12];
}

/// D's parameter indices in `Weights::d`.
mod di {
    pub const CONV: [usize; 2] = [0, 2];
    pub const DENSE_W: usize = 4;
    pub const DENSE_B: usize = 5;
}

/// Everything G's backward pass needs from its forward pass.
struct GForward {
    noise: Vec<f32>,
    /// Dense output before LeakyReLU, NHWC order `[n, 7*7*128]`.
    dense: Vec<f32>,
    /// Input of BatchNorm `l`, NCHW.
    bn_in: [Vec<f32>; 3],
    bn_out: [Vec<f32>; 3],
    bn_mean: [Vec<f32>; 3],
    bn_var: [Vec<f32>; 3],
    /// Transposed conv outputs (with bias) before their activation.
    convt: [Vec<f32>; 3],
    /// tanh output: the images.
    out: Vec<f32>,
}

/// Everything D's backward pass needs from its forward pass.
struct DForward {
    input: Vec<f32>,
    /// Conv outputs (with bias) before LeakyReLU.
    conv: [Vec<f32>; 2],
    /// Dropout outputs: the next layer's inputs.
    dropped: [Vec<f32>; 2],
    masks: [Vec<f32>; 2],
    features: Vec<f32>,
    logits: Vec<f32>,
}

#[derive(Clone, Copy, PartialEq)]
enum BnMode {
    Training,
    Inference,
}

pub struct CpuTrainer {
    cfg: ModelConfig,
    weights: Weights,
    /// Adam moments, shaped like `weights.g` and `weights.d`.
    g_m: TensorSet,
    g_v: TensorSet,
    d_m: TensorSet,
    d_v: TensorSet,
    seed: u64,
    step: u64,
    images: Vec<u8>,
    last: StepMetrics,
}

impl CpuTrainer {
    /// `images` holds the training set's pixels, `IMAGE_LEN` bytes per image; it may be empty
    /// when every step's inputs are injected.
    pub fn new(cfg: ModelConfig, weights: Weights, seed: u64, images: Vec<u8>) -> Self {
        Self::from_state(cfg, TrainState::fresh(weights), seed, images)
    }

    /// Continues from `state` (e.g. a checkpoint's) with the same seed it was trained with.
    pub fn from_state(cfg: ModelConfig, state: TrainState, seed: u64, images: Vec<u8>) -> Self {
        CpuTrainer {
            g_m: state.g_m,
            g_v: state.g_v,
            d_m: state.d_m,
            d_v: state.d_v,
            cfg,
            weights: state.weights,
            seed,
            step: state.step,
            images,
            last: StepMetrics::default(),
        }
    }

    pub fn constants(&self) -> StepConstants {
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

    fn draw_inputs(&self) -> Result<StepInputs> {
        let n = self.cfg.batch;
        if self.images.len() < IMAGE_LEN {
            return Err(Error::Config("no training images loaded".into()));
        }
        let step = self.step as u32;
        let mut real = vec![0.0; n * IMAGE_LEN];
        cpu::gather_batch(
            &self.images,
            IMAGE_LEN,
            self.seed,
            step,
            streams::BATCH_INDICES,
            &mut real,
        );
        let mut noise_d = vec![0.0; n * self.cfg.latent_dim];
        let mut noise_g = vec![0.0; n * self.cfg.latent_dim];
        cpu::normal_noise(self.seed, step, streams::NOISE_D, &mut noise_d);
        cpu::normal_noise(self.seed, step, streams::NOISE_G, &mut noise_g);
        Ok(StepInputs {
            real,
            noise_d,
            noise_g,
        })
    }

    fn g_forward(&mut self, noise: &[f32], mode: BnMode) -> GForward {
        let n = noise.len() / self.cfg.latent_dim;
        let l = self.cfg.layout(n);
        let alpha = self.cfg.leaky_alpha;
        let g = &self.weights.g.data;

        // Dense, LeakyReLU, then Keras' NHWC reshape turned into NCHW.
        let mut dense = vec![0.0; n * l.g_dense_out];
        cpu::dense_forward(
            n,
            l.latent,
            l.g_dense_out,
            noise,
            &g[gi::DENSE_W],
            &g[gi::DENSE_B],
            &mut dense,
        );
        let mut act = vec![0.0; dense.len()];
        cpu::leaky_relu_forward(&dense, &mut act, alpha);
        let (c0, h0, w0) = G_BASE;
        let mut x = vec![0.0; act.len()];
        cpu::permute_last_two(&act, &mut x, n, h0 * w0, c0);

        let mut fwd = GForward {
            noise: noise.to_vec(),
            dense,
            bn_in: Default::default(),
            bn_out: Default::default(),
            bn_mean: Default::default(),
            bn_var: Default::default(),
            convt: Default::default(),
            out: Vec::new(),
        };
        for layer in 0..3 {
            // BatchNorm, then the transposed conv it feeds.
            let y = self.batchnorm(&l, layer, &x, mode, &mut fwd);
            let geo = l.g_convt[layer];
            let (w, b) = (
                &self.weights.g.data[gi::CONVT[layer]],
                &self.weights.g.data[gi::CONVT[layer] + 1],
            );
            let mut t = vec![0.0; geo.input_len()];
            cpu::conv_transpose2d_forward(&geo, &y, w, Some(b), &mut t);
            fwd.bn_in[layer] = std::mem::take(&mut x);
            fwd.bn_out[layer] = y;

            // LeakyReLU between layers, tanh at the end.
            let mut a = vec![0.0; t.len()];
            if layer < 2 {
                cpu::leaky_relu_forward(&t, &mut a, alpha);
            } else {
                cpu::tanh_forward(&t, &mut a);
            }
            fwd.convt[layer] = t;
            x = a;
        }
        fwd.out = x;
        fwd
    }

    fn batchnorm(
        &mut self,
        l: &Layout,
        layer: usize,
        x: &[f32],
        mode: BnMode,
        fwd: &mut GForward,
    ) -> Vec<f32> {
        let s = l.g_bn[layer];
        let (gamma, beta) = (
            &self.weights.g.data[gi::BN[layer]],
            &self.weights.g.data[gi::BN[layer] + 1],
        );
        let mut y = vec![0.0; x.len()];
        let [rm, rv] = self
            .weights
            .g_state
            .data
            .get_disjoint_mut([2 * layer, 2 * layer + 1])
            .expect("running mean and variance are distinct tensors");
        match mode {
            BnMode::Training => {
                let mut mean = vec![0.0; s.c];
                let mut var = vec![0.0; s.c];
                cpu::batchnorm_forward_train(
                    &s, x, gamma, beta, rm, rv, &mut y, &mut mean, &mut var,
                );
                fwd.bn_mean[layer] = mean;
                fwd.bn_var[layer] = var;
            }
            BnMode::Inference => {
                cpu::batchnorm_forward_inference(&s, x, gamma, beta, rm, rv, &mut y)
            }
        }
        y
    }

    /// Gradients of G's parameters from the gradient at its output images.
    fn g_backward(&self, fwd: &GForward, d_out: &[f32]) -> Vec<Vec<f32>> {
        let n = fwd.noise.len() / self.cfg.latent_dim;
        let l = self.cfg.layout(n);
        let alpha = self.cfg.leaky_alpha;
        let g = &self.weights.g.data;
        let mut grads: Vec<Vec<f32>> = g.iter().map(|t| vec![0.0; t.len()]).collect();

        let mut dy = vec![0.0; d_out.len()];
        cpu::tanh_backward(&fwd.out, d_out, &mut dy);
        for layer in (0..3).rev() {
            // Transposed conv: bias, weight and input gradients.
            let geo = l.g_convt[layer];
            let (wi, bi) = (gi::CONVT[layer], gi::CONVT[layer] + 1);
            cpu::bias_backward(&dy, &mut grads[bi], n, geo.in_channels, geo.in_h * geo.in_w);
            cpu::conv_transpose2d_backward_weight(&geo, &fwd.bn_out[layer], &dy, &mut grads[wi]);
            let mut d_bn_out = vec![0.0; geo.output_len()];
            cpu::conv_transpose2d_backward_input(&geo, &dy, &g[wi], &mut d_bn_out);

            // BatchNorm.
            let s = l.g_bn[layer];
            let mut dx = vec![0.0; d_bn_out.len()];
            let [dgamma, dbeta] = grads
                .get_disjoint_mut([gi::BN[layer], gi::BN[layer] + 1])
                .expect("gamma and beta are distinct tensors");
            cpu::batchnorm_backward(
                &s,
                &fwd.bn_in[layer],
                &d_bn_out,
                &g[gi::BN[layer]],
                &fwd.bn_mean[layer],
                &fwd.bn_var[layer],
                &mut dx,
                dgamma,
                dbeta,
            );

            // LeakyReLU of the layer below (the dense layer's comes after the reshape).
            if layer > 0 {
                dy = vec![0.0; dx.len()];
                cpu::leaky_relu_backward(&fwd.convt[layer - 1], &dx, &mut dy, alpha);
            } else {
                dy = dx;
            }
        }

        // Undo the reshape, then LeakyReLU and Dense.
        let (c0, h0, w0) = G_BASE;
        let mut d_act = vec![0.0; dy.len()];
        cpu::permute_last_two(&dy, &mut d_act, n, c0, h0 * w0);
        let mut d_dense = vec![0.0; d_act.len()];
        cpu::leaky_relu_backward(&fwd.dense, &d_act, &mut d_dense, alpha);
        let [dw, db] = grads
            .get_disjoint_mut([gi::DENSE_W, gi::DENSE_B])
            .expect("dense weight and bias are distinct tensors");
        cpu::dense_backward(
            n,
            l.latent,
            l.g_dense_out,
            &fwd.noise,
            &g[gi::DENSE_W],
            &d_dense,
            None,
            dw,
            db,
        );
        grads
    }

    fn d_forward(&self, x: &[f32], dropout_stream: u32) -> DForward {
        let n = x.len() / IMAGE_LEN;
        let l = self.cfg.layout(n);
        let d = &self.weights.d.data;
        let scale = dropout_scale(self.cfg.dropout_rate);
        let mut fwd = DForward {
            input: x.to_vec(),
            conv: Default::default(),
            dropped: Default::default(),
            masks: Default::default(),
            features: Vec::new(),
            logits: vec![0.0; n],
        };
        let mut h = x.to_vec();
        for layer in 0..2 {
            // Conv + bias, LeakyReLU, dropout.
            let geo = l.d_conv[layer];
            let mut c = vec![0.0; geo.output_len()];
            cpu::conv2d_forward(
                &geo,
                &h,
                &d[di::CONV[layer]],
                Some(&d[di::CONV[layer] + 1]),
                &mut c,
            );
            let mut a = vec![0.0; c.len()];
            cpu::leaky_relu_forward(&c, &mut a, self.cfg.leaky_alpha);
            let mut mask = vec![0.0; a.len()];
            let stream = dropout_stream + layer as u32;
            cpu::dropout_mask(
                self.seed,
                self.step as u32,
                stream,
                self.cfg.dropout_rate,
                &mut mask,
            );
            let mut o = vec![0.0; a.len()];
            cpu::dropout_apply(&a, &mask, scale, &mut o);
            fwd.conv[layer] = c;
            fwd.masks[layer] = mask;
            fwd.dropped[layer] = o.clone();
            h = o;
        }

        // Keras flattens NHWC: permute [n, 128, 49] -> [n, 49, 128], then Dense(1).
        let geo = l.d_conv[1];
        let mut f = vec![0.0; h.len()];
        cpu::permute_last_two(&h, &mut f, n, geo.out_channels, geo.out_h * geo.out_w);
        cpu::dense_forward(
            n,
            D_FEATURES,
            1,
            &f,
            &d[di::DENSE_W],
            &d[di::DENSE_B],
            &mut fwd.logits,
        );
        fwd.features = f;
        fwd
    }

    /// Back-propagates `d_logits` through D. Returns D's parameter gradients when
    /// `param_grads` is set (else empty) and the gradient at D's input when `input_grad` is.
    fn d_backward(
        &self,
        fwd: &DForward,
        d_logits: &[f32],
        param_grads: bool,
        input_grad: bool,
    ) -> (Vec<Vec<f32>>, Vec<f32>) {
        let n = d_logits.len();
        let l = self.cfg.layout(n);
        let d = &self.weights.d.data;
        let scale = dropout_scale(self.cfg.dropout_rate);
        let mut grads: Vec<Vec<f32>> = d.iter().map(|t| vec![0.0; t.len()]).collect();

        // Dense head and the NHWC flatten.
        let mut df = vec![0.0; fwd.features.len()];
        {
            let [dw, db] = grads
                .get_disjoint_mut([di::DENSE_W, di::DENSE_B])
                .expect("dense weight and bias are distinct tensors");
            cpu::dense_backward(
                n,
                D_FEATURES,
                1,
                &fwd.features,
                &d[di::DENSE_W],
                d_logits,
                Some(&mut df),
                dw,
                db,
            );
        }
        let geo = l.d_conv[1];
        let mut dh = vec![0.0; df.len()];
        cpu::permute_last_two(&df, &mut dh, n, geo.out_h * geo.out_w, geo.out_channels);

        let mut dx = Vec::new();
        for layer in (0..2).rev() {
            // Dropout, LeakyReLU, then the conv's gradients.
            let geo = l.d_conv[layer];
            let mut da = vec![0.0; dh.len()];
            cpu::dropout_apply(&dh, &fwd.masks[layer], scale, &mut da);
            let mut dc = vec![0.0; da.len()];
            cpu::leaky_relu_backward(&fwd.conv[layer], &da, &mut dc, self.cfg.leaky_alpha);
            if param_grads {
                let x = if layer == 0 {
                    &fwd.input
                } else {
                    &fwd.dropped[0]
                };
                let (wi, bi) = (di::CONV[layer], di::CONV[layer] + 1);
                cpu::bias_backward(
                    &dc,
                    &mut grads[bi],
                    n,
                    geo.out_channels,
                    geo.out_h * geo.out_w,
                );
                cpu::conv2d_backward_weight(&geo, x, &dc, &mut grads[wi]);
            }
            if layer > 0 || input_grad {
                let mut dprev = vec![0.0; geo.input_len()];
                cpu::conv2d_backward_input(&geo, &dc, &d[di::CONV[layer]], &mut dprev);
                if layer > 0 {
                    dh = dprev;
                } else {
                    dx = dprev;
                }
            }
        }
        if !param_grads {
            grads.clear();
        }
        (grads, dx)
    }

    /// One D update on a batch with the given target: returns (loss, accuracy).
    fn train_d(&mut self, x: &[f32], target: f32, dropout_stream: u32, lr_t: f32) -> (f32, f32) {
        let fwd = self.d_forward(x, dropout_stream);
        let n = fwd.logits.len();
        let targets = vec![target; n];
        let mut per_sample = vec![0.0; n];
        let mut d_logits = vec![0.0; n];
        let bce = cpu::sigmoid_bce(&fwd.logits, &targets, &mut per_sample, &mut d_logits);
        let (grads, _) = self.d_backward(&fwd, &d_logits, true, false);
        adam_all(
            &self.cfg,
            lr_t,
            &mut self.weights.d,
            &grads,
            &mut self.d_m,
            &mut self.d_v,
        );
        (bce.loss, bce.accuracy)
    }

    fn run_step(&mut self, inputs: &StepInputs) -> Result<()> {
        let n = self.cfg.batch;
        check_len("real batch", inputs.real.len(), n * IMAGE_LEN)?;
        check_len("noise_d", inputs.noise_d.len(), n * self.cfg.latent_dim)?;
        check_len("noise_g", inputs.noise_g.len(), n * self.cfg.latent_dim)?;
        self.run_d_half(inputs);
        self.run_g_half(inputs);
        Ok(())
    }

    /// G's fakes, then D's two updates; fills the D half of `self.last`.
    fn run_d_half(&mut self, inputs: &StepInputs) {
        let lr_t = self.constants().lr_t;

        // Fakes for D, with G's BatchNorm in the configured mode.
        let fake_mode = match self.cfg.fake_bn {
            crate::model::FakeBnMode::Inference => BnMode::Inference,
            crate::model::FakeBnMode::Training => BnMode::Training,
        };
        let fake = self.g_forward(&inputs.noise_d, fake_mode).out;

        // Two D updates: real batch, then fakes.
        let (d_loss_real, d_acc_real) = self.train_d(
            &inputs.real,
            1.0,
            streams::DROPOUT_D_REAL,
            lr_t[adam_slot::D_REAL as usize],
        );
        let (d_loss_fake, d_acc_fake) = self.train_d(
            &fake,
            0.0,
            streams::DROPOUT_D_FAKE,
            lr_t[adam_slot::D_FAKE as usize],
        );

        self.last.d_loss_real = d_loss_real;
        self.last.d_loss_fake = d_loss_fake;
        self.last.d_acc_real = d_acc_real;
        self.last.d_acc_fake = d_acc_fake;
    }

    /// G's update through the frozen D; fills `self.last.g_loss` and advances the step.
    fn run_g_half(&mut self, inputs: &StepInputs) {
        let n = self.cfg.batch;
        let lr_t = self.constants().lr_t;
        let g_fwd = self.g_forward(&inputs.noise_g, BnMode::Training);
        let d_fwd = self.d_forward(&g_fwd.out, streams::DROPOUT_G_STEP);
        let ones = vec![1.0; n];
        let mut per_sample = vec![0.0; n];
        let mut d_logits = vec![0.0; n];
        let bce = cpu::sigmoid_bce(&d_fwd.logits, &ones, &mut per_sample, &mut d_logits);
        let (_, d_images) = self.d_backward(&d_fwd, &d_logits, false, true);
        let grads = self.g_backward(&g_fwd, &d_images);
        let lr = lr_t[adam_slot::G as usize];
        adam_all(
            &self.cfg,
            lr,
            &mut self.weights.g,
            &grads,
            &mut self.g_m,
            &mut self.g_v,
        );

        self.last.g_loss = bce.loss;
        self.step += 1;
    }
}

fn adam_all(
    cfg: &ModelConfig,
    lr_t: f32,
    params: &mut TensorSet,
    grads: &[Vec<f32>],
    m: &mut TensorSet,
    v: &mut TensorSet,
) {
    let tensors = params
        .data
        .iter_mut()
        .zip(grads)
        .zip(&mut m.data)
        .zip(&mut v.data);
    for (((param, grad), m), v) in tensors {
        cpu::adam_update(&cfg.adam, lr_t, param, grad, m, v);
    }
}

fn check_len(what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        op: format!("step input {what}"),
        expected: expected.to_string(),
        got: got.to_string(),
    })
}

impl Trainer for CpuTrainer {
    fn step(&mut self) -> Result<()> {
        let inputs = self.draw_inputs()?;
        self.run_step(&inputs)
    }

    fn step_with(&mut self, inputs: &StepInputs) -> Result<()> {
        self.run_step(inputs)
    }

    fn half_step(&mut self, half: Half) -> Result<()> {
        // The draws are counter-based, so drawing again for the G half gives the same inputs.
        let inputs = self.draw_inputs()?;
        match half {
            Half::Discriminator => self.run_d_half(&inputs),
            Half::Generator => self.run_g_half(&inputs),
        }
        Ok(())
    }

    fn metrics(&mut self) -> Result<StepMetrics> {
        Ok(self.last)
    }

    fn generate(&mut self, latent: &[f32]) -> Result<Vec<f32>> {
        check_len("latent vectors", latent.len() % self.cfg.latent_dim, 0)?;
        Ok(self.g_forward(latent, BnMode::Inference).out)
    }

    fn weights(&mut self) -> Result<Weights> {
        Ok(self.weights.clone())
    }

    fn state(&mut self) -> Result<TrainState> {
        Ok(TrainState {
            weights: self.weights.clone(),
            g_m: self.g_m.clone(),
            g_v: self.g_v.clone(),
            d_m: self.d_m.clone(),
            d_v: self.d_v.clone(),
            step: self.step,
        })
    }

    fn steps_done(&self) -> u64 {
        self.step
    }
}
