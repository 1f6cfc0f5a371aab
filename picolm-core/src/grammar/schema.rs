//! Compiles a JSON Schema (the subset agents use for tool arguments) into a graph of [`SchemaNode`]s that the
//! byte-level automaton follows.
//!
//! Supported: `type` (one name or a list), `properties`, `required`, `additionalProperties` (`false` by default
//! when `properties` is given, even empty; any value when it is not; `true` or a schema), `enum`, `const`,
//! `items`, `minItems`/`maxItems`, `minLength`/`maxLength` (in characters), `format` (`date`, `date-time`,
//! `email`, `uuid`; see [`StringFormat`]), `anyOf`, nested objects and arrays, the boolean schema `true`, and the
//! numeric bounds `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (see [`NumRange`]; `multipleOf` only
//! where every integer satisfies it).
//! Annotations (`title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `deprecated`,
//! `readOnly`, `writeOnly`) are ignored. Every other keyword, and any other format, is refused with
//! [`GrammarError::UnsupportedKeyword`], because ignoring it would let outputs through that do not validate.
//!
//! Compilation is linear in the schema's size and bounded: at most [`MAX_SCHEMA_NODES`] nodes,
//! [`MAX_LITERAL_BYTES`] bytes of `enum`/`const`/property-name text, [`MAX_PARALLEL_PARSES`] alternatives alive at
//! once, nesting depth 32; a schema beyond a bound is refused with [`GrammarError::TooLarge`]. Lengths are computed
//! with saturating arithmetic, so a schema whose shortest value is astronomically long is refused by the token
//! budget check instead of wrapping around.
//!
//! Without the `json-schema` feature only the built-in schemas ([`CompiledSchema::any`],
//! [`CompiledSchema::any_object`]) exist: the compiler below is left out of the build.
#![cfg_attr(not(feature = "json-schema"), allow(dead_code))]

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::error::GrammarError;
use super::format::StringFormat;
use super::range::NumRange;

/// Index of a node in [`CompiledSchema::nodes`].
pub type NodeId = u32;

/// Deepest schema nesting accepted.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Most properties one object schema may declare (the automaton tracks them in a 64-bit set).
pub const MAX_PROPERTIES: usize = 64;
/// Most compiled nodes of one schema.
pub const MAX_SCHEMA_NODES: usize = 20_000;
/// Most bytes of literal text (`enum` and `const` values as compact JSON, property names) of one schema.
pub const MAX_LITERAL_BYTES: usize = 4 << 20;
/// Most parses the automaton may have to follow at once (`anyOf` alternatives multiply along the nesting).
pub const MAX_PARALLEL_PARSES: u64 = 1024;

/// One property of an object schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// Property name.
    pub name: String,
    /// The name as a JSON string literal with its quotes (`"name"`), the bytes the automaton matches.
    pub key_literal: u32,
    /// Schema of its value.
    pub node: NodeId,
    /// Whether it must appear.
    pub required: bool,
}

/// A byte trie over the literal values of an `enum`/`const` node, so that one parse follows all of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiteralTrie {
    /// Trie nodes; node 0 is the root (the empty prefix).
    pub nodes: Vec<LiteralTrieNode>,
}

/// A node of a [`LiteralTrie`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiteralTrieNode {
    /// Children as (byte, node index), sorted by byte.
    pub children: Vec<(u8, u32)>,
    /// The literal that ends here, if any (an index into [`CompiledSchema::literals`]).
    pub terminal: Option<u32>,
    /// Bytes from the root.
    pub depth: u32,
}

impl LiteralTrie {
    /// The child of `node` along byte `b`.
    pub fn child(&self, node: u32, b: u8) -> Option<u32> {
        let c = &self.nodes[node as usize].children;
        c.binary_search_by_key(&b, |x| x.0).ok().map(|i| c[i].1)
    }

    fn insert(&mut self, bytes: &[u8], id: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(LiteralTrieNode::default());
        }
        let mut n = 0usize;
        for (depth, &b) in bytes.iter().enumerate() {
            n = match self.nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[n].children[i].1 as usize,
                Err(i) => {
                    let new = self.nodes.len() as u32;
                    self.nodes.push(LiteralTrieNode { depth: depth as u32 + 1, ..Default::default() });
                    self.nodes[n].children.insert(i, (b, new));
                    new as usize
                }
            };
        }
        self.nodes[n].terminal.get_or_insert(id);
    }
}

