//! Trace readers: good files, every kind of bad line with its exact
//! message, format detection, window and rate math, and the real traces.
#![cfg(feature = "sim")]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use drover_core::route::Op;
use drover_core::{Duration, Instant};
use drover_transports::sim::{
    OpMix, TraceError, TraceFormat, TraceOptions, Workload, read_azure, read_mooncake, read_trace,
};

const HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn azure(text: &str) -> Result<Workload, TraceError> {
    azure_with(text, &TraceOptions::default())
}
fn azure_with(text: &str, opts: &TraceOptions) -> Result<Workload, TraceError> {
    read_azure(text.as_bytes(), Path::new("traces/x.csv"), opts)
}
fn mooncake(text: &str) -> Result<Workload, TraceError> {
    read_mooncake(
        text.as_bytes(),
        Path::new("traces/x.jsonl"),
        &TraceOptions::default(),
    )
}

/// The message of a read that must fail.
fn fails(r: Result<Workload, TraceError>) -> String {
    match r {
        Ok(w) => panic!("read {} calls, wanted an error", w.len()),
        Err(e) => e.to_string(),
    }
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

#[test]
fn an_azure_file_with_bom_crlf_quotes_and_blank_lines_reads() {
    let path = fixture("azure-small.csv");
    let w = read_trace(&path, None, &TraceOptions::default()).unwrap();
    let got: Vec<_> = w
        .iter()
        .map(|(a, b)| {
            (
                a.at,
                a.op,
                a.prompt_tokens,
                a.output_tokens,
                a.session,
                b.len(),
            )
        })
        .collect();
    // Offsets from the first call, across a new year; a `T` is accepted.
    let want = [
        (ms(0), Op::Stream, 374, 44, None, 0),
        (ms(0), Op::Stream, 1_200, 0, None, 0),
        (ms(200), Op::Stream, 396, 109, None, 0),
        (ms(1_200), Op::Stream, 20, 7, None, 0),
        (ms(60_100), Op::Stream, 5, 6, None, 0),
    ];
    assert_eq!(got, want);
    assert_eq!(w.hash_count(), 0);
}

#[test]
fn a_mooncake_file_reads_with_blocks_and_extra_fields() {
    let path = fixture("mooncake-small.jsonl");
    let w = read_trace(&path, None, &TraceOptions::default()).unwrap();
    let got: Vec<_> = w
        .iter()
        .map(|(a, b)| (a.at, a.prompt_tokens, a.output_tokens, b.to_vec()))
        .collect();
    // Offsets from the first timestamp (1,000 ms), fractional ms kept.
    let want = [
        (ms(0), 1_024, 10, vec![0, 1]),
        (Instant::from_nanos(500_000), 1_536, 20, vec![0, 1, 2]),
        (ms(1_500), 7, 30, vec![]),
        (ms(2_000), 512, 0, vec![]),
        (ms(60_000), 100, 5, vec![u64::MAX, u64::MAX]),
    ];
    assert_eq!(got, want);
    assert!(
        w.iter()
            .all(|(a, _)| a.op == Op::Stream && a.session.is_none())
    );
}

#[test]
fn bad_azure_lines_name_file_line_and_field() {
    let ok = "2023-11-16 18:15:46.6805900,374,44\n";
    let cases = [
        (
            format!("{HEADER}{ok}2023-11-16 18:15:47,abc,5\n"),
            "traces/x.csv:3: field ContextTokens: expected a non-negative integer, found \"abc\"",
        ),
        (
            format!("{HEADER}{ok}2023-11-16 18:15:47,5,-5\n"),
            "traces/x.csv:3: field GeneratedTokens: expected a non-negative integer, found \"-5\"",
        ),
        (
            format!("{HEADER}{ok}2023-11-16 18:15:47,,5\n"),
            "traces/x.csv:3: field ContextTokens: expected a non-negative integer, found \"\"",
        ),
        (
            format!("{HEADER}2023-11-16 18:15:47,4294967296,5\n"),
            "traces/x.csv:2: field ContextTokens: expected a non-negative integer up to \
             4294967295, found \"4294967296\"",
        ),
        (
            format!("{HEADER}2023-11-16 25:00:00,1,2\n"),
            "traces/x.csv:2: field TIMESTAMP: expected a date-time like \
             \"2023-11-16 18:15:46.6805900\", found \"2023-11-16 25:00:00\"",
        ),
        (
            format!("{HEADER}1700158546,1,2\n"),
            "traces/x.csv:2: field TIMESTAMP: expected a date-time like \
             \"2023-11-16 18:15:46.6805900\", found \"1700158546\"",
        ),
        (
            format!("{HEADER}{ok}\n2023-11-16 18:15:47.0,1,2\n2023-11-16 18:15:45.0,1,2\n"),
            "traces/x.csv:5: field TIMESTAMP: goes back in time: \"2023-11-16 18:15:45.0\" \
             is before line 4's \"2023-11-16 18:15:47.0\"",
        ),
        (
            format!("{HEADER}{ok}{ok}1,2\n"),
            "traces/x.csv:4: expected 3 comma-separated fields, found 2",
        ),
        (
            format!("{HEADER}{ok}2023-11-16 18:15:47,1,2,3\n"),
            "traces/x.csv:3: expected 3 comma-separated fields, found 4",
        ),
        (
            ok.to_owned(),
            "traces/x.csv:1: missing header: expected \
             \"TIMESTAMP,ContextTokens,GeneratedTokens\", found \
             \"2023-11-16 18:15:46.6805900,374,44\"",
        ),
        (
            format!("\n\nTIMESTAMP,ContextTokens\n{ok}"),
            "traces/x.csv:3: missing header: expected \
             \"TIMESTAMP,ContextTokens,GeneratedTokens\", found \"TIMESTAMP,ContextTokens\"",
        ),
        (
            "TIMESTAMP,GeneratedTokens,ContextTokens\n".to_owned(),
            "traces/x.csv:1: missing header: expected \
             \"TIMESTAMP,ContextTokens,GeneratedTokens\", found \
             \"TIMESTAMP,GeneratedTokens,ContextTokens\"",
        ),
        (
            format!("{HEADER}1800-01-01 00:00:00,1,1\n2400-01-01 00:00:00,1,1\n"),
            "traces/x.csv:3: field TIMESTAMP: more than 584 years after the first call",
        ),
        (String::new(), "traces/x.csv: empty file"),
        ("\u{feff}\r\n \r\n\n".to_owned(), "traces/x.csv: empty file"),
        (
            format!("{HEADER}\r\n\r\n"),
            "traces/x.csv: no calls after the header",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(fails(azure(&text)), want, "input {text:?}");
    }
    let e = azure(&format!("{HEADER}{ok}2023-11-16 18:15:47,x,5\n")).unwrap_err();
    assert_eq!((e.line, e.field, e.io), (3, Some("ContextTokens"), None));
    assert_eq!(e.path, Path::new("traces/x.csv"));
}

#[test]
fn non_utf8_lines_and_unreadable_files_are_errors() {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"2023-11-16 18:15:47,\xff,5\n");
    let r = read_azure(&bytes[..], Path::new("t.csv"), &TraceOptions::default());
    assert_eq!(fails(r), "t.csv:2: not valid UTF-8");
    let missing = fixture("no-such-trace.csv");
    let e = read_trace(&missing, None, &TraceOptions::default()).unwrap_err();
    assert_eq!(e.io, Some(ErrorKind::NotFound));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}: cannot open: ", missing.display())),
        "{text}"
    );
    let e = TraceFormat::detect(&missing.with_extension("trace")).unwrap_err();
    assert_eq!((e.line, e.io), (0, Some(ErrorKind::NotFound)));
}

