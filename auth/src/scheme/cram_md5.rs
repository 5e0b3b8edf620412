//! CRAM-MD5 / HMAC-MD5 stored secrets: the two MD5 chaining states after
//! HMAC-MD5's key setup (outer pad state first, then inner, each as four
//! little-endian words), so a challenge can be answered without the password
//! (RFC 2104 §4). Includes a minimal MD5 block function because the digest
//! crates do not expose intermediate states.

/// Length of the stored context.
pub const CONTEXT_LEN: usize = 32;

const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The stored context for `password`.
pub fn context(password: &[u8]) -> [u8; CONTEXT_LEN] {
    let hashed;
    let key = if password.len() > 64 {
        hashed = super::digest::hash(super::digest::Algorithm::Md5, &[password]);
        &hashed[..]
    } else {
        password
    };
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = INIT;
    let mut outer = INIT;
    compress(&mut inner, &ipad);
    compress(&mut outer, &opad);
    let mut out = [0u8; CONTEXT_LEN];
    for (i, word) in outer.iter().chain(inner.iter()).enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// HMAC-MD5 of `message` from a stored context. `None` if the context has
/// the wrong length.
pub fn hmac_from_context(context: &[u8], message: &[u8]) -> Option<[u8; 16]> {
    if context.len() != CONTEXT_LEN {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes([context[i], context[i + 1], context[i + 2], context[i + 3]]);
    let outer = [word(0), word(4), word(8), word(12)];
    let inner = [word(16), word(20), word(24), word(28)];
    let inner_digest = finish(inner, message);
    Some(finish(outer, &inner_digest))
}

/// Finishes an MD5 whose first 64-byte block is already in `state`.
fn finish(mut state: [u32; 4], message: &[u8]) -> [u8; 16] {
    let total_bits = ((64 + message.len()) as u64).wrapping_mul(8);
    let mut data = message.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&total_bits.to_le_bytes());
    for block in data.chunks_exact(64) {
        let mut b = [0u8; 64];
        b.copy_from_slice(block);
        compress(&mut state, &b);
    }
    let mut out = [0u8; 16];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5,
    9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6,
    10, 15, 21, 6, 10, 15, 21,
];

/// RFC 1321 §3.4 sine table.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// RFC 1321 MD5 block function.
fn compress(state: &mut [u32; 4], block: &[u8; 64]) {
    let mut m = [0u32; 16];
    for (i, w) in m.iter_mut().enumerate() {
        *w = u32::from_le_bytes([block[i * 4], block[i * 4 + 1], block[i * 4 + 2], block[i * 4 + 3]]);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    for i in 0..64 {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let rotated = a.wrapping_add(f).wrapping_add(K[i]).wrapping_add(m[g]).rotate_left(S[i]);
        a = d;
        d = c;
        c = b;
        b = b.wrapping_add(rotated);
    }
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    #[test]
    fn matches_hmac_md5() {
        for key in [&b"tanstaaftanstaaf"[..], b"", &[7u8; 100]] {
            let ctx = context(key);
            let msg = b"<1896.697170952@postoffice.reston.mci.net>";
            let mut mac = Hmac::<md5::Md5>::new_from_slice(key).unwrap();
            mac.update(msg);
            assert_eq!(hmac_from_context(&ctx, msg).unwrap()[..], mac.finalize().into_bytes()[..]);
        }
    }
}