/// A compiled schema element.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaNode {
    /// Any JSON value.
    Any,
    /// An object.
    Object {
        /// Declared properties, in schema order.
        properties: Vec<Property>,
        /// Schema of undeclared properties; `None` forbids them.
        additional: Option<NodeId>,
        /// FNV-1a hashes of the declared names (an undeclared key must differ from all of them).
        declared_hashes: Vec<u64>,
    },
    /// An array.
    Array {
        /// Schema of every item.
        items: NodeId,
        /// Fewest items.
        min_items: u32,
        /// Most items (`u32::MAX` = unbounded).
        max_items: u32,
    },
    /// A string with a length range in characters and an optional format.
    String {
        /// Fewest characters.
        min_len: u32,
        /// Most characters (`u32::MAX` = unbounded).
        max_len: u32,
        /// Its format, if any.
        format: Option<StringFormat>,
    },
    /// A number (`integer_only`: no fraction or exponent).
    Number {
        /// Only integers.
        integer_only: bool,
    },
    /// A number or integer with bounds (see [`NumRange`]).
    BoundedNumber(Box<NumRange>),
    /// One of a fixed set of values, each kept as its compact JSON text.
    Literals {
        /// The values (indices into [`CompiledSchema::literals`]), de-duplicated, in schema order.
        literals: Vec<u32>,
        /// Their bytes as a trie.
        trie: LiteralTrie,
    },
    /// Any of several schemas.
    AnyOf(Vec<NodeId>),
}

/// A schema compiled to nodes plus the literal table they refer to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompiledSchema {
    /// All nodes; node 0 is the root. Every other node's children have smaller ids than the node itself.
    pub nodes: Vec<SchemaNode>,
    /// Byte strings matched exactly (keywords, enum values, property keys with their quotes).
    pub literals: Vec<Vec<u8>>,
    /// Shortest complete value of each node, in bytes (compact form; saturating at `u64::MAX`).
    pub min_len: Vec<u64>,
    literal_ids: HashMap<Vec<u8>, u32>,
    literal_bytes: usize,
}

/// FNV-1a over bytes: the hash used to tell undeclared keys from declared ones.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continues an FNV-1a hash.
pub fn fnv1a_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];
/// Keywords that constrain and are enforced.
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "format",
    "anyOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
/// Keywords that bound numbers.
const NUMERIC: &[&str] = &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];

impl CompiledSchema {
    /// The schema that accepts any JSON value.
    pub fn any() -> CompiledSchema {
        let mut c = CompiledSchema::default();
        c.nodes.push(SchemaNode::Any);
        c.finish();
        c
    }

    /// The schema of JSON objects with any members (OpenAI's `json_object` response format).
    pub fn any_object() -> CompiledSchema {
        let mut c = CompiledSchema::default();
        // The root (node 0) may refer to a larger id; `finish` computes it last.
        c.nodes.push(SchemaNode::Object { properties: Vec::new(), additional: Some(1), declared_hashes: Vec::new() });
        c.nodes.push(SchemaNode::Any);
        c.finish();
        c
    }

    /// Compiles a schema given as a JSON value ([`GrammarError::SchemaDisabled`] without the `json-schema`
    /// feature).
    pub fn compile(schema: &Value) -> Result<CompiledSchema, GrammarError> {
        #[cfg(not(feature = "json-schema"))]
        {
            let _ = schema;
            Err(GrammarError::SchemaDisabled)
        }
        #[cfg(feature = "json-schema")]
        {
            let mut c = CompiledSchema::default();
            c.nodes.push(SchemaNode::Any); // placeholder for the root
            let root = c.node(schema, "#", 0)?;
            c.nodes[0] = c.nodes[root as usize].clone();
            c.finish();
            let parses = c.parallel_parses();
            if parses > MAX_PARALLEL_PARSES {
                return Err(GrammarError::TooLarge {
                    path: "#".into(),
                    what: format!("anyOf alternatives that the parser may have to follow at once ({parses})"),
                    limit: MAX_PARALLEL_PARSES as usize,
                });
            }
            Ok(c)
        }
    }

