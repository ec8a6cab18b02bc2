//! Window assignment for Flink's window TVFs, in epoch milliseconds. Shared by the planner (schema,
//! validation), the runtime operators and the reference implementation in the tests.
//!
//! Windows are cut into *panes* (Flink's slices): TUMBLE's pane is the window, HOP's is
//! `gcd(size, slide)`, CUMULATE's is the step. An event is added to exactly one pane; a window's result
//! is its panes combined, so HOP costs one update per event, not `size / slide`.

/// A window TVF: `TUMBLE`, `HOP`, `CUMULATE` or `SESSION`, sizes in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    Tumble { size: i64 },
    Hop { slide: i64, size: i64 },
    Cumulate { step: i64, size: i64 },
    Session { gap: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// Flink's `offset` argument: shifts window starts (TUMBLE, HOP, CUMULATE).
    pub offset: i64,
}

fn floor_to(ts: i64, unit: i64, offset: i64) -> i64 {
    ts - (ts - offset).rem_euclid(unit)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WindowSpec {
    /// Checks sizes as Flink does; the message names the argument.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: i64| {
            if v > 0 {
                Ok(())
            } else {
                Err(format!("window {name} must be a positive interval, got {v} ms"))
            }
        };
        match self.kind {
            WindowKind::Tumble { size } => positive("size", size),
            WindowKind::Hop { slide, size } => {
                positive("slide", slide)?;
                positive("size", size)
            }
            WindowKind::Cumulate { step, size } => {
                positive("step", step)?;
                positive("size", size)?;
                if size % step != 0 {
                    return Err(format!(
                        "CUMULATE window size ({size} ms) must be an integral multiple of the step ({step} ms)"
                    ));
                }
                Ok(())
            }
            WindowKind::Session { gap } => positive("gap", gap),
        }
    }

    /// Pane length (not used for sessions).
    pub fn pane(&self) -> i64 {
        match self.kind {
            WindowKind::Tumble { size } => size,
            WindowKind::Hop { slide, size } => gcd(size, slide),
            WindowKind::Cumulate { step, .. } => step,
            WindowKind::Session { gap } => gap,
        }
    }

    /// End (exclusive) of the pane holding `ts`.
    pub fn pane_end(&self, ts: i64) -> i64 {
        let pane = self.pane();
        floor_to(ts, pane, self.offset) + pane
    }

    /// Every window `[start, end)` that contains `ts`, in increasing end order (standalone TVF use).
    pub fn windows_of(&self, ts: i64) -> Vec<(i64, i64)> {
        match self.kind {
            WindowKind::Tumble { size } => {
                let start = floor_to(ts, size, self.offset);
                vec![(start, start + size)]
            }
            WindowKind::Hop { slide, size } => {
                let last = floor_to(ts, slide, self.offset);
                let mut out = Vec::new();
                let mut start = last;
                while start > ts - size {
                    out.push((start, start + size));
                    start -= slide;
                }
                out.reverse();
                out
            }
            WindowKind::Cumulate { step, size } => {
                let start = floor_to(ts, size, self.offset);
                let first_end = floor_to(ts, step, self.offset) + step;
                (0..)
                    .map(|k| first_end + k * step)
                    .take_while(|&end| end <= start + size)
                    .map(|end| (start, end))
                    .collect()
            }
            WindowKind::Session { gap } => vec![(ts, ts + gap)],
        }
    }

    /// Ends of the windows that contain the pane ending at `pane_end`, increasing.
    pub fn window_ends_of_pane(&self, pane_end: i64) -> Vec<i64> {
        let ts = pane_end - 1;
        self.windows_of(ts).into_iter().map(|(_, end)| end).collect()
    }

    /// Start of the window that ends at `end` (a window end produced by this spec).
    pub fn window_start(&self, end: i64) -> i64 {
        match self.kind {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => end - size,
            WindowKind::Cumulate { size, .. } => floor_to(end - 1, size, self.offset),
            WindowKind::Session { gap } => end - gap,
        }
    }

    /// True when the pane ending at `pane_end` belongs to the window `[start, end)`.
    pub fn pane_in_window(&self, pane_end: i64, start: i64, end: i64) -> bool {
        pane_end > start && pane_end <= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn tumble_hop_cumulate_assign_like_flink() {
        let t = WindowSpec { kind: WindowKind::Tumble { size: 10 * MIN }, offset: 0 };
        assert_eq!(t.windows_of(12 * MIN), vec![(10 * MIN, 20 * MIN)]);
        assert_eq!(t.windows_of(-1), vec![(-10 * MIN, 0)]);
        let h = WindowSpec { kind: WindowKind::Hop { slide: 5 * MIN, size: 10 * MIN }, offset: 0 };
        assert_eq!(h.windows_of(12 * MIN), vec![(5 * MIN, 15 * MIN), (10 * MIN, 20 * MIN)]);
        assert_eq!(h.pane(), 5 * MIN);
        let odd = WindowSpec { kind: WindowKind::Hop { slide: 4 * MIN, size: 10 * MIN }, offset: 0 };
        assert_eq!(odd.pane(), 2 * MIN);
        assert_eq!(odd.windows_of(9 * MIN).len(), 3);
        let c = WindowSpec { kind: WindowKind::Cumulate { step: 2 * MIN, size: 6 * MIN }, offset: 0 };
        assert_eq!(c.windows_of(7 * MIN), vec![(6 * MIN, 8 * MIN), (6 * MIN, 10 * MIN), (6 * MIN, 12 * MIN)]);
        assert_eq!(c.window_start(10 * MIN), 6 * MIN);
        // Every window of an event contains the event's pane.
        for spec in [t, h, odd, c] {
            for ts in [-7 * MIN - 3, 0, 1, 9 * MIN + 59_999, 33 * MIN] {
                let pane_end = spec.pane_end(ts);
                for (s, e) in spec.windows_of(ts) {
                    assert!(s <= ts && ts < e);
                    assert!(spec.pane_in_window(pane_end, s, e));
                    assert_eq!(spec.window_start(e), s);
                }
                assert_eq!(
                    spec.window_ends_of_pane(pane_end),
                    spec.windows_of(ts).iter().map(|w| w.1).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn offsets_shift_windows() {
        let t = WindowSpec { kind: WindowKind::Tumble { size: 10 * MIN }, offset: MIN };
        assert_eq!(t.windows_of(12 * MIN), vec![(11 * MIN, 21 * MIN)]);
        assert!(WindowSpec { kind: WindowKind::Cumulate { step: 3, size: 10 }, offset: 0 }.validate().is_err());
    }
}
