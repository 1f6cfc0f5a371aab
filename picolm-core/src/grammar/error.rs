//! Errors of schema compilation and constrained decoding.

/// Why a grammar could not be built or could not continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// The schema is not a valid schema (wrong value types, empty `enum`, contradictory bounds).
    #[error("invalid JSON schema at {path}: {why}")]
    InvalidSchema {
        /// JSON pointer of the offending schema element.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The schema uses a keyword this engine cannot enforce.
    #[error("unsupported JSON schema keyword {keyword:?} at {path}")]
    UnsupportedKeyword {
        /// The keyword.
        keyword: String,
        /// JSON pointer of the schema element that uses it.
        path: String,
    },
    /// `max_tokens` is too small to produce even the shortest valid value.
    #[error("max_tokens {max_tokens} is too small: the shortest value the schema allows needs {needed} tokens")]
    BudgetTooSmall {
        /// Tokens needed at least.
        needed: usize,
        /// Tokens allowed.
        max_tokens: usize,
    },
    /// A token was accepted that the grammar does not allow at this point.
    #[error("token {token} ({text:?}) is not allowed by the grammar here")]
    TokenRejected {
        /// Token id.
        token: u32,
        /// Its bytes, lossily decoded.
        text: String,
    },
    /// No token of the vocabulary can continue the value (the vocabulary lacks single-byte tokens).
    #[error("no token of the vocabulary can continue the constrained output after {0:?}")]
    NoAllowedToken(String),
}
