//! Property: whatever the interleaving of a live stream (possibly lagging and
//! dropping messages) and a replay from the ledger, a caller that follows the
//! `Offer` instructions sends exactly `from_seq..=N`, each once, in order.

use proptest::prelude::*;
use qunimbus_market::{Offer, SeqCursor};

/// How the caller finishes a `Gap` for the live message that caused it.
#[derive(Debug, Clone, Copy)]
enum GapStyle {
    /// Offer the live message again after the replay.
    Reoffer,
    /// Send it and call `advance_to` with its seq.
    SendAndAdvance,
}

/// How the caller handles one replayed message.
#[derive(Debug, Clone, Copy)]
enum ReplayStyle {
    Offer,
    NextAndAdvance,
}

#[derive(Debug, Clone)]
struct Scenario {
    start: u64,
    head: u64,
    live: Vec<u64>,
    replay: Vec<u64>,
    /// true: take the next live message; false: the next replayed one.
    order: Vec<bool>,
    gap_styles: Vec<GapStyle>,
    replay_styles: Vec<ReplayStyle>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1u64..20, 0u64..60)
        .prop_flat_map(|(start, extra)| {
            let head = start + extra;
            (
                Just(start),
                Just(head),
                1..=head,                                            // first live seq
                (start - 1)..=head,                                  // last replayed seq
                prop::collection::vec(any::<bool>(), head as usize), // live drops
                prop::collection::vec(any::<bool>(), 0..256),
                prop::collection::vec(
                    prop_oneof![Just(GapStyle::Reoffer), Just(GapStyle::SendAndAdvance)],
                    64,
                ),
                prop::collection::vec(
                    prop_oneof![Just(ReplayStyle::Offer), Just(ReplayStyle::NextAndAdvance)],
                    64,
                ),
            )
        })
        .prop_map(
            |(start, head, live_from, replay_to, keep, order, gap_styles, replay_styles)| {
                // The live stream always ends with the head; earlier live
                // messages may be lost (a lagging broadcast).
                let live = (live_from..=head)
                    .filter(|&s| s == head || keep[(s - 1) as usize])
                    .collect();
                let replay = (start..=replay_to).collect();
                Scenario {
                    start,
                    head,
                    live,
                    replay,
                    order,
                    gap_styles,
                    replay_styles,
                }
            },
        )
}

struct Caller {
    cursor: SeqCursor,
    sent: Vec<u64>,
    start: u64,
    head: u64,
    gaps: usize,
}

impl Caller {
    /// Sends a message and checks the cursor agrees everything before it was sent.
    fn send(&mut self, seq: u64) {
        self.sent.push(seq);
    }

    /// Replays `from..=to` from the "ledger".
    fn replay_range(&mut self, from: u64, to: u64) {
        assert!(
            from >= self.start && to <= self.head && from <= to,
            "{from}..={to}"
        );
        for k in from..=to {
            self.send(k);
            self.cursor.advance_to(k);
        }
    }

    fn live(&mut self, seq: u64, style: GapStyle) {
        match self.cursor.offer(seq) {
            Offer::Send => self.send(seq),
            Offer::Skip => {}
            Offer::Gap { from, to } => {
                assert_eq!(to, seq - 1);
                self.gaps += 1;
                self.replay_range(from, to);
                match style {
                    GapStyle::Reoffer => {
                        assert_eq!(self.cursor.offer(seq), Offer::Send);
                        self.send(seq);
                    }
                    GapStyle::SendAndAdvance => {
                        self.send(seq);
                        self.cursor.advance_to(seq);
                    }
                }
            }
        }
    }

    fn replayed(&mut self, seq: u64, style: ReplayStyle, gap: GapStyle) {
        match style {
            ReplayStyle::Offer => self.live(seq, gap),
            ReplayStyle::NextAndAdvance => {
                if seq == self.cursor.next() {
                    self.send(seq);
                    self.cursor.advance_to(seq);
                } else {
                    assert!(seq < self.cursor.next(), "replay is in order");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn replay_and_live_send_each_seq_once(s in scenario()) {
        let mut caller = Caller {
            cursor: SeqCursor::new(s.start),
            sent: Vec::new(),
            start: s.start,
            head: s.head,
            gaps: 0,
        };
        let (mut li, mut ri, mut step) = (0usize, 0usize, 0usize);
        while li < s.live.len() || ri < s.replay.len() {
            let take_live = match (li < s.live.len(), ri < s.replay.len()) {
                (true, true) => s.order.get(step).copied().unwrap_or(true),
                (live, _) => live,
            };
            let gap = s.gap_styles[step % s.gap_styles.len()];
            if take_live {
                caller.live(s.live[li], gap);
                li += 1;
            } else {
                let style = s.replay_styles[step % s.replay_styles.len()];
                caller.replayed(s.replay[ri], style, gap);
                ri += 1;
            }
            step += 1;
            // At every step, what was sent is exactly start..next.
            let expected: Vec<u64> = (s.start..caller.cursor.next()).collect();
            prop_assert_eq!(&caller.sent, &expected);
        }
        let expected: Vec<u64> = (s.start..=s.head).collect();
        prop_assert_eq!(&caller.sent, &expected);
        prop_assert_eq!(caller.cursor.next(), s.head + 1);
    }
}

#[test]
fn live_only_from_head() {
    let mut c = SeqCursor::new(11);
    let mut sent = Vec::new();
    for s in 11..=20 {
        if c.offer(s) == Offer::Send {
            sent.push(s);
        }
    }
    assert_eq!(sent, (11..=20).collect::<Vec<_>>());
}
