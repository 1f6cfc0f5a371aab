//! A byte-level pushdown automaton for RFC 8259 JSON, optionally restricted by a compiled schema.
//!
//! The state is a set of deterministic stacks (alternatives of `anyOf`, `enum` and object keys run side by side
//! until a byte tells them apart). Stacks are persistent: the top frame is held by value and the frames below are
//! shared through `Arc` links, so cloning a state while walking the vocabulary trie costs a few reference counts.
//!
//! Invariant (viable prefixes): every state with at least one stack can still be completed to a valid value.
//! [`Grammar::min_close`] gives the fewest bytes that completion needs, which the token mask uses to keep enough of
//! the token budget to close the value.

use std::sync::Arc;

use super::schema::{fnv1a_extend, CompiledSchema, NodeId, SchemaNode};

/// Deepest nesting of objects, arrays and strings.
pub const MAX_DEPTH: u16 = 48;
/// Most digits in the integer or fraction part of a number.
const MAX_NUMBER_DIGITS: u8 = 20;
/// Most digits in an exponent (keeps every number finite as an IEEE double, which common parsers need).
const MAX_EXPONENT_DIGITS: u8 = 2;
/// Marks a string that is not bound to a schema node (free string) or not a key.
const NONE: NodeId = NodeId::MAX;
/// Property slot of an undeclared (additional) key.
const ADDITIONAL: u8 = u8::MAX;

