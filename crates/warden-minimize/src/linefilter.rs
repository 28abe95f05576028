//! Which lines contain a rule keyword at all: a small Aho-Corasick DFA (case-insensitive, every
//! occurrence) run over four parts of a block at once.
//!
//! The keyword automaton that reports matches (`aho-corasick`, leftmost-longest) spends its time
//! waiting on one table load per byte: each transition needs the previous state. On clean logs
//! only a few lines hold a keyword, so this filter answers the cheaper question "does this line
//! hold one?" with four independent state chains interleaved (four times the loads in flight),
//! stops at the first hit in a line and jumps to the next line; the full automaton then runs
//! only on the lines it names. Keywords never contain a newline (else there is no filter and the
//! full automaton runs on every byte), so a keyword lies inside one line and the matches found
//! line by line are exactly those found over the whole block.
//!
//! Match states are absorbing (every byte leads from a match state to itself), so a scan may
//! step through eight bytes and test once: a state at or past the first match state after the
//! eight means a keyword ended among them, and only then are those eight stepped again one by
//! one to find where. That halves the instructions per byte on the common, keyword-free bytes.
//!
//! Invariant: a line is reported if and only if it contains an occurrence of a keyword, ASCII
//! case ignored (the same folding as the automaton it stands in front of). Time is linear: every
//! byte is read at most once by the automaton, plus one `memchr` to the end of each reported line.

/// Transition table size: states are premultiplied `u16` row offsets, so the whole table is
/// indexed by a masked `u16` (no bounds checks in the hot loop).
const TABLE: usize = 1 << 16;

/// Below this many bytes a block is scanned as one stream (splitting costs more than it saves).
const SPLIT_MIN: usize = 4096;

pub(crate) struct LineFilter {
    /// Byte to class; class 0 is every byte no keyword contains.
    class: [u8; 256],
    /// `trans[state + class]` is the next state (premultiplied).
    trans: Box<[u16; TABLE]>,
    /// States at or above this one have just seen the end of a keyword.
    first_match: u16,
}

impl std::fmt::Debug for LineFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineFilter")
            .field("first_match", &self.first_match)
            .finish_non_exhaustive()
    }
}

/// One of the interleaved scans: next byte, end of its part, current state.
#[derive(Clone, Copy)]
struct Stream {
    at: usize,
    end: usize,
    state: u16,
}

