//! A validating, zero-copy GGUF v2/v3 reader over a memory map, and a writer (feature `quantize`).

mod error;
mod reader;
mod value;
#[cfg(any(feature = "quantize", test))]
mod writer;

pub use error::GgufError;
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use value::{MetaArray, MetaValue};
#[cfg(any(feature = "quantize", test))]
pub use writer::GgufWriter;
