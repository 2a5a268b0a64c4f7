//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Block hashes and Merkle leaves are computed over JCS bytes, so anyone with
//! any RFC 8785 implementation can recompute them.

use crate::error::LedgerError;

/// Returns the RFC 8785 canonical UTF-8 bytes of `value`.
///
/// Object keys are sorted by UTF-16 code units, numbers are written in the
/// ECMAScript shortest round-trip form, and no insignificant whitespace is
/// emitted.
pub fn canonicalize(value: &serde_json::Value) -> Result<Vec<u8>, LedgerError> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| LedgerError::Canonicalization(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_strips_whitespace() {
        let v = json!({"b": 1, "a": [true, null, "x"], "c": {"z": 1, "y": 2}});
        let got = canonicalize(&v).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}"#
        );
    }

    #[test]
    fn numbers_use_ecmascript_form() {
        let v = json!([1.0, 0.5, 1e21, 1e-7, -0.0, 123456789.125]);
        let got = String::from_utf8(canonicalize(&v).unwrap()).unwrap();
        assert_eq!(got, "[1,0.5,1e+21,1e-7,0,123456789.125]");
    }

    #[test]
    fn rfc8785_sorting_by_utf16() {
        // RFC 8785 §3.2.3 example keys: sorted by UTF-16 code units.
        let v: serde_json::Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let got = String::from_utf8(canonicalize(&v).unwrap()).unwrap();
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                    \"\u{1f600}\":\"Emoji: Grinning Face\",\
                    \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(got, want);
    }
}
