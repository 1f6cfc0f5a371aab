//! SentencePiece-style tokenization of "llama" vocabularies (llama.cpp's `llm_tokenizer_spm`): spaces become
//! U+2581, the text starts as one symbol per character, and the adjacent pair whose concatenation is the
//! highest-scoring vocabulary token is merged until none is left; characters that are not tokens become byte tokens
//! `<0xXX>` (a byte without one is dropped).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores, the leftmost pair first.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

/// Byte fallback token ids (`<0x00>`..`<0xFF>`), looked up once.
#[derive(Debug)]
pub(crate) struct Spm {
    byte_tokens: [Option<u32>; 256],
}

impl Spm {
    pub(crate) fn new(vocab: &Vocab) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id_of(&format!("<0x{b:02X}>"));
        }
        Spm { byte_tokens }
    }

    /// Appends the tokens of an already escaped text (spaces as U+2581) to `out`.
    pub(crate) fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .enumerate()
            .map(|(i, (pos, c))| Symbol { start: pos, len: c.len_utf8(), prev: i as isize - 1, next: i as isize + 1 })
            .collect();
        if symbols.is_empty() {
            return;
        }
        let n = symbols.len();
        symbols[n - 1].next = -1;
        let mut heap = BinaryHeap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: isize, r: isize| {
            if l < 0 || r < 0 {
                return;
            }
            let (ls, rs) = (symbols[l as usize], symbols[r as usize]);
            let piece = &text[ls.start..ls.start + ls.len + rs.len];
            if let Some(id) = vocab.id_of(piece) {
                heap.push(Bigram {
                    left: l as usize,
                    right: r as usize,
                    score: vocab.scores[id as usize],
                    size: piece.len(),
                });
            }
        };
        for i in 1..n {
            try_add(&mut heap, &symbols, i as isize - 1, i as isize);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size || l.next != b.right as isize {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if r.next >= 0 {
                symbols[r.next as usize].prev = b.left as isize;
            }
            let prev = symbols[b.left].prev;
            let next = symbols[b.left].next;
            try_add(&mut heap, &symbols, prev, b.left as isize);
            try_add(&mut heap, &symbols, b.left as isize, next);
        }
        // Every merged symbol is a token; a symbol that is not (a single character outside the vocabulary) falls
        // back to byte tokens.
        let mut i = 0isize;
        while i >= 0 {
            let sym = symbols[i as usize];
            let piece = &text[sym.start..sym.start + sym.len];
            match vocab.id_of(piece) {
                Some(id) => out.push(id),
                // A byte without a `<0xXX>` token is dropped (llama.cpp would try the byte as a one-character token,
                // which a symbol that is not a token cannot be, and then throw) -- never the unknown token, which
                // would put a control token into plain text.
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
            i = sym.next;
        }
    }

    /// The byte a `<0xXX>` token stands for.
    pub(crate) fn byte_of(text: &str) -> Option<u8> {
        let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
        if hex.len() != 2 {
            return None;
        }
        u8::from_str_radix(hex, 16).ok()
    }
}
