//! What the static build (`cargo build-static`) supplies in place of a few glibc
//! functions, so that a static connmgr or servant fits in 1 MiB.
//!
//! Why: in a static link every glibc object a call reaches comes along, and a few
//! calls reach nearly all of it. glibc's `malloc` carries `malloc_stats`, which
//! prints with `fprintf`; its `strerror_r` translates through gettext and formats
//! with `snprintf`; its `realpath` asks `sysconf`, which parses numbers with the
//! locale. Together they pull in stdio, printf with floating point, the locale
//! tables, iconv and `dlopen`: about 330 KB of the 530 KB glibc added to connmgr,
//! none of it ever run by these daemons. glibc's manual allows exactly this
//! ("Replacing malloc": a static program defines the functions before libc.a is
//! searched), and the linker refuses the build with "duplicate symbol" if anything
//! still needs the glibc object, so a replacement can never be half in effect.
//!
//! What replaces them:
//! - the heap ([`Heap`]) is dlmalloc (Doug Lea's allocator, the one glibc's
//!   descends from, which Rust's own standard library uses on WebAssembly) behind
//!   one lock, with each block of 128 KiB or more in a mapping of its own, as
//!   glibc does;
//! - error texts come from glibc's own table (`strerrordesc_np`), untranslated, as
//!   the daemons' logs are English anyway;
//! - `realpath` asks the kernel, as musl does: open the path, read
//!   `/proc/self/fd/N`. Only the standard library's backtrace printer calls it;
//! - a failed glibc-internal assertion is reported, then the process aborts.
//!
//! The pieces are ordinary functions, tested in every build; only the static build
//! exports them under glibc's names (the `exports` module).

use std::ffi::{c_char, c_int, CStr};

mod heap;
pub use heap::Heap;

extern "C" {
    /// glibc 2.32+: the description of an error number, untranslated; null if
    /// the number is unknown. A plain table lookup, with no gettext or printf.
    fn strerrordesc_np(errnum: c_int) -> *const c_char;
}

/// glibc's text for `errnum`, or None for a number it does not know.
pub fn error_text(errnum: c_int) -> Option<&'static CStr> {
    // SAFETY: strerrordesc_np takes any int and returns null or a static string.
    let p = unsafe { strerrordesc_np(errnum) };
    // SAFETY: non-null results point to NUL-terminated static strings.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

/// POSIX `strerror_r` into `buf`: 0, or EINVAL for an unknown number (with
/// "Unknown error N" written, as glibc writes it), or ERANGE when the text had to
/// be cut to fit. `buf` always ends up NUL-terminated unless it is empty.
pub fn strerror_into(errnum: c_int, buf: &mut [u8]) -> c_int {
    let mut unknown = [0u8; 32];
    let (text, status) = match error_text(errnum) {
        Some(t) => (t.to_bytes(), 0),
        None => (unknown_error(errnum, &mut unknown), libc::EINVAL),
    };
    let Some(room) = buf.len().checked_sub(1) else {
        return libc::ERANGE;
    };
    let n = text.len().min(room);
    buf[..n].copy_from_slice(&text[..n]);
    buf[n] = 0;
    if n < text.len() {
        libc::ERANGE
    } else {
        status
    }
}

/// "Unknown error N", written into `out` without formatting machinery.
fn unknown_error(errnum: c_int, out: &mut [u8; 32]) -> &[u8] {
    const PREFIX: &[u8] = b"Unknown error ";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 11];
    let mut v = errnum.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut n = PREFIX.len();
    if errnum < 0 {
        out[n] = b'-';
        n += 1;
    }
    let len = digits.len() - i;
    out[n..n + len].copy_from_slice(&digits[i..]);
    &out[..n + len]
}

/// `realpath` the way musl does it: open the path itself (following links), then
/// ask the kernel what that descriptor is. Needs /proc; without it the answer is
/// ENOENT, which only the backtrace printer (its one caller) ever sees.
pub fn real_path(path: &CStr) -> std::io::Result<Vec<u8>> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let link = format!("/proc/self/fd/{fd}\0");
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: link is NUL-terminated; buf has the length given.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd was opened above and is not used again.
    unsafe { libc::close(fd) };
    match usize::try_from(n) {
        Ok(n) if n < buf.len() => {
            buf.truncate(n);
            Ok(buf)
        }
        Ok(_) => Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG)),
        Err(_) => Err(err),
    }
}

/// The C names, exported only where they replace glibc's: the static build.
#[cfg(target_feature = "crt-static")]
mod exports {
    use super::*;
    use std::ffi::c_void;
    use std::ptr::null_mut;

    static HEAP: Heap = Heap::new();

    fn set_errno(e: c_int) {
        // SAFETY: __errno_location returns this thread's errno.
        unsafe { *libc::__errno_location() = e };
    }

    #[no_mangle]
    extern "C" fn malloc(size: usize) -> *mut c_void {
        let p = HEAP.malloc(size);
        if p.is_null() {
            set_errno(libc::ENOMEM);
        }
        p
    }

