//! The error of parsing a parameter given by name (`"q8_0"`, `"required"`, ...): the `FromStr` impls of the
//! parameter enums return it, so every binding reports a bad name the same way.

/// A name that is not one of a parameter's accepted names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {given:?} is not one of {accepted}")]
pub struct UnknownName {
    /// The parameter (e.g. "KV cache type").
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The accepted names, comma-separated.
    pub accepted: &'static str,
}
