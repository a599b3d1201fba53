//! 2-D convolution over NCHW tensors with OIHW weights (`shaders/conv2d.wgsl`); CPU twin in
//! `crate::cpu::conv2d`. Each pass is an implicit GEMM with register tiles; see the WGSL
//! header for the tiling.

use super::conv2d_one_input as one_input;
use super::conv2d_single::{self as single, Pass};
use super::conv2d_windows as windows;
use super::gemm::expect_separate;
use super::{expect_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{Bind, GpuContext, GpuTensor, Plan, Shader};
use crate::shapes::Conv2dGeometry;

/// Invocations per workgroup of the conv2d kernels (`WG` in the WGSL).
pub const CONV_WORKGROUP_SIZE: usize = 64;

/// Rows (channels or taps) of one workgroup tile (`TILE_M` in the WGSL).
pub const CONV_TILE_M: usize = 8;

/// Rows of one workgroup tile of the subgroup variants (`SG_ROWS` in
/// shaders/conv2d_subgroup.wgsl), picked when the device has subgroups.
pub const CONV_SG_TILE_M: usize = 16;

/// Columns (pixels or taps) of one workgroup tile (`TILE_N` in the WGSL): 4 per invocation.
pub const CONV_TILE_N: usize = 256;

/// The weight gradient cuts its sum over `batch * out_h * out_w` pixels into chunks until
/// about this many workgroups run at once: enough to fill a large GPU when the weight itself
/// is small (64 x 1 x 3 x 3), and the partial sums are added by a second, ordered pass.
const TARGET_WORKGROUPS: usize = 1024;

/// Fewest pixels per chunk: shorter chunks would spend more on the partial sums' memory
/// traffic than they save.
const MIN_CHUNK_PIXELS: usize = 64;

/// Most partial-sum elements (64 MiB) the weight gradient allocates for its chunks.
const MAX_PARTIAL_ELEMENTS: usize = 16 << 20;

/// Mirrors `Params` in shaders/conv2d.wgsl: the geometry, then the launch shape.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_top: u32,
    pad_left: u32,
    /// 1: add `bias[row channel]` to every output.
    pub(super) has_bias: u32,
    /// Workgroups along the columns, along the rows, and in all.
    col_groups: u32,
    row_groups: u32,
    tiles: u32,
    /// Weight gradient: pixels summed per chunk, and the chunk count (the samples, for sums
    /// per sample). The single-channel passes take `chunk_len` as output rows per block, the
    /// one-input-channel forward pass `chunks` as its runs of output channels.
    pub(super) chunk_len: u32,
    pub(super) chunks: u32,
    /// Elements of the weight.
    weight_len: u32,
}

/// The kernel for `entry` on this device, and the rows of its tile: the subgroup variant
/// where the device has subgroups (same sums in the same order, fewer loads).
fn variant(ctx: &GpuContext, entry: &str) -> (Shader, String, usize) {
    if ctx.subgroup_kernels() {
        (
            Shader::Conv2dSubgroup,
            format!("{entry}_sg"),
            CONV_SG_TILE_M,
        )
    } else {
        (Shader::Conv2d, entry.to_string(), CONV_TILE_M)
    }
}

