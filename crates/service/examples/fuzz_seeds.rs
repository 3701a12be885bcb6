//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/seed-<i>`):
//! `cargo run --release -p psf-service --example fuzz_seeds -- fuzz/corpus`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let mut counts = std::collections::HashMap::new();
    for (target, bytes) in psf_service::fuzzing::seeds()? {
        let i = counts.entry(target).or_insert(0);
        let path = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&path)?;
        std::fs::write(path.join(format!("seed-{i}")), &bytes)?;
        println!("{target}/seed-{i}: {} bytes", bytes.len());
        *i += 1;
    }
    Ok(())
}
