// Philox4x32-10, the counter-based generator of src/rng.rs, bit for bit.
// Prepended to every kernel family that draws random numbers.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// High and low words of the 64-bit product a * b, from 16-bit halves (WGSL has no u64).
// The middle partial products take the carries in turn: lh + (ll >> 16) and
// hl + (mid & 0xffff) stay below 2^32 (a 16 x 16-bit product is at most 2^32 - 2^17 + 1),
// so no sum wraps, and the dropout mask, which is bound by this arithmetic, saves the
// separate sum of the low halves.
fn philox_mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let mid = a_lo * b_hi + ((a_lo * b_lo) >> 16u);
    let mid2 = a_hi * b_lo + (mid & 0xffffu);
    let hi = a_hi * b_hi + (mid >> 16u) + (mid2 >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32(key_in: vec2<u32>, counter: vec4<u32>) -> vec4<u32> {
    var c = counter;
    var k = key_in;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = philox_mulhilo(PHILOX_M0, c.x);
        let p1 = philox_mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// Key = seed, counter = (element, step, stream, 0); see src/rng.rs.
fn random_bits(seed_lo: u32, seed_hi: u32, step: u32, stream: u32, element: u32) -> vec4<u32> {
    return philox4x32(vec2<u32>(seed_lo, seed_hi), vec4<u32>(element, step, stream, 0u));
}

fn normal_from_bits(b0: u32, b1: u32) -> f32 {
    let u1 = f32((b0 >> 8u) + 1u) * (1.0 / 16777216.0);
    let u2 = f32(b1 >> 8u) * (1.0 / 16777216.0);
    return sqrt(-2.0 * log(u1)) * cos(6.2831853071795864 * u2);
}
