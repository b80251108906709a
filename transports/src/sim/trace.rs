//! Trace readers: real LLM serving traffic as a [`Workload`], for replay.
//!
//! Two formats, read line by line from any [`BufRead`]:
//!
//! - **Azure** ([`TraceFormat::Azure`]; the Azure LLM inference traces of
//!   Patel et al., "Splitwise", ISCA 2024): CSV with the header
//!   `TIMESTAMP,ContextTokens,GeneratedTokens` and timestamps
//!   `YYYY-MM-DD HH:MM:SS.fffffff` (0 to 9 fractional digits, a `T` for the
//!   space is accepted). Dates are turned into nanoseconds with the civil
//!   calendar arithmetic of Howard Hinnant's `days_from_civil`.
//! - **Mooncake** ([`TraceFormat::Mooncake`]; FAST 2025): JSON lines with
//!   `timestamp` (milliseconds, integer or not), `input_length`,
//!   `output_length` and `hash_ids` (integers naming the prompt's blocks;
//!   may be empty or absent). Other fields are ignored.
//!
//! A UTF-8 byte-order mark, `\r\n` line ends and blank lines are accepted.
//! Timestamps must not go backwards. Arrival times are offsets from the
//! first call of the file, then cut to a window and scaled by a rate
//! multiplier ([`TraceOptions`]). Traces carry no operation: each call gets
//! one from an [`OpMix`] by a seeded draw that depends only on the seed and
//! the call's position in the file, so a window does not change the
//! operations of the calls it keeps.
//!
//! # Errors
//!
//! A bad line stops the read with a [`TraceError`] naming the file, the
//! line and the field: `traces/x.csv:17: field ContextTokens: expected a
//! non-negative integer, found "abc"`. Reading stops at the first call past
//! the window or at the call limit: lines after that are not checked.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use drover_core::{Duration, Instant};
//! use drover_transports::sim::{TraceFormat, TraceOptions, read_trace};
//!
//! let csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
//!            2023-11-16 18:15:46.0,374,44\n\
//!            2023-11-16 18:15:48.0,396,109\n\
//!            2023-11-16 18:15:50,20,7\n\
//!            2023-11-16 18:15:51,abc,7\n";
//! let path = Path::new("conv.csv");
//! // The first three seconds of the trace, replayed twice as fast.
//! let opts = TraceOptions::default().window(Duration::ZERO, Some(Duration::from_secs(3))).rate(2.0);
//! let w = TraceFormat::Azure.read(csv.as_bytes(), path, &opts)?;
//! assert_eq!(w.len(), 2);
//! assert_eq!(w[1].at, Instant::from_secs(1));
//! // The whole file has a bad line.
//! let e = TraceFormat::Azure.read(csv.as_bytes(), path, &TraceOptions::default()).unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     r#"conv.csv:5: field ContextTokens: expected a non-negative integer, found "abc""#
//! );
//! // From a file: `read_trace(path, None, &opts)` detects the format.
//! assert!(read_trace(Path::new("no/such/file.csv"), None, &opts).is_err());
//! # Ok::<(), drover_transports::sim::TraceError>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use drover_core::route::Op;
use drover_core::{Duration, Instant};
use fastrand::Rng;
use serde::Deserialize;

use super::civil::parse_datetime;
use super::seed;
use super::workload::{Arrival, OpMix, Workload};

/// The Azure header, column by column.
const AZURE_COLUMNS: [&str; 3] = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];
/// Longest quoted input shown in an error, in characters.
const SHOWN: usize = 60;

/// A trace file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// CSV `TIMESTAMP,ContextTokens,GeneratedTokens`.
    Azure,
    /// JSON lines with `timestamp`, `input_length`, `output_length`,
    /// `hash_ids`.
    Mooncake,
}

/// A `--format` name other than `azure` or `mooncake`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown trace format {}: expected azure or mooncake",
            shown(&self.0)
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for TraceFormat {
    type Err = UnknownFormat;
    /// `azure` or `mooncake`, in any case.
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        if s.eq_ignore_ascii_case("azure") {
            Ok(TraceFormat::Azure)
        } else if s.eq_ignore_ascii_case("mooncake") {
            Ok(TraceFormat::Mooncake)
        } else {
            Err(UnknownFormat(s.to_owned()))
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceFormat::Azure => "azure",
            TraceFormat::Mooncake => "mooncake",
        })
    }
}

