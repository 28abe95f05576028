#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use prost::Message;

use super::wire::{Function, Line, Location, Mapping, Profile, Sample, ValueType};
use super::*;

/// A Go-style CPU profile: sample types samples/count and cpu/nanoseconds, a recursive
/// `fib`, and `mallocgc` inlined into `handler` at one location.
fn go_profile() -> Profile {
    let strings: Vec<String> = [
        "",
        "samples",
        "count",
        "cpu",
        "nanoseconds",
        "main.main",
        "main.go",
        "main.handler",
        "handler.go",
        "main.fib",
        "fib.go",
        "runtime.mallocgc",
        "malloc.go",
        "/app/server",
    ]
    .map(String::from)
    .to_vec();
    let f = |id, name, file| Function {
        id,
        name,
        filename: file,
        ..Default::default()
    };
    let loc = |id, fns: &[u64]| Location {
        id,
        mapping_id: 1,
        address: 0x1000 + id,
        line: fns
            .iter()
            .map(|f| Line {
                function_id: *f,
                line: 1,
            })
            .collect(),
    };
    let sample = |locs: &[u64], v: [i64; 2]| Sample {
        location_id: locs.to_vec(),
        value: v.to_vec(),
        label: vec![],
    };
    Profile {
        sample_type: vec![
            ValueType { r#type: 1, unit: 2 },
            ValueType { r#type: 3, unit: 4 },
        ],
        sample: vec![
            sample(&[3, 3, 3, 2, 1], [3, 30]),
            sample(&[2, 1], [1, 10]),
            sample(&[4, 1], [2, 20]),
        ],
        mapping: vec![Mapping {
            id: 1,
            filename: 13,
            ..Default::default()
        }],
        location: vec![loc(1, &[1]), loc(2, &[2]), loc(3, &[3]), loc(4, &[4, 2])],
        function: vec![f(1, 5, 6), f(2, 7, 8), f(3, 9, 10), f(4, 11, 12)],
        string_table: strings,
        period_type: Some(ValueType { r#type: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn func<'a>(s: &'a SampleTypeSummary, name: &str) -> &'a FunctionValue {
    s.functions.iter().find(|f| f.function == name).unwrap()
}

/// Self is the leaf frame's, total counts a function once per stack however deep it
/// recurses, inlined frames count as their own functions, and the default sample type
/// is the last one, as `go tool pprof` reads it.
#[test]
fn self_and_total_per_function_as_go_tool_pprof_reports_them() {
    let bytes = gzip(&go_profile().encode_to_vec());
    let s = parse(&bytes, 1 << 20).unwrap();
    assert_eq!(s.default_type, "cpu");
    let cpu = s.sample_type("").unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.unit.as_str(), cpu.total),
        ("cpu", "nanoseconds", 60)
    );
    let v = |n| {
        let f = func(cpu, n);
        (f.self_value, f.total_value)
    };
    assert_eq!(v("main.fib"), (30, 30), "recursion counted once");
    assert_eq!(v("main.handler"), (10, 60));
    assert_eq!(v("main.main"), (0, 60));
    assert_eq!(v("runtime.mallocgc"), (20, 20));
    assert_eq!(func(cpu, "main.fib").file, "fib.go");

    let samples = s.sample_type("samples").unwrap();
    assert_eq!(samples.total, 6);
    assert_eq!(
        (
            func(samples, "main.fib").self_value,
            func(samples, "main.fib").total_value
        ),
        (3, 3)
    );

    // Raw (not gzip) decodes the same.
    assert_eq!(parse(&go_profile().encode_to_vec(), 1 << 20).unwrap(), s);

    let t = top(cpu, 2);
    assert_eq!(t.total, 60);
    let names = |v: &[FunctionStat]| v.iter().map(|f| f.function.clone()).collect::<Vec<_>>();
    assert_eq!(names(&t.by_self), ["main.fib", "runtime.mallocgc"]);
    assert_eq!(names(&t.by_total), ["main.handler", "main.main"]);
    assert!((t.by_self[0].self_share - 0.5).abs() < 1e-9);
    assert!((t.by_total[0].total_share - 1.0).abs() < 1e-9);
}

#[test]
fn default_sample_type_is_honoured_and_unknown_types_are_named() {
    let mut p = go_profile();
    p.default_sample_type = 1;
    let s = parse(&p.encode_to_vec(), 1 << 20).unwrap();
    assert_eq!(s.default_type, "samples");
    assert_eq!(s.sample_type("").unwrap().total, 6);
    let e = s.sample_type("alloc_space").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the profiles have no sample type \"alloc_space\" (they have: samples, cpu)"
    );
}

#[test]
fn merged_profiles_add_up_per_function() {
    let s = parse(&go_profile().encode_to_vec(), 1 << 20).unwrap();
    let cpu = s.sample_type("cpu").unwrap();
    let m = merge([cpu, cpu]);
    assert_eq!(m.total, 120);
    assert_eq!(func(&m, "main.fib").total_value, 60);
    assert_eq!(func(&m, "main.handler").self_value, 20);
    assert_eq!(m.functions.len(), cpu.functions.len());
    assert_eq!(top(&m, 10).by_total[0].total_share, 1.0);
}

#[test]
fn broken_references_are_named() {
    type Break = fn(&mut Profile);
    let cases: Vec<(Break, &str)> = vec![
        (
            |p| p.function[2].name = 99,
            "function[2].name = 99 is outside the string table (14 strings)",
        ),
        (
            |p| p.sample_type[0].unit = -1,
            "sample_type[0].unit = -1 is outside the string table",
        ),
        (
            |p| p.location[1].line[0].function_id = 42,
            "location[1].line[0].function_id = 42 names no function",
        ),
        (
            |p| p.sample[1].location_id[1] = 9,
            "sample[1].location_id[1] = 9 names no location",
        ),
        (
            |p| p.sample[0].value.pop().map(drop).unwrap_or(()),
            "sample[0] has 1 values for 2 sample types",
        ),
        (
            |p| p.string_table[0] = "x".into(),
            "string_table[0] must be the empty string",
        ),
        (
            |p| p.location[0].mapping_id = 7,
            "location[0].mapping_id = 7 names no mapping",
        ),
        (
            |p| p.function[1].id = 1,
            "function[1] has id 1, which is zero or used twice",
        ),
        (
            |p| p.default_sample_type = 5,
            "default_sample_type \"main.main\" is not one of its sample types",
        ),
        (|p| p.sample_type.clear(), "it has no sample type"),
    ];
    for (break_it, want) in cases {
        let mut p = go_profile();
        break_it(&mut p);
        let e = parse(&gzip(&p.encode_to_vec()), 1 << 20).unwrap_err();
        assert!(matches!(e, PprofError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} / {want}");
    }
}

#[test]
fn garbage_truncated_gzip_and_oversized_input_are_refused_clearly() {
    let e = parse(b"this is not a profile at all", 1 << 20).unwrap_err();
    assert!(matches!(e, PprofError::Decode(_)), "{e:?}");
    assert!(e.to_string().starts_with("not a pprof profile"), "{e}");

    let whole = gzip(&go_profile().encode_to_vec());
    let e = parse(&whole[..whole.len() / 2], 1 << 20).unwrap_err();
    assert!(matches!(e, PprofError::Gzip(_)), "{e:?}");

    // A gzip bomb stops at the limit instead of inflating to its full size.
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    assert_eq!(
        parse(&bomb, 1 << 20).unwrap_err(),
        PprofError::TooLarge { limit: 1 << 20 }
    );
    let raw = go_profile().encode_to_vec();
    assert_eq!(
        parse(&raw, raw.len() - 1).unwrap_err(),
        PprofError::TooLarge {
            limit: raw.len() - 1
        }
    );
}

#[test]
fn unsymbolized_locations_show_their_address() {
    let mut p = go_profile();
    p.location[2].line.clear();
    let s = parse(&p.encode_to_vec(), 1 << 20).unwrap();
    let cpu = s.sample_type("cpu").unwrap();
    assert_eq!(func(cpu, "0x1003").self_value, 30);
}
