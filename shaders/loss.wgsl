// Sigmoid + binary cross-entropy from the logits z with targets t, over n samples, in ONE
// workgroup (n is a batch: tens to hundreds), so the mean is a fixed-order reduction with no
// atomics and no second dispatch:
//   loss_per_sample[i] = max(z, 0) - z * t + log1p(exp(-|z|))   (never log(0), never exp(+big))
//   dlogits[i]         = (sigmoid(z) - t) / n                    (gradient of the mean)
//   result             = [mean loss, accuracy], accuracy = fraction with (z > 0) == (t > 0.5)

const WORKGROUP_SIZE: u32 = 256u;

// Mirrored by `Params` in src/gpu/ops/loss.rs.
struct Params {
    n: u32,  // samples
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;               // [n]
@group(0) @binding(2) var<storage, read> targets: array<f32>;              // [n]
@group(0) @binding(3) var<storage, read_write> loss_per_sample: array<f32>; // [n]
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;        // [n]
@group(0) @binding(5) var<storage, read_write> result: array<f32>;         // [2]

var<workgroup> partial: array<vec2<f32>, WORKGROUP_SIZE>;

// log(1 + e) for e in [0, 1], accurate when 1 + e rounds (WGSL has no log1p): the rounding
// error of u = 1 + e cancels in log(u) / (u - 1) (Goldberg, "What every computer scientist
// should know about floating-point arithmetic", theorem 4).
fn log1p_small(e: f32) -> f32 {
    let u = 1.0 + e;
    if (u == 1.0) {
        return e;
    }
    return log(u) * (e / (u - 1.0));
}

// exp(-|z|) never overflows; each branch divides by a number in [1, 2].
fn sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    let r = 1.0 / (1.0 + e);
    return select(e * r, r, z >= 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sigmoid_bce(@builtin(local_invocation_index) lid: u32) {
    let n = params.n;
    let nf = f32(n);

    // Per sample, each invocation taking every WORKGROUP_SIZE-th; (loss, hits) summed in order.
    var sums = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < n; i += WORKGROUP_SIZE) {
        let z = logits[i];
        let t = targets[i];
        let per = max(z, 0.0) - z * t + log1p_small(exp(-abs(z)));
        loss_per_sample[i] = per;
        dlogits[i] = (sigmoid(z) - t) / nf;
        let hit = (z > 0.0) == (t > 0.5);
        sums += vec2<f32>(per, select(0.0, 1.0, hit));
    }

    // Fixed pairwise tree over the invocations.
    partial[lid] = sums;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        result[0] = partial[0].x / nf;
        result[1] = partial[0].y / nf;
    }
}
