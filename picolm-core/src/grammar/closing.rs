//! Canonical closing paths: for every automaton stack, one fixed byte string that completes its value, and the
//! length of that string. The token mask counts closing paths in tokens (see `token_cost`); this module decides
//! which path.
//!
//! A closing path is chosen frame by frame: what the top frame still needs (the rest of a literal, a string's
//! missing characters and quote, an object's missing required members and brace, ...), then the same for each
//! frame below. Where there is a choice (which `enum` value, which `anyOf` alternative, which form of an
//! unconstrained value, which optional member after a comma) a [`ClosePlan`] fixes it per schema node, by an
//! approximate cost (tokens of the model's vocabulary, or bytes). The choices are a fixed function of the node, so
//! the closing path of a state reached by following a closing path is the rest of that path. That is what lets
//! the mask guarantee closure: if a stack can close in `n` tokens, the first token of its closing path leads to
//! a stack that closes in `n - 1`.
//!
//! Lengths use saturating `u64` arithmetic: `minItems: 4294967294` of a long item gives a huge length (refused
//! by the budget check), never a wrapped small one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::automaton::{ArrPhase, Esc, Frame, Grammar, ObjPhase, Stack, StrFrame, ADDITIONAL, NONE};
use super::schema::{fnv1a_extend, NodeId, SchemaNode};
use super::vocab_index::VocabIndex;

/// The forms an unconstrained value may close with (`0` needs an end token at the top level).
const ANY_FORMS: [&[u8]; 7] = [b"0", b"\"\"", b"{}", b"[]", b"null", b"true", b"false"];
/// Literals longer than this are costed by their length instead of a tokenization (it only steers choices).
const ISO_CAP: usize = 4096;

static NEXT_PLAN_ID: AtomicU64 = AtomicU64::new(1);

/// The choices of the closing paths of one grammar for one way of counting (a vocabulary's tokens, or bytes).
#[derive(Debug)]
pub(super) struct ClosePlan {
    /// Unique id (cache key of per-link summaries).
    pub(super) id: u64,
    /// The character that fills strings up to their minimum length.
    pub(super) pad: u8,
    /// Per node: the chosen form of `Any`, or the chosen alternative of `AnyOf`.
    pick: Vec<u32>,
    /// Per `Literals` node: for each trie node, the trie node of the literal chosen below it.
    lit_pick: Vec<Vec<u32>>,
    /// Per node: the approximate cost of its canonical value (what the choices minimise).
    cost: Vec<u64>,
    /// Per node: bytes of its canonical value.
    vlen: Vec<u64>,
    /// Per literal: its approximate cost.
    lit_cost: Vec<u64>,
    /// Per object node: the canonical undeclared key (content without quotes) and its cost with quotes.
    add_key: Vec<(Vec<u8>, u64)>,
    /// Costs of `:`, `,` and the empty key `""`.
    colon: u64,
    comma: u64,
    empty_key: u64,
    /// The choices of the root value (which `anyOf` alternative, which form of an unconstrained value), made
    /// with the end token a top-level number needs counted; per node on the root's `anyOf` chain.
    root_pick: Vec<u32>,
    /// Whether the root's canonical value is a number (or an extendable enum value) ended by an end token.
    root_eog: bool,
    /// Bytes of the root's canonical value.
    root_len: u64,
    /// Whether every byte a closing path can hold is a token by itself, so that a path's length in bytes bounds
    /// its tokens from above.
    pub(super) bytes_bound_tokens: bool,
}

impl Grammar {
    /// The plan that counts bytes (vocabulary-free; behind [`Grammar::min_close`]).
    pub(super) fn byte_plan(&self) -> Arc<ClosePlan> {
        self.byte_plan.get_or_init(|| Arc::new(ClosePlan::new(self, b'a', &|b: &[u8]| b.len() as u64))).clone()
    }

