//! Platform code: naming the calling OS thread and setting its scheduling
//! priority. One module per platform; nothing outside `sys/` issues a
//! syscall.

use std::ffi::{CStr, CString};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{set_nice, set_thread_name};

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::{set_nice, set_thread_name};

/// The longest OS thread name, in bytes, without the NUL (Linux: 15).
pub(crate) const NAME_MAX: usize = 15;

/// `name` as a C string the OS accepts: interior NULs dropped, cut to
/// [`NAME_MAX`] bytes on a character boundary.
pub(crate) fn thread_name(name: &str) -> CString {
    let mut bytes: Vec<u8> = Vec::with_capacity(NAME_MAX);
    for c in name.chars().filter(|&c| c != '\0') {
        let mut buf = [0u8; 4];
        let enc = c.encode_utf8(&mut buf).as_bytes();
        if bytes.len() + enc.len() > NAME_MAX {
            break;
        }
        bytes.extend_from_slice(enc);
    }
    CString::new(bytes).unwrap_or_default()
}

/// Rename the calling thread; errors are ignored (a name is cosmetic).
pub(crate) fn rename_current(name: &CStr) {
    let _ = set_thread_name(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_on_char_boundaries_and_lose_nuls() {
        assert_eq!(thread_name("short").to_str().unwrap(), "short");
        assert_eq!(thread_name("a\0b").to_str().unwrap(), "ab");
        let long = thread_name("ééééééééééé");
        assert!(long.as_bytes().len() <= NAME_MAX);
        assert_eq!(long.to_str().unwrap(), "ééééééé");
    }
}
