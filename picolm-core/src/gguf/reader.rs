//! The validating GGUF v2/v3 parser and the [`GgufFile`] view: zero-copy over a memory map, or (streaming mode)
//! holding only the header in memory and reading tensor data on demand with `pread`.
//!
//! Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count, the metadata key/value pairs, the
//! tensor infos (name, u32 n_dims, u64 dims, u32 type, u64 offset relative to the data section), padding to the
//! alignment, then the tensor data. Every count and length is checked against the bytes left before anything is
//! allocated, so no input can make the parser allocate more than the file's own size or panic.

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;

use super::data_file::DataFile;
use super::error::GgufError;
use super::value::{type_id, MetaArray, MetaValue};
use crate::fs_safety::{open_regular, FileError};
use crate::ggml_type::GgmlType;

/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Where and what a tensor is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Absolute file offset of the first data byte.
    pub offset: u64,
    /// Data size in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row length (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of `dims[1..]`, 1 for a vector).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

enum Backing {
    /// The whole file, memory-mapped.
    Mapped(Mmap),
    /// The whole file, in memory (parsed from bytes).
    Owned(Vec<u8>),
    /// Only the header `[0, data_offset)`; the tensor data stays on disk (streaming mode).
    Header(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) | Backing::Header(v) => v,
        }
    }
}

/// Bytes of the file read at a time while looking for the end of the header in streaming mode.
/// Most items reserved up front from a count read from the file. A count that passed the bytes-left check can
/// still be several times the file in memory (each item is a `String` or a metadata value), so lists grow from
/// here as items are actually parsed instead of trusting the count.
const MAX_PREALLOC: usize = 4096;

const HEADER_READ_STEP: u64 = 1 << 20;

/// The parsed header of a GGUF file.
struct Header {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// Why parsing a prefix of the file stopped.
enum ParseStop {
    /// The file is invalid.
    Invalid(GgufError),
    /// The header continues past the prefix: this many bytes from the start are needed.
    NeedPrefix(u64),
}

/// An opened, fully validated GGUF file. `Send + Sync`; tensor data is borrowed from the mapping, or read on
/// demand ([`GgufFile::read_at`]) when the file was opened for streaming.
pub struct GgufFile {
    backing: Backing,
    data: Option<DataFile>,
    file_len: u64,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetaValue)>,
    meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("len", &self.len())
            .finish()
    }
}

/// A bounds-checked little-endian reader over a prefix (`bytes`) of a file of `file_len` bytes. Lengths and counts
/// are checked against the whole file; a read that is inside the file but past the prefix records in `short` how
/// much prefix it needs and fails (the caller reads more and parses again).
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file_len: u64,
    short: Option<u64>,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        self.file_len - self.pos as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available: self.remaining(),
            });
        }
        let end = self.pos as u64 + n;
        if end > self.bytes.len() as u64 {
            self.short = Some(end);
            return Err(GgufError::Truncated {
                what: format!("{} (past the {} bytes read so far)", what(), self.bytes.len()),
                offset: self.pos as u64,
                needed: n,
                available: self.bytes.len() as u64 - self.pos as u64,
            });
        }
        let s = &self.bytes[self.pos..end as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Checks that `count` items of at least `min_size` bytes each can still fit.
    fn check_count(&self, count: u64, min_size: u64, what: &dyn Fn() -> String) -> Result<(), GgufError> {
        if count.checked_mul(min_size).is_none_or(|need| need > self.remaining()) {
            return Err(GgufError::CountTooLarge {
                what: what(),
                count,
                remaining: self.remaining(),
                offset: self.pos as u64,
            });
        }
        Ok(())
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        self.check_count(len, 1, &|| format!("string {}", what()))?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }
}

fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        type_id::U8 | type_id::I8 | type_id::BOOL => 1,
        type_id::U16 | type_id::I16 => 2,
        type_id::U32 | type_id::I32 | type_id::F32 => 4,
        type_id::U64 | type_id::I64 | type_id::F64 => 8,
        type_id::STRING => 8, // at least the length prefix
        _ => return None,
    })
}

fn read_bool(c: &mut Cursor<'_>, key: &str) -> Result<bool, GgufError> {
    let b = c.array::<1>(&|| format!("bool value of {key:?}"))?[0];
    match b {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(GgufError::BadBool { key: key.to_string(), value: v }),
    }
}

