//! Base64 (RFC 4648, standard and URL-safe alphabets) and hex, as Kafka
//! Connect's JsonConverter (Jackson) and Debezium's `binary.handling.mode`
//! write them: padded, no line breaks.

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_with(alphabet: &[u8; 64], input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            alphabet[(n >> 18) as usize & 63],
            alphabet[(n >> 12) as usize & 63],
            alphabet[(n >> 6) as usize & 63],
            alphabet[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                alphabet[(n >> 18) as usize & 63],
                alphabet[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                alphabet[(n >> 18) as usize & 63],
                alphabet[(n >> 12) as usize & 63],
                alphabet[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// Appends the standard, padded base64 of `input` to `out`.
pub fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    encode_with(STD, input, out);
}

/// Appends the URL-safe, padded base64 of `input` to `out`.
pub fn encode_url_safe_into(input: &[u8], out: &mut Vec<u8>) {
    encode_with(URL, input, out);
}

/// The standard, padded base64 of `input`.
pub fn encode(input: &[u8]) -> String {
    let mut out = Vec::new();
    encode_into(input, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn sextet(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64 in either alphabet, padding optional. Returns the offset of
/// the first bad character on failure.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, usize> {
    let trimmed = match input {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        all => all,
    };
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (i, &b) in trimmed.iter().enumerate() {
        let v = sextet(b).ok_or(i)?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if trimmed.len() % 4 == 1 {
        return Err(trimmed.len());
    }
    Ok(out)
}

/// Appends lowercase hex of `input` to `out`.
pub fn hex_into(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in input {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Decodes hex (either case).
pub fn hex_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    input
        .chunks_exact(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let enc = encode(&data);
            assert_eq!(decode(enc.as_bytes()), Ok(data.clone()));
            let mut url = Vec::new();
            encode_url_safe_into(&data, &mut url);
            assert_eq!(decode(&url), Ok(data.clone()));
            let mut hex = Vec::new();
            hex_into(&data, &mut hex);
            assert_eq!(hex_decode(&hex), Some(data));
        }
        assert_eq!(
            encode(b"hello from a transaction"),
            "aGVsbG8gZnJvbSBhIHRyYW5zYWN0aW9u"
        );
        assert_eq!(encode(&[1, 2, 255]), "AQL/");
        assert!(decode(b"A").is_err());
        assert!(decode(b"AB!C").is_err());
    }
}
