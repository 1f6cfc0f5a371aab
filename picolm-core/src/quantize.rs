//! Model quantization (`picolm quantize`): converts the matrices of an F32/F16/BF16 (or already quantized) GGUF
//! model to a quantized type, following llama.cpp's choices so the files are comparable with its own:
//! norms and other 1-D tensors stay F32; the output matrix (or the token embedding when the output is tied to it)
//! gets Q6_K unless the target is Q8_0 or a float type; the `_M` mixes give `attn_v` and `ffn_down` Q6_K in
//! the first and last eighth of the layers and every third layer between; K-quant matrices whose rows are not a
//! multiple of 256 fall back to Q5_0 (Q4_K), Q5_1 (Q5_K), Q8_0 (Q6_K) or Q4_0 (Q2_K/Q3_K), as llama.cpp does.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::compute::pool::{chunks, chunks_mut};
use crate::compute::ComputePool;
use crate::error::Error;
use crate::ggml_type::GgmlType;
use crate::gguf::{GgufFile, GgufWriter, MetaValue};
use crate::quant;

/// A quantization target: one type for every matrix, or one of llama.cpp's `_M` mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantScheme {
    /// Every matrix in this type (apart from the output rule).
    Uniform(GgmlType),
    /// Q4_K with Q6_K for part of `attn_v` / `ffn_down` (llama.cpp's Q4_K_M).
    Q4KM,
    /// Q5_K with Q6_K for part of `attn_v` / `ffn_down` (llama.cpp's Q5_K_M).
    Q5KM,
}

impl QuantScheme {
    /// Parses `q4_0`, `Q8_0`, `q4_k_m`, `f16`, ... (case-insensitive).
    pub fn parse(s: &str) -> Result<QuantScheme, Error> {
        let up = s.to_ascii_uppercase();
        match up.as_str() {
            "Q4_K_M" => return Ok(QuantScheme::Q4KM),
            "Q5_K_M" => return Ok(QuantScheme::Q5KM),
            _ => {}
        }
        match GgmlType::from_name(&up) {
            Some(t) if !matches!(t, GgmlType::Q8_1 | GgmlType::Q8_K) => Ok(QuantScheme::Uniform(t)),
            _ => Err(Error::InvalidArgument {
                name: "quantization type".into(),
                why: format!("{s:?}: expected one of F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M Q5_K_M"),
            }),
        }
    }

    fn base(self) -> GgmlType {
        match self {
            QuantScheme::Uniform(t) => t,
            QuantScheme::Q4KM => GgmlType::Q4_K,
            QuantScheme::Q5KM => GgmlType::Q5_K,
        }
    }

    /// llama.cpp's `general.file_type` for this scheme.
    pub fn file_type(self) -> u32 {
        match self {
            QuantScheme::Q4KM => 15,
            QuantScheme::Q5KM => 17,
            QuantScheme::Uniform(t) => match t {
                GgmlType::F32 => 0,
                GgmlType::F16 => 1,
                GgmlType::Q4_0 => 2,
                GgmlType::Q4_1 => 3,
                GgmlType::Q8_0 => 7,
                GgmlType::Q5_0 => 8,
                GgmlType::Q5_1 => 9,
                GgmlType::Q2_K => 10,
                GgmlType::Q3_K => 11,
                GgmlType::Q4_K => 14,
                GgmlType::Q5_K => 16,
                GgmlType::Q6_K => 18,
                GgmlType::BF16 => 32,
                _ => 0,
            },
        }
    }
}

/// One converted tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedTensor {
    /// Tensor name.
    pub name: String,
    /// Type in the source file.
    pub from: GgmlType,
    /// Type written.
    pub to: GgmlType,
}

/// What `quantize_file` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeReport {
    /// Every tensor with its source and target type.
    pub tensors: Vec<QuantizedTensor>,
    /// Bytes of tensor data read.
    pub bytes_in: u64,
    /// Bytes of tensor data written.
    pub bytes_out: u64,
}

/// llama.cpp's `use_more_bits`: the layers whose `attn_v` / `ffn_down` get more bits in the `_M` mixes.
fn use_more_bits(layer: usize, n_layer: usize) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The K-quant fallback for rows that are not whole 256-value blocks.
fn fallback(ty: GgmlType, row: u64) -> GgmlType {
    if row.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    match ty {
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    }
}

