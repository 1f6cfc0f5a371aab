//! A byte-level pushdown automaton for RFC 8259 JSON, optionally restricted by a compiled schema.
//!
//! The state is a set of deterministic stacks (alternatives of `anyOf` and object keys run side by side until a
//! byte tells them apart; `enum` values share one parse through their literal trie). Stacks are persistent: the
//! top frame is held by value and the frames below are shared through `Arc` links, so cloning a state while
//! walking the vocabulary trie costs a few reference counts.
//!
//! Invariant (viable prefixes): every state with at least one stack can still be completed to a valid value.
//! [`Grammar::min_close`] gives the fewest bytes that completion needs; the token mask counts the same closing path
//! in tokens of the model's vocabulary (see `token_cost`) to keep enough of the token budget to close the value.

use std::sync::{Arc, Mutex, OnceLock};

use super::closing::ClosePlan;
use super::format::StringFormat;
use super::range::{NumRange, RangeFrame};
use super::schema::{fnv1a_extend, CompiledSchema, LiteralTrie, NodeId, SchemaNode};
use super::token_cost::Summary;

/// Deepest nesting of objects, arrays and strings.
pub const MAX_DEPTH: u16 = 48;
/// Most digits in the integer or fraction part of a number.
const MAX_NUMBER_DIGITS: u8 = 20;
/// Most digits in an exponent (keeps every number finite as an IEEE double, which common parsers need).
const MAX_EXPONENT_DIGITS: u8 = 2;
/// Marks a string that is not bound to a schema node (free string) or not a key.
pub(super) const NONE: NodeId = NodeId::MAX;
/// Property slot of an undeclared (additional) key.
pub(super) const ADDITIONAL: u8 = u8::MAX;

/// A compiled grammar: the schema and the whitespace policy.
#[derive(Debug)]
pub struct Grammar {
    pub(super) schema: CompiledSchema,
    pub(super) any: NodeId,
    max_ws: u8,
    /// Literal ids of `true`, `false` and `null` (values of unconstrained nodes).
    keywords: [u32; 3],
    /// Closing plans already built for vocabularies (by vocabulary id).
    pub(super) plans: Mutex<Vec<(u64, Arc<ClosePlan>)>>,
    /// The plan that counts bytes.
    pub(super) byte_plan: OnceLock<Arc<ClosePlan>>,
}