#[test]
fn bad_mooncake_lines_name_file_line_and_field() {
    let ok = "{\"timestamp\": 20.5, \"input_length\": 1, \"output_length\": 1}\n";
    let row = |fields: &str| format!("{ok}{{{fields}}}\n");
    let cases = [
        (
            format!("{ok}{{\"timestamp\": 1,\n"),
            "traces/x.jsonl:2: not valid JSON: EOF while parsing a value (column 16)",
        ),
        (
            format!("{ok}[1,2]\n"),
            "traces/x.jsonl:2: expected a JSON object, found [1,2]",
        ),
        (
            row("\"timestamp\": 30, \"output_length\": 1"),
            "traces/x.jsonl:2: field input_length: missing",
        ),
        (
            row("\"input_length\": 1, \"output_length\": 1"),
            "traces/x.jsonl:2: field timestamp: missing",
        ),
        (
            row("\"timestamp\": 30, \"input_length\": \"abc\", \"output_length\": 1"),
            "traces/x.jsonl:2: field input_length: expected a non-negative integer, found \"abc\"",
        ),
        (
            row("\"timestamp\": 30, \"input_length\": 1, \"output_length\": 3.5"),
            "traces/x.jsonl:2: field output_length: expected a non-negative integer, found 3.5",
        ),
        (
            row("\"timestamp\": 30, \"input_length\": -3, \"output_length\": 1"),
            "traces/x.jsonl:2: field input_length: expected a non-negative integer, found -3",
        ),
        (
            row("\"timestamp\": 30, \"input_length\": 5000000000, \"output_length\": 1"),
            "traces/x.jsonl:2: field input_length: expected a non-negative integer up to \
             4294967295, found 5000000000",
        ),
        (
            row("\"timestamp\": \"30\", \"input_length\": 1, \"output_length\": 1"),
            "traces/x.jsonl:2: field timestamp: expected a number of milliseconds, found \"30\"",
        ),
        (
            "{\"timestamp\": -1, \"input_length\": 1, \"output_length\": 1}\n".to_owned(),
            "traces/x.jsonl:1: field timestamp: expected a number of milliseconds from 0 to \
             1.8e13, found -1",
        ),
        (
            row("\"timestamp\": 30, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": 5"),
            "traces/x.jsonl:2: field hash_ids: expected an array of integers, found 5",
        ),
        (
            row(
                "\"timestamp\": 30, \"input_length\": 1, \"output_length\": 1, \
                 \"hash_ids\": [1, \"a\"]",
            ),
            "traces/x.jsonl:2: field hash_ids: element 1: expected an integer, found \"a\"",
        ),
        (
            row(
                "\"timestamp\": 30, \"input_length\": 1, \"output_length\": 1, \
                 \"hash_ids\": [1.5]",
            ),
            "traces/x.jsonl:2: field hash_ids: element 0: expected an integer, found 1.5",
        ),
        (
            format!(
                "{ok}\n{}",
                row("\"timestamp\": 10, \"input_length\": 1, \"output_length\": 1")
            ),
            "traces/x.jsonl:4: field timestamp: goes back in time: 10 is before line 3's 20.5",
        ),
        (
            row("\"timestamp\": 30, \"timestamp\": 31, \"input_length\": 1, \"output_length\": 1"),
            "traces/x.jsonl:2: not a trace record: duplicate field `timestamp` (column 29)",
        ),
        (String::new(), "traces/x.jsonl: empty file"),
        ("\n \r\n".to_owned(), "traces/x.jsonl: empty file"),
    ];
    for (text, want) in cases {
        assert_eq!(fails(mooncake(&text)), want, "input {text:?}");
    }
}

#[test]
fn bad_options_are_refused_before_reading() {
    let opts = TraceOptions::default().rate(0.0);
    assert_eq!(
        fails(azure_with("", &opts)),
        "traces/x.csv: cannot replay: the rate multiplier must be a finite number above 0, \
         found 0"
    );
    let opts = TraceOptions::default().mix(
        OpMix {
            stream: 0,
            chat: 0,
            embed: 0,
        },
        1,
    );
    assert_eq!(
        fails(azure_with("", &opts)),
        "traces/x.csv: cannot replay: the operation mix gives no operation a weight"
    );
}

/// Calls at 0, 1, …, 9 s, prompt length = second.
fn ten_seconds() -> String {
    let mut t = HEADER.to_owned();
    for s in 0..10 {
        t.push_str(&format!("2023-11-16 10:00:{s:02}.0000000,{s},1\n"));
    }
    t
}

fn times(w: &Workload) -> Vec<(u64, u32)> {
    w.iter()
        .map(|(a, _)| (a.at.as_nanos() / 1_000_000, a.prompt_tokens))
        .collect()
}

#[test]
fn windows_and_rate_multipliers_cut_and_scale_trace_time() {
    let text = ten_seconds();
    let s = Duration::from_secs;
    let read = |opts: TraceOptions| times(&azure_with(&text, &opts).unwrap());
    let all = read(TraceOptions::default());
    assert_eq!(all.len(), 10);
    assert_eq!(all[9], (9_000, 9));
    // Trace seconds [2, 5), shifted to start at 0.
    let window = TraceOptions::default().window(s(2), Some(s(3)));
    assert_eq!(read(window), [(0, 2), (1_000, 3), (2_000, 4)]);
    // Twice the rate halves the gaps; half the rate doubles them.
    assert_eq!(read(window.rate(2.0)), [(0, 2), (500, 3), (1_000, 4)]);
    assert_eq!(read(window.rate(0.5)), [(0, 2), (2_000, 3), (4_000, 4)]);
    assert_eq!(read(window.rate(3.0))[1], (333, 3));
    // From 7 s to the end; at most 2 calls; a window past the end is empty.
    let tail = TraceOptions::default().window(s(7), None);
    assert_eq!(read(tail), [(0, 7), (1_000, 8), (2_000, 9)]);
    assert_eq!(read(tail.max_calls(2)), [(0, 7), (1_000, 8)]);
    assert_eq!(read(TraceOptions::default().max_calls(0)), []);
    assert_eq!(read(TraceOptions::default().window(s(60), None)), []);
    // The window starts between calls: the offset counts from its start.
    let mid = TraceOptions::default().window(Duration::from_millis(2_500), Some(s(1)));
    assert_eq!(read(mid), [(500, 3)]);
    // Reading stops at the window's end or the limit: later lines are not read.
    let broken = format!("{text}2023-11-16 10:00:10,oops,1\n");
    assert!(azure_with(&broken, &TraceOptions::default()).is_err());
    assert_eq!(
        times(&azure_with(&broken, &window).unwrap()).len(),
        3,
        "the bad line is past the window"
    );
    assert_eq!(
        times(&azure_with(&broken, &TraceOptions::default().max_calls(10)).unwrap()).len(),
        10
    );
}

#[test]
fn operations_come_from_the_mix_by_position_and_seed() {
    let mut text = HEADER.to_owned();
    for i in 0..3_000 {
        text.push_str(&format!(
            "2023-11-16 10:{:02}:{:02}.0,{},50\n",
            i / 60 % 60,
            i % 60,
            i
        ));
    }
    let mix = OpMix {
        stream: 2,
        chat: 1,
        embed: 1,
    };
    let opts = TraceOptions::default().mix(mix, 7);
    let w = azure_with(&text, &opts).unwrap();
    assert_eq!(w.len(), 3_000);
    let ops: Vec<Op> = w.iter().map(|(a, _)| a.op).collect();
    let count = |op| ops.iter().filter(|&&o| o == op).count();
    assert!(
        (1_350..1_650).contains(&count(Op::Stream)),
        "{}",
        count(Op::Stream)
    );
    assert!((600..900).contains(&count(Op::Chat)));
    assert!((600..900).contains(&count(Op::Embed)));
    for (a, _) in w.iter() {
        assert_eq!(a.output_tokens, if a.op == Op::Embed { 0 } else { 50 });
    }
    // Same seed, same ops; another seed, other ops.
    assert_eq!(azure_with(&text, &opts).unwrap(), w);
    assert_ne!(azure_with(&text, &opts.mix(mix, 8)).unwrap(), w);
    // A window keeps each call's operation.
    let window = opts.window(Duration::from_secs(600), Some(Duration::from_secs(60)));
    let part = azure_with(&text, &window).unwrap();
    assert_eq!(part.len(), 60);
    for (a, _) in part.iter() {
        assert_eq!(a.op, ops[a.prompt_tokens as usize]);
    }
}

#[test]
fn formats_are_detected_by_extension_then_by_content() {
    let ext = |p: &str| TraceFormat::from_extension(Path::new(p));
    assert_eq!(ext("a/b.csv"), Some(TraceFormat::Azure));
    assert_eq!(ext("b.CSV"), Some(TraceFormat::Azure));
    assert_eq!(ext("b.jsonl"), Some(TraceFormat::Mooncake));
    assert_eq!(ext("b.json"), Some(TraceFormat::Mooncake));
    assert_eq!(ext("b.txt"), None);
    assert_eq!(ext("csv"), None);
    assert_eq!(
        TraceFormat::sniff("\u{feff}TIMESTAMP,a,b"),
        Some(TraceFormat::Azure)
    );
    assert_eq!(
        TraceFormat::sniff("  {\"timestamp\": 0}"),
        Some(TraceFormat::Mooncake)
    );
    assert_eq!(TraceFormat::sniff("hello"), None);
    assert_eq!("Azure".parse(), Ok(TraceFormat::Azure));
    assert_eq!("mooncake".parse(), Ok(TraceFormat::Mooncake));
    let e = "csv".parse::<TraceFormat>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown trace format \"csv\": expected azure or mooncake"
    );

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace-detect");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let csv = std::fs::read(fixture("azure-small.csv")).unwrap();
    let jsonl = std::fs::read(fixture("mooncake-small.jsonl")).unwrap();
    let a = write("azure.trace", &csv);
    let m = write("mooncake.log", &jsonl);
    assert_eq!(TraceFormat::detect(&a), Ok(TraceFormat::Azure));
    assert_eq!(TraceFormat::detect(&m), Ok(TraceFormat::Mooncake));
    let opts = TraceOptions::default();
    assert_eq!(read_trace(&a, None, &opts).unwrap().len(), 5);
    assert_eq!(read_trace(&m, None, &opts).unwrap().len(), 5);
    // An explicit format beats the extension.
    let e = read_trace(
        &fixture("azure-small.csv"),
        Some(TraceFormat::Mooncake),
        &opts,
    );
    assert!(fails(e).ends_with("azure-small.csv:1: not valid JSON: expected value (column 1)"));
    let blank = write("blank.trace", b"\n\n");
    assert_eq!(
        fails_detect(&blank),
        format!("{}: empty file", blank.display())
    );
    let odd = write("odd.trace", b"\nhello\n");
    assert_eq!(
        fails_detect(&odd),
        format!(
            "{}:2: cannot tell the trace format: expected a CSV header or a JSON object, \
             found \"hello\"",
            odd.display()
        )
    );
}

