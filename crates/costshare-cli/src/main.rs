//! `costshare`: the command line. Argument parsing, one call into
//! `costshare-app` per command, and printing: results rendered by
//! `costshare_app::render`, errors turned into text by [`messages`], exit
//! codes 0 success, 1 bad input, 2 usage.

mod messages;

use clap::{Parser, Subcommand, ValueEnum};
use costshare_app::{AppError, Session, Source, UsageError, input, ledger, query, render};
use costshare_store::VerifyOptions;
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
enum Format {
    /// Aligned columns for people (the default).
    Table,
    /// Machine-readable CSV as specified (pure data, no footer).
    Csv,
    /// JSON with amounts as exact decimal strings.
    Json,
}

impl From<Format> for render::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => render::Format::Table,
            Format::Csv => render::Format::Csv,
            Format::Json => render::Format::Json,
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
struct Inputs {
    /// The agreement file (TOML).
    #[arg(long, value_name = "FILE")]
    agreement: Option<PathBuf>,
    /// The costs file (CSV with id,date,category,amount[,currency,quantity,site,description,replaces]).
    #[arg(long, value_name = "FILE")]
    costs: Option<PathBuf>,
    /// Read agreement, costs and rates from a ledger (a SQLite file or a postgres:// URL) instead.
    #[arg(long, value_name = "LEDGER")]
    ledger: Option<String>,
    /// Exchange rates (CSV with date,currency,rate), for lines in other currencies.
    #[arg(long, value_name = "FILE")]
    rates: Option<PathBuf>,
    /// Pro-rata periods ending after this date are provisional (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<String>,
    /// Only lines dated on or after this day (allocated over the whole history).
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: Option<String>,
    /// Only lines dated on or before this day (allocated over the whole history).
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: Option<String>,
    /// Only lines dated in this fiscal year of the agreement, e.g. FY2023 (not with --from/--to).
    #[arg(long, value_name = "FY")]
    period: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Check an agreement file and report every problem in it; or, with --agreement, a costs file.
    #[command(
        after_help = "Examples:\n  costshare check examples/us-japan-sma-2022.toml\n  costshare check --agreement examples/us-japan-sma-2022.toml costs.csv --rates rates.csv"
    )]
    Check {
        /// The agreement file (TOML); with --agreement, a costs file (CSV) to check against it.
        file: PathBuf,
        /// Check FILE as a costs file against this agreement (nothing is recorded).
        #[arg(long, value_name = "AGREEMENT")]
        agreement: Option<PathBuf>,
        /// Exchange rates for the costs file's other currencies (with --agreement).
        #[arg(long, value_name = "FILE", requires = "agreement")]
        rates: Option<PathBuf>,
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
        #[command(flatten)]
        currency: CurrencyArgs,
        /// Also draw stacked bars per party per fiscal year into this SVG file (any --by).
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
        /// Write the parties as columns (party is added to --by if missing).
        #[arg(long, value_enum)]
        pivot: Option<Pivot>,
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
    /// Create a ledger (a SQLite file, or a postgres:// URL) holding an agreement.
    #[command(
        after_help = "Examples:\n  costshare init sma.ledger --agreement examples/us-japan-sma-2022.toml\n  costshare init postgres://postgres@127.0.0.1/test --agreement a.toml --rates rates.csv"
    )]
    Init {
        /// Where to create the ledger: a file path (SQLite) or a postgres:// URL.
        ledger: String,
        /// The agreement file (TOML); version 1, in force from its start date.
        #[arg(long, value_name = "FILE")]
        agreement: PathBuf,
        /// Exchange rates to record with it.
        #[arg(long, value_name = "FILE")]
        rates: Option<PathBuf>,
    },
    /// Record a costs file into a ledger: idempotent (a line already there is skipped) and atomic.
    #[command(
        after_help = "Examples:\n  costshare record sma.ledger costs-2022-04.csv\n  costshare record sma.ledger costs.csv --rates rates.csv"
    )]
    Record {
        /// The ledger.
        ledger: String,
        /// The costs file (CSV); a `replaces` column voids the line it names.
        costs: PathBuf,
        /// Exchange rates to record first.
        #[arg(long, value_name = "FILE")]
        rates: Option<PathBuf>,
        /// Also show what the new lines change in the allocation of earlier ones (late costs).
        #[arg(long)]
        impact: bool,
    },
    /// Void a recorded line; it stays in the journal and in `history`.
    #[command(after_help = "Example:\n  costshare void sma.ledger L-2022-04-OKI --reason \"entered twice\"")]
    Void {
        /// The ledger.
        ledger: String,
        /// The id of the line to void.
        id: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Put a new version of the agreement in force from the first day of a fiscal year.
    #[command(
        after_help = "Example:\n  costshare amend sma.ledger --agreement sma-extended.toml --effective 2025-04-01"
    )]
    Amend {
        /// The ledger.
        ledger: String,
        /// The new agreement file (same parties, currency and fiscal years).
        #[arg(long, value_name = "FILE")]
        agreement: PathBuf,
        /// Lines dated on or after this day fall under the new version.
        #[arg(long, value_name = "YYYY-MM-DD")]
        effective: String,
    },
    /// Close a fiscal year: issue its statement, frozen; later changes show as adjustments.
    #[command(after_help = "Example:\n  costshare close sma.ledger --period FY2022")]
    Close {
        /// The ledger.
        ledger: String,
        /// The fiscal year, e.g. FY2022.
        #[arg(long)]
        period: String,
        /// The date of the statement (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
        /// Close even if the year has not ended by the as-of date or still has lines in open
        /// pro-rata periods (the statement says it was forced).
        #[arg(long)]
        force: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Differences between closed statements and the allocation now, to settle in the current period.
    #[command(after_help = "Example:\n  costshare adjustments sma.ledger")]
    Adjustments {
        /// The ledger.
        ledger: String,
        /// Pro-rata periods ending after this date are provisional (default: today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// What was recorded, voided, amended and closed, when, and from which file.
    #[command(
        after_help = "Examples:\n  costshare history sma.ledger\n  costshare history sma.ledger --id L-2022-04-OKI"
    )]
    History {
        /// The ledger.
        ledger: String,
        /// Only the entries about this line.
        #[arg(long)]
        id: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Recompute the hash chain and check the derived state's seals; with --deep, also re-derive
    /// every closed statement and compare the derived state with a rebuild.
    #[command(
        after_help = "Examples:\n  costshare verify sma.ledger\n  costshare verify sma.ledger --expect-head HEAD   # HEAD: the hash the last write printed\n  costshare verify sma.ledger --deep\n  costshare verify sma.ledger --repair\n\nBy default verify is the integrity check, streaming the journal once in memory that does not\ngrow with it: every entry's seq, previous hash, recomputed hash and bytes; the derived state's\nmeta sealed under the head, and every bucket and id shard the one the meta names. It does not\nreplay the journal: closed statements are not re-derived. --deep replays it (seconds and\nabout a gigabyte at a million lines): each statement re-derived against the entries before it,\nthe derived state compared with a rebuild, blob for blob. --repair rebuilds a damaged derived\nstate; the rebuild is the replay's, so --repair implies --deep. A derived state missing or\nolder than the head is rebuilt from a replay too: then the deep check runs, and says so."
    )]
    Verify {
        /// The ledger.
        ledger: String,
        /// Also replay the journal: re-derive every closed statement, compare the derived state
        /// with a rebuild from the journal (the default checks the chain and the seals only).
        #[arg(long)]
        deep: bool,
        /// Rebuild a damaged derived state from the journal (without it, damage exits 1);
        /// implies --deep.
        #[arg(long)]
        repair: bool,
        /// The journal must end at this head hash (as printed by the last command that wrote it);
        /// exit 1 if it does not (a journal cut off at the end is otherwise a shorter valid chain).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
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
        /// With --write: overwrite files there whose content differs (without it, exit 1).
        #[arg(long, requires = "write")]
        force: bool,
        /// Build the demo ledger in a temporary folder and serve it with the dashboard
        /// (prints a one-time admin token and the URL to open).
        #[arg(long, conflicts_with = "write")]
        serve: bool,
        /// With --serve: the address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080", requires = "serve")]
        listen: String,
    },
    /// Serve a ledger over HTTP: the /api/v1 API and the dashboard, for a team.
    #[command(
        after_help = "Examples:\n  costshare token create sma.ledger --role admin --name me\n  costshare serve sma.ledger --listen 127.0.0.1:8080\n  curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/api/v1/report?by=party&format=csv'\n\nEvery request but /healthz, / and /openapi.json needs a token (costshare token create).\nSeveral processes may serve one postgres:// ledger: all state is in the database."
    )]
    Serve {
        /// The ledger: a SQLite file path or a postgres:// URL.
        ledger: String,
        /// The address to listen on (port 0: any free port; the first line printed says which).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest request body, in MiB.
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        max_body_mib: usize,
        /// Do not log each request on stderr.
        #[arg(long)]
        quiet: bool,
    },
    /// Access tokens of `serve`: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Export the allocation for other tools: Ledger, Beancount, tidy CSV, JSON or an Excel workbook.
    #[command(
        after_help = "Examples:\n  costshare export --ledger sma.ledger --format beancount -o sma.beancount\n  costshare export --agreement a.toml --costs costs.csv --format xlsx -o allocation.xlsx"
    )]
    Export {
        #[command(flatten)]
        inputs: Inputs,
        /// Export format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to this file (`-`, or none: stdout; xlsx needs a file).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The same costs allocated under other agreements, side by side, with the differences.
    #[command(
        after_help = "Example:\n  costshare compare --agreement examples/us-japan-sma-2022.toml --costs demo/costs.csv --rates demo/rates.csv \\\n      --against examples/us-japan-sma-2016.toml --against examples/us-japan-fourfold-proposal.toml --by party\n\nColumns: the dimensions, then amount,amount_against,delta (one --against) or amount, then\namount_<id>,delta_<id> per --against (<id> its [agreement] id; two with one id are a usage error).\ndelta = amount - the other agreement's amount. Lines another agreement cannot take (a category it\nlacks, dates outside its term) are UNALLOCATED under it, with a warning."
    )]
    Compare {
        #[command(flatten)]
        inputs: Inputs,
        /// An agreement (TOML) to allocate the same costs under; repeat for several.
        #[arg(long, value_name = "FILE", required = true)]
        against: Vec<PathBuf>,
        /// Comma list of distinct dimensions: party, fiscal_year, category, site, month.
        #[arg(long, value_name = "DIMS")]
        by: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also draw the delta per party into this SVG file (any --by).
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
        #[command(flatten)]
        currency: CurrencyArgs,
    },
    /// Record transfers between parties into a ledger: idempotent and atomic.
    #[command(after_help = "Example:\n  costshare pay sma.ledger payments.csv")]
    Pay {
        /// The ledger.
        ledger: String,
        /// The payments file (CSV with id,date,from,to,amount[,currency,description]).
        payments: PathBuf,
    },
    /// Per party: what the agreement obliges it to bear, what it paid, and its balance.
    #[command(
        after_help = "Examples:\n  costshare settle --ledger sma.ledger --period FY2023\n  costshare settle --agreement a.toml --costs costs.csv --payments payments.csv --transfers --format csv"
    )]
    Settle {
        #[command(flatten)]
        inputs: Inputs,
        /// Transfers between parties (CSV with id,date,from,to,amount[,currency,description]);
        /// on a ledger, added to the payments it recorded.
        #[arg(long, value_name = "FILE")]
        payments: Option<PathBuf>,
        /// Print the transfers that settle every balance (from,to,amount) instead.
        #[arg(long)]
        transfers: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        currency: CurrencyArgs,
    },
    /// How much of each ceiling (capped layer and period) is used, when use reached the cap,
    /// and when the run rate so far says it will.
    #[command(
        after_help = "Examples:\n  costshare ceilings --ledger sma.ledger\n  costshare ceilings --agreement a.toml --costs costs.csv --format csv --as-of 2024-09-30"
    )]
    Ceilings {
        #[command(flatten)]
        inputs: Inputs,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also draw each ceiling's use over time into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
        #[command(flatten)]
        currency: CurrencyArgs,
    },
    /// Project each category's costs month by month at the run rate of the last twelve complete
    /// months, allocate actual and projected lines together, and total them by dimensions.
    #[command(
        after_help = "Example:\n  costshare forecast --ledger sma.ledger --until 2027-03-31 --by party,fiscal_year --as-of 2026-11-15"
    )]
    Forecast {
        #[command(flatten)]
        inputs: Inputs,
        /// Project months ending on or before this date.
        #[arg(long, value_name = "YYYY-MM-DD")]
        until: String,
        /// Comma list of distinct dimensions: party, fiscal_year, category, site, month.
        #[arg(long, value_name = "DIMS")]
        by: String,
        /// A budget CSV (month,category,amount[,quantity,site]); its rows replace the run rate
        /// for the months and categories they cover.
        #[arg(long, value_name = "FILE")]
        budget: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line (the ledger keeps only its hash).
    #[command(
        after_help = "Examples:\n  costshare token create sma.ledger --role viewer --name auditor\n  costshare token create sma.ledger --role recorder --party JP --name mof-japan"
    )]
    Create {
        /// The ledger.
        ledger: String,
        /// viewer (reads), recorder (also records costs, voids, payments) or admin (also amends,
        /// closes periods, manages tokens).
        #[arg(long, value_enum)]
        role: TokenRole,
        /// Scope the token to this party: it sees only the lines the party shares in.
        #[arg(long, value_name = "ID")]
        party: Option<String>,
        /// A name for the log and the journal's `who` (default: the role and a number).
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
    },
    /// List the ledger's tokens (names, roles, parties, when created and revoked; never the secret).
    List {
        /// The ledger.
        ledger: String,
    },
    /// Revoke a token by name: it stops working at once, in every server process.
    Revoke {
        /// The ledger.
        ledger: String,
        /// The token's name.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TokenRole {
    Viewer,
    Recorder,
    Admin,
}

