//! Numeric bounds (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`) as a digit-wise automaton: a
//! bounded number is written digit by digit while the automaton tracks, for each bound, how the prefix compares
//! with the bound's digits; it admits exactly the numbers of its form that lie in the range, and knows the shortest
//! completion of every prefix.
//!
//! Forms: a bounded `integer` is any JSON integer in the range (no fraction, no exponent); the range is clamped to
//! −2^63 … 2^64−1, so every value parses exactly as a 64-bit integer. A bounded `number` is written without
//! exponent with at most [`MAX_BOUNDED_NUMBER_DIGITS`] digits (integer and fraction part together). Such decimals
//! convert to distinct IEEE doubles in the same order, so a value that lies in the range as a decimal also lies in
//! it after a parser turns it into a double (exclusive bounds included) — bounds are taken as the shortest decimal
//! of their double, which is how they were written.
//!
//! The state keeps no value, only comparisons: per bound, whether the integer digits so far are below, on or above
//! the bound's digits of the same position, and after the integer part the comparison of the whole prefix. A sign
//! picks the magnitudes it may take ([`Side`]); `-0` is allowed where 0 is.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use serde_json::{Map, Number, Value};

use super::error::GrammarError;
use super::schema::NodeId;

/// Most digits (integer and fraction part together) of a value of a bounded `number`.
pub const MAX_BOUNDED_NUMBER_DIGITS: u8 = 15;
/// Most digits of a bounded integer (`u64::MAX` has 20).
const MAX_BOUNDED_INTEGER_DIGITS: u8 = 20;
/// Bytes a bounded number may hold, in the order the canonical (shortest, then smallest) completion prefers them.
const NUMBER_BYTES: &[u8] = b"-.0123456789";

/// A non-negative decimal: integer digits without leading zeros (empty for 0) and fraction digits without
/// trailing zeros, as ASCII.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Decimal {
    /// Integer digits (no leading zero; empty when the integer part is 0).
    pub(super) int: Vec<u8>,
    /// Fraction digits (no trailing zero).
    pub(super) frac: Vec<u8>,
}

impl Decimal {
    /// Parses plain decimal text (`-12.50`, `0.001`, `7`; no exponent) into its sign and magnitude.
    fn parse(text: &str) -> (bool, Decimal) {
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int = int.trim_start_matches('0').as_bytes().to_vec();
        let frac = frac.trim_end_matches('0').as_bytes().to_vec();
        let d = Decimal { int, frac };
        (neg && !d.is_zero(), d)
    }

    fn from_u128(v: u128) -> Decimal {
        Decimal::parse(&v.to_string()).1
    }

    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    fn int_value(&self) -> u128 {
        self.int.iter().fold(0u128, |acc, &d| acc.saturating_mul(10).saturating_add(u128::from(d - b'0')))
    }

    /// Numeric order (fractions without trailing zeros compare lexicographically).
    fn cmp_value(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

/// The magnitudes one sign may take: `lo ≤ m` (`<` when exclusive) and `m ≤ hi` (`<`), `hi` absent when no value
/// of the form can reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Side {
    lo: Decimal,
    lo_incl: bool,
    hi: Option<Decimal>,
    hi_incl: bool,
    /// Whether an integer lies strictly between the integer parts of `lo` and `hi` (true without `hi`).
    gap2: bool,
}

impl Side {
    fn new(lo: (Decimal, bool), hi: Option<(Decimal, bool)>, max_digits: u8) -> Option<Side> {
        if lo.0.int.len() > usize::from(max_digits) {
            return None; // every value of the form is below `lo`
        }
        // An upper bound longer than the form's integer part is above every value of the form.
        let hi = hi.filter(|h| h.0.int.len() <= usize::from(max_digits));
        if let Some((h, hi_incl)) = &hi {
            match lo.0.cmp_value(h) {
                Greater => return None,
                Equal if !(lo.1 && *hi_incl) => return None,
                _ => {}
            }
        }
        let gap2 = hi.as_ref().is_none_or(|(h, _)| h.int_value() >= lo.0.int_value().saturating_add(2));
        let (hi, hi_incl) = match hi {
            Some((h, i)) => (Some(h), i),
            None => (None, false),
        };
        Some(Side { lo: lo.0, lo_incl: lo.1, hi, hi_incl, gap2 })
    }
}

/// The compiled bounds of a `number` or `integer` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumRange {
    /// Only integers (no fraction).
    pub integer_only: bool,
    max_digits: u8,
    pos: Option<Side>,
    neg: Option<Side>,
    /// The shortest value (the smallest in byte order among the shortest): the canonical closing value.
    canonical: Vec<u8>,
}

