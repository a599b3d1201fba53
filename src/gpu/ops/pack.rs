//! Packing matrices into uniform windows for [`super::gemm_uniform`] (`shaders/pack.wgsl`).
//! Data movement inside the uniform-window GEMM and convolutions, whose CPU twins are
//! `crate::cpu::gemm` and the convolutions themselves.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, GpuTensor, Plan, Shader, UNIFORM_WINDOW_BYTES};
use crate::shapes::Conv2dGeometry;

/// Rows of an A block and columns of a B block (`BLOCK_M`, `BLOCK_N` in the WGSL).
pub const BLOCK: usize = 128;

/// Most k per window (`KC` in shaders/gemm_uniform.wgsl).
pub const MAX_KC: usize = 128;

/// Invocations per workgroup of the pack kernels (`WORKGROUP_SIZE` in the WGSL).
const WORKGROUP_SIZE: u64 = 256;

/// vec4s one pack invocation writes (`GROUP` in the WGSL, whose entry points are written out
/// for it). A window's row holds a multiple of it: `BLOCK / 4` vec4s for B, 8 per 32 rows
/// for A.
pub const GROUP: usize = 4;
const _: () = assert!((BLOCK / 4).is_multiple_of(GROUP) && 8 % GROUP == 0);

/// Window starts are kept on 256 bytes, the largest uniform offset alignment WebGPU allows.
const WINDOW_ALIGN_VEC4S: usize = 16;

/// Indices and divisors the kernels divide stay at or below this: they divide in f32 (CPU
/// drivers have no vector integer division), which is exact after one correction up to 2^24.
pub const EXACT_F32_LIMIT: usize = 1 << 24;

/// Fail with [`Error::LimitExceeded`] unless every value is at most [`EXACT_F32_LIMIT`].
pub fn check_exact_f32(op: &str, values: &[usize]) -> Result<()> {
    match values.iter().find(|&&v| v > EXACT_F32_LIMIT) {
        Some(&v) => Err(Error::LimitExceeded {
            what: format!("{op} index range"),
            needed: v as u64,
            max: EXACT_F32_LIMIT as u64,
            hint: "the uniform-window kernels divide indices in f32; use --kernels direct \
                   or a smaller batch"
                .into(),
        }),
        None => Ok(()),
    }
}

/// One axis of a strided view: index `i` contributes `(i / div) * hi + (i % div) * lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub div: usize,
    pub hi: usize,
    pub lo: usize,
}

impl Axis {
    /// A plain stride.
    pub fn stride(lo: usize) -> Axis {
        Axis {
            div: EXACT_F32_LIMIT,
            hi: 0,
            lo,
        }
    }

    /// An index made of an outer and an inner part, `inner` values per outer step.
    pub fn split(inner: usize, hi: usize, lo: usize) -> Axis {
        Axis {
            div: inner.max(1),
            hi,
            lo,
        }
    }
}

/// How a pack reads its logical matrix `X[rows, cols]` from the source tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `X[r, c] = src[offset + row(r) + col(c)]`.
    Strided { offset: usize, row: Axis, col: Axis },
    /// The convolution's im2col of its large side: rows are taps `(ky, kx, i)` (channels
    /// innermost, the forward kernel's order), columns are small-side pixels `(n, oy, ox)`,
    /// zero where the window leaves the input.
    Im2col(Conv2dGeometry),
    /// Rows are pixels, columns taps `(i, ky, kx)` in OIHW order.
    Im2colTransposed(Conv2dGeometry),
    /// Rows are taps `(i, ky, kx)` in OIHW order, columns pixels (operand A).
    Im2colOihw(Conv2dGeometry),
    /// One phase class of the input gradient: the weight as `[i, (tap, o)]` (operand A).
    ClassWeight(Conv2dGeometry, PhaseClass),
    /// The same class's output gradient as `[(tap, o), (n, qy, qx)]` (operand B).
    ClassGradient(Conv2dGeometry, PhaseClass),
}

/// The large-side pixels `(py + qy * stride_h, px + qx * stride_w)` of an input gradient: they
/// are reached by the taps `ky = ky0, ky0 + stride_h, ...` and `kx = kx0, kx0 + stride_w, ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseClass {
    pub py: usize,
    pub px: usize,
    pub ky0: usize,
    pub kx0: usize,
    pub taps_y: usize,
    pub taps_x: usize,
    /// The class's pixel grid per sample.
    pub qh: usize,
    pub qw: usize,
}

