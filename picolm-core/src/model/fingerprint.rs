//! The identity of a model file, computed once at load and stored in saved session states so that a state is
//! only ever restored into the model that produced it.

use std::fmt;

use xxhash_rust::xxh3::xxh3_128;

use crate::gguf::GgufFile;

/// A model's identity: the 128-bit XXH3 hash of its GGUF header (magic, version, every metadata key and value, the
/// tensor table with names, shapes, types and offsets, and the alignment padding) plus the file size. Two files
/// differ in it whenever they differ in architecture, hyper-parameters, tokenizer, quantization (F32 vs Q4_1 of
/// one model) or layout; the tensor data itself is not read (that would cost a pass over the weights at load).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelFingerprint {
    /// XXH3-128 of bytes `[0, data_offset)` of the file.
    pub header_hash: u128,
    /// File size in bytes.
    pub file_bytes: u64,
}

impl ModelFingerprint {
    /// The fingerprint of an opened GGUF file (hashes only the header: a few MB at most, mostly the vocabulary).
    pub fn of(file: &GgufFile) -> ModelFingerprint {
        let bytes = file.file_bytes();
        let header = &bytes[..(file.data_offset() as usize).min(bytes.len())];
        ModelFingerprint { header_hash: xxh3_128(header), file_bytes: file.len() }
    }
}

impl fmt::Display for ModelFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "header hash {:032x}, file size {} bytes", self.header_hash, self.file_bytes)
    }
}
