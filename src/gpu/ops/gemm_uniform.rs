//! The GEMM over uniform windows (`shaders/gemm_uniform.wgsl`); CPU twin `crate::cpu::gemm`.
//! Its operands come packed by [`super::pack::pack`]; its output goes anywhere a
//! [`StoreView`] can address, so a convolution's product lands directly in NCHW.

use super::pack::{BLOCK, EXACT_F32_LIMIT, Operand, Packed, a_block_rows, check_exact_f32};

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{Bind, GpuContext, GpuTensor, Plan, Shader};

/// Windows of each operand one dispatch binds (`WINDOWS` in the WGSL).
const WINDOWS: usize = 5;

/// Rows of C one workgroup owns.
const WORKGROUP_ROWS: usize = 32;

/// Workgroups across a block's columns (eight invocations of eight columns each).
const COLUMN_SLICES: u32 = 2;

/// The fill of the transposed product, for launchers choosing an orientation.
pub fn better_transposed(m: usize, n: usize) -> bool {
    fill(n, m) > fill(m, n)
}

/// Mirrors `Params` in shaders/gemm_uniform.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    row0: u32,
    col0: u32,
    windows: u32,
    kc: u32,
    k_last: u32,
    a_k_stride: u32,
    c_offset: u32,
    row_stride: u32,
    col_div1: u32,
    col_div2: u32,
    col_s1: u32,
    col_s2: u32,
    col_s3: u32,
}

/// Size of the `Params` mirror in bytes, for the layout test.
pub const GEMM_UNIFORM_PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Where column `c` of C goes: `c` is split into `c / div1`, `(c % div1) / div2` and
/// `c % div2`, with element strides `s1`, `s2`, `s3` (e.g. a pixel `(n, y, x)` of NCHW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub div1: usize,
    pub div2: usize,
    pub s1: usize,
    pub s2: usize,
    pub s3: usize,
}

impl ColumnMap {
    /// Column `c` at `c * stride`.
    pub fn stride(stride: usize) -> ColumnMap {
        ColumnMap {
            div1: EXACT_F32_LIMIT,
            div2: EXACT_F32_LIMIT,
            s1: 0,
            s2: 0,
            s3: stride,
        }
    }

    /// Column `(outer, inner)` with `inner` values per outer step, at `outer * hi + inner * lo`.
    pub fn split(inner: usize, hi: usize, lo: usize) -> ColumnMap {
        ColumnMap {
            div1: inner.max(1),
            div2: EXACT_F32_LIMIT,
            s1: hi,
            s2: 0,
            s3: lo,
        }
    }
}

/// Where `C[r, c]` is stored: `offset + r * row_stride + col(c)` elements into the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreView {
    pub offset: usize,
    pub row_stride: usize,
    pub col: ColumnMap,
}

impl StoreView {
    /// Whether every four columns from a multiple of 4 land on four consecutive elements
    /// from a multiple of 4, in every row: the kernel then moves C as vec4s.
    fn whole_vec4s(&self) -> bool {
        let c = &self.col;
        c.s3 == 1
            && [c.div1, c.div2, c.s1, c.s2, self.offset, self.row_stride]
                .iter()
                .all(|v| v.is_multiple_of(4))
    }

    /// Row-major `[m, n]`.
    pub fn row_major(n: usize) -> StoreView {
        StoreView {
            offset: 0,
            row_stride: n,
            col: ColumnMap::stride(1),
        }
    }
}

/// A bias added once to every element of C.
#[derive(Clone, Copy, Debug)]
pub enum Bias<'a> {
    /// `bias[r]` to row r.
    PerRow(&'a GpuTensor),
    /// `bias[c]` to column c.
    PerColumn(&'a GpuTensor),
}

/// Which bias an entry point adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasKind {
    Row,
    Column,
}

/// The entry point for one way of reading and writing C (shaders/gemm_uniform.wgsl):
/// `continues` the partial sums of an earlier dispatch or starts from zero, moves C as
/// `vec4s` or one value at a time, and adds `bias` or none.
pub fn entry_point(continues: bool, vec4s: bool, bias: Option<BiasKind>) -> String {
    format!(
        "gemm_uniform_{}_{}_{}_bias",
        if continues { "continue" } else { "start" },
        if vec4s { "vec4" } else { "scalar" },
        match bias {
            None => "no",
            Some(BiasKind::Row) => "row",
            Some(BiasKind::Column) => "column",
        },
    )
}

/// Every entry point [`gemm_uniform`] can launch.
pub fn entry_points() -> Vec<String> {
    let mut all = Vec::new();
    for continues in [false, true] {
        for vec4s in [false, true] {
            for bias in [None, Some(BiasKind::Row), Some(BiasKind::Column)] {
                all.push(entry_point(continues, vec4s, bias));
            }
        }
    }
    all
}

