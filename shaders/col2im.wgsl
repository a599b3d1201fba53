// The second half of an input gradient computed as one product per tap
// (src/gpu/ops/conv2d_windows.rs): Z = W^T · dy holds one row per tap (i, ky, kx) and one
// column per small-side pixel (n, oy, ox), and this kernel gathers
//   dx[n, i, iy, ix] = sum over the taps that reach (iy, ix), ky then kx ascending, of
//                      Z[(i, ky, kx), (n, oy, ox)]   (then + bias[i]),
// where oy = (iy + PT - ky) / SH exactly: ky runs over (iy + PT) mod SH, + SH, ... (and
// likewise along x), the taps of the pixel's phase class, so no tap is tested in vain.
// Grid: chunks of WORKGROUP_SIZE * ELEMS_PER_INVOCATION elements of one plane (n, i), chunk
// innermost, folded into y past the x limit. `div` is shaders/exact_div.wgsl: the launcher
// checks that a plane's indices stay exact in f32.

const WORKGROUP_SIZE: u32 = 256u;
const ELEMS_PER_INVOCATION: u32 = 2u;

// Mirrored by `Params` in src/gpu/ops/col2im.rs.
struct Params {
    channels: u32,  // I, the large side's channels
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    pixels: u32,    // columns of Z: batch * out_h * out_w
    has_bias: u32,
    chunks: u32,    // workgroups per plane
    planes: u32,    // batch * channels
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;              // [(i, ky, kx), (n, oy, ox)]
@group(0) @binding(2) var<storage, read> bias: array<f32>;           // [I], or z when unused
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;       // [n, i, iy, ix]

@compute @workgroup_size(WORKGROUP_SIZE)
fn col2im(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let linear = wg.x + wg.y * groups.x;
    let plane = linear / p.chunks;
    if plane >= p.planes {
        return;
    }
    let chunk = linear - plane * p.chunks;
    let n = plane / p.channels;
    let i = plane - n * p.channels;
    let plane_len = p.in_h * p.in_w;
    let taps = p.kernel_h * p.kernel_w;
    var b = 0.0;
    if p.has_bias == 1u {
        b = bias[i];
    }
    let first = chunk * (WORKGROUP_SIZE * ELEMS_PER_INVOCATION) + lid;
    for (var e = 0u; e < ELEMS_PER_INVOCATION; e++) {
        let j = first + e * WORKGROUP_SIZE;
        if j >= plane_len {
            break;
        }
        let iy = div(j, p.in_w);
        let ix = j - iy * p.in_w;
        // (iy + PT) = qy * SH + ky0: tap ky0 + t * SH reaches oy = qy - t.
        let ty = iy + p.pad_top;
        let qy = div(ty, p.stride_h);
        let ky0 = ty - qy * p.stride_h;
        let tx = ix + p.pad_left;
        let qx = div(tx, p.stride_w);
        let kx0 = tx - qx * p.stride_w;
        var acc = 0.0;
        var oy = i32(qy);
        for (var ky = ky0; ky < p.kernel_h; ky += p.stride_h) {
            if oy >= 0 && oy < i32(p.out_h) {
                let row = (n * p.out_h + u32(oy)) * p.out_w;
                var ox = i32(qx);
                for (var kx = kx0; kx < p.kernel_w; kx += p.stride_w) {
                    if ox >= 0 && ox < i32(p.out_w) {
                        let tap = i * taps + ky * p.kernel_w + kx;
                        acc += z[tap * p.pixels + row + u32(ox)];
                    }
                    ox -= 1;
                }
            }
            oy -= 1;
        }
        dx[plane * plane_len + j] = acc + b;
    }
}