fn read_scalar(c: &mut Cursor<'_>, t: u32, key: &str) -> Result<MetaValue, GgufError> {
    let what = || format!("value of {key:?}");
    Ok(match t {
        type_id::U8 => MetaValue::U8(c.array::<1>(&what)?[0]),
        type_id::I8 => MetaValue::I8(c.array::<1>(&what)?[0] as i8),
        type_id::U16 => MetaValue::U16(u16::from_le_bytes(c.array(&what)?)),
        type_id::I16 => MetaValue::I16(i16::from_le_bytes(c.array(&what)?)),
        type_id::U32 => MetaValue::U32(u32::from_le_bytes(c.array(&what)?)),
        type_id::I32 => MetaValue::I32(i32::from_le_bytes(c.array(&what)?)),
        type_id::F32 => MetaValue::F32(f32::from_le_bytes(c.array(&what)?)),
        type_id::BOOL => MetaValue::Bool(read_bool(c, key)?),
        type_id::STRING => MetaValue::Str(c.string(&what)?),
        type_id::U64 => MetaValue::U64(u64::from_le_bytes(c.array(&what)?)),
        type_id::I64 => MetaValue::I64(i64::from_le_bytes(c.array(&what)?)),
        type_id::F64 => MetaValue::F64(f64::from_le_bytes(c.array(&what)?)),
        other => return Err(GgufError::UnknownValueType { key: key.to_string(), type_id: other }),
    })
}

fn read_array(c: &mut Cursor<'_>, key: &str) -> Result<MetaArray, GgufError> {
    let et = c.u32(&|| format!("array element type of {key:?}"))?;
    if et == type_id::ARRAY {
        return Err(GgufError::NestedArray { key: key.to_string() });
    }
    let size = scalar_size(et).ok_or(GgufError::UnknownValueType { key: key.to_string(), type_id: et })?;
    let n = c.u64(&|| format!("array length of {key:?}"))?;
    c.check_count(n, size, &|| format!("array {key:?}"))?;
    let n = n as usize;
    macro_rules! fixed {
        ($variant:ident, $ty:ty, $len:expr) => {{
            let raw = c.take((n * $len) as u64, &|| format!("array {key:?}"))?;
            MetaArray::$variant(raw.chunks_exact($len).map(|b| <$ty>::from_le_bytes(b.try_into().unwrap())).collect())
        }};
    }
    Ok(match et {
        type_id::U8 => MetaArray::U8(c.take(n as u64, &|| format!("array {key:?}"))?.to_vec()),
        type_id::I8 => {
            MetaArray::I8(c.take(n as u64, &|| format!("array {key:?}"))?.iter().map(|&b| b as i8).collect())
        }
        type_id::U16 => fixed!(U16, u16, 2),
        type_id::I16 => fixed!(I16, i16, 2),
        type_id::U32 => fixed!(U32, u32, 4),
        type_id::I32 => fixed!(I32, i32, 4),
        type_id::F32 => fixed!(F32, f32, 4),
        type_id::U64 => fixed!(U64, u64, 8),
        type_id::I64 => fixed!(I64, i64, 8),
        type_id::F64 => fixed!(F64, f64, 8),
        type_id::BOOL => {
            let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
            for _ in 0..n {
                v.push(read_bool(c, key)?);
            }
            MetaArray::Bool(v)
        }
        type_id::STRING => {
            let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
            for i in 0..n {
                v.push(c.string(&|| format!("element {i} of {key:?}"))?);
            }
            MetaArray::Str(v)
        }
        _ => unreachable!("scalar_size accepted only known types"),
    })
}

