//! A tolerant reader for one NDJSON line: a flat JSON object whose values may be
//! nested.
//!
//! Why not `serde_json` alone: Python's `json.dumps` writes the tokens `NaN`,
//! `Infinity` and `-Infinity`, which the contract (SPEC §2) accepts wherever a
//! number is. serde_json rejects them. A scan that borrows from the line also
//! avoids building a `serde_json::Value` tree per record: top-level strings
//! without escapes are borrowed, and numbers are parsed straight into `i64`/`f64`.
//! String escapes are still decoded by serde_json, so that part is not ours.

use std::borrow::Cow;

/// Deepest nesting accepted inside a value; deeper input is rejected rather
/// than risking the stack.
const MAX_DEPTH: usize = 128;

/// One top-level value of the object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonValue<'a> {
    Null,
    Bool(bool),
    /// An integer literal that fits in `i64`.
    Int(i64),
    /// Any other number, including `NaN` and `±Infinity`.
    Float(f64),
    Str(Cow<'a, str>),
    /// A nested object or array, as its raw text (validated).
    Nested(&'a str),
}

/// Why a line is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Not valid JSON; `offset` is the byte where reading failed.
    Syntax { offset: usize, message: &'static str },
}

/// One member of an object: its key and its value.
pub(crate) type Member<'a> = (Cow<'a, str>, JsonValue<'a>);

/// Parses `line` as one JSON object and returns its members in order.
#[cfg(test)]
pub(crate) fn parse_object(line: &str) -> Result<Vec<Member<'_>>, JsonError> {
    let mut members = Vec::new();
    parse_object_into(line, &mut members).map(|()| members)
}

/// [`parse_object`] into `members` (emptied first), so that a reader can keep
/// one vector for every line instead of allocating one per line.
pub(crate) fn parse_object_into<'a>(line: &'a str, members: &mut Vec<Member<'a>>) -> Result<(), JsonError> {
    members.clear();
    let mut p = Parser {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        // Tell "valid JSON but not an object" apart from "not JSON".
        return match p.value(0).and_then(|_| p.end()) {
            Ok(()) => Err(JsonError::NotAnObject),
            Err(e) => Err(e),
        };
    }
    p.i += 1;
    members.reserve(16);
    p.skip_ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.skip_ws();
            if p.peek() != Some(b'"') {
                return Err(p.err("expected a string key"));
            }
            let key = p.string()?;
            p.skip_ws();
            p.expect(b':', "expected ':' after a key")?;
            p.skip_ws();
            let value = p.value(0)?;
            members.push((key, value));
            p.skip_ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                _ => return Err(p.err("expected ',' or '}'")),
            }
        }
    }
    p.end()
}