    /// The plan that counts tokens of `vocab` (built once per vocabulary and kept).
    pub(super) fn token_plan(&self, vocab: &VocabIndex) -> Arc<ClosePlan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = plans.iter().find(|(id, _)| *id == vocab.id) {
            return p.clone();
        }
        let iso =
            |b: &[u8]| if b.len() > ISO_CAP { b.len() as u64 } else { super::token_cost::isolated_tokens(vocab, b) };
        // The pad: the character whose short runs in a string take the fewest tokens.
        let pad = b"abcdefghijklmnopqrstuvwxyz0123456789"
            .iter()
            .copied()
            .min_by_key(|&c| {
                (1..=6).map(|k| iso(&[&b"\""[..], &vec![c; k], b"\""].concat())).fold(0u64, u64::saturating_add)
            })
            .expect("non-empty");
        let mut plan = ClosePlan::new(self, pad, &iso);
        // Closing paths hold printable ASCII, UTF-8 continuation bytes and the bytes of the schema's literals.
        let mut used = [false; 256];
        (0x20..0x7f).chain(0x80..0xc0).for_each(|b| used[b] = true);
        self.schema.literals.iter().flatten().for_each(|&b| used[b as usize] = true);
        plan.bytes_bound_tokens = (0..256).all(|b| !used[b] || vocab.single_byte[b]);
        let plan = Arc::new(plan);
        if plans.len() >= 4 {
            plans.remove(0);
        }
        plans.push((vocab.id, plan.clone()));
        plan
    }
}

fn sat_mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

impl ClosePlan {
    fn new(g: &Grammar, pad: u8, iso: &dyn Fn(&[u8]) -> u64) -> ClosePlan {
        let n = g.schema.nodes.len();
        let lit_cost: Vec<u64> = g.schema.literals.iter().map(|l| iso(l)).collect();
        let mut p = ClosePlan {
            id: NEXT_PLAN_ID.fetch_add(1, Ordering::Relaxed),
            pad,
            pick: vec![0; n],
            lit_pick: vec![Vec::new(); n],
            cost: vec![0; n],
            vlen: vec![0; n],
            lit_cost,
            add_key: vec![(Vec::new(), 0); n],
            colon: iso(b":"),
            comma: iso(b","),
            empty_key: iso(b"\"\""),
            root_pick: vec![u32::MAX; n],
            root_eog: false,
            root_len: 0,
            bytes_bound_tokens: true,
        };
        // Children have smaller ids than their parents, except the root copy at 0: compute it last.
        for i in (1..n).chain(std::iter::once(0)) {
            p.plan_node(g, i as NodeId, i == 0, iso);
        }
        let (_, eog, len) = p.plan_root(g, 0, iso);
        (p.root_eog, p.root_len) = (eog, len);
        p
    }

    /// The root value's choices: (cost with the end token, whether it needs the end token, bytes). Only choices
    /// that the first byte settles are made here (an `anyOf` alternative, the form of an unconstrained value);
    /// everything after follows the nodes' own choices.
    fn plan_root(&mut self, g: &Grammar, node: NodeId, iso: &dyn Fn(&[u8]) -> u64) -> (u64, bool, u64) {
        let i = node as usize;
        match g.node(node) {
            SchemaNode::Any => {
                let (k, c) = ANY_FORMS
                    .iter()
                    .enumerate()
                    .map(|(k, f)| (k, iso(f).saturating_add(u64::from(k == 0))))
                    .min_by_key(|&(k, c)| (c, k))
                    .expect("forms");
                self.root_pick[i] = k as u32;
                (c, k == 0, ANY_FORMS[k].len() as u64)
            }
            SchemaNode::AnyOf(alts) => {
                let alts = alts.clone();
                let (k, best) = alts
                    .iter()
                    .enumerate()
                    .map(|(k, &a)| (k, self.plan_root(g, a, iso)))
                    .min_by_key(|&(k, (c, _, _))| (c, k))
                    .expect("anyOf is never empty");
                self.root_pick[i] = k as u32;
                best
            }
            _ => {
                let eog = self.value_needs_eog(g, node);
                (self.cost[i].saturating_add(u64::from(eog)), eog, self.vlen[i])
            }
        }
    }

    /// Appends the root's canonical value.
    fn write_root(&self, g: &Grammar, node: NodeId, out: &mut Vec<u8>) {
        match g.node(node) {
            SchemaNode::Any => out.extend_from_slice(ANY_FORMS[self.root_pick[node as usize] as usize]),
            SchemaNode::AnyOf(alts) => self.write_root(g, alts[self.root_pick[node as usize] as usize], out),
            _ => self.write_value(g, node, out),
        }
    }

