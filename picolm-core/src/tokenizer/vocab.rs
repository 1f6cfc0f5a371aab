//! The vocabulary of a GGUF model: token strings, scores, token types, special ids and flags.

use super::error::TokenizerError;
use crate::gguf::GgufFile;

/// The tokenizer algorithm a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// GPT-2 style byte-level BPE with merges (`tokenizer.ggml.model = "gpt2"`).
    Bpe,
    /// SentencePiece-style vocabulary with scores and byte fallback (`"llama"`).
    SentencePiece,
}

/// Token types as stored in `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenType {
    /// Ordinary text token.
    Normal = 1,
    /// The unknown token.
    Unknown = 2,
    /// Control token (BOS, EOS, chat markers): parsed from text only on request, rendered only on request.
    Control = 3,
    /// User-defined token: always parsed as one token, rendered as its text.
    UserDefined = 4,
    /// Unused slot.
    Unused = 5,
    /// Byte fallback token `<0xXX>`.
    Byte = 6,
}

impl TokenType {
    fn from_i32(v: i32) -> TokenType {
        match v {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// Token strings that end a generation in some model family (llama.cpp's list).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// Everything the tokenizers need from the metadata.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub(crate) kind: TokenizerKind,
    pub(crate) pre: String,
    pub(crate) tokens: Vec<String>,
    pub(crate) scores: Vec<f32>,
    pub(crate) types: Vec<TokenType>,
    pub(crate) token_to_id: TokenIndex,
    pub(crate) merges: Vec<String>,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) add_space_prefix: bool,
    pub(crate) eog: Vec<u32>,
}

fn special_id(g: &GgufFile, key: &str, n_vocab: usize) -> Result<Option<u32>, TokenizerError> {
    match g.get_u64(key)? {
        None => Ok(None),
        Some(id) if (id as usize) < n_vocab && id <= u32::MAX as u64 => Ok(Some(id as u32)),
        Some(id) => Err(TokenizerError::SpecialTokenOutOfRange { key: key.to_string(), id, n_vocab }),
    }
}

impl Vocab {
    /// Reads and checks the `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Vocab, TokenizerError> {
        let model = g.require_str("tokenizer.ggml.model")?;
        let kind = match model {
            "gpt2" => TokenizerKind::Bpe,
            "llama" => TokenizerKind::SentencePiece,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let tokens = g.require_str_array("tokenizer.ggml.tokens")?.to_vec();
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocabulary);
        }
        let check_len = |key: &str, got: usize| {
            if got != n {
                Err(TokenizerError::LengthMismatch { key: key.to_string(), got, n_vocab: n })
            } else {
                Ok(())
            }
        };
        let scores = match g.get_f32_array("tokenizer.ggml.scores")? {
            Some(s) => {
                check_len("tokenizer.ggml.scores", s.len())?;
                s.to_vec()
            }
            None => vec![0.0; n],
        };
        let types = match g.get_i32_array("tokenizer.ggml.token_type")? {
            Some(t) => {
                check_len("tokenizer.ggml.token_type", t.len())?;
                t.iter().map(|&v| TokenType::from_i32(v)).collect()
            }
            None => vec![TokenType::Normal; n],
        };
        let merges = match kind {
            TokenizerKind::Bpe => g.get_str_array("tokenizer.ggml.merges")?.map(|m| m.to_vec()).unwrap_or_default(),
            TokenizerKind::SentencePiece => Vec::new(),
        };
        let token_to_id = TokenIndex::new(&tokens);
        let bos = special_id(g, "tokenizer.ggml.bos_token_id", n)?;
        let eos = special_id(g, "tokenizer.ggml.eos_token_id", n)?;
        let eot = special_id(g, "tokenizer.ggml.eot_token_id", n)?;
        let eom = special_id(g, "tokenizer.ggml.eom_token_id", n)?;
        // Checked but not used: the unknown token is never produced from text (llama.cpp drops a byte that has no
        // token rather than emit it; in GPT-2 vocabularies it is often a control token such as `<|endoftext|>`).
        for key in [
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.seperator_token_id",
            "tokenizer.ggml.separator_token_id",
        ] {
            special_id(g, key, n)?;
        }
        let default_bos = kind == TokenizerKind::SentencePiece;
        let add_bos = g.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(default_bos);
        let add_eos = g.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let add_space_prefix =
            g.get_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(kind == TokenizerKind::SentencePiece);
        let pre = g.get_str("tokenizer.ggml.pre")?.unwrap_or("default").to_string();

