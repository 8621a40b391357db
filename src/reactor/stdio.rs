//! stdout and stderr as the loop's own streams: bounded queues, written without
//! ever blocking the loop.
//!
//! A daemon whose log reader stalls (a pipe nobody drains, a terminal paused with
//! Ctrl-S) must not stall with it. Every line for stdout or stderr, log lines and
//! the servant's chat alike, is appended to a queue of at most 1 MiB; the loop
//! writes each queue once per turn, so the lines of one turn leave in one
//! `write`, and when the stream would block the loop waits for it to become
//! writable, as it does for sockets. A line that finds its queue full
//! is dropped and counted; once the stream has drained, one line says how many
//! were lost, in the place where they are missing. A program that draws on the
//! terminal behind stdout (the servant's console) says how that line must be
//! framed there ([`Stream::frame_notes`]): the note lands wherever that program
//! left the cursor, which is only a fresh line when nothing else is drawn.
//!
//! How each stream is written without blocking, and without making the shell's
//! terminal non-blocking, is `sink.rs`'s business.
//!
//! Lines written outside the loop go through the same queues: before the loop
//! starts and after it ends they are written at once, as far as the stream takes
//! them; from another thread (the daemons start none, but a library may) they
//! wake the loop, which writes them; whatever is still queued when the process
//! exits gets a last, bounded chance (`EXIT_GRACE`).

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, Once, TryLockError};
use std::time::{Duration, Instant};

use log::warn;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token, Waker};

use super::sink::Sink;

/// Most bytes queued per stream; past it lines are dropped and counted.
const QUEUE_LIMIT: usize = 1024 * 1024;
/// How long an exiting process waits for a stalled reader before giving up the rest.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// A drained queue keeps at most this much memory.
const KEEP: usize = 64 * 1024;

/// Standard output: the servant's chat.
pub static STDOUT: Stream = Stream::new(1, "stdout");
/// Standard error: the log.
pub static STDERR: Stream = Stream::new(2, "stderr");

/// The owning loop's waker, while a loop owns the streams.
static OWNER: Mutex<Option<Arc<Waker>>> = Mutex::new(None);

