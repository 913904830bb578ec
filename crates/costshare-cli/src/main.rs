//! `costshare`: the command line. Thin: it reads files, calls
//! `costshare-core`, and turns typed results and errors into text and exit
//! codes (0 success, 1 bad input, 2 usage).

mod commands;
mod demo;
mod output;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Examples:
  costshare demo
  costshare check examples/us-japan-sma-2022.toml
  costshare allocate --agreement examples/us-japan-sma-2022.toml --costs costs.csv --format csv
  costshare report --agreement examples/us-japan-sma-2022.toml --costs costs.csv --by party,fiscal_year
  costshare explain --agreement examples/us-japan-sma-2022.toml --costs costs.csv --id L-2022-04-OKI

Exit codes: 0 success, 1 bad input or unreadable file, 2 usage error.";

#[derive(Parser)]
#[command(
    name = "costshare",
    version,
    about = "Exact cost-sharing allocation under a written formula",
    long_about = "costshare turns a cost-sharing agreement (a TOML file) and recorded costs (CSV) into \
who owes what, under which clause, with every number exact to the minor unit and explainable.",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people (the default).
    Table,
    /// Machine-readable CSV as specified (pure data, no footer).
    Csv,
    /// JSON with amounts as exact decimal strings.
    Json,
}

#[derive(clap::Args, Clone, Debug)]
pub struct Inputs {
    /// The agreement file (TOML).
    #[arg(long, value_name = "FILE")]
    pub agreement: PathBuf,
    /// The costs file (CSV with id,date,category,amount[,currency,quantity,site,description,replaces]).
    #[arg(long, value_name = "FILE")]
    pub costs: PathBuf,
    /// Exchange rates (CSV with date,currency,rate), for lines in other currencies.
    #[arg(long, value_name = "FILE")]
    pub rates: Option<PathBuf>,
    /// Pro-rata periods ending after this date are provisional (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check an agreement file and report every problem in it.
    #[command(after_help = "Example:\n  costshare check examples/us-japan-sma-2022.toml")]
    Check {
        /// The agreement file (TOML).
        agreement: PathBuf,
        /// Accepted for symmetry with the other commands; checking does not depend on it.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
    },
    /// Allocate every cost line: one row per (line, party) with a non-zero amount.
    #[command(
        after_help = "Example:\n  costshare allocate --agreement a.toml --costs costs.csv --rates rates.csv --format csv"
    )]
    Allocate {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Total the allocation by dimensions.
    #[command(
        after_help = "Example:\n  costshare report --agreement a.toml --costs costs.csv --by party,fiscal_year --format csv"
    )]
    Report {
        #[command(flatten)]
        inputs: Inputs,
        /// Comma list of distinct dimensions: party, fiscal_year, category, site, month.
        #[arg(long, value_name = "DIMS")]
        by: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show how one line was allocated, layer by layer.
    #[command(after_help = "Example:\n  costshare explain --agreement a.toml --costs costs.csv --id L-2022-04-OKI")]
    Explain {
        #[command(flatten)]
        inputs: Inputs,
        /// The id of the line to explain.
        #[arg(long)]
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run the built-in U.S.–Japan 2022 example end to end and print its five-year report.
    #[command(after_help = "Examples:\n  costshare demo\n  costshare demo --write demo-out")]
    Demo {
        /// Also write the agreement, generated costs and rates into this directory.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
        /// Seed of the generated cost history.
        #[arg(long, default_value_t = 2022)]
        seed: u64,
        /// Pro-rata periods ending after this date are provisional (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// An error the binary reports: usage errors exit 2, everything else 1.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Input(String),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Check { agreement, as_of } => {
            commands::parse_as_of(as_of.as_deref()).and_then(|_| commands::check(&agreement))
        }
        Command::Allocate { inputs, format } => commands::allocate(&inputs, format),
        Command::Report { inputs, by, format } => commands::report(&inputs, &by, format),
        Command::Explain { inputs, id, format } => commands::explain(&inputs, &id, format),
        Command::Demo {
            write,
            seed,
            as_of,
            format,
        } => commands::demo(write.as_deref(), seed, as_of.as_deref(), format),
    };
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("costshare: error: cannot write output: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(CliError::Usage(msg)) => {
            eprintln!("costshare: usage error: {msg}");
            ExitCode::from(2)
        }
        Err(CliError::Input(msg)) => {
            let msg = msg.trim_end();
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}