/// Where a bounded number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangePhase {
    /// Nothing written yet (only used to compute the canonical value).
    Start,
    /// After `-`.
    Minus,
    /// After the integer part `0`.
    Zero,
    /// Inside a non-zero integer part.
    Int,
    /// After the decimal point.
    Dot,
    /// Inside the fraction.
    Frac,
}

/// The automaton frame of a bounded number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangeFrame {
    /// The `BoundedNumber` schema node.
    pub node: NodeId,
    /// After a minus sign.
    pub neg: bool,
    /// The phase.
    pub phase: RangePhase,
    /// Digits of the integer part.
    pub int_digits: u8,
    /// Digits of the fraction.
    pub frac_digits: u8,
    /// Comparison with the lower bound of the magnitude: in [`RangePhase::Int`], of the integer digits with the
    /// bound's integer digits at the same positions (`Greater` once longer); after the integer part, of the whole
    /// prefix with the bound (`Equal`: equal so far).
    pub lo: Ordering,
    /// The same with the upper bound (`Less` when there is none).
    pub hi: Ordering,
}

impl RangeFrame {
    /// The frame before the first byte of a value of `node`.
    pub fn start(node: NodeId) -> RangeFrame {
        RangeFrame { node, neg: false, phase: RangePhase::Start, int_digits: 0, frac_digits: 0, lo: Equal, hi: Equal }
    }
}

/// A bound as read from the schema: its value and whether it is inclusive.
#[derive(Clone, Debug)]
struct Bound {
    value: Number,
    incl: bool,
    keyword: &'static str,
}

fn int_update(c: Ordering, bound_int: &[u8], n: usize, b: u8) -> Ordering {
    match bound_int.get(n) {
        None => Greater,
        Some(&d) if c == Equal => b.cmp(&d),
        Some(_) => c,
    }
}

fn resolve(c: Ordering, n: usize, len: usize) -> Ordering {
    match n.cmp(&len) {
        Equal => c,
        other => other,
    }
}

fn frac_update(c: Ordering, bound_frac: &[u8], j: usize, b: u8) -> Ordering {
    if c == Equal {
        b.cmp(bound_frac.get(j).unwrap_or(&b'0'))
    } else {
        c
    }
}

/// The first `k` digits of `t` (padded with zeros) as a number.
fn digits_value(t: &[u8], k: u32) -> u64 {
    (0..k as usize).fold(0u64, |acc, i| acc * 10 + u64::from(t.get(i).map_or(0, |d| d - b'0')))
}

