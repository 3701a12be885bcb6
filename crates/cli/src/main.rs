//! `psformer`: the command-line tool.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod anchor;
mod bench_ckks;
mod demo;
mod timing;

use clap::{Parser, Subcommand};

/// Polynomial transformers with Power-Softmax attention, run over CKKS-encrypted data.
#[derive(Parser)]
#[command(name = "psformer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs an encrypted computation end to end on 128-bit parameters and reports precision
    /// and latency.
    Demo(demo::DemoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Lists the named CKKS parameter sets with their security and sizes.
    Params,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// CKKS primitives (encode, encrypt, decrypt, add, pt-mul, mul+relin, rescale, rotate,
    /// hoisted rotations) at N = 2^14, 2^15, 2^16, 1 and 2 threads.
    Ckks(bench_ckks::BenchCkksArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(BenchCommand::Ckks(args)) => bench_ckks::run(&args),
        Command::Params => demo::list_params(),
    }
}