/// `C[m, n] = A · B (+ bias)` from packed operands, stored through `store` into `c`. One
/// dispatch per block of rows, block of columns and group of [`WINDOWS`] windows of k (or,
/// when k takes at most two windows, per block of rows and as many column blocks as the
/// window slots hold); the groups of a block run in increasing k, each continuing the
/// partial sums the last left in C, so every element is one chain of additions in
/// increasing k, the bias added last.
pub fn gemm_uniform(
    ctx: &GpuContext,
    plan: &mut Plan,
    a: &Packed,
    b: &Packed,
    bias: Option<Bias<'_>>,
    c: &GpuTensor,
    store: &StoreView,
) -> Result<()> {
    let op = "gemm_uniform";
    if a.operand != Operand::A || b.operand != Operand::B || a.k != b.k || a.kc != b.kc {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: "A and B packed for the same k".into(),
            got: format!("A {:?} k {}, B {:?} k {}", a.operand, a.k, b.operand, b.k),
        });
    }
    let (m, n, k, kc) = (a.extent, b.extent, a.k, a.kc);
    let bias = match bias {
        None => None,
        Some(Bias::PerRow(t)) => {
            super::expect_len(op, "bias", t, m)?;
            Some((BiasKind::Row, t))
        }
        Some(Bias::PerColumn(t)) => {
            super::expect_len(op, "bias", t, n)?;
            Some((BiasKind::Column, t))
        }
    };
    // Both views of C are bound, the vec4 one needing at least one whole vec4.
    if c.len < 4 {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: "an output of at least 4 values".into(),
            got: format!("{} values", c.len),
        });
    }
    // C moves as vec4s when its rows are whole, aligned vec4s and n is a multiple of 4, so
    // that each run of four columns is wholly in the matrix or wholly past it.
    let vec4s = store.whole_vec4s() && c.offset.is_multiple_of(16) && n.is_multiple_of(4);
    check_exact_f32(op, &[m, n, store.col.div1, store.col.div2])?;
    let u = |v: usize| to_u32(op, v);
    let base = Params {
        m: u(m)?,
        n: u(n)?,
        kc: u(kc)?,
        a_k_stride: u(a.k_vec4s)?,
        c_offset: u(store.offset)?,
        row_stride: u(store.row_stride)?,
        col_div1: u(store.col.div1)?,
        col_div2: u(store.col.div2)?,
        col_s1: u(store.col.s1)?,
        col_s2: u(store.col.s2)?,
        col_s3: u(store.col.s3)?,
        ..Params::default()
    };

    // Window slots of one dispatch: every window of k for each of `blocks_per_dispatch`
    // column blocks when k takes at most half the slots, else up to WINDOWS windows of one
    // block, the block's later groups of windows continuing the partial sums in C.
    let blocks_per_dispatch = (WINDOWS / a.windows.max(1)).max(1);
    fn window(p: &Packed, block: usize, w: usize) -> Bind<'_> {
        Bind::Window(&p.buffer, p.window_offset(block, w))
    }
    for row_block in 0..a.blocks {
        let rows = (m - row_block * BLOCK).min(a_block_rows(m));
        let row_groups = u(rows.div_ceil(WORKGROUP_ROWS))?;
        for col_block in (0..b.blocks).step_by(blocks_per_dispatch) {
            let blocks = (b.blocks - col_block).min(blocks_per_dispatch);
            for first in (0..a.windows).step_by(WINDOWS) {
                let count = (a.windows - first).min(WINDOWS);
                let last = first + count - 1;
                let params = Params {
                    row0: u(row_block * BLOCK)?,
                    col0: u(col_block * BLOCK)?,
                    windows: u(count)?,
                    k_last: u((k - last * kc).min(kc))?,
                    ..base
                };
                // The bias goes in with the last group of windows.
                let final_bias = bias.filter(|_| first + count == a.windows);
                // Slot j * count + w: window first + w of column block col_block + j; unused
                // slots repeat the last one used (never read).
                let mut bindings: Vec<(u32, Bind)> = Vec::with_capacity(2 * WINDOWS + 3);
                for slot in 0..WINDOWS {
                    let used = slot.min(blocks * count - 1);
                    let (j, w) = (used / count, first + used % count);
                    bindings.push((1 + slot as u32, window(a, row_block, w)));
                    bindings.push((1 + (WINDOWS + slot) as u32, window(b, col_block + j, w)));
                }
                // Every variant declares the bias and both views of C; a read-only buffer of
                // the dispatch stands in for a missing bias (never read then).
                let after_windows = 1 + 2 * WINDOWS as u32;
                bindings.push((
                    after_windows,
                    final_bias.map_or(&a.buffer, |(_, t)| t).into(),
                ));
                bindings.push((after_windows + 1, c.into()));
                bindings.push((after_windows + 2, c.into()));
                let entry = entry_point(first > 0, vec4s, final_bias.map(|(kind, _)| kind));
                let grid = [row_groups, COLUMN_SLICES, u(blocks)?];
                plan.push(ctx.dispatch(Shader::GemmUniform, &entry, &params, &bindings, grid)?);
            }
        }
    }
    Ok(())
}

/// Fraction of the uniform kernel's tile slots an `m x n` product fills (rows come in 32s,
/// columns in blocks of 128).
fn fill(m: usize, n: usize) -> f64 {
    let rows = m.div_ceil(WORKGROUP_ROWS) * WORKGROUP_ROWS;
    let cols = n.div_ceil(BLOCK) * BLOCK;
    (m * n) as f64 / (rows * cols) as f64
}

/// Least tile fill worth the uniform kernel: below it the direct kernels, whose tiles are
/// narrower, waste less. One eighth admits the weight gradients of one-channel layers (9
/// taps x 64 channels fill 14%), which the direct kernels, paying a storage load per
/// multiply-add on CPU drivers, ran about 1.5x slower in `gan-gpu bench` on lavapipe. Of the
/// model's products no other has a fill between one eighth and one quarter; other shapes in
/// that range have not been measured.
const MIN_FILL: f64 = 0.125;

/// Fewest multiply-adds worth packing for: smaller products cost more to pack than to run.
const MIN_MULTIPLY_ADDS: usize = 1 << 18;

/// Whether an `m x n x k` product should run on the uniform-window kernels of `ctx`.
pub fn worthwhile(ctx: &GpuContext, m: usize, n: usize, k: usize) -> bool {
    ctx.kernel_set() == crate::gpu::KernelSet::UniformWindows
        && fill(m, n) >= MIN_FILL
        && m * n * k >= MIN_MULTIPLY_ADDS
}