impl NumRange {
    /// The bounds of a `number` (`integer_only` false) or `integer` node, or `None` when it has none. Refuses an
    /// empty range, malformed bounds, and `multipleOf` except where every integer satisfies it.
    pub fn compile(obj: &Map<String, Value>, integer_only: bool, path: &str) -> Result<Option<NumRange>, GrammarError> {
        let invalid = |why: String| GrammarError::InvalidSchema { path: path.to_string(), why };
        if let Some(m) = obj.get("multipleOf") {
            let f = m
                .as_f64()
                .filter(|f| *f > 0.0)
                .ok_or_else(|| invalid(format!("`multipleOf` must be a number > 0, got {m}")))?;
            // Every integer is a multiple of 1/2^j (exact in binary and in decimal); anything else is not enforced.
            let q = 1.0 / f;
            let trivial = integer_only && f <= 1.0 && q.fract() == 0.0 && q * f == 1.0 && (q as u64).is_power_of_two();
            if !trivial {
                let what = if integer_only { "integer" } else { "number" };
                return Err(GrammarError::UnsupportedKeyword {
                    keyword: format!(
                        "multipleOf {m} on {what} (supported only where every integer satisfies it: 1, 0.5, 0.25, …)"
                    ),
                    path: path.into(),
                });
            }
        }
        let (lower, upper) = read_bounds(obj).map_err(invalid)?;
        if lower.is_none() && upper.is_none() {
            return Ok(None);
        }
        let describe = |b: &Option<Bound>| b.as_ref().map(|b| format!("{} {}", b.keyword, b.value));
        if let (Some(l), Some(u)) = (&lower, &upper) {
            let c = cmp_numbers(&l.value, &u.value);
            if c == Greater || (c == Equal && !(l.incl && u.incl)) {
                return Err(invalid(format!(
                    "{} and {} leave an empty range: no value can match",
                    describe(&lower).unwrap_or_default(),
                    describe(&upper).unwrap_or_default()
                )));
            }
        }
        let range = if integer_only {
            Self::integer(lower.as_ref(), upper.as_ref(), &invalid, path)?
        } else {
            Self::number(lower.as_ref(), upper.as_ref())
        };
        match range {
            Some(r) => Ok(Some(r)),
            None => Err(GrammarError::UnsupportedKeyword {
                keyword: format!(
                    "{} (no {} that PicoLM writes lies in the range: bounded numbers have at most {MAX_BOUNDED_NUMBER_DIGITS} digits and no exponent)",
                    [describe(&lower), describe(&upper)].into_iter().flatten().collect::<Vec<_>>().join(", "),
                    if integer_only { "integer" } else { "number" }
                ),
                path: path.into(),
            }),
        }
    }

    fn integer(
        lower: Option<&Bound>,
        upper: Option<&Bound>,
        invalid: &dyn Fn(String) -> GrammarError,
        path: &str,
    ) -> Result<Option<NumRange>, GrammarError> {
        let (min, max) = (i128::from(i64::MIN), i128::from(u64::MAX));
        let lo = lower.map_or(i128::MIN, |b| if b.incl { ceil_int(&b.value) } else { floor_int(&b.value) + 1 });
        let hi = upper.map_or(i128::MAX, |b| if b.incl { floor_int(&b.value) } else { ceil_int(&b.value) - 1 });
        if lo > hi {
            return Err(invalid(format!(
                "no integer lies between {} and {}",
                lower.map_or("-inf".into(), |b| format!("{} {}", b.keyword, b.value)),
                upper.map_or("+inf".into(), |b| format!("{} {}", b.keyword, b.value))
            )));
        }
        let (lo_c, hi_c) = (lo.max(min), hi.min(max));
        if lo_c > hi_c {
            let b = if lo > max { lower } else { upper }.expect("a bound was clamped");
            return Err(GrammarError::UnsupportedKeyword {
                keyword: format!("{} {} (bounded integers are generated within -2^63 … 2^64-1)", b.keyword, b.value),
                path: path.into(),
            });
        }
        let d = MAX_BOUNDED_INTEGER_DIGITS;
        let pos = (hi_c >= 0).then(|| {
            let lo = Decimal::from_u128(lo_c.max(0) as u128);
            Side::new((lo, true), Some((Decimal::from_u128(hi_c as u128), true)), d)
        });
        let neg = (lo_c <= 0).then(|| {
            let lo = Decimal::from_u128((-hi_c).max(0) as u128);
            Side::new((lo, true), Some((Decimal::from_u128((-lo_c) as u128), true)), d)
        });
        Ok(Self::finish(true, d, pos.flatten(), neg.flatten()))
    }

