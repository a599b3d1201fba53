// Walking and summing one channel of NCHW data viewed as [n, c, p], prepended to the
// per-channel families (batchnorm.wgsl, bias.wgsl), which define REDUCTION_SIZE.
//
// A channel's items j = 0 .. n * period (period = p for f32 items, p / 4 for vec4s) lie at
// sample j / period, position j % period. A `Walk` steps through them by adding instead of
// dividing: CPU drivers have no vector integer division, and one per value cost more than
// the rest of these kernels.
//
// Reductions: the workgroup's invocations form groups of LANE_GROUP; each group sums one
// contiguous segment of the channel, its invocations LANE_GROUP items apart, and the
// invocations' partial sums are then added in a fixed order. A group's loads are at
// neighbouring addresses (which a GPU wants of neighbouring invocations), and a CPU driver,
// which runs one group of lanes through the loop before the next, streams through memory
// instead of striding by REDUCTION_SIZE items. No atomics, so results repeat bit for bit.
// The reducing loops take two items per trip, added one after the other (the order of one
// item per trip): a CPU driver blends every value a loop carries on every trip, so that
// halves the overhead per item. The odd item left goes through a loop that runs at most
// once rather than an `if`: such a driver skips a loop no invocation enters but runs the
// body of an `if` regardless.

const LANE_GROUP: u32 = 8u;

var<workgroup> partial: array<vec2<f32>, REDUCTION_SIZE>;
var<workgroup> lane_sums: array<vec2<f32>, LANE_GROUP>;

// Item j of channel ch as (sample b, position q < period), and the step to j + stride.
struct Walk {
    b: u32,
    q: u32,
    period: u32,
    channels: u32,
    step_b: u32,
    step_q: u32,
}

fn walk_from(j: u32, stride: u32, period: u32, channels: u32) -> Walk {
    let b = j / period;
    return Walk(b, j - b * period, period, channels, stride / period, stride % period);
}

fn walk_next(w: ptr<function, Walk>) {
    let q = (*w).q + (*w).step_q;
    let wrap = q >= (*w).period;
    (*w).q = select(q, q - (*w).period, wrap);
    (*w).b += (*w).step_b + select(0u, 1u, wrap);
}

fn walk_index(w: Walk, ch: u32) -> u32 {
    return (w.b * w.channels + ch) * w.period + w.q;
}

// The items [first, end) of `items` that invocation `lid` of a reduction sums, LANE_GROUP
// apart: its group's contiguous segment.
struct Segment {
    first: u32,
    end: u32,
}

fn segment(lid: u32, items: u32) -> Segment {
    let groups = REDUCTION_SIZE / LANE_GROUP;
    let len = (items + groups - 1u) / groups;
    let start = (lid / LANE_GROUP) * len;
    return Segment(start + lid % LANE_GROUP, min(start + len, items));
}

// Sum of every invocation's `v` in a fixed order; all invocations get the total. Three
// barriers, not one per level of a tree: CPU drivers switch between all the workgroup's
// lane groups at every barrier. Invocation l < LANE_GROUP adds the partials of lane l of
// every group, then every invocation adds those LANE_GROUP sums pairwise (written out for
// LANE_GROUP = 8).
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    if (lid < LANE_GROUP) {
        var s = vec2<f32>(0.0);
        for (var k = lid; k < REDUCTION_SIZE; k += LANE_GROUP) {
            s += partial[k];
        }
        lane_sums[lid] = s;
    }
    workgroupBarrier();
    let total = ((lane_sums[0] + lane_sums[1]) + (lane_sums[2] + lane_sums[3]))
        + ((lane_sums[4] + lane_sums[5]) + (lane_sums[6] + lane_sums[7]));
    workgroupBarrier();  // `partial` and `lane_sums` are reused by the next call
    return total;
}

// The four partial sums of a vec4 accumulator, in a fixed order.
fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// The channel of a reduction: one workgroup per channel, folded into y past 65535.
fn reduction_channel(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

// Channel groups: for c a multiple of 4 and p not, four consecutive channels of one sample
// are 4 * p values from a multiple of 4, so the tensor is [n, c / 4, p] vec4s, and
// component k of vec4 q of a group belongs to the group's channel (4q + k) / p.

// The group's channel of each component of vec4 q: (4q + k) / p, without dividing.
fn group_channels(q: u32) -> vec4<u32> {
    let at = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
    let p = params.p;
    return vec4<u32>(at >= vec4<u32>(p)) + vec4<u32>(at >= vec4<u32>(2u * p))
        + vec4<u32>(at >= vec4<u32>(3u * p));
}

// Component k of the result is v[k] where channel[k] == c, else 0.
fn only(v: vec4<f32>, channel: vec4<u32>, c: u32) -> vec4<f32> {
    return select(vec4<f32>(0.0), v, channel == vec4<u32>(c));
}
