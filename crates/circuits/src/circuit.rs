//! Circuit metadata (Lattigo's habit): every circuit says how many levels it consumes, which
//! input level it needs and which keys it needs, so a planner can place bootstraps and derive
//! the evaluation keys without running it.

/// What a circuit needs from its input and from the key set.
pub trait Circuit {
    /// Levels (rescales) the circuit consumes on the path from its input to its output.
    fn depth(&self) -> usize;

    /// The lowest input level the circuit accepts (its output is then at level
    /// `input_level - depth()`). Defaults to [`Self::depth`].
    fn min_input_level(&self) -> usize {
        self.depth()
    }

    /// Galois elements of the rotation/conjugation keys the circuit uses, sorted and without
    /// duplicates, for a ring of degree `2^log_n`. Defaults to none.
    fn galois_elements(&self, log_n: u32) -> Vec<usize> {
        let _ = log_n;
        Vec::new()
    }

    /// Whether the circuit multiplies ciphertexts (and so needs the relinearization key).
    /// Defaults to `true`.
    fn needs_relinearization_key(&self) -> bool {
        true
    }
}

/// The Galois elements of rotations by `ks` in a ring of degree `2^log_n`, sorted and
/// deduplicated (a helper for [`Circuit::galois_elements`]).
pub fn rotation_galois_elements(ks: impl IntoIterator<Item = i64>, log_n: u32) -> Vec<usize> {
    let mut g: Vec<usize> = ks
        .into_iter()
        .map(|k| psf_ckks::galois_element_for_rotation(k, log_n))
        .collect();
    g.sort_unstable();
    g.dedup();
    g
}