impl From<TokenRole> for costshare_app::tokens::Role {
    fn from(r: TokenRole) -> Self {
        match r {
            TokenRole::Viewer => Self::Viewer,
            TokenRole::Recorder => Self::Recorder,
            TokenRole::Admin => Self::Admin,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// A Ledger 3 journal (`ledger -f FILE balance`).
    Ledger,
    /// A Beancount file (`bean-check`, `bean-query`).
    Beancount,
    /// Tidy CSV: id,date,category,site,party,amount,currency.
    Csv,
    /// The allocation as JSON, amounts as decimal strings, with provenance.
    Json,
    /// An Excel workbook: the allocation and a sheet per report.
    Xlsx,
}

impl From<ExportFormat> for costshare_app::export::ExportFormat {
    fn from(f: ExportFormat) -> Self {
        use costshare_app::export::ExportFormat as E;
        match f {
            ExportFormat::Ledger => E::Ledger,
            ExportFormat::Beancount => E::Beancount,
            ExportFormat::Csv => E::Csv,
            ExportFormat::Json => E::Json,
            ExportFormat::Xlsx => E::Xlsx,
        }
    }
}

/// `--currency CODE --rate-policy POLICY` of `report` and `compare`.
#[derive(clap::Args, Clone, Debug)]
struct CurrencyArgs {
    /// Report amounts in this currency (needs its rates: --rates, or the ledger's recorded rates).
    #[arg(long, value_name = "CODE")]
    currency: Option<String>,
    /// Which rate converts a line: spot (latest on or before its date), fiscal-year-average
    /// (exact mean of the rates dated in its fiscal year) or fixed:RATE (agreement currency per CODE).
    #[arg(long, value_name = "POLICY")]
    rate_policy: Option<String>,
}

impl CurrencyArgs {
    fn request(&self) -> Result<Option<costshare_app::currency::CurrencyRequest>, UsageError> {
        costshare_app::currency::CurrencyRequest::from_options(self.currency.as_deref(), self.rate_policy.as_deref())
    }
}

impl Inputs {
    fn source(&self) -> Result<Source, UsageError> {
        Source::from_options(
            self.ledger.as_deref(),
            self.agreement.as_deref(),
            self.costs.as_deref(),
            self.rates.as_deref(),
        )
    }
    fn as_of(&self) -> Result<costshare_core::Date, UsageError> {
        input::as_of(self.as_of.as_deref())
    }
    fn filter(&self) -> Result<costshare_app::filter::DateFilter, UsageError> {
        costshare_app::filter::DateFilter::parse(self.from.as_deref(), self.to.as_deref(), self.period.as_deref())
    }
}

/// What `--pivot` turns into columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Pivot {
    /// One column per party (then UNALLOCATED, then total); adds `party` to --by if missing.
    Party,
}

/// `COSTSHARE_REPORT_PATH=general` asks for the general report path (tests
/// and benchmarks compare the paths); `=explain` says on stderr which path ran.
fn report_path_env() -> (costshare_app::ReportPath, bool) {
    match std::env::var("COSTSHARE_REPORT_PATH").as_deref() {
        Ok("general") => (costshare_app::ReportPath::General, false),
        Ok("explain") => (costshare_app::ReportPath::Auto, true),
        _ => (costshare_app::ReportPath::Auto, false),
    }
}

/// Run one command: its rendered output, or the error.
fn run(command: Command) -> Result<String, AppError> {
    let mut stderr = messages::Stderr::new();
    let mut s = Session::new(&mut stderr);
    let out = match command {
        Command::Check {
            file,
            agreement,
            rates,
            as_of,
        } => {
            input::as_of(as_of.as_deref())?;
            match agreement {
                Some(a) => render::costs_check(&query::check_costs(&a, &file, rates.as_deref(), &mut s)?),
                None => {
                    let la = input::load_agreement(&file, s.observer)?;
                    render::check(&file.display().to_string(), &la)
                }
            }
        }
        Command::Allocate { inputs, format } => {
            let (as_of, source, filter) = (inputs.as_of()?, inputs.source()?, inputs.filter()?);
            render::allocation(
                &query::allocate_filtered(&source, as_of, &filter, &mut s)?,
                format.into(),
            )
        }
        Command::Report {
            inputs,
            by,
            format,
            currency,
            chart,
            pivot,
        } => {
            let mut dims = query::dims(&by)?;
            if pivot == Some(Pivot::Party) {
                dims = query::pivot_dims(&dims);
            }
            let (as_of, source, filter) = (inputs.as_of()?, inputs.source()?, inputs.filter()?);
            if let Some(req) = currency.request()? {
                if pivot.is_some() {
                    return Err(UsageError::PivotWithCurrency.into());
                }
                let r = costshare_app::currency::report(&source, &dims, as_of, &req, &filter, &mut s)?;
                if let Some(file) = &chart {
                    // the chart stays in the agreement currency
                    let plain =
                        query::report_filtered(&source, &costshare_app::chart::REPORT_DIMS, as_of, &filter, &mut s)?;
                    costshare_app::chart::save(
                        file,
                        &costshare_app::chart::report_svg(&source, as_of, &plain, &mut s)?,
                    )?;
                }
                return Ok(render::currency::report(&r, format.into()));
            }
            let (path, tell) = report_path_env();
            s.report_path = path;
            // CSV carries no provisional flags: the derived state may answer
            s.row_flags = format != Format::Csv;
            let mut r = query::report_filtered(&source, &dims, as_of, &filter, &mut s)?;
            r.pivot = pivot == Some(Pivot::Party);
            if tell {
                match &r.path {
                    query::PathTaken::General(why) => eprintln!("costshare: report path: general ({why})"),
                    query::PathTaken::Streaming => eprintln!("costshare: report path: streaming"),
                    query::PathTaken::Derived => eprintln!("costshare: report path: derived state"),
                    query::PathTaken::DerivedLines => eprintln!("costshare: report path: derived state, every line"),
                    query::PathTaken::Replay => eprintln!("costshare: report path: replay"),
                }
            }
            if let Some(file) = &chart {
                let svg = costshare_app::chart::report_svg(&source, as_of, &r, &mut s)?;
                costshare_app::chart::save(file, &svg)?;
            }
            render::report(&r, format.into())
        }
        Command::Explain { inputs, id, format } => {
            if format == Format::Csv {
                return Err(UsageError::ExplainCsv.into());
            }
            keep_freed_memory();
            // a filter does not choose the line; it is still checked
            let (as_of, source, _) = (inputs.as_of()?, inputs.source()?, inputs.filter()?);
            render::explanation(&query::explain(&source, &id, as_of, &mut s)?, format.into())
        }
        Command::Init {
            ledger: target,
            agreement,
            rates,
        } => render::init(&ledger::init(&target, &agreement, rates.as_deref(), s.observer)?),
        Command::Record {
            ledger: target,
            costs,
            rates,
            impact,
        } => {
            // a few late lines: milliseconds, most of them page faults on
            // fresh memory; a bulk load keeps the default (its peak memory)
            if std::fs::metadata(&costs).is_ok_and(|m| m.len() < SMALL_COSTS_FILE) {
                keep_freed_memory();
            }
            render::record(&ledger::record(&target, &costs, rates.as_deref(), impact, s.observer)?)
        }
        Command::Void {
            ledger: target,
            id,
            reason,
        } => render::void(&ledger::void(&target, &id, &reason)?),
        Command::Amend {
            ledger: target,
            agreement,
            effective,
        } => {
            let eff = ledger::effective(&effective)?;
            render::amend(&ledger::amend(&target, &agreement, eff, s.observer)?)
        }
        Command::Close {
            ledger: target,
            period,
            as_of,
            force,
            format,
        } => {
            let as_of = input::as_of(as_of.as_deref())?;
            render::statement(&ledger::close(&target, &period, as_of, force)?, format.into())
        }
        Command::Adjustments {
            ledger: target,
            as_of,
            format,
        } => {
            let as_of = input::as_of(as_of.as_deref())?;
            render::adjustments(&ledger::adjustments(&target, as_of)?, format.into())
        }
        Command::History {
            ledger: target,
            id,
            format,
        } => render::history(&ledger::history(&target, id.as_deref())?, format.into()),
        Command::Verify {
            ledger: target,
            deep,
            repair,
            expect_head,
        } => {
            let opts = VerifyOptions {
                deep,
                repair,
                expect_head,
            };
            render::verify(&ledger::verify(&target, &opts)?)
        }
        Command::Demo {
            serve: true,
            listen,
            seed,
            ..
        } => return demo_serve(seed, &listen),
        Command::Serve {
            ledger,
            listen,
            max_body_mib,
            quiet,
        } => {
            let mut cfg = costshare_server::Config::new(&ledger, &listen);
            cfg.body_limit = max_body_mib.saturating_mul(1024 * 1024);
            cfg.log = !quiet;
            return serve(cfg, None);
        }
        Command::Token(t) => match t {
            TokenCommand::Create {
                ledger,
                role,
                party,
                name,
            } => {
                let c = costshare_app::tokens::create(&ledger, role.into(), party.as_deref(), name.as_deref())?;
                format!(
                    "created token `{}` ({}{}) for {ledger}; it is shown once, keep it secret:\n{}\n",
                    c.name,
                    c.role.as_str(),
                    c.party
                        .as_deref()
                        .map(|p| format!(", scoped to {p}"))
                        .unwrap_or_default(),
                    c.token
                )
            }
            TokenCommand::List { ledger } => {
                let rows = costshare_app::tokens::list(&ledger)?;
                let mut out = String::from("name\trole\tparty\tcreated\trevoked\n");
                for t in rows {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        t.name,
                        t.role,
                        t.party.as_deref().unwrap_or("-"),
                        t.created_at,
                        t.revoked_at.as_deref().unwrap_or("-")
                    ));
                }
                out
            }
            TokenCommand::Revoke { ledger, name } => {
                costshare_app::tokens::revoke(&ledger, &name)?;
                format!("revoked token `{name}` of {ledger}\n")
            }
        },
        Command::Demo {
            write,
            seed,
            as_of,
            format,
            force,
            ..
        } => {
            let as_of = input::as_of(as_of.as_deref())?;
            let d = costshare_app::demo::run_forced(write.as_deref(), force, seed, as_of)?;
            render::demo::demo(&d, format.into())?
        }
        Command::Export { inputs, format, output } => {
            use costshare_app::export::{self, Exported};
            let format: export::ExportFormat = format.into();
            let file = output.filter(|o| o.as_os_str() != "-");
            if file.is_none() && format.is_binary() {
                return Err(UsageError::ExportBinaryToStdout.into());
            }
            let (as_of, source) = (inputs.as_of()?, inputs.source()?);
            let r = export::export(&source, as_of, format, &inputs.filter()?, &mut s)?;
            match file {
                Some(path) => {
                    export::write(&path, r.output.as_bytes())?;
                    render::export::summary(&path.display().to_string(), &r)
                }
                None => match r.output {
                    Exported::Text(t) => t,
                    Exported::Binary(_) => return Err(UsageError::ExportBinaryToStdout.into()),
                },
            }
        }
        Command::Compare {
            inputs,
            against,
            by,
            format,
            currency,
            chart,
        } => {
            let dims = query::dims(&by)?;
            let (as_of, source, req) = (inputs.as_of()?, inputs.source()?, currency.request()?);
            let filter = inputs.filter()?;
            let r = costshare_app::compare::compare_filtered(
                &source,
                &against,
                &dims,
                as_of,
                req.as_ref(),
                &filter,
                &mut s,
            )?;
            if let Some(file) = &chart {
                let svg =
                    costshare_app::chart::compare_svg(&source, &against, as_of, req.as_ref(), &filter, &r, &mut s)?;
                costshare_app::chart::save(file, &svg)?;
            }
            render::compare::compare(&r, format.into())
        }
        Command::Pay {
            ledger: target,
            payments,
        } => render::settle::pay(&costshare_app::settle::pay(&target, &payments)?),
        Command::Settle {
            inputs,
            payments,
            transfers,
            format,
            currency,
        } => {
            let (as_of, source, req) = (inputs.as_of()?, inputs.source()?, currency.request()?);
            let filter = inputs.filter()?;
            let r =
                costshare_app::settle::settle(&source, payments.as_deref(), &filter, as_of, req.as_ref(), s.observer)?;
            render::settle::settle(&r, transfers, format.into())
        }
        Command::Ceilings {
            inputs,
            format,
            chart,
            currency,
        } => {
            let (as_of, source, filter) = (inputs.as_of()?, inputs.source()?, inputs.filter()?);
            let r = match currency.request()? {
                None => costshare_app::ceilings::ceilings_filtered(&source, as_of, &filter, s.observer)?,
                Some(req) => costshare_app::ceilings::ceilings_converted(&source, as_of, &filter, &req, s.observer)?,
            };
            if let Some(file) = &chart {
                costshare_app::chart::save(file, &costshare_app::chart::ceilings_svg(&r))?;
            }
            render::ceilings::ceilings(&r, format.into())
        }
        Command::Forecast {
            inputs,
            until,
            by,
            budget,
            format,
        } => {
            let dims = query::dims(&by)?;
            let until = costshare_core::Date::parse(&until).ok_or(UsageError::Until(until))?;
            let (as_of, source) = (inputs.as_of()?, inputs.source()?);
            let filter = inputs.filter()?;
            let r = costshare_app::forecast::forecast_filtered(
                &source,
                until,
                &dims,
                budget.as_deref(),
                as_of,
                &filter,
                s.observer,
            )?;
            render::forecast::forecast(&r, format.into())
        }
    };
    Ok(out)
}

