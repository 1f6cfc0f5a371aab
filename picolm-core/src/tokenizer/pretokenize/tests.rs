//! The hand-written pre-tokenizers split every text exactly like llama.cpp's regular expressions run by
//! fancy-regex (the engine the pre-tokenizer used before): the goldens' texts, every short string over an alphabet
//! with one character of each role, every class boundary of the Unicode tables, and long seeded random text.

use fancy_regex::Regex;

use super::class_table::RANGES;
use super::PreTokenizer;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's expressions for each pre-tokenizer name (`llama-vocab.cpp`), the reference.
fn patterns(pre: &str) -> Vec<&'static str> {
    match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => vec![r"\p{N}", GPT2],
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => vec![LLAMA3],
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => vec![QWEN2],
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "trillion" => vec![GPT2],
        _ => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    }
}

/// Every name the pre-tokenizer knows, and one it does not (llama.cpp's default list).
#[rustfmt::skip]
const NAMES: &[&str] = &[
    "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "llama3", "llama-v3",
    "llama-bpe", "falcon3", "pixtral", "qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan", "gpt-2", "gpt2", "phi-2",
    "jina-es", "jina-de", "mpt", "olmo", "jais", "trillion", "default",
];

/// One of each expression list: the names of `NAMES` only choose among these.
const KINDS: &[&str] = &["smollm", "llama-bpe", "qwen2", "gpt2", "default"];

/// The regex splitter the hand-written one replaces: each expression splits the pieces of the previous one into
/// its matches and the gaps between them.
struct Reference(Vec<Regex>);

impl Reference {
    fn new(pre: &str) -> Reference {
        Reference(patterns(pre).into_iter().map(|p| Regex::new(p).unwrap()).collect())
    }

    fn split(&self, text: &str) -> Vec<(usize, usize)> {
        let mut pieces = vec![(0, text.len())];
        for re in &self.0 {
            let mut next = Vec::new();
            for &(s, e) in &pieces {
                let piece = &text[s..e];
                let mut last = 0;
                while let Some(m) = re.find_from_pos(piece, last).unwrap_or_else(|e| panic!("{text:?}: {e}")) {
                    assert!(m.end() > m.start(), "the expressions never match empty text");
                    if m.start() > last {
                        next.push((s + last, s + m.start()));
                    }
                    next.push((s + m.start(), s + m.end()));
                    last = m.end();
                }
                if last < piece.len() {
                    next.push((s + last, e));
                }
            }
            pieces = next;
        }
        pieces
    }
}

/// Splits every text with both and reports the first texts where they differ.
fn assert_same_splits(pre: &str, texts: impl IntoIterator<Item = String>) -> usize {
    let reference = Reference::new(pre);
    let ours = PreTokenizer::new(pre);
    let mut failures = Vec::new();
    let mut n = 0;
    for text in texts {
        n += 1;
        let want = reference.split(&text);
        let got = ours.split(&text);
        if got != want && failures.len() < 5 {
            let words = |v: &[(usize, usize)]| v.iter().map(|&(s, e)| text[s..e].to_string()).collect::<Vec<_>>();
            failures.push(format!("{text:?}\n  regex: {:?}\n  ours:  {:?}", words(&want), words(&got)));
        }
    }
    assert!(failures.is_empty(), "{pre}: splits differ from the regex on\n{}", failures.join("\n"));
    n
}

/// The texts of the llama.cpp tokenizer goldens (tests/rust/tokenizer_golden.rs), escapes already processed.
const GOLDEN_TEXTS: &[&str] = &[
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing space ",
    "Hello\nworld\n\nnew paragraph",
    "The capital of France is Paris.",
    "It's a dog's life, isn't it? We'll see.",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "2026-11-24T09:30:00Z",
    "ünïcödé façade naïve café",
    "Привет, мир!",
    "mixed: αβγ δ ε → ∞ ≠ ≤",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n-1) + fibonacci(n-2)\n",
    "{\"tool_calls\": [{\"function\": {\"name\": \"read_sensor\", \"arguments\": \"{\\\"id\\\": 3}\"}}]}",
    "    indented code\n        more",
    "a",
    "",
    "\n",
    "!!!???...,,,;;;",
    "CamelCaseWordsAndALLCAPS and snake_case_names",
    "https://example.com/path?q=1&r=2",
    "I'm, you're, he's, they've, we'd, she'll",
    "\u{a0}non-breaking\u{a0}space",
    "zero\u{200b}width",
    "Tiếng Việt có dấu",
    "عربي نص",
    "\r\nwindows line endings\r\n",
    "ÿþ bytes-ish",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
];

