//! The scanners as they were before they were tuned for instruction count (branch t-scan), kept
//! as the reference the tuned ones must agree with candidate for candidate: the tuned code reads
//! bytes through a class table, skips anchors inside a run it has read and counts as it walks,
//! any of which could change a candidate list in a corner case that a hand-written test misses.
//! The card and email scanners were not changed, so only the IP scanners are kept here.

use super::Scanner;

/// Calls `emit(start, end)` for every candidate of `scanner` in `text`, in order.
pub(super) fn candidates(scanner: Scanner, text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    match scanner {
        Scanner::Ipv4 => ipv4(text, emit),
        Scanner::Ipv6 => ipv6(text, emit),
        // Not tuned: the reference is the scanner itself.
        Scanner::CreditCard => super::credit_card(text, emit),
        Scanner::Email => super::email(text, emit),
    }
}

fn ipv4(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    let mut next = 0;
    for dot in memchr::memchr_iter(b'.', text) {
        if dot < next || dot == 0 || !text[dot - 1].is_ascii_digit() {
            continue;
        }
        let mut s = dot;
        while s > 0 && dot - s < 3 && text[s - 1].is_ascii_digit() {
            s -= 1;
        }
        let mut i = s;
        let mut ok = true;
        for octet in 0..4 {
            let d0 = i;
            while i < text.len() && i - d0 < 3 && text[i].is_ascii_digit() {
                i += 1;
            }
            if i == d0 {
                ok = false;
                break;
            }
            if octet < 3 {
                if text.get(i) != Some(&b'.') {
                    ok = false;
                    break;
                }
                i += 1;
            }
        }
        if ok {
            emit(s, i);
            next = i;
        }
    }
}

fn is_hex_or_colon(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

fn ipv6(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    let mut next = 0;
    for colon in memchr::memchr_iter(b':', text) {
        if colon < next {
            continue;
        }
        let mut s = colon;
        while s > 0 && colon - s < 40 && is_hex_or_colon(text[s - 1]) {
            s -= 1;
        }
        let mut e = colon + 1;
        while e < text.len() && e - s <= 40 && is_hex_or_colon(text[e]) {
            e += 1;
        }
        next = e;
        // A single trailing colon belongs to the prose (`from fe80::1: ...`), not the address.
        if e - s >= 2 && text[e - 1] == b':' && text[e - 2] != b':' {
            e -= 1;
        }
        let run = &text[s..e];
        // Eight groups, or fewer with `::`; `hh:mm:ss` timestamps are neither.
        let colons = run.iter().filter(|&&b| b == b':').count();
        if run.len() >= 3
            && run.len() <= 39
            && (colons == 7 || (colons >= 2 && run.windows(2).any(|w| w == b"::")))
        {
            emit(s, e);
        }
    }
}
