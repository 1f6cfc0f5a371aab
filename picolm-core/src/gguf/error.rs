//! Errors of the GGUF reader and writer.

use std::path::PathBuf;

use thiserror::Error;

/// Why a GGUF file could not be read, or a metadata lookup failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bytes of the file could not be read back (streaming mode reads weights while it runs).
    #[error("cannot read {len} bytes at offset {offset} of {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Where the read started.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// The OS error (`UnexpectedEof` when the file is shorter than at open).
        source: std::io::Error,
    },
    /// The file changed length since it was opened (a mapping of it would be unsafe to use).
    #[error("{path} changed size since it was opened: {opened} bytes then, {now} now")]
    SizeChanged {
        /// The file.
        path: PathBuf,
        /// Length at open.
        opened: u64,
        /// Length now.
        now: u64,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, FIFO, socket or device); refused without blocking.
    #[error("{path} is a {kind}, not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: crate::fs_safety::FileKind,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic bytes are {}, expected \"GGUF\"", crate::fs_safety::MagicBytes(.found))]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// The version is not 2 or 3.
    #[error("unsupported GGUF version {version} (supported: 2, 3){hint}")]
    UnsupportedVersion {
        /// The version read.
        version: u32,
        /// Extra explanation (big-endian files).
        hint: &'static str,
    },
    /// The file ends before a field does.
    #[error("truncated file: reading {what} at offset {offset} needs {needed} bytes, only {available} left")]
    Truncated {
        /// What was being read.
        what: String,
        /// Where.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// A declared count or length cannot fit in the bytes that are left.
    #[error("{what} declares {count} items, but only {remaining} bytes are left at offset {offset}")]
    CountTooLarge {
        /// What the count is of.
        what: String,
        /// The declared count.
        count: u64,
        /// Bytes left.
        remaining: u64,
        /// Where.
        offset: u64,
    },
    /// A tensor has more than four dimensions (or none).
    #[error("tensor {tensor:?} has {n_dims} dimensions (1 to 4 supported)")]
    BadDimensionCount {
        /// Tensor name.
        tensor: String,
        /// Declared dimensions.
        n_dims: u32,
    },
    /// The product of a tensor's dimensions overflows.
    #[error("tensor {tensor:?} has dimensions {dims:?} whose product overflows")]
    ShapeOverflow {
        /// Tensor name.
        tensor: String,
        /// Its dimensions.
        dims: Vec<u64>,
    },
    /// A tensor's row length is not a whole number of blocks of its type.
    #[error("tensor {tensor:?}: row length {row_len} is not a multiple of the {ty} block size {block}")]
    RowNotBlockMultiple {
        /// Tensor name.
        tensor: String,
        /// Row length.
        row_len: u64,
        /// Type name.
        ty: &'static str,
        /// Block size.
        block: usize,
    },
    /// A tensor type id is unknown or unsupported.
    #[error("tensor {tensor:?} has unknown or unsupported type id {type_id}")]
    UnknownType {
        /// Tensor name.
        tensor: String,
        /// The id.
        type_id: u32,
    },
    /// A metadata value type id is unknown.
    #[error("metadata key {key:?} has unknown value type id {type_id}")]
    UnknownValueType {
        /// The key.
        key: String,
        /// The id.
        type_id: u32,
    },
    /// `general.alignment` is zero, not a power of two, or not a u32.
    #[error("invalid general.alignment {0} (must be a power of two)")]
    BadAlignment(String),
    /// A tensor's data lies (partly) outside the file.
    #[error("tensor {tensor:?} data [{offset}, {offset}+{size}) lies outside the file of {file_len} bytes")]
    TensorOutOfBounds {
        /// Tensor name.
        tensor: String,
        /// Absolute offset.
        offset: u64,
        /// Size in bytes.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// A tensor's offset is not a multiple of the alignment.
    #[error("tensor {tensor:?} offset {offset} is not aligned to {alignment} bytes")]
    MisalignedTensor {
        /// Tensor name.
        tensor: String,
        /// Relative offset.
        offset: u64,
        /// Required alignment.
        alignment: u64,
    },
    /// An array whose elements are arrays.
    #[error("metadata key {key:?} is a nested array, which is not supported")]
    NestedArray {
        /// The key.
        key: String,
    },
    /// A bool value other than 0 or 1.
    #[error("metadata key {key:?} has invalid bool byte {value}")]
    BadBool {
        /// The key.
        key: String,
        /// The byte.
        value: u8,
    },
    /// A string is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: String,
    },
    /// A metadata key appears twice.
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    /// A tensor name appears twice.
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    /// A required metadata key is absent.
    #[error("missing required metadata key {0:?}")]
    MissingKey(String),
    /// A required tensor is absent.
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
    /// A metadata value has another type than the one asked for.
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// Expected type.
        expected: &'static str,
        /// Type found.
        found: &'static str,
    },
    /// A metadata integer does not fit the type asked for.
    #[error("metadata key {key:?} has value {value}, which does not fit in {expected}")]
    ValueOutOfRange {
        /// The key.
        key: String,
        /// The value, printed.
        value: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// The writer was given inconsistent tensor data.
    #[error("cannot write tensor {tensor:?}: {why}")]
    BadTensorData {
        /// Tensor name.
        tensor: String,
        /// Why.
        why: String,
    },
    /// Writing failed.
    #[error("write error: {0}")]
    Write(#[from] std::io::Error),
}
