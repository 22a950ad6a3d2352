//! The one encoding of everything the node writes to disk or sends to a peer: bincode with
//! fixed-width integers (the format of `bincode::serialize`) under a size limit, and CRC32C
//! checksums over the encoded bytes. The write-ahead log, the hard state, the snapshot file and
//! the peer codec each add their own header around it.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// bincode with fixed-width integers, refusing anything longer than `limit`: a damaged length
/// prefix inside a payload can never make the decoder allocate more than the input could hold.
pub(crate) fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(limit as u64)
}

/// Decode exactly `bytes` (trailing bytes are an error).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    options(bytes.len()).deserialize(bytes)
}

/// The checksum stored beside an encoded body.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// `[crc32c(body): u32 LE][body]`, the body being `value` encoded.
pub(crate) fn encode_checksummed<T: Serialize>(value: &T) -> Vec<u8> {
    let body = bincode::serialize(value).expect("plain data always encodes");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksummed_value_decodes_and_a_flipped_bit_is_seen() {
        let value = (7u64, String::from("seven"));
        let bytes = encode_checksummed(&value);
        let crc = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(checksum(&bytes[4..]), crc);
        assert_eq!(decode::<(u64, String)>(&bytes[4..]).unwrap(), value);
        let mut damaged = bytes.clone();
        damaged[6] ^= 1;
        assert_ne!(checksum(&damaged[4..]), crc);
        assert!(decode::<(u64, String)>(&bytes[4..bytes.len() - 1]).is_err());
    }
}
