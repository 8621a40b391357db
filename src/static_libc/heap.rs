//! The static build's heap: dlmalloc for small blocks, a mapping of its own for
//! each large one.
//!
//! Why two: the Rust port of dlmalloc carves every block, however large, from its
//! own segments, so a vector that doubles leaves its old, touched buffer behind as
//! free space that stays resident; with 10,000 servants connmgr held 8.9 MiB
//! against glibc's 6.5. glibc gives each block of 128 KiB or more a mapping of its
//! own, which is unmapped when freed and grown in place by `mremap`, so only the
//! pages of the final size are ever touched. This does the same.
//!
//! How a block says which it is: dlmalloc writes a header word just before every
//! block it hands out, and sets its "in use" bit (CINUSE) there. A mapped block's
//! header holds the mapping's length, a multiple of the page size, so that bit is
//! clear: the same test C dlmalloc uses for its own mapped chunks. The word before
//! it holds the block's offset from the start of its mapping. The dependency is
//! pinned to the exact version whose header was checked (Cargo.toml), and a test
//! fails if its format ever differs.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr::null_mut;

/// Blocks of this many bytes or more get a mapping of their own (glibc's default).
const MAP_THRESHOLD: usize = 128 * 1024;
/// dlmalloc's "this chunk is in use" bit, in the header word before each block.
const CINUSE: usize = 2;
const WORD: usize = std::mem::size_of::<usize>();
/// Room before a mapped block for its two header words; keeps 16-byte alignment.
const HEADER: usize = 2 * WORD;
const PAGE: usize = 4096;

/// The process's heap, serialised by a mutex (the standard library may allocate
/// on any thread, and glibc itself calls `malloc`).
pub struct Heap {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    heap: UnsafeCell<dlmalloc::Dlmalloc>,
}

// SAFETY: every access to `heap` happens with `lock` held (see `with`).
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Self {
        Heap {
            lock: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
            heap: UnsafeCell::new(dlmalloc::Dlmalloc::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> T) -> T {
        // SAFETY: the mutex is statically initialised and never moved (it lives in
        // a static or, in tests, in a value that outlives every call); while it is
        // held, this is the only reference to the allocator.
        unsafe {
            libc::pthread_mutex_lock(self.lock.get());
            let out = f(&mut *self.heap.get());
            libc::pthread_mutex_unlock(self.lock.get());
            out
        }
    }

    /// `malloc`: at least 16-byte aligned, or null.
    pub fn malloc(&self, size: usize) -> *mut c_void {
        if size >= MAP_THRESHOLD {
            return map(size, HEADER);
        }
        // SAFETY: c_malloc accepts any size.
        self.with(|h| unsafe { h.c_malloc(size) }).cast()
    }

    /// `calloc`: zeroed, or null if `n * size` overflows or memory is out. A
    /// mapped block is zero already, so its pages are not touched.
    pub fn calloc(&self, n: usize, size: usize) -> *mut c_void {
        let Some(bytes) = n.checked_mul(size) else {
            return null_mut();
        };
        if bytes >= MAP_THRESHOLD {
            return map(bytes, HEADER);
        }
        // SAFETY: dlmalloc's calloc takes any size with its natural alignment.
        self.with(|h| unsafe { h.calloc(bytes, HEADER) }).cast()
    }

    /// `realloc`; null `p` allocates. On failure `p` is untouched.
    ///
    /// # Safety
    /// `p` is null or came from this heap and was not freed.
    pub unsafe fn realloc(&self, p: *mut c_void, size: usize) -> *mut c_void {
        if p.is_null() {
            return self.malloc(size);
        }
        // SAFETY: p came from this heap (the caller's promise).
        let mapped = unsafe { is_mapped(p) };
        if mapped && size >= MAP_THRESHOLD {
            // SAFETY: p is a live mapped block.
            if let Some(q) = unsafe { remap(p, size) } {
                return q;
            }
        } else if !mapped && size < MAP_THRESHOLD {
            // SAFETY: p is a live dlmalloc block.
            return self.with(|h| unsafe { h.c_realloc(p.cast(), size) }).cast();
        }
        // Crossing the threshold, or an aligned mapping: a new block and a copy.
        let q = self.malloc(size);
        if !q.is_null() {
            // SAFETY: both blocks are live and hold at least the bytes copied.
            unsafe {
                let n = usable(p).min(size);
                std::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), n);
                self.free(p);
            }
        }
        q
    }

    /// `free`; null is ignored.
    ///
    /// # Safety
    /// `p` is null or came from this heap and was not freed.
    pub unsafe fn free(&self, p: *mut c_void) {
        if p.is_null() {
            return;
        }
        // SAFETY: p is a live block of this heap, of the kind its header says.
        unsafe {
            if is_mapped(p) {
                let (base, len) = mapping(p);
                libc::munmap(base, len);
            } else {
                self.with(|h| h.c_free(p.cast()));
            }
        }
    }

    /// `memalign`: `align` must be a power of two, else null (EINVAL for callers
    /// that report it).
    pub fn memalign(&self, align: usize, size: usize) -> *mut c_void {
        if !align.is_power_of_two() {
            return null_mut();
        }
        if size >= MAP_THRESHOLD {
            return map(size, align.max(HEADER));
        }
        // SAFETY: align is a power of two, c_memalign's only precondition.
        self.with(|h| unsafe { h.c_memalign(align, size) }).cast()
    }
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh mapping holding `size` bytes at an `align`ed address (a power of two,
/// at least [`HEADER`]), with the two header words before it; null if the
/// system has no memory for it.
fn map(size: usize, align: usize) -> *mut c_void {
    let Some(len) = mapped_len(size, align) else {
        return null_mut();
    };
    // SAFETY: an anonymous private mapping; nothing else refers to it yet.
    let base = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return null_mut();
    }
    let offset = (base as usize + HEADER).next_multiple_of(align) - base as usize;
    // SAFETY: offset >= HEADER and offset + size <= len, by mapped_len.
    unsafe {
        let p = base.cast::<u8>().add(offset);
        set_header(p, offset, len);
        p.cast()
    }
}

