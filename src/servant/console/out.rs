//! Writing to stdout: lines for a pipe, each after its time stamp when asked for,
//! and what the chat window drew. Both go through the reactor's queue, which
//! never blocks and counts what it drops.

use std::sync::atomic::{AtomicBool, Ordering};

use super::stamp;
use crate::reactor::stdio::STDOUT;

/// Time stamps on stdout when it is no terminal (`--timestamps`): set once at
/// start and by a reload, read where pipe lines are written ([`emit`]).
pub(super) static PIPE_STAMPS: AtomicBool = AtomicBool::new(false);

/// Queues lines for stdout, each after its time stamp when asked for; false if the
/// queue is full and dropped them. Unit tests read what would have been written
/// from [`Console::scratch`] instead.
pub(super) fn emit(bytes: &[u8]) -> bool {
    if cfg!(test) {
        return true;
    }
    if !PIPE_STAMPS.load(Ordering::Relaxed) {
        return STDOUT.write(bytes);
    }
    let now = stamp::now();
    let mut stamped = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        stamped.extend_from_slice(&now);
        stamped.push(b' ');
        stamped.extend_from_slice(line);
    }
    STDOUT.write(&stamped)
}

/// Queues what [`Console::settle`] drew; false if the queue is full and dropped
/// it, counting the transcript `lines` it held (a repaint, the status line and the
/// input are no lines of their own).
pub(super) fn emit_drawn(bytes: &[u8], lines: u64) -> bool {
    cfg!(test) || STDOUT.write_lines(bytes, lines)
}
