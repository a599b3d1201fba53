// Per-channel bias over x viewed as [n, c, p] (p = 1 for dense layers, h * w for convs).
//   add:              x[n, c, p] += b[c]                     (element-wise, in place)
//   backward_serial:  db[c] = sum_{n, p} dy[n, c, p]         one invocation per channel
//   backward_tree:    the same sum, one workgroup per channel (channel_walk.wgsl, prepended)
//   backward_tree4:   the same, four values per load, for p a multiple of 4
//   backward_tree_grouped: the same, one workgroup per group of four channels, four values
//                     of the group per load, for c a multiple of 4 and p not (the channel
//                     groups of channel_walk.wgsl)
// Every reduction adds in a fixed order (no atomics), so results repeat bit for bit. The
// launcher takes the serial form when a channel has fewer than WORKGROUP_SIZE values (a
// dense layer's bias: many channels, a batch of values each; neighbouring invocations then
// read neighbouring channels), a tree form otherwise (conv layers).

const WORKGROUP_SIZE: u32 = 256u;
// Invocations of a reduction workgroup (channel_walk.wgsl); REDUCTION_WORKGROUP_SIZE in
// src/gpu/ops/mod.rs says why 64.
const REDUCTION_SIZE: u32 = 64u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrored by `Params` in src/gpu/ops/bias.rs.
struct Params {
    n: u32,  // batch
    c: u32,  // channels
    p: u32,  // values per channel and sample
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;        // [c]
@group(0) @binding(2) var<storage, read_write> x: array<f32>;     // [n, c, p]
@group(0) @binding(3) var<storage, read> dy: array<f32>;          // [n, c, p]
@group(0) @binding(4) var<storage, read_write> db: array<f32>;    // [c]
@group(0) @binding(5) var<storage, read> dy4: array<vec4<f32>>;   // dy, four values at a time

fn linear_group(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let total = params.n * params.c * params.p;
    let first = linear_group(wg, groups) * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var k = 0u; k < ELEMS_PER_INVOCATION; k++) {
        let i = first + k * WORKGROUP_SIZE;
        if (i < total) {
            x[i] = x[i] + bias[(i / params.p) % params.c];
        }
    }
}

// Channel `ch` of sample `b` starts at (b * c + ch) * p.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_serial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = linear_group(wg, groups) * WORKGROUP_SIZE + lid;
    if (ch >= params.c) {
        return;
    }
    var sum = 0.0;
    for (var b = 0u; b < params.n; b++) {
        let start = (b * params.c + ch) * params.p;
        for (var q = 0u; q < params.p; q++) {
            sum += dy[start + q];
        }
    }
    db[ch] = sum;
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_tree(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The channel is the same for the whole workgroup, so returning keeps barriers uniform.
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let seg = segment(lid, params.n * params.p);
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c);
    var sum = 0.0;
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        sum = (sum + dy[i0]) + dy[i1];
    }
    for (; j < seg.end; j += LANE_GROUP) {
        sum += dy[walk_index(w, ch)];
        walk_next(&w);
    }
    let total = workgroup_sum(lid, vec2<f32>(sum, 0.0));
    if (lid == 0u) {
        db[ch] = total.x;
    }
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_tree4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = reduction_channel(wg, groups);
    if (ch >= params.c) {
        return;
    }
    let seg = segment(lid, params.n * (params.p / 4u));
    var w = walk_from(seg.first, LANE_GROUP, params.p / 4u, params.c);
    var sum = vec4<f32>(0.0);
    var j = seg.first;
    for (; j + LANE_GROUP < seg.end; j += 2u * LANE_GROUP) {
        let i0 = walk_index(w, ch);
        walk_next(&w);
        let i1 = walk_index(w, ch);
        walk_next(&w);
        sum = (sum + dy4[i0]) + dy4[i1];
    }
    for (; j < seg.end; j += LANE_GROUP) {
        sum += dy4[walk_index(w, ch)];
        walk_next(&w);
    }
    let total = workgroup_sum(lid, vec2<f32>(hsum(sum), 0.0));
    if (lid == 0u) {
        db[ch] = total.x;
    }
}

@compute @workgroup_size(REDUCTION_SIZE)
fn backward_tree_grouped(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = reduction_channel(wg, groups);
    if (g >= params.c / 4u) {
        return;
    }
    let seg = segment(lid, params.n * params.p);
    var w = walk_from(seg.first, LANE_GROUP, params.p, params.c / 4u);
    // One vec4 of partial sums per channel of the group.
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var j = seg.first; j < seg.end; j += LANE_GROUP) {
        let channel = group_channels(w.q);
        let v = dy4[walk_index(w, g)];
        s0 += only(v, channel, 0u);
        s1 += only(v, channel, 1u);
        s2 += only(v, channel, 2u);
        s3 += only(v, channel, 3u);
        walk_next(&w);
    }
    let low = workgroup_sum(lid, vec2<f32>(hsum(s0), hsum(s1)));
    let high = workgroup_sum(lid, vec2<f32>(hsum(s2), hsum(s3)));
    if (lid == 0u) {
        db[4u * g] = low.x;
        db[4u * g + 1u] = low.y;
        db[4u * g + 2u] = high.x;
        db[4u * g + 3u] = high.y;
    }
}
