//! The tuned scanners against the reference ones (`reference.rs`, the code before tuning): the
//! same candidates, in the same order, for every scanner on random and adversarial texts.

use super::{Scanner, candidates, reference};
use crate::test_rng::Rng;

const SCANNERS: [Scanner; 4] = [
    Scanner::Ipv4,
    Scanner::Ipv6,
    Scanner::CreditCard,
    Scanner::Email,
];

/// Pieces a text is built from: anchor bytes alone and in runs, address-, card- and
/// timestamp-shaped fragments, hex, separators, multi-byte UTF-8 and a byte that is not UTF-8.
const PIECES: &[&[u8]] = &[
    b"0",
    b"1",
    b"7",
    b"9",
    b"12",
    b"255",
    b"256",
    b"300",
    b"0000",
    b"1234",
    b"123456789",
    b".",
    b"..",
    b":",
    b"::",
    b":::",
    b"@",
    b"@@",
    b" ",
    b"-",
    b"--",
    b" - ",
    b"_",
    b"/",
    b",",
    b"a",
    b"f",
    b"F",
    b"g",
    b"x",
    b"Z",
    b"e",
    b"ab",
    b"dead",
    b"beef",
    b"cafe",
    b"ffff",
    b"\n",
    b"\t",
    b"\"",
    b"'",
    b"<",
    b">",
    b"[",
    b"]",
    b"%",
    b"+",
    b"=",
    b"192.168.0.1",
    b"8.8.8.8",
    b"1.2.3.4.5",
    b"v1.2.3.4",
    b"10.0.0",
    b"1.2.3.",
    b"999.1.1.1",
    b"2001:db8::1",
    b"fe80::1:",
    b"::1",
    b"1:2:3:4:5:6:7:8",
    b"a:b:c:d:e:f:0:1",
    b"12:34:56",
    b"2015-07-29 17:41:44,747",
    b"081109 203615 148",
    b"blk_-6952295868487656571",
    b"4111 1111 1111 1111",
    b"4111-1111-1111-1111",
    b"4111111111111111",
    b"378282246310005",
    b"6011 0009 9013 9424",
    b"1234567890123456789012",
    b"12 34 56 78 90 12 34",
    b"user@example.com",
    b"a.b-c@sub.example.org",
    b"x@y",
    b"Class@123",
    b"@example.com",
    b"http://user:pass@host.com",
    b"scheme://u@h.io",
    b"first.last+tag@mail.co.uk",
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    "１２３".as_bytes(),
    b"\xff",
    b"\x80",
];

/// A scanner's entry point: the tuned one or the reference.
type Scan = fn(Scanner, &[u8], &mut dyn FnMut(usize, usize));

fn run(scan: Scan, s: Scanner, t: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    scan(s, t, &mut |a, b| out.push((a, b)));
    out
}

fn assert_agree(text: &[u8]) {
    for s in SCANNERS {
        let (tuned, reference) = (
            run(candidates, s, text),
            run(reference::candidates, s, text),
        );
        if tuned != reference {
            // The first difference and the text around it (a whole log file is too long to show).
            let i = tuned
                .iter()
                .zip(&reference)
                .take_while(|(a, b)| a == b)
                .count();
            let at = tuned.get(i).or(reference.get(i)).map_or(0, |c| c.0);
            let around = &text[at.saturating_sub(80)..(at + 80).min(text.len())];
            panic!(
                "{s:?}: candidate {i} is {:?} tuned, {:?} in the reference, near {:?}",
                tuned.get(i),
                reference.get(i),
                String::from_utf8_lossy(around)
            );
        }
    }
}

/// A run of `len` bytes drawn from `alphabet`.
fn long_run(rng: &mut Rng, alphabet: &[u8], len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len())])
        .collect()
}

#[test]
fn tuned_scanners_agree_with_the_reference_on_random_pieces() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40_000 {
        let pieces = 1 + round % 40;
        let mut text = Vec::new();
        for _ in 0..pieces {
            text.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        }
        assert_agree(&text);
    }
}

#[test]
fn tuned_scanners_agree_with_the_reference_on_random_bytes() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Alphabets that keep anchors and the bytes around them dense.
    let alphabets: [&[u8]; 6] = [
        b"0123456789.",
        b"0123456789abcdefABCDEF:g ",
        b"0123456789 -x",
        b"abc.-_%+@:/ 0",
        b"0123456789.:@- afx\n",
        &[b'1', b'.', b':', b'@', b' ', b'-', 0xc3, 0xa9, 0xff],
    ];
    for round in 0..60_000 {
        let len = round % 120;
        let text = if round % 7 == 6 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            long_run(&mut rng, alphabets[round % alphabets.len()], len)
        };
        assert_agree(&text);
    }
}

#[test]
fn tuned_scanners_agree_with_the_reference_on_long_runs() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let runs: [&[u8]; 8] = [
        b"0123456789",
        b"0123456789abcdef:",
        b":",
        b".",
        b"1.",
        b"1 2-3",
        b"a.b-c_d%e+f@",
        b"0123456789 -",
    ];
    for (k, alphabet) in runs.iter().enumerate() {
        for len in [
            1, 2, 3, 12, 13, 14, 19, 20, 39, 40, 41, 64, 65, 253, 254, 300, 5000,
        ] {
            let body = long_run(&mut rng, alphabet, len);
            for (pre, post) in [
                (&b""[..], &b""[..]),
                (b"x ", b" y"),
                (b"1", b":"),
                (b"@", b"."),
            ] {
                let mut text = pre.to_vec();
                text.extend_from_slice(&body);
                text.extend_from_slice(post);
                assert_agree(&text);
            }
            if k == 0 {
                // Digits with separators every few bytes: card-shaped and not.
                for every in 1..8 {
                    let text: Vec<u8> = body
                        .iter()
                        .enumerate()
                        .map(|(i, &b)| if i % every == every - 1 { b' ' } else { b })
                        .collect();
                    assert_agree(&text);
                }
            }
        }
    }
}

/// Real log and labelled text from `../shared/data`; skipped with a notice when it is absent,
/// except under `CI=true`, where it must be there.
#[test]
fn tuned_scanners_agree_with_the_reference_on_shared_data() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");
    let mut files = vec![format!("{data}/secrets/labelled-dev.jsonl")];
    for name in [
        "Apache",
        "HDFS",
        "Linux",
        "OpenSSH",
        "OpenStack",
        "Spark",
        "Zookeeper",
    ] {
        files.push(format!("{data}/loghub/{name}_2k.log"));
    }
    for path in files {
        let Ok(text) = std::fs::read(&path) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{path} is absent under CI"
            );
            eprintln!("SKIPPED: {path} is absent (shared/data is never copied into the repo)");
            continue;
        };
        assert_agree(&text);
        for line in text.split(|&b| b == b'\n') {
            assert_agree(line);
        }
    }
}
