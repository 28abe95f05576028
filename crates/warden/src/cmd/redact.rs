//! `warden redact`: shows exactly what the gateway would send after redaction, and scores the
//! rule pack (`--jsonl` writes spans in `shared/tools/score_redaction.py` format).
//!
//! Streams: input is read in chunks of whole lines, chunks are scanned in parallel on a rayon
//! pool (`--threads`), and written in input order; at most two batches of chunks are in memory,
//! so memory stays flat on multi-GB input. Placeholders are numbered by the single writer, so
//! the same value gets the same placeholder across the whole run, as within one request.
//!
//! Errors name files, line numbers and byte offsets, never content.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use warden_minimize::{Engine, Placeholders, Span};

/// A chunk grows to this size, then ends at the next safe line boundary.
const CHUNK: usize = 1 << 20;
/// Hard cap: a chunk ends here even inside an open PEM block or YAML document.
const CHUNK_MAX: usize = 8 << 20;
/// Below this much input there is no progress bar.
const PROGRESS_MIN: u64 = 8 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to read, in order; standard input when none.
    pub files: Vec<PathBuf>,
    /// Print the number of redactions by kind to stderr (counts only, never values).
    #[arg(long)]
    pub summary: bool,
    /// Tenant rules (TOML, same format as config/redaction-rules.toml) loaded on top of the
    /// shipped pack.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Read `{"id":..,"text":".."}` lines and write `{"id":..,"spans":[{"start","end","kind"}]}`
    /// lines in input order, byte offsets into the UTF-8 text (score_redaction.py format).
    #[arg(long)]
    pub jsonl: bool,
    /// Worker threads; default: all cores.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// A run of whole lines from one input.
struct Chunk {
    input: usize,
    /// Byte offset of the chunk in its input.
    offset: u64,
    /// 1-based number of the chunk's first line in its input.
    first_line: u64,
    data: Vec<u8>,
}

/// What a worker made of one chunk.
enum Scanned {
    Text {
        text: String,
        spans: Vec<Span>,
    },
    Jsonl {
        out: String,
        counts: BTreeMap<String, u64>,
    },
}

#[derive(Deserialize)]
struct InLine {
    id: serde_json::Value,
    text: String,
}

#[derive(Serialize)]
struct OutLine<'a> {
    id: &'a serde_json::Value,
    spans: Vec<OutSpan<'a>>,
}

