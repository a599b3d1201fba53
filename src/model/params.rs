//! Parameter names, shapes and initial values, in the golden files' layouts:
//! Dense `[in, out]`, Conv2D OIHW, Conv2DTranspose IOHW.

use crate::rng::{random_bits, streams};
use crate::{Error, Result};

use super::{D_CONV_CHANNELS, D_FEATURES, G_BASE, G_CONVT_CHANNELS, KERNEL};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Keras' glorot_uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    Ones,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    fn new(name: &str, shape: &[usize], init: Init) -> Self {
        ParamSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            init,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn glorot_conv(out_ch: usize, in_ch: usize) -> Init {
    let field = KERNEL * KERNEL;
    Init::GlorotUniform {
        fan_in: in_ch * field,
        fan_out: out_ch * field,
    }
}

/// G's trainable parameters, in the order of the parameter arena.
pub fn generator_specs(latent: usize) -> Vec<ParamSpec> {
    let (c0, h0, w0) = G_BASE;
    let [c1, c2, c3] = G_CONVT_CHANNELS;
    let dense_out = c0 * h0 * w0;
    let k = KERNEL;
    let dense = Init::GlorotUniform {
        fan_in: latent,
        fan_out: dense_out,
    };
    vec![
        ParamSpec::new("g.dense.w", &[latent, dense_out], dense),
        ParamSpec::new("g.dense.b", &[dense_out], Init::Zeros),
        ParamSpec::new("g.bn0.gamma", &[c0], Init::Ones),
        ParamSpec::new("g.bn0.beta", &[c0], Init::Zeros),
        ParamSpec::new("g.convt1.w", &[c0, c1, k, k], glorot_conv(c1, c0)),
        ParamSpec::new("g.convt1.b", &[c1], Init::Zeros),
        ParamSpec::new("g.bn1.gamma", &[c1], Init::Ones),
        ParamSpec::new("g.bn1.beta", &[c1], Init::Zeros),
        ParamSpec::new("g.convt2.w", &[c1, c2, k, k], glorot_conv(c2, c1)),
        ParamSpec::new("g.convt2.b", &[c2], Init::Zeros),
        ParamSpec::new("g.bn2.gamma", &[c2], Init::Ones),
        ParamSpec::new("g.bn2.beta", &[c2], Init::Zeros),
        ParamSpec::new("g.convt3.w", &[c2, c3, k, k], glorot_conv(c3, c2)),
        ParamSpec::new("g.convt3.b", &[c3], Init::Zeros),
    ]
}

/// G's BatchNorm running statistics: state, not trained by Adam.
pub fn generator_state_specs() -> Vec<ParamSpec> {
    let channels = [G_BASE.0, G_CONVT_CHANNELS[0], G_CONVT_CHANNELS[1]];
    let mut specs = Vec::new();
    for (i, c) in channels.into_iter().enumerate() {
        specs.push(ParamSpec::new(
            &format!("g.bn{i}.running_mean"),
            &[c],
            Init::Zeros,
        ));
        specs.push(ParamSpec::new(
            &format!("g.bn{i}.running_var"),
            &[c],
            Init::Ones,
        ));
    }
    specs
}

/// D's trainable parameters, in the order of the parameter arena.
pub fn discriminator_specs() -> Vec<ParamSpec> {
    let [d1, d2] = D_CONV_CHANNELS;
    let k = KERNEL;
    let dense = Init::GlorotUniform {
        fan_in: D_FEATURES,
        fan_out: 1,
    };
    vec![
        ParamSpec::new("d.conv1.w", &[d1, 1, k, k], glorot_conv(d1, 1)),
        ParamSpec::new("d.conv1.b", &[d1], Init::Zeros),
        ParamSpec::new("d.conv2.w", &[d2, d1, k, k], glorot_conv(d2, d1)),
        ParamSpec::new("d.conv2.b", &[d2], Init::Zeros),
        ParamSpec::new("d.dense.w", &[D_FEATURES, 1], dense),
        ParamSpec::new("d.dense.b", &[1], Init::Zeros),
    ]
}

/// Named tensors in a fixed order, with the shapes their specs give.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSet {
    pub specs: Vec<ParamSpec>,
    pub data: Vec<Vec<f32>>,
}

impl TensorSet {
    pub fn zeros(specs: Vec<ParamSpec>) -> Self {
        let data = specs.iter().map(|s| vec![0.0; s.len()]).collect();
        TensorSet { specs, data }
    }

    /// Initial values; random ones are drawn from the seed's `INIT + index` stream, so a
    /// seed fixes every initial weight on every device.
    pub fn initialised(specs: Vec<ParamSpec>, seed: u64, stream_base: u32) -> Self {
        let data = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| initial_values(spec, seed, stream_base + i as u32))
            .collect();
        TensorSet { specs, data }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.index(name).map(|i| self.data[i].as_slice())
    }

    /// Replaces one tensor, checking its length against the spec.
    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let i = self
            .index(name)
            .ok_or_else(|| Error::Config(format!("unknown tensor '{name}'")))?;
        if values.len() != self.specs[i].len() {
            return Err(Error::ShapeMismatch {
                op: format!("tensor '{name}'"),
                expected: format!("{:?} ({} values)", self.specs[i].shape, self.specs[i].len()),
                got: format!("{} values", values.len()),
            });
        }
        self.data[i].copy_from_slice(values);
        Ok(())
    }

    pub fn lens(&self) -> Vec<usize> {
        self.specs.iter().map(ParamSpec::len).collect()
    }
}

fn initial_values(spec: &ParamSpec, seed: u64, stream: u32) -> Vec<f32> {
    match spec.init {
        Init::Zeros => vec![0.0; spec.len()],
        Init::Ones => vec![1.0; spec.len()],
        Init::GlorotUniform { fan_in, fan_out } => {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..spec.len())
                .map(|i| {
                    let bits = random_bits(seed, 0, stream, i as u32)[0];
                    let u = (bits >> 8) as f32 * (1.0 / 16_777_216.0);
                    (2.0 * u - 1.0) * limit
                })
                .collect()
        }
    }
}

/// All of both models' weights and G's BatchNorm running statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub g: TensorSet,
    pub g_state: TensorSet,
    pub d: TensorSet,
}

impl Weights {
    pub fn initial(latent: usize, seed: u64) -> Self {
        let g = generator_specs(latent);
        let g_count = g.len() as u32;
        Weights {
            g: TensorSet::initialised(g, seed, streams::INIT),
            g_state: TensorSet::initialised(generator_state_specs(), seed, streams::INIT),
            d: TensorSet::initialised(discriminator_specs(), seed, streams::INIT + g_count),
        }
    }

    /// Every tensor by name, G's parameters first, then its running statistics, then D's.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamSpec, &[f32])> {
        [&self.g, &self.g_state, &self.d]
            .into_iter()
            .flat_map(|set| set.specs.iter().zip(set.data.iter().map(Vec::as_slice)))
    }

    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.g
            .get(name)
            .or_else(|| self.g_state.get(name))
            .or_else(|| self.d.get(name))
    }

    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<()> {
        for set in [&mut self.g, &mut self.g_state, &mut self.d] {
            if set.index(name).is_some() {
                return set.set(name, values);
            }
        }
        Err(Error::Config(format!("unknown tensor '{name}'")))
    }
}
