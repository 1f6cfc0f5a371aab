//! Pre-tokenization of GPT-2 style BPE vocabularies: the text is split into words by the regular expressions
//! llama.cpp uses for each `tokenizer.ggml.pre` value, applied one after the other (each expression splits the
//! pieces left by the previous one into its matches and the gaps between them).

use fancy_regex::Regex;

use super::error::TokenizerError;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The expressions for a pre-tokenizer name (unknown names use llama.cpp's default list).
fn patterns(pre: &str) -> Vec<&'static str> {
    match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => vec![r"\p{N}", GPT2],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => vec![LLAMA3],
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => vec![QWEN2],
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "trillion" => vec![GPT2],
        _ => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for `pre`.
    pub(crate) fn new(pre: &str) -> Result<PreTokenizer, TokenizerError> {
        let regexes = patterns(pre)
            .into_iter()
            .map(|p| Regex::new(p).map_err(|e| TokenizerError::Regex(format!("{p}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer { regexes })
    }

    /// Splits `text` into words (byte offsets `start..end` into `text`).
    pub(crate) fn split(&self, text: &str) -> Vec<(usize, usize)> {
        let mut pieces = vec![(0, text.len())];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for &(s, e) in &pieces {
                let piece = &text[s..e];
                let mut last = 0;
                let mut pos = 0;
                while pos < piece.len() {
                    let m = match re.find_from_pos(piece, pos) {
                        Ok(Some(m)) => m,
                        // No match, or the backtracking limit hit: the rest stays one piece.
                        _ => break,
                    };
                    if m.start() == m.end() {
                        // An empty match cannot advance; step over one character.
                        pos = m.end() + piece[m.end()..].chars().next().map_or(1, |c| c.len_utf8());
                        continue;
                    }
                    if m.start() > last {
                        next.push((s + last, s + m.start()));
                    }
                    next.push((s + m.start(), s + m.end()));
                    last = m.end();
                    pos = m.end();
                }
                if last < piece.len() {
                    next.push((s + last, e));
                }
            }
            pieces = next;
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(p: &PreTokenizer, t: &'a str) -> Vec<&'a str> {
        p.split(t).into_iter().map(|(s, e)| &t[s..e]).collect()
    }

    #[test]
    fn smollm_splits_digits_and_keeps_single_space_before_words() {
        let p = PreTokenizer::new("smollm").unwrap();
        assert_eq!(words(&p, "  two 123"), vec![" ", " two", " ", "1", "2", "3"]);
        assert_eq!(words(&p, "Hello\nworld\n\nx"), vec!["Hello", "\n", "world", "\n", "\n", "x"]);
        assert_eq!(words(&p, "it's"), vec!["it", "'s"]);
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        let p = PreTokenizer::new("llama-bpe").unwrap();
        assert_eq!(words(&p, "12345 ab"), vec!["123", "45", " ab"]);
    }
}