impl PhaseClass {
    /// Every class of `g`, row-major in (py, px); some may have no taps or no pixels.
    pub fn all(g: &Conv2dGeometry) -> Vec<PhaseClass> {
        let (sh, sw) = (g.stride_h.max(1), g.stride_w.max(1));
        let taps = |k0: usize, k: usize, s: usize| if k0 < k { (k - k0).div_ceil(s) } else { 0 };
        let mut out = Vec::with_capacity(sh * sw);
        for py in 0..sh {
            for px in 0..sw {
                let (ky0, kx0) = ((py + g.pad_top) % sh, (px + g.pad_left) % sw);
                out.push(PhaseClass {
                    py,
                    px,
                    ky0,
                    kx0,
                    taps_y: taps(ky0, g.kernel_h, sh),
                    taps_x: taps(kx0, g.kernel_w, sw),
                    qh: g.in_h.saturating_sub(py).div_ceil(sh),
                    qw: g.in_w.saturating_sub(px).div_ceil(sw),
                });
            }
        }
        out
    }

    /// Length of the class's sums: its taps times the small side's channels.
    pub fn k(&self, g: &Conv2dGeometry) -> usize {
        self.taps_y * self.taps_x * g.out_channels
    }
}

/// Mirrors `Params` in shaders/pack.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: u32,
    offset: u32,
    row_div: u32,
    row_hi: u32,
    row_lo: u32,
    col_div: u32,
    col_hi: u32,
    col_lo: u32,
    channels: u32,
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
    kc: u32,
    windows: u32,
    k_vec4s: u32,
    window_stride: u32,
    total: u32,
    out_channels: u32,
    py: u32,
    px: u32,
    ky0: u32,
    kx0: u32,
    taps_x: u32,
    qh: u32,
    qw: u32,
}

pub(crate) const PARAMS_SIZE: usize = std::mem::size_of::<Params>();

/// Which operand a packed buffer holds; the two window layouts differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// `A[m, k]`: blocks of rows.
    A,
    /// `B[k, n]`: blocks of columns.
    B,
}

/// A matrix packed into uniform windows: `blocks` blocks (of rows for A, of columns for B),
/// each cut into `windows` windows of `kc` values of k.
#[derive(Clone, Debug)]
pub struct Packed {
    pub operand: Operand,
    /// Rows (A) or columns (B) of the matrix.
    pub extent: usize,
    pub k: usize,
    pub kc: usize,
    pub blocks: usize,
    pub windows: usize,
    /// vec4s per k within a window.
    pub k_vec4s: usize,
    /// vec4s from one window's start to the next.
    pub window_stride: usize,
    pub buffer: GpuTensor,
}

impl Packed {
    /// Byte offset of window `w` of block `block`.
    pub fn window_offset(&self, block: usize, w: usize) -> u64 {
        ((block * self.windows + w) * self.window_stride * 16) as u64
    }
}

/// The k per window for a product over `k`: whole windows of [`MAX_KC`], or all of a
/// shorter k. A and B of one product must agree on it.
pub fn window_k(k: usize) -> usize {
    k.clamp(1, MAX_KC)
}

/// Rows of an A block: [`BLOCK`], or all rows (rounded up to the 32 a workgroup owns) of a
/// shorter matrix.
pub fn a_block_rows(m: usize) -> usize {
    m.div_ceil(32).clamp(1, BLOCK / 32) * 32
}

fn view_params(op: &str, view: &View, rows: usize, cols: usize) -> Result<Params> {
    let u = |v: usize| to_u32(op, v);
    let mut p = Params {
        rows: u(rows)?,
        cols: u(cols)?,
        ..Params::default()
    };
    let geometry = match view {
        View::Strided { offset, row, col } => {
            p.offset = u(*offset)?;
            (p.row_div, p.row_hi, p.row_lo) = (u(row.div)?, u(row.hi)?, u(row.lo)?);
            (p.col_div, p.col_hi, p.col_lo) = (u(col.div)?, u(col.hi)?, u(col.lo)?);
            return Ok(p);
        }
        View::Im2col(g) | View::Im2colTransposed(g) | View::Im2colOihw(g) => g,
        View::ClassWeight(g, c) | View::ClassGradient(g, c) => {
            p.out_channels = u(g.out_channels)?;
            (p.py, p.px, p.ky0, p.kx0) = (u(c.py)?, u(c.px)?, u(c.ky0)?, u(c.kx0)?);
            (p.taps_x, p.qh, p.qw) = (u(c.taps_x.max(1))?, u(c.qh.max(1))?, u(c.qw.max(1))?);
            g
        }
    };
    set_geometry(op, &mut p, geometry)?;
    Ok(p)
}

