// Adam in Keras 2's form, element-wise over flat parameter, gradient and moment tensors
// (one dispatch can cover a whole model's arena):
//   m += (g - m) * (1 - beta1);  v += (g^2 - v) * (1 - beta2);
//   param -= lr_t * m / (sqrt(v) + epsilon)
// lr_t (bias correction folded in) is read from the step uniform's slot `slot`, so the three
// updates of a training step share one command buffer.

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrors shapes::StepConstants: one uniform per training step.
struct StepConstants {
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    _pad: u32,
    lr_t: vec4<f32>,
}

// Mirrored by `Params` in src/gpu/ops/adam.rs.
struct Params {
    n: u32,                // elements
    slot: u32,             // which StepConstants.lr_t to use (0..3)
    one_minus_beta1: f32,  // cpu::adam::one_minus(beta1)
    one_minus_beta2: f32,  // cpu::adam::one_minus(beta2)
    epsilon: f32,          // added to sqrt(v)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: StepConstants;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_update(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lr_t = step.lr_t[min(params.slot, 3u)];
    let first = (wg.x + wg.y * groups.x) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let g = grad[i];
            let m_new = m[i] + (g - m[i]) * params.one_minus_beta1;
            let v_new = v[i] + (g * g - v[i]) * params.one_minus_beta2;
            m[i] = m_new;
            v[i] = v_new;
            param[i] = param[i] - lr_t * m_new / (sqrt(v_new) + params.epsilon);
        }
    }
}
