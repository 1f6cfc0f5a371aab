//! Compute primitives of the forward pass: the thread pool, the weight-matrix reference ([`MatrixRef`]), matrix
//! multiplication over quantized weights, and the element-wise operations.

pub mod matmul;
pub mod matrix;
pub mod planner;
pub mod pool;

pub use matmul::{matmul, MatmulScratch};
pub use matrix::{MatrixRef, WeightRows};
/// The element-wise operations: in the kernel crate, which release builds keep at opt-level 3.
pub use picolm_kernels::ops;
pub use pool::ComputePool;
