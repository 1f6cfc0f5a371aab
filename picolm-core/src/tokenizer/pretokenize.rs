//! Pre-tokenization of GPT-2 style BPE vocabularies: the text is split into words by the expressions llama.cpp uses
//! for each `tokenizer.ggml.pre` value, applied one after the other (each expression splits the pieces left by the
//! previous one into its matches and the gaps between them). The expressions are hand-written matchers (`rules`)
//! over Unicode class tables (`class`) rather than a regex engine, which would be most of the library's size.

mod class;
mod class_table;
mod rules;
#[cfg(test)]
mod tests;

use rules::Rule;

/// The expressions for a pre-tokenizer name (unknown names use llama.cpp's default list).
fn rules(pre: &str) -> &'static [Rule] {
    match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            &[Rule::OneNumber, Rule::Gpt2]
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => &[Rule::Llama3],
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => &[Rule::Qwen2],
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "trillion" => &[Rule::Gpt2],
        _ => &[Rule::Punctuation, Rule::Gpt2, Rule::Numbers, Rule::ThreeDigits],
    }
}

/// The pre-tokenizer of one vocabulary.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    rules: &'static [Rule],
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for `pre`.
    pub(crate) fn new(pre: &str) -> PreTokenizer {
        PreTokenizer { rules: rules(pre) }
    }

    /// Splits `text` into words (byte offsets `start..end` into `text`).
    pub(crate) fn split(&self, text: &str) -> Vec<(usize, usize)> {
        let mut pieces = vec![(0, text.len())];
        for &rule in self.rules {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for &(s, e) in &pieces {
                let piece = &text[s..e];
                let mut last = 0;
                while let Some((start, end)) = rule.find(piece, last) {
                    debug_assert!(end > start, "{rule:?} matched empty text at {start}");
                    if start > last {
                        next.push((s + last, s + start));
                    }
                    next.push((s + start, s + end));
                    last = end;
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
