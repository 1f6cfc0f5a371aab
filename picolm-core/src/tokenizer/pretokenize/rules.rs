//! The regular expressions of llama.cpp's pre-tokenizers, written out by hand. `Rule::match_at` returns exactly the
//! match a backtracking regex engine (leftmost-first alternation, greedy repetition) returns for the expression at
//! that position, and `Rule::find` the leftmost match from a position on, as `fancy_regex::Regex::find_from_pos`
//! does; the differential tests in `super::tests` compare both on generated text. Like the regex run on a piece of
//! text, a rule sees only that piece: `(?!\S)` at the end of the piece succeeds.

use super::class::{class_of, Class};

/// One expression of a pre-tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// Llama 3: `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (the fourth alternative starts with an optional space).
    Llama3,
    /// Qwen 2: Llama 3's expression with `\p{N}` (one number character) in place of `\p{N}{1,3}`.
    Qwen2,
    /// `\p{N}`: one number character.
    OneNumber,
    /// `\p{N}+`: a run of number characters.
    Numbers,
    /// `[\p{P}\$\+<=>\^~\|]+`: a run of punctuation and the ASCII symbols `$+<=>^~|`.
    Punctuation,
    /// `[0-9][0-9][0-9]`: three ASCII digits.
    ThreeDigits,
}

impl Rule {
    /// The leftmost match in `s` that starts at or after byte offset `from` (a character boundary), as byte offsets.
    pub(crate) fn find(self, s: &str, from: usize) -> Option<(usize, usize)> {
        let mut p = from;
        while p < s.len() {
            if let Some(end) = self.match_at(s, p) {
                return Some((p, end));
            }
            p += char_len_at(s, p);
        }
        None
    }

    /// The end of the match that starts at byte offset `p` of `s`, if the expression matches there. Matches are
    /// never empty.
    pub(crate) fn match_at(self, s: &str, p: usize) -> Option<usize> {
        let (c, k) = at(s, p)?;
        match self {
            Rule::Gpt2 => gpt2(s, p, c, k),
            Rule::Llama3 => llama3(s, p, c, k, 3),
            Rule::Qwen2 => llama3(s, p, c, k, 1),
            Rule::OneNumber => (k == Class::Number).then(|| p + c.len_utf8()),
            Rule::Numbers => (k == Class::Number).then(|| class_run_end(s, p, |k| k == Class::Number)),
            Rule::Punctuation => {
                let member = |c: char| class_of(c) == Class::Punctuation || "$+<=>^~|".contains(c);
                member(c).then(|| run_end(s, p, member))
            }
            Rule::ThreeDigits => {
                let digits = s.as_bytes().get(p..p + 3)?;
                digits.iter().all(u8::is_ascii_digit).then_some(p + 3)
            }
        }
    }
}

/// GPT-2's alternatives in order (see `Rule::Gpt2`).
fn gpt2(s: &str, p: usize, c: char, k: Class) -> Option<usize> {
    contraction(s, p, false)
        .or_else(|| space_then_run(s, p, c, k, |k| k == Class::Letter))
        .or_else(|| space_then_run(s, p, c, k, |k| k == Class::Number))
        .or_else(|| space_then_run(s, p, c, k, Class::is_symbol_like))
        .or_else(|| space_run(s, p).and_then(|run| run.not_before_non_space(s.len())))
}