        let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for t in EOG_TEXTS {
            if let Some(id) = token_to_id.get(&tokens, t) {
                eog.push(id);
            }
        }
        crate::sorting::sort_u32(&mut eog);
        eog.dedup();
        Ok(Vocab {
            kind,
            pre,
            tokens,
            scores,
            types,
            token_to_id,
            merges,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
            eog,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never, for a loaded one).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of the token whose text is `text` (the last one when several have it).
    pub(crate) fn id_of(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(&self.tokens, text)
    }

    /// Type of a token (`Normal` for ids out of range).
    pub fn token_type(&self, id: u32) -> TokenType {
        self.types.get(id as usize).copied().unwrap_or(TokenType::Normal)
    }
}

/// Text → token id lookup without a second copy of the texts: the ids sorted by their text (then by id), searched
/// by bisection. 4 bytes a token, where a `HashMap<String, u32>` holds a copy of every string plus its table
/// (about 75 bytes a token: 3.5 MiB for a 49k vocabulary).
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenIndex {
    by_text: Vec<u32>,
}

impl TokenIndex {
    /// Indexes `tokens` (ids are positions).
    pub(crate) fn new(tokens: &[String]) -> TokenIndex {
        // First by the text's first four bytes (zero-padded; their order never contradicts the order of the texts)
        // and then the id, packed into one `u64` (a plain integer sort); then each run of equal prefixes by the
        // whole text. Far fewer string comparisons than one sort by text.
        let prefix = |t: &str| {
            let mut p = [0u8; 4];
            let n = t.len().min(4);
            p[..n].copy_from_slice(&t.as_bytes()[..n]);
            u64::from(u32::from_be_bytes(p))
        };
        let mut keys: Vec<u64> = tokens.iter().enumerate().map(|(id, t)| (prefix(t) << 32) | id as u64).collect();
        crate::sorting::sort_u64(&mut keys);
        let mut by_text: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
        let mut start = 0;
        for run in keys.chunk_by(|a, b| a >> 32 == b >> 32) {
            if run.len() > 1 {
                crate::sorting::sort_ids_by(&mut by_text[start..start + run.len()], &mut |a, b| {
                    tokens[a as usize].cmp(&tokens[b as usize]).then(a.cmp(&b))
                });
            }
            start += run.len();
        }
        TokenIndex { by_text }
    }

    /// The id of `text` in `tokens` (the list this index was built from). Like llama.cpp, the last of duplicate
    /// strings wins.
    pub(crate) fn get(&self, tokens: &[String], text: &str) -> Option<u32> {
        let text_of = |id: u32| tokens.get(id as usize).map_or("", |s| s.as_str());
        let end = self.by_text.partition_point(|&id| text_of(id) <= text);
        let id = *self.by_text.get(end.checked_sub(1)?)?;
        (text_of(id) == text && (id as usize) < tokens.len()).then_some(id)
    }
}

#[cfg(test)]
mod index_tests {
    use super::TokenIndex;

    #[test]
    fn finds_every_token_and_the_last_of_duplicates() {
        let tokens: Vec<String> = ["b", "a", "", "ab", "a", "\u{2581}x", "zz"].iter().map(|s| s.to_string()).collect();
        let index = TokenIndex::new(&tokens);
        for (text, id) in [("b", 0), ("a", 4), ("", 2), ("ab", 3), ("\u{2581}x", 5), ("zz", 6)] {
            assert_eq!(index.get(&tokens, text), Some(id), "{text:?}");
        }
        for absent in ["c", "aa", "abc", "z", "zzz", " "] {
            assert_eq!(index.get(&tokens, absent), None, "{absent:?}");
        }
        assert_eq!(TokenIndex::new(&[]).get(&[], "a"), None);
    }

    #[test]
    fn ids_are_ordered_by_text_then_id() {
        // Short texts, shared prefixes of four bytes and more, NUL bytes, duplicates and multi-byte characters.
        let mut tokens: Vec<String> =
            ["", "a", "a\0", "a\0\0\0\0", "ab", "abcd", "abcde", "abcda", "abc", "\u{2581}the", "\u{2581}th"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 7) as usize;
            tokens.push((0..len).map(|i| ['a', 'b', '\0', '\u{e9}', 'z'][((x >> (8 + 3 * i)) % 5) as usize]).collect());
        }
        tokens.extend(tokens[..50].to_vec());
        let mut want: Vec<u32> = (0..tokens.len() as u32).collect();
        want.sort_by(|&a, &b| tokens[a as usize].cmp(&tokens[b as usize]));
        assert_eq!(TokenIndex::new(&tokens).by_text, want);
    }
}
