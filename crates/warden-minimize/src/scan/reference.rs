//! The scanners as they were before they were tuned for instruction count (branch t-scan), kept
//! as the reference the tuned ones must agree with candidate for candidate: the tuned code reads
//! bytes through a class table, skips anchors inside a run it has read and counts as it walks,
//! any of which could change a candidate list in a corner case that a hand-written test misses.

use super::Scanner;

/// Calls `emit(start, end)` for every candidate of `scanner` in `text`, in order.
pub(super) fn candidates(scanner: Scanner, text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    match scanner {
        Scanner::Ipv4 => ipv4(text, emit),
        Scanner::Ipv6 => ipv6(text, emit),
        Scanner::CreditCard => credit_card(text, emit),
        Scanner::Email => email(text, emit),
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

/// Calls `found(a, b)` for every maximal run `text[a..b]` of bytes where `member` holds that is
/// at least `min` bytes long, in order. Probes every `min`-th byte (a long run must cover one)
/// and looks around a probe only when it is a member, so text with short runs is skipped
/// `min` bytes at a time; every byte is read at most twice.
fn for_runs(
    text: &[u8],
    min: usize,
    member: &dyn Fn(usize) -> bool,
    found: &mut dyn FnMut(usize, usize),
) {
    let n = text.len();
    // No long run starts before `lo`, and `text[lo - 1]` is not a member.
    let mut lo = 0;
    while lo + min <= n {
        let p = lo + min - 1;
        if !member(p) {
            lo = p + 1;
            continue;
        }
        let mut a = p;
        while a > lo && member(a - 1) {
            a -= 1;
        }
        let mut b = p + 1;
        while b < n && member(b) {
            b += 1;
        }
        if b - a >= min {
            found(a, b);
        }
        lo = b + 1;
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

/// Fewest digits in a card number.
const CARD_MIN: usize = 13;

fn credit_card(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    // Every byte of a card is a digit or a single separator between two digits, and a card has
    // 13+ digits: only runs of 13+ such bytes are walked (logs are full of short numbers).
    let digit = |i: usize| text.get(i).is_some_and(u8::is_ascii_digit);
    let member = |i: usize| {
        digit(i) || (matches!(text[i], b' ' | b'-') && i > 0 && digit(i - 1) && digit(i + 1))
    };
    for_runs(text, CARD_MIN, &member, &mut |a, b| {
        credit_card_in(text, a, b, emit)
    });
}

/// Card candidates in `text[from..to]`, a maximal run of digits and separators between digits.
fn credit_card_in(text: &[u8], from: usize, to: usize, emit: &mut dyn FnMut(usize, usize)) {
    let n = to;
    let mut i = from;
    while i < n {
        // Jump to the next digit eight bytes at a time.
        if let Some(chunk) = text.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let mask = digit_mask(u64::from_le_bytes(w));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        } else if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        let mut end = i;
        let mut last_group = 0;
        while i < n {
            // Whole groups of digits, up to eight at a time.
            let group = digit_run(text, i);
            if group > 0 {
                last_group = group;
                digits += group;
                i += group;
                end = i;
                // A card has at most 19 digits and groups of at least 3 between separators:
                // stop walking a timestamp or a long id early.
                if digits > 19 {
                    break;
                }
                continue;
            }
            let b = text[i];
            if (b == b' ' || b == b'-')
                && text.get(i + 1).is_some_and(u8::is_ascii_digit)
                && last_group >= 3
            {
                i += 1;
            } else {
                break;
            }
        }
        if (13..=19).contains(&digits) {
            emit(start, end);
        }
        i = i.max(start + 1);
    }
}

/// Number of consecutive ASCII digits at `text[i..]`.
fn digit_run(text: &[u8], mut i: usize) -> usize {
    let start = i;
    while let Some(chunk) = text.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let not_digit = !digit_mask(u64::from_le_bytes(w)) & 0x8080_8080_8080_8080;
        if not_digit != 0 {
            return i - start + (not_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    i - start
}

/// `scheme://user:password@host`: the part before `@` is a credential (another rule's), and
/// the host is not an email domain.
fn in_url_userinfo(text: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(256);
    let token_start = text[lo..s]
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>'))
        .map_or(lo, |i| lo + i + 1);
    text[token_start..s].windows(3).any(|w| w == b"://")
}

/// Bit 7 of each byte of the result is set where that byte of the word is an ASCII digit
/// (SWAR: no carry crosses bytes because the high bit is masked off first, and bytes with the
/// high bit set are excluded).
fn digit_mask(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let y = x & LO7;
    let ge_0 = y.wrapping_add(0x5050_5050_5050_5050); // bit 7 set where byte >= 0x30
    let gt_9 = y.wrapping_add(0x4646_4646_4646_4646); // bit 7 set where byte >= 0x3a
    ge_0 & !gt_9 & !x & HI
}

fn email(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    let mut next = 0;
    for at in memchr::memchr_iter(b'@', text) {
        if at < next || at == 0 {
            continue;
        }
        let mut s = at;
        while s > 0 && at - s < 64 && local(text[s - 1]) {
            s -= 1;
        }
        while s < at && !text[s].is_ascii_alphanumeric() {
            s += 1;
        }
        let mut e = at + 1;
        while e < text.len() && e - at <= 253 && domain(text[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(text[e - 1], b'.' | b'-') {
            e -= 1;
        }
        // The rule's regex needs a dot in the domain; without one no address can match, so
        // the costlier URL test and the regex are skipped (`Class@123` in Java logs).
        if s < at
            && e > at + 3
            && memchr::memchr(b'.', &text[at + 1..e]).is_some()
            && !in_url_userinfo(text, s)
        {
            emit(s, e);
            next = e;
        }
    }
}
