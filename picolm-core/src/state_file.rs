//! The file format of a saved session state (version 2) and its checks.
//!
//! Layout (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `PICOKV02` (`PICOKV` + two-digit format version) |
//! | 8 | 16 | model fingerprint: XXH3-128 of the model's GGUF header ([`ModelFingerprint`]) |
//! | 24 | 8 | model file size |
//! | 32 | 4 | KV cache row type (ggml type id: 1 = F16, 8 = Q8_0) |
//! | 36 | 4 | layers |
//! | 40 | 4 | values per key/value row (`n_head_kv × head_dim`) |
//! | 44 | 4 | vocabulary size |
//! | 48 | 8 | cached tokens `n` |
//! | 56 | 4 | flags: bit 0 = logits present; the other bits are 0 |
//! | 60 | 8 | payload bytes (everything between this header and the checksum) |
//! | 68 | 4n | token ids |
//! |  | L·n·R | keys: layer by layer, positions `0..n`, rows of R bytes |
//! |  | L·n·R | values, the same way |
//! |  | 4V | logits after the last token (f32), if flagged |
//! | end − 8 | 8 | XXH3-64 of every byte before it |
//!
//! A state is accepted only when every field matches the session it is loaded into (same model fingerprint, KV
//! type and shape, `n ≤ n_ctx`), the payload length agrees with `n` and the flags, the checksum matches and the
//! file ends right after it. Anything else is refused with a [`StateError`] naming the mismatch.

use std::io::{self, Read, Write};

use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

use crate::fs_safety::MagicBytes;
use crate::ggml_type::GgmlType;
use crate::model::ModelFingerprint;

/// The common start of the magic of every PicoLM state file version.
pub const STATE_MAGIC_PREFIX: &[u8; 6] = b"PICOKV";
/// The magic of the version written and read by this build.
pub const STATE_MAGIC: &[u8; 8] = b"PICOKV02";
/// Size of the fixed header (magic included).
pub const HEADER_BYTES: usize = 68;
/// Size of the trailing checksum.
pub const CHECKSUM_BYTES: usize = 8;
/// Header flag: the logits after the last token follow the values.
pub const FLAG_LOGITS: u32 = 1;

/// Why a saved state was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file does not start with a PicoLM state magic.
    #[error("not a PicoLM state file: its first bytes are {}", MagicBytes(.found))]
    NotAStateFile {
        /// The first bytes of the file (up to 8).
        found: Vec<u8>,
    },
    /// A PicoLM state of another format version.
    #[error("state format version {found} is not supported (this build reads {expected}): save the state again")]
    UnsupportedVersion {
        /// The version in the file, as written (two characters).
        found: String,
        /// The version this build reads.
        expected: String,
    },
    /// The file ends before the state does.
    #[error("truncated state: the file ends inside the {what}")]
    Truncated {
        /// The part being read.
        what: &'static str,
    },
    /// The state was saved from a different model file.
    #[error("the state was saved from another model (state: {saved}; this model: {current})")]
    OtherModel {
        /// Fingerprint in the state.
        saved: ModelFingerprint,
        /// Fingerprint of the session's model.
        current: ModelFingerprint,
    },
    /// The KV cache type differs from the session's.
    #[error("the state holds a {saved} KV cache, this session uses {current}")]
    KvTypeMismatch {
        /// The state's type (name, or the unknown id).
        saved: String,
        /// The session's type.
        current: &'static str,
    },
    /// The layer count, row width or vocabulary differs from the model's.
    #[error("the state's shape (layers {saved:?}, row width, vocabulary) differs from the model's {current:?}")]
    ShapeMismatch {
        /// Layers, values per row and vocabulary size in the state.
        saved: [u32; 3],
        /// The same for the model.
        current: [u32; 3],
    },
    /// Flag bits this build does not know.
    #[error("unknown flags {0:#x} in the state header")]
    UnknownFlags(u32),
    /// The payload length field disagrees with the token count and flags.
    #[error("the state header declares {declared} payload bytes, but {n_tokens} tokens need {expected}")]
    LengthMismatch {
        /// The length field.
        declared: u64,
        /// The length implied by the other fields.
        expected: u64,
        /// The token count field.
        n_tokens: u64,
    },
    /// The checksum does not match: the file was damaged.
    #[error("checksum mismatch: the state is damaged (stored {stored:016x}, computed {computed:016x})")]
    ChecksumMismatch {
        /// The checksum in the file.
        stored: u64,
        /// The checksum of the bytes read.
        computed: u64,
    },
    /// Bytes follow the checksum.
    #[error("unexpected bytes after the end of the state (the file is longer than its header says)")]
    TrailingBytes,
    /// A token id outside the vocabulary.
    #[error("token id {id} at position {pos} is outside the vocabulary of {n_vocab} tokens")]
    BadToken {
        /// The id.
        id: u32,
        /// Its position.
        pos: usize,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// Reading failed.
    #[error("cannot read the state: {0}")]
    Read(#[source] io::Error),
}

/// Judges the first bytes of an existing file that a state is about to replace: only PicoLM states (of any
/// version, damaged or not) may be replaced; empty files are handled by the caller.
pub fn may_replace(head: &[u8]) -> Result<(), String> {
    if head.starts_with(STATE_MAGIC_PREFIX) {
        Ok(())
    } else {
        Err(format!(
            "it is not a PicoLM state file (its first bytes are {}); remove it or choose another path",
            MagicBytes(head)
        ))
    }
}

/// The fixed header of a state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateHeader {
    /// The model the state belongs to.
    pub fingerprint: ModelFingerprint,
    /// ggml type id of the KV cache rows.
    pub kv_type_id: u32,
    /// Layers.
    pub n_layer: u32,
    /// Values per key/value row.
    pub kv_dim: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Cached tokens.
    pub n_tokens: u64,
    /// Flags ([`FLAG_LOGITS`]).
    pub flags: u32,
    /// Bytes between the header and the checksum.
    pub payload_bytes: u64,
}

