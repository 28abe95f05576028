//! An export read as pieces of whole lines, so that `warden audit verify` checks the first
//! pieces while it still reads the rest, and holds a few pieces in memory rather than the
//! whole file (an export is about 2.4 KB a record: a gigabyte for 400 000 records).

use std::io::Read;
use std::sync::{Arc, Mutex};

/// Pieces of `bytes` or a little more (up to the end of the line that crosses it), each
/// of whole lines, the last one possibly without its newline. Bytes are not checked for
/// UTF-8 here: each piece is by whoever checks it, in parallel.
pub(crate) struct Pieces<R> {
    input: R,
    bytes: usize,
    /// The start of the line the last piece cut.
    carry: Vec<u8>,
    eof: bool,
    spare: Spare,
}

/// Buffers of pieces already checked, handed back to be read into again: a fresh buffer
/// costs a page fault every 4 KiB (a third of the time spent reading).
#[derive(Clone, Default)]
pub(crate) struct Spare(Arc<Mutex<Vec<Vec<u8>>>>);

impl Spare {
    pub(crate) fn give(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        if let Ok(mut spare) = self.0.lock() {
            // As many as pieces are checked at once, and a few more.
            if spare.len() < 16 {
                spare.push(buffer);
            }
        }
    }

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default()
    }
}

impl<R: Read> Pieces<R> {
    pub(crate) fn new(input: R, bytes: usize) -> Pieces<R> {
        Pieces {
            input,
            bytes: bytes.max(1),
            carry: Vec::new(),
            eof: false,
            spare: Spare::default(),
        }
    }

    /// Where to hand back the buffers of pieces once checked.
    pub(crate) fn spare(&self) -> Spare {
        self.spare.clone()
    }
}

impl<R: Read> Iterator for Pieces<R> {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut piece = self.spare.take();
        piece.extend_from_slice(&self.carry);
        self.carry.clear();
        piece.reserve(self.bytes.min(16 << 20));
        // Read to the size, then on until a newline ends the piece (or the input ends).
        let mut searched = 0;
        let end = loop {
            if piece.len() >= self.bytes || self.eof {
                if let Some(at) = memchr::memrchr(b'\n', &piece[searched..]) {
                    break searched + at + 1;
                }
                if self.eof {
                    break piece.len();
                }
                searched = piece.len();
            }
            let want = (self.bytes.saturating_sub(piece.len())).max(64 << 10) as u64;
            // `read_to_end` fills the spare capacity without zeroing it first.
            match (&mut self.input).take(want).read_to_end(&mut piece) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Nothing more is read after an error.
                    self.eof = true;
                    return Some(Err(e));
                }
            }
        };
        if end == 0 {
            return None;
        }
        self.carry.extend_from_slice(&piece[end..]);
        piece.truncate(end);
        Some(Ok(piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives at most `step` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn pieces_are_whole_lines_that_join_to_the_input() {
        let texts = [
            String::new(),
            "a".into(),
            "\n".into(),
            "ab\ncd\n".into(),
            "ab\ncd".into(),
            (0..500)
                .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
                .collect(),
            format!("{}\nshort\n", "y".repeat(10_000)),
        ];
        for text in &texts {
            for bytes in [1, 3, 64, 1000, 1 << 20] {
                for step in [1, 7, 4096] {
                    let pieces: Vec<Vec<u8>> = Pieces::new(Trickle(text.as_bytes(), step), bytes)
                        .collect::<Result<_, _>>()
                        .unwrap();
                    assert_eq!(pieces.concat(), text.as_bytes(), "{bytes} {step}");
                    for (i, p) in pieces.iter().enumerate() {
                        assert!(!p.is_empty());
                        // Every piece but the last ends a line, and none holds a line cut.
                        if i + 1 < pieces.len() {
                            assert_eq!(p.last(), Some(&b'\n'));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_read_error_ends_the_pieces_with_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk gone"));
                }
                self.0 -= 1;
                buf[..2].copy_from_slice(b"a\n");
                Ok(2)
            }
        }
        let got: Vec<_> = Pieces::new(Failing(3), 4).collect();
        assert!(
            got.iter()
                .any(|p| p.as_ref().is_err_and(|e| e.to_string() == "disk gone"))
        );
        assert!(got.last().is_some_and(|p| p.is_err()));
    }
}