    /// Compiles a schema given as JSON text ([`GrammarError::SchemaDisabled`] without the `json-schema` feature).
    pub fn compile_str(schema: &str) -> Result<CompiledSchema, GrammarError> {
        if cfg!(not(feature = "json-schema")) {
            return Err(GrammarError::SchemaDisabled);
        }
        let v: Value = serde_json::from_str(schema)
            .map_err(|e| GrammarError::InvalidSchema { path: "#".into(), why: format!("not JSON: {e}") })?;
        CompiledSchema::compile(&v)
    }

    /// The id of a literal, added to the table if it is not there yet.
    pub(crate) fn literal(&mut self, bytes: Vec<u8>) -> u32 {
        if let Some(&i) = self.literal_ids.get(&bytes) {
            return i;
        }
        let id = self.literals.len() as u32;
        self.literal_bytes += bytes.len();
        self.literal_ids.insert(bytes.clone(), id);
        self.literals.push(bytes);
        id
    }

    fn literal_at(&mut self, bytes: Vec<u8>, path: &str) -> Result<u32, GrammarError> {
        if !self.literal_ids.contains_key(&bytes) && self.literal_bytes + bytes.len() > MAX_LITERAL_BYTES {
            return Err(GrammarError::TooLarge {
                path: path.into(),
                what: "bytes of enum, const and property-name text".into(),
                limit: MAX_LITERAL_BYTES,
            });
        }
        Ok(self.literal(bytes))
    }

    fn push(&mut self, n: SchemaNode, path: &str) -> Result<NodeId, GrammarError> {
        if self.nodes.len() >= MAX_SCHEMA_NODES {
            return Err(GrammarError::TooLarge {
                path: path.into(),
                what: "schema nodes".into(),
                limit: MAX_SCHEMA_NODES,
            });
        }
        self.nodes.push(n);
        Ok((self.nodes.len() - 1) as NodeId)
    }

    fn literals_node(&mut self, values: &[&Value], path: &str) -> Result<NodeId, GrammarError> {
        let mut literals = Vec::new();
        let mut seen = HashSet::new();
        let mut trie = LiteralTrie::default();
        for v in values {
            let id = self.literal_at(serde_json::to_vec(v).expect("JSON values serialize"), path)?;
            if seen.insert(id) {
                literals.push(id);
                trie.insert(&self.literals[id as usize], id);
            }
        }
        self.push(SchemaNode::Literals { literals, trie }, path)
    }

