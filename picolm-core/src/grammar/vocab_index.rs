//! The vocabulary as the grammar sees it: the bytes of every ordinary token in a prefix trie (so tokens that share
//! a prefix share the automaton work), and the tokens that are plain string content (the masking fast path).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tokenizer::{TokenType, Tokenizer};

static NEXT_VOCAB_ID: AtomicU64 = AtomicU64::new(1);

/// A node of the byte trie: its children and the tokens that end here.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrieNode {
    /// Children as (byte, node index), sorted by byte.
    pub(crate) children: Vec<(u8, u32)>,
    /// Tokens whose bytes end at this node.
    pub(crate) tokens: Vec<u32>,
}

/// A prefix trie over token byte strings.
#[derive(Clone, Debug)]
pub(crate) struct TokenTrie {
    pub(crate) nodes: Vec<TrieNode>,
}

impl TokenTrie {
    fn new() -> TokenTrie {
        TokenTrie { nodes: vec![TrieNode::default()] }
    }

    fn insert(&mut self, bytes: &[u8], id: u32) {
        let mut n = 0usize;
        for &b in bytes {
            n = match self.nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[n].children[i].1 as usize,
                Err(i) => {
                    let new = self.nodes.len() as u32;
                    self.nodes.push(TrieNode::default());
                    self.nodes[n].children.insert(i, (b, new));
                    new as usize
                }
            };
        }
        self.nodes[n].tokens.push(id);
    }
}

/// Per-vocabulary data for grammar-constrained decoding; build once per model and share.
#[derive(Clone, Debug)]
pub struct VocabIndex {
    pub(crate) n_vocab: usize,
    /// Every ordinary token (normal and byte tokens with at least one byte).
    pub(crate) all: TokenTrie,
    /// The ordinary tokens that are not plain string content.
    pub(crate) non_plain: TokenTrie,
    /// Tokens made only of string content (complete UTF-8, no `"`, `\` or control character), with their
    /// character counts.
    pub(crate) plain: Vec<(u32, u32)>,
    /// End-of-generation tokens.
    pub(crate) eog: Vec<u32>,
    /// Bytes of every token (empty for tokens the grammar never allows).
    pub(crate) bytes: Vec<Vec<u8>>,
    /// Unique id (key of the grammar's per-vocabulary closing plans).
    pub(crate) id: u64,
    /// Which bytes are tokens by themselves.
    pub(crate) single_byte: [bool; 256],
    /// Most characters in one plain token.
    pub(crate) max_plain_chars: u32,
}

fn is_plain(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok() && bytes.iter().all(|&b| b != b'"' && b != b'\\' && b >= 0x20)
}

impl VocabIndex {
    /// Indexes a tokenizer's vocabulary.
    pub fn new(tok: &Tokenizer) -> VocabIndex {
        let bytes = (0..tok.n_vocab() as u32)
            .map(|id| {
                let usable = matches!(tok.token_type(id), TokenType::Normal | TokenType::Byte) && !tok.is_eog(id);
                if usable {
                    tok.token_to_piece(id, false)
                } else {
                    Vec::new()
                }
            })
            .collect();
        VocabIndex::from_token_bytes(bytes, tok.eog_ids().to_vec())
    }

    /// An index over explicit token byte strings (`bytes[id]`, empty = never allowed) and end tokens; for
    /// vocabularies that do not come from a [`Tokenizer`] and for tests.
    pub fn from_token_bytes(bytes: Vec<Vec<u8>>, eog: Vec<u32>) -> VocabIndex {
        let mut all = TokenTrie::new();
        let mut non_plain = TokenTrie::new();
        let mut plain = Vec::new();
        for (id, b) in bytes.iter().enumerate() {
            let id = id as u32;
            if b.is_empty() || eog.contains(&id) {
                continue;
            }
            all.insert(b, id);
            if is_plain(b) {
                plain.push((id, String::from_utf8_lossy(b).chars().count() as u32));
            } else {
                non_plain.insert(b, id);
            }
        }
        let mut single = [false; 256];
        for b in
            bytes.iter().enumerate().filter(|(id, b)| b.len() == 1 && !eog.contains(&(*id as u32))).map(|(_, b)| b[0])
        {
            single[b as usize] = true;
        }
        let max_plain_chars = plain.iter().map(|&(_, n)| n).max().unwrap_or(0);
        let id = NEXT_VOCAB_ID.fetch_add(1, Ordering::Relaxed);
        VocabIndex { n_vocab: bytes.len(), all, non_plain, plain, eog, bytes, id, single_byte: single, max_plain_chars }
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// The bytes the grammar sees for a token (empty for special tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map(|b| b.as_slice()).unwrap_or(&[])
    }
}
