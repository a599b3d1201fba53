//! Loader and comparison helpers for the TensorFlow-computed reference cases in
//! `../shared/golden` (its README.md is the authority on what every case means).
//!
//! How a backend is checked against the cases: iterate [`cases`], compute every output tensor
//! a case holds (`y`, `dx`, `dw`, ... under the same names as in the file, NCHW, flattened)
//! from the case's input tensors and metadata, put them in a `HashMap<String, Vec<f32>>`, and
//! call [`check_case`] (panics on a mismatch) or [`compare_case`] (returns the report, so a
//! test can go on to the next case and report every failing case at the end). Both use the
//! per-op tolerance of [`tolerance`] and fail when an output of the case was not computed,
//! or when a computed name is not in the case (a typo would otherwise go unchecked).
//! `tests/golden_cpu.rs` holds the CPU dispatch; a GPU test can follow it op by op.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// The golden folder: `$GAN_GPU_GOLDEN_DIR`, else `<crate>/../shared/golden`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("GAN_GPU_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"),
    }
}

/// One reference case: its metadata and every tensor of its file.
pub struct Case {
    pub name: String,
    pub op: String,
    pub file: PathBuf,
    pub meta: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Case {
    /// The tensor's values, row-major. Panics (naming the case) if the file lacks it.
    pub fn tensor(&self, name: &str) -> &[f32] {
        &self.entry(name).1
    }

    /// The tensor's shape as stored (scalars are `[1]`).
    pub fn shape(&self, name: &str) -> &[usize] {
        &self.entry(name).0
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Every tensor name of the case, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A metadata value as written. Panics (naming the case and key) if absent.
    pub fn meta_str(&self, key: &str) -> &str {
        match self.meta.get(key) {
            Some(value) => value,
            None => panic!("golden case {}: metadata has no `{key}`", self.name),
        }
    }

    /// A numeric metadata value (`momentum = 0.99`, `epsilon = 1e-07`, `step = 7`).
    pub fn meta_f64(&self, key: &str) -> f64 {
        let value = self.meta_str(key);
        value.trim().parse().unwrap_or_else(|_| {
            panic!(
                "golden case {}: metadata `{key}` = {value:?} is not a number",
                self.name
            )
        })
    }

    /// A two-dimensional metadata value written `HxW` (`stride = 2x1`) as `(h, w)`.
    pub fn meta_pair(&self, key: &str) -> (usize, usize) {
        let value = self.meta_str(key);
        let parsed = value
            .split_once('x')
            .and_then(|(h, w)| Some((h.trim().parse().ok()?, w.trim().parse().ok()?)));
        parsed.unwrap_or_else(|| {
            panic!(
                "golden case {}: metadata `{key}` = {value:?} is not of the form HxW",
                self.name
            )
        })
    }

    fn entry(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        match self.tensors.get(name) {
            Some(entry) => entry,
            None => panic!(
                "golden case {} ({}) has no tensor `{name}`; it has {:?}",
                self.name,
                self.file.display(),
                self.tensor_names()
            ),
        }
    }
}

/// Every case listed in `index.json`, in name order. A missing folder, index or file fails
/// the calling test: the golden data is part of the project, not optional.
pub fn cases() -> Vec<Case> {
    let dir = golden_dir();
    assert!(
        dir.is_dir(),
        "golden folder {} not found. The reference cases live in ../shared/golden next to the \
         crate; set GAN_GPU_GOLDEN_DIR to point elsewhere",
        dir.display()
    );
    let index_path = dir.join("index.json");
    let index_text = std::fs::read_to_string(&index_path)
        .unwrap_or_else(|e| panic!("cannot read the golden index {}: {e}", index_path.display()));
    let index: serde_json::Value = serde_json::from_str(&index_text)
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", index_path.display()));
    let Some(listed) = index.get("cases").and_then(|c| c.as_object()) else {
        panic!("{}: no `cases` object", index_path.display());
    };

    let mut names: Vec<&String> = listed.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| load_case(&dir, name, &listed[name.as_str()]))
        .collect()
}

/// Reads one case's safetensors file and checks it against its index entry.
fn load_case(dir: &Path, name: &str, entry: &serde_json::Value) -> Case {
    let field = |key: &str| match entry.get(key).and_then(|v| v.as_str()) {
        Some(value) => value.to_string(),
        None => panic!("golden index: case {name} has no string `{key}`"),
    };
    let file = dir.join(field("file"));
    let op = field("op");

    let bytes = std::fs::read(&file)
        .unwrap_or_else(|e| panic!("golden case {name}: cannot read {}: {e}", file.display()));
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .unwrap_or_else(|e| panic!("{}: bad safetensors header: {e:?}", file.display()));
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: bad safetensors file: {e:?}", file.display()));

    let mut tensors = HashMap::new();
    for (tensor_name, view) in st.tensors() {
        assert!(
            view.dtype() == Dtype::F32,
            "{}: tensor {tensor_name} is {:?}, expected F32",
            file.display(),
            view.dtype()
        );
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(tensor_name, (view.shape().to_vec(), values));
    }

    // The index and the file must describe the same case.
    if let Some(file_op) = meta.get("op") {
        assert_eq!(
            file_op,
            &op,
            "{}: op in the file differs from index.json",
            file.display()
        );
    }
    if let Some(listed) = entry.get("tensors").and_then(|t| t.as_object()) {
        for (tensor_name, shape) in listed {
            let shape: Vec<usize> = serde_json::from_value(shape.clone())
                .unwrap_or_else(|e| panic!("golden index: {name}.{tensor_name} shape: {e}"));
            match tensors.get(tensor_name) {
                Some((stored, _)) => assert_eq!(
                    stored,
                    &shape,
                    "{}: shape of {tensor_name} differs from index.json",
                    file.display()
                ),
                None => panic!(
                    "{}: index.json lists {tensor_name}, the file lacks it",
                    file.display()
                ),
            }
        }
    }

    Case {
        name: name.to_string(),
        op,
        file,
        meta,
        tensors,
    }
}

/// Whether a tensor of an op case is something the op computes (as opposed to an input).
/// Adam's numbered states are `new_param_1`, `new_m_2`, ...
pub fn is_output(tensor: &str) -> bool {
    const OUTPUTS: [&str; 13] = [
        "y",
        "dx",
        "dw",
        "db",
        "dgamma",
        "dbeta",
        "new_running_mean",
        "new_running_var",
        "batch_mean",
        "batch_var",
        "batch_var_unbiased",
        "loss",
        "loss_per_sample",
    ];
    OUTPUTS.contains(&tensor) || ["new_param", "new_m", "new_v"].contains(&adam_base(tensor))
}

/// `new_param_3` -> `new_param`; other names unchanged.
fn adam_base(tensor: &str) -> &str {
    match tensor.rsplit_once('_') {
        Some((base, suffix)) if suffix.parse::<u32>().is_ok() => base,
        _ => tensor,
    }
}

// Tolerances from the golden README's table, as (rtol, atol): pass if
// |got - want| <= atol + rtol * |want|. TensorFlow's own f32 results are within 1e-6 of each
// tensor's largest value of the f64 ones, so these leave room for another summation order
// (GPU tree reductions, fused multiply-adds) while a real bug (padding on the wrong side,
// NCHW/NHWC mix-up, biased running variance, wrong Adam step) shows up as 1e-3 or more.

/// Pure selections and sign-dependent scalings: only rounding of one multiply can differ.
const EXACT: (f32, f32) = (0.0, 1e-6);
/// One transcendental per element (tanh, sigmoid), whose last bits differ between libms.
const TRANSCENDENTAL: (f32, f32) = (1e-5, 1e-6);
/// Dot products of at most a few hundred terms.
const DENSE: (f32, f32) = (1e-5, 1e-5);
/// Convolution outputs and input gradients: sums over channels * taps.
const CONV_DATA: (f32, f32) = (1e-4, 1e-5);
/// Convolution weight and bias gradients: sums over batch * height * width positions.
const CONV_PARAM_GRAD: (f32, f32) = (1e-4, 1e-4);
/// BatchNorm outputs and input gradients (mean, variance and two reductions feed each).
const BN_DATA: (f32, f32) = (1e-4, 1e-5);
/// BatchNorm gamma/beta gradients: sums over batch * height * width.
const BN_PARAM_GRAD: (f32, f32) = (1e-4, 1e-4);
/// Batch statistics and running averages: one reduction each.
const BN_STATS: (f32, f32) = (1e-5, 1e-6);
/// BCE losses: a softplus per sample and a mean.
const BCE_LOSS: (f32, f32) = (1e-5, 1e-6);
/// BCE gradient: (sigmoid - t) / N, as small as 1e-44 for saturated logits, hence a tiny atol.
const BCE_GRAD: (f32, f32) = (1e-5, 1e-7);
/// Adam moments: two fused updates per element, both exact up to an ulp or two.
const ADAM_MOMENTS: (f32, f32) = (1e-6, 1e-12);
/// Adam parameters: the step lr_t * m / (sqrt(v) + eps) is about 2e-4, so an atol of 5e-8
/// is a 0.025% error of one step.
const ADAM_PARAM: (f32, f32) = (1e-6, 5e-8);
/// End-to-end losses and accuracies.
const E2E_SCALARS: (f32, f32) = (0.0, 1e-5);
/// End-to-end activations (generated images, D's outputs) after many layers.
const E2E_ACTIVATIONS: (f32, f32) = (1e-4, 2e-5);
/// End-to-end parameter gradients.
const E2E_GRADIENTS: (f32, f32) = (1e-4, 1e-6);
/// End-to-end weights and running statistics after a step.
const E2E_WEIGHTS: (f32, f32) = (1e-4, 1e-5);

/// `(rtol, atol)` for output `tensor` of an `op` case, per the golden README. Panics on a
/// combination the table does not cover, so a new op or output gets a tolerance on purpose.
pub fn tolerance(op: &str, tensor: &str) -> (f32, f32) {
    match (op, adam_base(tensor)) {
        ("leaky_relu" | "dropout", "y" | "dx") => EXACT,
        ("tanh" | "sigmoid", "y" | "dx") => TRANSCENDENTAL,
        ("dense" | "flatten_dense" | "dense_reshape", "y" | "dx" | "dw" | "db") => DENSE,
        ("conv2d" | "conv2d_transpose", "y" | "dx") => CONV_DATA,
        ("conv2d" | "conv2d_transpose", "dw" | "db") => CONV_PARAM_GRAD,
        ("batchnorm_train" | "batchnorm_inference", "y" | "dx") => BN_DATA,
        ("batchnorm_train" | "batchnorm_inference", "dgamma" | "dbeta") => BN_PARAM_GRAD,
        (
            "batchnorm_train" | "batchnorm_inference",
            "batch_mean" | "batch_var" | "batch_var_unbiased" | "new_running_mean"
            | "new_running_var",
        ) => BN_STATS,
        ("sigmoid_bce_logits", "loss" | "loss_per_sample") => BCE_LOSS,
        ("sigmoid_bce_logits", "dx") => BCE_GRAD,
        // The sigmoid of the logits, checked like the sigmoid op.
        ("sigmoid_bce_logits", "y") => TRANSCENDENTAL,
        ("adam", "new_m" | "new_v") => ADAM_MOMENTS,
        ("adam", "new_param") => ADAM_PARAM,
        ("e2e_dcgan", _) => e2e_tolerance(tensor),
        _ => panic!("no tolerance for output `{tensor}` of op `{op}` (see golden/README.md)"),
    }
}

/// `stepS.d_loss_real` / `stepS.fake` / `stepS.grad.*` / `stepS.<weight>`, with or without
/// the `stepS.` prefix.
fn e2e_tolerance(tensor: &str) -> (f32, f32) {
    let rest = match tensor.split_once('.') {
        Some((step, rest))
            if step
                .strip_prefix("step")
                .is_some_and(|s| s.parse::<u32>().is_ok()) =>
        {
            rest
        }
        _ => tensor,
    };
    if rest.starts_with("grad.") {
        E2E_GRADIENTS
    } else if ["d_loss_", "g_loss", "d_acc_"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        E2E_SCALARS
    } else if ["fake", "g_fake_train", "d_prob_", "d_logit_"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        E2E_ACTIVATIONS
    } else {
        E2E_WEIGHTS
    }
}

/// `Err` describing the mismatch if any `|got - want| > atol + rtol * |want|` (a NaN anywhere
/// counts as a mismatch), or if the lengths differ.
pub fn compare(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: got {} elements, expected {}",
            got.len(),
            want.len()
        ));
    }

    let mut bad = 0usize;
    let mut first_bad = None;
    let mut worst: Option<(usize, f32)> = None; // the bad element with the largest |error|
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        // Written so that a NaN on either side fails.
        if err <= atol + rtol * w.abs() {
            continue;
        }
        bad += 1;
        first_bad.get_or_insert(i);
        let err = if err.is_nan() { f32::INFINITY } else { err };
        if worst.is_none_or(|(_, e)| err > e) {
            worst = Some((i, err));
        }
    }
    let (Some(first), Some((wi, _))) = (first_bad, worst) else {
        return Ok(());
    };

    Err(format!(
        "{what}: {bad} of {} elements outside atol {atol:e} + rtol {rtol:e}; first bad index \
         {first} (got {}, want {}); worst index {wi} (got {}, want {}, |err| {:e})",
        got.len(),
        got[first],
        want[first],
        got[wi],
        want[wi],
        (got[wi] - want[wi]).abs()
    ))
}

