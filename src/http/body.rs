//! What enters through a request, decoded once: JSON bodies whose every problem is a 400 in plain
//! words naming the field (never a Rust type name such as `i64`), and percent-decoded path
//! segments.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// Largest integer a JSON number carries exactly in every client (2^53 - 1).
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Decodes a JSON body; a problem is a [`ApiError::BadRequest`] naming the field at fault.
/// A number with an integral value is an integer (`40.0` is `40`, as JSON Schema has it).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let at = format!("line {} column {}", e.line(), e.column());
        ApiError::BadRequest(format!("the body is not valid JSON ({at})"))
    })?;
    // serde reads a struct from an array too (`[null, null]`): every body of this API is an object
    if !value.is_object() {
        return Err(ApiError::BadRequest(format!("the body must be a JSON object, got {}", kind(&value))));
    }
    integral_to_integer(&mut value);
    serde_json::from_value::<T>(value.clone()).map_err(|e| ApiError::BadRequest(explain::<T>(&value, &e)))
}

/// An optional JSON body: nothing, whitespace or `null` is `None`.
pub fn decode_optional<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    let text = bytes.trim_ascii();
    if text.is_empty() || text == b"null" { Ok(None) } else { decode(bytes).map(Some) }
}

/// Rewrites every float with an integral value in the exact range as an integer.
fn integral_to_integer(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                reason = "bounded by MAX_EXACT_INTEGER, exact in f64"
            )]
            if f.fract() == 0.0 && f.abs() <= MAX_EXACT_INTEGER as f64 {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_to_integer),
        Value::Object(fields) => fields.values_mut().for_each(integral_to_integer),
        _ => {}
    }
}

/// The field a decoding error is about, found by decoding each field alone (a field's own error
/// comes before the check for missing fields), then the error in plain words.
fn explain<T: DeserializeOwned>(value: &Value, e: &serde_json::Error) -> String {
    let Value::Object(fields) = value else {
        return format!("the body must be a JSON object, got {}", kind(value));
    };
    for (name, v) in fields {
        let alone = Value::Object([(name.clone(), v.clone())].into_iter().collect());
        if let Err(e) = serde_json::from_value::<T>(alone) {
            let text = e.to_string();
            if !text.starts_with("missing field") {
                return field_message(name, &text);
            }
        }
    }
    plain(&e.to_string())
}

/// `name` and what is wrong with its value; a message that names the field already is kept.
fn field_message(name: &str, text: &str) -> String {
    if text.starts_with("unknown field") {
        return plain(text);
    }
    if text.starts_with(name) {
        return text.to_owned();
    }
    format!("{name}: {}", plain(text))
}

/// Serde's wording without Rust type names: `invalid type: floating point `1.5`, expected i64`
/// becomes `must be an integer, got 1.5`.
fn plain(text: &str) -> String {
    let text = text.replace('`', "");
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = text.strip_prefix(prefix).and_then(|r| r.split_once(", expected ")) {
            return format!("must be {}, got {}", expected_words(expected), got_words(got));
        }
    }
    if let Some(rest) = text.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    text
}

fn expected_words(expected: &str) -> String {
    let ty = expected.trim();
    match ty {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" | "bool" => "true or false".to_owned(),
        "a sequence" => "a list".to_owned(),
        t if t.starts_with("struct ") || t == "a map" => "an object".to_owned(),
        t if t.starts_with("a string") || t.starts_with("an integer") || t.starts_with("a number") => t.to_owned(),
        t if t.starts_with("one of ") => t.to_owned(),
        _ => "a value of another kind".to_owned(),
    }
}

fn got_words(got: &str) -> String {
    for kind in ["floating point ", "integer ", "string ", "boolean "] {
        if let Some(v) = got.strip_prefix(kind) {
            return v.to_owned();
        }
    }
    match got {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" => "null".to_owned(),
        other => other.to_owned(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A path segment, percent-decoded (`/containers/my%20host` names `my host`); a segment that
/// does not decode to UTF-8 matches no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment(String);

impl std::str::FromStr for Segment {
    type Err = std::string::FromUtf8Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            let hex = || bytes.clone().take(2).collect::<Vec<u8>>();
            let pair = hex();
            let decoded = (b == b'%' && pair.len() == 2)
                .then(|| std::str::from_utf8(&pair).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
                .flatten();
            match decoded {
                Some(d) => {
                    out.push(d);
                    bytes.nth(1);
                }
                None => out.push(b),
            }
        }
        String::from_utf8(out).map(Self)
    }
}

impl From<Segment> for String {
    fn from(s: Segment) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only its deserialization is tested")]
    struct Body {
        count: i64,
        ratio: f64,
        name: Option<String>,
    }

    fn message(json: &str) -> String {
        match decode::<Body>(json.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn messages_name_the_field_in_plain_words() {
        assert_eq!(message(r#"{"count": 1.5, "ratio": 1}"#), "count: must be an integer, got 1.5");
        assert_eq!(message(r#"{"count": 1, "ratio": "x"}"#), "ratio: must be a number, got \"x\"");
        assert_eq!(message(r#"{"count": 1, "ratio": 1, "name": 5}"#), "name: must be a string, got 5");
        assert!(message(r#"{"count": 1}"#).contains("missing field ratio"));
        assert!(message(r#"{"count": 1, "ratio": 1, "nmae": null}"#).starts_with("unknown field nmae"));
        assert_eq!(message("[1]"), "the body must be a JSON object, got a list");
        // serde would read an all-optional struct from a list: refused like any other non-object
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only its deserialization is tested")]
        struct Optional {
            a: Option<i64>,
            b: Option<i64>,
        }
        assert!(
            matches!(decode::<Optional>(b"[null, null]"), Err(ApiError::BadRequest(m)) if m.ends_with("got a list"))
        );
        assert!(matches!(decode::<Optional>(b"7"), Err(ApiError::BadRequest(_))));
        assert_eq!(message("{oops"), "the body is not valid JSON (line 1 column 2)");
        assert_eq!(decode::<Body>(br#"{"count": 40.0, "ratio": 2}"#).map(|b| (b.count, b.ratio)).ok(), Some((40, 2.0)));
        assert!(decode_optional::<Body>(b" null ").unwrap().is_none());
        for m in [message(r#"{"count": "1", "ratio": 1}"#), message(r#"{"count": null, "ratio": 1}"#)] {
            assert!(!m.contains("i64") && !m.contains("invalid type") && m.starts_with("count"), "{m}");
        }
    }

    #[test]
    fn segments_are_percent_decoded() {
        let s = |t: &str| t.parse::<Segment>().map(String::from);
        assert_eq!(s("my%20host").unwrap(), "my host");
        assert_eq!(s("%C3%86F").unwrap(), "ÆF");
        assert_eq!(s("100%").unwrap(), "100%");
        assert_eq!(s("%zz").unwrap(), "%zz");
        assert!(s("%FF").is_err());
    }
}