/// Opens a model file for reading: only regular files, refused without blocking otherwise (a FIFO would block
/// `open` forever).
fn open_model_file(path: &Path) -> Result<std::fs::File, GgufError> {
    open_regular(path).map_err(|e| match e {
        FileError::NotRegular { path, kind } => GgufError::NotAFile { path, kind },
        FileError::Open { path, source } | FileError::Write { path, source } => GgufError::Io { path, source },
        other => GgufError::Io { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    })
}

impl GgufFile {
    /// Opens and validates a GGUF file through a read-only memory map.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = open_model_file(path)?;
        let meta = file.metadata().map_err(io)?;
        if meta.len() == 0 {
            return GgufFile::parse(Backing::Owned(Vec::new()), None);
        }
        // SAFETY: the map is read-only and private to this process. Like every mmap-based model loader, we rely on
        // the file not being truncated while it is open (documented on `Model::load`).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let data = DataFile::new(file, path, map.len() as u64);
        GgufFile::parse(Backing::Mapped(map), Some(data))
    }

    /// Opens and validates a GGUF file for streaming: only the header (metadata and tensor table) is read, with
    /// `pread`, a megabyte at a time; the file is not mapped and no tensor data is touched. Tensor bytes are then
    /// read with [`GgufFile::read_at`] into the caller's buffers.
    pub fn open_streamed(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = open_model_file(path)?;
        let len = file.metadata().map_err(io)?.len();
        let data = DataFile::new(file, path, len);
        data.advise_random();
        let mut head = Vec::new();
        let mut want = len.min(HEADER_READ_STEP);
        loop {
            let have = head.len();
            head.resize(want as usize, 0);
            data.read_at(have as u64, &mut head[have..])?;
            match parse_header(&head, len) {
                Ok(h) => {
                    head.truncate((h.data_offset.min(len)) as usize);
                    head.shrink_to_fit();
                    return Ok(GgufFile::with_header(Backing::Header(head), Some(data), len, h));
                }
                Err(ParseStop::Invalid(e)) => return Err(e),
                Err(ParseStop::NeedPrefix(n)) => want = n.max(want.saturating_mul(2)).min(len),
            }
        }
    }

    /// Parses and validates GGUF bytes held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::parse(Backing::Owned(bytes), None)
    }

    /// Switches a file opened from disk to streaming: the mapping is released and only a copy of the header is
    /// kept. A file that is already streamed, or that is held in memory ([`GgufFile::from_bytes`]), is returned
    /// unchanged (see [`GgufFile::is_streamed`]).
    pub fn into_streamed(self) -> GgufFile {
        match (self.backing, self.data) {
            (Backing::Mapped(map), Some(data)) => {
                let end = (self.data_offset.min(self.file_len)) as usize;
                let head = map[..end].to_vec();
                drop(map);
                data.advise_random();
                GgufFile { backing: Backing::Header(head), data: Some(data), ..self }
            }
            (backing, data) => GgufFile { backing, data, ..self },
        }
    }

    /// Maps a streamed file (the whole file becomes addressable through [`GgufFile::file_bytes`]); other files are
    /// returned unchanged. Fails when the file cannot be mapped or changed size since it was opened.
    pub fn into_mapped(self) -> Result<GgufFile, GgufError> {
        match (&self.backing, &self.data) {
            (Backing::Header(_), Some(data)) if self.file_len > 0 => {
                let io = |source| GgufError::Io { path: data.path().to_path_buf(), source };
                // SAFETY: as in `open`: a read-only private map of a file we rely on not being truncated.
                let map = unsafe { Mmap::map(data.file()) }.map_err(io)?;
                if map.len() as u64 != self.file_len {
                    return Err(GgufError::SizeChanged {
                        path: data.path().to_path_buf(),
                        opened: self.file_len,
                        now: map.len() as u64,
                    });
                }
                Ok(GgufFile { backing: Backing::Mapped(map), ..self })
            }
            _ => Ok(self),
        }
    }

    fn with_header(backing: Backing, data: Option<DataFile>, file_len: u64, h: Header) -> GgufFile {
        GgufFile {
            backing,
            data,
            file_len,
            version: h.version,
            alignment: h.alignment,
            data_offset: h.data_offset,
            metadata: h.metadata,
            meta_index: h.meta_index,
            tensors: h.tensors,
            tensor_index: h.tensor_index,
        }
    }

    fn parse(backing: Backing, data: Option<DataFile>) -> Result<GgufFile, GgufError> {
        let bytes = backing.bytes();
        let file_len = bytes.len() as u64;
        let header = match parse_header(bytes, file_len) {
            Ok(h) => h,
            Err(ParseStop::Invalid(e)) => return Err(e),
            // Cannot happen (the prefix is the whole file), but must not panic either.
            Err(ParseStop::NeedPrefix(n)) => {
                return Err(GgufError::Truncated { what: "header".into(), offset: 0, needed: n, available: file_len })
            }
        };
        Ok(GgufFile::with_header(backing, data, file_len, header))
    }
}