impl TraceFormat {
    /// The format a file name implies: `.csv` is Azure; `.jsonl`, `.json`
    /// and `.ndjson` are Mooncake (in any case).
    pub fn from_extension(path: &Path) -> Option<TraceFormat> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("csv") {
            Some(TraceFormat::Azure)
        } else if ["jsonl", "json", "ndjson"]
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
        {
            Some(TraceFormat::Mooncake)
        } else {
            None
        }
    }

    /// The format a first non-blank line suggests: a JSON object is
    /// Mooncake, anything with a comma Azure.
    pub fn sniff(line: &str) -> Option<TraceFormat> {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.starts_with('{') {
            Some(TraceFormat::Mooncake)
        } else if line.contains(',') {
            Some(TraceFormat::Azure)
        } else {
            None
        }
    }

    /// The format of the file at `path`: by extension, else by sniffing its
    /// first non-blank line.
    pub fn detect(path: &Path) -> Result<TraceFormat, TraceError> {
        if let Some(f) = TraceFormat::from_extension(path) {
            return Ok(f);
        }
        let mut lines = Lines::new(open(path)?, path);
        let Some((n, line)) = lines.next()? else {
            return Err(TraceError::file(path, "empty file"));
        };
        TraceFormat::sniff(line).ok_or_else(|| {
            let reason = format!(
                "cannot tell the trace format: expected a CSV header or a JSON object, found {}",
                shown(line)
            );
            TraceError::at(path, n, None, reason)
        })
    }

    /// Reads a trace in this format from `input`; `path` names it in errors.
    pub fn read<R: BufRead>(
        self,
        input: R,
        path: &Path,
        opts: &TraceOptions,
    ) -> Result<Workload, TraceError> {
        match self {
            TraceFormat::Azure => read_azure(input, path, opts),
            TraceFormat::Mooncake => read_mooncake(input, path, opts),
        }
    }
}

/// How to turn a trace into a workload: operations, rate and window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceOptions {
    /// Operations to give the calls (default [`OpMix::STREAM`]).
    pub mix: OpMix,
    /// Seed of the operation draws (default 0).
    pub seed: u64,
    /// Rate multiplier: 2 replays the trace twice as fast (gaps halved),
    /// 0.5 at half speed (default 1).
    pub rate: f64,
    /// Calls before this offset from the first call are skipped (default
    /// zero). The window is in trace time, before the multiplier.
    pub start: Duration,
    /// Calls at or after `start + duration` are dropped (default: none).
    pub duration: Option<Duration>,
    /// At most this many calls are kept (default: all).
    pub max_calls: Option<usize>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            mix: OpMix::STREAM,
            seed: 0,
            rate: 1.0,
            start: Duration::ZERO,
            duration: None,
            max_calls: None,
        }
    }
}

impl TraceOptions {
    /// The same options with operations drawn from `mix` with `seed`.
    pub fn mix(mut self, mix: OpMix, seed: u64) -> Self {
        self.mix = mix;
        self.seed = seed;
        self
    }
    /// The same options with rate multiplier `rate`.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }
    /// The same options keeping the calls from `start` (offset from the
    /// first call, in trace time) for `duration` (`None`: to the end).
    pub fn window(mut self, start: Duration, duration: Option<Duration>) -> Self {
        self.start = start;
        self.duration = duration;
        self
    }
    /// The same options keeping at most `n` calls.
    pub fn max_calls(mut self, n: usize) -> Self {
        self.max_calls = Some(n);
        self
    }

    fn check(&self, path: &Path) -> Result<(), TraceError> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            let reason = format!(
                "cannot replay: the rate multiplier must be a finite number above 0, found {}",
                self.rate
            );
            return Err(TraceError::file(path, reason));
        }
        if self.mix.total() == 0 {
            let reason = "cannot replay: the operation mix gives no operation a weight";
            return Err(TraceError::file(path, reason));
        }
        Ok(())
    }
}

/// Why a trace could not be read. Displays as
/// `path:line: field NAME: reason`, without the line when it concerns the
/// whole file and without the field when it concerns the whole line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceError {
    /// The file.
    pub path: PathBuf,
    /// The line, from 1; 0 when the error concerns the whole file.
    pub line: usize,
    /// The field at fault, if one is.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub reason: String,
    /// The kind of I/O error, if reading failed.
    pub io: Option<io::ErrorKind>,
}