    /// Whether the canonical value of `node` is left open at the top level (a number, or an enum value that
    /// longer values extend), so that only an end token ends it.
    fn value_needs_eog(&self, g: &Grammar, node: NodeId) -> bool {
        match g.node(node) {
            SchemaNode::Number { .. } | SchemaNode::BoundedNumber(_) => true,
            SchemaNode::Any => self.pick[node as usize] == 0,
            SchemaNode::Literals { trie, .. } => {
                let t = self.lit_pick[node as usize][0];
                !trie.nodes[t as usize].children.is_empty()
            }
            SchemaNode::AnyOf(alts) => self.value_needs_eog(g, alts[self.pick[node as usize] as usize]),
            _ => false,
        }
    }

    fn plan_node(&mut self, g: &Grammar, node: NodeId, root: bool, iso: &dyn Fn(&[u8]) -> u64) {
        let i = node as usize;
        // Only the enum choice of the root node itself counts the end token here (its enum frames follow this
        // choice); the root's other choices are made by `plan_root`.
        let eog = |x: bool| u64::from(root && x);
        let (cost, vlen) = match g.node(node) {
            SchemaNode::Any => {
                let (k, c) =
                    ANY_FORMS.iter().enumerate().map(|(k, f)| (k, iso(f))).min_by_key(|&(k, c)| (c, k)).expect("forms");
                self.pick[i] = k as u32;
                (c, ANY_FORMS[k].len() as u64)
            }
            SchemaNode::Number { .. } => (iso(b"0"), 1),
            SchemaNode::BoundedNumber(r) => (iso(r.canonical()), r.canonical().len() as u64),
            SchemaNode::String { min_len, format, .. } => match format {
                Some(f) => {
                    let mut v = vec![b'"'];
                    f.completion(0, &mut v);
                    v.push(b'"');
                    (iso(&v), v.len() as u64)
                }
                None if (*min_len as usize) <= ISO_CAP => {
                    let v = [&b"\""[..], &vec![self.pad; *min_len as usize], b"\""].concat();
                    (iso(&v), v.len() as u64)
                }
                None => (u64::from(*min_len) + 2, u64::from(*min_len) + 2),
            },
            SchemaNode::Literals { trie, .. } => {
                // Best literal below each trie node; children come after their parent in the trie.
                let key = |t: usize| {
                    let lit = trie.nodes[t].terminal.expect("terminal");
                    (self.lit_cost[lit as usize].saturating_add(eog(!trie.nodes[t].children.is_empty())), lit)
                };
                let mut best = vec![u32::MAX; trie.nodes.len()];
                for t in (0..trie.nodes.len()).rev() {
                    let mut b = trie.nodes[t].terminal.map(|_| t as u32);
                    for &(_, c) in &trie.nodes[t].children {
                        let cand = best[c as usize];
                        b = match b {
                            Some(x) if key(x as usize) <= key(cand as usize) => Some(x),
                            _ => Some(cand),
                        };
                    }
                    best[t] = b.expect("every trie node leads to a literal");
                }
                let (_, lit) = key(best[0] as usize);
                self.lit_pick[i] = best;
                (self.lit_cost[lit as usize], g.lit(lit).len() as u64)
            }
            SchemaNode::Array { items, min_items, .. } => {
                let (m, n) = (*items as usize, u64::from(*min_items));
                let cost = if n == 0 {
                    iso(b"[]")
                } else {
                    iso(b"[")
                        .saturating_add(iso(b"]"))
                        .saturating_add(sat_mul(n, self.cost[m]))
                        .saturating_add(sat_mul(n - 1, self.comma))
                };
                (cost, 2u64.saturating_add(sat_mul(n, self.vlen[m])).saturating_add(n.saturating_sub(1)))
            }
            SchemaNode::Object { properties, additional, declared_hashes } => {
                if additional.is_some() {
                    // The shortest run of pads that is not a declared name.
                    let mut key = Vec::new();
                    while declared_hashes.contains(&fnv1a_extend(super::schema::fnv1a(b""), &key)) {
                        key.push(self.pad);
                    }
                    let c = iso(&[&b"\""[..], &key, b"\""].concat());
                    self.add_key[i] = (key, c);
                }
                let req: Vec<_> = properties.iter().filter(|p| p.required).collect();
                if req.is_empty() {
                    (iso(b"{}"), 2)
                } else {
                    let members = req.iter().fold(0u64, |acc, p| {
                        acc.saturating_add(self.lit_cost[p.key_literal as usize])
                            .saturating_add(self.colon)
                            .saturating_add(self.cost[p.node as usize])
                    });
                    let len = req.iter().fold(1 + req.len() as u64, |acc, p| {
                        acc.saturating_add(g.lit(p.key_literal).len() as u64 + 1)
                            .saturating_add(self.vlen[p.node as usize])
                    });
                    let cost = iso(b"{")
                        .saturating_add(iso(b"}"))
                        .saturating_add(members)
                        .saturating_add(sat_mul(req.len() as u64 - 1, self.comma));
                    (cost, len)
                }
            }
            SchemaNode::AnyOf(alts) => {
                let (k, c) = alts
                    .iter()
                    .enumerate()
                    .map(|(k, &a)| (k, self.cost[a as usize]))
                    .min_by_key(|&(k, c)| (c, k))
                    .expect("anyOf is never empty");
                self.pick[i] = k as u32;
                (c, self.vlen[alts[k] as usize])
            }
        };
        self.cost[i] = cost;
        self.vlen[i] = vlen;
    }

