//! Compute primitives of the forward pass: the thread pool, matrix multiplication over quantized weights, and the
//! element-wise operations (RMSNorm, RoPE, SiLU, softmax).

pub mod matmul;
pub mod ops;
pub mod pool;

pub use matmul::{matmul, MatmulScratch};
pub use pool::ComputePool;
