//! The tuned checks against the reference ones (`reference.rs`, the code before tuning): the
//! same answer for every check on random spans of random and adversarial texts.

use super::{passes, reference};
use crate::rules::Check;
use crate::test_rng::Rng;

const CHECKS: [Check; 5] = [
    Check::None,
    Check::Luhn,
    Check::Ipv4,
    Check::PublicIpv4,
    Check::Ipv6,
];

/// Pieces a text is built from: digits and runs of them, dots, separators, addresses, cards.
const PIECES: &[&[u8]] = &[
    b"0",
    b"1",
    b"4",
    b"9",
    b"00",
    b"01",
    b"10",
    b"127",
    b"172",
    b"192",
    b"168",
    b"255",
    b"256",
    b"999",
    b"1000",
    b"4111",
    b"5500",
    b"3782",
    b"6011",
    b"1111",
    b"0005",
    b"123456",
    b"1234567",
    b".",
    b"..",
    b" ",
    b"-",
    b"--",
    b"_",
    b"x",
    b"v",
    b":",
    b"::",
    b"a",
    b"f",
    b"10.0.0.1",
    b"172.16.5.4",
    b"172.32.0.1",
    b"192.168.1.1",
    b"8.8.8.8",
    b"0.0.0.0",
    b"4111 1111 1111 1111",
    b"4111-1111-1111-1111",
    b"4111111111111111",
    b"378282246310005",
    b"2001:db8::1",
    "é".as_bytes(),
    b"\xff",
];

fn assert_agree(text: &[u8], start: usize, end: usize) {
    for check in CHECKS {
        assert_eq!(
            passes(check, text, start, end),
            reference::passes(check, text, start, end),
            "{check:?} on {:?} at {start}..{end}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn tuned_checks_agree_with_the_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..100_000 {
        let mut text = Vec::new();
        for _ in 0..1 + round % 12 {
            text.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        }
        // Whole text, every span a scanner could propose, and spans past the end.
        assert_agree(&text, 0, text.len());
        let start = rng.below(text.len() + 2);
        let end = start + rng.below(text.len() + 3);
        assert_agree(&text, start, end);
        let inner = rng.below(text.len() + 1);
        assert_agree(&text, inner.min(1), inner);
    }
}

#[test]
fn tuned_checks_agree_with_the_reference_on_dense_bytes() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let alphabets: [&[u8]; 4] = [b"0123456789.", b"0123456789 -", b"0123456789 -._x", b"12."];
    for round in 0..100_000 {
        let alphabet = alphabets[round % alphabets.len()];
        let len = round % 30;
        let text: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let start = rng.below(len + 1).min(3);
        let end = len - rng.below(len + 1 - start).min(3);
        assert_agree(&text, start, end);
        assert_agree(&text, 0, len);
    }
}
