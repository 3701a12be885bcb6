//! `psformer keygen | encrypt | decrypt`: the client side of the CKKS flow on files in the
//! versioned wire format (see `psf_ckks::serialization`).
//!
//! A key directory holds `params.bin`, `public.key`, `eval.keys` (what a server receives) and
//! `secret.key` (what never leaves the client; written with mode 0600 on Unix).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use psf_ckks::serialization::{WireDecode, WireEncode, WireEncodeSecret};
use psf_ckks::{
    Ciphertext, CkksParameters, Decryptor, Encoder, Encryptor, EvaluationKeys, KeyGenerator,
    PublicKey, SecretKey, sets,
};

/// Arguments of `keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Parameter set: n14, n15, n16 (128-bit) or a path to a JSON `CkksParametersLiteral`.
    #[arg(long, default_value = "n16")]
    params: String,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Rotations to generate Galois keys for (comma separated, negative = right).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    rotations: Vec<i64>,
    /// Also generate the conjugation key.
    #[arg(long)]
    conjugation: bool,
}

/// Arguments of `encrypt`.
#[derive(clap::Args)]
pub struct EncryptArgs {
    /// Key directory (reads params.bin and public.key).
    #[arg(long)]
    keys: PathBuf,
    /// Real values, comma separated (or use --input).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    values: Vec<f64>,
    /// JSON file with an array of numbers.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output ciphertext file.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `decrypt`.
#[derive(clap::Args)]
pub struct DecryptArgs {
    /// Key directory (reads params.bin and secret.key).
    #[arg(long)]
    keys: PathBuf,
    /// Ciphertext file.
    #[arg(long)]
    input: PathBuf,
    /// Print only the first `count` slots.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Write all slots as a JSON array here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The named parameter sets of the key, server and client commands (`INSECURE` toy rings only
/// for tests), or a JSON parameter literal file.
pub(crate) fn named_params(name: &str) -> anyhow::Result<CkksParameters> {
    let lit = match name {
        "n14" => sets::n14_depth5_128bit(),
        "n15" => sets::n15_depth11_128bit(),
        "n16" => sets::n16_depth20_128bit(),
        "insecure-n10" => sets::insecure_n10(),
        "insecure-n12" => sets::insecure_n12(),
        path => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading parameter file {path}"))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{path}: not a CKKS parameter literal"))?
        }
    };
    Ok(lit.try_build()?)
}

fn load_params(dir: &Path) -> anyhow::Result<CkksParameters> {
    let bytes = std::fs::read(dir.join("params.bin"))
        .with_context(|| format!("reading {}/params.bin", dir.display()))?;
    CkksParameters::from_bytes(&bytes).with_context(|| format!("{}/params.bin", dir.display()))
}

fn read<T: WireDecode>(dir: &Path, file: &str, params: &CkksParameters) -> anyhow::Result<T> {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    T::from_bytes(&bytes, params).with_context(|| format!("decoding {}", path.display()))
}

/// Writes secret bytes to a file readable by its owner only.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    options.open(path)?.write_all(bytes)?;
    Ok(())
}

/// Generates and writes a key set.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let params = named_params(&args.params)?;
    std::fs::create_dir_all(&args.out)?;
    let t = Instant::now();
    let mut kgen = KeyGenerator::new(params.ring());
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let evk = EvaluationKeys::generate(&mut kgen, &sk, &args.rotations, args.conjugation)?;
    let elapsed = t.elapsed();
    std::fs::write(args.out.join("params.bin"), params.to_bytes())?;
    write_secret(&args.out.join("secret.key"), &sk.to_bytes_secret())?;
    std::fs::write(args.out.join("public.key"), pk.to_bytes())?;
    let evk_bytes = evk.to_bytes();
    std::fs::write(args.out.join("eval.keys"), &evk_bytes)?;
    println!(
        "{}: keys in {:.2} s; eval.keys {:.1} MiB ({} Galois keys); written to {}",
        params.ring().name(),
        elapsed.as_secs_f64(),
        evk_bytes.len() as f64 / 1048576.0,
        evk.galois.len(),
        args.out.display()
    );
    Ok(())
}

/// Encrypts real values with the public key.
pub fn encrypt(args: &EncryptArgs) -> anyhow::Result<()> {
    let params = load_params(&args.keys)?;
    let pk: PublicKey = read(&args.keys, "public.key", &params)?;
    let mut values = args.values.clone();
    if let Some(path) = &args.input {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let more: Vec<f64> = serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a JSON array of numbers", path.display()))?;
        values.extend(more);
    }
    anyhow::ensure!(
        !values.is_empty(),
        "nothing to encrypt: give --values or --input"
    );
    anyhow::ensure!(
        values.len() <= params.max_slots(),
        "{} values exceed the {} slots",
        values.len(),
        params.max_slots()
    );
    let encoder = Encoder::new(&params);
    let pt = encoder.encode(
        &values,
        params.max_log_slots(),
        params.ring().max_level(),
        params.default_scale(),
    )?;
    let ct = Encryptor::with_public_key(&pk).encrypt(&pt)?;
    std::fs::write(&args.out, ct.to_bytes())?;
    println!(
        "encrypted {} values at level {} into {}",
        values.len(),
        ct.level(),
        args.out.display()
    );
    Ok(())
}

/// Decrypts a ciphertext with the secret key.
pub fn decrypt(args: &DecryptArgs) -> anyhow::Result<()> {
    let params = load_params(&args.keys)?;
    let sk: SecretKey = read(&args.keys, "secret.key", &params)?;
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let ct = Ciphertext::from_bytes(&bytes, &params)
        .with_context(|| format!("decoding {}", args.input.display()))?;
    let values = Encoder::new(&params).decode(&Decryptor::new(&sk).decrypt(&ct)?)?;
    let shown: Vec<String> = values
        .iter()
        .take(args.count)
        .map(|v| format!("{v:.6}"))
        .collect();
    println!(
        "level {} scale 2^{:.2}: [{}]",
        ct.level(),
        ct.meta.scale.log2(),
        shown.join(", ")
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string(&values)?)?;
    }
    Ok(())
}