/// Size of the `Params` mirror in bytes, for the layout test.
pub const CONV2D_PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// The geometry as kernel parameters, after checking that the kernels can index it: strides
/// and kernel sizes of at least 1, and tensors whose element offsets fit the signed 32-bit
/// arithmetic the kernels use for padded positions.
pub(super) fn geometry_params(op: &str, g: &Conv2dGeometry) -> Result<Params> {
    if g.stride_h == 0 || g.stride_w == 0 || g.kernel_h == 0 || g.kernel_w == 0 {
        return Err(Error::ShapeMismatch {
            op: op.to_string(),
            expected: "kernel and stride of at least 1".into(),
            got: format!(
                "kernel {}x{}, stride {}x{}",
                g.kernel_h, g.kernel_w, g.stride_h, g.stride_w
            ),
        });
    }
    let largest = g.input_len().max(g.output_len()).max(g.weight_len());
    if largest > i32::MAX as usize {
        return Err(Error::LimitExceeded {
            what: format!("{op} tensor elements"),
            needed: largest as u64,
            max: i32::MAX as u64,
            hint: "the conv kernels index with signed 32-bit integers".into(),
        });
    }
    let u = |v: usize| to_u32(op, v);
    Ok(Params {
        batch: u(g.batch)?,
        in_channels: u(g.in_channels)?,
        in_h: u(g.in_h)?,
        in_w: u(g.in_w)?,
        out_channels: u(g.out_channels)?,
        out_h: u(g.out_h)?,
        out_w: u(g.out_w)?,
        kernel_h: u(g.kernel_h)?,
        kernel_w: u(g.kernel_w)?,
        stride_h: u(g.stride_h)?,
        stride_w: u(g.stride_w)?,
        pad_top: u(g.pad_top)?,
        pad_left: u(g.pad_left)?,
        weight_len: u(g.weight_len())?,
        ..Params::default()
    })
}

/// Lengths of the large side, the small side and the weight.
fn expect_lens(
    op: &str,
    g: &Conv2dGeometry,
    large: (&str, &GpuTensor),
    small: (&str, &GpuTensor),
    w: &GpuTensor,
) -> Result<()> {
    expect_len(op, large.0, large.1, g.input_len())?;
    expect_len(op, small.0, small.1, g.output_len())?;
    expect_len(op, "w", w, g.weight_len())
}

/// Forward: `x [batch, in_channels, in_h, in_w]`, `w [out_channels, in_channels, kh, kw]`,
/// optional `b [out_channels]` -> `y [batch, out_channels, out_h, out_w]` (overwritten).
/// One dispatch; the bias is added in the store.
pub fn conv2d_forward(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    y: &GpuTensor,
) -> Result<()> {
    forward_impl(ctx, plan, "conv2d_forward", g, ("x", x), w, b, ("y", y))
}

/// [`conv2d_forward`] with the tensor names of the caller (for error messages).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_impl(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    x: (&str, &GpuTensor),
    w: &GpuTensor,
    b: Option<&GpuTensor>,
    y: (&str, &GpuTensor),
) -> Result<()> {
    expect_lens(op, g, x, y, w)?;
    if let Some(b) = b {
        expect_len(op, "b", b, g.out_channels)?;
    }
    expect_separate(op, y.1, &[x.1, w])?;
    let mut params = geometry_params(op, g)?;
    let pixels = g.batch * g.out_h * g.out_w;
    if pixels == 0 || g.out_channels == 0 {
        return Ok(());
    }

    if one_input::forward(ctx, plan, op, g, params, x.1, w, b, y.1)? {
        return Ok(());
    }
    if windows::forward(ctx, plan, g, x.1, w, b, y.1)? {
        return Ok(());
    }
    if single::dispatch(ctx, plan, op, Pass::Forward, g, params, x.1, w, b, y.1)? {
        return Ok(());
    }

    // Rows: output channels; columns: output pixels.
    let (shader, entry, tile_m) = variant(ctx, "forward");
    let row_groups = g.out_channels.div_ceil(tile_m);
    let col_groups = pixels.div_ceil(CONV_TILE_N);
    let tiles = row_groups * col_groups;
    params.has_bias = u32::from(b.is_some());
    params.row_groups = to_u32(op, row_groups)?;
    params.col_groups = to_u32(op, col_groups)?;
    params.tiles = to_u32(op, tiles)?;

    let grid = ctx.grid(op, tiles as u64)?;
    let bindings = [
        (1, x.1.into()),
        (2, w.into()),
        (3, b.unwrap_or(w).into()),
        (5, y.1.into()),
    ];
    plan.push(ctx.dispatch(shader, &entry, &params, &bindings, grid)?);
    Ok(())
}