/// Pieces of text with one of each role the expressions tell apart: letters of each kind (upper, lower, title case,
/// modifier, other; the contraction letters), numbers (decimal, letter-like, other; ASCII and not), each kind of
/// white space (space, tab, line breaks, no-break and other Unicode spaces), punctuation, the ASCII symbols of the
/// default list and other symbols, combining marks, emoji sequences, CJK, controls and format characters,
/// unassigned and private-use code points and noncharacters, and contractions in every case.
#[rustfmt::skip]
const ATOMS: &[&str] = &[
    "a", "Z", "s", "S", "t", "T", "r", "R", "e", "E", "v", "V", "m", "M", "l", "L", "d", "D", "x", "ǅ", "ʰ", "ß",
    "é", "ñ", "Ж", "λ", "ا", "א", "ก", "中", "文", "あ", "カ", "한", "'", "'s", "'S", "'t", "'T", "'re", "'RE", "'rE",
    "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'Ll", "'d", "'D", "'x", "''", "'r", "'l", "0", "7", "12",
    "123", "1234", "٣", "०", "Ⅻ", "½", "²", "０", "𝟙", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", " \n",
    "\u{a0}", "\u{85}", "\u{2028}", "\u{2029}", "\u{3000}", "\u{b}", "\u{c}", "\u{1680}", "\u{2009}", "\u{202f}",
    ".", ",", "!", "?", "-", "_", "(", ")", "«", "»", "¿", "‽", "、", "。", "—", "…", "\"", "#", "%", "&", "*", "/",
    ":", ";", "@", "[", "\\", "]", "{", "}", "$", "+", "<", "=", ">", "^", "~", "|", "`", "©", "€", "∞", "→", "≠",
    "\u{301}", "\u{300}", "\u{903}", "\u{20dd}", "😀", "👩\u{200d}👩\u{200d}👧", "🇫🇷", "\u{fe0f}", "👍🏽", "\0",
    "\u{1}", "\u{7f}", "\u{200b}", "\u{feff}", "\u{ad}", "\u{200d}", "\u{fffd}", "\u{ffff}", "\u{e000}",
    "\u{10ffff}", "\u{378}", "\u{fdd0}", "\u{d7ff}", "\u{e0001}", "Hello", " world", "don't", "I'M", "1,000", "3.14",
];

/// A short alphabet with one character of each role, for exhaustive short strings.
const ALPHABET: &[char] = &['a', 's', 'L', '1', '٣', ' ', '\t', '\n', '\r', '\u{a0}', '\'', '.', '$', '\u{301}'];

/// SplitMix64: a small seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Any character of the whole code space.
    fn any_char(&mut self) -> char {
        loop {
            if let Some(c) = char::from_u32(self.below(0x11_0000) as u32) {
                return c;
            }
        }
    }
}

/// The first and last character of every class run of the tables and the characters just outside it.
fn boundary_chars() -> Vec<char> {
    let mut out = Vec::new();
    for &(first, last, _) in RANGES {
        for c in [first as u32 as i64 - 1, first as u32 as i64, last as u32 as i64, last as u32 as i64 + 1] {
            if let Some(c) = u32::try_from(c).ok().and_then(char::from_u32) {
                out.push(c);
            }
        }
    }
    out.dedup();
    out
}

/// Every string of one to `max_len` characters over `alphabet`.
fn all_strings(alphabet: &[char], max_len: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut layer = vec![String::new()];
    for _ in 0..max_len {
        layer = layer.iter().flat_map(|s| alphabet.iter().map(move |&c| format!("{s}{c}"))).collect();
        out.extend(layer.iter().cloned());
    }
    out
}