    #[no_mangle]
    extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        let p = HEAP.calloc(n, size);
        if p.is_null() {
            set_errno(libc::ENOMEM);
        }
        p
    }

    #[no_mangle]
    unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: C's contract for realloc is the heap's.
        let q = unsafe { HEAP.realloc(p, size) };
        if q.is_null() {
            set_errno(libc::ENOMEM);
        }
        q
    }

    #[no_mangle]
    unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: C's contract for free is the heap's.
        unsafe { HEAP.free(p) }
    }

    #[no_mangle]
    extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
        HEAP.memalign(align, size)
    }

    #[no_mangle]
    extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        HEAP.memalign(align, size)
    }

    #[no_mangle]
    unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
        if !align.is_power_of_two() || align % std::mem::size_of::<usize>() != 0 {
            return libc::EINVAL;
        }
        let p = HEAP.memalign(align, size);
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller passes somewhere to put the pointer.
        unsafe { *out = p };
        0
    }

    /// POSIX strerror_r, which Rust's standard library calls.
    #[no_mangle]
    unsafe extern "C" fn __xpg_strerror_r(errnum: c_int, buf: *mut c_char, len: usize) -> c_int {
        if buf.is_null() {
            return libc::ERANGE;
        }
        // SAFETY: the caller gives a buffer of `len` bytes.
        strerror_into(errnum, unsafe {
            std::slice::from_raw_parts_mut(buf.cast(), len)
        })
    }

    /// GNU strerror_r, which glibc's own error reporting calls.
    #[no_mangle]
    unsafe extern "C" fn __strerror_r(errnum: c_int, buf: *mut c_char, len: usize) -> *mut c_char {
        match error_text(errnum) {
            Some(text) => text.as_ptr().cast_mut(),
            None => {
                if !buf.is_null() {
                    // SAFETY: the caller gives a buffer of `len` bytes.
                    strerror_into(errnum, unsafe {
                        std::slice::from_raw_parts_mut(buf.cast(), len)
                    });
                }
                buf
            }
        }
    }

    #[no_mangle]
    unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
        if path.is_null() {
            set_errno(libc::EINVAL);
            return null_mut();
        }
        // SAFETY: C passes a NUL-terminated path.
        let found = match real_path(unsafe { CStr::from_ptr(path) }) {
            Ok(found) => found,
            Err(e) => {
                set_errno(e.raw_os_error().unwrap_or(libc::EIO));
                return null_mut();
            }
        };
        let out = if resolved.is_null() {
            malloc(found.len() + 1).cast::<c_char>()
        } else {
            resolved // PATH_MAX bytes, by realpath's contract; found is shorter.
        };
        if !out.is_null() {
            // SAFETY: out has room for the path and its NUL.
            unsafe {
                std::ptr::copy_nonoverlapping(found.as_ptr().cast(), out, found.len());
                *out.add(found.len()) = 0;
            }
        }
        out
    }

    /// glibc's start-up points each thread's `isalpha` tables at the C locale's.
    /// In this build nothing calls a ctype function (if anything did, the linker
    /// would bring glibc's own `__ctype_init` along with it and refuse the
    /// duplicate), so no locale data is linked, and there is nothing to point at.
    #[no_mangle]
    extern "C" fn __ctype_init() {}

    /// A failed assertion inside glibc: say which, then abort, as glibc does.
    #[no_mangle]
    unsafe extern "C" fn __assert_fail(
        assertion: *const c_char,
        file: *const c_char,
        line: std::ffi::c_uint,
        _function: *const c_char,
    ) -> ! {
        let text = |p: *const c_char| {
            // SAFETY: glibc passes NUL-terminated literals.
            unsafe { CStr::from_ptr(p) }.to_bytes()
        };
        let mut digits = [0u8; 32];
        let line = unknown_error(line as c_int, &mut digits);
        let line = &line[b"Unknown error ".len()..];
        for part in [
            b"glibc: ".as_slice(),
            text(file),
            b":",
            line,
            b": assertion `",
            text(assertion),
            b"' failed\n",
        ] {
            // SAFETY: writing a byte slice to stderr; failures are moot, we abort.
            unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
        }
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_match_what_std_prints() {
        let mut buf = [0u8; 64];
        assert_eq!(strerror_into(libc::ECONNREFUSED, &mut buf), 0);
        let text = CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap();
        assert_eq!(text, "Connection refused");
        let std_text = std::io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string();
        assert_eq!(
            std_text,
            format!("{text} (os error {})", libc::ECONNREFUSED)
        );

        assert_eq!(strerror_into(100_000, &mut buf), libc::EINVAL);
        assert_eq!(
            CStr::from_bytes_until_nul(&buf).unwrap(),
            c"Unknown error 100000"
        );
        assert_eq!(strerror_into(-3, &mut buf), libc::EINVAL);
        assert_eq!(
            CStr::from_bytes_until_nul(&buf).unwrap(),
            c"Unknown error -3"
        );

        let mut small = [0u8; 5];
        assert_eq!(strerror_into(libc::ECONNREFUSED, &mut small), libc::ERANGE);
        assert_eq!(&small, b"Conn\0");
        assert_eq!(strerror_into(libc::ENOENT, &mut []), libc::ERANGE);
    }

    #[test]
    fn real_path_resolves_links_and_dots_like_glibc() {
        let dir = std::env::temp_dir().join(format!("p2pchat-realpath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("link")).unwrap();
        let asked = std::ffi::CString::new(format!("{}/link/../link/.", dir.display())).unwrap();
        let ours = real_path(&asked).unwrap();
        let glibc = std::fs::canonicalize(asked.to_str().unwrap()).unwrap();
        assert_eq!(ours, glibc.as_os_str().as_encoded_bytes());
        let missing = real_path(c"/no/such/path/here").unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
