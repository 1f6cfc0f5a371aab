//! A validating, zero-copy GGUF v2/v3 reader over a memory map, and a writer.

mod error;
mod reader;
pub mod synthetic;
mod value;
mod writer;

pub use error::GgufError;
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use value::{MetaArray, MetaValue};
pub use writer::GgufWriter;