    fn number(lower: Option<&Bound>, upper: Option<&Bound>) -> Option<NumRange> {
        let signed = |b: &Bound| {
            let (neg, d) = Decimal::parse(&number_text(&b.value));
            (neg, d, b.incl)
        };
        let (lo, hi) = (lower.map(signed), upper.map(signed));
        let zero = Decimal::default();
        let d = MAX_BOUNDED_NUMBER_DIGITS;
        // Positive magnitudes: none if the upper bound is negative.
        let pos = if hi.as_ref().is_some_and(|h| h.0) {
            None
        } else {
            let lower = match &lo {
                Some((false, m, incl)) => (m.clone(), *incl),
                _ => (zero.clone(), true),
            };
            Side::new(lower, hi.as_ref().map(|(_, m, incl)| (m.clone(), *incl)), d)
        };
        // Negative magnitudes (x = -m): none if the lower bound is positive.
        let neg = if lo.as_ref().is_some_and(|l| !l.0 && !l.1.is_zero()) {
            None
        } else {
            let lower = match &hi {
                Some((true, m, incl)) => (m.clone(), *incl),
                Some((false, m, incl)) if m.is_zero() => (zero.clone(), *incl),
                _ => (zero.clone(), true),
            };
            Side::new(lower, lo.as_ref().map(|(_, m, incl)| (m.clone(), *incl)), d)
        };
        Self::finish(false, d, pos, neg)
    }

    fn finish(integer_only: bool, max_digits: u8, pos: Option<Side>, neg: Option<Side>) -> Option<NumRange> {
        let mut r = NumRange { integer_only, max_digits, pos, neg, canonical: Vec::new() };
        let mut canonical = Vec::new();
        r.complete(RangeFrame::start(0), &mut canonical)?;
        r.canonical = canonical;
        Some(r)
    }