/// Input gradient: `dy [batch, out_channels, out_h, out_w]`, `w` OIHW ->
/// `dx [batch, in_channels, in_h, in_w]` (overwritten; input pixels no window reads get 0).
/// One dispatch that gathers, for each input pixel, over exactly the taps that reach it.
pub fn conv2d_backward_input(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
) -> Result<()> {
    backward_input_impl(
        ctx,
        plan,
        "conv2d_backward_input",
        g,
        ("dy", dy),
        w,
        None,
        ("dx", dx),
    )
}

/// [`conv2d_backward_input`] plus an optional bias per input channel (`bias`:
/// `g.in_channels`), which makes it a transposed convolution's forward pass.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_input_impl(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    dy: (&str, &GpuTensor),
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    dx: (&str, &GpuTensor),
) -> Result<()> {
    expect_lens(op, g, dx, dy, w)?;
    if let Some(b) = bias {
        expect_len(op, "b", b, g.in_channels)?;
    }
    expect_separate(op, dx.1, &[dy.1, w])?;
    let mut params = geometry_params(op, g)?;
    if dx.1.len == 0 {
        return Ok(());
    }

    // The single-channel kernel first: it sums in the direct kernels' order.
    let pass = Pass::BackwardInput;
    if single::dispatch(ctx, plan, op, pass, g, params, dy.1, w, bias, dx.1)? {
        return Ok(());
    }
    if windows::backward_input(ctx, plan, g, dy.1, w, bias, dx.1)? {
        return Ok(());
    }

    // One group per phase class (iy mod stride_h, ix mod stride_w); rows: input channels;
    // columns: the pixels of the largest class, (0, 0).
    let classes = g.stride_h * g.stride_w;
    let class_pixels = g.batch * g.in_h.div_ceil(g.stride_h) * g.in_w.div_ceil(g.stride_w);
    let (shader, entry, tile_m) = variant(ctx, "backward_input");
    let row_groups = g.in_channels.div_ceil(tile_m);
    let col_groups = class_pixels.div_ceil(CONV_TILE_N);
    let tiles = classes * row_groups * col_groups;
    params.has_bias = u32::from(bias.is_some());
    params.row_groups = to_u32(op, row_groups)?;
    params.col_groups = to_u32(op, col_groups)?;
    params.tiles = to_u32(op, tiles)?;

    let grid = ctx.grid(op, tiles as u64)?;
    let bindings = [
        (2, w.into()),
        (3, bias.unwrap_or(w).into()),
        (4, dy.1.into()),
        (5, dx.1.into()),
    ];
    plan.push(ctx.dispatch(shader, &entry, &params, &bindings, grid)?);
    Ok(())
}

/// Weight gradient: `x [batch, in_channels, in_h, in_w]`, `dy [batch, out_channels, out_h,
/// out_w]` -> `dw [out_channels, in_channels, kh, kw]` (overwritten), each element a sum over
/// `batch * out_h * out_w` pixels.
///
/// Small weights with long sums get the sum cut into chunks: a first dispatch writes each
/// chunk's partial sums into a scratch buffer allocated here (once, with the plan), a second
/// adds them in chunk order. The result is deterministic: the chunking depends only on `g`.
pub fn conv2d_backward_weight(
    ctx: &GpuContext,
    plan: &mut Plan,
    g: &Conv2dGeometry,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
) -> Result<()> {
    backward_weight_impl(
        ctx,
        plan,
        "conv2d_backward_weight",
        g,
        ("x", x),
        ("dy", dy),
        dw,
    )
}

/// How a weight-gradient launch is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WeightLaunch {
    /// `backward_weight_narrow`: rows are taps, columns output channels.
    narrow: bool,
    row_groups: usize,
    col_groups: usize,
    chunks: usize,
    chunk_len: usize,
}