/// Returns `raw` (valid JSON text, possibly with `NaN` tokens) without the
/// whitespace outside strings, so `{"rsi": 55.5}` is stored as `{"rsi":55.5}`.
/// Text without any whitespace is borrowed as it is.
pub(crate) fn compact(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// How many bytes at the start of `bytes` need nothing done inside a
/// string: no quote, no backslash, no control character. Eight bytes per
/// step (the classic "has a zero byte" test, whose lowest hit is exact),
/// since the reader spent 6% of its time stepping through strings bytewise.
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut words = bytes.chunks_exact(8);
    let mut done = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let hits = zero_byte(w ^ (ONES * u64::from(b'"'))) | zero_byte(w ^ (ONES * u64::from(b'\\'))) | below_space;
        if hits != 0 {
            return done + (hits.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    done + words
        .remainder()
        .iter()
        .take_while(|&&c| c != b'"' && c != b'\\' && c >= 0x20)
        .count()
}

/// `mantissa / 10^frac_digits` when Clinger's fast path gives it exactly:
/// a mantissa of at most 2^53 and a power of ten of at most 10^22 are both
/// exact in an `f64`, so one division rounds correctly, as the standard
/// parse does. `digits` (all digits read) of at most 19 mean the mantissa
/// did not wrap. Python's `repr` of a float has at most 17 digits, so most
/// floats take this path; parsing the text again was most of the reader's
/// number handling.
fn exact_decimal(mantissa: u64, digits: usize, frac_digits: usize) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    if digits > 19 || mantissa > 1 << 53 {
        return None;
    }
    // Exact: the mantissa is at most 2^53.
    let m = mantissa as f64;
    POW10.get(frac_digits).map(|p| m / p)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err(&self, message: &'static str) -> JsonError {
        let message = if self.i >= self.b.len() {
            "unexpected end of line (truncated JSON)"
        } else {
            message
        };
        JsonError::Syntax {
            offset: self.i,
            message,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, message: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(message))
        }
    }

    fn end(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(self.err("unexpected characters after the JSON value"))
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue<'a>, JsonError> {
        match self.peek() {
            Some(b'"') => Ok(JsonValue::Str(self.string()?)),
            Some(b'{' | b'[') => {
                let start = self.i;
                self.nested(depth + 1)?;
                Ok(JsonValue::Nested(&self.s[start..self.i]))
            }
            Some(b't') => self.literal("true").map(|_| JsonValue::Bool(true)),
            Some(b'f') => self.literal("false").map(|_| JsonValue::Bool(false)),
            Some(b'n') => self.literal("null").map(|_| JsonValue::Null),
            Some(b'N') => self.literal("NaN").map(|_| JsonValue::Float(f64::NAN)),
            Some(b'I') => self.literal("Infinity").map(|_| JsonValue::Float(f64::INFINITY)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a JSON value")),
        }
    }

    /// Validates an object or array starting at `self.i` and moves past it.
    fn nested(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let close = if self.peek() == Some(b'{') { b'}' } else { b']' };
        self.i += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if close == b'}' {
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key"));
                }
                self.string()?;
                self.skip_ws();
                self.expect(b':', "expected ':' after a key")?;
                self.skip_ws();
            }
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or a closing bracket")),
            }
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.i;
        self.i += 1;
        let mut has_escape = false;
        loop {
            self.i += self.b.get(self.i..).map_or(0, plain_len);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    has_escape = true;
                    self.i += 2;
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
        self.i += 1;
        if self.i > self.b.len() {
            return Err(self.err("unterminated string"));
        }
        if !has_escape {
            return Ok(Cow::Borrowed(&self.s[start + 1..self.i - 1]));
        }
        serde_json::from_str::<String>(&self.s[start..self.i])
            .map(Cow::Owned)
            .map_err(|_| JsonError::Syntax {
                offset: start,
                message: "invalid escape in a string",
            })
    }

    fn number(&mut self) -> Result<JsonValue<'a>, JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
            if self.peek() == Some(b'I') {
                self.literal("Infinity")?;
                return Ok(JsonValue::Float(f64::NEG_INFINITY));
            }
        }
        let int_start = self.i;
        // The integer part's value, read in the same pass (parsing the text
        // again was a tenth of the reader's number handling).
        let mut magnitude: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.i += 1;
        }
        let int_digits = self.i - int_start;
        if int_digits == 0 {
            return Err(self.err("invalid number"));
        }
        let mut is_int = true;
        // The fraction's digits go on into the integer part's, for the fast
        // path below.
        let mut mantissa = magnitude;
        let mut frac_digits = 0;
        if self.peek() == Some(b'.') {
            is_int = false;
            self.i += 1;
            let frac = self.i;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                self.i += 1;
            }
            frac_digits = self.i - frac;
            if frac_digits == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let mut has_exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            is_int = false;
            has_exponent = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let exp = self.i;
            self.digits();
            if self.i == exp {
                return Err(self.err("invalid number"));
            }
        }
        let text = &self.s[start..self.i];
        // 18 digits always fit (and cannot have wrapped); longer ones go
        // through the text, which also tells i64::MIN from an overflow.
        if is_int && int_digits <= 18 {
            let v = magnitude as i64;
            return Ok(JsonValue::Int(if int_start > start { -v } else { v }));
        }
        if is_int {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(JsonValue::Int(v));
            }
        }
        if !has_exponent {
            if let Some(v) = exact_decimal(mantissa, int_digits + frac_digits, frac_digits) {
                return Ok(JsonValue::Float(if int_start > start { -v } else { v }));
            }
        }
        text.parse::<f64>()
            .map(JsonValue::Float)
            .map_err(|_| JsonError::Syntax {
                offset: start,
                message: "invalid number",
            })
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(line: &str) -> Vec<(String, JsonValue<'_>)> {
        parse_object(line)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect()
    }

    #[test]
    fn reads_every_value_kind() {
        let m = obj(r#" {"a":1, "b":-2.5e3, "c":"x\"y", "d":true, "e":null, "f":{"g":[1, {"h":2}]}, "i":[] } "#);
        assert_eq!(m[0], ("a".into(), JsonValue::Int(1)));
        assert_eq!(m[1], ("b".into(), JsonValue::Float(-2500.0)));
        assert_eq!(m[2], ("c".into(), JsonValue::Str("x\"y".into())));
        assert_eq!(m[3], ("d".into(), JsonValue::Bool(true)));
        assert_eq!(m[4], ("e".into(), JsonValue::Null));
        assert_eq!(m[5], ("f".into(), JsonValue::Nested(r#"{"g":[1, {"h":2}]}"#)));
        assert_eq!(m[6], ("i".into(), JsonValue::Nested("[]")));
    }

    #[test]
    fn accepts_python_non_finite_tokens() {
        let m = obj(r#"{"a":NaN,"b":Infinity,"c":-Infinity,"d":[NaN]}"#);
        assert!(matches!(m[0].1, JsonValue::Float(f) if f.is_nan()));
        assert_eq!(m[1].1, JsonValue::Float(f64::INFINITY));
        assert_eq!(m[2].1, JsonValue::Float(f64::NEG_INFINITY));
        assert_eq!(m[3].1, JsonValue::Nested("[NaN]"));
    }

    #[test]
    fn integers_read_in_one_pass_match_the_standard_parse() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "007",
            "123456789012345678",
            "-123456789012345678",
            "999999999999999999",
            "1234567890123456789",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            let line = format!(r#"{{"a":{text}}}"#);
            let m = obj(&line);
            assert_eq!(m[0].1, JsonValue::Int(text.parse().unwrap()), "{text}");
        }
        let m = obj(r#"{"a":9223372036854775808}"#);
        assert_eq!(m[0].1, JsonValue::Float(9223372036854775808.0));
    }

    #[test]
    fn plain_len_stops_at_the_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            for stop in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                let mut text = vec![b'a'; len];
                text.extend_from_slice(&[stop, b'"', 0]);
                assert_eq!(plain_len(&text), len, "{len} then {stop:#x}");
            }
            let mut text: Vec<u8> = "é €~ ".bytes().cycle().take(len).collect();
            assert_eq!(plain_len(&text), len, "no stop in {len} bytes");
            text.push(b'"');
            assert_eq!(plain_len(&text), len);
        }
    }

    #[test]
    fn big_integers_become_floats() {
        let m = obj(r#"{"a":123456789012345678901234567890}"#);
        assert!(matches!(m[0].1, JsonValue::Float(f) if f > 1e29));
    }

    #[test]
    fn rejects_non_objects_and_broken_json() {
        assert_eq!(parse_object("[1,2,3]"), Err(JsonError::NotAnObject));
        assert_eq!(parse_object("42"), Err(JsonError::NotAnObject));
        for bad in [
            r#"{"stream":"x","ts":"#,
            r#"{"a":1"#,
            r#"{"a":tru}"#,
            r#"{"a":1}x"#,
            r#"{a:1}"#,
            r#"{"a":01.}"#,
            r#"{"a":[1,}"#,
            "",
            "nope",
            "{\"a\":\"\u{1}\"}",
        ] {
            assert!(
                matches!(parse_object(bad), Err(JsonError::Syntax { .. })),
                "{bad:?} must be a syntax error"
            );
        }
        let Err(JsonError::Syntax { message, .. }) = parse_object(r#"{"stream":"x","ts":"#) else {
            panic!("expected a syntax error")
        };
        assert!(message.contains("truncated"));
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing() {
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(&deep).is_err());
    }

    #[test]
    fn compact_removes_whitespace_outside_strings_only() {
        assert_eq!(
            compact(r#"{"rsi": 55.5, "n": "a b\" c"}"#),
            r#"{"rsi":55.5,"n":"a b\" c"}"#
        );
    }

    fn float_of(text: &str) -> f64 {
        match obj(&format!(r#"{{"x":{text}}}"#))[0].1 {
            JsonValue::Float(f) => f,
            ref other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn decimals_read_on_the_fast_path_match_the_standard_parse() {
        for text in [
            "0.0",
            "-0.0",
            "0.5",
            "-2.5",
            "0.1",
            "0.30000000000000004",
            "9007199254740.992",
            "9007199254740.993",
            "0.000000000000000000001",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "1234567890.123456789",
            "12345678901234567890.5",
            "100.0",
            "1.7976931348623157",
        ] {
            let want: f64 = text.parse().unwrap();
            assert_eq!(float_of(text).to_bits(), want.to_bits(), "{text}");
        }
    }

    proptest::proptest! {
        /// Any float as Python's `repr` (shortest round trip) or with a
        /// fixed number of digits reads back bit for bit as the standard
        /// parse reads it.
        #[test]
        fn decimals_agree_with_the_standard_parse(f in proptest::prop_oneof![-1e7f64..1e7, proptest::num::f64::ANY], places in 0usize..25) {
            for text in [format!("{f:?}"), format!("{f:.places$}"), format!("{:.places$}", f.fract())] {
                if text.contains(['e', 'N', 'i']) || !text.contains('.') {
                    continue;
                }
                let want: f64 = text.parse().unwrap();
                proptest::prop_assert_eq!(float_of(&text).to_bits(), want.to_bits(), "{}", text);
            }
        }

        /// Every standard JSON object serde_json writes is read back with the same members.
        #[test]
        fn agrees_with_serde_json(map in proptest::collection::btree_map("[a-z\"\\\\ é]{0,6}", proptest::prelude::any::<i32>(), 0..6), s in "\\PC{0,12}") {
            let mut v = serde_json::Map::new();
            for (k, n) in &map { v.insert(k.clone(), serde_json::json!(n)); }
            v.insert("zz_s".into(), serde_json::json!(s));
            let line = serde_json::to_string(&v).unwrap();
            let got = parse_object(&line).unwrap();
            proptest::prop_assert_eq!(got.len(), v.len());
            for ((k, val), (ek, ev)) in got.iter().zip(v.iter()) {
                proptest::prop_assert_eq!(k.as_ref(), ek.as_str());
                match val {
                    JsonValue::Int(i) => proptest::prop_assert_eq!(Some(*i), ev.as_i64()),
                    JsonValue::Str(t) => proptest::prop_assert_eq!(Some(t.as_ref()), ev.as_str()),
                    other => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