#[derive(Serialize)]
struct OutSpan<'a> {
    start: usize,
    end: usize,
    kind: &'a str,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let engine = match &args.rules {
        Some(path) => {
            let src = std::fs::read_to_string(path)
                .with_context(|| format!("reading rules {}", path.display()))?;
            Engine::with_tenant_rules_from(&path.display().to_string(), &src)?
        }
        None => Engine::builtin()?,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting worker threads")?;
    let names: Vec<String> = if args.files.is_empty() {
        vec!["<stdin>".to_owned()]
    } else {
        args.files.iter().map(|p| p.display().to_string()).collect()
    };
    let total: Option<u64> = if args.files.is_empty() {
        None
    } else {
        args.files
            .iter()
            .map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
            .sum()
    };

    let (tx, rx) = sync_channel::<anyhow::Result<Vec<Chunk>>>(1);
    let files = args.files.clone();
    let jsonl = args.jsonl;
    let reader = thread::spawn(move || read_all(files, jsonl, threads * 2, tx));

    let mut progress = Progress::new(total);
    let result = write_all(&engine, &pool, &rx, &names, args.jsonl, &mut progress);
    progress.finish();
    drop(rx);
    let _ = reader.join();
    let counts = result?;
    if args.summary {
        let mut err = io::stderr().lock();
        let total: u64 = counts.values().sum();
        writeln!(err, "redactions: {total}")?;
        for (kind, n) in &counts {
            writeln!(err, "  {kind}: {n}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Scans batches in parallel and writes them in order; returns redaction counts by kind.
fn write_all(
    engine: &Engine,
    pool: &rayon::ThreadPool,
    rx: &Receiver<anyhow::Result<Vec<Chunk>>>,
    names: &[String],
    jsonl: bool,
    progress: &mut Progress,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut table = Placeholders::new(false);
    let mut jsonl_counts: BTreeMap<String, u64> = BTreeMap::new();
    for batch in rx {
        let batch = batch?;
        let scanned: Vec<anyhow::Result<Scanned>> = pool.install(|| {
            batch
                .par_iter()
                .map(|c| scan(engine, c, &names[c.input], jsonl))
                .collect()
        });
        for (chunk, s) in batch.iter().zip(scanned) {
            let written = match s? {
                Scanned::Text { text, spans } => {
                    write_or_pipe(&mut out, table.replace(&text, &spans).as_bytes())
                }
                Scanned::Jsonl { out: lines, counts } => {
                    for (k, n) in counts {
                        *jsonl_counts.entry(k).or_default() += n;
                    }
                    write_or_pipe(&mut out, lines.as_bytes())
                }
            };
            if !written? {
                return Ok(if jsonl {
                    jsonl_counts
                } else {
                    table.counts().clone()
                });
            }
            progress.inc(chunk.data.len() as u64);
        }
    }
    if let Err(e) = out.flush()
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing standard output");
    }
    Ok(if jsonl {
        jsonl_counts
    } else {
        table.counts().clone()
    })
}

/// Writes `bytes`; `Ok(false)` when the reader went away (`warden redact | head`).
fn write_or_pipe(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<bool> {
    match out.write_all(bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing standard output"),
    }
}

/// One chunk, on a worker thread.
fn scan(engine: &Engine, chunk: &Chunk, name: &str, jsonl: bool) -> anyhow::Result<Scanned> {
    if !jsonl {
        let text = match std::str::from_utf8(&chunk.data) {
            Ok(t) => t.to_owned(),
            Err(e) => bail!(
                "{name}: invalid UTF-8 at byte offset {} (line {})",
                chunk.offset + e.valid_up_to() as u64,
                chunk.first_line
                    + chunk.data[..e.valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count() as u64
            ),
        };
        let spans = engine.find_spans(&text);
        return Ok(Scanned::Text { text, spans });
    }
    let mut out = String::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (i, line) in chunk.data.split(|&b| b == b'\n').enumerate() {
        let line_no = chunk.first_line + i as u64;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let doc: InLine = serde_json::from_slice(line).map_err(|e| {
            anyhow::anyhow!(
                "{name}: line {line_no}: not a {{\"id\",\"text\"}} JSON object: {}",
                json_reason(&e)
            )
        })?;
        let spans = engine.find_spans(&doc.text);
        let out_spans = spans
            .iter()
            .map(|s| {
                *counts.entry(s.kind.name().to_owned()).or_default() += 1;
                OutSpan {
                    start: s.start,
                    end: s.end,
                    kind: s.kind.name(),
                }
            })
            .collect();
        let line = serde_json::to_string(&OutLine {
            id: &doc.id,
            spans: out_spans,
        })?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(Scanned::Jsonl { out, counts })
}

/// serde_json's message without its "at line 1 column N" (the line is ours to name) and
/// without echoing input.
fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("invalid JSON at column {}", e.column()),
        Category::Data => {
            let msg = e.to_string();
            match msg.find("missing field") {
                Some(i) => msg[i..]
                    .split(" at line")
                    .next()
                    .unwrap_or("missing field")
                    .to_owned(),
                None => "\"id\" and a string \"text\" are required".to_owned(),
            }
        }
        Category::Io => "read error".to_owned(),
    }
}

/// The reader thread: chunks of whole lines from each input in turn, `per_batch` to a batch.
fn read_all(
    files: Vec<PathBuf>,
    jsonl: bool,
    per_batch: usize,
    tx: SyncSender<anyhow::Result<Vec<Chunk>>>,
) {
    let mut batch = Vec::with_capacity(per_batch);
    let inputs: Vec<Option<PathBuf>> = if files.is_empty() {
        vec![None]
    } else {
        files.into_iter().map(Some).collect()
    };
    for (input, path) in inputs.into_iter().enumerate() {
        let reader: Box<dyn Read> = match &path {
            None => Box::new(io::stdin()),
            Some(p) => match File::open(p) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    let _ = tx.send(Err(
                        anyhow::Error::new(e).context(format!("opening {}", p.display()))
                    ));
                    return;
                }
            },
        };
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let (mut offset, mut line) = (0u64, 1u64);
        // Bytes of a UTF-8 character cut by the chunk cap, carried into the next chunk.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let data = match read_chunk(&mut reader, jsonl) {
                Ok(mut d) => {
                    if !carry.is_empty() {
                        d.splice(0..0, carry.drain(..));
                    }
                    if !jsonl && !d.ends_with(b"\n") {
                        let keep = d.len() - incomplete_utf8_tail(&d);
                        if keep > 0 {
                            carry.extend_from_slice(&d[keep..]);
                            d.truncate(keep);
                        }
                    }
                    d
                }
                Err(e) => {
                    let name = path
                        .as_ref()
                        .map_or("<stdin>".to_owned(), |p| p.display().to_string());
                    let _ = tx.send(Err(anyhow::Error::new(e).context(format!("reading {name}"))));
                    return;
                }
            };
            if data.is_empty() {
                break;
            }
            let len = data.len() as u64;
            let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
            batch.push(Chunk {
                input,
                offset,
                first_line: line,
                data,
            });
            offset += len;
            line += lines;
            if batch.len() == per_batch && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}

/// Reads whole lines up to about `CHUNK` bytes. In text mode it does not stop inside an open
/// PEM block or an indented (YAML) block, so multi-line secrets are seen whole, up to `CHUNK_MAX`.
fn read_chunk(reader: &mut impl BufRead, jsonl: bool) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(CHUNK + 4096);
    loop {
        let before = data.len();
        let n = read_line_capped(reader, &mut data, CHUNK_MAX)?;
        if n == 0 {
            return Ok(data);
        }
        if data.len() >= CHUNK_MAX {
            if jsonl && !data.ends_with(b"\n") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a JSON line does not fit in {} MiB", CHUNK_MAX >> 20),
                ));
            }
            return Ok(data);
        }
        if data.len() >= CHUNK && (jsonl || safe_cut(&data, before, reader)?) {
            return Ok(data);
        }
    }
}