    /// The canonical value: the shortest in the range, the smallest in byte order among those.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    fn side(&self, neg: bool) -> Option<&Side> {
        if neg {
            self.neg.as_ref()
        } else {
            self.pos.as_ref()
        }
    }

    /// The frame after byte `b`, if it keeps the number completable within the range.
    pub fn step(&self, f: RangeFrame, b: u8) -> Option<RangeFrame> {
        let next = self.raw_step(f, b)?;
        self.min_len(&next).map(|_| next)
    }

    /// Whether the number may end here (it lies in the range).
    pub fn accepting(&self, f: &RangeFrame) -> bool {
        self.min_len(f) == Some(0)
    }

    /// The frame after byte `b` by the form alone (the range is checked by [`NumRange::step`]).
    fn raw_step(&self, f: RangeFrame, b: u8) -> Option<RangeFrame> {
        use RangePhase::*;
        let digit = b.is_ascii_digit();
        match f.phase {
            Start if b == b'-' => self.neg.as_ref().map(|_| RangeFrame { neg: true, phase: Minus, ..f }),
            Start if digit => self.first_digit(RangeFrame { neg: false, ..f }, b),
            Minus if digit => self.first_digit(f, b),
            Int if digit => {
                if f.int_digits >= self.max_digits {
                    return None;
                }
                let s = self.side(f.neg)?;
                let n = usize::from(f.int_digits);
                let lo = int_update(f.lo, &s.lo.int, n, b);
                let hi = s.hi.as_ref().map_or(Less, |h| int_update(f.hi, &h.int, n, b));
                Some(RangeFrame { int_digits: f.int_digits + 1, lo, hi, ..f })
            }
            Int if b == b'.' && !self.integer_only => {
                let s = self.side(f.neg)?;
                let n = usize::from(f.int_digits);
                let lo = resolve(f.lo, n, s.lo.int.len());
                let hi = s.hi.as_ref().map_or(Less, |h| resolve(f.hi, n, h.int.len()));
                Some(RangeFrame { phase: Dot, lo, hi, ..f })
            }
            Zero if b == b'.' && !self.integer_only => Some(RangeFrame { phase: Dot, ..f }),
            Dot | Frac if digit => {
                if f.int_digits + f.frac_digits >= self.max_digits {
                    return None;
                }
                let s = self.side(f.neg)?;
                let j = usize::from(f.frac_digits);
                let lo = frac_update(f.lo, &s.lo.frac, j, b);
                let hi = s.hi.as_ref().map_or(Less, |h| frac_update(f.hi, &h.frac, j, b));
                Some(RangeFrame { phase: Frac, frac_digits: f.frac_digits + 1, lo, hi, ..f })
            }
            _ => None,
        }
    }

    fn first_digit(&self, f: RangeFrame, b: u8) -> Option<RangeFrame> {
        let s = self.side(f.neg)?;
        if b == b'0' {
            // The integer part is 0: compare it with the bounds' integer parts once and for all.
            let lo = if s.lo.int.is_empty() { Equal } else { Less };
            let hi = match &s.hi {
                Some(h) if h.int.is_empty() => Equal,
                _ => Less,
            };
            Some(RangeFrame { phase: RangePhase::Zero, int_digits: 1, frac_digits: 0, lo, hi, ..f })
        } else {
            let lo = int_update(Equal, &s.lo.int, 0, b);
            let hi = s.hi.as_ref().map_or(Less, |h| int_update(Equal, &h.int, 0, b));
            Some(RangeFrame { phase: RangePhase::Int, int_digits: 1, frac_digits: 0, lo, hi, ..f })
        }
    }

    /// Bytes of the shortest completion of `f` to a number in the range (0: it may end here); `None` when there
    /// is none.
    pub fn min_len(&self, f: &RangeFrame) -> Option<u32> {
        use RangePhase::*;
        match f.phase {
            Start | Minus => NUMBER_BYTES
                .iter()
                .filter_map(|&b| self.raw_step(*f, b))
                .filter_map(|n| self.min_len(&n))
                .min()
                .map(|k| k + 1),
            Int => self.int_min_len(f),
            Zero | Frac => {
                let s = self.side(f.neg)?;
                let j = usize::from(f.frac_digits);
                if ends_ok(s, f.lo, f.hi, j) {
                    Some(0)
                } else {
                    let room = self.max_digits.saturating_sub(f.int_digits + f.frac_digits);
                    let k = self.frac_min(s, f.lo, f.hi, j, room)?.0;
                    Some(k + u32::from(f.phase == Zero))
                }
            }
            Dot => {
                let s = self.side(f.neg)?;
                let room = self.max_digits.saturating_sub(f.int_digits + f.frac_digits);
                self.frac_min(s, f.lo, f.hi, usize::from(f.frac_digits), room).map(|(k, _)| k)
            }
        }
    }

    /// The shortest completion inside a non-zero integer part: over every final integer length, the cheapest of
    /// an integer strictly between the bounds' integer parts, the lower bound's integer part with the fraction it
    /// needs, and the upper bound's integer part.
    fn int_min_len(&self, f: &RangeFrame) -> Option<u32> {
        let s = self.side(f.neg)?;
        let n = usize::from(f.int_digits);
        let ll = s.lo.int.len();
        let same = s.hi.as_ref().is_some_and(|h| h.int == s.lo.int);
        let mut best: Option<u32> = None;
        for total in n..=usize::from(self.max_digits) {
            let m = (total - n) as u32;
            if best.is_some_and(|b| b <= m) {
                break;
            }
            // Integer parts reachable with `total` digits: some above lo's, lo's itself.
            let (lo_above, lo_contains) = if n > ll || total > ll {
                (true, false)
            } else if total < ll {
                (false, false)
            } else {
                match f.lo {
                    Greater => (true, false),
                    Less => (false, false),
                    Equal => (!s.lo.int[n..].iter().all(|&d| d == b'9'), true),
                }
            };
            let (hi_below, hi_contains) = match &s.hi {
                None => (true, false),
                Some(h) => {
                    let lh = h.int.len();
                    if n > lh || total > lh {
                        (false, false)
                    } else if total < lh {
                        (true, false)
                    } else {
                        match f.hi {
                            Less => (true, false),
                            Greater => (false, false),
                            Equal => (!h.int[n..].iter().all(|&d| d == b'0'), true),
                        }
                    }
                }
            };
            let room = self.max_digits - total as u8;
            let mut cand = None;
            if lo_above && hi_below && s.gap2 {
                cand = Some(m);
            } else {
                if lo_contains {
                    let hi = if same { Equal } else { Less };
                    cand = min_opt(cand, self.frac_cost(s, Equal, hi, room).map(|c| m + c));
                }
                if hi_contains && !same {
                    cand = min_opt(cand, self.frac_cost(s, Greater, Equal, room).map(|c| m + c));
                }
            }
            best = min_opt(best, cand);
        }
        best
    }

    /// Bytes that finish a number whose integer part just ended with these comparisons (0, or `.` and digits).
    fn frac_cost(&self, s: &Side, lo: Ordering, hi: Ordering, room: u8) -> Option<u32> {
        if ends_ok(s, lo, hi, 0) {
            return Some(0);
        }
        self.frac_min(s, lo, hi, 0, room).map(|(k, _)| k + 1)
    }

    /// The fewest fraction digits (at least one, at most `room`) that bring a prefix at fraction position `j`
    /// into the range, and the smallest such digits as a number.
    fn frac_min(&self, s: &Side, lo: Ordering, hi: Ordering, j: usize, room: u8) -> Option<(u32, u64)> {
        if self.integer_only {
            return None;
        }
        let lower = match lo {
            Greater => None,
            Less => return None,
            Equal => Some((s.lo.frac.get(j..).unwrap_or(&[]), s.lo_incl)),
        };
        let upper = match (&s.hi, hi) {
            (None, _) | (_, Less) => None,
            (Some(_), Greater) => return None,
            (Some(h), Equal) => Some((h.frac.get(j..).unwrap_or(&[]), s.hi_incl)),
        };
        (1..=u32::from(room)).find_map(|k| frac_candidate(lower, upper, k).map(|c| (k, c)))
    }

    /// Appends the canonical completion of `f` (the shortest, then the smallest in byte order); `None` when `f`
    /// cannot be completed.
    pub fn complete(&self, mut f: RangeFrame, out: &mut Vec<u8>) -> Option<()> {
        let mut k = self.min_len(&f)?;
        while k > 0 {
            let (b, next) = NUMBER_BYTES
                .iter()
                .find_map(|&b| {
                    let n = self.raw_step(f, b)?;
                    (self.min_len(&n) == Some(k - 1)).then_some((b, n))
                })
                .expect("a byte continues the shortest completion");
            out.push(b);
            f = next;
            k -= 1;
        }
        Some(())
    }
}