/// Parses the header from `bytes`, the first bytes of a file of `file_len` bytes.
fn parse_header(bytes: &[u8], file_len: u64) -> Result<Header, ParseStop> {
    let mut c = Cursor { bytes, pos: 0, file_len, short: None };
    match parse_header_from(&mut c, file_len) {
        Ok(h) => Ok(h),
        Err(e) => Err(match c.short {
            Some(n) => ParseStop::NeedPrefix(n),
            None => ParseStop::Invalid(e),
        }),
    }
}

fn parse_header_from(c: &mut Cursor<'_>, file_len: u64) -> Result<Header, GgufError> {
    let magic: [u8; 4] = c.array(&|| "magic".into())?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        let hint = if matches!(version.swap_bytes(), 2 | 3) {
            " (the file looks big-endian; only little-endian GGUF is supported)"
        } else if version == 1 {
            " (GGUF v1 is obsolete; re-convert the model)"
        } else {
            ""
        };
        return Err(GgufError::UnsupportedVersion { version, hint });
    }
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv = c.u64(&|| "metadata count".into())?;
    // Each KV pair takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 (name length)
    // + 4 (n_dims) + 4 (type) + 8 (offset).
    c.check_count(n_kv, 13, &|| "metadata".into())?;
    c.check_count(n_tensors, 24, &|| "tensor infos".into())?;

    let mut metadata = Vec::with_capacity((n_kv as usize).min(MAX_PREALLOC));
    let mut meta_index = HashMap::with_capacity((n_kv as usize).min(MAX_PREALLOC));
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let t = c.u32(&|| format!("value type of {key:?}"))?;
        let value = if t == type_id::ARRAY { MetaValue::Array(read_array(c, &key)?) } else { read_scalar(c, t, &key)? };
        if meta_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(GgufError::DuplicateKey(key));
        }
        metadata.push((key, value));
    }

    let alignment = match meta_index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U32(a)) if *a != 0 && a.is_power_of_two() => *a as u64,
        Some(other) => {
            return Err(GgufError::BadAlignment(format!("{} ({})", other.display_short(), other.type_name())))
        }
    };

    struct Raw {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
        rel: u64,
        n_bytes: u64,
    }
    let mut raws = Vec::with_capacity((n_tensors as usize).min(MAX_PREALLOC));
    let mut tensor_index = HashMap::with_capacity((n_tensors as usize).min(MAX_PREALLOC));
    for i in 0..n_tensors {
        let name = c.string(&|| format!("name of tensor #{i}"))?;
        let n_dims = c.u32(&|| format!("dimension count of {name:?}"))?;
        if n_dims == 0 || n_dims > 4 {
            return Err(GgufError::BadDimensionCount { tensor: name, n_dims });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d} of {name:?}"))?);
        }
        let tid = c.u32(&|| format!("type of {name:?}"))?;
        let rel = c.u64(&|| format!("offset of {name:?}"))?;
        let ty = GgmlType::from_id(tid).ok_or_else(|| GgufError::UnknownType { tensor: name.clone(), type_id: tid })?;
        let n_elem = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| GgufError::ShapeOverflow { tensor: name.clone(), dims: dims.clone() })?;
        let row_len = dims[0];
        if row_len % ty.block_size() as u64 != 0 {
            return Err(GgufError::RowNotBlockMultiple {
                tensor: name,
                row_len,
                ty: ty.name(),
                block: ty.block_size(),
            });
        }
        let n_bytes = ty
            .row_bytes(n_elem)
            .ok_or_else(|| GgufError::ShapeOverflow { tensor: name.clone(), dims: dims.clone() })?;
        if rel % alignment != 0 {
            return Err(GgufError::MisalignedTensor { tensor: name, offset: rel, alignment });
        }
        if tensor_index.insert(name.clone(), raws.len()).is_some() {
            return Err(GgufError::DuplicateTensor(name));
        }
        raws.push(Raw { name, dims, ty, rel, n_bytes });
    }

    let header_end = c.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment;
    if n_tensors > 0 && data_offset > file_len {
        return Err(GgufError::Truncated {
            what: "padding before the tensor data".into(),
            offset: header_end,
            needed: data_offset - header_end,
            available: file_len - header_end,
        });
    }
    let mut tensors = Vec::with_capacity(raws.len());
    for r in raws {
        let offset = data_offset.checked_add(r.rel);
        let end = offset.and_then(|o| o.checked_add(r.n_bytes));
        match (offset, end) {
            (Some(offset), Some(end)) if end <= file_len => {
                tensors.push(TensorInfo { name: r.name, dims: r.dims, ggml_type: r.ty, offset, n_bytes: r.n_bytes })
            }
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: r.name,
                    offset: data_offset.saturating_add(r.rel),
                    size: r.n_bytes,
                    file_len,
                })
            }
        }
    }
    Ok(Header { version, alignment, data_offset, metadata, meta_index, tensors, tensor_index })
}