impl Clone for Grammar {
    fn clone(&self) -> Grammar {
        Grammar {
            schema: self.schema.clone(),
            any: self.any,
            max_ws: self.max_ws,
            keywords: self.keywords,
            plans: Mutex::new(Vec::new()),
            byte_plan: OnceLock::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Esc {
    None,
    Backslash,
    Hex { n: u8, val: u16, low: bool },
    NeedLowSlash,
    NeedLowU,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct StrFrame {
    pub(super) node: NodeId,
    pub(super) key_of: NodeId,
    pub(super) esc: Esc,
    pub(super) utf8_need: u8,
    pub(super) lo: u8,
    pub(super) hi: u8,
    pub(super) chars: u32,
    pub(super) hash: u64,
    /// State of the node's format machine (see [`StringFormat`]).
    pub(super) fmt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum NumPhase {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ObjPhase {
    Open,
    Key(u8),
    Colon(u8),
    Value,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum ArrPhase {
    Open,
    Value,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Frame {
    Root {
        done: bool,
    },
    /// Inside a single literal (a property key, or `true`/`false`/`null` of an unconstrained value).
    Lit {
        lit: u32,
        pos: u32,
    },
    /// Inside the literal trie of an `enum`/`const` node, at trie node `at`.
    Enum {
        node: NodeId,
        at: u32,
    },
    Str(StrFrame),
    Num {
        integer_only: bool,
        phase: NumPhase,
        digits: u8,
    },
    /// Inside a number with bounds.
    Range(RangeFrame),
    Obj {
        node: NodeId,
        phase: ObjPhase,
        seen: u64,
        ws: u8,
    },
    Arr {
        node: NodeId,
        count: u32,
        phase: ArrPhase,
        ws: u8,
    },
}

#[derive(Debug)]
pub(super) struct Link {
    pub(super) frame: Frame,
    pub(super) below: Option<Arc<Link>>,
    /// The token-cost summary of the closing path from this frame down (computed once per closing plan).
    pub(super) summary: OnceLock<(u64, Arc<Summary>)>,
    /// Bytes of the closing path from this frame down (per closing plan id).
    pub(super) bytes: OnceLock<(u64, u64)>,
}

/// One deterministic parse: the top frame and the frames below it.
#[derive(Clone, Debug)]
pub struct Stack {
    pub(super) top: Frame,
    pub(super) below: Option<Arc<Link>>,
    pub(super) depth: u16,
}

/// The automaton state: every parse still alive. Empty means the input was rejected.
pub type State = Vec<Stack>;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn hex_val(b: u8) -> Option<u16> {
    (b as char).to_digit(16).map(|d| d as u16)
}

impl Stack {
    fn with_top(&self, top: Frame) -> Stack {
        Stack { top, below: self.below.clone(), depth: self.depth }
    }

    /// `self` with its top replaced by `parent_top`, then `child` pushed. `None` past [`MAX_DEPTH`].
    fn push(&self, parent_top: Frame, child: Frame) -> Option<Stack> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        let link = Arc::new(Link {
            frame: parent_top,
            below: self.below.clone(),
            summary: OnceLock::new(),
            bytes: OnceLock::new(),
        });
        Some(Stack { top: child, below: Some(link), depth: self.depth + 1 })
    }

    fn pop(&self) -> Option<Stack> {
        let link = self.below.as_ref()?;
        Some(Stack { top: link.frame, below: link.below.clone(), depth: self.depth - 1 })
    }
}

#[cfg(all(test, feature = "json-schema"))]
impl Stack {
    /// The frames from the top down (a state key for exhaustive searches in tests).
    pub(super) fn key(&self) -> Vec<Frame> {
        let mut out = vec![self.top];
        let mut link = self.below.as_deref();
        while let Some(l) = link {
            out.push(l.frame);
            link = l.below.as_deref();
        }
        out
    }
}

impl Grammar {
    /// A grammar for a compiled schema; runs of more than `max_ws` whitespace bytes between tokens are refused
    /// (0: compact JSON, no insignificant whitespace).
    pub fn new(mut schema: CompiledSchema, max_ws: u8) -> Grammar {
        let keywords = [b"true".to_vec(), b"false".to_vec(), b"null".to_vec()].map(|w| schema.literal(w));
        let any = schema.nodes.len() as NodeId;
        schema.nodes.push(SchemaNode::Any);
        schema.min_len.push(1);
        Grammar { schema, any, max_ws, keywords, plans: Mutex::new(Vec::new()), byte_plan: OnceLock::new() }
    }

    /// The compiled schema.
    pub fn schema(&self) -> &CompiledSchema {
        &self.schema
    }

    /// The bound on consecutive whitespace bytes (0: compact).
    pub fn max_whitespace(&self) -> u8 {
        self.max_ws
    }

    /// The state before any byte.
    pub fn initial_state(&self) -> State {
        vec![Stack { top: Frame::Root { done: false }, below: None, depth: 0 }]
    }

    /// Feeds one byte to every parse of `state`, writing the survivors to `out` (cleared first).
    pub fn step_state(&self, state: &[Stack], b: u8, out: &mut State) {
        out.clear();
        for s in state {
            self.step(s, b, out);
        }
    }

    /// Feeds bytes; returns the resulting state (empty when rejected).
    pub fn advance(&self, state: &[Stack], bytes: &[u8]) -> State {
        let mut cur: State = state.to_vec();
        let mut next = State::new();
        for &b in bytes {
            self.step_state(&cur, b, &mut next);
            std::mem::swap(&mut cur, &mut next);
            if cur.is_empty() {
                break;
            }
        }
        cur
    }

    /// Whether a parse has finished the top-level value (generation stops here).
    pub fn is_complete(&self, state: &[Stack]) -> bool {
        state.iter().any(|s| s.depth == 0 && s.top == Frame::Root { done: true })
    }

    /// Whether the output may end here with an end-of-generation token: the value is complete, or a top-level
    /// number (or an `enum` value that longer values extend, like `1` beside `12`) may end.
    pub fn can_end(&self, state: &[Stack]) -> bool {
        self.is_complete(state) || state.iter().any(|s| self.open_top_level_end(s))
    }

    /// Whether `s` is a top-level number or enum value that may end here (only an end token can end it).
    pub(super) fn open_top_level_end(&self, s: &Stack) -> bool {
        s.depth == 1
            && match s.top {
                Frame::Num { phase, .. } => num_accepting(phase),
                Frame::Range(f) => self.num_range(f.node).accepting(&f),
                Frame::Enum { node, at } => self.lit_trie(node).nodes[at as usize].terminal.is_some(),
                _ => false,
            }
    }

    /// When the only parse is inside a string with no escape or multi-byte character open, no format, and (for a
    /// key) no declared name it could collide with, returns `(characters so far, min length, max length)`: every
    /// token made of plain string bytes then only adds its characters (the masking fast path).
    pub fn plain_string(&self, state: &[Stack]) -> Option<(u32, u32, u32)> {
        match state {
            [s] => match s.top {
                Frame::Str(f)
                    if f.esc == Esc::None
                        && f.utf8_need == 0
                        && self.str_format(&f).is_none()
                        && self.declared_hashes(&f).is_empty() =>
                {
                    let (min, max) = self.str_limits(&f);
                    Some((f.chars, min, max))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Fewest bytes that complete the value from `state` (plus one for the end token after a top-level number);
    /// `usize::MAX` for a rejected state or one whose completion is longer than `usize::MAX`.
    pub fn min_close(&self, state: &[Stack]) -> usize {
        let plan = self.byte_plan();
        let bytes = state.iter().map(|s| plan.stack_len(self, s)).min().unwrap_or(u64::MAX);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    pub(super) fn node(&self, id: NodeId) -> &SchemaNode {
        &self.schema.nodes[id as usize]
    }

    pub(super) fn lit(&self, id: u32) -> &[u8] {
        &self.schema.literals[id as usize]
    }

    /// The bounds of a `BoundedNumber` node.
    pub(super) fn num_range(&self, node: NodeId) -> &NumRange {
        match self.node(node) {
            SchemaNode::BoundedNumber(r) => r,
            other => unreachable!("a range frame on a {other:?} node"),
        }
    }

    pub(super) fn lit_trie(&self, node: NodeId) -> &LiteralTrie {
        match self.node(node) {
            SchemaNode::Literals { trie, .. } => trie,
            other => unreachable!("an enum frame on a {other:?} node"),
        }
    }

    fn step(&self, s: &Stack, b: u8, out: &mut State) {
        match s.top {
            Frame::Root { done: false } => self.start_value(0, b, s, Frame::Root { done: true }, out),
            Frame::Root { done: true } => {}
            Frame::Lit { lit, pos } => {
                let bytes = self.lit(lit);
                if bytes.get(pos as usize) == Some(&b) {
                    if pos as usize + 1 == bytes.len() {
                        out.extend(s.pop());
                    } else {
                        out.push(s.with_top(Frame::Lit { lit, pos: pos + 1 }));
                    }
                }
            }
            Frame::Enum { node, at } => {
                let trie = self.lit_trie(node);
                if let Some(child) = trie.child(at, b) {
                    if trie.nodes[child as usize].children.is_empty() {
                        out.extend(s.pop());
                    } else {
                        out.push(s.with_top(Frame::Enum { node, at: child }));
                    }
                } else if trie.nodes[at as usize].terminal.is_some() {
                    // A complete value that longer ones extend (`1` beside `12`): `b` belongs to the parent.
                    if let Some(parent) = s.pop() {
                        self.step(&parent, b, out);
                    }
                }
            }
            Frame::Str(f) => {
                if let Some(top) = self.step_str(f, b) {
                    out.push(s.with_top(Frame::Str(top)));
                } else if b == b'"' && f.esc == Esc::None && f.utf8_need == 0 && self.str_may_close(&f) {
                    out.extend(s.pop());
                }
            }
            Frame::Num { integer_only, phase, digits } => match step_num(integer_only, phase, digits, b) {
                Some((phase, digits)) => out.push(s.with_top(Frame::Num { integer_only, phase, digits })),
                None => {
                    if num_accepting(phase) {
                        if let Some(parent) = s.pop() {
                            self.step(&parent, b, out);
                        }
                    }
                }
            },
            Frame::Range(f) => {
                let r = self.num_range(f.node);
                match r.step(f, b) {
                    Some(next) => out.push(s.with_top(Frame::Range(next))),
                    None => {
                        if r.accepting(&f) {
                            if let Some(parent) = s.pop() {
                                self.step(&parent, b, out);
                            }
                        }
                    }
                }
            }
            Frame::Obj { node, phase, seen, ws } => self.step_obj(s, node, phase, seen, ws, b, out),
            Frame::Arr { node, count, phase, ws } => self.step_arr(s, node, count, phase, ws, b, out),
        }
    }

    /// A string frame at its start.
    pub(super) fn new_string(node: NodeId, key_of: NodeId, hash: u64) -> StrFrame {
        StrFrame { node, key_of, esc: Esc::None, utf8_need: 0, lo: 0, hi: 0, chars: 0, hash, fmt: 0 }
    }

    /// Starts a value of schema `node` with byte `b`; the parent frame becomes `parent_top`.
    fn start_value(&self, node: NodeId, b: u8, s: &Stack, parent_top: Frame, out: &mut State) {
        let push = |child: Frame, out: &mut State| {
            if let Some(st) = s.push(parent_top, child) {
                out.push(st);
            }
        };
        let obj = Frame::Obj { node, phase: ObjPhase::Open, seen: 0, ws: 0 };
        let arr = Frame::Arr { node, count: 0, phase: ArrPhase::Open, ws: 0 };
        match self.node(node) {
            SchemaNode::Any => match b {
                b'{' => push(obj, out),
                b'[' => push(arr, out),
                b'"' => push(Frame::Str(Self::new_string(NONE, NONE, 0)), out),
                b'-' | b'0'..=b'9' => self.start_number(false, b, s, parent_top, out),
                b't' | b'f' | b'n' => {
                    let lit = match b {
                        b't' => self.keywords[0],
                        b'f' => self.keywords[1],
                        _ => self.keywords[2],
                    };
                    push(Frame::Lit { lit, pos: 1 }, out);
                }
                _ => {}
            },
            SchemaNode::Object { .. } if b == b'{' => push(obj, out),
            SchemaNode::Array { .. } if b == b'[' => push(arr, out),
            SchemaNode::String { .. } if b == b'"' => push(Frame::Str(Self::new_string(node, NONE, 0)), out),
            SchemaNode::Number { integer_only } if b == b'-' || b.is_ascii_digit() => {
                self.start_number(*integer_only, b, s, parent_top, out)
            }
            SchemaNode::BoundedNumber(r) => {
                if let Some(f) = r.step(RangeFrame::start(node), b) {
                    push(Frame::Range(f), out);
                }
            }
            SchemaNode::Literals { trie, .. } => {
                if let Some(child) = trie.child(0, b) {
                    if trie.nodes[child as usize].children.is_empty() {
                        out.push(s.with_top(parent_top));
                    } else {
                        push(Frame::Enum { node, at: child }, out);
                    }
                }
            }
            SchemaNode::AnyOf(alts) => {
                for &a in alts {
                    self.start_value(a, b, s, parent_top, out);
                }
            }
            _ => {}
        }
    }

    fn start_number(&self, integer_only: bool, b: u8, s: &Stack, parent_top: Frame, out: &mut State) {
        if let Some((phase, digits)) = step_num(integer_only, NumPhase::Start, 0, b) {
            if let Some(st) = s.push(parent_top, Frame::Num { integer_only, phase, digits }) {
                out.push(st);
            }
        }
    }

    pub(super) fn str_limits(&self, f: &StrFrame) -> (u32, u32) {
        match (f.node != NONE).then(|| self.node(f.node)) {
            Some(SchemaNode::String { min_len, max_len, .. }) => (*min_len, *max_len),
            _ => (0, u32::MAX),
        }
    }

    pub(super) fn str_format(&self, f: &StrFrame) -> Option<StringFormat> {
        match (f.node != NONE).then(|| self.node(f.node)) {
            Some(SchemaNode::String { format, .. }) => *format,
            _ => None,
        }
    }

    /// Hashes of the declared property names of the object whose key `f` is (empty for value strings).
    pub(super) fn declared_hashes(&self, f: &StrFrame) -> &[u64] {
        match (f.key_of != NONE).then(|| self.node(f.key_of)) {
            Some(SchemaNode::Object { declared_hashes, .. }) => declared_hashes,
            _ => &[],
        }
    }

    fn str_may_close(&self, f: &StrFrame) -> bool {
        f.chars >= self.str_limits(f).0
            && self.str_format(f).is_none_or(|fm| fm.remaining(f.fmt) == 0)
            && !self.declared_hashes(f).contains(&f.hash)
    }

    /// One byte inside a string, other than the closing quote. `None` rejects (or closes, checked by the caller).
    fn step_str(&self, mut f: StrFrame, b: u8) -> Option<StrFrame> {
        if f.key_of != NONE {
            f.hash = fnv1a_extend(f.hash, &[b]);
        }
        let max = self.str_limits(&f).1;
        if let Some(format) = self.str_format(&f) {
            // Formatted strings are plain ASCII without escapes.
            if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) || f.chars >= max {
                return None;
            }
            let next = format.step(f.fmt, b)?;
            if u64::from(f.chars) + 1 + u64::from(format.remaining(next)) > u64::from(max) {
                return None;
            }
            f.fmt = next;
            f.chars += 1;
            return Some(f);
        }
        if f.utf8_need > 0 {
            if !(f.lo..=f.hi).contains(&b) {
                return None;
            }
            f.utf8_need -= 1;
            f.lo = 0x80;
            f.hi = 0xBF;
            return Some(f);
        }
        match f.esc {
            Esc::None => {}
            Esc::Backslash => {
                f.esc = match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Esc::None,
                    b'u' => Esc::Hex { n: 0, val: 0, low: false },
                    _ => return None,
                };
                return Some(f);
            }
            Esc::Hex { n, val, low } => {
                let h = hex_val(b)?;
                let val = val << 4 | h;
                let n = n + 1;
                if n == 1 && low && h != 0xD {
                    return None;
                }
                if n == 2 {
                    let surrogate_low = (0xDC..=0xDF).contains(&val);
                    if low != surrogate_low {
                        return None;
                    }
                }
                f.esc = if n < 4 {
                    Esc::Hex { n, val, low }
                } else if !low && (0xD800..=0xDBFF).contains(&val) {
                    Esc::NeedLowSlash
                } else {
                    Esc::None
                };
                return Some(f);
            }
            Esc::NeedLowSlash => {
                f.esc = if b == b'\\' { Esc::NeedLowU } else { return None };
                return Some(f);
            }
            Esc::NeedLowU => {
                f.esc = if b == b'u' { Esc::Hex { n: 0, val: 0, low: true } } else { return None };
                return Some(f);
            }
        }
        // Undeclared keys are written without escapes, so that their bytes are their names (compared with the
        // declared names by hash: a declared name cannot come back spelled differently).
        if b == b'"' || b < 0x20 || f.chars >= max || (b == b'\\' && f.key_of != NONE) {
            return None;
        }
        f.chars += 1;
        match b {
            b'\\' => f.esc = Esc::Backslash,
            0x00..=0x7F => {}
            0xC2..=0xDF => (f.utf8_need, f.lo, f.hi) = (1, 0x80, 0xBF),
            0xE0 => (f.utf8_need, f.lo, f.hi) = (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE | 0xEF => (f.utf8_need, f.lo, f.hi) = (2, 0x80, 0xBF),
            0xED => (f.utf8_need, f.lo, f.hi) = (2, 0x80, 0x9F),
            0xF0 => (f.utf8_need, f.lo, f.hi) = (3, 0x90, 0xBF),
            0xF1..=0xF3 => (f.utf8_need, f.lo, f.hi) = (3, 0x80, 0xBF),
            0xF4 => (f.utf8_need, f.lo, f.hi) = (3, 0x80, 0x8F),
            _ => return None,
        }
        Some(f)
    }

    /// Declared properties and the additional-property schema of an object node.
    pub(super) fn obj_shape(&self, node: NodeId) -> (&[super::schema::Property], Option<NodeId>) {
        match self.node(node) {
            SchemaNode::Object { properties, additional, .. } => (properties, *additional),
            _ => (&[], Some(self.any)),
        }
    }

    fn obj_can_close(&self, node: NodeId, seen: u64) -> bool {
        self.obj_shape(node).0.iter().enumerate().all(|(i, p)| !p.required || seen & (1 << i) != 0)
    }

    pub(super) fn obj_key_available(&self, node: NodeId, seen: u64) -> bool {
        let (props, additional) = self.obj_shape(node);
        additional.is_some() || (0..props.len()).any(|i| seen & (1 << i) == 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn step_obj(&self, s: &Stack, node: NodeId, phase: ObjPhase, seen: u64, ws: u8, b: u8, out: &mut State) {
        if is_ws(b) {
            if ws < self.max_ws {
                out.push(s.with_top(Frame::Obj { node, phase, seen, ws: ws + 1 }));
            }
            return;
        }
        let frame = |phase, seen| Frame::Obj { node, phase, seen, ws: 0 };
        match (phase, b) {
            (ObjPhase::Open | ObjPhase::Value, b'}') if self.obj_can_close(node, seen) => out.extend(s.pop()),
            (ObjPhase::Value, b',') if self.obj_key_available(node, seen) => {
                out.push(s.with_top(frame(ObjPhase::Comma, seen)))
            }
            (ObjPhase::Open | ObjPhase::Comma, b'"') => {
                let (props, additional) = self.obj_shape(node);
                for (i, p) in props.iter().enumerate() {
                    if seen & (1 << i) == 0 {
                        out.extend(
                            s.push(frame(ObjPhase::Key(i as u8), seen), Frame::Lit { lit: p.key_literal, pos: 1 }),
                        );
                    }
                }
                if additional.is_some() {
                    let key = Self::new_string(NONE, node, super::schema::fnv1a(b""));
                    out.extend(s.push(frame(ObjPhase::Key(ADDITIONAL), seen), Frame::Str(key)));
                }
            }
            (ObjPhase::Key(p), b':') => out.push(s.with_top(frame(ObjPhase::Colon(p), seen))),
            (ObjPhase::Colon(p), _) => {
                let (props, additional) = self.obj_shape(node);
                let (value_node, seen) = if p == ADDITIONAL {
                    (additional.unwrap_or(self.any), seen)
                } else {
                    (props[p as usize].node, seen | 1 << p)
                };
                self.start_value(value_node, b, s, frame(ObjPhase::Value, seen), out);
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step_arr(&self, s: &Stack, node: NodeId, count: u32, phase: ArrPhase, ws: u8, b: u8, out: &mut State) {
        if is_ws(b) {
            if ws < self.max_ws {
                out.push(s.with_top(Frame::Arr { node, count, phase, ws: ws + 1 }));
            }
            return;
        }
        let (items, min, max) = self.arr_shape(node);
        match (phase, b) {
            (ArrPhase::Open, b']') if min == 0 => out.extend(s.pop()),
            (ArrPhase::Value, b']') if count >= min => out.extend(s.pop()),
            (ArrPhase::Value, b',') if count < max => {
                out.push(s.with_top(Frame::Arr { node, count, phase: ArrPhase::Comma, ws: 0 }))
            }
            (ArrPhase::Open, _) if max > 0 => {
                let parent = Frame::Arr { node, count: 1, phase: ArrPhase::Value, ws: 0 };
                self.start_value(items, b, s, parent, out)
            }
            (ArrPhase::Comma, _) => {
                let parent = Frame::Arr { node, count: count.saturating_add(1), phase: ArrPhase::Value, ws: 0 };
                self.start_value(items, b, s, parent, out)
            }
            _ => {}
        }
    }

    pub(super) fn arr_shape(&self, node: NodeId) -> (NodeId, u32, u32) {
        match self.node(node) {
            SchemaNode::Array { items, min_items, max_items } => (*items, *min_items, *max_items),
            _ => (self.any, 0, u32::MAX),
        }
    }
}

pub(super) fn num_accepting(phase: NumPhase) -> bool {
    matches!(phase, NumPhase::Zero | NumPhase::Int | NumPhase::Frac | NumPhase::ExpDigits)
}

fn step_num(integer_only: bool, phase: NumPhase, digits: u8, b: u8) -> Option<(NumPhase, u8)> {
    use NumPhase::*;
    let digit = b.is_ascii_digit();
    match phase {
        Start if b == b'-' => Some((Minus, 0)),
        Start | Minus if b == b'0' => Some((Zero, 1)),
        Start | Minus if digit => Some((Int, 1)),
        Int if digit && digits < MAX_NUMBER_DIGITS => Some((Int, digits + 1)),
        Zero | Int if b == b'.' && !integer_only => Some((Dot, 0)),
        Zero | Int | Frac if (b == b'e' || b == b'E') && !integer_only => Some((Exp, 0)),
        Dot if digit => Some((Frac, 1)),
        Frac if digit && digits < MAX_NUMBER_DIGITS => Some((Frac, digits + 1)),
        Exp if b == b'+' || b == b'-' => Some((ExpSign, 0)),
        Exp | ExpSign if digit => Some((ExpDigits, 1)),
        ExpDigits if digit && digits < MAX_EXPONENT_DIGITS => Some((ExpDigits, digits + 1)),
        _ => None,
    }
}
