//! Gap-free sequence bookkeeping for one feed connection (SPEC §5): which
//! seqs have been sent, so replay plus live delivery never duplicates or
//! skips a message.

/// What to do with a message offered to a [`SeqCursor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Send it now; the cursor counts it as sent.
    Send,
    /// Already sent (e.g. during replay); drop it.
    Skip,
    /// Seqs `from..=to` have not been sent yet: replay them first (from the
    /// ledger, calling [`SeqCursor::advance_to`] after each), then offer the
    /// message again, which then answers [`Offer::Send`] — or send it and
    /// call `advance_to` with its seq. Nothing is counted as sent until then.
    Gap {
        /// First missing seq.
        from: u64,
        /// Last missing seq (the offered seq − 1).
        to: u64,
    },
}

/// The next seq one connection must send, in one origin's sequence space.
///
/// Usage: create it with the first seq the partner wants (`from_seq`, or the
/// current head + 1 for live only). Offer every message — replayed or live —
/// with [`offer`](Self::offer) and follow the answer; or, when replaying in
/// order yourself, send seq [`next`](Self::next) and call
/// [`advance_to`](Self::advance_to). Either way the partner receives each
/// seq from the start on exactly once and in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCursor {
    next: u64,
    /// The seq whose offer last answered `Gap`, until it counts as sent.
    pending: Option<u64>,
}

impl SeqCursor {
    /// A cursor whose next seq to send is `next` (0 counts as 1; seqs start at 1).
    pub fn new(next: u64) -> Self {
        Self {
            next: next.max(1),
            pending: None,
        }
    }

    /// Decides for an incoming message with `seq`: [`Offer::Send`] (counted
    /// as sent), [`Offer::Skip`] (already sent), or [`Offer::Gap`] (replay
    /// the missing range first; nothing changes).
    ///
    /// Guard: if a `Gap` was answered for seq `s`, the range before it was
    /// then replayed, and a seq above `s` is offered without `s` having been
    /// offered again or passed to `advance_to`, `s` is taken as sent (the
    /// caller sent it after the replay, as the `Gap` instructions say).
    pub fn offer(&mut self, seq: u64) -> Offer {
        if let Some(pending) = self.pending {
            if self.next == pending && seq > pending {
                self.next = pending.saturating_add(1);
            }
        }
        self.settle();
        if seq < self.next {
            Offer::Skip
        } else if seq == self.next {
            self.next = seq.saturating_add(1);
            self.settle();
            Offer::Send
        } else {
            self.pending = Some(seq);
            Offer::Gap {
                from: self.next,
                to: seq - 1,
            }
        }
    }

    /// The next seq this connection must send (also the `resume_from_seq`
    /// for a partner being disconnected).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Counts `sent_seq` (and everything before it) as sent, after the caller
    /// sent it outside [`offer`](Self::offer), e.g. while replaying. Never
    /// moves backwards.
    pub fn advance_to(&mut self, sent_seq: u64) {
        if sent_seq >= self.next {
            self.next = sent_seq.saturating_add(1);
        }
        self.settle();
    }

    fn settle(&mut self) {
        if self.pending.is_some_and(|p| self.next > p) {
            self.pending = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_live() {
        let mut c = SeqCursor::new(1);
        assert_eq!(c.offer(1), Offer::Send);
        assert_eq!(c.offer(2), Offer::Send);
        assert_eq!(c.offer(2), Offer::Skip);
        assert_eq!(c.offer(1), Offer::Skip);
        assert_eq!(c.next(), 3);
    }

    #[test]
    fn zero_means_one() {
        assert_eq!(SeqCursor::new(0).next(), 1);
    }

    #[test]
    fn replay_then_live_overlap() {
        // Partner asks from 5; live subscription already delivers 8, 9, ...
        let mut c = SeqCursor::new(5);
        for k in 5..=9 {
            assert_eq!(c.next(), k);
            c.advance_to(k); // replayed from the ledger
        }
        assert_eq!(c.offer(8), Offer::Skip);
        assert_eq!(c.offer(9), Offer::Skip);
        assert_eq!(c.offer(10), Offer::Send);
        assert_eq!(c.next(), 11);
    }

    #[test]
    fn gap_then_reoffer() {
        let mut c = SeqCursor::new(3);
        assert_eq!(c.offer(7), Offer::Gap { from: 3, to: 6 });
        assert_eq!(c.next(), 3, "a gap changes nothing");
        assert_eq!(c.offer(7), Offer::Gap { from: 3, to: 6 });
        for k in 3..=6 {
            c.advance_to(k);
        }
        assert_eq!(c.offer(7), Offer::Send);
        assert_eq!(c.offer(8), Offer::Send);
    }

    #[test]
    fn gap_then_advance_past_live() {
        let mut c = SeqCursor::new(1);
        assert_eq!(c.offer(4), Offer::Gap { from: 1, to: 3 });
        for k in 1..=4 {
            c.advance_to(k);
        }
        assert_eq!(c.offer(4), Offer::Skip);
        assert_eq!(c.offer(5), Offer::Send);
    }

    #[test]
    fn gap_then_silent_send_is_guarded() {
        let mut c = SeqCursor::new(1);
        assert_eq!(c.offer(3), Offer::Gap { from: 1, to: 2 });
        c.advance_to(1);
        c.advance_to(2);
        // The caller sent 3 without telling the cursor; 4 arrives.
        assert_eq!(c.offer(4), Offer::Send);
        assert_eq!(c.next(), 5);
    }

    #[test]
    fn incomplete_replay_widens_the_gap() {
        let mut c = SeqCursor::new(1);
        assert_eq!(c.offer(3), Offer::Gap { from: 1, to: 2 });
        c.advance_to(1);
        assert_eq!(c.offer(4), Offer::Gap { from: 2, to: 3 });
        c.advance_to(2);
        c.advance_to(3);
        assert_eq!(c.offer(4), Offer::Send);
    }

    #[test]
    fn advance_never_moves_back() {
        let mut c = SeqCursor::new(10);
        c.advance_to(3);
        assert_eq!(c.next(), 10);
        c.advance_to(10);
        assert_eq!(c.next(), 11);
    }

    #[test]
    fn top_of_range_does_not_overflow() {
        let mut c = SeqCursor::new(u64::MAX);
        assert_eq!(c.offer(u64::MAX), Offer::Send);
        assert_eq!(c.next(), u64::MAX);
        c.advance_to(u64::MAX);
        let mut c = SeqCursor::new(1);
        assert_eq!(
            c.offer(u64::MAX),
            Offer::Gap {
                from: 1,
                to: u64::MAX - 1
            }
        );
    }
}
