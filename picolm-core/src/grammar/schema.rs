//! Compiles a JSON Schema (the subset agents use for tool arguments) into a graph of [`SchemaNode`]s that the
//! byte-level automaton follows.
//!
//! Supported: `type` (one name or a list), `properties`, `required`, `additionalProperties` (`false` by default
//! when `properties` is given, any value when it is not; `true` or a schema), `enum`, `const`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength` (in characters), `anyOf`, nested objects and arrays, and the
//! boolean schema `true`. Annotations (`title`, `description`, `default`, `examples`, `format`, `$schema`,
//! `$id`, `$comment`, `deprecated`, `readOnly`, `writeOnly`) are ignored. Every other keyword is refused with
//! [`GrammarError::UnsupportedKeyword`], because ignoring it would let outputs through that do not validate.

use serde_json::Value;

use super::error::GrammarError;

/// Index of a node in [`CompiledSchema::nodes`].
pub type NodeId = u32;

/// Deepest schema nesting accepted.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Most properties one object schema may declare (the automaton tracks them in a 64-bit set).
pub const MAX_PROPERTIES: usize = 64;

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
    /// A string with a length range in characters.
    String {
        /// Fewest characters.
        min_len: u32,
        /// Most characters (`u32::MAX` = unbounded).
        max_len: u32,
    },
    /// A number (`integer_only`: no fraction or exponent).
    Number {
        /// Only integers.
        integer_only: bool,
    },
    /// One of a fixed set of values, each kept as its compact JSON text (index into the literal table).
    Literals(Vec<u32>),
    /// Any of several schemas.
    AnyOf(Vec<NodeId>),
}

/// A schema compiled to nodes plus the literal table they refer to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompiledSchema {
    /// All nodes; node 0 is the root.
    pub nodes: Vec<SchemaNode>,
    /// Byte strings matched exactly (keywords, enum values, property keys with their quotes).
    pub literals: Vec<Vec<u8>>,
    /// Shortest complete value of each node, in bytes (compact form).
    pub min_len: Vec<usize>,
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

const IGNORED: &[&str] = &[
    "title", "description", "default", "examples", "format", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "type", "properties", "required", "additionalProperties", "enum", "const", "items",
    "minItems", "maxItems", "minLength", "maxLength", "anyOf",
];

impl CompiledSchema {
    /// The schema that accepts any JSON value.
    pub fn any() -> CompiledSchema {
        let mut c = CompiledSchema::default();
        c.nodes.push(SchemaNode::Any);
        c.finish();
        c
    }

    /// Compiles a schema given as a JSON value.
    pub fn compile(schema: &Value) -> Result<CompiledSchema, GrammarError> {
        let mut c = CompiledSchema::default();
        c.nodes.push(SchemaNode::Any); // placeholder for the root
        let root = c.node(schema, "#", 0)?;
        c.nodes[0] = c.nodes[root as usize].clone();
        c.finish();
        Ok(c)
    }

    /// Compiles a schema given as JSON text.
    pub fn compile_str(schema: &str) -> Result<CompiledSchema, GrammarError> {
        let v: Value = serde_json::from_str(schema)
            .map_err(|e| GrammarError::InvalidSchema { path: "#".into(), why: format!("not JSON: {e}") })?;
        CompiledSchema::compile(&v)
    }

    /// The id of a literal, added to the table if it is not there yet.
    pub(crate) fn literal(&mut self, bytes: Vec<u8>) -> u32 {
        if let Some(i) = self.literals.iter().position(|l| *l == bytes) {
            return i as u32;
        }
        self.literals.push(bytes);
        (self.literals.len() - 1) as u32
    }