fn set_geometry(op: &str, p: &mut Params, g: &Conv2dGeometry) -> Result<()> {
    let u = |v: usize| to_u32(op, v);
    p.channels = u(g.in_channels)?;
    p.in_h = u(g.in_h)?;
    p.in_w = u(g.in_w)?;
    p.out_h = u(g.out_h)?;
    p.out_w = u(g.out_w)?;
    p.kernel_h = u(g.kernel_h)?;
    p.kernel_w = u(g.kernel_w)?;
    p.stride_h = u(g.stride_h.max(1))?;
    p.stride_w = u(g.stride_w.max(1))?;
    p.pad_top = u(g.pad_top)?;
    p.pad_left = u(g.pad_left)?;
    Ok(())
}

/// Packs `X` (read from `src` through `view`) as operand `operand` of a product over `k`:
/// `X` is `[extent, k]` for A and `[k, extent]` for B. Allocates the packed buffer now (once,
/// with the plan) and adds one dispatch.
pub fn pack(
    ctx: &GpuContext,
    plan: &mut Plan,
    operand: Operand,
    view: &View,
    src: &GpuTensor,
    extent: usize,
    k: usize,
) -> Result<Packed> {
    let entry = match (operand, view) {
        (Operand::A, View::Strided { .. }) => "pack_a",
        (Operand::B, View::Strided { .. }) => "pack_b",
        (Operand::B, View::Im2col(_)) => "pack_b_im2col",
        (Operand::B, View::Im2colTransposed(_)) => "pack_b_im2col_transposed",
        (Operand::A, View::Im2colOihw(_)) => "pack_a_im2col_oihw",
        (Operand::A, View::ClassWeight(..)) => "pack_a_class",
        (Operand::B, View::ClassGradient(..)) => "pack_b_class",
        _ => {
            return Err(Error::ShapeMismatch {
                op: "pack".into(),
                expected: format!("a view that packs as operand {operand:?}"),
                got: format!("{view:?}"),
            });
        }
    };
    let op = &format!("pack:{entry}");
    if extent == 0 || k == 0 {
        return Err(Error::ShapeMismatch {
            op: op.into(),
            expected: "a matrix with rows and columns".into(),
            got: format!("{extent} x {k}"),
        });
    }
    let kc = window_k(k);
    let windows = k.div_ceil(kc);
    let blocks = extent.div_ceil(BLOCK);
    let k_vec4s = match operand {
        Operand::A => a_block_rows(extent) / 4,
        Operand::B => BLOCK / 4,
    };
    let window_stride = (kc * k_vec4s).next_multiple_of(WINDOW_ALIGN_VEC4S);
    let total = blocks * windows * kc * k_vec4s;
    check_exact_f32(op, &[extent, k, total])?;
    // The last window's binding covers a whole 64 KiB from its start.
    let last_start = (blocks * windows - 1) * window_stride * 4;
    let len = last_start + (UNIFORM_WINDOW_BYTES / 4) as usize;
    to_u32(op, len)?;
    let buffer = ctx.uniform_storage(op, len);

    let (rows, cols) = match operand {
        Operand::A => (extent, k),
        Operand::B => (k, extent),
    };
    let mut params = view_params(op, view, rows, cols)?;
    params.kc = to_u32(op, kc)?;
    params.windows = to_u32(op, windows)?;
    params.k_vec4s = to_u32(op, k_vec4s)?;
    params.window_stride = to_u32(op, window_stride)?;
    params.total = to_u32(op, total)?;
    let invocations = (total / GROUP) as u64;
    let grid = ctx.grid(op, invocations.div_ceil(WORKGROUP_SIZE))?;
    let bindings = [(1, src.into()), (2, (&buffer).into())];
    plan.push(ctx.dispatch(Shader::Pack, entry, &params, &bindings, grid)?);

    Ok(Packed {
        operand,
        extent,
        k,
        kc,
        blocks,
        windows,
        k_vec4s,
        window_stride,
        buffer,
    })
}