/// The length of a mapping for `size` bytes at `align`: whole pages.
fn mapped_len(size: usize, align: usize) -> Option<usize> {
    let worst = size.checked_add(HEADER)?.checked_add(align - HEADER)?;
    worst.checked_next_multiple_of(PAGE)
}

/// Grows or shrinks a 16-byte-aligned mapped block in place if the kernel can,
/// else moves it (`mremap` copies page tables, not bytes). None leaves `p` as it
/// was: an over-aligned block (whose alignment a move could break), or no memory.
///
/// # Safety
/// `p` is a live mapped block.
unsafe fn remap(p: *mut c_void, size: usize) -> Option<*mut c_void> {
    // SAFETY: the caller's promise.
    let (base, len) = unsafe { mapping(p) };
    if p as usize - base as usize != HEADER {
        return None;
    }
    let new_len = mapped_len(size, HEADER)?;
    // SAFETY: base..base+len is this block's whole mapping.
    let moved = unsafe { libc::mremap(base, len, new_len, libc::MREMAP_MAYMOVE) };
    if moved == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the new mapping has new_len >= HEADER + size bytes.
    unsafe {
        let q = moved.cast::<u8>().add(HEADER);
        set_header(q, HEADER, new_len);
        Some(q.cast())
    }
}

/// # Safety
/// `p` has two writable words before it.
unsafe fn set_header(p: *mut u8, offset: usize, len: usize) {
    debug_assert_eq!(len & CINUSE, 0, "a page multiple");
    // SAFETY: the caller's promise; p is at least word-aligned.
    unsafe {
        *p.cast::<usize>().sub(1) = len;
        *p.cast::<usize>().sub(2) = offset;
    }
}

/// # Safety
/// `p` is a live block of a [`Heap`].
unsafe fn is_mapped(p: *mut c_void) -> bool {
    // SAFETY: every block has a header word before it (dlmalloc's or ours).
    unsafe { *p.cast::<usize>().sub(1) & CINUSE == 0 }
}

/// A mapped block's mapping: where it starts and how long it is.
///
/// # Safety
/// `p` is a live mapped block.
unsafe fn mapping(p: *mut c_void) -> (*mut c_void, usize) {
    // SAFETY: the caller's promise: the header words are ours.
    unsafe {
        let len = *p.cast::<usize>().sub(1);
        let offset = *p.cast::<usize>().sub(2);
        (p.cast::<u8>().sub(offset).cast(), len)
    }
}

