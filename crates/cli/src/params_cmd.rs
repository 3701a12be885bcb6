//! `psformer params`: the named CKKS parameter sets with their security and sizes.

use psf_ckks::sets;

/// Prints the named sets as a table.
pub fn list_params() -> anyhow::Result<()> {
    println!("| name | N | log QP | 128-bit bound | levels | dnum | secure |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for lit in [
        sets::n14_depth5_128bit(),
        sets::n15_depth11_128bit(),
        sets::n16_depth20_128bit(),
        sets::insecure_n10(),
        sets::insecure_n12(),
    ] {
        let p = lit.try_build()?;
        let r = p.ring();
        println!(
            "| {} | 2^{} | {:.0} | {} | {} | {} | {} |",
            r.name(),
            r.log_n(),
            r.log_qp(),
            psf_rlwe::security::max_log_qp_128(r.log_n()).map_or("-".into(), |b| b.to_string()),
            r.max_level(),
            r.dnum(),
            if r.is_secure() {
                "yes"
            } else {
                "NO (tests only)"
            }
        );
    }
    Ok(())
}