    fn node(&mut self, s: &Value, path: &str, depth: usize) -> Result<NodeId, GrammarError> {
        let invalid = |why: String| GrammarError::InvalidSchema { path: path.to_string(), why };
        if depth > MAX_SCHEMA_DEPTH {
            return Err(invalid(format!("nested deeper than {MAX_SCHEMA_DEPTH} levels")));
        }
        let obj = match s {
            Value::Bool(true) => return self.push(SchemaNode::Any, path),
            Value::Bool(false) => return Err(invalid("the schema `false` accepts no value".into())),
            Value::Object(o) => o,
            other => return Err(invalid(format!("a schema must be an object or a boolean, not {other}"))),
        };
        if let Some(k) = obj.keys().find(|k| !ANNOTATIONS.contains(&k.as_str()) && !ENFORCED.contains(&k.as_str())) {
            return Err(GrammarError::UnsupportedKeyword { keyword: k.clone(), path: path.to_string() });
        }
        let beside = |what: &str, allowed: &[&str]| -> Result<(), GrammarError> {
            match obj.keys().find(|k| ENFORCED.contains(&k.as_str()) && !allowed.contains(&k.as_str())) {
                Some(k) => {
                    Err(GrammarError::UnsupportedKeyword { keyword: format!("{k} beside {what}"), path: path.into() })
                }
                None => Ok(()),
            }
        };
        let types = parse_types(obj).map_err(invalid)?;
        let format = match obj.get("format") {
            None => None,
            Some(Value::String(f)) => {
                Some(StringFormat::from_name(f).ok_or_else(|| GrammarError::UnsupportedKeyword {
                    keyword: format!("format {f:?} (supported: date, date-time, email, uuid)"),
                    path: path.into(),
                })?)
            }
            Some(f) => return Err(invalid(format!("`format` must be a string, got {f}"))),
        };
        if obj.contains_key("const") || obj.contains_key("enum") {
            beside(
                "enum/const",
                &[
                    "enum",
                    "const",
                    "type",
                    "minLength",
                    "maxLength",
                    "format",
                    "minItems",
                    "maxItems",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "multipleOf",
                ],
            )?;
            let values: Vec<&Value> = match (obj.get("const"), obj.get("enum")) {
                (Some(c), None) => vec![c],
                (_, Some(Value::Array(list))) if list.is_empty() => {
                    return Err(invalid("`enum` is empty: no value can match".into()))
                }
                (None, Some(Value::Array(list))) => list.iter().collect(),
                // Both: the const, if the enum lists it.
                (Some(c), Some(Value::Array(list))) => list.iter().filter(|v| *v == c).collect(),
                (_, Some(_)) => return Err(invalid("`enum` must be an array".into())),
                (None, None) => unreachable!("checked above"),
            };
            // The keywords beside enum/const still constrain the value: keep the values that satisfy them.
            let mut kept = Vec::with_capacity(values.len());
            for v in values {
                if literal_satisfies(v, obj, &types, format).map_err(invalid)? {
                    kept.push(v);
                }
            }
            if kept.is_empty() {
                return Err(invalid("no `enum`/`const` value satisfies the other keywords: no value can match".into()));
            }
            return self.literals_node(&kept, path);
        }
        if let Some(a) = obj.get("anyOf") {
            let list = a.as_array().ok_or_else(|| invalid("`anyOf` must be an array".into()))?;
            if list.is_empty() {
                return Err(invalid("`anyOf` is empty: no value can match".into()));
            }
            beside("anyOf", &["anyOf"])?;
            let mut alts = Vec::new();
            for (i, sub) in list.iter().enumerate() {
                alts.push(self.node(sub, &format!("{path}/anyOf/{i}"), depth + 1)?);
            }
            return self.push(SchemaNode::AnyOf(alts), path);
        }
        if types.is_empty() {
            // No type: infer from the keywords present, else any value.
            // Every keyword that constrains only one type implies it: the value is then generated as that type, a
            // subset of what the schema admits. Treating such a schema as "any value" would ignore the keyword
            // (the schema fuzzer found `{"minItems":1,"maxItems":2}` accepting a three-item array).
            if ["properties", "additionalProperties", "required"].iter().any(|k| obj.contains_key(*k)) {
                return self.typed(obj, "object", path, depth);
            }
            if ["items", "minItems", "maxItems"].iter().any(|k| obj.contains_key(*k)) {
                return self.typed(obj, "array", path, depth);
            }
            if format.is_some() || obj.contains_key("minLength") || obj.contains_key("maxLength") {
                return self.typed(obj, "string", path, depth);
            }
            if NUMERIC.iter().any(|k| obj.contains_key(*k)) {
                return self.typed(obj, "number", path, depth);
            }
            return self.push(SchemaNode::Any, path);
        }
        if types.len() == 1 {
            return self.typed(obj, types[0], path, depth);
        }
        let mut alts = Vec::new();
        for t in types {
            alts.push(self.typed(obj, t, path, depth)?);
        }
        self.push(SchemaNode::AnyOf(alts), path)
    }

