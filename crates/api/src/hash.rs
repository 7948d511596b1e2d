//! NameHash: 32-bit FNV-1a rendered as 8 lower-case hex digits, used in labels and selectors.

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// FNV-1a (32-bit) of the UTF-8 bytes of `input`.
pub fn fnv1a_32(input: &str) -> u32 {
    input.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

/// The label-safe hash of a name: exactly 8 lower-case, zero-padded hex digits.
pub fn name_hash(input: &str) -> String {
    format!("{:08x}", fnv1a_32(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_test_vectors() {
        for (input, expected) in [
            ("", "811c9dc5"),
            ("sandbox", "da1fd924"),
            ("my-sandbox", "374de8f5"),
            ("my-pool", "244dc158"),
            ("test-template", "69155462"),
        ] {
            assert_eq!(name_hash(input), expected, "NameHash({input:?})");
        }
    }

    #[test]
    fn hashes_are_zero_padded_to_eight_digits() {
        // Any 8-character lower-case hex string is a valid label value; small values keep leading zeros.
        let small = (0..10_000)
            .map(|i| format!("n{i}"))
            .find(|name| fnv1a_32(name) < 0x1000_0000)
            .expect("some name hashes below 0x10000000");
        let hash = name_hash(&small);
        assert_eq!(hash.len(), 8);
        assert!(hash.starts_with('0'));
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn hash_is_over_utf8_bytes() {
        // "é" is two bytes in UTF-8; hashing them one by one must give the same result.
        let manual = [0xc3u8, 0xa9]
            .iter()
            .fold(OFFSET_BASIS, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME));
        assert_eq!(fnv1a_32("é"), manual);
    }
}
