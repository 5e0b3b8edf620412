//! The system's crypt(3) (libxcrypt on Debian 12 and RHEL 9), so every hash
//! format the host understands — yescrypt, SHA-crypt, MD5-crypt, bcrypt, DES —
//! verifies exactly as it does for `/etc/shadow`.
//!
//! This is the crate's only `unsafe` code: two FFI calls with buffers we own.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_ulong, CStr, CString};

/// Size of libxcrypt's `struct crypt_data` (crypt.h: "add up to exactly
/// 32768 bytes").
const CRYPT_DATA_SIZE: usize = 32768;
/// `CRYPT_GENSALT_OUTPUT_SIZE` from crypt.h.
const GENSALT_OUTPUT_SIZE: usize = 192;

#[link(name = "crypt")]
extern "C" {
    fn crypt_rn(phrase: *const c_char, setting: *const c_char, data: *mut u8, size: c_int) -> *mut c_char;
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

/// Hashes `phrase` with `setting` (a salt string or a complete hash).
/// Returns `None` when crypt(3) rejects the setting or the phrase contains NUL.
pub(crate) fn crypt(phrase: &[u8], setting: &str) -> Option<String> {
    let phrase = CString::new(phrase).ok()?;
    let setting = CString::new(setting).ok()?;
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: both strings are NUL-terminated and live across the call; `data`
    // is a zeroed buffer of exactly the size we pass, as crypt_rn requires, and
    // is owned by this frame. crypt_rn writes its result into `data` and
    // returns either NULL or a pointer into `data`.
    let out =
        unsafe { crypt_rn(phrase.as_ptr(), setting.as_ptr(), data.as_mut_ptr(), CRYPT_DATA_SIZE as c_int) };
    if out.is_null() {
        return None;
    }
    // SAFETY: non-NULL results point at a NUL-terminated string inside `data`,
    // which is still alive here.
    let hash = unsafe { CStr::from_ptr(out) }.to_str().ok()?.to_owned();
    // libxcrypt signals failure with a string starting with '*'.
    if hash.starts_with('*') {
        return None;
    }
    Some(hash)
}

/// Builds a setting string for `prefix` (e.g. `"$2y$"`) with `count` rounds
/// (0 = the method's default) from the given random bytes.
pub(crate) fn gensalt(prefix: &str, count: c_uint, random: &[u8]) -> Option<String> {
    let prefix = CString::new(prefix).ok()?;
    let mut out = [0 as c_char; GENSALT_OUTPUT_SIZE];
    let nrbytes = c_int::try_from(random.len()).ok()?;
    // SAFETY: `prefix` is NUL-terminated, `random` is valid for `nrbytes`
    // bytes and `out` for GENSALT_OUTPUT_SIZE bytes; all outlive the call.
    let res = unsafe {
        crypt_gensalt_rn(
            prefix.as_ptr(),
            c_ulong::from(count),
            random.as_ptr().cast(),
            nrbytes,
            out.as_mut_ptr(),
            GENSALT_OUTPUT_SIZE as c_int,
        )
    };
    if res.is_null() {
        return None;
    }
    // SAFETY: on success `out` holds a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(out.as_ptr()) }.to_str().ok()?.to_owned();
    if s.starts_with('*') {
        return None;
    }
    Some(s)
}
