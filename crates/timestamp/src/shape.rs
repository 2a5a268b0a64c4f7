//! A linear pre-check of DER input that bounds the work of decoding it.
//!
//! `der` 0.7 decodes every `SET OF` by insertion-sorting its elements
//! (`der_sort`), which is quadratic in the number of elements when they
//! arrive in descending order: a 63 KB response with one `SET OF` of 9,000
//! `AlgorithmIdentifier`s costs about 10 s of CPU to decode, a 1 MiB one
//! hours. Real RFC 3161 tokens have a handful of elements per set (signed
//! attributes, certificates, RDNs) and about a hundred in all, so before any
//! `from_der` of outside bytes this walk refuses input with more than
//! [`MAX_SET_ELEMENTS`] elements in one set-like value or [`MAX_SET_TOTAL`]
//! in all of them, or nested deeper than [`MAX_DEPTH`]. That bounds the
//! sorting to `MAX_SET_ELEMENTS × MAX_SET_TOTAL` comparisons.
//!
//! Set-like values are universal `SET`s and constructed context-specific
//! values (`IMPLICIT SET OF` such as `certificates [0]` or `signedAttrs
//! [0]`). The walk also looks inside `OCTET STRING`s whose content is itself
//! DER (`eContent`, certificate extension values), which are decoded later;
//! content that does not parse as DER there is left alone. Malformed input
//! is not reported here: `der` reports it with its own, precise error.

/// Most elements of one set-like value.
pub(crate) const MAX_SET_ELEMENTS: usize = 64;

/// Most elements of all set-like values of one input together.
pub(crate) const MAX_SET_TOTAL: usize = 1024;

/// Deepest nesting of constructed values (and DER inside `OCTET STRING`s).
pub(crate) const MAX_DEPTH: usize = 64;

/// Why input is refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooComplex(pub(crate) String);

impl std::fmt::Display for TooComplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

enum Walk {
    /// Not DER (a decoder will say why), or DER inside an `OCTET STRING`
    /// that is really something else.
    NotDer,
    /// Over a limit.
    TooComplex(TooComplex),
}

/// Checks `der` against the limits; input that is not DER passes (its
/// decoding fails anyway).
pub(crate) fn check(der: &[u8]) -> Result<(), TooComplex> {
    let mut budget = MAX_SET_TOTAL;
    match walk(der, 0, &mut budget) {
        Ok(()) | Err(Walk::NotDer) => Ok(()),
        Err(Walk::TooComplex(e)) => Err(e),
    }
}

/// One TLV: (first tag byte, content, the bytes after it).
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, mut rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        // High tag number: base-128 bytes, the last one below 0x80.
        let end = rest.iter().take(4).position(|&b| b < 0x80)?;
        rest = &rest[end + 1..];
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return None;
            }
            let (digits, after) = rest.split_at(n);
            rest = after;
            digits
                .iter()
                .fold(0usize, |acc, &d| (acc << 8) | usize::from(d))
        }
        // Indefinite length (BER, not DER) or absurdly long.
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// Walks the TLVs of `bytes` (a sequence of values, all of it).
fn walk(mut bytes: &[u8], depth: usize, budget: &mut usize) -> Result<(), Walk> {
    if depth > MAX_DEPTH {
        return Err(Walk::TooComplex(TooComplex(format!(
            "DER nested more than {MAX_DEPTH} levels deep"
        ))));
    }
    while !bytes.is_empty() {
        let (tag, content, rest) = tlv(bytes).ok_or(Walk::NotDer)?;
        bytes = rest;
        let constructed = tag & 0x20 != 0;
        let context = tag & 0xc0 == 0x80;
        if constructed {
            if tag == 0x31 || context {
                let mut elements = 0usize;
                let mut inner = content;
                while !inner.is_empty() {
                    let (_, _, after) = tlv(inner).ok_or(Walk::NotDer)?;
                    inner = after;
                    elements += 1;
                    if elements > MAX_SET_ELEMENTS {
                        return Err(Walk::TooComplex(TooComplex(format!(
                            "a SET of more than {MAX_SET_ELEMENTS} elements"
                        ))));
                    }
                }
                *budget = budget.checked_sub(elements).ok_or_else(|| {
                    Walk::TooComplex(TooComplex(format!(
                        "more than {MAX_SET_TOTAL} SET elements in all"
                    )))
                })?;
            }
            walk(content, depth + 1, budget)?;
        } else if tag == 0x04 && !content.is_empty() {
            // DER inside an OCTET STRING is decoded later: hold it to the
            // same limits, unless it is not DER at all.
            let mut tentative = *budget;
            match walk(content, depth + 1, &mut tentative) {
                Ok(()) => *budget = tentative,
                Err(Walk::NotDer) => {}
                Err(too_complex) => return Err(too_complex),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv_bytes(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    fn set_of(n: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..n).flat_map(|i| tlv_bytes(0x02, &[i as u8])).collect();
        tlv_bytes(0x31, &body)
    }

    #[test]
    fn small_sets_pass_large_ones_do_not() {
        assert_eq!(check(&set_of(MAX_SET_ELEMENTS)), Ok(()));
        assert!(check(&set_of(MAX_SET_ELEMENTS + 1)).is_err());
        // Implicitly tagged sets count too.
        let mut implicit = set_of(MAX_SET_ELEMENTS + 1);
        implicit[0] = 0xa0;
        assert!(check(&implicit).is_err());
        // SEQUENCE OF is decoded in linear time and is not limited.
        let mut sequence = set_of(200);
        sequence[0] = 0x30;
        assert_eq!(check(&sequence), Ok(()));
    }

    #[test]
    fn the_total_is_limited_and_octet_strings_are_looked_into() {
        let many: Vec<u8> = (0..MAX_SET_TOTAL / MAX_SET_ELEMENTS + 1)
            .flat_map(|_| set_of(MAX_SET_ELEMENTS))
            .collect();
        assert!(check(&tlv_bytes(0x30, &many)).is_err());
        let hidden = tlv_bytes(0x04, &set_of(MAX_SET_ELEMENTS + 1));
        assert!(check(&tlv_bytes(0x30, &hidden)).is_err());
        // An OCTET STRING that is not DER is just bytes.
        assert_eq!(check(&tlv_bytes(0x04, &[0x31, 0x7f, 1, 2])), Ok(()));
    }

    #[test]
    fn depth_is_limited_and_garbage_passes_to_the_decoder() {
        let mut deep = vec![0x05, 0x00];
        for _ in 0..=MAX_DEPTH {
            deep = tlv_bytes(0x30, &deep);
        }
        assert!(check(&deep).is_err());
        for garbage in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0, 0],
            &[0x31, 0x85, 1, 2, 3, 4, 5],
        ] {
            assert_eq!(check(garbage), Ok(()));
        }
    }
}
