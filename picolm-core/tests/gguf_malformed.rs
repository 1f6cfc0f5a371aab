//! Crafted malformed GGUF files: one per error class of the reader, plus truncation at every length and random
//! byte mutations of a valid file, which must all give a typed error (or a valid parse), never a panic.
//! The files are made with the GGUF writer, which is part of the `quantize` feature.
#![cfg(feature = "quantize")]

use picolm_core::gguf::{GgufError, GgufFile, GgufWriter, MetaArray, MetaValue};
use picolm_core::GgmlType;

/// Little-endian GGUF bytes built field by field.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s);
        self
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad_to(&mut self, align: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        let r = GgufFile::from_bytes(self.0.clone());
        assert_same_as_streamed(&self.0, &r);
        r
    }
}

/// Opening the bytes as a file for streaming (header read with pread) gives the same verdict and message.
fn assert_same_as_streamed(bytes: &[u8], from_bytes: &Result<GgufFile, GgufError>) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let streamed = GgufFile::open_streamed(f.path());
    match (from_bytes, &streamed) {
        (Ok(a), Ok(b)) => {
            assert!(b.is_streamed());
            assert_eq!((a.len(), a.data_offset(), a.tensors()), (b.len(), b.data_offset(), b.tensors()));
            assert_eq!(&a.file_bytes()[..a.data_offset().min(a.len()) as usize], b.file_bytes());
            for t in a.tensors() {
                assert_eq!(a.read_tensor(t).unwrap(), b.read_tensor(t).unwrap());
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("from bytes: {:?}, streamed: {:?}", a.as_ref().err(), b.as_ref().err()),
    }
}

fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::Str("llama".into()));
    w.add_metadata(
        "tokenizer.ggml.tokens",
        MetaValue::Array(MetaArray::Str(vec!["a".into(), "b".into(), "ab".into()])),
    );
    w.add_metadata("llama.block_count", MetaValue::U32(1));
    w.add_tensor("t0", &[32, 2], GgmlType::Q8_0, vec![3u8; 68]).unwrap();
    w.add_tensor("t1", &[8], GgmlType::F32, vec![0u8; 32]).unwrap();
    w.to_bytes()
}

#[test]
fn bad_magic() {
    let mut r = Raw::header(3, 0, 0);
    r.0[0] = b'X';
    assert!(matches!(r.parse(), Err(GgufError::BadMagic { .. })));
}

#[test]
fn unsupported_versions_including_v1_and_big_endian() {
    for v in [0u32, 1, 4, 99] {
        assert!(
            matches!(Raw::header(v, 0, 0).parse(), Err(GgufError::UnsupportedVersion { version, .. }) if version == v)
        );
    }
    let err = Raw::header(3u32.swap_bytes(), 0, 0).parse().unwrap_err();
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn truncated_header_and_values() {
    assert!(matches!(GgufFile::from_bytes(b"GGU".to_vec()), Err(GgufError::Truncated { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"key").u32(4); // value missing
    assert!(matches!(r.parse(), Err(GgufError::Truncated { .. })));
}

#[test]
fn counts_and_lengths_beyond_the_file_are_refused_before_allocating() {
    assert!(matches!(Raw::header(3, u64::MAX, 0).parse(), Err(GgufError::CountTooLarge { .. })));
    assert!(matches!(Raw::header(3, 0, u64::MAX / 2).parse(), Err(GgufError::CountTooLarge { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX); // key length
    assert!(matches!(r.parse(), Err(GgufError::CountTooLarge { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"arr").u32(9).u32(6).u64(1 << 60); // array of 2^60 f32
    assert!(matches!(r.parse(), Err(GgufError::CountTooLarge { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"arr").u32(9).u32(8).u64(1 << 40); // array of 2^40 strings
    assert!(matches!(r.parse(), Err(GgufError::CountTooLarge { .. })));
}

#[test]
fn too_many_dimensions() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1, 1, 1, 1, 1], 0, 0);
    assert!(matches!(r.parse(), Err(GgufError::BadDimensionCount { n_dims: 5, .. })));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[], 0, 0);
    assert!(matches!(r.parse(), Err(GgufError::BadDimensionCount { n_dims: 0, .. })));
}

#[test]
fn shape_products_that_overflow() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 32, 1 << 32, 4], 0, 0);
    assert!(matches!(r.parse(), Err(GgufError::ShapeOverflow { .. })));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 62, 2], 0, 0); // fits u64 but exceeds i64::MAX like ggml refuses
    assert!(matches!(r.parse(), Err(GgufError::ShapeOverflow { .. })));
}

#[test]
fn unknown_tensor_and_value_types() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[32], 4, 0); // removed Q4_2
    assert!(matches!(r.parse(), Err(GgufError::UnknownType { type_id: 4, .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    assert!(matches!(r.parse(), Err(GgufError::UnknownValueType { type_id: 13, .. })));
}

#[test]
fn row_not_a_block_multiple() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[33, 2], GgmlType::Q4_0.id(), 0);
    assert!(matches!(r.parse(), Err(GgufError::RowNotBlockMultiple { .. })));
}

#[test]
fn bad_alignment_values() {
    for a in [0u32, 3, 48] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", a);
        assert!(matches!(r.parse(), Err(GgufError::BadAlignment(_))), "alignment {a}");
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").u32(8).str(b"32"); // wrong type
    assert!(matches!(r.parse(), Err(GgufError::BadAlignment(_))));
}

#[test]
fn tensor_data_outside_the_file() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, 0).pad_to(32).zeros(16); // needs 32 bytes, has 16
    assert!(matches!(r.parse(), Err(GgufError::TensorOutOfBounds { .. })));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, u64::MAX - 31).pad_to(32); // offset overflow (aligned)
    assert!(matches!(r.parse(), Err(GgufError::TensorOutOfBounds { .. })));
}

#[test]
fn misaligned_tensor_offsets() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[8], 0, 4).pad_to(32).zeros(64);
    assert!(matches!(r.parse(), Err(GgufError::MisalignedTensor { offset: 4, alignment: 32, .. })));
}