/// Pick the tile orientation and the chunking of a weight gradient with `max_partial`
/// elements of scratch at most.
fn weight_launch(g: &Conv2dGeometry, max_partial: usize) -> WeightLaunch {
    let taps = g.in_channels * g.kernel_h * g.kernel_w;
    let o = g.out_channels;
    let fill = |rows: usize, row_tile: usize, cols: usize, col_tile: usize| {
        (rows * cols) as f64
            / (rows.div_ceil(row_tile) * row_tile * cols.div_ceil(col_tile) * col_tile) as f64
    };

    // Useful multiply-adds per load: the main tile does 32 per 12 loads, the narrow one 8 per
    // 9; weigh each by how much of its tile the shape fills.
    let main = fill(o, CONV_TILE_M, taps, CONV_TILE_N) * 32.0 / 12.0;
    let narrow_score = fill(taps, CONV_TILE_M, o, CONV_WORKGROUP_SIZE) * 8.0 / 9.0;
    let narrow = narrow_score > main;
    let (row_groups, col_groups) = if narrow {
        (taps.div_ceil(CONV_TILE_M), o.div_ceil(CONV_WORKGROUP_SIZE))
    } else {
        (o.div_ceil(CONV_TILE_M), taps.div_ceil(CONV_TILE_N))
    };

    let pixels = g.batch * g.out_h * g.out_w;
    let wanted = TARGET_WORKGROUPS.div_ceil(row_groups * col_groups);
    let by_length = pixels.div_ceil(MIN_CHUNK_PIXELS);
    let by_memory = max_partial / g.weight_len().max(1);
    let chunks = wanted.min(by_length).min(by_memory).max(1);
    let chunk_len = pixels.div_ceil(chunks).max(1);
    let chunks = pixels.div_ceil(chunk_len).max(1);
    WeightLaunch {
        narrow,
        row_groups,
        col_groups,
        chunks,
        chunk_len,
    }
}

/// [`conv2d_backward_weight`] with the tensor names of the caller (for error messages).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_weight_impl(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    x: (&str, &GpuTensor),
    dy: (&str, &GpuTensor),
    dw: &GpuTensor,
) -> Result<()> {
    expect_lens(op, g, x, dy, dw)?;
    expect_separate(op, dw, &[x.1, dy.1])?;
    let mut params = geometry_params(op, g)?;
    if dw.len == 0 {
        return Ok(());
    }

    // The single-channel kernel first: where both apply (stride 1, rows of whole vec4s) it
    // measured faster on lavapipe.
    if single::backward_weight(ctx, plan, op, g, params, x.1, dy.1, dw)? {
        return Ok(());
    }
    if one_input::backward_weight(ctx, plan, op, g, params, x.1, dy.1, dw)? {
        return Ok(());
    }
    if windows::backward_weight(ctx, plan, g, x.1, dy.1, dw)? {
        return Ok(());
    }

    let max_binding = (ctx.limits.max_storage_buffer_binding_size / 4) as usize;
    let launch = weight_launch(g, MAX_PARTIAL_ELEMENTS.min(max_binding));
    // The chunking never depends on the variant, so both give the same sums in the same order.
    let (shader, entry, row_groups) = if launch.narrow {
        (
            Shader::Conv2d,
            "backward_weight_narrow".to_string(),
            launch.row_groups,
        )
    } else {
        let (shader, entry, tile_m) = variant(ctx, "backward_weight");
        (shader, entry, g.out_channels.div_ceil(tile_m))
    };
    let tiles = launch.chunks * row_groups * launch.col_groups;
    params.row_groups = to_u32(op, row_groups)?;
    params.col_groups = to_u32(op, launch.col_groups)?;
    params.tiles = to_u32(op, tiles)?;
    params.chunks = to_u32(op, launch.chunks)?;
    params.chunk_len = to_u32(op, launch.chunk_len)?;
    let grid = ctx.grid(op, tiles as u64)?;

    if launch.chunks == 1 {
        let bindings = [(1, x.1.into()), (4, dy.1.into()), (5, dw.into())];
        plan.push(ctx.dispatch(shader, &entry, &params, &bindings, grid)?);
        return Ok(());
    }

    // Partial sums per chunk, then their ordered sum.
    let partial_len = launch.chunks * g.weight_len();
    to_u32(op, partial_len)?;
    let partial = ctx.storage("conv2d:backward_weight partial sums", partial_len);
    let bindings = [(1, x.1.into()), (4, dy.1.into()), (5, (&partial).into())];
    plan.push(ctx.dispatch(shader, &entry, &params, &bindings, grid)?);

    push_weight_reduce(ctx, plan, op, g, &params, &partial, dw)
}