    /// The picked literal below trie node `at` of `Literals` node `node`, and whether longer literals extend it.
    fn enum_pick(&self, g: &Grammar, node: NodeId, at: u32) -> (u32, bool) {
        let trie = g.lit_trie(node);
        let t = &trie.nodes[self.lit_pick[node as usize][at as usize] as usize];
        (t.terminal.expect("picked nodes are terminal"), !t.children.is_empty())
    }

    /// Whether the stack's closing path ends with an end-of-generation token (a top-level number or extendable
    /// enum value).
    pub(super) fn stack_eog(&self, g: &Grammar, s: &Stack) -> bool {
        match s.top {
            Frame::Root { done: false } => self.root_eog,
            Frame::Num { .. } | Frame::Range(_) => s.depth == 1,
            Frame::Enum { node, at } => s.depth == 1 && self.enum_pick(g, node, at).1,
            _ => false,
        }
    }

    /// Bytes of the stack's closing path, plus one for a final end token.
    pub(super) fn stack_len(&self, g: &Grammar, s: &Stack) -> u64 {
        let below = s.below.as_deref().map_or(0, |l| self.link_len(g, l));
        self.frame_len(g, &s.top).saturating_add(below).saturating_add(u64::from(self.stack_eog(g, s)))
    }

    /// Bytes of the closing path from a link down (kept in the link).
    fn link_len(&self, g: &Grammar, l: &super::automaton::Link) -> u64 {
        if let Some(&(id, n)) = l.bytes.get() {
            if id == self.id {
                return n;
            }
        }
        let n = self.frame_len(g, &l.frame).saturating_add(l.below.as_deref().map_or(0, |b| self.link_len(g, b)));
        let _ = l.bytes.set((self.id, n));
        n
    }

    // ---------------------------------------------------------------------------------------------------------
    // Lengths
    // ---------------------------------------------------------------------------------------------------------

    fn member_len(&self, g: &Grammar, node: NodeId, p: usize) -> u64 {
        let (props, _) = g.obj_shape(node);
        (g.lit(props[p].key_literal).len() as u64 + 1).saturating_add(self.vlen[props[p].node as usize])
    }

    fn add_member_len(&self, g: &Grammar, node: NodeId) -> u64 {
        let add = g.obj_shape(node).1.unwrap_or(g.any);
        (self.add_key_of(g, node).0.len() as u64 + 3).saturating_add(self.vlen[add as usize])
    }

    fn add_key_of(&self, g: &Grammar, node: NodeId) -> (&[u8], u64) {
        match g.node(node) {
            SchemaNode::Object { .. } => (&self.add_key[node as usize].0, self.add_key[node as usize].1),
            _ => (&[], self.empty_key),
        }
    }

