//! Frames read from the TAP, kept while payload they carry waits for a host
//! socket.
//!
//! A TCP flow's in-order payload skips smoltcp's receive buffer (the direct
//! receive path, `nat::tcp`). Sent the moment smoltcp took it, that was one
//! send(2) per frame, and each woke the host's receiver (on this VM, often
//! onto rlnet's own CPU, preempting it). Instead the flow now holds a slice
//! of the frame ([`Held`]) and sends everything it holds with one writev(2)
//! when it is serviced after the batch. The engine reads into a small pool
//! ([`Frames`]); a buffer is reused once nothing holds it, which reference
//! counting decides, so no slice can outlive or see another frame's bytes.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;

type Buf = Rc<Box<[u8]>>;

/// The frame being processed (set by [`Frames::process`]), for the flows'
/// receive hooks to hold slices of.
#[derive(Default)]
pub struct Current(RefCell<Option<(Buf, usize)>>);

// Debug output names sizes, not 64 KiB of frame.
impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self
            .0
            .try_borrow()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.1));
        f.debug_tuple("Current").field(&len).finish()
    }
}

impl Current {
    /// `data` as a held slice of the current frame; None if no frame is
    /// current or `data` is not in it (a reassembled datagram, say).
    pub fn hold(&self, data: &[u8]) -> Option<Held> {
        let cur = self.0.borrow();
        let (buf, len) = cur.as_ref()?;
        // Addresses compared as numbers: where `data` lies in the frame.
        let at = (data.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
        let end = at.checked_add(data.len())?;
        (end <= *len).then(|| Held {
            buf: Rc::clone(buf),
            range: at..end,
        })
    }
}

/// Bytes of a frame, kept alive (the frame's buffer is not reused) until
/// dropped.
pub struct Held {
    buf: Buf,
    range: Range<usize>,
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Held").field(&self.range).finish()
    }
}

impl Held {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

/// The pool of receive buffers, allocated as needed up to its size.
pub struct Frames {
    bufs: Vec<Buf>,
    /// Most buffers kept, and each one's size.
    max: usize,
    size: usize,
    current: Rc<Current>,
}

impl fmt::Debug for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.bufs.iter().filter(|b| Rc::strong_count(b) > 1).count();
        f.debug_struct("Frames")
            .field("buffers", &self.bufs.len())
            .field("held", &held)
            .finish()
    }
}

impl Frames {
    /// Up to `n` buffers of `size` bytes. One is made now; more only when
    /// flows hold slices of all there are (bulk data), so an idle or
    /// request/response namespace costs one buffer, as before.
    pub fn new(n: usize, size: usize) -> Frames {
        Frames {
            bufs: vec![Self::buffer(size)],
            max: n.max(1),
            size,
            current: Rc::default(),
        }
    }

    fn buffer(size: usize) -> Buf {
        Rc::new(vec![0u8; size].into_boxed_slice())
    }

    /// What the flows hold slices through.
    pub fn current(&self) -> &Rc<Current> {
        &self.current
    }

    /// Whether a buffer is held by nothing, or one more may be made.
    pub fn has_free(&self) -> bool {
        self.bufs.len() < self.max || self.bufs.iter().any(|b| Rc::strong_count(b) == 1)
    }

    /// A buffer nothing holds, to read a frame into: a new one while the
    /// pool may grow; if flows hold slices of all of them, a new one in
    /// place of the first (its holders keep theirs alive). The engine
    /// services the flows first when none is free ([`Frames::has_free`]),
    /// so that is a fallback only.
    pub fn free_or_new(&mut self) -> (usize, &mut [u8]) {
        let i = match self.bufs.iter_mut().position(|b| Rc::get_mut(b).is_some()) {
            Some(i) => i,
            None if self.bufs.len() < self.max => {
                self.bufs.push(Self::buffer(self.size));
                self.bufs.len() - 1
            }
            None => {
                self.bufs[0] = Self::buffer(self.size);
                0
            }
        };
        // Held by nothing: make_mut has nothing to copy.
        (i, &mut Rc::make_mut(&mut self.bufs[i])[..])
    }

    /// Run `f` on the first `len` bytes of buffer `i`, that frame current
    /// meanwhile.
    pub fn process<R>(&self, i: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let buf = &self.bufs[i];
        let len = len.min(buf.len());
        *self.current.0.borrow_mut() = Some((Rc::clone(buf), len));
        let r = f(&buf[..len]);
        *self.current.0.borrow_mut() = None;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(frames: &mut Frames, byte: u8) -> usize {
        let (i, buf) = frames.free_or_new();
        buf.fill(byte);
        i
    }

    #[test]
    fn a_held_slice_keeps_its_frame_from_reuse() {
        let mut frames = Frames::new(2, 16);
        let a = filled(&mut frames, 1);
        let held = frames.process(a, 10, |f| frames.current().hold(&f[4..8]));
        let held = held.expect("in the frame");
        assert_eq!(held.bytes(), &[1, 1, 1, 1]);
        // The other buffer is free, the held one is not.
        assert!(frames.has_free());
        let b = filled(&mut frames, 2);
        assert_ne!(a, b);
        frames.process(b, 16, |_| ());
        assert_eq!(frames.free_or_new().0, b);
        drop(held);
        assert_eq!(frames.free_or_new().0, a);
    }

    #[test]
    fn the_pool_grows_only_while_all_are_held() {
        let mut frames = Frames::new(3, 8);
        assert_eq!(frames.bufs.len(), 1);
        // Read, processed, let go: the one buffer serves again.
        for _ in 0..5 {
            let i = filled(&mut frames, 1);
            frames.process(i, 8, |_| ());
        }
        assert_eq!(frames.bufs.len(), 1);
        let i = filled(&mut frames, 2);
        let a = frames.process(i, 8, |f| frames.current().hold(f));
        let j = filled(&mut frames, 3);
        let b = frames.process(j, 8, |f| frames.current().hold(f));
        assert_eq!(frames.bufs.len(), 2);
        assert!(a.is_some() && b.is_some());
    }

    #[test]
    fn when_all_are_held_a_new_buffer_takes_the_first_place() {
        let mut frames = Frames::new(1, 8);
        let i = filled(&mut frames, 9);
        let held = frames
            .process(i, 8, |f| frames.current().hold(f))
            .expect("held");
        assert!(!frames.has_free());
        let (j, buf) = frames.free_or_new();
        assert_eq!((j, buf.len()), (0, 8));
        buf.fill(1);
        // The holder still sees its own frame's bytes.
        assert_eq!(held.bytes(), &[9; 8]);
    }

    #[test]
    fn only_bytes_of_the_current_frame_are_held() {
        let mut frames = Frames::new(1, 16);
        let i = filled(&mut frames, 7);
        let elsewhere = vec![7u8; 4];
        frames.process(i, 8, |f| {
            let cur = frames.current();
            assert!(cur.hold(&elsewhere).is_none());
            // Past the frame's length, though inside the buffer.
            assert!(cur.hold(&f[6..8]).is_some());
            assert!(cur.hold(&f[8..8]).is_some());
        });
        // Nothing is current after processing.
        let f = frames.bufs[0].clone();
        assert!(frames.current().hold(&f[0..2]).is_none());
    }

    #[test]
    fn a_slice_reaching_past_the_frame_is_not_held() {
        let mut frames = Frames::new(1, 16);
        let i = filled(&mut frames, 3);
        let buf = frames.bufs[i].clone();
        frames.process(i, 8, |_| {
            assert!(frames.current().hold(&buf[6..10]).is_none());
            assert!(frames.current().hold(&buf[0..8]).is_some());
        });
    }
}