fn min_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Whether a number whose integer part is settled may end at fraction position `j` with these comparisons.
fn ends_ok(s: &Side, lo: Ordering, hi: Ordering, j: usize) -> bool {
    let lo_ok = match lo {
        Greater => true,
        Less => false,
        // Equal so far: equal to the bound if its fraction has no more digits, else below it.
        Equal => j >= s.lo.frac.len() && s.lo_incl,
    };
    let hi_ok = match (&s.hi, hi) {
        (None, _) | (_, Less) => true,
        (Some(_), Greater) => false,
        (Some(h), Equal) => j < h.frac.len() || s.hi_incl,
    };
    lo_ok && hi_ok
}

/// The smallest `k`-digit fraction `0.c` with `0.lower ≤ 0.c ≤ 0.upper` (strict where exclusive), as `c`.
fn frac_candidate(lower: Option<(&[u8], bool)>, upper: Option<(&[u8], bool)>, k: u32) -> Option<u64> {
    let c = match lower {
        None => 0,
        Some((t, incl)) => {
            let a = digits_value(t, k);
            if t.len() <= k as usize && incl {
                a
            } else {
                a + 1 // exclusive, or the bound has more digits: round up
            }
        }
    };
    if c >= 10u64.pow(k) {
        return None;
    }
    if let Some((t, incl)) = upper {
        match c.cmp(&digits_value(t, k)) {
            Less => {}
            Greater => return None,
            Equal if t.len() <= k as usize && !incl => return None,
            Equal => {}
        }
    }
    Some(c)
}

