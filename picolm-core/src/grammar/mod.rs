//! Grammar-constrained decoding: a byte-level JSON pushdown automaton, a JSON Schema compiler targeting it, and
//! the token mask that keeps generation inside the grammar.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use picolm_core::grammar::{Grammar, JsonConstraint, VocabIndex};
//! # fn demo(model: &picolm_core::Model) -> Result<(), picolm_core::Error> {
//! let schema = serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
//! let grammar = Arc::new(Grammar::from_schema(&schema)?);
//! let constraint = JsonConstraint::new(grammar, model.grammar_vocab());
//! # let _ = constraint; Ok(()) }
//! ```
//! Guarantee: a generation that ends with [`crate::StopReason::GrammarComplete`] (or an end token where a
//! top-level number may end) produced one JSON value that parses and validates against the schema; the mask keeps
//! enough of `max_tokens` to close the value, so the value is never cut off by the token limit.

mod automaton;
mod constraint;
mod error;
mod schema;
mod validate;
mod vocab_index;

pub use automaton::{Grammar, State, MAX_DEPTH};
pub use constraint::JsonConstraint;
pub use error::GrammarError;
pub use schema::{CompiledSchema, NodeId, Property, SchemaNode, MAX_PROPERTIES};
pub use validate::validate;
pub use vocab_index::VocabIndex;

/// Default bound on consecutive whitespace bytes between JSON tokens.
pub const DEFAULT_MAX_WHITESPACE: u8 = 16;

impl Grammar {
    /// Any JSON value (RFC 8259).
    pub fn json() -> Grammar {
        Grammar::new(CompiledSchema::any(), DEFAULT_MAX_WHITESPACE)
    }

    /// Values valid against a JSON Schema (see [`CompiledSchema`] for the supported subset).
    pub fn from_schema(schema: &serde_json::Value) -> Result<Grammar, GrammarError> {
        Ok(Grammar::new(CompiledSchema::compile(schema)?, DEFAULT_MAX_WHITESPACE))
    }

    /// [`Grammar::from_schema`] from JSON text.
    pub fn from_schema_str(schema: &str) -> Result<Grammar, GrammarError> {
        Ok(Grammar::new(CompiledSchema::compile_str(schema)?, DEFAULT_MAX_WHITESPACE))
    }

    /// Whether `text` is exactly one complete value of this grammar.
    pub fn accepts(&self, text: &[u8]) -> bool {
        let s = self.advance(&self.initial_state(), text);
        self.is_complete(&s) || self.can_end(&s)
    }
}

#[cfg(test)]
mod tests;
