//! The encrypted forward pass with bootstrapping against the `f64` twin, on the INSECURE
//! N = 2^12 twin of the 128-bit bootstrapping chain: 128 prompts of 4 tokens batched into the
//! slots of one set of ciphertexts, a 2-block GPT-NeoX-shaped model (d = 16, 2 heads, MLP 32,
//! vocabulary 32). Bar (issue #7): same top-1 on >= 99 % of prompts, MSE <= 0.005. Then the
//! last-position head (dense logits of each prompt's last token) on 8 prompts.

mod common;

use common::{NEOX, compare, model, prompts};
use psf_ckks::{Decryptor, Encryptor, KeyGenerator};
use psf_infer::client::{Client, ClientSpec};
use psf_infer::runtime::{RunOptions, ServerContext, forward};
use psf_infer::{CompileOptions, CompiledModel, Component, HeadPositions};

#[test]
fn encrypted_logits_match_the_twin_on_128_prompts() {
    check(128, 4, HeadPositions::All);
}

#[test]
fn encrypted_last_position_head_matches_the_twin() {
    // 8 x 4 = 32 token slots: 64 features per ciphertext > d = 16 (narrow inputs).
    check(8, 4, HeadPositions::Last);
}

fn check(batch: usize, seq_len: usize, head: HeadPositions) {
    let ir = model(NEOX, 7);
    let mut opts =
        CompileOptions::for_log_n(seq_len, batch, 12, prompts(NEOX.d, batch, seq_len, 1));
    opts.head = head;
    let m = CompiledModel::compile(&ir, &opts).unwrap();
    let params = m.params().unwrap();
    let req = m.key_requirements().unwrap();

    // Client: keys and encrypted embeddings.
    let mut kgen = KeyGenerator::seeded(params.ring(), 11);
    let sk = kgen.gen_secret_key();
    let (keys, encap) = req.generate(&params, &mut kgen, &sk, Some(12)).unwrap();
    // The circuit's own rotation keys are limited to the fresh level and SlotsToCoeffs's to
    // its levels (the run below fails with a typed error if anything rotates above them).
    assert!(!req.key_levels.is_empty());
    req.check(&params, &keys).unwrap();
    eprintln!(
        "evaluation keys: {} rotations ({} limited below the top level; the circuit's to {}), \
         {:.1} MiB",
        req.rotations.len(),
        req.key_levels.len(),
        m.fresh_level(&params),
        keys.size_bytes() as f64 / (1 << 20) as f64
    );
    let client = Client::new(ClientSpec::of(&m).unwrap(), &params).unwrap();
    let x = prompts(NEOX.d, batch, seq_len, 2);
    let mut enc = Encryptor::with_secret_key(&sk).seeded(13);
    let cts = client.encrypt_embeddings(&mut enc, &x).unwrap();

    // Server.
    let server = ServerContext::new(&m, keys, encap).unwrap();
    let progress = |p: &psf_infer::runtime::Progress| {
        eprintln!("{} ({}/{}) {:.1} s", p.stage, p.done, p.total, p.elapsed_s)
    };
    let run = RunOptions {
        threads: 2,
        progress: &progress,
        cost: None,
        positions: None,
    };
    let (out, report) = forward(&m, &server, cts, &run).unwrap();
    eprintln!("{}", report.table());
    assert_eq!(
        report.bootstraps, m.plan.bootstraps,
        "placement differs from the plan"
    );
    assert!(report.wall(Component::Bootstrap) > 0.0);

    // Client: decrypt the last position of every prompt and compare.
    let last: Vec<(usize, usize)> = (0..batch).map(|b| (b, seq_len - 1)).collect();
    let have = client
        .decrypt_logits(&Decryptor::new(&sk), &out, &last)
        .unwrap();
    let want: Vec<Vec<f64>> = x
        .iter()
        .map(|p| ir.forward_f64(p).unwrap().pop().unwrap())
        .collect();
    let (max, mse, top1) = compare(&want, &have);
    eprintln!(
        "{batch} prompts, {head:?} head: max abs error {max:.3e}, MSE {mse:.3e}, top-1 agreement {top1}"
    );
    assert!(
        top1 >= 0.99 && mse <= 0.005,
        "max {max} mse {mse} top1 {top1}"
    );
}