impl LineFilter {
    /// The filter for `words` (lower case, as the keyword automaton is built), or `None` when
    /// one contains a newline or the automaton would not fit the table; callers then scan every
    /// byte with the full automaton.
    pub(crate) fn new(words: &[String]) -> Option<LineFilter> {
        if words.is_empty() || words.iter().any(|w| w.is_empty() || w.contains('\n')) {
            return None;
        }
        let mut class = [0u8; 256];
        let mut classes = 1usize;
        for w in words {
            for b in w.bytes() {
                let b = b.to_ascii_lowercase();
                if class[usize::from(b)] == 0 {
                    let c = u8::try_from(classes).ok()?;
                    class[usize::from(b)] = c;
                    class[usize::from(b.to_ascii_uppercase())] = c;
                    classes += 1;
                }
            }
        }
        // The trie, then the DFA by breadth-first failure links.
        const NONE: usize = usize::MAX;
        let mut goto: Vec<usize> = vec![NONE; classes];
        let mut is_match = vec![false];
        for w in words {
            let mut s = 0;
            for b in w.bytes() {
                let c = usize::from(class[usize::from(b.to_ascii_lowercase())]);
                if goto[s * classes + c] == NONE {
                    goto[s * classes + c] = is_match.len();
                    is_match.push(false);
                    goto.extend(std::iter::repeat_n(NONE, classes));
                }
                s = goto[s * classes + c];
            }
            is_match[s] = true;
        }
        let states = is_match.len();
        if states.checked_mul(classes)? > TABLE {
            return None;
        }
        let mut delta = vec![0usize; states * classes];
        let mut fail = vec![0usize; states];
        let mut depth = vec![0usize; states];
        let mut queue = std::collections::VecDeque::new();
        for c in 0..classes {
            let t = goto[c];
            if t == NONE {
                delta[c] = 0;
            } else {
                delta[c] = t;
                fail[t] = 0;
                depth[t] = 1;
                queue.push_back(t);
            }
        }
        while let Some(s) = queue.pop_front() {
            is_match[s] |= is_match[fail[s]];
            for c in 0..classes {
                let t = goto[s * classes + c];
                let via_fail = delta[fail[s] * classes + c];
                if t == NONE {
                    delta[s * classes + c] = via_fail;
                } else {
                    delta[s * classes + c] = t;
                    fail[t] = via_fail;
                    depth[t] = depth[s] + 1;
                    queue.push_back(t);
                }
            }
        }
        // Number states so that match states come last; ids are row offsets. Shallow states
        // first: on text the scan stays near the root, so the rows it reads most are adjacent
        // and stay in L1 even when the whole table (states x classes) does not.
        let mut order: Vec<usize> = (0..states).collect();
        order.sort_by_key(|&s| (is_match[s], depth[s], s));
        let mut id = vec![0u16; states];
        for (rank, &s) in order.iter().enumerate() {
            id[s] = u16::try_from(rank * classes).ok()?;
        }
        let first_match = order
            .iter()
            .position(|&s| is_match[s])
            .map_or(Some(u16::MAX), |r| u16::try_from(r * classes).ok())?;
        let mut trans: Box<[u16; TABLE]> = vec![0u16; TABLE].into_boxed_slice().try_into().ok()?;
        for s in 0..states {
            for c in 0..classes {
                // Absorbing match states: see the module docs.
                let to = if is_match[s] {
                    s
                } else {
                    delta[s * classes + c]
                };
                trans[usize::from(id[s]) + c] = id[to];
            }
        }
        Some(LineFilter {
            class,
            trans,
            first_match,
        })
    }

    fn step(&self, state: u16, byte: u8) -> u16 {
        self.trans[(usize::from(state) + usize::from(self.class[usize::from(byte)])) & (TABLE - 1)]
    }

    /// Appends `(start, end)` (end at the newline or `to`) of every line of `text[from..to]`
    /// that contains a keyword, in order. `from` must be a line start.
    pub(crate) fn lines(&self, text: &[u8], from: usize, to: usize, out: &mut Vec<(usize, usize)>) {
        let first = out.len();
        let len = to - from;
        let mut streams = [Stream {
            at: to,
            end: to,
            state: 0,
        }; 4];
        streams[0].at = from;
        if len >= SPLIT_MIN {
            // Four parts, each starting at a line start.
            let mut start = from;
            for (k, s) in streams.iter_mut().enumerate() {
                s.at = start;
                s.end = if k == 3 {
                    to
                } else {
                    let aim = (from + len * (k + 1) / 4).max(start);
                    memchr::memchr(b'\n', &text[aim..to]).map_or(to, |i| aim + i + 1)
                };
                start = s.end;
            }
            self.interleaved(text, &mut streams, out);
        }
        for s in &mut streams {
            self.single(text, s, out);
        }
        // Each part reports in order; the parts follow each other.
        out[first..].sort_unstable();
    }