/// Bytes a block can hold: a mapping's rest, or a dlmalloc chunk's size (the
/// header less its flag bits) less the header word.
///
/// # Safety
/// `p` is a live block of a [`Heap`].
unsafe fn usable(p: *mut c_void) -> usize {
    // SAFETY: the caller's promise.
    unsafe {
        if is_mapped(p) {
            let (base, len) = mapping(p);
            len - (p as usize - base as usize)
        } else {
            (*p.cast::<usize>().sub(1) & !7) - WORD
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlmalloc_marks_its_blocks_as_this_heap_expects() {
        let heap = Heap::new();
        for size in [0, 1, 24, 1000, 4096, 100_000, MAP_THRESHOLD - 1] {
            let p = heap.malloc(size);
            // SAFETY: p is a live block of heap.
            unsafe {
                assert!(!is_mapped(p), "dlmalloc's {size}-byte block has CINUSE set");
                let room = usable(p);
                assert!(room >= size && room < size + 64, "{size} -> {room}");
                heap.free(p);
            }
        }
    }

    #[test]
    fn large_blocks_are_mapped_grown_in_place_and_unmapped() {
        let heap = Heap::new();
        // A vector's life: small, doubling past the threshold, then freed.
        let mut p = heap.malloc(1000).cast::<u8>();
        let mut filled = 0;
        for size in [1000usize, 64 << 10, 256 << 10, 4 << 20, 16 << 20] {
            // SAFETY: p is live and holds `size` bytes after the realloc.
            unsafe {
                p = heap.realloc(p.cast(), size).cast();
                assert!(!p.is_null());
                assert_eq!(is_mapped(p.cast()), size >= MAP_THRESHOLD);
                assert!(
                    (0..filled).all(|i| *p.add(i) == (i % 251) as u8),
                    "kept at {size}"
                );
                for i in filled..size {
                    *p.add(i) = (i % 251) as u8;
                }
            }
            filled = size;
        }
        // Shrinking back below the threshold moves it back to dlmalloc.
        // SAFETY: as above.
        unsafe {
            p = heap.realloc(p.cast(), 5000).cast();
            assert!(!is_mapped(p.cast()));
            assert!((0..5000).all(|i| *p.add(i) == (i % 251) as u8));
            heap.free(p.cast());
        }
    }

    #[test]
    fn large_zeroed_and_aligned_blocks() {
        let heap = Heap::new();
        let z = heap.calloc(1 << 20, 4).cast::<u32>();
        // SAFETY: z has 1 Mi u32s.
        assert!((0..1 << 20).step_by(997).all(|i| unsafe { *z.add(i) } == 0));
        // SAFETY: z is live.
        unsafe { heap.free(z.cast()) };
        for align in [16, 64, 4096, 1 << 16] {
            let a = heap.memalign(align, 300_000);
            assert_eq!(a as usize % align, 0, "aligned to {align}");
            // SAFETY: a is a live block of 300,000 bytes; grown, then freed.
            unsafe {
                *a.cast::<u8>().add(299_999) = 7;
                let b = heap.realloc(a, 600_000);
                assert_eq!(*b.cast::<u8>().add(299_999), 7);
                heap.free(b);
            }
        }
        assert!(heap.calloc(usize::MAX, 2).is_null(), "n * size overflows");
        assert!(heap.malloc(usize::MAX - 100).is_null(), "no such mapping");
    }

    #[test]
    fn the_heap_allocates_aligns_zeroes_grows_and_frees() {
        let heap = Heap::new();
        let p = heap.malloc(100).cast::<u8>();
        assert!(!p.is_null());
        assert_eq!(p as usize % 16, 0);
        // SAFETY: p has 100 bytes.
        unsafe { std::ptr::write_bytes(p, 0xAB, 100) };
        // SAFETY: p came from this heap.
        let q = unsafe { heap.realloc(p.cast(), 1 << 20) }.cast::<u8>();
        assert!(!q.is_null());
        // SAFETY: q has at least the first 100 bytes, kept by realloc.
        assert!((0..100).all(|i| unsafe { *q.add(i) } == 0xAB));
        // SAFETY: q came from this heap and is freed once.
        unsafe { heap.free(q.cast()) };

        let z = heap.calloc(1000, 8).cast::<u64>();
        // SAFETY: z has 1000 u64s.
        assert!((0..1000).all(|i| unsafe { *z.add(i) } == 0));
        // SAFETY: z came from this heap.
        unsafe { heap.free(z.cast()) };

        assert!(heap.calloc(usize::MAX, 2).is_null(), "n * size overflows");
        for align in [32, 64, 4096] {
            let a = heap.memalign(align, 10);
            assert_eq!(a as usize % align, 0);
            // SAFETY: a came from this heap.
            unsafe { heap.free(a) };
        }
        assert!(heap.memalign(24, 10).is_null(), "not a power of two");
        // SAFETY: null is ignored.
        unsafe { heap.free(null_mut()) };
    }

    #[test]
    fn the_heap_is_shared_safely_between_threads() {
        static SHARED: Heap = Heap::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut live = Vec::new();
                    for i in 0..5_000usize {
                        let n = 1 + (i * 7919 + t) % 3000;
                        let p = SHARED.malloc(n).cast::<u8>();
                        // SAFETY: p has n bytes.
                        unsafe { std::ptr::write_bytes(p, t as u8, n) };
                        live.push((p, n));
                        if i % 3 == 0 {
                            let (p, n) = live.swap_remove(i % live.len());
                            // SAFETY: p has n bytes, all written by this thread.
                            assert!((0..n).all(|k| unsafe { *p.add(k) } == t as u8));
                            // SAFETY: p came from SHARED and is freed once.
                            unsafe { SHARED.free(p.cast()) };
                        }
                    }
                    for (p, _) in live {
                        // SAFETY: as above.
                        unsafe { SHARED.free(p.cast()) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
