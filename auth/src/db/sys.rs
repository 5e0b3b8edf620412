//! The drivers' only `unsafe` code: `getspnam_r(3)` for the shadow passdb
//! and the libpam calls of the pam passdb. Everything here is a thin, safe
//! wrapper: buffers and handles are owned by the wrapper, and every pointer
//! handed to C stays valid for the duration of the call that uses it.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

/// The fields of a shadow entry the shadow passdb uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    /// `sp_namp`.
    pub name: String,
    /// `sp_pwdp` (the hash, or `!`/`*` for locked accounts).
    pub password: String,
}

/// `getspnam_r`: `Ok(None)` when the user has no shadow entry.
pub fn getspnam(name: &str) -> std::io::Result<Option<ShadowEntry>> {
    let Ok(cname) = CString::new(name) else { return Ok(None) };
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as c_char; size];
        // SAFETY: an all-zero `spwd` is a valid value (null pointers and
        // zero numbers); it is only read after getspnam_r filled it.
        let mut entry: libc::spwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::spwd = ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated, `entry`, `buf` and `result` are
        // live locals of the given sizes for the whole call; the strings
        // getspnam_r stores in `entry` point into `buf`, which outlives
        // their use below.
        let rc =
            unsafe { libc::getspnam_r(cname.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc == libc::ENOENT || (rc == 0 && result.is_null()) {
            return Ok(None);
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // SAFETY: on success both strings are NUL-terminated and live in
        // `buf`, which is still alive here.
        let text = |p: *mut c_char| {
            if p.is_null() {
                String::new()
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        return Ok(Some(ShadowEntry { name: text(entry.sp_namp), password: text(entry.sp_pwdp) }));
    }
}

// libpam's ABI (Linux-PAM, <security/pam_appl.h>).
pub(crate) const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
pub(crate) const PAM_USER_UNKNOWN: c_int = 10;
pub(crate) const PAM_NEW_AUTHTOK_REQD: c_int = 12;
pub(crate) const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_USER: c_int = 2;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_ESTABLISH_CRED: c_int = 0x2;
const PAM_DELETE_CRED: c_int = 0x4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item: c_int, value: *const c_void) -> c_int;
    fn pam_get_item(pamh: *mut PamHandle, item: c_int, value: *mut *const c_void) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What one PAM conversation answers with, and what PAM told us.
struct ConvData {
    user: CString,
    password: CString,
    /// PAM_ERROR_MSG / PAM_TEXT_INFO texts, for `failure_show_msg`.
    messages: Vec<String>,
}

/// Duplicates `s` with libc's allocator: PAM frees responses with free(3).
fn c_strdup(s: &CStr) -> *mut c_char {
    // SAFETY: `s` is a valid NUL-terminated string.
    unsafe { libc::strdup(s.as_ptr()) }
}

extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let Ok(count) = usize::try_from(num_msg) else { return PAM_CONV_ERR };
    if count == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: `appdata` is the `ConvData` that `authenticate` passed in
    // `PamConv` and keeps alive (and otherwise untouched) while PAM runs.
    let data = unsafe { &mut *(appdata as *mut ConvData) };
    // SAFETY: calloc'ed array of `count` zeroed responses; PAM frees it.
    let out = unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if out.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..count {
        // SAFETY: Linux-PAM passes an array of `num_msg` message pointers.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            continue;
        }
        // SAFETY: each message pointer is valid for this call.
        let (style, text) = unsafe { ((*m).msg_style, (*m).msg) };
        let answer = match style {
            PAM_PROMPT_ECHO_ON => c_strdup(&data.user),
            PAM_PROMPT_ECHO_OFF => c_strdup(&data.password),
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                if !text.is_null() {
                    // SAFETY: PAM message texts are NUL-terminated.
                    data.messages.push(unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned());
                }
                ptr::null_mut()
            }
            _ => {
                free_responses(out, count);
                return PAM_CONV_ERR;
            }
        };
        // SAFETY: `i < count`, inside the calloc'ed array.
        unsafe { (*out.add(i)).resp = answer };
    }
    // SAFETY: `resp` is PAM's out-pointer for this call.
    unsafe { *resp = out };
    PAM_SUCCESS
}

fn free_responses(out: *mut PamResponse, count: usize) {
    for i in 0..count {
        // SAFETY: `out` has `count` entries whose `resp` is null or strdup'ed.
        unsafe {
            let r = (*out.add(i)).resp;
            if !r.is_null() {
                libc::memset(r as *mut c_void, 0, libc::strlen(r));
                libc::free(r as *mut c_void);
            }
        }
    }
    // SAFETY: allocated by calloc above.
    unsafe { libc::free(out as *mut c_void) };
}

/// What [`pam_authenticate`] should do besides authenticating.
#[derive(Debug, Clone, Default)]
pub struct PamOptions<'a> {
    /// PAM service name (`/etc/pam.d/<service>`).
    pub service: &'a str,
    /// `PAM_RHOST`.
    pub remote_ip: Option<&'a str>,
    /// `setcred=yes`.
    pub setcred: bool,
    /// `session=yes`.
    pub session: bool,
}