/// Serve until stopped; the first line on stdout says where (and, for the
/// demo, the token and the URL to open).
fn serve(cfg: costshare_server::Config, banner: Option<String>) -> Result<String, AppError> {
    let r = costshare_server::serve(cfg, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        if let Some(b) = &banner {
            let _ = write!(out, "{}", b.replace("{addr}", &addr.to_string()));
        }
        let _ = out.flush();
    });
    match r {
        Ok(()) => Ok(String::new()),
        Err(costshare_server::ServerError::Ledger(e)) => Err(e),
        Err(costshare_server::ServerError::Listen { addr, error }) => {
            Err(AppError::Token(format!("cannot listen on {addr}: {error}")))
        }
        Err(costshare_server::ServerError::Runtime(error)) => {
            Err(AppError::Token(format!("the server stopped: {error}")))
        }
    }
}

/// `demo --serve`: the demo ledger built in a temporary folder, an admin
/// token, and the server.
fn demo_serve(seed: u64, listen: &str) -> Result<String, AppError> {
    let dir = std::env::temp_dir().join(format!("costshare-demo-{}", std::process::id()));
    let as_of = input::as_of(None)?;
    costshare_app::demo::run_forced(Some(&dir), true, seed, as_of)?;
    let ledger = dir.join("demo.ledger");
    let _ = std::fs::remove_file(&ledger);
    let target = ledger.display().to_string();
    let mut quiet = costshare_app::Quiet;
    let (agreement, costs, rates) = (dir.join("agreement.toml"), dir.join("costs.csv"), dir.join("rates.csv"));
    ledger::init(&target, &agreement, Some(&rates), &mut quiet)?;
    ledger::record(&target, &costs, None, false, &mut quiet)?;
    let c = costshare_app::tokens::create(&target, costshare_app::tokens::Role::Admin, None, Some("demo-admin"))?;
    let banner = format!(
        "demo ledger: {target} (removed when the server stops; Ctrl-C stops it)\nadmin token (shown once): {}\nopen: http://{{addr}}/#token={}\n",
        c.token, c.token
    );
    let out = serve(costshare_server::Config::new(&target, listen), Some(banner));
    // the temporary folder goes with the server (Ctrl-C stops both)
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// A costs file this small is late lines (the derived state's fast path
/// takes up to 10,000 rows, about 600 KB).
const SMALL_COSTS_FILE: u64 = 1 << 20;

/// For a command of milliseconds over megabytes of blobs (`explain`, a late
/// line): glibc's malloc serves blocks up to 32 MB from its heap and keeps
/// up to 64 MB freed there, instead of mapping each large block afresh and
/// unmapping it when freed: the same bytes are reused instead of faulted
/// in again (a page fault per 4 KB was a quarter of a term-capped late
/// line's CPU). Not for bulk loads: their peak memory would grow (BENCHMARKS.md,
/// "Late lines and `explain` of a capped line: layout 6"). No effect on
/// what is computed.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets malloc's parameters; called before the
        // command allocates its large blocks, on the main thread (no other
        // thread is running yet)
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 64 << 20);
        }
    }
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
    // the one value is `replay`: another (a typo) would silently measure or
    // test the fast path instead (found by a fresh user)
    if let Some(v) = std::env::var_os("COSTSHARE_LEDGER_PATH")
        && v != "replay"
    {
        eprintln!(
            "costshare: warning: COSTSHARE_LEDGER_PATH={} is not known and is ignored (its one value is `replay`)",
            v.to_string_lossy()
        );
    }
    match run(cli.command) {
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
        Err(AppError::Usage(u)) => {
            eprintln!("costshare: usage error: {}", messages::usage(&u));
            ExitCode::from(2)
        }
        Err(e) => {
            let msg = messages::error(&e);
            eprintln!("{}", msg.trim_end());
            ExitCode::from(1)
        }
    }
}
