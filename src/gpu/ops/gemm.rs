//! General matrix multiply (`shaders/gemm.wgsl`); CPU twin in `crate::cpu::gemm`.

use super::gemm_uniform::{
    Bias, ColumnMap, StoreView, better_transposed, gemm_uniform, worthwhile,
};
use super::pack::{Axis, Operand, View, pack};
use super::{expect_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader};
use crate::shapes::GemmShape;

/// Rows of C one workgroup computes (`TILE_M` in the WGSL).
pub const GEMM_TILE_M: usize = 8;

/// Columns of C one workgroup computes (`TILE_N` in the WGSL): 64 invocations, 4 each.
pub const GEMM_TILE_N: usize = 256;

/// Invocations per workgroup of every kernel in gemm.wgsl (`WG`).
const GEMM_WORKGROUP_SIZE: u64 = 64;

/// Mirrors `Params` in shaders/gemm.wgsl. Strides are in elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row_stride: u32,
    a_k_stride: u32,
    b_k_stride: u32,
    b_col_stride: u32,
    c_row_stride: u32,
    c_col_stride: u32,
    /// 0: none, 1: per column of C, 2: per row of C.
    bias_mode: u32,
    /// Workgroups along the columns of C.
    col_groups: u32,
    /// Workgroups that hold a tile.
    tiles: u32,
    /// k per slice (k when the sum is not split).
    k_slice: u32,
    /// Elements between the slices' blocks of C (0 when not split).
    c_slice_stride: u32,
    /// Blocks `sum_slices` adds.
    slices: u32,
}

/// Size of the `Params` mirror in bytes, for the layout test.
pub const GEMM_PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Below this many workgroup tiles a long sum over k is split (see [`k_slices`]).
const FEW_TILES: usize = 32;

/// Fewest k per slice of a split sum: shorter slices cost more in the scratch round trip
/// than they gain.
const MIN_K_SLICE: usize = 128;

/// Most slices of a split sum.
const MAX_SLICES: usize = 32;

/// Slices to split the k sum of a product with `tiles` workgroup tiles into, so that about
/// `FEW_TILES` workgroups share the work: a CPU driver runs each workgroup on one thread and
/// a GPU needs many in flight, and a product of one tile over a k in the thousands would
/// otherwise run on one.
fn k_slices(tiles: usize, k: usize) -> usize {
    if tiles >= FEW_TILES {
        return 1;
    }
    FEW_TILES
        .div_ceil(tiles)
        .min(k / MIN_K_SLICE)
        .clamp(1, MAX_SLICES)
}

/// Fraction of the invocations' tile slots that hold real elements of an m x n product.
fn tile_fill(m: usize, n: usize) -> f64 {
    let rows = m.div_ceil(GEMM_TILE_M) * GEMM_TILE_M;
    let cols = n.div_ceil(GEMM_TILE_N) * GEMM_TILE_N;
    (m * n) as f64 / (rows * cols) as f64
}

/// Fail unless `out` lives in a buffer none of `inputs` is bound from: wgpu forbids a buffer
/// being read-only and writable in one dispatch, even in disjoint ranges.
pub(crate) fn expect_separate(op: &str, out: &GpuTensor, inputs: &[&GpuTensor]) -> Result<()> {
    if inputs.iter().any(|t| t.buffer == out.buffer) {
        return Err(Error::Gpu {
            label: op.to_string(),
            message: "the output shares a buffer with an input; give it a buffer of its own".into(),
        });
    }
    Ok(())
}

/// `C[m, n] = op(A)[m, k] · op(B)[k, n]`, all row-major, C overwritten (see [`GemmShape`]).
/// `a`: `m * k` elements (`[m, k]`, or `[k, m]` with `trans_a`), `b`: `k * n` (`[k, n]`, or
/// `[n, k]` with `trans_b`), `c`: `m * n`.
pub fn gemm(
    ctx: &GpuContext,
    plan: &mut Plan,
    shape: &GemmShape,
    a: &GpuTensor,
    b: &GpuTensor,
    c: &GpuTensor,
) -> Result<()> {
    gemm_bias(ctx, plan, shape, a, b, None, c)
}