/// Llama 3's alternatives in order (see `Rule::Llama3`); Qwen 2's with `max_numbers` 1.
fn llama3(s: &str, p: usize, c: char, k: Class, max_numbers: usize) -> Option<usize> {
    if let Some(end) = contraction(s, p, true) {
        return Some(end);
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+ : the optional character is taken when a letter follows it.
    if k == Class::Letter {
        return Some(class_run_end(s, p, |k| k == Class::Letter));
    }
    if c != '\r' && c != '\n' && k != Class::Number {
        let next = p + c.len_utf8();
        if at(s, next).is_some_and(|(_, k)| k == Class::Letter) {
            return Some(class_run_end(s, next, |k| k == Class::Letter));
        }
    }
    // \p{N}{1,3} (Qwen 2: \p{N})
    if k == Class::Number {
        let mut end = p;
        for (n, c) in s[p..].chars().take(max_numbers).enumerate() {
            if n > 0 && class_of(c) != Class::Number {
                break;
            }
            end += c.len_utf8();
        }
        return Some(end);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    if let Some(end) = space_then_run(s, p, c, k, Class::is_symbol_like) {
        return Some(run_end(s, end, |c| c == '\r' || c == '\n'));
    }
    // What is left starts with white space: `\s*[\r\n]+` ends after the run's last line break, `\s+(?!\S)` leaves
    // the run's last character when a non-space follows, and `\s+` takes the whole run.
    let run = space_run(s, p)?;
    Some(run.after_last_line_break.or_else(|| run.not_before_non_space(s.len())).unwrap_or(run.end))
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `p`, also with upper-case letters when `any_case`.
fn contraction(s: &str, p: usize, any_case: bool) -> Option<usize> {
    let b = s.as_bytes();
    if b[p] != b'\'' {
        return None;
    }
    let letter = |i: usize| b.get(p + i).map(|&c| if any_case { c.to_ascii_lowercase() } else { c });
    match letter(1)? {
        b's' | b't' | b'm' | b'd' => Some(p + 2),
        b'r' | b'v' if letter(2) == Some(b'e') => Some(p + 3),
        b'l' if letter(2) == Some(b'l') => Some(p + 3),
        _ => None,
    }
}

/// ` ?X+` at `p` (`c`, of class `k`, is the character there), for a class set X that does not contain white space:
/// a space is taken when an X character follows it, then the run of X characters.
fn space_then_run(s: &str, p: usize, c: char, k: Class, is_x: impl Fn(Class) -> bool + Copy) -> Option<usize> {
    if c == ' ' {
        if let Some((next, next_class)) = at(s, p + 1) {
            if is_x(next_class) {
                return Some(class_run_end(s, p + 1 + next.len_utf8(), is_x));
            }
        }
    }
    is_x(k).then(|| class_run_end(s, p + c.len_utf8(), is_x))
}

/// A run of white space.
struct SpaceRun {
    /// The first character of the run.
    start: usize,
    /// The end of the run.
    end: usize,
    /// Where the run's last character starts.
    last_start: usize,
    /// The end of the run's last `\r` or `\n`, if it has one.
    after_last_line_break: Option<usize>,
}

impl SpaceRun {
    /// `\s+(?!\S)`: the whole run at the end of the text; otherwise the run without its last character, if that
    /// leaves at least one.
    fn not_before_non_space(&self, text_len: usize) -> Option<usize> {
        if self.end == text_len {
            Some(self.end)
        } else {
            (self.last_start > self.start).then_some(self.last_start)
        }
    }
}

/// The run of white space that starts at `p`, if `p` is white space.
fn space_run(s: &str, p: usize) -> Option<SpaceRun> {
    let mut run = SpaceRun { start: p, end: p, last_start: p, after_last_line_break: None };
    for c in s[p..].chars() {
        if class_of(c) != Class::Space {
            break;
        }
        run.last_start = run.end;
        run.end += c.len_utf8();
        if c == '\r' || c == '\n' {
            run.after_last_line_break = Some(run.end);
        }
    }
    (run.end > p).then_some(run)
}

/// The character at byte offset `p` and its class.
fn at(s: &str, p: usize) -> Option<(char, Class)> {
    s.get(p..)?.chars().next().map(|c| (c, class_of(c)))
}

/// The length in bytes of the character at byte offset `p`.
fn char_len_at(s: &str, p: usize) -> usize {
    s[p..].chars().next().map_or(1, char::len_utf8)
}

/// The end of the run of characters from `p` on whose class satisfies `keep`.
fn class_run_end(s: &str, p: usize, keep: impl Fn(Class) -> bool) -> usize {
    run_end(s, p, |c| keep(class_of(c)))
}

/// The end of the run of characters from `p` on that satisfy `keep`.
fn run_end(s: &str, p: usize, keep: impl Fn(char) -> bool) -> usize {
    s[p..].char_indices().find(|&(_, c)| !keep(c)).map_or(s.len(), |(i, _)| p + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(rule: Rule, s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some((start, end)) = rule.find(s, pos) {
            out.push(&s[start..end]);
            pos = end;
        }
        out
    }

    #[test]
    fn gpt2_contractions_are_lower_case_only() {
        assert_eq!(matches(Rule::Gpt2, "it's IT'S we'll"), vec!["it", "'s", " IT", "'", "S", " we", "'ll"]);
    }

    #[test]
    fn llama3_contractions_ignore_case() {
        assert_eq!(matches(Rule::Llama3, "IT'S We'Ll 'x"), vec!["IT", "'S", " We", "'Ll", " '", "x"]);
    }

    #[test]
    fn space_before_non_space_is_left_out_of_the_run() {
        // The last space of a run goes with the word after it; a lone tab before a word is not matched by GPT-2.
        assert_eq!(matches(Rule::Gpt2, "a   b\tc  "), vec!["a", "  ", " b", "c", "  "]);
        assert_eq!(matches(Rule::Llama3, "a \t b\n \n c"), vec!["a", " \t", " b", "\n \n", " c"]);
    }

    #[test]
    fn numbers_group_by_three_in_llama3_and_one_in_qwen2() {
        assert_eq!(matches(Rule::Llama3, "12345"), vec!["123", "45"]);
        assert_eq!(matches(Rule::Qwen2, "123"), vec!["1", "2", "3"]);
        assert_eq!(matches(Rule::ThreeDigits, "12a3456"), vec!["345"]);
    }

    #[test]
    fn symbols_take_following_line_breaks_in_llama3() {
        assert_eq!(matches(Rule::Llama3, "x;\r\n\ny"), vec!["x", ";\r\n\n", "y"]);
    }
}
