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
// The same four values at a time, for adam_update4.
@group(0) @binding(6) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> v4: array<vec4<f32>>;

// One Adam update of four (param, grad, m, v) values: the math of both kernels, so the f32
// one (which splats its value) and the vec4 one give the same bits.
struct Update {
    param: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

fn update(lr_t: f32, param: vec4<f32>, g: vec4<f32>, m: vec4<f32>, v: vec4<f32>) -> Update {
    let m_new = m + (g - m) * params.one_minus_beta1;
    let v_new = v + (g * g - v) * params.one_minus_beta2;
    return Update(param - lr_t * m_new / (sqrt(v_new) + params.epsilon), m_new, v_new);
}

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
            let u = update(
                lr_t,
                vec4<f32>(param[i]),
                vec4<f32>(grad[i]),
                vec4<f32>(m[i]),
                vec4<f32>(v[i]),
            );
            m[i] = u.m.x;
            v[i] = u.v.x;
            param[i] = u.param.x;
        }
    }
}

// adam_update four values at a time, for lengths that are multiples of 4 (memory-bound
// kernels on CPU drivers pay per load instruction more than per byte).
@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_update4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lr_t = step.lr_t[min(params.slot, 3u)];
    let first = (wg.x + wg.y * groups.x) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n / 4u) {
            let u = update(lr_t, param4[i], grad4[i], m4[i], v4[i]);
            m4[i] = u.m;
            v4[i] = u.v;
            param4[i] = u.param;
        }
    }
}