/// Seeded random texts: atoms, boundary characters and characters from the whole code space, mixed.
fn random_texts(seed: u64, count: usize, max_parts: usize) -> Vec<String> {
    let boundaries = boundary_chars();
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let mut s = String::new();
            for _ in 0..=rng.below(max_parts) {
                match rng.below(10) {
                    0 => s.push(rng.any_char()),
                    1 => s.push(boundaries[rng.below(boundaries.len())]),
                    _ => s.push_str(ATOMS[rng.below(ATOMS.len())]),
                }
            }
            s
        })
        .collect()
}

/// Long texts: long runs of one kind (spaces, line breaks, digits, letters, punctuation) between random parts.
fn long_texts(seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let runs = [" ", "\n", "\r\n", " \n", "\t", "\u{3000}", "7", "٣", "a", "中", ".", "'", "$", "😀", "\u{301}"];
    (0..40)
        .map(|_| {
            let mut s = String::new();
            while s.len() < 6000 {
                let unit = runs[rng.below(runs.len())];
                s.push_str(&unit.repeat(1 + rng.below(700)));
                s.push_str(&random_texts(rng.next(), 1, 30)[0]);
            }
            s
        })
        .collect()
}

#[test]
fn golden_texts_split_like_the_regex() {
    for pre in NAMES {
        assert_same_splits(pre, GOLDEN_TEXTS.iter().map(|s| s.to_string()));
    }
}

#[test]
fn every_name_splits_like_its_regex() {
    for pre in NAMES {
        assert_same_splits(pre, random_texts(0x5EED, 300, 40));
    }
}

#[test]
fn all_short_strings_split_like_the_regex() {
    let texts = all_strings(ALPHABET, 4);
    for pre in KINDS {
        assert_eq!(assert_same_splits(pre, texts.iter().cloned()), 14 + 14 * 14 + 14 * 14 * 14 + 14usize.pow(4));
    }
}

#[test]
fn all_atom_pairs_split_like_the_regex() {
    let texts: Vec<String> = ATOMS.iter().flat_map(|a| ATOMS.iter().map(move |b| format!("{a}{b}"))).collect();
    for pre in KINDS {
        assert_same_splits(pre, texts.iter().cloned());
    }
}

#[test]
fn class_boundaries_split_like_the_regex() {
    let boundaries = boundary_chars();
    assert!(boundaries.len() > 2000, "{} boundary characters", boundaries.len());
    let texts: Vec<String> = boundaries
        .iter()
        .flat_map(|&b| {
            [
                format!("{b}"),
                format!(" {b}"),
                format!("{b} "),
                format!("a{b}1"),
                format!("{b}{b}x"),
                format!("'{b}"),
                format!("\n{b}\r\n"),
                format!("  {b}."),
            ]
        })
        .collect();
    for pre in KINDS {
        assert_same_splits(pre, texts.iter().cloned());
    }
}

#[test]
fn random_texts_split_like_the_regex() {
    for (i, pre) in KINDS.iter().enumerate() {
        assert_same_splits(pre, random_texts(0xC0FFEE + i as u64, 3000, 60));
    }
}

#[test]
fn long_texts_split_like_the_regex() {
    for (i, pre) in KINDS.iter().enumerate() {
        assert_same_splits(pre, long_texts(0xB16 + i as u64));
    }
}

fn words<'a>(p: &PreTokenizer, t: &'a str) -> Vec<&'a str> {
    p.split(t).into_iter().map(|(s, e)| &t[s..e]).collect()
}

#[test]
fn smollm_splits_digits_and_keeps_single_space_before_words() {
    let p = PreTokenizer::new("smollm");
    assert_eq!(words(&p, "  two 123"), vec![" ", " two", " ", "1", "2", "3"]);
    assert_eq!(words(&p, "Hello\nworld\n\nx"), vec!["Hello", "\n", "world", "\n", "\n", "x"]);
    assert_eq!(words(&p, "it's"), vec!["it", "'s"]);
}

#[test]
fn llama3_groups_digits_by_three() {
    let p = PreTokenizer::new("llama-bpe");
    assert_eq!(words(&p, "12345 ab"), vec!["123", "45", " ab"]);
}

#[test]
fn default_list_splits_punctuation_then_numbers_by_three() {
    let p = PreTokenizer::new("some-new-model");
    assert_eq!(words(&p, "x+=12345;"), vec!["x", "+=", "123", "45", ";"]);
}