impl GgufFile {
    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file bytes in memory: the whole file when it is mapped or parsed from bytes; only the header
    /// `[0, data_offset)` when it was opened for streaming (see [`GgufFile::is_streamed`]; read tensor data with
    /// [`GgufFile::read_at`] then), nothing after [`GgufFile::release_header`].
    pub fn file_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// File length in bytes.
    pub fn len(&self) -> u64 {
        self.file_len
    }

    /// Frees the copy of the header bytes of a streamed file (about 1.7 MiB for a 49k-token vocabulary): the parsed
    /// metadata and tensor infos stay, but [`GgufFile::file_bytes`] is empty afterwards. Model loading calls it once
    /// the header has been fingerprinted; other files are left unchanged.
    pub fn release_header(&mut self) {
        if let Backing::Header(head) = &mut self.backing {
            *head = Vec::new();
        }
    }

    /// Whether only the header is in memory and tensor data must be read with [`GgufFile::read_at`].
    pub fn is_streamed(&self) -> bool {
        matches!(self.backing, Backing::Header(_))
    }

    /// The file on disk (shared handle for positional reads from other threads); `None` for bytes parsed from
    /// memory.
    pub fn data_file(&self) -> Option<&DataFile> {
        self.data.as_ref()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`, from memory or (streaming mode) from the file with `pread`.
    /// A range outside the file is a [`GgufError::Read`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        match (&self.backing, &self.data) {
            (Backing::Header(_), Some(data)) => data.read_at(offset, buf),
            (backing, data) => {
                let bytes = backing.bytes();
                let src = usize::try_from(offset)
                    .ok()
                    .and_then(|o| o.checked_add(buf.len()).map(|e| (o, e)))
                    .and_then(|(o, e)| bytes.get(o..e));
                match src {
                    Some(src) => {
                        buf.copy_from_slice(src);
                        Ok(())
                    }
                    None => Err(GgufError::Read {
                        path: data.as_ref().map_or_else(|| "<in-memory GGUF>".into(), |d| d.path().to_path_buf()),
                        offset,
                        len: buf.len() as u64,
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("the range ends past the end of the file ({} bytes)", bytes.len()),
                        ),
                    }),
                }
            }
        }
    }

    /// A copy of a tensor's data, read like [`GgufFile::read_at`] (works in every mode).
    pub fn read_tensor(&self, t: &TensorInfo) -> Result<Vec<u8>, GgufError> {
        let n = usize::try_from(t.n_bytes).map_err(|_| GgufError::Read {
            path: self.data.as_ref().map_or_else(|| "<in-memory GGUF>".into(), |d| d.path().to_path_buf()),
            offset: t.offset,
            len: t.n_bytes,
            source: std::io::Error::other("the tensor is larger than the address space"),
        })?;
        let mut out = vec![0u8; n];
        self.read_at(t.offset, &mut out)?;
        Ok(out)
    }

    /// Whether the file is empty (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Metadata pairs in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn wrong(key: &str, expected: &'static str, v: &MetaValue) -> GgufError {
        GgufError::WrongType { key: key.to_string(), expected, found: v.type_name() }
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, name: &'static str) -> Result<Option<T>, GgufError> {
        let Some(v) = self.get(key) else { return Ok(None) };
        if !v.is_integer() {
            return Err(Self::wrong(key, name, v));
        }
        let wide: i128 = v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)).unwrap_or_default();
        T::try_from(wide).map(Some).map_err(|_| GgufError::ValueOutOfRange {
            key: key.to_string(),
            value: wide.to_string(),
            expected: name,
        })
    }

    /// An integer value that fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.get_int(key, "u32")
    }

    /// An integer value that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get_int(key, "u64")
    }

    /// An integer value that fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.get_int(key, "i64")
    }

    /// A float value (`f32`, or `f64` narrowed).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(|f| Some(f as f32)).ok_or_else(|| Self::wrong(key, "f32", v)),
        }
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| Self::wrong(key, "bool", v)),
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| Self::wrong(key, "string", v)),
        }
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Result<Option<&MetaArray>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(a)) => Ok(Some(a)),
            Some(v) => Err(Self::wrong(key, "array", v)),
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(MetaArray::Str(a))) => Ok(Some(a)),
            Some(v) => Err(Self::wrong(key, "array<string>", v)),
        }
    }

    /// An array of `f32`.
    pub fn get_f32_array(&self, key: &str) -> Result<Option<&[f32]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(MetaArray::F32(a))) => Ok(Some(a)),
            Some(v) => Err(Self::wrong(key, "array<f32>", v)),
        }
    }

    /// An array of `i32`.
    pub fn get_i32_array(&self, key: &str) -> Result<Option<&[i32]>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(MetaValue::Array(MetaArray::I32(a))) => Ok(Some(a)),
            Some(v) => Err(Self::wrong(key, "array<i32>", v)),
        }
    }

    /// Like [`GgufFile::get_u32`], but absent is an error.
    pub fn require_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.get_u32(key)?.ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    /// Like [`GgufFile::get_f32`], but absent is an error.
    pub fn require_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.get_f32(key)?.ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    /// Like [`GgufFile::get_str`], but absent is an error.
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get_str(key)?.ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    /// Like [`GgufFile::get_str_array`], but absent is an error.
    pub fn require_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        self.get_str_array(key)?.ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    /// `general.architecture` (required).
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.require_str("general.architecture")
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor by name; absent is an error.
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor(name.to_string()))
    }

    /// The data of a tensor of this file (bounds were validated at open; an info from another file yields an
    /// empty slice rather than a panic when out of range). A streamed file has no tensor data in memory: this is
    /// then empty; use [`GgufFile::read_tensor`].
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let (start, end) = (t.offset as usize, (t.offset + t.n_bytes) as usize);
        self.file_bytes().get(start..end).unwrap_or(&[])
    }

    fn advise(&self, offset: u64, len: u64, advice: memmap2::Advice) {
        if let Backing::Mapped(m) = &self.backing {
            let page = 4096u64;
            let start = offset / page * page;
            let end = offset.saturating_add(len).min(m.len() as u64);
            if end > start {
                // Advice is a hint: failure only costs speed or memory, never correctness.
                let _ = m.advise_range(advice, start as usize, (end - start) as usize);
            }
        }
    }

    /// Hints that a byte range will be read soon (asynchronous read-ahead).
    pub fn advise_willneed(&self, offset: u64, len: u64) {
        self.advise(offset, len, memmap2::Advice::WillNeed);
    }

    /// Releases the resident pages of a byte range (they are re-read from the file on next access).
    pub fn advise_dontneed(&self, offset: u64, len: u64) {
        if let Backing::Mapped(m) = &self.backing {
            let page = 4096u64;
            let start = offset.div_ceil(page) * page;
            let end = (offset.saturating_add(len) / page * page).min(m.len() as u64);
            if end > start {
                // SAFETY: DONTNEED on a read-only private file mapping only drops cached pages; later reads fault
                // them back in from the file, so no reference into the mapping is invalidated.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start as usize, (end - start) as usize)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufWriter, MetaArray};

    #[test]
    fn a_short_prefix_asks_for_more_and_the_whole_header_parses() {
        let mut w = GgufWriter::new();
        let tokens: Vec<String> = (0..2000).map(|i| format!("token{i}")).collect();
        w.add_metadata("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(tokens)));
        w.add_tensor("t", &[32, 4], GgmlType::Q8_0, vec![1u8; 136]).unwrap();
        let bytes = w.to_bytes();
        let full = parse_header(&bytes, bytes.len() as u64).ok().expect("valid");
        let end = full.data_offset as usize;
        let mut asked = 0;
        // The header proper ends at most `alignment - 1` bytes before `data_offset` (the rest is padding).
        for len in [0, 4, 24, 100, 5000, end - 32] {
            match parse_header(&bytes[..len], bytes.len() as u64) {
                Err(ParseStop::NeedPrefix(n)) => {
                    assert!(n as usize > len && n as usize <= bytes.len(), "prefix {len}: asked for {n}");
                    asked += 1;
                }
                Err(ParseStop::Invalid(e)) => panic!("prefix {len}: {e}"),
                Ok(_) => panic!("prefix {len} of a {end}-byte header parsed"),
            }
        }
        assert_eq!(asked, 6);
        assert!(parse_header(&bytes[..end], bytes.len() as u64).is_ok());
    }
}