/// The decimal text of a JSON number without exponent (the shortest digits of a double).
fn number_text(n: &Number) -> String {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u.to_string(),
        (_, Some(i)) => i.to_string(),
        _ => format!("{}", n.as_f64().unwrap_or(0.0)),
    }
}

/// Exact numeric order of two JSON numbers (integers beyond 2^53 and doubles compared without rounding).
pub(super) fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    fn int_vs_float(i: i128, f: f64) -> Ordering {
        if f >= 1e30 {
            return Less;
        }
        if f <= -1e30 {
            return Greater;
        }
        let t = f.trunc();
        i.cmp(&(t as i128)).then(if f > t {
            Less
        } else if f < t {
            Greater
        } else {
            Equal
        })
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => int_vs_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => int_vs_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => a.as_f64().unwrap_or(0.0).partial_cmp(&b.as_f64().unwrap_or(0.0)).unwrap_or(Equal),
    }
}

/// The smallest integer ≥ `n` (saturating far beyond the 64-bit range).
fn ceil_int(n: &Number) -> i128 {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i128::from(i),
        (_, Some(u)) => i128::from(u),
        _ => (n.as_f64().unwrap_or(0.0).clamp(-1e30, 1e30)).ceil() as i128,
    }
}

/// The largest integer ≤ `n` (saturating far beyond the 64-bit range).
fn floor_int(n: &Number) -> i128 {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i128::from(i),
        (_, Some(u)) => i128::from(u),
        _ => (n.as_f64().unwrap_or(0.0).clamp(-1e30, 1e30)).floor() as i128,
    }
}

/// Checks the numeric keywords' values (for `enum`/`const` nodes, whose values are checked one by one).
pub(super) fn check_keywords(obj: &Map<String, Value>) -> Result<(), String> {
    if let Some(m) = obj.get("multipleOf") {
        if !m.as_f64().is_some_and(|f| f > 0.0) {
            return Err(format!("`multipleOf` must be a number > 0, got {m}"));
        }
    }
    read_bounds(obj).map(|_| ())
}

/// Reads `minimum`/`exclusiveMinimum` and `maximum`/`exclusiveMaximum` (numbers, or the draft-4 booleans that
/// make `minimum`/`maximum` exclusive) into the tighter lower and upper bound.
fn read_bounds(obj: &Map<String, Value>) -> Result<(Option<Bound>, Option<Bound>), String> {
    let num = |key: &'static str, incl: bool| -> Result<Option<Bound>, String> {
        match obj.get(key) {
            None => Ok(None),
            // Draft 4: a boolean `exclusiveMinimum`/`exclusiveMaximum` modifies `minimum`/`maximum`.
            Some(Value::Bool(_)) if !incl => Ok(None),
            Some(Value::Number(n)) => Ok(Some(Bound { value: n.clone(), incl, keyword: key })),
            Some(other) => Err(format!("`{key}` must be a number, got {other}")),
        }
    };
    let draft4 = |excl_key: &'static str, base: &'static str, b: Option<Bound>| -> Result<Option<Bound>, String> {
        match obj.get(excl_key) {
            Some(Value::Bool(true)) => match b {
                Some(b) => Ok(Some(Bound { incl: false, keyword: excl_key, ..b })),
                None => Err(format!("`{excl_key}: true` needs `{base}`")),
            },
            _ => Ok(b),
        }
    };
    let tighter = |a: Option<Bound>, b: Option<Bound>, lower: bool| -> Option<Bound> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let c = cmp_numbers(&a.value, &b.value);
                let a_tighter = match c {
                    Equal => !a.incl,
                    Greater => lower,
                    Less => !lower,
                };
                Some(if a_tighter { a } else { b })
            }
            (a, None) => a,
            (None, b) => b,
        }
    };
    let lower =
        tighter(num("exclusiveMinimum", false)?, draft4("exclusiveMinimum", "minimum", num("minimum", true)?)?, true);
    let upper =
        tighter(num("exclusiveMaximum", false)?, draft4("exclusiveMaximum", "maximum", num("maximum", true)?)?, false);
    Ok((lower, upper))
}