/// [`gemm`] with an optional bias added to every row of C (`bias`: `n` elements), fused into
/// the store. The dense layer's forward pass.
pub fn gemm_bias(
    ctx: &GpuContext,
    plan: &mut Plan,
    shape: &GemmShape,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    c: &GpuTensor,
) -> Result<()> {
    let op = "gemm:gemm";
    let GemmShape {
        m,
        n,
        k,
        trans_a,
        trans_b,
    } = *shape;
    expect_len(op, "a", a, m * k)?;
    expect_len(op, "b", b, k * n)?;
    expect_len(op, "c", c, m * n)?;
    if let Some(bias) = bias {
        expect_len(op, "bias", bias, n)?;
    }
    expect_separate(op, c, &[a, b])?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    for (what, len) in [("a", a.len), ("b", b.len), ("c", c.len)] {
        to_u32(&format!("{op} {what} elements"), len)?;
    }

    // Element strides of op(A) and op(B): op(A)[r, kk] = a[r * a_row + kk * a_k] and
    // op(B)[kk, j] = b[kk * b_k + j * b_col], as the WGSL headers describe them.
    let (a_row, a_k) = if trans_a { (1, m) } else { (k, 1) };
    let (b_k, b_col) = if trans_b { (1, k) } else { (n, 1) };
    let strides = [a_row, a_k, b_k, b_col];
    if gemm_on_windows(ctx, plan, (m, n, k), strides, a, b, bias, c)? {
        return Ok(());
    }

    if n == 1 && gemv(ctx, plan, (m, k), strides, a, b, bias, c)? {
        return Ok(());
    }

    let mut s = [m, n, a_row, a_k, b_k, b_col, n, 1];
    let mut bias_mode = u32::from(bias.is_some());
    let (mut lhs, mut rhs) = (a, b);

    // A product with few columns (m x 1: the discriminator's head) fills only a sliver of
    // each 8 x 256 workgroup tile; computing C^T = op(B)^T op(A)^T instead swaps the roles.
    if tile_fill(n, m) > tile_fill(m, n) {
        s = [n, m, b_col, b_k, a_k, a_row, 1, n];
        bias_mode *= 2;
        (lhs, rhs) = (b, a);
    }
    let [pm, pn, a_row, a_k, b_k, b_col, c_row, c_col] = s;

    let col_groups = pn.div_ceil(GEMM_TILE_N);
    let tiles = pm.div_ceil(GEMM_TILE_M) * col_groups;
    let slices = k_slices(tiles, k);
    let k_slice = k.div_ceil(slices);
    let mut params = Params {
        m: to_u32(op, pm)?,
        n: to_u32(op, pn)?,
        k: to_u32(op, k)?,
        a_row_stride: to_u32(op, a_row)?,
        a_k_stride: to_u32(op, a_k)?,
        b_k_stride: to_u32(op, b_k)?,
        b_col_stride: to_u32(op, b_col)?,
        c_row_stride: to_u32(op, c_row)?,
        c_col_stride: to_u32(op, c_col)?,
        bias_mode,
        col_groups: to_u32(op, col_groups)?,
        tiles: to_u32(op, tiles)?,
        k_slice: to_u32(op, k_slice)?,
        c_slice_stride: 0,
        slices: 1,
    };
    let [gx, gy, _] = ctx.grid(op, tiles as u64)?;
    if slices == 1 {
        let bindings = [
            (1, lhs.into()),
            (2, rhs.into()),
            (3, bias.unwrap_or(rhs).into()),
            (4, c.into()),
        ];
        plan.push(ctx.dispatch(Shader::Gemm, "gemm", &params, &bindings, [gx, gy, 1])?);
        return Ok(());
    }

    // Split k: each slice's m x n block, row-major without bias, into a scratch buffer made
    // now, when the plan is built, then the blocks added in order into C.
    let block = pm * pn;
    let partials = slice_scratch(ctx, op, slices, block)?;
    let sliced = Params {
        c_row_stride: params.n,
        c_col_stride: 1,
        c_slice_stride: to_u32(op, block)?,
        bias_mode: 0,
        ..params
    };
    let bindings = [
        (1, lhs.into()),
        (2, rhs.into()),
        (3, rhs.into()),
        (4, (&partials).into()),
    ];
    let grid = [gx, gy, to_u32(op, slices)?];
    plan.push(ctx.dispatch(Shader::Gemm, "gemm", &sliced, &bindings, grid)?);

    params.slices = to_u32(op, slices)?;
    add_slices(
        ctx,
        plan,
        op,
        &params,
        block,
        &partials,
        bias.unwrap_or(rhs),
        c,
    )
}

/// A scratch buffer for `slices` partial blocks of `block` elements each, made now, when the
/// plan is built.
fn slice_scratch(ctx: &GpuContext, op: &str, slices: usize, block: usize) -> Result<GpuTensor> {
    to_u32(op, slices * block)?;
    Ok(ctx.storage("gemm:partials", slices * block))
}

/// `sum_slices`: C = the `params.slices` blocks of `partials` added in order, plus the bias
/// (`bias` stands in for it when `params.bias_mode` is 0).
#[allow(clippy::too_many_arguments)]
fn add_slices(
    ctx: &GpuContext,
    plan: &mut Plan,
    op: &str,
    params: &Params,
    block: usize,
    partials: &GpuTensor,
    bias: &GpuTensor,
    c: &GpuTensor,
) -> Result<()> {
    let bindings = [(3, bias.into()), (4, c.into()), (5, partials.into())];
    let grid = ctx.grid(op, (block as u64).div_ceil(GEMM_WORKGROUP_SIZE))?;
    plan.push(ctx.dispatch(Shader::Gemm, "sum_slices", params, &bindings, grid)?);
    Ok(())
}

