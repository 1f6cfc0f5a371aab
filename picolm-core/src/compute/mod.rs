//! Compute primitives of the forward pass: the thread pool, the weight-matrix reference ([`MatrixRef`]), matrix
//! multiplication over quantized weights, and the element-wise operations.

pub mod matmul;
pub mod matrix;
pub mod ops;
pub mod planner;
pub mod pool;

pub use matmul::{matmul, MatmulScratch};
pub use matrix::{MatrixRef, WeightRows};
pub use pool::ComputePool;
