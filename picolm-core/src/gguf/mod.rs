//! A validating GGUF v2/v3 reader (zero-copy over a memory map, or header-only with positional reads for
//! streaming), and a writer (feature `quantize`).

mod data_file;
mod error;
mod reader;
#[cfg(any(feature = "quantize", test))]
pub mod synthetic;
mod value;
#[cfg(any(feature = "quantize", test))]
mod writer;

pub use data_file::{AlignedBuf, DataFile, DIRECT_ALIGN};
pub use error::GgufError;
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use value::{MetaArray, MetaValue};
#[cfg(any(feature = "quantize", test))]
pub use writer::GgufWriter;