/// The product on the uniform-window kernels (`gemm_uniform`), when `ctx` uses them and the
/// shape is worth packing; `false` leaves it to the direct kernel. `strides` are
/// `[a_row, a_k, b_k, b_col]` as in [`gemm_bias`].
#[allow(clippy::too_many_arguments)]
fn gemm_on_windows(
    ctx: &GpuContext,
    plan: &mut Plan,
    (m, n, k): (usize, usize, usize),
    strides: [usize; 4],
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    c: &GpuTensor,
) -> Result<bool> {
    let transposed = better_transposed(m, n);
    let (pm, pn) = if transposed { (n, m) } else { (m, n) };
    if !worthwhile(ctx, pm, pn, k) {
        return Ok(false);
    }

    let [a_row, a_k, b_k, b_col] = strides;
    let view = |row: usize, col: usize| View::Strided {
        offset: 0,
        row: Axis::stride(row),
        col: Axis::stride(col),
    };
    let (lhs, rhs) = if transposed {
        // C^T = op(B)^T op(A)^T, stored transposed into C.
        (
            pack(ctx, plan, Operand::A, &view(b_col, b_k), b, pm, k)?,
            pack(ctx, plan, Operand::B, &view(a_k, a_row), a, pn, k)?,
        )
    } else {
        (
            pack(ctx, plan, Operand::A, &view(a_row, a_k), a, pm, k)?,
            pack(ctx, plan, Operand::B, &view(b_k, b_col), b, pn, k)?,
        )
    };
    let (store, bias) = if transposed {
        let store = StoreView {
            offset: 0,
            row_stride: 1,
            col: ColumnMap::stride(n),
        };
        (store, bias.map(Bias::PerRow))
    } else {
        (StoreView::row_major(n), bias.map(Bias::PerColumn))
    };
    gemm_uniform(ctx, plan, &lhs, &rhs, bias, c, &store)?;
    Ok(true)
}

/// A product with one column, `C[m, 1] = op(A) · op(B)`, on the `gemv` kernel when both
/// operands run contiguously along k in whole vec4s; `false` (nothing added) leaves it to the
/// tiled kernel. Long sums over few rows are split into slices as in [`gemm_bias`].
#[allow(clippy::too_many_arguments)]
fn gemv(
    ctx: &GpuContext,
    plan: &mut Plan,
    (m, k): (usize, usize),
    [a_row, a_k, b_k, _]: [usize; 4],
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    c: &GpuTensor,
) -> Result<bool> {
    let op = "gemm:gemv";
    let contiguous = a_k == 1 && b_k == 1 && k.is_multiple_of(4) && a_row.is_multiple_of(4);
    if !contiguous || !a.offset.is_multiple_of(16) || !b.offset.is_multiple_of(16) {
        return Ok(false);
    }
    // One workgroup per row and slice; slices of whole vec4s.
    let slices = k_slices(m, k);
    let k_slice = k.div_ceil(slices).next_multiple_of(4);
    let slices = k.div_ceil(k_slice);
    let [gx, gy, _] = ctx.grid(op, m as u64)?;
    let params = Params {
        m: to_u32(op, m)?,
        n: 1,
        k: to_u32(op, k)?,
        a_row_stride: to_u32(op, a_row)?,
        a_k_stride: 1,
        b_k_stride: 1,
        b_col_stride: 1,
        c_row_stride: 1,
        c_col_stride: 1,
        bias_mode: u32::from(bias.is_some()),
        col_groups: 1,
        tiles: to_u32(op, m)?,
        k_slice: to_u32(op, k_slice)?,
        c_slice_stride: 0,
        slices: 1,
    };
    let grid = [gx, gy, to_u32(op, slices)?];
    if slices == 1 {
        let bindings = [
            (3, bias.unwrap_or(b).into()),
            (4, c.into()),
            (6, a.into()),
            (7, b.into()),
        ];
        plan.push(ctx.dispatch(Shader::Gemm, "gemv", &params, &bindings, grid)?);
        return Ok(true);
    }

    // Each slice's column into a scratch buffer made with the plan, then added in order.
    let partials = slice_scratch(ctx, op, slices, m)?;
    let sliced = Params {
        c_slice_stride: to_u32(op, m)?,
        bias_mode: 0,
        ..params
    };
    let bindings = [
        (3, b.into()),
        (4, (&partials).into()),
        (6, a.into()),
        (7, b.into()),
    ];
    plan.push(ctx.dispatch(Shader::Gemm, "gemv", &sliced, &bindings, grid)?);
    let summed = Params {
        slices: to_u32(op, slices)?,
        ..params
    };
    add_slices(ctx, plan, op, &summed, m, &partials, bias.unwrap_or(b), c)?;
    Ok(true)
}
