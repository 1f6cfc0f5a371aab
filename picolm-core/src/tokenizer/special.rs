//! Splitting text on special tokens before tokenization (llama.cpp's `tokenizer_st_partition`): the special
//! tokens, longest first, are cut out of the raw text fragments and become single tokens.

use super::vocab::{TokenType, Vocab};

/// A piece of the input: raw text to tokenize, or an already identified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    /// Text for the tokenizer algorithm.
    Text(&'a str),
    /// A special token.
    Token(u32),
}

/// Ids of the tokens that may be matched in text, longest text first (ties by id).
pub(crate) fn special_tokens_by_length(vocab: &Vocab) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..vocab.len() as u32)
        .filter(|&id| {
            matches!(vocab.token_type(id), TokenType::Control | TokenType::UserDefined | TokenType::Unknown)
                && !vocab.tokens[id as usize].is_empty()
        })
        .collect();
    crate::sorting::sort_ids_by(&mut ids, &mut |a, b| {
        vocab.tokens[b as usize].len().cmp(&vocab.tokens[a as usize].len()).then(a.cmp(&b))
    });
    ids
}

/// Splits `text` on the special tokens. Control and unknown tokens are matched only when `parse_special`;
/// user-defined tokens always.
pub(crate) fn partition<'a>(
    vocab: &'a Vocab,
    specials: &[u32],
    text: &'a str,
    parse_special: bool,
) -> Vec<Fragment<'a>> {
    let mut frags = vec![Fragment::Text(text)];
    if text.is_empty() {
        return frags;
    }
    for &id in specials {
        let ty = vocab.token_type(id);
        if !parse_special && matches!(ty, TokenType::Control | TokenType::Unknown) {
            continue;
        }
        let needle = vocab.tokens[id as usize].as_str();
        if !frags.iter().any(|f| matches!(f, Fragment::Text(t) if t.contains(needle))) {
            continue;
        }
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            match f {
                Fragment::Text(t) => {
                    let mut rest = t;
                    while let Some(pos) = rest.find(needle) {
                        if pos > 0 {
                            next.push(Fragment::Text(&rest[..pos]));
                        }
                        next.push(Fragment::Token(id));
                        rest = &rest[pos + needle.len()..];
                    }
                    if !rest.is_empty() {
                        next.push(Fragment::Text(rest));
                    }
                }
                tok => next.push(tok),
            }
        }
        frags = next;
    }
    frags
}