impl StateHeader {
    /// Encodes the header, magic included.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[..8].copy_from_slice(STATE_MAGIC);
        b[8..24].copy_from_slice(&self.fingerprint.header_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.fingerprint.file_bytes.to_le_bytes());
        for (i, v) in [self.kv_type_id, self.n_layer, self.kv_dim, self.n_vocab].into_iter().enumerate() {
            b[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b[48..56].copy_from_slice(&self.n_tokens.to_le_bytes());
        b[56..60].copy_from_slice(&self.flags.to_le_bytes());
        b[60..68].copy_from_slice(&self.payload_bytes.to_le_bytes());
        b
    }

    /// Decodes a header whose magic was checked by [`check_magic`].
    pub fn decode(b: &[u8; HEADER_BYTES]) -> StateHeader {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        StateHeader {
            fingerprint: ModelFingerprint {
                header_hash: u128::from_le_bytes(b[8..24].try_into().expect("16 bytes")),
                file_bytes: u64_at(24),
            },
            kv_type_id: u32_at(32),
            n_layer: u32_at(36),
            kv_dim: u32_at(40),
            n_vocab: u32_at(44),
            n_tokens: u64_at(48),
            flags: u32_at(56),
            payload_bytes: u64_at(60),
        }
    }

    /// Payload bytes implied by the token count and flags for rows of `row_bytes` (`None` on overflow).
    pub fn expected_payload(&self, row_bytes: u64) -> Option<u64> {
        let n = self.n_tokens;
        let tokens = n.checked_mul(4)?;
        let kv = n.checked_mul(row_bytes)?.checked_mul(self.n_layer as u64)?.checked_mul(2)?;
        let logits = if self.flags & FLAG_LOGITS != 0 { self.n_vocab as u64 * 4 } else { 0 };
        tokens.checked_add(kv)?.checked_add(logits)
    }
}

/// Checks the 8 magic bytes: this version, another PicoLM state version, or not a state at all.
pub fn check_magic(magic: &[u8]) -> Result<(), StateError> {
    if magic == STATE_MAGIC {
        Ok(())
    } else if magic.len() == 8 && magic.starts_with(STATE_MAGIC_PREFIX) {
        Err(StateError::UnsupportedVersion {
            found: String::from_utf8_lossy(&magic[6..]).into_owned(),
            expected: String::from_utf8_lossy(&STATE_MAGIC[6..]).into_owned(),
        })
    } else {
        Err(StateError::NotAStateFile { found: magic.to_vec() })
    }
}

/// The name of a KV row type id for messages.
pub fn kv_type_name(id: u32) -> String {
    match GgmlType::from_id(id) {
        Some(t) => t.name().to_ascii_lowercase(),
        None => format!("unknown (type id {id})"),
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Xxh3,
}

impl<'a> HashingWriter<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn Write) -> HashingWriter<'a> {
        HashingWriter { inner, hasher: Xxh3::new() }
    }

    /// Writes `bytes`.
    pub fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }

    /// Writes the checksum of everything written so far.
    pub fn finish(self) -> io::Result<()> {
        self.inner.write_all(&self.hasher.digest().to_le_bytes())
    }
}