    /// Runs all four streams together until one reaches its end.
    fn interleaved(&self, text: &[u8], st: &mut [Stream; 4], out: &mut Vec<(usize, usize)>) {
        let m = self.first_match;
        loop {
            let n = st.iter().map(|s| s.end - s.at).min().unwrap_or(0);
            if n == 0 {
                return;
            }
            let (a, b, c, d) = (
                &text[st[0].at..st[0].at + n],
                &text[st[1].at..st[1].at + n],
                &text[st[2].at..st[2].at + n],
                &text[st[3].at..st[3].at + n],
            );
            let (mut s0, mut s1, mut s2, mut s3) =
                (st[0].state, st[1].state, st[2].state, st[3].state);
            // Eight bytes of each stream at a time, one test after them (match states absorb).
            let mut j = 0;
            while let (Some(wa), Some(wb), Some(wc), Some(wd)) = (
                a[j..].first_chunk::<8>(),
                b[j..].first_chunk::<8>(),
                c[j..].first_chunk::<8>(),
                d[j..].first_chunk::<8>(),
            ) {
                let (mut t0, mut t1, mut t2, mut t3) = (s0, s1, s2, s3);
                for k in 0..8 {
                    t0 = self.step(t0, wa[k]);
                    t1 = self.step(t1, wb[k]);
                    t2 = self.step(t2, wc[k]);
                    t3 = self.step(t3, wd[k]);
                }
                if (t0 >= m) | (t1 >= m) | (t2 >= m) | (t3 >= m) {
                    break;
                }
                (s0, s1, s2, s3) = (t0, t1, t2, t3);
                j += 8;
            }
            // Byte by byte from there, to the first match (at most eight bytes on) or the end.
            let mut used = n;
            while j < n {
                s0 = self.step(s0, a[j]);
                s1 = self.step(s1, b[j]);
                s2 = self.step(s2, c[j]);
                s3 = self.step(s3, d[j]);
                j += 1;
                if (s0 >= m) | (s1 >= m) | (s2 >= m) | (s3 >= m) {
                    used = j;
                    break;
                }
            }
            for (s, state) in st.iter_mut().zip([s0, s1, s2, s3]) {
                s.at += used;
                s.state = state;
                if state >= m {
                    hit(text, s, out);
                }
            }
        }
    }

    /// Runs one stream to its end.
    fn single(&self, text: &[u8], s: &mut Stream, out: &mut Vec<(usize, usize)>) {
        let m = self.first_match;
        while s.at < s.end {
            let bytes = &text[s.at..s.end];
            let mut state = s.state;
            // Eight bytes at a time, one test after them (match states absorb).
            let (chunks, _) = bytes.as_chunks::<8>();
            let mut j = 0;
            for chunk in chunks {
                let mut t = state;
                for &b in chunk {
                    t = self.step(t, b);
                }
                if t >= m {
                    break;
                }
                state = t;
                j += 8;
            }
            // Byte by byte from there, to the first match (at most eight bytes on) or the end.
            let mut used = bytes.len();
            for (k, &b) in bytes[j..].iter().enumerate() {
                state = self.step(state, b);
                if state >= m {
                    used = j + k + 1;
                    break;
                }
            }
            s.at += used;
            s.state = state;
            if state >= m {
                hit(text, s, out);
            }
        }
    }
}

/// A keyword ended at `s.at - 1`: reports its line and moves the stream to the next line.
fn hit(text: &[u8], s: &mut Stream, out: &mut Vec<(usize, usize)>) {
    let at = s.at - 1;
    let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &text[at..s.end]).map_or(s.end, |i| at + i);
    out.push((start, end));
    s.at = (end + 1).min(s.end);
    s.state = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(words: &[&str], text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for line in text.split('\n') {
            let l = line.to_ascii_lowercase();
            if words.iter().any(|w| l.contains(w)) {
                out.push((start, start + line.len()));
            }
            start += line.len() + 1;
        }
        out
    }

    #[test]
    fn reports_exactly_the_lines_with_a_keyword() {
        let words = ["pass", "password", "sk-", "://", "key", "secretoken", "e"];
        let filter = LineFilter::new(&words.map(String::from)).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"pasSwordk-:/ekyPASSWORDSECRETOKEN\nx";
        for len in [0, 1, 5, 100, 4095, 4096, 5000, 20000] {
            for round in 0..20 {
                let text: String = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let pick = if round % 2 == 0 { alphabet.len() } else { 10 };
                        char::from(alphabet[(rng % pick as u64) as usize])
                    })
                    .collect();
                let text = if round % 3 == 0 {
                    text.replace('e', "\n")
                } else {
                    text
                };
                let mut got = Vec::new();
                filter.lines(text.as_bytes(), 0, text.len(), &mut got);
                assert_eq!(got, naive(&words, &text), "len {len} round {round}");
            }
        }
    }

    #[test]
    fn no_filter_for_newline_keywords() {
        assert!(LineFilter::new(&["a\nb".to_owned()]).is_none());
        assert!(LineFilter::new(&[]).is_none());
    }
}