    fn missing<'g>(&self, g: &'g Grammar, node: NodeId, seen: u64) -> impl Iterator<Item = usize> + 'g {
        let props = g.obj_shape(node).0;
        (0..props.len()).filter(move |&i| props[i].required && seen & (1 << i) == 0)
    }

    /// The member written after a comma when no required member is missing: `Some(p)` a declared property, `None`
    /// an undeclared key.
    fn optional_pick(&self, g: &Grammar, node: NodeId, seen: u64) -> Option<usize> {
        let (props, additional) = g.obj_shape(node);
        let declared = (0..props.len()).filter(|&i| seen & (1 << i) == 0).map(|i| {
            let c = self.lit_cost[props[i].key_literal as usize]
                .saturating_add(self.colon)
                .saturating_add(self.cost[props[i].node as usize]);
            (c, i, Some(i))
        });
        let extra = additional.map(|a| {
            (
                self.add_key_of(g, node).1.saturating_add(self.colon).saturating_add(self.cost[a as usize]),
                usize::MAX,
                None,
            )
        });
        declared.chain(extra).min().map(|(_, _, p)| p).expect("a comma is only allowed when a key is available")
    }

    fn obj_value_len(&self, g: &Grammar, node: NodeId, seen: u64) -> u64 {
        self.missing(g, node, seen)
            .fold(1u64, |acc, p| acc.saturating_add(1).saturating_add(self.member_len(g, node, p)))
    }

    fn obj_len(&self, g: &Grammar, node: NodeId, phase: ObjPhase, seen: u64) -> u64 {
        let (props, additional) = g.obj_shape(node);
        let value_of = |p: u8| {
            if p == ADDITIONAL {
                (additional.unwrap_or(g.any), seen)
            } else {
                (props[p as usize].node, seen | 1 << p)
            }
        };
        match phase {
            ObjPhase::Open | ObjPhase::Comma => {
                let missing: Vec<usize> = self.missing(g, node, seen).collect();
                if missing.is_empty() {
                    if phase == ObjPhase::Open {
                        return 1;
                    }
                    let member = match self.optional_pick(g, node, seen) {
                        Some(p) => self.member_len(g, node, p),
                        None => self.add_member_len(g, node),
                    };
                    return member.saturating_add(1);
                }
                missing.iter().fold(missing.len() as u64, |acc, &p| acc.saturating_add(self.member_len(g, node, p)))
            }
            ObjPhase::Value => self.obj_value_len(g, node, seen),
            ObjPhase::Key(p) => {
                let (v, seen) = value_of(p);
                (1 + self.vlen[v as usize]).saturating_add(self.obj_value_len(g, node, seen))
            }
            ObjPhase::Colon(p) => {
                let (v, seen) = value_of(p);
                self.vlen[v as usize].saturating_add(self.obj_value_len(g, node, seen))
            }
        }
    }

    fn arr_len(&self, g: &Grammar, node: NodeId, count: u32, phase: ArrPhase) -> u64 {
        let (items, min, _) = g.arr_shape(node);
        let m = self.vlen[items as usize];
        let min = u64::from(min);
        let count = u64::from(count);
        match phase {
            ArrPhase::Open if min == 0 => 1,
            ArrPhase::Open => sat_mul(min, m).saturating_add(min - 1).saturating_add(1),
            ArrPhase::Value => sat_mul(min.saturating_sub(count), m.saturating_add(1)).saturating_add(1),
            ArrPhase::Comma => {
                m.saturating_add(sat_mul(min.saturating_sub(count + 1), m.saturating_add(1))).saturating_add(1)
            }
        }
    }

    /// Bytes that finish an open escape or UTF-8 sequence of a string (at most 10).
    fn str_pending(&self, f: &StrFrame) -> Pending {
        let mut v = Pending::default();
        match f.esc {
            Esc::None => {}
            Esc::Backslash => v.push(b'n'),
            Esc::Hex { n, val, low } => {
                let n = n as usize;
                if low {
                    v.extend_from_slice(&b"DC00"[n..]);
                } else {
                    v.extend(std::iter::repeat_n(b'0', 4 - n));
                    let full = u32::from(val) << (4 * (4 - n));
                    if (0xD800..=0xDBFF).contains(&full) {
                        v.extend_from_slice(b"\\uDC00");
                    }
                }
            }
            Esc::NeedLowSlash => v.extend_from_slice(b"\\uDC00"),
            Esc::NeedLowU => v.extend_from_slice(b"uDC00"),
        }
        if f.utf8_need > 0 {
            v.push(f.lo);
            v.extend(std::iter::repeat_n(0x80, f.utf8_need as usize - 1));
        }
        v
    }

    /// Characters a string needs before its quote (after the pending bytes): a format's completion, the missing
    /// minimum length, or pads that keep an undeclared key different from the declared names.
    fn str_content_len(&self, g: &Grammar, f: &StrFrame, pending: &[u8]) -> u64 {
        if let Some(fm) = g.str_format(f) {
            return u64::from(fm.remaining(f.fmt));
        }
        if f.key_of != NONE {
            return self.key_pads(g, f, pending) as u64;
        }
        u64::from(g.str_limits(f).0.saturating_sub(f.chars))
    }

    fn key_pads(&self, g: &Grammar, f: &StrFrame, pending: &[u8]) -> usize {
        let declared = g.declared_hashes(f);
        let mut h = fnv1a_extend(f.hash, pending);
        let mut k = 0;
        while declared.contains(&h) {
            h = fnv1a_extend(h, &[self.pad]);
            k += 1;
        }
        k
    }

    /// Bytes of the closing path of one frame.
    pub(super) fn frame_len(&self, g: &Grammar, f: &Frame) -> u64 {
        match *f {
            Frame::Root { done } => {
                if done {
                    0
                } else {
                    self.root_len
                }
            }
            Frame::Lit { lit, pos } => (g.lit(lit).len() - pos as usize) as u64,
            Frame::Enum { node, at } => {
                let (lit, _) = self.enum_pick(g, node, at);
                (g.lit(lit).len() - g.lit_trie(node).nodes[at as usize].depth as usize) as u64
            }
            Frame::Str(s) => {
                let pending = self.str_pending(&s);
                let pending = pending.as_slice();
                (pending.len() as u64 + 1).saturating_add(self.str_content_len(g, &s, pending))
            }
            Frame::Num { phase, .. } => u64::from(!super::automaton::num_accepting(phase)),
            Frame::Range(r) => g.num_range(r.node).min_len(&r).map_or(u64::MAX, u64::from),
            Frame::Obj { node, phase, seen, .. } => self.obj_len(g, node, phase, seen),
            Frame::Arr { node, count, phase, .. } => self.arr_len(g, node, count, phase),
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Bytes (written only after the length was checked against a cap)
    // ---------------------------------------------------------------------------------------------------------

    /// Appends the canonical value of `node`.
    pub(super) fn write_value(&self, g: &Grammar, node: NodeId, out: &mut Vec<u8>) {
        match g.node(node) {
            SchemaNode::Any => out.extend_from_slice(ANY_FORMS[self.pick[node as usize] as usize]),
            SchemaNode::Number { .. } => out.push(b'0'),
            SchemaNode::BoundedNumber(r) => out.extend_from_slice(r.canonical()),
            SchemaNode::String { min_len, format, .. } => {
                out.push(b'"');
                match format {
                    Some(f) => f.completion(0, out),
                    None => out.extend(std::iter::repeat_n(self.pad, *min_len as usize)),
                }
                out.push(b'"');
            }
            SchemaNode::Literals { .. } => {
                let (lit, _) = self.enum_pick(g, node, 0);
                out.extend_from_slice(g.lit(lit));
            }
            SchemaNode::Array { items, min_items, .. } => {
                out.push(b'[');
                for k in 0..*min_items {
                    if k > 0 {
                        out.push(b',');
                    }
                    self.write_value(g, *items, out);
                }
                out.push(b']');
            }
            SchemaNode::Object { .. } => {
                out.push(b'{');
                self.write_obj(g, node, ObjPhase::Open, 0, out);
            }
            SchemaNode::AnyOf(alts) => self.write_value(g, alts[self.pick[node as usize] as usize], out),
        }
    }

    fn write_member(&self, g: &Grammar, node: NodeId, p: Option<usize>, out: &mut Vec<u8>) {
        let (props, additional) = g.obj_shape(node);
        match p {
            Some(p) => {
                out.extend_from_slice(g.lit(props[p].key_literal));
                out.push(b':');
                self.write_value(g, props[p].node, out);
            }
            None => {
                out.push(b'"');
                out.extend_from_slice(self.add_key_of(g, node).0);
                out.extend_from_slice(b"\":");
                self.write_value(g, additional.unwrap_or(g.any), out);
            }
        }
    }

    fn write_obj_after_value(&self, g: &Grammar, node: NodeId, seen: u64, out: &mut Vec<u8>) {
        for p in self.missing(g, node, seen).collect::<Vec<_>>() {
            out.push(b',');
            self.write_member(g, node, Some(p), out);
        }
        out.push(b'}');
    }

    fn write_obj(&self, g: &Grammar, node: NodeId, phase: ObjPhase, seen: u64, out: &mut Vec<u8>) {
        let (props, additional) = g.obj_shape(node);
        match phase {
            ObjPhase::Open | ObjPhase::Comma => {
                let missing: Vec<usize> = self.missing(g, node, seen).collect();
                if missing.is_empty() && phase == ObjPhase::Comma {
                    let p = self.optional_pick(g, node, seen);
                    self.write_member(g, node, p, out);
                    out.push(b'}');
                    return;
                }
                for (k, &p) in missing.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    self.write_member(g, node, Some(p), out);
                }
                out.push(b'}');
            }
            ObjPhase::Value => self.write_obj_after_value(g, node, seen, out),
            ObjPhase::Key(p) | ObjPhase::Colon(p) => {
                if matches!(phase, ObjPhase::Key(_)) {
                    out.push(b':');
                }
                let (v, seen) = if p == ADDITIONAL {
                    (additional.unwrap_or(g.any), seen)
                } else {
                    (props[p as usize].node, seen | 1 << p)
                };
                self.write_value(g, v, out);
                self.write_obj_after_value(g, node, seen, out);
            }
        }
    }

    /// Appends the closing path of one frame.
    pub(super) fn write_frame(&self, g: &Grammar, f: &Frame, out: &mut Vec<u8>) {
        match *f {
            Frame::Root { done: false } => self.write_root(g, 0, out),
            Frame::Root { done: true } => {}
            Frame::Lit { lit, pos } => out.extend_from_slice(&g.lit(lit)[pos as usize..]),
            Frame::Enum { node, at } => {
                let (lit, _) = self.enum_pick(g, node, at);
                out.extend_from_slice(&g.lit(lit)[g.lit_trie(node).nodes[at as usize].depth as usize..]);
            }
            Frame::Str(s) => {
                let pending = self.str_pending(&s);
                let pending = pending.as_slice();
                out.extend_from_slice(pending);
                match g.str_format(&s) {
                    Some(fm) => fm.completion(s.fmt, out),
                    None => {
                        let k = self.str_content_len(g, &s, pending) as usize;
                        out.extend(std::iter::repeat_n(self.pad, k));
                    }
                }
                out.push(b'"');
            }
            Frame::Num { phase, .. } => {
                if !super::automaton::num_accepting(phase) {
                    out.push(b'0');
                }
            }
            Frame::Range(r) => {
                let _ = g.num_range(r.node).complete(r, out);
            }
            Frame::Obj { node, phase, seen, .. } => self.write_obj(g, node, phase, seen, out),
            Frame::Arr { node, count, phase, .. } => {
                let (items, min, _) = g.arr_shape(node);
                let first_needs_comma = match phase {
                    ArrPhase::Open | ArrPhase::Comma => false,
                    ArrPhase::Value => true,
                };
                let todo = match phase {
                    ArrPhase::Open => min,
                    ArrPhase::Value => min.saturating_sub(count),
                    ArrPhase::Comma => min.saturating_sub(count).max(1),
                };
                for k in 0..todo {
                    if k > 0 || first_needs_comma {
                        out.push(b',');
                    }
                    self.write_value(g, items, out);
                }
                out.push(b']');
            }
        }
    }
}

/// The few bytes that finish an open escape or UTF-8 sequence, without allocating.
#[derive(Default)]
struct Pending {
    buf: [u8; 12],
    len: usize,
}

impl Pending {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.push(b));
    }

    fn extend(&mut self, bytes: impl Iterator<Item = u8>) {
        bytes.for_each(|b| self.push(b));
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