fn fails_detect(p: &Path) -> String {
    TraceFormat::detect(p).unwrap_err().to_string()
}

/// A shipped trace: `shared/traces/` beside the repository (CI's layout) or
/// beside one of its ancestors (a worktree's). Absent, the test is skipped
/// with a notice, except under CI, where it must be there.
fn shared_trace(name: &str) -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = here
        .ancestors()
        .skip(2)
        .map(|dir| dir.join("shared/traces"))
        .find(|dir| dir.is_dir());
    match found {
        Some(dir) => Some(dir.join(name)),
        None if std::env::var_os("CI").is_some() => {
            panic!("shared/traces/ not found beside {}", here.display())
        }
        None => {
            println!("skipped: no shared/traces/ beside {}", here.display());
            None
        }
    }
}

#[test]
fn the_real_azure_trace_parses_whole() {
    let Some(path) = shared_trace("azure-llm-2023-conv.csv") else {
        return;
    };
    let t = std::time::Instant::now();
    let w = read_trace(&path, None, &TraceOptions::default()).unwrap();
    println!("azure: {} calls in {:?}", w.len(), t.elapsed());
    assert_eq!(w.len(), 19_366);
    assert_eq!(w[0].at, Instant::ZERO);
    assert_eq!((w[0].prompt_tokens, w[0].output_tokens), (374, 44));
    // 2023-11-16 18:15:46.6805900 to 19:14:08.4025270.
    assert_eq!(w[w.len() - 1].at, Instant::from_nanos(3_501_721_937_000));
    assert_eq!(
        (w[w.len() - 1].prompt_tokens, w[w.len() - 1].output_tokens),
        (197, 183)
    );
    assert!(w.windows(2).all(|p| p[0].at <= p[1].at));
    // A 10-minute window at twice the rate spans 5 minutes.
    let opts = TraceOptions::default()
        .window(Duration::from_secs(600), Some(Duration::from_secs(600)))
        .rate(2.0);
    let part = read_trace(&path, None, &opts).unwrap();
    assert!(part.len() > 1_000, "{}", part.len());
    assert!(part[part.len() - 1].at < Instant::from_secs(300));
}

#[test]
fn the_real_mooncake_trace_parses_whole() {
    let Some(path) = shared_trace("mooncake-conversation.jsonl") else {
        return;
    };
    let t = std::time::Instant::now();
    let w = read_trace(&path, None, &TraceOptions::default()).unwrap();
    println!(
        "mooncake: {} calls, {} block hashes in {:?}",
        w.len(),
        w.hash_count(),
        t.elapsed()
    );
    assert_eq!(w.len(), 12_031);
    assert_eq!(w.blocks(w[0].prefix_blocks), (0..14).collect::<Vec<u64>>());
    assert_eq!((w[0].prompt_tokens, w[0].output_tokens), (6_758, 500));
    assert!(w.windows(2).all(|p| p[0].at <= p[1].at));
    let last = w[w.len() - 1].at.as_nanos() as f64 / 1e9;
    assert!((3_000.0..3_600.0).contains(&last), "last call at {last} s");
    // Block ids name 512-token blocks: a prompt has about that many.
    for (a, b) in w.iter() {
        assert!(b.len().abs_diff((a.prompt_tokens as usize).div_ceil(512)) <= 1);
    }
}
