//! Metadata values of a GGUF file.

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// `u8` (type id 0).
    U8(u8),
    /// `i8` (1).
    I8(i8),
    /// `u16` (2).
    U16(u16),
    /// `i16` (3).
    I16(i16),
    /// `u32` (4).
    U32(u32),
    /// `i32` (5).
    I32(i32),
    /// `f32` (6).
    F32(f32),
    /// `bool` (7).
    Bool(bool),
    /// UTF-8 string (8).
    Str(String),
    /// `u64` (10).
    U64(u64),
    /// `i64` (11).
    I64(i64),
    /// `f64` (12).
    F64(f64),
    /// Array of scalars or strings (9).
    Array(MetaArray),
}

/// A homogeneous metadata array (arrays of arrays are refused by the reader).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    /// `u8` elements.
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `u16` elements.
    U16(Vec<u16>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `u32` elements.
    U32(Vec<u32>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// String elements.
    Str(Vec<String>),
    /// `u64` elements.
    U64(Vec<u64>),
    /// `i64` elements.
    I64(Vec<i64>),
    /// `f64` elements.
    F64(Vec<f64>),
}

/// GGUF value type ids.
pub(crate) mod type_id {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

impl MetaValue {
    /// The GGUF name of the value's type (`"u32"`, `"string"`, `"array<f32>"`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::Str(_) => "string",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
            MetaValue::Array(a) => a.type_name(),
        }
    }

    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v as i64),
            MetaValue::I16(v) => Some(v as i64),
            MetaValue::I32(v) => Some(v as i64),
            MetaValue::I64(v) => Some(v),
            MetaValue::U8(v) => Some(v as i64),
            MetaValue::U16(v) => Some(v as i64),
            MetaValue::U32(v) => Some(v as i64),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Whether the value is an integer of any width.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            MetaValue::U8(_)
                | MetaValue::I8(_)
                | MetaValue::U16(_)
                | MetaValue::I16(_)
                | MetaValue::U32(_)
                | MetaValue::I32(_)
                | MetaValue::U64(_)
                | MetaValue::I64(_)
        )
    }

    /// The value as a float, when it is `f32` or `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A short human-readable rendering (arrays summarised by type and length).
    pub fn display_short(&self) -> String {
        match self {
            MetaValue::Str(s) => s.clone(),
            MetaValue::Array(a) => format!("{}[{}]", a.type_name(), a.len()),
            MetaValue::Bool(b) => b.to_string(),
            MetaValue::F32(v) => v.to_string(),
            MetaValue::F64(v) => v.to_string(),
            other => other
                .as_i64()
                .map(|v| v.to_string())
                .or_else(|| other.as_u64().map(|v| v.to_string()))
                .unwrap_or_default(),
        }
    }
}

impl MetaArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::Str(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the array type (`"array<string>"`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaArray::U8(_) => "array<u8>",
            MetaArray::I8(_) => "array<i8>",
            MetaArray::U16(_) => "array<u16>",
            MetaArray::I16(_) => "array<i16>",
            MetaArray::U32(_) => "array<u32>",
            MetaArray::I32(_) => "array<i32>",
            MetaArray::F32(_) => "array<f32>",
            MetaArray::Bool(_) => "array<bool>",
            MetaArray::Str(_) => "array<string>",
            MetaArray::U64(_) => "array<u64>",
            MetaArray::I64(_) => "array<i64>",
            MetaArray::F64(_) => "array<f64>",
        }
    }
}
