//! A view of f32 (or packed u32) elements inside a GPU buffer.

use super::context::GpuContext;

/// `len` elements starting `offset` bytes into `buffer`.
///
/// Cloning is cheap (the buffer is reference counted) and clones alias the same memory.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub buffer: wgpu::Buffer,
    /// In bytes; a multiple of the device's `min_storage_buffer_offset_alignment` whenever
    /// the tensor came from [`GpuContext`] or [`arena`], so it can be bound on its own.
    pub offset: u64,
    /// In elements (4 bytes each).
    pub len: usize,
}

impl GpuTensor {
    /// Size of the data in bytes.
    pub fn byte_len(&self) -> u64 {
        self.len as u64 * 4
    }

    /// Bytes a binding of this tensor covers: the data, or one element for an empty tensor
    /// (a binding may not be empty; every buffer we create has room for it).
    pub fn binding_size(&self) -> u64 {
        self.len.max(1) as u64 * 4
    }

    /// Whether `self` and `other` share any bytes (same buffer, overlapping ranges).
    pub fn overlaps(&self, other: &GpuTensor) -> bool {
        self.buffer == other.buffer
            && self.offset < other.offset + other.binding_size()
            && other.offset < self.offset + self.binding_size()
    }
}

/// Round `value` up to a multiple of `align` (a power of two or any positive number).
pub(crate) fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// One zeroed buffer holding several tensors, each starting at a multiple of the device's
/// storage offset alignment so every part can be bound on its own.
///
/// Returns the whole buffer as one tensor (for one-dispatch updates of every part, e.g. Adam
/// over a whole model: the alignment gaps hold zeros in parameters, gradients and moments
/// alike, and an Adam step leaves zeros at zero) and the parts in the order of `lens`.
pub fn arena(ctx: &GpuContext, label: &str, lens: &[usize]) -> (GpuTensor, Vec<GpuTensor>) {
    let align = ctx.limits.min_storage_buffer_offset_alignment.max(4) as u64;
    let mut offsets = Vec::with_capacity(lens.len());
    let mut end = 0u64;
    for &len in lens {
        let offset = align_up(end, align);
        offsets.push(offset);
        end = offset + len.max(1) as u64 * 4;
    }

    // A whole number of 16-byte words, so a one-dispatch update can move four values per
    // load (the padding is zeros, like the gaps).
    let whole = ctx.storage(label, (align_up(end, 16) / 4) as usize);
    let parts = offsets
        .iter()
        .zip(lens)
        .map(|(&offset, &len)| GpuTensor {
            buffer: whole.buffer.clone(),
            offset,
            len,
        })
        .collect();
    (whole, parts)
}