impl TraceError {
    fn file(path: &Path, reason: impl Into<String>) -> Self {
        TraceError::at(path, 0, None, reason)
    }
    fn at(
        path: &Path,
        line: usize,
        field: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Self {
        TraceError {
            path: path.to_owned(),
            line,
            field,
            reason: reason.into(),
            io: None,
        }
    }
    fn io(path: &Path, line: usize, what: &str, e: &io::Error) -> Self {
        TraceError {
            io: Some(e.kind()),
            ..TraceError::at(path, line, None, format!("{what}: {e}"))
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        f.write_str(": ")?;
        if let Some(field) = self.field {
            write!(f, "field {field}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for TraceError {}

/// Reads the trace at `path` in `format`, or in the format
/// [`TraceFormat::detect`] finds.
pub fn read_trace(
    path: &Path,
    format: Option<TraceFormat>,
    opts: &TraceOptions,
) -> Result<Workload, TraceError> {
    let format = match format {
        Some(f) => f,
        None => TraceFormat::detect(path)?,
    };
    format.read(open(path)?, path, opts)
}

fn open(path: &Path) -> Result<BufReader<File>, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, 0, "cannot open", &e))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

/// `s` quoted for an error, cut to [`SHOWN`] characters.
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// The non-blank lines of a trace, without line ends or a leading BOM.
struct Lines<'p, R> {
    input: R,
    buf: Vec<u8>,
    line: usize,
    path: &'p Path,
}

impl<'p, R: BufRead> Lines<'p, R> {
    fn new(input: R, path: &'p Path) -> Self {
        Lines {
            input,
            buf: Vec::with_capacity(512),
            line: 0,
            path,
        }
    }

    /// The next non-blank line and its number, or `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, &str)>, TraceError> {
        loop {
            self.buf.clear();
            let n = match self.input.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) => return Err(TraceError::io(self.path, self.line + 1, "cannot read", &e)),
            };
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let mut end = self.buf.len();
            if self.buf[..end].ends_with(b"\n") {
                end -= 1;
            }
            if self.buf[..end].ends_with(b"\r") {
                end -= 1;
            }
            let start = if self.line == 1 && self.buf.starts_with(b"\xef\xbb\xbf") {
                3
            } else {
                0
            };
            if self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return match std::str::from_utf8(&self.buf[start..end]) {
                Ok(s) => Ok(Some((self.line, s))),
                Err(_) => Err(TraceError::at(
                    self.path,
                    self.line,
                    None,
                    "not valid UTF-8",
                )),
            };
        }
    }
}

/// What to do with a record.
enum Place {
    /// Keep it: send it then, as this operation.
    Keep(Instant, Op),
    /// Before the window.
    Skip,
}

/// Window, rate, limit and operation draws, shared by both formats.
struct Replay<'o> {
    opts: &'o TraceOptions,
    op_seed: u64,
    /// Raw time of the first record, and of the last with its line.
    first: Option<i128>,
    prev: (i128, usize),
    records: u64,
    done: bool,
    w: Workload,
}

impl<'o> Replay<'o> {
    fn new(opts: &'o TraceOptions, path: &Path) -> Result<Self, TraceError> {
        opts.check(path)?;
        Ok(Replay {
            opts,
            op_seed: seed::derive(opts.seed, seed::TRACE),
            first: None,
            prev: (i128::MIN, 0),
            records: 0,
            done: opts.max_calls == Some(0),
            w: Workload::new(),
        })
    }

    /// Places a record stamped `t` (nanoseconds on the trace's clock).
    /// `Err` carries the reason when `t` is before the previous record's
    /// time, or too far after the first.
    fn place(&mut self, t: i128) -> Result<Place, PlaceError> {
        let index = self.records;
        self.records += 1;
        if t < self.prev.0 {
            return Err(PlaceError::Backwards(self.prev.1));
        }
        let first = *self.first.get_or_insert(t);
        let offset = u64::try_from(t - first).map_err(|_| PlaceError::TooLate)?;
        let Some(rel) = offset.checked_sub(self.opts.start.as_nanos()) else {
            return Ok(Place::Skip);
        };
        if self.opts.duration.is_some_and(|d| rel >= d.as_nanos()) {
            self.done = true;
            return Ok(Place::Skip);
        }
        let at = if self.opts.rate == 1.0 {
            Instant::from_nanos(rel)
        } else {
            // Below 2^53 ns (104 days) the quotient is exact to the nanosecond.
            Instant::from_nanos((rel as f64 / self.opts.rate).round() as u64)
        };
        let op = if self.opts.mix.chat == 0 && self.opts.mix.embed == 0 {
            Op::Stream
        } else {
            self.opts
                .mix
                .pick(&mut Rng::with_seed(seed::derive(self.op_seed, index)))
        };
        Ok(Place::Keep(at, op))
    }