#[test]
fn nested_arrays() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"nested").u32(9).u32(9).u64(1);
    assert!(matches!(r.parse(), Err(GgufError::NestedArray { .. })));
}

#[test]
fn invalid_bool_and_utf8() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"flag").u32(7);
    r.0.push(2);
    assert!(matches!(r.parse(), Err(GgufError::BadBool { value: 2, .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"\xff\xfe").u32(4).u32(1);
    assert!(matches!(r.parse(), Err(GgufError::InvalidUtf8 { .. })));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"s").u32(8).str(b"bad \xc3");
    assert!(matches!(r.parse(), Err(GgufError::InvalidUtf8 { .. })));
}

#[test]
fn duplicate_keys_and_tensors() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("k", 1).kv_u32("k", 2);
    assert!(matches!(r.parse(), Err(GgufError::DuplicateKey(_))));
    let mut r = Raw::header(3, 2, 0);
    r.tensor("t", &[8], 0, 0).tensor("t", &[8], 0, 32).pad_to(32).zeros(64);
    assert!(matches!(r.parse(), Err(GgufError::DuplicateTensor(_))));
}

#[test]
fn missing_keys_and_wrong_types_through_the_typed_getters() {
    let f = GgufFile::from_bytes(valid_file()).unwrap();
    assert!(
        matches!(f.require_u32("llama.embedding_length"), Err(GgufError::MissingKey(k)) if k == "llama.embedding_length")
    );
    assert!(matches!(
        f.require_str("llama.block_count"),
        Err(GgufError::WrongType { expected: "string", found: "u32", .. })
    ));
    assert!(matches!(f.get_f32_array("tokenizer.ggml.tokens"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.require_tensor("nope"), Err(GgufError::MissingTensor(_))));
}

#[test]
fn model_and_tokenizer_loading_report_typed_errors() {
    use picolm_core::model::{Model, ModelError, ModelParams};
    // Unknown architecture.
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::Str("mamba".into()));
    let err = Model::from_gguf(GgufFile::from_bytes(w.to_bytes()).unwrap(), &ModelParams::default()).unwrap_err();
    assert!(matches!(err, ModelError::UnsupportedArchitecture(ref a) if a == "mamba"), "{err}");
    // Special token id outside the vocabulary.
    let mut w = GgufWriter::new();
    w.add_metadata("tokenizer.ggml.model", MetaValue::Str("gpt2".into()));
    w.add_metadata("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(vec!["a".into(), "b".into()])));
    w.add_metadata("tokenizer.ggml.eos_token_id", MetaValue::U32(7));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let err = picolm_core::tokenizer::Tokenizer::from_gguf(&f).unwrap_err();
    assert!(err.to_string().contains("eos_token_id = 7"), "{err}");
}

#[test]
fn every_truncation_of_a_valid_file_is_an_error_not_a_panic() {
    let bytes = valid_file();
    assert!(GgufFile::from_bytes(bytes.clone()).is_ok());
    for len in 0..bytes.len() {
        let r = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(r.is_err(), "truncated to {len} bytes parsed");
        if len > 0 {
            assert_same_as_streamed(&bytes[..len], &r);
        }
    }
    assert_same_as_streamed(&bytes, &GgufFile::from_bytes(bytes.clone()));
}

#[test]
fn random_byte_mutations_never_panic() {
    let bytes = valid_file();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut errors = 0;
    for _ in 0..5000 {
        let mut m = bytes.clone();
        for _ in 0..(1 + next() % 4) {
            let i = (next() % m.len() as u64) as usize;
            m[i] = next() as u8;
        }
        if let Ok(f) = GgufFile::from_bytes(m) {
            for t in f.tensors() {
                assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
            }
        } else {
            errors += 1;
        }
    }
    assert!(errors > 100, "mutations should mostly be caught ({errors})");
}

#[test]
fn paths_that_are_not_gguf_files() {
    let err = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(matches!(err, GgufError::Io { .. }) && err.to_string().contains("/nonexistent/model.gguf"), "{err}");
    assert!(matches!(GgufFile::open(std::env::temp_dir()), Err(GgufError::NotAFile { .. })));
    let empty = std::env::temp_dir().join(format!("picolm-empty-{}.gguf", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(GgufFile::open(&empty), Err(GgufError::Truncated { .. })));
    std::fs::remove_file(&empty).unwrap();
}
