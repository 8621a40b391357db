//! The connection for `XREAD BLOCK`: the server holds a blocking read's reply
//! until an entry arrives or the block time ends, and every command behind it on
//! the same connection waits as long. So a blocking read gets a [`Client`] of its
//! own, with at most one read outstanding; everything else goes on another.

use std::time::Duration;

use super::client::{Client, Event, Options, RequestId};
use super::resp::Int;
use super::url::RedisUrl;
use crate::reactor::{Index, Reactor};

/// A client that reads streams with `XREAD BLOCK`, one read at a time. The
/// daemon passes it its slot's events and its timer as for a [`Client`].
#[derive(Debug)]
pub struct StreamReader<T> {
    client: Client<T>,
    outstanding: Option<RequestId>,
}

impl<T: Clone> StreamReader<T> {
    pub fn new(url: RedisUrl, options: Options, mark: T, timer: usize) -> StreamReader<T> {
        StreamReader {
            client: Client::new(url, options, mark, timer),
            outstanding: None,
        }
    }

    pub fn start(&mut self, r: &mut Reactor<T>) {
        self.client.start(r);
    }

    /// `XREAD [COUNT count] BLOCK ms STREAMS key... id...` for `(key, last id)`
    /// pairs; `block` zero waits for ever. `None` while a read is outstanding.
    pub fn xread(
        &mut self,
        r: &mut Reactor<T>,
        streams: &[(&[u8], &[u8])],
        count: Option<usize>,
        block: Duration,
    ) -> Option<RequestId> {
        if self.outstanding.is_some() {
            return None;
        }
        let ms = Int::new(block.as_millis().min(i64::MAX as u128) as i64);
        let count = count.map(|n| Int::new(n.min(i64::MAX as usize) as i64));
        let mut args: Vec<&[u8]> = Vec::with_capacity(6 + 2 * streams.len());
        args.push(b"XREAD");
        if let Some(n) = &count {
            args.extend([b"COUNT".as_slice(), n.as_bytes()]);
        }
        args.extend([b"BLOCK".as_slice(), ms.as_bytes(), b"STREAMS"]);
        args.extend(streams.iter().map(|s| s.0));
        args.extend(streams.iter().map(|s| s.1));
        let limit = (!block.is_zero()).then_some(block);
        let id = self.client.blocking_command(r, &args, limit);
        self.outstanding = Some(id);
        Some(id)
    }

    /// A read is awaiting its reply.
    pub fn is_reading(&self) -> bool {
        self.outstanding.is_some()
    }

    pub fn is_up(&self) -> bool {
        self.client.is_up()
    }

    pub fn slot(&self) -> Option<Index> {
        self.client.slot()
    }

    /// The next thing that happened; the read's reply (entries, or a null array
    /// when the block time ended) lets the next read be made.
    pub fn next_event(&mut self) -> Option<Event> {
        let event = self.client.next_event()?;
        if let Event::Reply(id, _) = &event {
            if Some(*id) == self.outstanding {
                self.outstanding = None;
            }
        }
        Some(event)
    }

    /// VB: `_Connect`.
    pub fn connect(&mut self, r: &mut Reactor<T>, i: Index) {
        self.client.connect(r, i);
    }

    /// VB: `_DataArrival`.
    pub fn data_arrival(&mut self, r: &mut Reactor<T>, i: Index, data: &[u8]) {
        self.client.data_arrival(r, i, data);
    }

    /// VB: `_Error`.
    pub fn error(&mut self, i: Index, err: &std::io::Error) {
        self.client.error(i, err);
    }

    /// VB: `_Close`.
    pub fn close(&mut self, r: &mut Reactor<T>, i: Index) {
        self.client.close(r, i);
    }

    /// The reactor's timer `id` fired; `false` if it is not this reader's.
    pub fn timer(&mut self, r: &mut Reactor<T>, id: usize) -> bool {
        self.client.timer(r, id)
    }
}
