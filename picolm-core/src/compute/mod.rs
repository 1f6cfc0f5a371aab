//! Compute primitives of the forward pass: the thread pool, matrix multiplication over quantized weights, and the
//! element-wise operations (RMSNorm, RoPE, SiLU, softmax).

pub mod matmul;
pub mod ops;
pub mod planner;
pub mod pool;

pub use matmul::{matmul, MatmulScratch, StreamConfig};
pub use pool::ComputePool;