thread_local! {
    /// This thread runs the loop that owns the streams: it writes them at the end
    /// of each turn, so its lines are only queued.
    static LOOP_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// One standard stream and its queue.
pub struct Stream {
    fd: RawFd,
    name: &'static str,
    queue: Mutex<Queue>,
}

/// What waits to be written to one stream, and how it is written.
struct Queue {
    sink: Sink,
    buf: Vec<u8>,
    /// `buf[..sent]` is written already.
    sent: usize,
    /// Lines dropped since the queue last drained. Until it drains every line is
    /// dropped, so that the line reporting the loss stands where the gap is.
    lost: u64,
    /// The last write would have blocked: wait for a writability event.
    blocked: bool,
    /// How the loss note is framed on a terminal someone draws on.
    frame: Frame,
}

/// Bytes to write before and after the text of stdout's loss note, while `on`:
/// what erases the screen's owner's drawing and draws it again around the note.
/// Otherwise the note is a line of its own, `[N lines lost: ...]`.
struct Frame {
    on: bool,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Stream {
    const fn new(fd: RawFd, name: &'static str) -> Self {
        Stream {
            fd,
            name,
            queue: Mutex::new(Queue {
                sink: Sink::Unopened,
                buf: Vec::new(),
                sent: 0,
                lost: 0,
                blocked: false,
                frame: Frame {
                    on: false,
                    before: Vec::new(),
                    after: Vec::new(),
                },
            }),
        }
    }

    /// Queues `bytes`, one or more whole lines, or drops and counts them when the
    /// queue is full; says which. Never blocks.
    pub fn write(&self, bytes: &[u8]) -> bool {
        self.write_lines(bytes, lines(bytes))
    }

    /// [`Stream::write`] for bytes that the caller counts as `lines` lines when
    /// they are dropped: a drawing on a terminal is none, and a note of the
    /// caller's own about lines it dropped stands for those lines.
    pub fn write_lines(&self, bytes: &[u8], lines: u64) -> bool {
        let was_empty = {
            let mut q = self.lock();
            q.open(self.fd);
            let was_empty = q.pending() == 0;
            if !q.push_lines(bytes, lines) {
                return false;
            }
            was_empty
        };
        if LOOP_THREAD.try_with(Cell::get).unwrap_or(false) {
            return true; // written at the end of this turn
        }
        let owner = lock(&OWNER).clone();
        match owner {
            Some(waker) if was_empty => {
                let _ = waker.wake();
            }
            Some(_) => {} // goes out with what was queued before it
            None => self.lock().write_out(self),
        }
        true
    }

    /// Bytes queued and not yet written: how far the reader is behind. The servant
    /// reads it to keep one flooding peer from filling the queue for everyone.
    pub fn queued(&self) -> usize {
        self.lock().pending()
    }

    /// Reports `lines` lines the caller dropped before they reached the queue (the
    /// servant rationing a flood, so that the queue keeps room for other peers'
    /// lines), with a `[N lines lost: WHY]` note where they are missing. A note that
    /// does not fit is counted with the queue's own losses, so every line is still
    /// accounted for. Called on the loop's thread: the note goes out with the turn.
    pub fn lost(&self, lines: u64, why: &str) {
        let note = format!("[{lines} lines lost: {why}]\n");
        let mut q = self.lock();
        q.open(self.fd);
        q.push_lines(note.as_bytes(), lines);
    }

    /// How the loss note this stream writes once it drains is framed: `before` and
    /// `after` its text (`N lines lost: WHY`), or, with `None`, as a line of its
    /// own, `[N lines lost: WHY]\n`. A program that draws on the terminal behind
    /// the stream sets it after each drawing it queues, to erase that drawing
    /// before the note and draw it again after: the note goes out after the last
    /// bytes queued before the loss, so that is what the terminal shows then.
    pub fn frame_notes(&self, frame: Option<(&[u8], &[u8])>) {
        let f = &mut self.lock().frame;
        f.on = frame.is_some();
        f.before.clear();
        f.after.clear();
        if let Some((before, after)) = frame {
            f.before.extend_from_slice(before);
            f.after.extend_from_slice(after);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    /// Writes out what is queued, waiting at most `limit` for the stream to take
    /// it; says whether all of it went. For a moment when the process is about to
    /// stop (Ctrl-Z) and what it drew must reach the terminal first.
    pub fn flush_within(&self, limit: Duration) -> bool {
        self.drain_until(Instant::now() + limit);
        self.lock().pending() == 0
    }

    /// Writes what it can now, then waits for writability until `deadline`.
    fn drain_until(&self, deadline: Instant) {
        // At exit another thread may hold the lock mid-write; leave its lines then.
        let mut q = match self.queue.try_lock() {
            Ok(q) => q,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        loop {
            q.write_out(self);
            let Some(fd) = q.sink.pollable(self.fd) else {
                return;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if q.pending() == 0 || left.is_zero() {
                return;
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) } <= 0 {
                return;
            }
        }
    }
}

impl Queue {
    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    fn open(&mut self, fd: RawFd) {
        if matches!(self.sink, Sink::Unopened) {
            self.sink = Sink::open(fd);
            static AT_EXIT: Once = Once::new();
            // SAFETY: registers a plain extern "C" function that does not unwind.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(at_exit);
            });
        }
    }

    /// Appends `bytes`, or counts their lines as lost; returns whether they were
    /// queued. The unit tests' shorthand.
    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.push_lines(bytes, lines(bytes))
    }

    /// Appends `bytes`, or counts them as `lines` lost lines; returns whether they
    /// were queued. Bytes that are no line (a redraw) are dropped uncounted, and
    /// what follows them may still be queued: they leave no gap to report.
    fn push_lines(&mut self, bytes: &[u8], lines: u64) -> bool {
        if matches!(self.sink, Sink::Gone) {
            return false;
        }
        // An empty queue takes even an outsized write (a long `/peers` reply): it is
        // already in memory, and a loss counted with nothing queued would never be
        // reported, since the note goes out when the queue drains.
        let full = self.pending() > 0 && self.pending() + bytes.len() > QUEUE_LIMIT;
        if self.lost > 0 || full {
            self.lost += lines;
            return false;
        }
        if self.sent > 0 && self.buf.len() + bytes.len() > self.buf.capacity() {
            self.buf.drain(..self.sent); // reuse the written front before growing
            self.sent = 0;
        }
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Writes until the queue is empty or the stream would block.
    fn write_out(&mut self, stream: &Stream) {
        while self.pending() > 0 {
            match self.sink.write(stream.fd, &self.buf[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(stream.name, &e),
            }
            if self.pending() == 0 {
                self.buf.clear();
                self.sent = 0;
                if self.lost > 0 {
                    let lost = std::mem::take(&mut self.lost);
                    loss_note(&mut self.buf, stream.name, lost, &self.frame);
                }
            }
        }
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }

    /// The stream is gone for good (a reader that closed, a hung-up terminal).
    fn fail(&mut self, name: &str, e: &io::Error) {
        self.sink = Sink::Gone;
        self.buf = Vec::new();
        self.sent = 0;
        if name != STDERR.name {
            // The log is still there to say it; when stderr fails, nothing is.
            warn!("cannot write to {name}: {e}; what goes there is discarded from now on");
        }
    }
}

/// The running loop's hold on both streams: it gets their writability events and
/// writes them once per turn. One loop at a time has it.
pub(super) struct Attached {
    /// Per stream, the descriptor registered for writability, if epoll took it.
    registered: [Option<RawFd>; 2],
}

fn streams() -> [&'static Stream; 2] {
    [&STDOUT, &STDERR]
}

/// Gives the streams to the loop on this thread, unless another loop has them;
/// writes what was queued before it started.
pub(super) fn attach(
    registry: &Registry,
    waker: &Arc<Waker>,
    tokens: [Token; 2],
) -> Option<Attached> {
    {
        let mut owner = lock(&OWNER);
        if owner.is_some() {
            return None;
        }
        *owner = Some(waker.clone());
    }
    let _ = LOOP_THREAD.try_with(|t| t.set(true));
    let mut registered = [None, None];
    for (k, stream) in streams().into_iter().enumerate() {
        let mut q = stream.lock();
        q.open(stream.fd);
        if let Some(fd) = q.sink.pollable(stream.fd) {
            // Edge-triggered: an event comes whenever a blocked stream takes more.
            // Refused (EPERM for /dev/null): written every turn instead.
            let source = &mut SourceFd(&fd);
            if registry
                .register(source, tokens[k], Interest::WRITABLE)
                .is_ok()
            {
                registered[k] = Some(fd);
            }
        }
        q.blocked = false;
        q.write_out(stream);
    }
    Some(Attached { registered })
}

impl Attached {
    /// Stream `k` (0 stdout, 1 stderr) takes more.
    pub(super) fn writable(&self, k: usize) {
        let stream = streams()[k];
        let mut q = stream.lock();
        q.blocked = false;
        q.write_out(stream);
    }

    /// Writes what this turn queued: one write per stream, unless it would block.
    /// stderr goes first: the console's complaints go there, and the prompt it
    /// redraws after them goes to stdout.
    pub(super) fn flush(&self) {
        for k in [1, 0] {
            let stream = streams()[k];
            let mut q = stream.lock();
            // A stream that blocked waits for its event; one epoll refused has none.
            if q.pending() > 0 && !(q.blocked && self.registered[k].is_some()) {
                q.write_out(stream);
            }
        }
    }

    /// The loop ends: its descriptors leave the poll (the same loop may run
    /// again), and lines are written at once again.
    pub(super) fn detach(mut self, registry: &Registry) {
        for fd in std::mem::take(&mut self.registered).into_iter().flatten() {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
    }
}

/// Also when the loop unwinds from a panic: other threads' lines must not wait
/// for a loop that is gone.
impl Drop for Attached {
    fn drop(&mut self) {
        let _ = LOOP_THREAD.try_with(|t| t.set(false));
        *lock(&OWNER) = None;
        for stream in streams() {
            let mut q = stream.lock();
            q.blocked = false;
            q.write_out(stream);
        }
    }
}

/// The last chance for queued lines, bounded so a stalled reader cannot hold up
/// the exit.
extern "C" fn at_exit() {
    let deadline = Instant::now() + EXIT_GRACE;
    for stream in [&STDERR, &STDOUT] {
        stream.drain_until(deadline);
    }
}

/// Appends the line that stands for `lost` dropped lines: a log line on stderr,
/// a bracketed one among the chat on stdout, or there the text in `frame`.
fn loss_note(buf: &mut Vec<u8>, name: &str, lost: u64, frame: &Frame) {
    let what = format!("{lost} lines lost: {name} was not read fast enough");
    if name == STDERR.name {
        let mut line = String::new();
        crate::logfilter::push_utc_timestamp(&mut line, std::time::SystemTime::now());
        buf.extend_from_slice(format!("{line} WARN  [{}] {what}\n", module_path!()).as_bytes());
    } else if frame.on {
        buf.extend_from_slice(&frame.before);
        buf.extend_from_slice(what.as_bytes());
        buf.extend_from_slice(&frame.after);
    } else {
        buf.extend_from_slice(format!("[{what}]\n").as_bytes());
    }
}

fn lines(bytes: &[u8]) -> u64 {
    (memchr::memchr_iter(b'\n', bytes).count() as u64).max(1)
}

/// A poisoned lock still guards plain bytes; a panic elsewhere must not silence us.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::{AsRawFd, FromRawFd};

    /// A pipe whose write end is a [`Stream`] named "chat", opened as stdout would be;
    /// returns it and the read end.
    fn piped() -> (Stream, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the read end is ours alone.
        let reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let stream = Stream::new(fds[1], "chat");
        stream.lock().open(stream.fd);
        assert!(matches!(stream.lock().sink, Sink::Reopened(_)));
        (stream, reader)
    }

    /// Everything the pipe holds now.
    fn read_now(r: &mut std::fs::File) -> String {
        use std::io::Read;
        // SAFETY: F_SETFL on a descriptor we own.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_original_descriptor_stays_blocking() {
        let (stream, _reader) = piped();
        // SAFETY: F_GETFL on descriptors we own.
        let flags = |fd| unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK;
        assert_eq!(flags(stream.fd), 0, "the shell's description is untouched");
        let q = stream.lock();
        let own = q.sink.pollable(stream.fd).unwrap();
        assert_ne!(flags(own), 0, "our own description is non-blocking");
    }

    #[test]
    fn a_full_queue_drops_whole_lines_and_says_how_many_once_drained() {
        let (stream, mut reader) = piped();
        let line = format!("{}\n", "x".repeat(99));
        // The pipe takes 64 KiB, the queue 1 MiB: 12,000 lines of 100 bytes overflow both.
        for _ in 0..12_000 {
            let mut q = stream.lock();
            q.push(line.as_bytes());
            q.write_out(&stream);
        }
        assert!(
            stream.lock().blocked,
            "the pipe filled up without blocking us"
        );
        let lost = stream.lock().lost;
        assert!(lost > 0);
        let mut got = String::new();
        while stream.lock().pending() > 0 {
            got += &read_now(&mut reader);
            stream.lock().write_out(&stream);
        }
        got += &read_now(&mut reader);
        let shown = got.lines().filter(|l| *l == line.trim_end()).count() as u64;
        assert_eq!(
            got.lines().last().unwrap(),
            format!("[{lost} lines lost: chat was not read fast enough]")
        );
        assert_eq!(
            shown + lost,
            12_000,
            "every line is either shown or counted"
        );
        // After the note, lines are queued again.
        stream.lock().push(b"after\n");
        stream.lock().write_out(&stream);
        assert_eq!(read_now(&mut reader), "after\n");
    }

    /// Fills the pipe and the queue with lines until one is dropped; returns the
    /// lines queued and dropped.
    fn overflow(stream: &Stream) -> (u64, u64) {
        let line = format!("{}\n", "x".repeat(99));
        let mut queued = 0;
        while stream.lock().lost == 0 {
            let mut q = stream.lock();
            queued += u64::from(q.push(line.as_bytes()));
            q.write_out(stream);
        }
        (queued, stream.lock().lost)
    }

    #[test]
    fn a_framed_note_goes_out_between_its_frame_and_counts_what_it_stands_for() {
        let (stream, mut reader) = piped();
        stream.frame_notes(Some((b"<erase>", b"<redraw>")));
        let (queued, lost) = overflow(&stream);
        assert!(!stream.write_lines(b"a note\n", 42), "dropped too");
        assert!(!stream.write_lines(b"a redraw", 0), "dropped uncounted");
        let mut got = String::new();
        while stream.lock().pending() > 0 {
            got += &read_now(&mut reader);
            stream.lock().write_out(&stream);
        }
        got += &read_now(&mut reader);
        let shown = got.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(shown, queued);
        let note = format!(
            "<erase>{} lines lost: chat was not read fast enough<redraw>",
            lost + 42
        );
        assert!(got.ends_with(&note), "{:?}", &got[got.len() - 80..]);
        // Unframed again: the plain line.
        stream.frame_notes(None);
        overflow(&stream);
        got.clear();
        while stream.lock().pending() > 0 {
            got += &read_now(&mut reader);
            stream.lock().write_out(&stream);
        }
        got += &read_now(&mut reader);
        assert!(got.ends_with("chat was not read fast enough]\n"), "{got:?}");
    }

    #[test]
    fn an_outsized_write_to_an_empty_queue_goes_out_and_later_lines_follow() {
        let (stream, mut reader) = piped();
        let big = vec![b'y'; QUEUE_LIMIT + 1];
        assert!(stream.lock().push(&big), "an empty queue takes it");
        let mut got = 0;
        while stream.lock().pending() > 0 {
            stream.lock().write_out(&stream);
            got += read_now(&mut reader).len();
        }
        assert_eq!(got, big.len());
        stream.lock().push(b"after\n");
        stream.lock().write_out(&stream);
        assert_eq!(read_now(&mut reader), "after\n");
        assert_eq!(stream.lock().lost, 0);
    }

    #[test]
    fn a_reader_that_goes_away_costs_lines_not_the_writer() {
        let (stream, reader) = piped();
        drop(reader);
        let mut q = stream.lock();
        q.push(b"nobody reads this\n");
        q.write_out(&stream);
        assert!(matches!(q.sink, Sink::Gone) && q.pending() == 0);
        assert!(!q.push(b"nor this\n"));
    }
}
