//! The client-side CLI flow on files: keygen -> encrypt -> decrypt, and a corrupted file.

use std::process::Command;

fn psformer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_psformer"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn keygen_encrypt_decrypt_round_trip() {
    let dir = std::env::temp_dir().join(format!("psformer-cli-{}", std::process::id()));
    let keys = dir.join("keys");
    let k = keys.to_str().unwrap();
    let out = psformer(&["keygen", "--params", "n14", "--out", k, "--rotations", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ct = dir.join("ct.bin");
    let c = ct.to_str().unwrap();
    let out = psformer(&[
        "encrypt",
        "--keys",
        k,
        "--values",
        "0.5,-0.25,3",
        "--out",
        c,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = dir.join("out.json");
    let out = psformer(&[
        "decrypt",
        "--keys",
        k,
        "--input",
        c,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<f64> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for (got, want) in values.iter().zip([0.5, -0.25, 3.0, 0.0]) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    // A truncated ciphertext is a clear error, not a crash.
    let bytes = std::fs::read(&ct).unwrap();
    std::fs::write(&ct, &bytes[..bytes.len() / 2]).unwrap();
    let out = psformer(&["decrypt", "--keys", k, "--input", c]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    std::fs::remove_dir_all(&dir).unwrap();
}