/// Outcome of one PAM transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamOutcome {
    /// The first failing call's status (`PAM_SUCCESS` on success), or
    /// `None` when the transaction itself could not run (pam_start or
    /// pam_end failed): an internal failure.
    pub status: Option<c_int>,
    /// `"pam_authenticate() failed: Authentication failure"` and the like.
    pub error: Option<String>,
    /// PAM_USER after the transaction (a module may change it).
    pub user: Option<String>,
    /// Texts PAM modules showed the "user".
    pub messages: Vec<String>,
}

fn strerror(pamh: *mut PamHandle, status: c_int) -> String {
    // SAFETY: pam_strerror accepts any handle (even null) and returns a
    // static NUL-terminated string (or null).
    let p = unsafe { pam_strerror(pamh, status) };
    if p.is_null() {
        format!("error {status}")
    } else {
        // SAFETY: non-null pam_strerror results are NUL-terminated.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Runs pam_authenticate (+ setcred, acct_mgmt, open/close session) for
/// `user` with `password`, blocking. Dovecot's order and PAM items
/// (PAM_RHOST, PAM_TTY = "dovecot").
pub fn pam_authenticate_user(user: &str, password: &[u8], opts: &PamOptions<'_>) -> PamOutcome {
    let internal = |e: String| PamOutcome { status: None, error: Some(e), user: None, messages: Vec::new() };
    let (Ok(service), Ok(cuser), Ok(cpass)) =
        (CString::new(opts.service), CString::new(user), CString::new(password.to_vec()))
    else {
        return internal("NUL byte in PAM service, user or password".into());
    };
    let mut data = Box::new(ConvData { user: cuser.clone(), password: cpass, messages: Vec::new() });
    let conv = PamConv { conv: conversation, appdata_ptr: &mut *data as *mut ConvData as *mut c_void };
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: all strings are NUL-terminated and outlive the handle; `conv`
    // and `data` live until after pam_end below (libpam keeps a copy of
    // the conv struct, which still points at `data`).
    let status = unsafe { pam_start(service.as_ptr(), cuser.as_ptr(), &conv, &mut pamh) };
    if status != PAM_SUCCESS {
        return internal(format!("pam_start() failed: {}", strerror(pamh, status)));
    }
    let set_item = |item: c_int, value: &CStr| {
        // SAFETY: `pamh` is a live handle; libpam copies the string.
        let _ = unsafe { pam_set_item(pamh, item, value.as_ptr() as *const c_void) };
    };
    if let Some(rip) = opts.remote_ip.and_then(|r| CString::new(r).ok()) {
        set_item(PAM_RHOST, &rip);
    }
    set_item(PAM_TTY, c"dovecot");

    let mut error = None;
    let mut step = |name: &str, status: c_int| -> bool {
        if status != PAM_SUCCESS {
            error = Some(format!("{name}() failed: {}", strerror(pamh, status)));
            false
        } else {
            true
        }
    };
    // SAFETY (all calls below): `pamh` is the live handle from pam_start,
    // used from this thread only, before pam_end.
    let mut status = unsafe { pam_authenticate(pamh, 0) };
    let mut ok = step("pam_authenticate", status);
    let mut cred_established = false;
    if ok && opts.setcred {
        status = unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
        ok = step("pam_setcred", status);
        cred_established = ok;
    }
    if ok {
        status = unsafe { pam_acct_mgmt(pamh, 0) };
        ok = step("pam_acct_mgmt", status);
    }
    if ok && opts.session {
        status = unsafe { pam_open_session(pamh, 0) };
        ok = step("pam_open_session", status);
        if ok {
            status = unsafe { pam_close_session(pamh, 0) };
            ok = step("pam_close_session", status);
        }
    }
    if cred_established {
        let _ = unsafe { pam_setcred(pamh, PAM_DELETE_CRED) };
    }
    let mut final_user = None;
    if ok {
        let mut item: *const c_void = ptr::null();
        let rc = unsafe { pam_get_item(pamh, PAM_USER, &mut item) };
        if rc == PAM_SUCCESS && !item.is_null() {
            // SAFETY: PAM_USER is a NUL-terminated string owned by the handle,
            // copied before pam_end.
            final_user =
                Some(unsafe { CStr::from_ptr(item as *const c_char) }.to_string_lossy().into_owned());
        }
    }
    let end = unsafe { pam_end(pamh, status) };
    let messages = std::mem::take(&mut data.messages);
    drop(data);
    if end != PAM_SUCCESS {
        return internal(format!("pam_end() failed: {}", strerror(ptr::null_mut(), end)));
    }
    PamOutcome { status: Some(status), error, user: final_user, messages }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_of_unknown_user_is_none() {
        assert_eq!(getspnam("no-such-user-dovecote").unwrap_or(None), None);
    }
}
