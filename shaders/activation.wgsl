// Element-wise activations and their gradients over flat f32 tensors of any shape.
// A workgroup covers WORKGROUP_SIZE * ELEMS_PER_INVOCATION consecutive elements; invocation
// `lid` takes elements lid, lid + WORKGROUP_SIZE, ... so neighbours touch neighbours.

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// tanh(15) rounds to 1.0 in f32 (so does anything above 9.02); clamping first keeps drivers
// that evaluate tanh through exp(2x) from computing inf / inf.
const TANH_CLAMP: f32 = 15.0;

// Mirrored by `Params` in src/gpu/ops/activation.rs.
struct Params {
    n: u32,      // elements
    alpha: f32,  // leaky_relu slope for x <= 0; unused by tanh and sigmoid
}

@group(0) @binding(0) var<uniform> params: Params;
// x for the forward passes and leaky_relu_backward, y for tanh/sigmoid_backward.
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;    // dy
@group(0) @binding(3) var<storage, read_write> output: array<f32>; // y or dx

// Index of this invocation's first element; the grid folds into y past the x limit.
fn first_element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    let group = wg.x + wg.y * groups.x;
    return group * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
}

// exp(-|z|) never overflows; each branch divides by a number in [1, 2].
fn sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, z >= 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn leaky_relu_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let x = input[i];
            output[i] = select(params.alpha * x, x, x > 0.0);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn leaky_relu_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let dy = grad_out[i];
            output[i] = select(params.alpha * dy, dy, input[i] > 0.0);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tanh_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            output[i] = tanh(clamp(input[i], -TANH_CLAMP, TANH_CLAMP));
        }
    }
}

// dx = dy * (1 - y^2), from the saved output y.
@compute @workgroup_size(WORKGROUP_SIZE)
fn tanh_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let y = input[i];
            output[i] = grad_out[i] * (1.0 - y * y);
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            output[i] = sigmoid(input[i]);
        }
    }
}

// dx = dy * y * (1 - y), from the saved output y.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < params.n) {
            let y = input[i];
            output[i] = grad_out[i] * y * (1.0 - y);
        }
    }
}
