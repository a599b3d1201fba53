// Integer division for index arithmetic, prepended to the kernels that need it in their hot
// paths (src/gpu/shaders.rs). CPU drivers have no vector integer division and run one
// scalar division per invocation; dividing in f32 and correcting the rounding once is exact
// for x and d up to 2^24 (the launchers check, src/gpu/ops/pack.rs `check_exact_f32`).

fn div(x: u32, d: u32) -> u32 {
    var q = u32(f32(x) / f32(d));
    q = select(q, q - 1u, q * d > x);
    return select(q, q + 1u, (q + 1u) * d <= x);
}

fn div4(x: vec4<u32>, d: u32) -> vec4<u32> {
    var q = vec4<u32>(vec4<f32>(x) / f32(d));
    q = select(q, q - 1u, q * d > x);
    return select(q, q + 1u, (q + 1u) * d <= x);
}
