//! Grammar-constrained decoding: a byte-level JSON pushdown automaton, a JSON Schema compiler targeting it
//! (feature `json-schema`), and the token mask that keeps generation inside the grammar.
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
mod closing;
mod constraint;
mod error;
mod format;
mod range;
mod schema;
mod token_cost;
// The value checks also serve the schema-free parts (bounded numbers of `enum`/`const`); only the `validate`
// entry point needs the schema compiler.
#[cfg_attr(not(feature = "json-schema"), allow(dead_code))]
mod validate;
mod vocab_index;

pub use automaton::{Grammar, State, MAX_DEPTH};
pub use constraint::{JsonConstraint, TokenConstraint};
pub use error::GrammarError;
pub use format::StringFormat;
pub use range::{NumRange, RangeFrame, RangePhase, MAX_BOUNDED_NUMBER_DIGITS};
pub use schema::{
    CompiledSchema, LiteralTrie, LiteralTrieNode, NodeId, Property, SchemaNode, MAX_LITERAL_BYTES, MAX_PARALLEL_PARSES,
    MAX_PROPERTIES, MAX_SCHEMA_NODES,
};
#[cfg(feature = "json-schema")]
pub use validate::validate;
pub use vocab_index::VocabIndex;

/// Default bound on consecutive whitespace bytes between JSON tokens: 0, compact JSON (no insignificant
/// whitespace; it also saves tokens). [`Grammar::new`] takes another bound.
pub const DEFAULT_MAX_WHITESPACE: u8 = 0;

/// What a JSON mode constrains the output to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JsonMode {
    /// One JSON object (like OpenAI's `json_object` response format): what agents and tool calls need.
    Object,
    /// Any JSON value (RFC 8259): also bare numbers, strings, arrays, `true`, `false`, `null`.
    Value,
}

impl JsonMode {
    /// The mode's name: `"object"` or `"value"` (the names the C API, the CLI and Python use too).
    pub fn name(self) -> &'static str {
        match self {
            JsonMode::Object => "object",
            JsonMode::Value => "value",
        }
    }

    /// The mode called `name` (`"object"` or `"value"`).
    pub fn from_name(name: &str) -> Option<JsonMode> {
        match name {
            "object" => Some(JsonMode::Object),
            "value" => Some(JsonMode::Value),
            _ => None,
        }
    }
}

impl Grammar {
    /// Any JSON value (RFC 8259), compact.
    pub fn json() -> Grammar {
        Grammar::new(CompiledSchema::any(), DEFAULT_MAX_WHITESPACE)
    }

    /// One JSON object with any members, compact (OpenAI's `json_object` mode).
    pub fn json_object() -> Grammar {
        Grammar::new(CompiledSchema::any_object(), DEFAULT_MAX_WHITESPACE)
    }

    /// The grammar of a JSON mode.
    pub fn for_mode(mode: JsonMode) -> Grammar {
        match mode {
            JsonMode::Object => Grammar::json_object(),
            JsonMode::Value => Grammar::json(),
        }
    }

    /// Values valid against a JSON Schema (see [`CompiledSchema`] for the supported subset);
    /// [`GrammarError::SchemaDisabled`] without the `json-schema` feature.
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

#[cfg(all(test, feature = "json-schema"))]
mod budget_props;
#[cfg(all(test, feature = "json-schema"))]
mod range_props;
#[cfg(all(test, feature = "json-schema"))]
mod tests;
