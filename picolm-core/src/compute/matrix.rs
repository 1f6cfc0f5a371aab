//! A weight matrix located in the model file: the compute layer's input type (the model layer finds the matrices in
//! the GGUF file and checks their shapes; the kernels only need the bytes, the type and the shape).

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

    /// The matrix bytes within the mapped file.
    pub fn bytes<'f>(&self, file: &'f GgufFile) -> &'f [u8] {
        &file.file_bytes()[self.offset..self.offset + self.n_bytes()]
    }
}

