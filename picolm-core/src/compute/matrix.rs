//! A weight matrix located in the model file: the compute layer's input type (the model layer finds the matrices in
//! the GGUF file and checks their shapes; the kernels only need the bytes, the type and the shape).

use std::ops::Range;

use crate::ggml_type::GgmlType;
use crate::gguf::GgufFile;

/// A weight matrix stored in the model file: `rows` output rows of `cols` inputs each, row-major, in `ty` blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixRef {
    /// Tensor name in the GGUF file.
    pub name: String,
    /// Storage type of the elements.
    pub ty: GgmlType,
    /// Number of rows (outputs).
    pub rows: usize,
    /// Number of columns (inputs; the contiguous dimension).
    pub cols: usize,
    /// Absolute file offset of the first byte.
    pub offset: usize,
    /// Bytes in one row.
    pub row_bytes: usize,
}

impl MatrixRef {
    /// Total bytes of the matrix.
    pub fn n_bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// The matrix bytes within the mapped file; `None` when the file is streamed (its tensor data is not in
    /// memory) or the matrix lies outside it.
    pub fn bytes<'f>(&self, file: &'f GgufFile) -> Option<&'f [u8]> {
        file.file_bytes().get(self.offset..self.offset.checked_add(self.n_bytes())?)
    }
}

/// Where a matrix multiplication gets its weight rows: the whole matrix from the memory map at once, or slab by
/// slab from a streaming reader. Implemented by the model layer (`model::stream::WeightSource`), so the compute
/// layer does not know how the model stores its weights.
pub trait WeightRows {
    /// What a failed read reports.
    type Error;

    /// Calls `f` with consecutive row ranges of `w` and their bytes (`rows.len() * w.row_bytes` bytes each), in
    /// order, covering every row once.
    fn for_each_slab(&mut self, w: &MatrixRef, f: &mut dyn FnMut(Range<usize>, &[u8])) -> Result<(), Self::Error>;
}
