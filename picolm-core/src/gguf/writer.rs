//! Writes GGUF v3 files: metadata pairs and tensors (used by the quantize command and by tests that craft files).

use std::io::Write;
use std::path::Path;

use super::error::GgufError;
use super::reader::{GgufFile, DEFAULT_ALIGNMENT};
use super::value::{type_id, MetaArray, MetaValue};
use crate::ggml_type::GgmlType;

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF v3 file in memory and writes it out.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// A writer that starts with every metadata pair of `file`, in order.
    pub fn from_metadata_of(file: &GgufFile) -> GgufWriter {
        GgufWriter { metadata: file.metadata().map(|(k, v)| (k.to_string(), v.clone())).collect(), tensors: Vec::new() }
    }

    /// Adds or replaces a metadata pair.
    pub fn add_metadata(&mut self, key: &str, value: MetaValue) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Removes a metadata pair if present.
    pub fn remove_metadata(&mut self, key: &str) {
        self.metadata.retain(|(k, _)| k != key);
    }

    /// Adds a tensor; `data` must hold exactly the bytes of `dims` elements of type `ty`.
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Result<(), GgufError> {
        let bad = |why: String| GgufError::BadTensorData { tensor: name.to_string(), why };
        if dims.is_empty() || dims.len() > 4 {
            return Err(bad(format!("{} dimensions", dims.len())));
        }
        let n: u64 =
            dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows".into()))?;
        let want = ty.row_bytes(n).ok_or_else(|| bad(format!("{n} elements are not whole {ty} blocks")))?;
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(bad(format!("row length {} is not a multiple of {}", dims[0], ty.block_size())));
        }
        if data.len() as u64 != want {
            return Err(bad(format!("{} data bytes, expected {want}", data.len())));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::DuplicateTensor(name.to_string()));
        }
        self.tensors.push(PendingTensor { name: name.to_string(), dims: dims.to_vec(), ty, data });
        Ok(())
    }

    fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, MetaValue::U32(a))) if *a > 0 && a.is_power_of_two() => *a as u64,
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Serialises the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            put_value(&mut out, v);
        }
        let align = self.alignment();
        let mut rel = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&rel.to_le_bytes());
            rel = (rel + t.data.len() as u64).div_ceil(align) * align;
        }
        pad(&mut out, align);
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            pad(&mut out, align);
        }
        out
    }

    /// Writes the file to a stream.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), GgufError> {
        w.write_all(&self.to_bytes())?;
        Ok(())
    }

    /// Writes the file to `path` (through a temporary file renamed into place, so a failure leaves no partial file).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let path = path.as_ref();
        let tmp = path.with_extension("gguf.part");
        let io = |source| GgufError::WriteFile { path: path.to_path_buf(), source };
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn pad(out: &mut Vec<u8>, align: u64) {
    let len = out.len() as u64;
    out.resize((len.div_ceil(align) * align) as usize, 0);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => type_id::U8,
        MetaValue::I8(_) => type_id::I8,
        MetaValue::U16(_) => type_id::U16,
        MetaValue::I16(_) => type_id::I16,
        MetaValue::U32(_) => type_id::U32,
        MetaValue::I32(_) => type_id::I32,
        MetaValue::F32(_) => type_id::F32,
        MetaValue::Bool(_) => type_id::BOOL,
        MetaValue::Str(_) => type_id::STRING,
        MetaValue::U64(_) => type_id::U64,
        MetaValue::I64(_) => type_id::I64,
        MetaValue::F64(_) => type_id::F64,
        MetaValue::Array(_) => type_id::ARRAY,
    }
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    out.extend_from_slice(&value_type(v).to_le_bytes());
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(*x as u8),
        MetaValue::Str(s) => put_str(out, s),
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &MetaArray) {
    macro_rules! elems {
        ($tid:expr, $v:expr, |$x:ident| $body:expr) => {{
            out.extend_from_slice(&$tid.to_le_bytes());
            out.extend_from_slice(&($v.len() as u64).to_le_bytes());
            for $x in $v {
                $body;
            }
        }};
    }
    match a {
        MetaArray::U8(v) => elems!(type_id::U8, v, |x| out.push(*x)),
        MetaArray::I8(v) => elems!(type_id::I8, v, |x| out.push(*x as u8)),
        MetaArray::U16(v) => elems!(type_id::U16, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I16(v) => elems!(type_id::I16, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::U32(v) => elems!(type_id::U32, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I32(v) => elems!(type_id::I32, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F32(v) => elems!(type_id::F32, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::Bool(v) => elems!(type_id::BOOL, v, |x| out.push(*x as u8)),
        MetaArray::Str(v) => elems!(type_id::STRING, v, |x| put_str(out, x)),
        MetaArray::U64(v) => elems!(type_id::U64, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::I64(v) => elems!(type_id::I64, v, |x| out.extend_from_slice(&x.to_le_bytes())),
        MetaArray::F64(v) => elems!(type_id::F64, v, |x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GgufWriter {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", MetaValue::Str("llama".into()));
        w.add_metadata("u8", MetaValue::U8(7));
        w.add_metadata("i8", MetaValue::I8(-7));
        w.add_metadata("u16", MetaValue::U16(700));
        w.add_metadata("i16", MetaValue::I16(-700));
        w.add_metadata("u32", MetaValue::U32(70000));
        w.add_metadata("i32", MetaValue::I32(-70000));
        w.add_metadata("f32", MetaValue::F32(1.5));
        w.add_metadata("bool", MetaValue::Bool(true));
        w.add_metadata("u64", MetaValue::U64(1 << 40));
        w.add_metadata("i64", MetaValue::I64(-(1 << 40)));
        w.add_metadata("f64", MetaValue::F64(2.25));
        w.add_metadata("strs", MetaValue::Array(MetaArray::Str(vec!["a".into(), "ü".into()])));
        w.add_metadata("f32s", MetaValue::Array(MetaArray::F32(vec![0.5, -1.0])));
        w.add_metadata("i32s", MetaValue::Array(MetaArray::I32(vec![1, -2, 3])));
        w.add_metadata("bools", MetaValue::Array(MetaArray::Bool(vec![true, false])));
        w.add_tensor("a", &[4, 2], GgmlType::F32, vec![0u8; 32]).unwrap();
        w.add_tensor("b", &[32], GgmlType::Q8_0, vec![1u8; 34]).unwrap();
        w
    }

    #[test]
    fn writer_reader_round_trip_every_value_type() {
        let w = sample();
        let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(f.metadata().count(), 16);
        for (k, v) in &w.metadata {
            assert_eq!(f.get(k), Some(v), "{k}");
        }
        assert_eq!(f.get_u32("u16").unwrap(), Some(700));
        assert!(matches!(f.get_u32("i32"), Err(GgufError::ValueOutOfRange { .. })));
        assert!(matches!(f.get_u32("u64"), Err(GgufError::ValueOutOfRange { .. })));
        assert_eq!(f.get_i64("i32").unwrap(), Some(-70000));
        assert_eq!(f.get_f32("f64").unwrap(), Some(2.25));
        assert!(matches!(f.get_str("u8"), Err(GgufError::WrongType { .. })));
        assert!(matches!(f.require_str("nope"), Err(GgufError::MissingKey(_))));
        assert_eq!(f.get_str_array("strs").unwrap().unwrap(), &["a".to_string(), "ü".to_string()]);
        let b = f.tensor("b").unwrap();
        assert_eq!(b.offset % 32, 0);
        assert_eq!(f.tensor_data(b), &[1u8; 34][..]);
        assert_eq!(f.tensor("a").unwrap().n_rows(), 2);
        assert!(matches!(f.require_tensor("c"), Err(GgufError::MissingTensor(_))));
    }

    #[test]
    fn a_failed_write_says_write() {
        let dst = std::env::temp_dir().join("picolm-no-such-dir-7f3a").join("out.gguf");
        let err = sample().write_file(&dst).unwrap_err();
        assert!(matches!(err, GgufError::WriteFile { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot write {}", dst.display())), "{err}");
    }

    #[test]
    fn writer_refuses_inconsistent_tensors() {
        let mut w = GgufWriter::new();
        assert!(w.add_tensor("x", &[33], GgmlType::Q4_0, vec![0; 18]).is_err());
        assert!(w.add_tensor("x", &[32], GgmlType::Q4_0, vec![0; 17]).is_err());
        assert!(w.add_tensor("x", &[], GgmlType::F32, vec![]).is_err());
        w.add_tensor("x", &[32], GgmlType::Q4_0, vec![0; 18]).unwrap();
        assert!(matches!(w.add_tensor("x", &[32], GgmlType::Q4_0, vec![0; 18]), Err(GgufError::DuplicateTensor(_))));
    }
}