    fn typed(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        ty: &str,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let invalid = |why: String| GrammarError::InvalidSchema { path: path.to_string(), why };
        let count = |key: &str, default: u32| -> Result<u32, GrammarError> {
            match obj.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n < u32::MAX as u64)
                    .map(|n| n as u32)
                    .ok_or_else(|| invalid(format!("`{key}` must be an integer in [0, {}), got {v}", u32::MAX))),
            }
        };
        match ty {
            "string" => {
                let (min_len, max_len) = (count("minLength", 0)?, count("maxLength", u32::MAX)?);
                if min_len > max_len {
                    return Err(invalid(format!("minLength {min_len} > maxLength {max_len}")));
                }
                let format = obj.get("format").and_then(Value::as_str).and_then(StringFormat::from_name);
                if obj.contains_key("format") && format.is_none() {
                    return Err(invalid("`format` must be a supported format name".into()));
                }
                if let Some(f) = format {
                    if max_len < f.min_len() {
                        return Err(invalid(format!(
                            "maxLength {max_len} is shorter than the shortest {:?} value ({} characters)",
                            f.name(),
                            f.min_len()
                        )));
                    }
                    if min_len > f.min_len() {
                        return Err(GrammarError::UnsupportedKeyword {
                            keyword: format!(
                                "minLength {min_len} with format {:?} (at most {}, its shortest value)",
                                f.name(),
                                f.min_len()
                            ),
                            path: path.into(),
                        });
                    }
                }
                self.push(SchemaNode::String { min_len, max_len, format }, path)
            }
            "number" | "integer" => {
                let integer_only = ty == "integer";
                match NumRange::compile(obj, integer_only, path)? {
                    Some(r) => self.push(SchemaNode::BoundedNumber(Box::new(r)), path),
                    None => self.push(SchemaNode::Number { integer_only }, path),
                }
            }
            "boolean" => self.literals_node(&[&Value::Bool(true), &Value::Bool(false)], path),
            "null" => self.literals_node(&[&Value::Null], path),
            "array" => {
                let items = match obj.get("items") {
                    None => self.push(SchemaNode::Any, path)?,
                    Some(s) => self.node(s, &format!("{path}/items"), depth + 1)?,
                };
                let (min_items, max_items) = (count("minItems", 0)?, count("maxItems", u32::MAX)?);
                if min_items > max_items {
                    return Err(invalid(format!("minItems {min_items} > maxItems {max_items}")));
                }
                self.push(SchemaNode::Array { items, min_items, max_items }, path)
            }
            "object" => self.object(obj, path, depth),
            other => Err(invalid(format!("unknown type {other:?}"))),
        }
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<NodeId, GrammarError> {
        let invalid = |why: String| GrammarError::InvalidSchema { path: path.to_string(), why };
        let empty = serde_json::Map::new();
        let props = match obj.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(other) => return Err(invalid(format!("`properties` must be an object, got {other}"))),
        };
        if props.len() > MAX_PROPERTIES {
            return Err(invalid(format!("{} properties; at most {MAX_PROPERTIES} are supported", props.len())));
        }
        let required: HashSet<&str> = match obj.get("required") {
            None => HashSet::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|x| x.as_str().ok_or_else(|| invalid(format!("`required` entries must be strings, got {x}"))))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid(format!("`required` must be an array, got {other}"))),
        };
        if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
            return Err(GrammarError::UnsupportedKeyword {
                keyword: format!("required property {missing:?} that is not declared in `properties`"),
                path: path.into(),
            });
        }
        let mut properties = Vec::new();
        for (name, sub) in props {
            let node = self.node(sub, &format!("{path}/properties/{name}"), depth + 1)?;
            let key = serde_json::to_vec(&Value::String(name.clone())).expect("strings serialize");
            let key_literal = self.literal_at(key, path)?;
            properties.push(Property {
                name: name.clone(),
                key_literal,
                node,
                required: required.contains(name.as_str()),
            });
        }
        let additional = match obj.get("additionalProperties") {
            // No `properties` at all: any members. `properties` given (even `{}`): only those.
            None if !obj.contains_key("properties") => Some(self.push(SchemaNode::Any, path)?),
            None | Some(Value::Bool(false)) => None,
            Some(s) => Some(self.node(s, &format!("{path}/additionalProperties"), depth + 1)?),
        };
        let declared_hashes = properties.iter().map(|p| fnv1a(p.name.as_bytes())).collect();
        self.push(SchemaNode::Object { properties, additional, declared_hashes }, path)
    }

    /// Computes the shortest value length of every node. Children have smaller ids than their parents, except
    /// the root copy at 0, which is computed last.
    fn finish(&mut self) {
        self.min_len = vec![0; self.nodes.len()];
        let order = (1..self.nodes.len()).chain(std::iter::once(0));
        for i in order {
            let v = match &self.nodes[i] {
                SchemaNode::Any | SchemaNode::Number { .. } => 1, // `0`
                SchemaNode::BoundedNumber(r) => r.canonical().len() as u64,
                SchemaNode::String { min_len, format, .. } => {
                    2 + u64::from((*min_len).max(format.map_or(0, |f| f.min_len())))
                }
                SchemaNode::Literals { literals, .. } => {
                    literals.iter().map(|&x| self.literals[x as usize].len() as u64).min().unwrap_or(0)
                }
                SchemaNode::AnyOf(alts) => alts.iter().map(|&a| self.min_len[a as usize]).min().unwrap_or(0),
                SchemaNode::Array { items, min_items, .. } => {
                    let n = u64::from(*min_items);
                    n.saturating_mul(self.min_len[*items as usize])
                        .saturating_add(n.saturating_sub(1))
                        .saturating_add(2)
                }
                SchemaNode::Object { properties, .. } => {
                    let req = properties.iter().filter(|p| p.required);
                    let members = req.clone().count() as u64;
                    req.map(|p| {
                        (self.literals[p.key_literal as usize].len() as u64 + 1)
                            .saturating_add(self.min_len[p.node as usize])
                    })
                    .fold(2 + members.saturating_sub(1), u64::saturating_add)
                }
            };
            self.min_len[i] = v;
        }
    }

    /// An upper bound on the parses the automaton follows at once inside a value of each node: alternatives add
    /// up, nesting multiplies them.
    fn parallel_parses(&self) -> u64 {
        let mut w = vec![1u64; self.nodes.len()];
        for i in (1..self.nodes.len()).chain(std::iter::once(0)) {
            w[i] = match &self.nodes[i] {
                SchemaNode::AnyOf(alts) => alts.iter().map(|&a| w[a as usize]).fold(0, u64::saturating_add),
                SchemaNode::Array { items, .. } => w[*items as usize],
                SchemaNode::Object { properties, additional, .. } => {
                    let keys = (properties.len() as u64 + u64::from(additional.is_some())).max(1);
                    let values = properties.iter().map(|p| w[p.node as usize]).chain(additional.map(|a| w[a as usize]));
                    values.fold(keys, u64::max)
                }
                _ => 1,
            };
        }
        w[0]
    }
}