/// The type a tensor gets under `scheme`.
pub fn target_type(name: &str, dims: &[u64], scheme: QuantScheme, n_layer: usize, has_output: bool) -> GgmlType {
    if dims.len() < 2 {
        return GgmlType::F32;
    }
    let base = scheme.base();
    let is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    let mut ty = if is_output && !matches!(base, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0) {
        GgmlType::Q6_K
    } else {
        base
    };
    if matches!(scheme, QuantScheme::Q4KM | QuantScheme::Q5KM)
        && (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight"))
        && layer_of(name).is_some_and(|l| use_more_bits(l, n_layer))
    {
        ty = GgmlType::Q6_K;
    }
    fallback(ty, dims[0])
}

/// Converts `src` to `dst` under `scheme`, keeping every metadata pair (with `general.file_type` updated).
/// Rows are converted in parallel, on a pool of one thread per CPU. `progress(done, total)` is called after each tensor.
pub fn quantize_file(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    scheme: QuantScheme,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<QuantizeReport, Error> {
    let file = GgufFile::open(src.as_ref())?;
    let n_layer = file.get_u32("llama.block_count")?.unwrap_or(0) as usize;
    let has_output = file.tensor("output.weight").is_some();
    let mut w = GgufWriter::from_metadata_of(&file);
    w.add_metadata("general.file_type", MetaValue::U32(scheme.file_type()));
    let mut report = QuantizeReport { tensors: Vec::new(), bytes_in: 0, bytes_out: 0 };
    let total = file.tensors().len();
    let pool = ComputePool::new(0).map_err(crate::model::ModelError::from)?;
    for (i, t) in file.tensors().iter().enumerate() {
        let to = target_type(&t.name, &t.dims, scheme, n_layer, has_output);
        let data = file.tensor_data(t);
        report.bytes_in += data.len() as u64;
        let out =
            if to == t.ggml_type { data.to_vec() } else { convert(&pool, t.ggml_type, to, t.dims[0] as usize, data)? };
        report.bytes_out += out.len() as u64;
        w.add_tensor(&t.name, &t.dims, to, out)?;
        report.tensors.push(QuantizedTensor { name: t.name.clone(), from: t.ggml_type, to });
        progress(i + 1, total);
    }
    w.write_file(dst.as_ref())?;
    Ok(report)
}

/// Converts rows of `row` values from `from` to `to`, tasks of several rows on `pool`, each task with its own
/// f32 row buffer.
fn convert(pool: &ComputePool, from: GgmlType, to: GgmlType, row: usize, data: &[u8]) -> Result<Vec<u8>, Error> {
    let in_row = from.row_bytes(row as u64).expect("source rows are whole blocks") as usize;
    let out_row = to.row_bytes(row as u64).expect("target chosen for whole blocks") as usize;
    let n_rows = data.len() / in_row;
    let mut out = vec![0u8; n_rows * out_row];
    let rows_per_task = n_rows.div_ceil(pool.n_threads() * 8).max(1);
    let first_error = Mutex::new(None);
    pool.run(|par| {
        let tasks = (chunks_mut(&mut out, rows_per_task * out_row), chunks(data, rows_per_task * in_row));
        par.for_each(tasks, |_, (out, data)| {
            let mut buf = vec![0f32; row];
            let converted = out.chunks_mut(out_row).zip(data.chunks(in_row)).try_for_each(|(o, i)| {
                quant::dequantize_row(from, i, &mut buf)?;
                quant::quantize_row(to, &buf, o)
            });
            if let Err(e) = converted {
                first_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
            }
        })
    });
    match first_error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e.into()),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_type_choices() {
        let s = QuantScheme::Q4KM;
        assert_eq!(target_type("blk.0.attn_norm.weight", &[2048], s, 22, true), GgmlType::F32);
        assert_eq!(target_type("output.weight", &[2048, 32000], s, 22, true), GgmlType::Q6_K);
        assert_eq!(target_type("token_embd.weight", &[2048, 32000], s, 22, true), GgmlType::Q4_K);
        assert_eq!(
            target_type("token_embd.weight", &[576, 49152], QuantScheme::Uniform(GgmlType::Q4_0), 30, false),
            GgmlType::Q6_K.min_fallback(576)
        );
        assert_eq!(target_type("blk.0.attn_v.weight", &[2048, 256], s, 22, true), GgmlType::Q6_K);
        assert_eq!(target_type("blk.3.attn_v.weight", &[2048, 256], s, 22, true), GgmlType::Q4_K);
        assert_eq!(target_type("blk.4.ffn_down.weight", &[5632, 2048], s, 22, true), GgmlType::Q6_K);
        assert_eq!(target_type("blk.21.ffn_down.weight", &[5632, 2048], s, 22, true), GgmlType::Q6_K);
        assert_eq!(target_type("blk.3.attn_q.weight", &[576, 576], s, 30, false), GgmlType::Q5_0);
        assert_eq!(
            target_type("blk.3.attn_q.weight", &[2048, 2048], QuantScheme::Uniform(GgmlType::Q8_0), 22, true),
            GgmlType::Q8_0
        );
        assert!(QuantScheme::parse("q4_k_m").is_ok() && QuantScheme::parse("Q8_0").is_ok());
        assert!(QuantScheme::parse("q9_9").is_err() && QuantScheme::parse("Q8_K").is_err());
    }

    trait Fallback {
        fn min_fallback(self, row: u64) -> GgmlType;
    }
    impl Fallback for GgmlType {
        fn min_fallback(self, row: u64) -> GgmlType {
            fallback(self, row)
        }
    }
}
