// The second half of an input gradient computed as one product per tap
// (src/gpu/ops/conv2d_windows.rs): Z = W^T · dy holds one row per tap (i, ky, kx) and one
// column per small-side pixel (n, oy, ox), and this kernel gathers
//   dx[n, i, iy, ix] = sum over the taps that reach (iy, ix), ky then kx ascending, of
//                      Z[(i, ky, kx), (n, oy, ox)]   (then + bias[i]),
// where oy = (iy + PT - ky) / SH exactly: ky runs over (iy + PT) mod SH, + SH, ... (and
// likewise along x), the taps of the pixel's phase class, so no tap is tested in vain.
//   col2im:  grid of chunks of WORKGROUP_SIZE * ELEMS_PER_INVOCATION elements of one plane
//            (n, i), chunk innermost, folded into y past the x limit.
//   col2im4: for planes of a multiple of 4 pixels, four consecutive pixels of a plane per
//            invocation, stored as one vec4; the grid covers dx's vec4s, folded likewise.
//            Its tap loops run the same count in every invocation (the most taps any pixel
//            has along each axis, `taps_y` x `taps_x`) and mask the taps a pixel lacks with
//            a select, so CPU drivers, which run both sides of a branch that differs between
//            invocations, run no masked loop trips; the taps are added in the same order, so
//            it gives col2im's bits.
//   col2im_block2_pad0, _pad1: for 3 x 3 kernels at stride 2 with the same padding, 0 or 1,
//            on the top and left, into planes of even height and width (the model's 14 x 14
//            and 28 x 28): a 2 x 2 block of pixels per invocation, whose four phase classes
//            hold the nine taps between them, each loaded once and none masked but at the
//            plane's edges (col2im4 makes sixteen loads per four pixels, seven of them masked,
//            for these kernels), and stored as two vec2s. Same taps, same order. On lavapipe
//            it ran 2 to 2.4 times faster than col2im4.
// `div` and `div4` are shaders/exact_div.wgsl: the launcher checks that the indices they
// divide stay exact in f32.

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
    chunks: u32,    // workgroups per plane (col2im)
    planes: u32,    // batch * channels
    taps_y: u32,    // ceil(kernel_h / stride_h): most taps of a pixel along y (col2im4)
    taps_x: u32,    // ceil(kernel_w / stride_w)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;              // [(i, ky, kx), (n, oy, ox)]
@group(0) @binding(2) var<storage, read> bias: array<f32>;           // [I], or z when unused
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;       // [n, i, iy, ix]
@group(0) @binding(4) var<storage, read_write> dx4: array<vec4<f32>>; // dx, for col2im4
@group(0) @binding(5) var<storage, read_write> dx2: array<vec2<f32>>; // dx, for col2im_block

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

@compute @workgroup_size(WORKGROUP_SIZE)
fn col2im4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane_len = p.in_h * p.in_w;
    let quads = plane_len / 4u;
    let v = (wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid;
    let plane = div(v, quads);
    if plane >= p.planes {
        return;
    }
    let n = div(plane, p.channels);
    let i = plane - n * p.channels;

    // The four pixels (iy, ix) and where their taps start: (iy + PT) = qy * SH + ky0.
    let j = vec4<u32>(4u * (v - plane * quads)) + vec4<u32>(0u, 1u, 2u, 3u);
    let iy = div4(j, p.in_w);
    let ty = iy + p.pad_top;
    let qy = div4(ty, p.stride_h);
    let ky0 = ty - qy * p.stride_h;
    let tx = j - iy * p.in_w + p.pad_left;
    let qx = div4(tx, p.stride_w);
    let kx0 = tx - qx * p.stride_w;

    let tap_rows = i * p.kernel_h;
    let sample_rows = n * p.out_h;
    var acc = vec4<f32>(0.0);
    for (var a = 0u; a < p.taps_y; a++) {
        // Tap ky0 + a * SH reaches oy = qy - a; wrapped (negative) values fail the bound.
        let ky = ky0 + a * p.stride_h;
        let oy = qy - a;
        let row_ok = ky < vec4<u32>(p.kernel_h) & oy < vec4<u32>(p.out_h);
        let z_row = (tap_rows + ky) * p.kernel_w;
        let pixel_row = (sample_rows + oy) * p.out_w;
        for (var b = 0u; b < p.taps_x; b++) {
            let kx = kx0 + b * p.stride_w;
            let ox = qx - b;
            let ok = row_ok & kx < vec4<u32>(p.kernel_w) & ox < vec4<u32>(p.out_w);
            let at = select(vec4<u32>(0u), (z_row + kx) * p.pixels + pixel_row + ox, ok);
            let taps = vec4<f32>(z[at.x], z[at.y], z[at.z], z[at.w]);
            acc += select(vec4<f32>(0.0), taps, ok);
        }
    }
    if p.has_bias == 1u {
        acc += bias[i];
    }
    dx4[v] = acc;
}

// Pixel (2r + dy, 2c + dx) of a block: its taps (ky, kx) ascending, ky = ky0, ky0 + 2 and
// likewise kx, with (2r + dy + pad) = 2 qy + ky0; the tap ky0 + 2a reaches oy = qy - a,
// masked where that leaves the small side (negative values wrap and fail the bound). With
// dy, dx and pad literals the loops have fixed counts of one or two trips.
fn block_pixel(z_row: u32, sample_rows: u32, r: u32, c: u32, dy: u32, dx: u32, pad: u32) -> f32 {
    let ky0 = (dy + pad) % 2u;
    let qy = r + (dy + pad) / 2u;
    let kx0 = (dx + pad) % 2u;
    let qx = c + (dx + pad) / 2u;
    var acc = 0.0;
    for (var ky = ky0; ky < 3u; ky += 2u) {
        let oy = qy - (ky - ky0) / 2u;
        for (var kx = kx0; kx < 3u; kx += 2u) {
            let ox = qx - (kx - kx0) / 2u;
            let ok = oy < p.out_h && ox < p.out_w;
            let at = (z_row + ky * 3u + kx) * p.pixels + (sample_rows + oy) * p.out_w + ox;
            acc += select(0.0, z[select(0u, at, ok)], ok);
        }
    }
    return acc;
}

fn col2im_block(v: u32, pad: u32) {
    let half_w = p.in_w / 2u;
    let blocks = (p.in_h / 2u) * half_w;
    let plane = div(v, blocks);
    if plane >= p.planes {
        return;
    }
    let n = div(plane, p.channels);
    let i = plane - n * p.channels;
    let rest = v - plane * blocks;
    let r = div(rest, half_w);
    let c = rest - r * half_w;
    let z_row = i * 9u;
    let sample_rows = n * p.out_h;
    var top = vec2<f32>(
        block_pixel(z_row, sample_rows, r, c, 0u, 0u, pad),
        block_pixel(z_row, sample_rows, r, c, 0u, 1u, pad),
    );
    var bottom = vec2<f32>(
        block_pixel(z_row, sample_rows, r, c, 1u, 0u, pad),
        block_pixel(z_row, sample_rows, r, c, 1u, 1u, pad),
    );
    if p.has_bias == 1u {
        top += bias[i];
        bottom += bias[i];
    }
    let at = (plane * p.in_h + 2u * r) * half_w + c;
    dx2[at] = top;
    dx2[at + half_w] = bottom;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn col2im_block2_pad0(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    col2im_block((wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid, 0u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn col2im_block2_pad1(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    col2im_block((wg.x + wg.y * groups.x) * WORKGROUP_SIZE + lid, 1u);
}
