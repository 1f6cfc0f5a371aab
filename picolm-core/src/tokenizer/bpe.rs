//! GPT-2 byte-level BPE (llama.cpp's `llm_tokenizer_bpe`): bytes are mapped to printable characters, each
//! pre-tokenized word starts as one symbol per character, and the adjacent pair with the best (lowest) merge rank
//! is merged until no ranked pair is left. A symbol that is not in the vocabulary falls back to its single-byte
//! tokens; bytes without one (SmolLM2 has none for 0x04, 0x1D, 0xF1, ...) are dropped, as llama.cpp does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::error::TokenizerError;
use super::pretokenize::PreTokenizer;
use super::vocab::Vocab;

/// GPT-2's reversible byte → character table: printable bytes map to themselves, the rest to U+0100 onwards.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1 range")
        } else {
            let c = char::from_u32(next).expect("U+0100.. range");
            next += 1;
            c
        };
    }
    table
}

/// llama.cpp's fallback for a piece that is not a token: each byte of the piece's (mapped) text that is a token on
/// its own, i.e. the ASCII characters of the piece that are in the vocabulary; every other byte is dropped. Never
/// the unknown token: in GPT-2 vocabularies it is usually a control token (SmolLM2: id 0 = `<|endoftext|>`), and
/// plain text must not turn into an end-of-generation or other control token.
fn push_single_bytes(vocab: &Vocab, piece: &str, out: &mut Vec<u32>) {
    for c in piece.chars().filter(char::is_ascii) {
        let mut buf = [0u8; 1];
        if let Some(id) = vocab.id_of(c.encode_utf8(&mut buf)) {
            out.push(id);
        }
    }
}

/// The BPE tokenizer state built once per vocabulary.
#[derive(Debug)]
pub(crate) struct Bpe {
    pre: PreTokenizer,
    ranks: HashMap<String, u32>,
    byte_to_char: [char; 256],
    pub(crate) char_to_byte: HashMap<char, u8>,
    ignore_merges: bool,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

impl Bpe {
    pub(crate) fn new(vocab: &Vocab) -> Result<Bpe, TokenizerError> {
        let mut ranks = HashMap::with_capacity(vocab.merges.len());
        for (i, line) in vocab.merges.iter().enumerate() {
            // The separator is the first space after the first character (a part may itself start with a space
            // character in non-byte-level vocabularies).
            let first = line.char_indices().nth(1).map(|(p, _)| p).unwrap_or(line.len());
            if line[first..].find(' ').is_none() {
                return Err(TokenizerError::BadMerge { index: i, line: line.clone() });
            }
            ranks.entry(line.clone()).or_insert(i as u32);
        }
        let byte_to_char = byte_to_char_table();
        let char_to_byte = byte_to_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let ignore_merges = matches!(vocab.pre.as_str(), "llama3" | "llama-v3" | "llama-bpe" | "falcon3");
        Ok(Bpe { pre: PreTokenizer::new(&vocab.pre), ranks, byte_to_char, char_to_byte, ignore_merges })
    }

    /// Appends the tokens of `text` (no special-token handling) to `out`.
    pub(crate) fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut word = String::new();
        let mut key = String::new();
        let mut symbols: Vec<Symbol> = Vec::new();
        let mut heap: BinaryHeap<Reverse<(u32, usize, usize)>> = BinaryHeap::new();
        for (s, e) in self.pre.split(text) {
            word.clear();
            for &b in &text.as_bytes()[s..e] {
                word.push(self.byte_to_char[b as usize]);
            }
            if self.ignore_merges {
                if let Some(id) = vocab.id_of(word.as_str()) {
                    out.push(id);
                    continue;
                }
            }
            symbols.clear();
            for (i, (pos, c)) in word.char_indices().enumerate() {
                symbols.push(Symbol { start: pos, len: c.len_utf8(), prev: i as isize - 1, next: i as isize + 1 });
            }
            if let Some(last) = symbols.last_mut() {
                last.next = -1;
            }
            heap.clear();
            let rank_of = |key: &mut String, a: &Symbol, b: &Symbol| -> Option<u32> {
                key.clear();
                key.push_str(&word[a.start..a.start + a.len]);
                key.push(' ');
                key.push_str(&word[b.start..b.start + b.len]);
                self.ranks.get(key.as_str()).copied()
            };
            for i in 1..symbols.len() {
                if let Some(r) = rank_of(&mut key, &symbols[i - 1], &symbols[i]) {
                    heap.push(Reverse((r, i - 1, symbols[i - 1].len + symbols[i].len)));
                }
            }
            while let Some(Reverse((_, left, size))) = heap.pop() {
                let l = symbols[left];
                if l.len == 0 || l.next < 0 {
                    continue;
                }
                let right = l.next as usize;
                let r = symbols[right];
                if r.len == 0 || l.len + r.len != size {
                    continue; // outdated entry
                }
                symbols[left].len += r.len;
                symbols[right].len = 0;
                symbols[left].next = r.next;
                if r.next >= 0 {
                    symbols[r.next as usize].prev = left as isize;
                }
                let merged = symbols[left];
                if merged.prev >= 0 {
                    let p = merged.prev as usize;
                    if let Some(rank) = rank_of(&mut key, &symbols[p], &merged) {
                        heap.push(Reverse((rank, p, symbols[p].len + merged.len)));
                    }
                }
                if merged.next >= 0 {
                    let nx = merged.next as usize;
                    if let Some(rank) = rank_of(&mut key, &merged, &symbols[nx]) {
                        heap.push(Reverse((rank, left, merged.len + symbols[nx].len)));
                    }
                }
            }
            let mut i = if symbols.is_empty() { -1 } else { 0isize };
            while i >= 0 {
                let sym = symbols[i as usize];
                let piece = &word[sym.start..sym.start + sym.len];
                match vocab.id_of(piece) {
                    Some(id) => out.push(id),
                    None => push_single_bytes(vocab, piece, out),
                }
                i = sym.next;
            }
        }
    }

    /// The raw bytes of a normal token's text (mapped characters back to bytes; other characters as UTF-8).
    pub(crate) fn token_bytes(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.char_to_byte.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}
