// Element-wise activations and their gradients over flat f32 tensors of any shape.
// A workgroup covers WORKGROUP_SIZE * ELEMS_PER_INVOCATION consecutive items; invocation
// `lid` takes items lid, lid + WORKGROUP_SIZE, ... so neighbours touch neighbours. An item
// is one f32, or four in the kernels with the suffix 4, which the launcher picks when the
// length is a multiple of 4: memory-bound kernels on CPU drivers pay per load instruction
// more than per byte, and a GPU moves 16-byte words as cheaply as 4-byte ones. Both forms
// share the math below (the f32 kernels splat their value), so they give the same bits.

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
// The same, four values at a time.
@group(0) @binding(4) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> grad_out4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> output4: array<vec4<f32>>;

// Index of this invocation's first element; the grid folds into y past the x limit.
fn first_element(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    let group = wg.x + wg.y * groups.x;
    return group * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
}

// The vec4s of params.n elements (a multiple of 4 for the *4 kernels).
fn vec4_count() -> u32 {
    return params.n / 4u;
}

fn leaky(x: vec4<f32>) -> vec4<f32> {
    return select(params.alpha * x, x, x > vec4<f32>(0.0));
}

fn leaky_grad(x: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return select(params.alpha * dy, dy, x > vec4<f32>(0.0));
}

fn tanh_clamped(x: vec4<f32>) -> vec4<f32> {
    return tanh(clamp(x, vec4<f32>(-TANH_CLAMP), vec4<f32>(TANH_CLAMP)));
}

// dx = dy * (1 - y^2), from the saved output y.
fn tanh_grad(y: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return dy * (1.0 - y * y);
}

// exp(-|z|) never overflows; each branch divides by a number in [1, 2].
fn sigmoid(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(z));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, z >= vec4<f32>(0.0));
}

// dx = dy * y * (1 - y), from the saved output y.
fn sigmoid_grad(y: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return dy * y * (1.0 - y);
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
            output[i] = leaky(vec4<f32>(input[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn leaky_relu_forward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = leaky(input4[i]);
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
            output[i] = leaky_grad(vec4<f32>(input[i]), vec4<f32>(grad_out[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn leaky_relu_backward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = leaky_grad(input4[i], grad_out4[i]);
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
            output[i] = tanh_clamped(vec4<f32>(input[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tanh_forward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = tanh_clamped(input4[i]);
        }
    }
}

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
            output[i] = tanh_grad(vec4<f32>(input[i]), vec4<f32>(grad_out[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tanh_backward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = tanh_grad(input4[i], grad_out4[i]);
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
            output[i] = sigmoid(vec4<f32>(input[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_forward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = sigmoid(input4[i]);
        }
    }
}

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
            output[i] = sigmoid_grad(vec4<f32>(input[i]), vec4<f32>(grad_out[i])).x;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_backward4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = first_element(wg, groups, lid);
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < vec4_count()) {
            output4[i] = sigmoid_grad(input4[i], grad_out4[i]);
        }
    }
}