    /// Records the line of the last placed record (for the next
    /// backwards check).
    fn placed(&mut self, t: i128, line: usize) {
        self.prev = (t, line);
    }

    fn keep(&mut self, call: Arrival) {
        self.w.push(call);
        if self.opts.max_calls.is_some_and(|m| self.w.len() >= m) {
            self.done = true;
        }
    }
}

enum PlaceError {
    /// Earlier than the record on this line.
    Backwards(usize),
    /// More than `u64::MAX` nanoseconds after the first record.
    TooLate,
}

fn tokens(op: Op, prompt: u32, output: u32, at: Instant) -> Arrival {
    Arrival::new(at, op, prompt, if op == Op::Embed { 0 } else { output })
}

/// Reads an Azure CSV trace from `input`; `path` names it in errors.
pub fn read_azure<R: BufRead>(
    input: R,
    path: &Path,
    opts: &TraceOptions,
) -> Result<Workload, TraceError> {
    let mut replay = Replay::new(opts, path)?;
    let mut lines = Lines::new(input, path);
    let Some((n, header)) = lines.next()? else {
        return Err(TraceError::file(path, "empty file"));
    };
    let mut names = header.split(',').map(|f| unquote(f.trim()));
    if !AZURE_COLUMNS
        .iter()
        .all(|c| names.next().is_some_and(|n| n.eq_ignore_ascii_case(c)))
        || names.next().is_some()
    {
        let reason = format!(
            "missing header: expected \"{}\", found {}",
            AZURE_COLUMNS.join(","),
            shown(header)
        );
        return Err(TraceError::at(path, n, None, reason));
    }
    let mut prev_stamp = String::new();
    let mut rows = 0_usize;
    while !replay.done {
        let Some((n, row)) = lines.next()? else { break };
        let error = |field, reason: String| TraceError::at(path, n, field, reason);
        rows += 1;
        let mut f = row.split(',');
        let (Some(stamp), Some(context), Some(generated), None) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            let found = row.split(',').count();
            let reason = format!("expected 3 comma-separated fields, found {found}");
            return Err(error(None, reason));
        };
        let stamp = unquote(stamp.trim());
        let Some(t) = parse_datetime(stamp) else {
            let reason = format!(
                "expected a date-time like \"2023-11-16 18:15:46.6805900\", found {}",
                shown(stamp)
            );
            return Err(error(Some("TIMESTAMP"), reason));
        };
        let prompt = parse_u32(context).map_err(|r| error(Some("ContextTokens"), r))?;
        let output = parse_u32(generated).map_err(|r| error(Some("GeneratedTokens"), r))?;
        let place = replay.place(t).map_err(|e| {
            let reason = match e {
                PlaceError::Backwards(prev) => format!(
                    "goes back in time: {} is before line {prev}'s {}",
                    shown(stamp),
                    shown(&prev_stamp)
                ),
                PlaceError::TooLate => "more than 584 years after the first call".to_owned(),
            };
            error(Some("TIMESTAMP"), reason)
        })?;
        replay.placed(t, n);
        prev_stamp.clear();
        prev_stamp.push_str(stamp);
        if let Place::Keep(at, op) = place {
            replay.keep(tokens(op, prompt, output, at));
        }
    }
    if rows == 0 && !replay.done {
        return Err(TraceError::file(path, "no calls after the header"));
    }
    Ok(replay.w)
}

/// One Mooncake record, as typed as serde can check it.
#[derive(Deserialize)]
struct Record {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<HashId>,
}

/// A block id: any JSON integer in `i64` or `u64` range; negative ones are
/// kept as their two's-complement bits.
struct HashId(u64);