    fn push(&mut self, n: SchemaNode) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }

    fn node(&mut self, s: &Value, path: &str, depth: usize) -> Result<NodeId, GrammarError> {
        let invalid = |why: String| GrammarError::InvalidSchema { path: path.to_string(), why };
        if depth > MAX_SCHEMA_DEPTH {
            return Err(invalid(format!("nested deeper than {MAX_SCHEMA_DEPTH} levels")));
        }
        let obj = match s {
            Value::Bool(true) => return Ok(self.push(SchemaNode::Any)),
            Value::Bool(false) => return Err(invalid("the schema `false` accepts no value".into())),
            Value::Object(o) => o,
            other => return Err(invalid(format!("a schema must be an object or a boolean, not {other}"))),
        };
        if let Some(k) = obj.keys().find(|k| !IGNORED.contains(&k.as_str())) {
            return Err(GrammarError::UnsupportedKeyword { keyword: k.clone(), path: path.to_string() });
        }
        if let Some(c) = obj.get("const") {
            let lit = self.literal(serde_json::to_vec(c).expect("JSON values serialize"));
            return Ok(self.push(SchemaNode::Literals(vec![lit])));
        }
        if let Some(e) = obj.get("enum") {
            let list = e.as_array().ok_or_else(|| invalid("`enum` must be an array".into()))?;
            if list.is_empty() {
                return Err(invalid("`enum` is empty: no value can match".into()));
            }
            let lits = list.iter().map(|v| self.literal(serde_json::to_vec(v).expect("JSON values serialize"))).collect();
            return Ok(self.push(SchemaNode::Literals(lits)));
        }
        if let Some(a) = obj.get("anyOf") {
            let list = a.as_array().ok_or_else(|| invalid("`anyOf` must be an array".into()))?;
            if list.is_empty() {
                return Err(invalid("`anyOf` is empty: no value can match".into()));
            }
            if obj.contains_key("type") {
                return Err(GrammarError::UnsupportedKeyword { keyword: "type beside anyOf".into(), path: path.into() });
            }
            let mut alts = Vec::new();
            for (i, sub) in list.iter().enumerate() {
                alts.push(self.node(sub, &format!("{path}/anyOf/{i}"), depth + 1)?);
            }
            return Ok(self.push(SchemaNode::AnyOf(alts)));
        }
        let types: Vec<&str> = match obj.get("type") {
            None => Vec::new(),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .map(|t| t.as_str().ok_or_else(|| invalid(format!("`type` entries must be strings, got {t}"))))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid(format!("`type` must be a string or a list, got {other}"))),
        };
        if types.is_empty() {
            // No type: infer from the keywords present, else any value.
            if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
                return self.typed(obj, "object", path, depth);
            }
            if obj.contains_key("items") {
                return self.typed(obj, "array", path, depth);
            }
            return Ok(self.push(SchemaNode::Any));
        }
        if types.len() == 1 {
            return self.typed(obj, types[0], path, depth);
        }
        let mut alts = Vec::new();
        for t in types {
            alts.push(self.typed(obj, t, path, depth)?);
        }
        Ok(self.push(SchemaNode::AnyOf(alts)))
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
                    .ok_or_else(|| invalid(format!("`{key}` must be a non-negative integer, got {v}"))),
            }
        };
        match ty {
            "string" => {
                let (min_len, max_len) = (count("minLength", 0)?, count("maxLength", u32::MAX)?);
                if min_len > max_len {
                    return Err(invalid(format!("minLength {min_len} > maxLength {max_len}")));
                }
                Ok(self.push(SchemaNode::String { min_len, max_len }))
            }
            "number" => Ok(self.push(SchemaNode::Number { integer_only: false })),
            "integer" => Ok(self.push(SchemaNode::Number { integer_only: true })),
            "boolean" => {
                let (t, f) = (self.literal(b"true".to_vec()), self.literal(b"false".to_vec()));
                Ok(self.push(SchemaNode::Literals(vec![t, f])))
            }
            "null" => {
                let n = self.literal(b"null".to_vec());
                Ok(self.push(SchemaNode::Literals(vec![n])))
            }
            "array" => {
                let items = match obj.get("items") {
                    None => self.push(SchemaNode::Any),
                    Some(s) => self.node(s, &format!("{path}/items"), depth + 1)?,
                };
                let (min_items, max_items) = (count("minItems", 0)?, count("maxItems", u32::MAX)?);
                if min_items > max_items {
                    return Err(invalid(format!("minItems {min_items} > maxItems {max_items}")));
                }
                Ok(self.push(SchemaNode::Array { items, min_items, max_items }))
            }
            "object" => self.object(obj, path, depth),
            other => Err(invalid(format!("unknown type {other:?}"))),
        }
    }

    fn object(&mut self, obj: &serde_json::Map<String, Value>, path: &str, depth: usize) -> Result<NodeId, GrammarError> {
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
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
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
            let key_literal = self.literal(serde_json::to_vec(&Value::String(name.clone())).expect("strings serialize"));
            properties.push(Property { name: name.clone(), key_literal, node, required: required.contains(&name.as_str()) });
        }
        let additional = match obj.get("additionalProperties") {
            None if props.is_empty() => Some(self.push(SchemaNode::Any)),
            None | Some(Value::Bool(false)) => None,
            Some(s) => Some(self.node(s, &format!("{path}/additionalProperties"), depth + 1)?),
        };
        let declared_hashes = properties
            .iter()
            .map(|p| {
                let lit = &self.literals[p.key_literal as usize];
                fnv1a(&lit[1..lit.len() - 1])
            })
            .collect();
        Ok(self.push(SchemaNode::Object { properties, additional, declared_hashes }))
    }

    /// Computes the shortest value length of every node (the graph has no cycles).
    fn finish(&mut self) {
        self.min_len = vec![0; self.nodes.len()];
        // Children always have larger ids than ... not guaranteed (root copy), so iterate to a fixed point.
        let mut known = vec![false; self.nodes.len()];
        loop {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                if known[i] {
                    continue;
                }
                let v = match &self.nodes[i] {
                    SchemaNode::Any => Some(1), // `0`
                    SchemaNode::Number { .. } => Some(1),
                    SchemaNode::String { min_len, .. } => Some(2 + *min_len as usize),
                    SchemaNode::Literals(l) => l.iter().map(|&x| self.literals[x as usize].len()).min(),
                    SchemaNode::AnyOf(alts) => {
                        if alts.iter().all(|&a| known[a as usize]) {
                            alts.iter().map(|&a| self.min_len[a as usize]).min()
                        } else {
                            None
                        }
                    }
                    SchemaNode::Array { items, min_items, .. } => known[*items as usize].then(|| {
                        let n = *min_items as usize;
                        2 + n * self.min_len[*items as usize] + n.saturating_sub(1)
                    }),
                    SchemaNode::Object { properties, .. } => {
                        if properties.iter().all(|p| !p.required || known[p.node as usize]) {
                            let req: Vec<usize> = properties
                                .iter()
                                .filter(|p| p.required)
                                .map(|p| self.literals[p.key_literal as usize].len() + 1 + self.min_len[p.node as usize])
                                .collect();
                            Some(2 + req.iter().sum::<usize>() + req.len().saturating_sub(1))
                        } else {
                            None
                        }
                    }
                };
                if let Some(v) = v {
                    self.min_len[i] = v;
                    known[i] = true;
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }
}
