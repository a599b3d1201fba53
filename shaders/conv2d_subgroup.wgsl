// Subgroup variants of the convolution kernels in conv2d.wgsl (whose helpers and Params they
// use; the two files are compiled as one module). Same tiling and the same order of every
// sum, so the results are bit-identical, but a tile has SG_ROWS = 16 rows and the values
// indexed by a row only (weights, or dy in the weight gradient) are loaded once per
// subgroup instead of once per invocation: invocation l of each group of eight loads rows
// l and l + 8, and subgroupBroadcast hands every invocation all sixteen. On a software
// Vulkan driver, where each invocation's load costs about as much as fifty FMAs, this cuts
// the loads of the inner loop from 8 + 4 to 2 + 4 per 64 FMAs (for 32 before); on a GPU it
// replaces eight broadcast loads with one coalesced load and register shuffles. Needs a
// subgroup size of at least 8 (src/gpu/context.rs checks) with every invocation active at
// the broadcasts: the inner loops have uniform bounds and clamp instead of branching.

const SG_ROWS: u32 = 16u;

// tile_of for SG_ROWS-row tiles.
fn tile_of_sg(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> Tile {
    let linear = wid.x + wid.y * nwg.x;
    let t = min(linear, p.tiles - 1u);
    let per_group = p.row_groups * p.col_groups;
    let in_group = t % per_group;
    let rows = (in_group / p.col_groups) * SG_ROWS;
    let cols = (in_group % p.col_groups) * TILE_N + lane + vec4<u32>(0u, WG, 2u * WG, 3u * WG);
    return Tile(rows, cols, t / per_group, linear < p.tiles);
}

@compute @workgroup_size(64)
fn forward_sg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let tile = tile_of_sg(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let pixels = p.batch * plane_out;
    let taps = p.kernel_h * p.kernel_w;

    let pc = min(tile.cols, vec4<u32>(pixels - 1u));
    let n = pc / plane_out;
    let in_plane = pc % plane_out;
    let iy0 = vec4<i32>(in_plane / p.out_w * p.stride_h) - i32(p.pad_top);
    let ix0 = vec4<i32>(in_plane % p.out_w * p.stride_w) - i32(p.pad_left);
    let x_n = n * (p.in_channels * plane_in);

    // The weight rows w[o, ...] this invocation loads for its group of eight.
    let row_len = p.in_channels * taps;
    let last_o = p.out_channels - 1u;
    let w_lo = min(tile.rows + (sl & 7u), last_o) * row_len;
    let w_hi = min(tile.rows + 8u + (sl & 7u), last_o) * row_len;

    var acc: array<vec4<f32>, 16>;
    for (var ky = 0u; ky < p.kernel_h; ky++) {
        let iy = iy0 + i32(ky);
        let ok_y = inside(iy, p.in_h);
        for (var kx = 0u; kx < p.kernel_w; kx++) {
            let ix = ix0 + i32(kx);
            let ok = ok_y & inside(ix, p.in_w);
            var xo = x_n + select(vec4<u32>(), vec4<u32>(iy * i32(p.in_w) + ix), ok);
            var wk = ky * p.kernel_w + kx;
            for (var i = 0u; i < p.in_channels; i++) {
                let xv = load4(xo, ok);
                let lo = w[w_lo + wk];
                let hi = w[w_hi + wk];
                acc[0] += subgroupBroadcast(lo, 0u) * xv;
                acc[1] += subgroupBroadcast(lo, 1u) * xv;
                acc[2] += subgroupBroadcast(lo, 2u) * xv;
                acc[3] += subgroupBroadcast(lo, 3u) * xv;
                acc[4] += subgroupBroadcast(lo, 4u) * xv;
                acc[5] += subgroupBroadcast(lo, 5u) * xv;
                acc[6] += subgroupBroadcast(lo, 6u) * xv;
                acc[7] += subgroupBroadcast(lo, 7u) * xv;
                acc[8] += subgroupBroadcast(hi, 0u) * xv;
                acc[9] += subgroupBroadcast(hi, 1u) * xv;
                acc[10] += subgroupBroadcast(hi, 2u) * xv;
                acc[11] += subgroupBroadcast(hi, 3u) * xv;
                acc[12] += subgroupBroadcast(hi, 4u) * xv;
                acc[13] += subgroupBroadcast(hi, 5u) * xv;
                acc[14] += subgroupBroadcast(hi, 6u) * xv;
                acc[15] += subgroupBroadcast(hi, 7u) * xv;
                xo += vec4<u32>(plane_in);
                wk += taps;
            }
        }
    }

    let valid = (tile.cols < vec4<u32>(pixels)) & vec4<bool>(tile.is_real);
    let at = n * (p.out_channels * plane_out) + in_plane;
    for (var r = 0u; r < SG_ROWS; r++) {
        store_channel(tile.rows + r, p.out_channels, plane_out, at, valid, acc[r]);
    }
}

@compute @workgroup_size(64)
fn backward_input_sg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let tile = tile_of_sg(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let taps = p.kernel_h * p.kernel_w;

    let py = tile.group / p.stride_w;
    let px = tile.group % p.stride_w;
    let qh = (p.in_h + p.stride_h - 1u - py) / p.stride_h;
    let qw_all = (p.in_w + p.stride_w - 1u - px) / p.stride_w;
    let qw = max(qw_all, 1u);
    let class_plane = max(qh * qw, 1u);
    let class_pixels = p.batch * qh * qw_all;

    let qc = min(tile.cols, vec4<u32>(max(class_pixels, 1u) - 1u));
    let n = qc / class_plane;
    let qy = qc % class_plane / qw;
    let qx = qc % class_plane % qw;
    let dy_n = n * (p.out_channels * plane_out);

    // The weight offsets w[0, i, ...] this invocation loads for its group of eight.
    let last_i = p.in_channels - 1u;
    let w_lo = min(tile.rows + (sl & 7u), last_i) * taps;
    let w_hi = min(tile.rows + 8u + (sl & 7u), last_i) * taps;
    let w_o = p.in_channels * taps;

    var acc: array<vec4<f32>, 16>;
    for (var ky = (py + p.pad_top) % p.stride_h; ky < p.kernel_h; ky += p.stride_h) {
        let oy = vec4<i32>(qy) + (i32(py + p.pad_top) - i32(ky)) / i32(p.stride_h);
        let ok_y = inside(oy, p.out_h);
        for (var kx = (px + p.pad_left) % p.stride_w; kx < p.kernel_w; kx += p.stride_w) {
            let ox = vec4<i32>(qx) + (i32(px + p.pad_left) - i32(kx)) / i32(p.stride_w);
            let ok = ok_y & inside(ox, p.out_w);
            var dyo = dy_n + select(vec4<u32>(), vec4<u32>(oy * i32(p.out_w) + ox), ok);
            var wk = ky * p.kernel_w + kx;
            for (var o = 0u; o < p.out_channels; o++) {
                let dv = load4_dy(dyo, ok);
                let lo = w[w_lo + wk];
                let hi = w[w_hi + wk];
                acc[0] += subgroupBroadcast(lo, 0u) * dv;
                acc[1] += subgroupBroadcast(lo, 1u) * dv;
                acc[2] += subgroupBroadcast(lo, 2u) * dv;
                acc[3] += subgroupBroadcast(lo, 3u) * dv;
                acc[4] += subgroupBroadcast(lo, 4u) * dv;
                acc[5] += subgroupBroadcast(lo, 5u) * dv;
                acc[6] += subgroupBroadcast(lo, 6u) * dv;
                acc[7] += subgroupBroadcast(lo, 7u) * dv;
                acc[8] += subgroupBroadcast(hi, 0u) * dv;
                acc[9] += subgroupBroadcast(hi, 1u) * dv;
                acc[10] += subgroupBroadcast(hi, 2u) * dv;
                acc[11] += subgroupBroadcast(hi, 3u) * dv;
                acc[12] += subgroupBroadcast(hi, 4u) * dv;
                acc[13] += subgroupBroadcast(hi, 5u) * dv;
                acc[14] += subgroupBroadcast(hi, 6u) * dv;
                acc[15] += subgroupBroadcast(hi, 7u) * dv;
                dyo += vec4<u32>(plane_out);
                wk += w_o;
            }
        }
    }

    let valid = (tile.cols < vec4<u32>(class_pixels)) & vec4<bool>(tile.is_real);
    let iy = py + qy * p.stride_h;
    let ix = px + qx * p.stride_w;
    let at = n * (p.in_channels * plane_in) + iy * p.in_w + ix;
    for (var r = 0u; r < SG_ROWS; r++) {
        store_channel(tile.rows + r, p.in_channels, plane_in, at, valid, acc[r]);
    }
}

@compute @workgroup_size(64)
fn backward_weight_sg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sl: u32,
) {
    let tile = tile_of_sg(wid, nwg, lane);
    let plane_in = p.in_h * p.in_w;
    let plane_out = p.out_h * p.out_w;
    let taps = p.kernel_h * p.kernel_w;
    let row_len = p.in_channels * taps;

    let tc = min(tile.cols, vec4<u32>(row_len - 1u));
    let x_i = tc / taps * plane_in;
    let sy = vec4<i32>(tc % taps / p.kernel_w) - i32(p.pad_top);
    let sx = vec4<i32>(tc % taps % p.kernel_w) - i32(p.pad_left);

    // The dy rows dy[., o, ...] this invocation loads for its group of eight.
    let last_o = p.out_channels - 1u;
    let d_lo = min(tile.rows + (sl & 7u), last_o) * plane_out;
    let d_hi = min(tile.rows + 8u + (sl & 7u), last_o) * plane_out;

    let first = tile.group * p.chunk_len;
    let end = min(first + p.chunk_len, p.batch * plane_out);
    var at = pixel_at(first);
    var acc: array<vec4<f32>, 16>;
    for (var q = first; q < end; q++) {
        let iy = i32(at.y * p.stride_h) + sy;
        let ix = i32(at.z * p.stride_w) + sx;
        let ok = inside(iy, p.in_h) & inside(ix, p.in_w);
        let xo = at.x * (p.in_channels * plane_in) + x_i;
        let xv = load4(xo + select(vec4<u32>(), vec4<u32>(iy * i32(p.in_w) + ix), ok), ok);
        let dyo = at.x * (p.out_channels * plane_out) + at.y * p.out_w + at.z;
        let lo = dy[dyo + d_lo];
        let hi = dy[dyo + d_hi];
        acc[0] += subgroupBroadcast(lo, 0u) * xv;
        acc[1] += subgroupBroadcast(lo, 1u) * xv;
        acc[2] += subgroupBroadcast(lo, 2u) * xv;
        acc[3] += subgroupBroadcast(lo, 3u) * xv;
        acc[4] += subgroupBroadcast(lo, 4u) * xv;
        acc[5] += subgroupBroadcast(lo, 5u) * xv;
        acc[6] += subgroupBroadcast(lo, 6u) * xv;
        acc[7] += subgroupBroadcast(lo, 7u) * xv;
        acc[8] += subgroupBroadcast(hi, 0u) * xv;
        acc[9] += subgroupBroadcast(hi, 1u) * xv;
        acc[10] += subgroupBroadcast(hi, 2u) * xv;
        acc[11] += subgroupBroadcast(hi, 3u) * xv;
        acc[12] += subgroupBroadcast(hi, 4u) * xv;
        acc[13] += subgroupBroadcast(hi, 5u) * xv;
        acc[14] += subgroupBroadcast(hi, 6u) * xv;
        acc[15] += subgroupBroadcast(hi, 7u) * xv;
        at = next_pixel(at);
    }

    let valid = (tile.cols < vec4<u32>(row_len)) & vec4<bool>(tile.is_real);
    let base = tile.group * p.weight_len;
    for (var r = 0u; r < SG_ROWS; r++) {
        let o = tile.rows + r;
        store_row(o, p.out_channels, base + o * row_len, tile.cols, valid, acc[r]);
    }
}
