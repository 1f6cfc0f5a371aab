//! Errors of the test-data tool.

use std::path::PathBuf;

/// Why a test-data file could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The command line is wrong.
    #[error("{0}\n{USAGE}")]
    Usage(String),
    /// The source file is unreadable or malformed, or the output could not be written.
    #[error("{path}: {source}")]
    Gguf {
        /// The file concerned.
        path: PathBuf,
        /// The reader's or writer's error.
        source: picolm_core::gguf::GgufError,
    },
    /// The float copy could not be made.
    #[error("{src} -> {dst}: {source}")]
    Quantize {
        /// The source model.
        src: PathBuf,
        /// The output file.
        dst: PathBuf,
        /// The quantizer's error (boxed: the engine's error is large and this one is returned often).
        source: Box<picolm_core::Error>,
    },
    /// The source file lacks something the output needs.
    #[error("{path}: {why}")]
    BadSource {
        /// The source file.
        path: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
}

/// The command-line help.
pub const USAGE: &str = "usage: picolm-testdata dequantize SRC.gguf DST.gguf F32|F16
       picolm-testdata vocab-only SRC.gguf DST.gguf [--space-prefix true|false] [--drop-template]";
