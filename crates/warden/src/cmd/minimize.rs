//! `warden minimize`: show what would be sent for one data type, after redaction and budgets.
//!
//! Reads a file or stdin and runs it through `warden_minimize::minimize_request`, the same
//! composition the gateway runs on every request (gate, redact with the built-in rule pack,
//! cut to the type's byte budget with `warden-budget`), and prints the result. `--explain` prints the summary
//! (counts only) to stderr; `--templates` prints `LINE<TAB>TEMPLATE_ID` per input line instead,
//! for `score_templates.py`: it mines the raw input, since redaction may join lines (a PEM
//! block becomes one placeholder) and the ids must count input lines; ids carry no text, so
//! invalid UTF-8 is read lossily there, with a warning. Owns only the wiring: every rule and
//! the order of the steps live in the library crates.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use warden_budget::{Limits, mine};
use warden_minimize::{Engine, RequestPart, minimize_request};
use warden_policy::{DataType, TenantSettings};

/// Inputs above this size get a progress bar when stderr is a terminal.
const PROGRESS_THRESHOLD: u64 = 4 << 20;

/// Arguments of `warden minimize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data type of the input.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    data_type: TypeArg,
    /// Byte budget; defaults to the platform budget of the type.
    #[arg(long, value_name = "BYTES")]
    budget: Option<usize>,
    /// Print the minimization summary (counts only) to stderr.
    #[arg(long)]
    explain: bool,
    /// Print `LINE<TAB>TEMPLATE_ID` for each input log line instead (needs `--type logs`).
    #[arg(long)]
    templates: bool,
    /// Input file; stdin when absent.
    file: Option<PathBuf>,
}

/// The data types a user names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TypeArg {
    Logs,
    Metrics,
    Traces,
    Profiles,
    Config,
    Cluster,
    Code,
}

/// Runs `warden minimize`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data_type = args.data_type.data_type();
    if args.templates && data_type != DataType::Logs {
        bail!(
            "--templates needs --type logs (got --type {})",
            args.data_type.name()
        );
    }
    let bytes = read_input(args.file.as_ref())?;
    let name = input_name(args.file.as_ref());
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = match std::str::from_utf8(&bytes) {
        Ok(text) if args.templates => write_templates(&mut out, text),
        Ok(text) => minimize(&mut out, &args, data_type, text),
        // Template ids carry no text, so a stray byte must not cost the whole log its ids:
        // read it as U+FFFD (line numbers are unchanged) and say so.
        Err(e) if args.templates => {
            eprintln!(
                "warning: {name} is not valid UTF-8 (first invalid byte at offset {}); invalid bytes read as U+FFFD",
                e.valid_up_to()
            );
            write_templates(&mut out, &String::from_utf8_lossy(&bytes))
        }
        Err(e) => bail!(
            "{name} is not valid UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ),
    };
    match written.and_then(|()| out.flush().map_err(anyhow::Error::from)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A reader that went away (`| head`) is not an error of ours.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

fn minimize(
    out: &mut impl Write,
    args: &Args,
    data_type: DataType,
    text: &str,
) -> anyhow::Result<()> {
    let engine = Engine::builtin().context("loading the built-in redaction rules")?;
    let bar = spinner(text.len() as u64);
    bar.set_message("minimizing");
    // The gateway's own composition (gate, redact, budgets, summary) on one part, for a
    // tenant that allows this type and whose budgets are `--budget`.
    let budget = args
        .budget
        .unwrap_or_else(|| Limits::default_for(data_type));
    let mut settings = TenantSettings::disabled("cli");
    settings.enabled = true;
    settings.allowed_data_types.insert(data_type);
    settings.github_integration = true;
    // Over a budget, show the cut (instructions included) rather than refuse.
    settings.on_disallowed_data = warden_policy::OnDisallowedData::Drop;
    let limits = Limits {
        request_bytes: budget,
        per_type: [(data_type, budget)].into_iter().collect(),
    };
    let part = RequestPart::text(data_type, text);
    let result = minimize_request(&engine, &settings, &limits, vec![part])?;
    bar.finish_and_clear();
    let Some(sent) = result.parts.first() else {
        bail!("minimization returned no part");
    };
    out.write_all(sent.text.as_bytes())?;
    if args.explain {
        let summary = &result.summary;
        let counts = summary
            .by_data_type
            .get(&data_type)
            .copied()
            .unwrap_or_default();
        let redactions: Vec<String> = summary
            .redactions
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let total = summary.total_redactions();
        let mut err = io::stderr().lock();
        writeln!(err, "minimize {}:", args.data_type.name())?;
        writeln!(err, "  input:      {} bytes", counts.bytes_before)?;
        match total {
            0 => writeln!(
                err,
                "  redacted:   {} bytes, no redactions",
                counts.bytes_redacted
            )?,
            _ => writeln!(
                err,
                "  redacted:   {} bytes, {total} redactions ({})",
                counts.bytes_redacted,
                redactions.join(", ")
            )?,
        }
        writeln!(
            err,
            "  sent:       {} bytes (budget {budget})",
            counts.bytes_after
        )?;
        if let Some(report) = &sent.budget {
            writeln!(err, "  budget:     {}", report.method)?;
        }
    }
    Ok(())
}

fn write_templates(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    let mined = mine(text.lines());
    for (i, id) in mined.line_templates.iter().enumerate() {
        writeln!(out, "{}\t{id}", i + 1)?;
    }
    Ok(())
}

fn input_name(file: Option<&PathBuf>) -> String {
    file.map_or_else(|| "stdin".to_owned(), |p| p.display().to_string())
}

/// Reads the whole input, with a progress bar for large inputs on a terminal.
fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let (mut reader, size): (Box<dyn Read>, Option<u64>) = match file {
        Some(path) => {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        }
        None => (Box::new(io::stdin().lock()), None),
    };
    let mut buf = Vec::with_capacity(size.unwrap_or(0).min(1 << 30) as usize);
    let mut chunk = vec![0u8; 1 << 20];
    let mut bar: Option<ProgressBar> = None;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", input_name(file))),
        };
        buf.extend_from_slice(&chunk[..n]);
        let read = buf.len() as u64;
        if bar.is_none() && read.max(size.unwrap_or(0)) > PROGRESS_THRESHOLD {
            bar = Some(progress(size.unwrap_or(0)));
        }
        if let Some(b) = &bar {
            b.set_message("reading");
            b.set_position(read);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(buf)
}

/// A progress bar on stderr, hidden unless stderr is a terminal and the input is large.
fn progress(len: u64) -> ProgressBar {
    if len <= PROGRESS_THRESHOLD || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:20} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A spinner on stderr for the phases after reading, under the same conditions as [`progress`].
fn spinner(len: u64) -> ProgressBar {
    if len <= PROGRESS_THRESHOLD || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

// === impl TypeArg ===

impl TypeArg {
    fn data_type(self) -> DataType {
        match self {
            TypeArg::Logs => DataType::Logs,
            TypeArg::Metrics => DataType::Metrics,
            TypeArg::Traces => DataType::Traces,
            TypeArg::Profiles => DataType::Profiles,
            TypeArg::Config => DataType::ConfigMetadata,
            TypeArg::Cluster => DataType::ClusterInfo,
            TypeArg::Code => DataType::SourceCode,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TypeArg::Logs => "logs",
            TypeArg::Metrics => "metrics",
            TypeArg::Traces => "traces",
            TypeArg::Profiles => "profiles",
            TypeArg::Config => "config",
            TypeArg::Cluster => "cluster",
            TypeArg::Code => "code",
        }
    }
}