impl<'de> Deserialize<'de> for HashId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HashId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_u64<E>(self, v: u64) -> Result<HashId, E> {
                Ok(HashId(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<HashId, E> {
                Ok(HashId(v as u64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Reads a Mooncake JSON-lines trace from `input`; `path` names it in
/// errors.
pub fn read_mooncake<R: BufRead>(
    input: R,
    path: &Path,
    opts: &TraceOptions,
) -> Result<Workload, TraceError> {
    let mut replay = Replay::new(opts, path)?;
    let mut lines = Lines::new(input, path);
    let mut prev_ms = 0.0;
    let mut any = false;
    let mut hashes = Vec::new();
    while !replay.done {
        let Some((n, row)) = lines.next()? else { break };
        let error = |field, reason: String| TraceError::at(path, n, field, reason);
        any = true;
        let r: Record = match serde_json::from_str(row) {
            Ok(r) => r,
            Err(e) => {
                let (field, reason) = diagnose(row, &e);
                return Err(error(field, reason));
            }
        };
        // Below 2^64 ns; NaN and infinities cannot come out of JSON.
        let ns = (r.timestamp * 1e6).round();
        if !(0.0..1.8e19).contains(&ns) {
            let reason = format!(
                "expected a number of milliseconds from 0 to 1.8e13, found {}",
                r.timestamp
            );
            return Err(error(Some("timestamp"), reason));
        }
        let t = ns as i128;
        let place = replay.place(t).map_err(|e| {
            let reason = match e {
                PlaceError::Backwards(prev) => format!(
                    "goes back in time: {} is before line {prev}'s {prev_ms}",
                    r.timestamp
                ),
                PlaceError::TooLate => "more than 584 years after the first call".to_owned(),
            };
            error(Some("timestamp"), reason)
        })?;
        replay.placed(t, n);
        prev_ms = r.timestamp;
        if let Place::Keep(at, op) = place {
            hashes.clear();
            hashes.extend(r.hash_ids.iter().map(|h| h.0));
            let blocks = (replay.w.add_blocks(&hashes))
                .map_err(|e| error(Some("hash_ids"), e.to_string()))?;
            let call = tokens(op, r.input_length, r.output_length, at).with_blocks(blocks);
            replay.keep(call);
        }
    }
    if !any && !replay.done {
        return Err(TraceError::file(path, "empty file"));
    }
    Ok(replay.w)
}

/// Names the field and the fault of a Mooncake line serde refused.
fn diagnose(row: &str, err: &serde_json::Error) -> (Option<&'static str>, String) {
    use serde_json::Value;
    let v: Value = match serde_json::from_str(row) {
        Ok(v) => v,
        Err(e) => return (None, format!("not valid JSON: {}", at_column(&e))),
    };
    let Some(obj) = v.as_object() else {
        return (None, format!("expected a JSON object, found {}", json(&v)));
    };
    let count = |name| match obj.get(name) {
        None => Err("missing".to_owned()),
        Some(x) if x.as_u64().is_some_and(|n| n > u64::from(u32::MAX)) => Err(format!(
            "expected a non-negative integer up to {}, found {}",
            u32::MAX,
            json(x)
        )),
        Some(x) if x.as_u64().is_none() => Err(format!(
            "expected a non-negative integer, found {}",
            json(x)
        )),
        Some(_) => Ok(()),
    };
    let checks = [
        (
            "timestamp",
            match obj.get("timestamp") {
                None => Err("missing".to_owned()),
                Some(x) if !x.is_number() => Err(format!(
                    "expected a number of milliseconds, found {}",
                    json(x)
                )),
                Some(_) => Ok(()),
            },
        ),
        ("input_length", count("input_length")),
        ("output_length", count("output_length")),
        (
            "hash_ids",
            match obj.get("hash_ids") {
                None => Ok(()),
                Some(Value::Array(ids)) => ids
                    .iter()
                    .position(|x| x.as_i64().is_none() && x.as_u64().is_none())
                    .map_or(Ok(()), |i| {
                        Err(format!(
                            "element {i}: expected an integer, found {}",
                            json(&ids[i])
                        ))
                    }),
                Some(x) => Err(format!("expected an array of integers, found {}", json(x))),
            },
        ),
    ];
    for (field, check) in checks {
        if let Err(reason) = check {
            return (Some(field), reason);
        }
    }
    (None, format!("not a trace record: {}", at_column(err)))
}

/// A serde_json error's message with its column: the line is the trace's,
/// not serde's (always 1).
fn at_column(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    format!("{message} (column {})", e.column())
}

/// A JSON value as written, cut to [`SHOWN`] characters.
fn json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s,
    }
}

/// `s` without one pair of surrounding double quotes.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// A token count: decimal digits, at most `u32::MAX`.
fn parse_u32(field: &str) -> Result<u32, String> {
    let s = unquote(field.trim());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected a non-negative integer, found {}",
            shown(s)
        ));
    }
    s.parse().map_err(|_| {
        format!(
            "expected a non-negative integer up to {}, found {}",
            u32::MAX,
            shown(s)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_inputs_are_cut() {
        assert_eq!(shown("abc"), "\"abc\"");
        let long = "x".repeat(100);
        assert_eq!(shown(&long), format!("{:?}...", "x".repeat(60)));
        assert_eq!(parse_u32(" 12 "), Ok(12));
        assert_eq!(parse_u32("\"7\""), Ok(7));
    }
}