/// Panics with the worst error, the first bad index and the count of bad elements unless
/// every `|got - want| <= atol + rtol * |want|`.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    if let Err(report) = compare(what, got, want, rtol, atol) {
        panic!("{report}");
    }
}

/// Compares every output tensor of `case` (see [`is_output`]; for `e2e_dcgan` every
/// `stepS.*` tensor that is not an input of the step) with `outputs`, at [`tolerance`].
/// Returns the number of tensors checked, or one report line per problem.
pub fn compare_case(case: &Case, outputs: &HashMap<String, Vec<f32>>) -> Result<usize, String> {
    let expected: Vec<&str> = case
        .tensor_names()
        .into_iter()
        .filter(|t| is_case_output(&case.op, t))
        .collect();
    let mut problems = Vec::new();

    for name in outputs.keys() {
        if !expected.contains(&name.as_str()) {
            problems.push(format!(
                "computed `{name}`, which is not an output of this case"
            ));
        }
    }
    for &name in &expected {
        match outputs.get(name) {
            None => problems.push(format!("output `{name}` was not computed")),
            Some(got) => {
                let (rtol, atol) = tolerance(&case.op, name);
                if let Err(report) = compare(name, got, case.tensor(name), rtol, atol) {
                    problems.push(report);
                }
            }
        }
    }

    if problems.is_empty() {
        Ok(expected.len())
    } else {
        Err(format!(
            "golden case {} ({}):\n  {}",
            case.name,
            case.op,
            problems.join("\n  ")
        ))
    }
}

/// [`compare_case`], panicking on any problem.
#[track_caller]
pub fn check_case(case: &Case, outputs: &HashMap<String, Vec<f32>>) {
    if let Err(report) = compare_case(case, outputs) {
        panic!("{report}");
    }
}

fn is_case_output(op: &str, tensor: &str) -> bool {
    if op == "e2e_dcgan" {
        let inputs = [".real", ".noise_d", ".noise_g"];
        tensor.starts_with("step") && !inputs.iter().any(|s| tensor.ends_with(s))
    } else {
        is_output(tensor)
    }
}