/// The `type` keyword as a de-duplicated list of names (empty when absent). A type listed twice counts once:
/// each entry would otherwise compile `items` and `properties` again.
fn parse_types(obj: &serde_json::Map<String, Value>) -> Result<Vec<&str>, String> {
    let mut types: Vec<&str> = match obj.get("type") {
        None => return Ok(Vec::new()),
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) if ts.is_empty() => return Err("`type` is an empty list: no value can match".into()),
        Some(Value::Array(ts)) => ts
            .iter()
            .map(|t| t.as_str().ok_or_else(|| format!("`type` entries must be strings, got {t}")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`type` must be a string or a list, got {other}")),
    };
    let mut seen = HashSet::new();
    types.retain(|t| seen.insert(*t));
    const KNOWN: &[&str] = &["string", "number", "integer", "boolean", "null", "array", "object"];
    if let Some(t) = types.iter().find(|t| !KNOWN.contains(t)) {
        return Err(format!("unknown type {t:?}"));
    }
    Ok(types)
}

/// Whether an `enum`/`const` value satisfies the value-local keywords beside it (`type`, string lengths and
/// format, array item counts, numeric bounds).
fn literal_satisfies(
    v: &Value,
    obj: &serde_json::Map<String, Value>,
    types: &[&str],
    format: Option<StringFormat>,
) -> Result<bool, String> {
    let count = |key: &str| -> Result<Option<u64>, String> {
        obj.get(key)
            .map(|x| x.as_u64().ok_or_else(|| format!("`{key}` must be a non-negative integer, got {x}")))
            .transpose()
    };
    let type_ok = |t: &str| match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
        return Ok(false);
    }
    let (min_len, max_len, min_items, max_items) =
        (count("minLength")?, count("maxLength")?, count("minItems")?, count("maxItems")?);
    if let Some(s) = v.as_str() {
        let n = s.chars().count() as u64;
        if min_len.is_some_and(|m| n < m) || max_len.is_some_and(|m| n > m) {
            return Ok(false);
        }
        if let Some(f) = format {
            let mut st = 0;
            for &b in s.as_bytes() {
                match f.step(st, b) {
                    Some(next) => st = next,
                    None => return Ok(false),
                }
            }
            if f.remaining(st) != 0 {
                return Ok(false);
            }
        }
    }
    super::range::check_keywords(obj)?;
    if v.as_number().is_some_and(|n| !super::validate::numeric_ok(n, obj)) {
        return Ok(false);
    }
    if let Some(a) = v.as_array() {
        let n = a.len() as u64;
        if min_items.is_some_and(|m| n < m) || max_items.is_some_and(|m| n > m) {
            return Ok(false);
        }
    }
    Ok(true)
}