/// How many bytes at the end of `data` begin a UTF-8 character that is not complete yet.
fn incomplete_utf8_tail(data: &[u8]) -> usize {
    for back in 1..=3.min(data.len()) {
        let b = data[data.len() - back];
        if b & 0xC0 != 0x80 {
            // A lead byte: complete if the sequence it starts fits in what we have.
            let need = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if need > back { back } else { 0 };
        }
    }
    0
}

/// Appends one line (up to `cap` bytes in total) and returns the bytes read.
fn read_line_capped(
    reader: &mut impl BufRead,
    data: &mut Vec<u8>,
    cap: usize,
) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read);
        }
        let room = cap.saturating_sub(data.len()).max(1);
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) if i < room => (i + 1, true),
            _ => (buf.len().min(room), data.len() + buf.len().min(room) >= cap),
        };
        data.extend_from_slice(&buf[..take]);
        reader.consume(take);
        read += take;
        if done {
            return Ok(read);
        }
    }
}

/// Whether a chunk may end after its last line: not inside a PEM block, and the next line does
/// not continue an indented block.
fn safe_cut(data: &[u8], last_line: usize, reader: &mut impl BufRead) -> io::Result<bool> {
    let tail = &data[data.len().saturating_sub(64 << 10)..];
    let begin = memchr::memmem::rfind(tail, b"-----BEGIN ");
    let end = memchr::memmem::rfind(tail, b"-----END ");
    if begin.is_some_and(|b| end.is_none_or(|e| e < b)) {
        return Ok(false);
    }
    let last = &data[last_line..];
    if last.starts_with(b" ") || last.starts_with(b"\t") {
        return Ok(false);
    }
    let next = reader.fill_buf()?;
    Ok(!(next.starts_with(b" ") || next.starts_with(b"\t") || next.starts_with(b"-----END")))
}

/// A bytes/s progress bar on a terminal stderr, only for inputs over a few MB.
struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    enabled: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let enabled = io::stderr().is_terminal();
        Progress {
            bar: None,
            total,
            done: 0,
            enabled,
        }
    }

    fn inc(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        if self.bar.is_none()
            && (self.done >= PROGRESS_MIN || self.total.is_some_and(|t| t >= PROGRESS_MIN))
        {
            let bar = match self.total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