/// The weight gradient as sums per sample: `entry` of `shader`, over `invocations`
/// invocations in workgroups of [`CONV_WORKGROUP_SIZE`], writes sample n's sums into chunk n
/// of a scratch buffer of `batch` weights (made here, once, with the plan, and bound at 5
/// next to `inputs`), and `backward_weight_reduce` adds the chunks in sample order into `dw`.
#[allow(clippy::too_many_arguments)]
pub(super) fn push_weight_per_sample(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    mut params: Params,
    (shader, entry): (Shader, &str),
    invocations: usize,
    inputs: [(u32, Bind); 2],
    dw: &GpuTensor,
) -> Result<()> {
    let partial_len = g.batch * g.weight_len();
    to_u32(op, invocations)?;
    to_u32(op, partial_len)?;
    params.chunks = to_u32(op, g.batch)?;
    let partial = ctx.storage("conv2d:weight sums per sample", partial_len);
    let grid = ctx.grid(
        op,
        (invocations as u64).div_ceil(CONV_WORKGROUP_SIZE as u64),
    )?;
    let bindings = [inputs[0], inputs[1], (5, (&partial).into())];
    plan.push(ctx.dispatch(shader, entry, &params, &bindings, grid)?);
    push_weight_reduce(ctx, plan, op, g, &params, &partial, dw)
}

/// `dw[e] = sum over chunks c, in order, of partial[c * weight_len + e]`, `params.chunks`
/// chunks (`backward_weight_reduce`).
pub(super) fn push_weight_reduce(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    g: &Conv2dGeometry,
    params: &Params,
    partial: &GpuTensor,
    dw: &GpuTensor,
) -> Result<()> {
    let groups = (g.weight_len() as u64).div_ceil(CONV_WORKGROUP_SIZE as u64);
    let grid = ctx.grid(op, groups)?;
    let bindings: [(u32, Bind); 2] = [(6, partial.into()), (5, dw.into())];
    plan.push(ctx.dispatch(
        Shader::Conv2d,
        "backward_weight_reduce",
        params,
        &bindings,
        grid,
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_weights_with_long_sums_are_chunked_and_use_the_narrow_tile() {
        // The discriminator's first layer at batch 32: 64 x 1 x 3 x 3 over 32 * 14 * 14 pixels.
        let g = Conv2dGeometry::conv_same(32, 1, (28, 28), 64, (3, 3), (2, 2));
        let l = weight_launch(&g, MAX_PARTIAL_ELEMENTS);
        assert!(l.narrow);
        assert!(l.chunks > 1 && l.chunk_len >= MIN_CHUNK_PIXELS);
        assert!(l.chunks * l.chunk_len >= 32 * 14 * 14);
    }

    #[test]
    fn large_weights_use_the_main_tile() {
        let g = Conv2dGeometry::conv_same(32, 64, (14, 14), 128, (3, 3), (2, 2));
        let l = weight_launch(&g, MAX_PARTIAL_ELEMENTS);
        assert!(!l.narrow);
        // The scratch cap is honoured: one chunk when only one fits.
        let one = weight_launch(&g, g.weight_len());
        assert_eq!(one.chunks, 1);
    }
}