/// A reader that hashes everything read through it and names the part that was cut short.
pub struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: Xxh3,
}

impl<'a> HashingReader<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn Read) -> HashingReader<'a> {
        HashingReader { inner, hasher: Xxh3::new() }
    }

    /// Reads and checks the 8 magic bytes ([`check_magic`]); a shorter file is reported with the bytes it has.
    pub fn magic(&mut self) -> Result<[u8; 8], StateError> {
        let mut found = Vec::with_capacity(8);
        (&mut *self.inner).take(8).read_to_end(&mut found).map_err(StateError::Read)?;
        self.hasher.update(&found);
        match <[u8; 8]>::try_from(found.as_slice()) {
            Ok(magic) => check_magic(&magic).map(|()| magic),
            Err(_) if !found.is_empty() && STATE_MAGIC.starts_with(&found) => {
                Err(StateError::Truncated { what: "magic" })
            }
            Err(_) => Err(StateError::NotAStateFile { found }),
        }
    }

    /// Fills `buf` (the `what` part of the state) and hashes it.
    pub fn take(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), StateError> {
        read_part(self.inner, buf, what)?;
        self.hasher.update(buf);
        Ok(())
    }

    /// Reads the stored checksum and compares it with the hash of everything read; then requires the end of file.
    pub fn finish(self) -> Result<(), StateError> {
        let mut stored = [0u8; CHECKSUM_BYTES];
        read_part(self.inner, &mut stored, "checksum")?;
        let (stored, computed) = (u64::from_le_bytes(stored), self.hasher.digest());
        if stored != computed {
            return Err(StateError::ChecksumMismatch { stored, computed });
        }
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(StateError::TrailingBytes),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StateError::Read(e)),
            }
        }
    }
}

fn read_part(r: &mut dyn Read, buf: &mut [u8], what: &'static str) -> Result<(), StateError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StateError::Truncated { what },
        _ => StateError::Read(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_lengths_are_checked() {
        let h = StateHeader {
            fingerprint: ModelFingerprint { header_hash: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210, file_bytes: 98 },
            kv_type_id: 1,
            n_layer: 30,
            kv_dim: 192,
            n_vocab: 49152,
            n_tokens: 7,
            flags: FLAG_LOGITS,
            payload_bytes: 0,
        };
        let b = h.encode();
        assert_eq!(&b[..8], STATE_MAGIC);
        assert_eq!(StateHeader::decode(&b), h);
        assert_eq!(h.expected_payload(384), Some(7 * 4 + 2 * 30 * 7 * 384 + 49152 * 4));
        let huge = StateHeader { n_tokens: u64::MAX / 2, ..h };
        assert_eq!(huge.expected_payload(384), None);
    }

    #[test]
    fn magic_tells_versions_from_foreign_files() {
        assert!(check_magic(b"PICOKV02").is_ok());
        let v1 = check_magic(b"PICOKV01").unwrap_err();
        assert!(matches!(v1, StateError::UnsupportedVersion { .. }) && v1.to_string().contains("version 01"), "{v1}");
        let gguf = check_magic(b"GGUF\x03\0\0\0").unwrap_err();
        assert_eq!(gguf.to_string(), "not a PicoLM state file: its first bytes are 47 47 55 46 03 00 00 00 |GGUF....|");
        assert!(may_replace(b"PICOKV01").is_ok() && may_replace(b"PICOKV02").is_ok());
        assert!(may_replace(b"GGUF\x03\0\0\0").unwrap_err().contains("47 47 55 46"));
    }

    #[test]
    fn checksum_and_end_of_file_are_enforced() {
        let mut out = Vec::new();
        let mut w = HashingWriter::new(&mut out);
        w.put(b"hello state").unwrap();
        w.finish().unwrap();
        let read = |bytes: &[u8]| {
            let mut src = bytes;
            let mut r = HashingReader::new(&mut src);
            let mut buf = [0u8; 11];
            r.take(&mut buf, "payload")?;
            r.finish()
        };
        assert!(read(&out).is_ok());
        let mut flipped = out.clone();
        flipped[3] ^= 0x20;
        assert!(matches!(read(&flipped), Err(StateError::ChecksumMismatch { .. })));
        let mut longer = out.clone();
        longer.push(0);
        assert!(matches!(read(&longer), Err(StateError::TrailingBytes)));
        assert!(matches!(read(&out[..out.len() - 1]), Err(StateError::Truncated { what: "checksum" })));
        assert!(matches!(read(&out[..5]), Err(StateError::Truncated { what: "payload" })));
    }
}
