//! `psformer`: the command-line tool.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod anchor;
mod bench_ckks;
mod bench_costs;
mod bench_softmax;
mod client;
mod convert;
mod cost_check;
mod demo;
mod demo_text;
mod eval;
mod keys_cmd;
mod params_cmd;
mod polyfit;
mod serve;
mod timing;
mod train;

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
    /// The shipped Power-Softmax model predicts the next token of a prompt over encrypted data
    /// (128-bit parameters): predictions next to the plaintext model's, latency breakdown.
    Demo(demo::DemoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Lists the named CKKS parameter sets with their security and sizes.
    Params,
    /// Generates a key set (secret, public, evaluation keys) into a directory.
    Keygen(keys_cmd::KeygenArgs),
    /// Encrypts real values with a key directory's public key.
    Encrypt(keys_cmd::EncryptArgs),
    /// Decrypts a ciphertext with a key directory's secret key.
    Decrypt(keys_cmd::DecryptArgs),
    /// Serves encrypted jobs over HTTP (sessions with uploaded evaluation keys).
    Serve(serve::ServeArgs),
    /// Runs the whole client flow against a server: keys, session, encrypted job, decryption.
    Infer(client::InferArgs),
    /// The client's steps one by one, on files.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Trains a model from a JSON training configuration (progress bar, checkpoints, resume).
    Train(train::TrainArgs),
    /// Evaluates model directories: perplexity, multiple choice, in-context learning,
    /// attention maps and locality.
    Eval(eval::EvalArgs),
    /// Converts a softmax checkpoint to Power-Softmax by continued training (recovery curve).
    Convert(convert::ConvertArgs),
    /// Calibrates a Power-Softmax checkpoint, fits the polynomials for a sweep of degrees and
    /// measures the polynomial model against its exact twin.
    Polyfit(polyfit::PolyfitArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// CKKS primitives (encode, encrypt, decrypt, add, pt-mul, mul+relin, rescale, rotate,
    /// hoisted rotations) at N = 2^14, 2^15, 2^16, 1 and 2 threads.
    Ckks(bench_ckks::BenchCkksArgs),
    /// Per-level cost table of the CKKS primitives (and bootstrapping) for the cost model.
    Costs(bench_costs::BenchCostsArgs),
    /// Softmax alone over encrypted attention scores: Power-Softmax vs NEXUS-style vs the
    /// square strategy (predicted from simulated counts; measured where asked).
    Softmax(bench_softmax::BenchSoftmaxArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Infer(_) | Command::Client(_)
    ) {
        end_quietly_when_stdout_closes();
    }
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(BenchCommand::Ckks(args)) => bench_ckks::run(&args),
        Command::Bench(BenchCommand::Costs(args)) => bench_costs::run(&args),
        Command::Bench(BenchCommand::Softmax(args)) => bench_softmax::run(&args),
        Command::Params => params_cmd::list_params(),
        Command::Keygen(args) => keys_cmd::keygen(&args),
        Command::Encrypt(args) => keys_cmd::encrypt(&args),
        Command::Decrypt(args) => keys_cmd::decrypt(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Infer(args) => client::infer(&args),
        Command::Client(cmd) => client::client(&cmd),
        Command::Train(args) => train::run_cmd(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Convert(args) => convert::run_convert(&args),
        Command::Polyfit(args) => polyfit::run_polyfit(&args),
    }
}

/// Lets a report command end quietly when its reader goes away (`psformer eval ... | head`)
/// instead of panicking in `print!`: SIGPIPE gets its default action back (Rust ignores it).
/// Not for the networked commands, whose closed sockets must stay errors.
fn end_quietly_when_stdout_closes() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any other thread exists; it only restores the
    // signal's default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