/// A compiled grammar: the schema and the whitespace policy.
#[derive(Debug, Clone)]
pub struct Grammar {
    schema: CompiledSchema,
    any: NodeId,
    max_ws: u8,
    /// Literal ids of `true`, `false` and `null` (values of unconstrained nodes).
    keywords: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    Hex { n: u8, val: u16, low: bool },
    NeedLowSlash,
    NeedLowU,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StrFrame {
    node: NodeId,
    key_of: NodeId,
    esc: Esc,
    utf8_need: u8,
    lo: u8,
    hi: u8,
    chars: u32,
    hash: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumPhase {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjPhase {
    Open,
    Key(u8),
    Colon(u8),
    Value,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArrPhase {
    Open,
    Value,
    Comma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    Root { done: bool },
    Lit { lit: u32, pos: u32 },
    Str(StrFrame),
    Num { integer_only: bool, phase: NumPhase, digits: u8 },
    Obj { node: NodeId, phase: ObjPhase, seen: u64, ws: u8 },
    Arr { node: NodeId, count: u32, phase: ArrPhase, ws: u8 },
}

#[derive(Debug)]
struct Link {
    frame: Frame,
    below: Option<Arc<Link>>,
}

/// One deterministic parse: the top frame and the frames below it.
#[derive(Clone, Debug)]
pub struct Stack {
    top: Frame,
    below: Option<Arc<Link>>,
    depth: u16,
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
        let link = Arc::new(Link { frame: parent_top, below: self.below.clone() });
        Some(Stack { top: child, below: Some(link), depth: self.depth + 1 })
    }

    fn pop(&self) -> Option<Stack> {
        let link = self.below.as_ref()?;
        Some(Stack { top: link.frame, below: link.below.clone(), depth: self.depth - 1 })
    }

    fn frames(&self) -> impl Iterator<Item = &Frame> {
        let mut link = self.below.as_deref();
        std::iter::once(&self.top).chain(std::iter::from_fn(move || {
            let l = link?;
            link = l.below.as_deref();
            Some(&l.frame)
        }))
    }
}

impl Grammar {
    /// A grammar for a compiled schema; runs of more than `max_ws` whitespace bytes between tokens are refused.
    pub fn new(mut schema: CompiledSchema, max_ws: u8) -> Grammar {
        let keywords = [b"true".to_vec(), b"false".to_vec(), b"null".to_vec()].map(|w| schema.literal(w));
        let any = schema.nodes.len() as NodeId;
        schema.nodes.push(SchemaNode::Any);
        schema.min_len.push(1);
        Grammar { schema, any, max_ws, keywords }
    }

    /// The compiled schema.
    pub fn schema(&self) -> &CompiledSchema {
        &self.schema
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
    /// number may end.
    pub fn can_end(&self, state: &[Stack]) -> bool {
        self.is_complete(state)
            || state.iter().any(|s| {
                s.depth == 1
                    && matches!(s.top, Frame::Num { phase, .. } if num_accepting(phase))
            })
    }

    /// When the only parse is inside a string with no escape or multi-byte character open, returns
    /// `(characters so far, min length, max length)`: every token made of plain string bytes then only adds its
    /// characters (the masking fast path).
    pub fn plain_string(&self, state: &[Stack]) -> Option<(u32, u32, u32)> {
        match state {
            [s] => match s.top {
                Frame::Str(f) if f.esc == Esc::None && f.utf8_need == 0 => {
                    let (min, max) = self.str_limits(&f);
                    Some((f.chars, min, max))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Fewest bytes that complete the value from `state` (plus one for the end token after a top-level number);
    /// `usize::MAX` for a rejected state.
    pub fn min_close(&self, state: &[Stack]) -> usize {
        state.iter().map(|s| self.stack_close(s)).min().unwrap_or(usize::MAX)
    }

    fn node(&self, id: NodeId) -> &SchemaNode {
        &self.schema.nodes[id as usize]
    }

    fn lit(&self, id: u32) -> &[u8] {
        &self.schema.literals[id as usize]
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
            Frame::Obj { node, phase, seen, ws } => self.step_obj(s, node, phase, seen, ws, b, out),
            Frame::Arr { node, count, phase, ws } => self.step_arr(s, node, count, phase, ws, b, out),
        }
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
        let string = |node| Frame::Str(StrFrame {
            node,
            key_of: NONE,
            esc: Esc::None,
            utf8_need: 0,
            lo: 0,
            hi: 0,
            chars: 0,
            hash: 0,
        });
        match self.node(node) {
            SchemaNode::Any => match b {
                b'{' => push(obj, out),
                b'[' => push(arr, out),
                b'"' => push(string(NONE), out),
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
            SchemaNode::String { .. } if b == b'"' => push(string(node), out),
            SchemaNode::Number { integer_only } if b == b'-' || b.is_ascii_digit() => {
                self.start_number(*integer_only, b, s, parent_top, out)
            }
            SchemaNode::Literals(lits) => {
                for &l in lits {
                    let bytes = self.lit(l);
                    if bytes[0] == b {
                        if bytes.len() == 1 {
                            out.push(s.with_top(parent_top));
                        } else {
                            push(Frame::Lit { lit: l, pos: 1 }, out);
                        }
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

    fn str_limits(&self, f: &StrFrame) -> (u32, u32) {
        match (f.node != NONE).then(|| self.node(f.node)) {
            Some(SchemaNode::String { min_len, max_len }) => (*min_len, *max_len),
            _ => (0, u32::MAX),
        }
    }

    fn str_may_close(&self, f: &StrFrame) -> bool {
        if f.chars < self.str_limits(f).0 {
            return false;
        }
        if f.key_of != NONE {
            if let SchemaNode::Object { declared_hashes, .. } = self.node(f.key_of) {
                return !declared_hashes.contains(&f.hash);
            }
        }
        true
    }

    /// One byte inside a string, other than the closing quote. `None` rejects (or closes, checked by the caller).
    fn step_str(&self, mut f: StrFrame, b: u8) -> Option<StrFrame> {
        if f.key_of != NONE {
            f.hash = fnv1a_extend(f.hash, &[b]);
        }
        let max = self.str_limits(&f).1;
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
        if b == b'"' || b < 0x20 || f.chars >= max {
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
    fn obj_shape(&self, node: NodeId) -> (&[super::schema::Property], Option<NodeId>) {
        match self.node(node) {
            SchemaNode::Object { properties, additional, .. } => (properties, *additional),
            _ => (&[], Some(self.any)),
        }
    }

    fn obj_can_close(&self, node: NodeId, seen: u64) -> bool {
        self.obj_shape(node).0.iter().enumerate().all(|(i, p)| !p.required || seen & (1 << i) != 0)
    }

    fn obj_key_available(&self, node: NodeId, seen: u64) -> bool {
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
                        out.extend(s.push(frame(ObjPhase::Key(i as u8), seen), Frame::Lit { lit: p.key_literal, pos: 1 }));
                    }
                }
                if additional.is_some() {
                    let key = StrFrame {
                        node: NONE,
                        key_of: node,
                        esc: Esc::None,
                        utf8_need: 0,
                        lo: 0,
                        hi: 0,
                        chars: 0,
                        hash: super::schema::fnv1a(b""),
                    };
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
                let parent = Frame::Arr { node, count: count + 1, phase: ArrPhase::Value, ws: 0 };
                self.start_value(items, b, s, parent, out)
            }
            _ => {}
        }
    }

    fn arr_shape(&self, node: NodeId) -> (NodeId, u32, u32) {
        match self.node(node) {
            SchemaNode::Array { items, min_items, max_items } => (*items, *min_items, *max_items),
            _ => (self.any, 0, u32::MAX),
        }
    }

    fn may_be_number(&self, node: NodeId) -> bool {
        match self.node(node) {
            SchemaNode::Any | SchemaNode::Number { .. } => true,
            SchemaNode::AnyOf(alts) => alts.iter().any(|&a| self.may_be_number(a)),
            _ => false,
        }
    }

    fn min_len(&self, node: NodeId) -> usize {
        self.schema.min_len[node as usize]
    }

    /// Bytes to finish an object whose next expected thing is given by `phase`, having seen `seen`.
    fn obj_close(&self, node: NodeId, phase: ObjPhase, seen: u64) -> usize {
        let (props, additional) = self.obj_shape(node);
        let cost = |i: usize| self.lit(props[i].key_literal).len() + 1 + self.min_len(props[i].node);
        let missing = |seen: u64| -> (usize, usize) {
            let mut k = 0;
            let mut sum = 0;
            for (i, p) in props.iter().enumerate() {
                if p.required && seen & (1 << i) == 0 {
                    k += 1;
                    sum += cost(i);
                }
            }
            (k, sum)
        };
        let after_value = |seen: u64| {
            let (k, sum) = missing(seen);
            sum + k + 1
        };
        let bit = |p: u8| if p == ADDITIONAL { 0 } else { 1u64 << p };
        let value_len = |p: u8| {
            if p == ADDITIONAL {
                self.min_len(additional.unwrap_or(self.any))
            } else {
                self.min_len(props[p as usize].node)
            }
        };
        match phase {
            ObjPhase::Open => {
                let (k, sum) = missing(seen);
                if k == 0 {
                    1
                } else {
                    sum + (k - 1) + 1
                }
            }
            ObjPhase::Value => after_value(seen),
            ObjPhase::Comma => {
                let (k, sum) = missing(seen);
                if k > 0 {
                    sum + (k - 1) + 1
                } else {
                    let declared = (0..props.len()).filter(|&i| seen & (1 << i) == 0).map(cost);
                    let extra = additional.map(|a| 3 + self.min_len(a));
                    declared.chain(extra).min().unwrap_or(0) + 1
                }
            }
            ObjPhase::Key(p) => 1 + value_len(p) + after_value(seen | bit(p)),
            ObjPhase::Colon(p) => value_len(p) + after_value(seen | bit(p)),
        }
    }

    fn frame_close(&self, f: &Frame) -> usize {
        match *f {
            Frame::Root { done } => {
                if done {
                    0
                } else {
                    // A top-level number also needs the end token that ends it.
                    self.min_len(0) + usize::from(self.may_be_number(0))
                }
            }
            Frame::Lit { lit, pos } => self.lit(lit).len() - pos as usize,
            Frame::Str(s) => {
                let esc = match s.esc {
                    Esc::None => 0,
                    Esc::Backslash => 1,
                    Esc::Hex { n, .. } => 4 - n as usize,
                    Esc::NeedLowSlash => 6,
                    Esc::NeedLowU => 5,
                };
                let short = self.str_limits(&s).0.saturating_sub(s.chars) as usize;
                esc + s.utf8_need as usize + short + 1
            }
            Frame::Num { phase, .. } => usize::from(!num_accepting(phase)),
            Frame::Obj { node, phase, seen, .. } => self.obj_close(node, phase, seen),
            Frame::Arr { node, count, phase, .. } => {
                let (items, min, _) = self.arr_shape(node);
                let m = self.min_len(items);
                let (count, min) = (count as usize, min as usize);
                match phase {
                    ArrPhase::Open if min == 0 => 1,
                    ArrPhase::Open => min * m + (min - 1) + 1,
                    ArrPhase::Value => min.saturating_sub(count) * (1 + m) + 1,
                    ArrPhase::Comma => m + min.saturating_sub(count + 1) * (1 + m) + 1,
                }
            }
        }
    }

    fn stack_close(&self, s: &Stack) -> usize {
        let mut total: usize = s.frames().map(|f| self.frame_close(f)).sum();
        if s.depth == 1 && matches!(s.top, Frame::Num { .. }) {
            total += 1; // the end-of-generation token that ends a top-level number
        }
        total
    }
}

fn num_accepting(phase: NumPhase) -> bool {
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
