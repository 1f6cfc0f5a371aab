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
    /// The schema is beyond a compile-time bound (nodes, literal bytes, parallel parses).
    #[error("JSON schema too large at {path}: {what} exceed the limit of {limit}")]
    TooLarge {
        /// JSON pointer of the schema element where the bound was passed.
        path: String,
        /// What was counted.
        what: String,
        /// The bound.
        limit: usize,
    },
    /// The token budget (`max_tokens`, or the room left in the context) cannot hold even the shortest value the
    /// grammar allows, counted in tokens of the model's vocabulary.
    #[error(
        "token budget too small: {max_tokens} tokens are left for the output (max_tokens or the room left in the \
         context) but the shortest value the schema allows needs {needed}"
    )]
    BudgetTooSmall {
        /// Tokens needed at least (`u64::MAX`: more than any budget).
        needed: u64,
        /// Tokens available.
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
    /// A JSON Schema was given to a build without the `json-schema` feature.
    #[error(
        "JSON Schema constraints need the `json-schema` feature, which this build of PicoLM leaves out (the JSON \
         object and value modes work without it)"
    )]
    SchemaDisabled,
    /// No token of the vocabulary can continue the value (the vocabulary lacks single-byte tokens).
    #[error("no token of the vocabulary can continue the constrained output after {0:?}")]
    NoAllowedToken(String),
}
