//! Sparse-slot refresh for decoding: every value a decoding step refreshes is replicated with
//! a period dividing `attn_period` (the residual stream, the norms' outputs, the
//! denominators summed over the cache blocks), i.e. its plaintext lies in the subring of
//! `attn_period` slots. Such a ciphertext is bootstrapped as a sparse one: relabelled to
//! `log_slots = log2 attn_period`, refreshed by a bootstrapping circuit of that many slots
//! (sub-sum, smaller CoeffsToSlots / SlotsToCoeffs, one EvalMod for real and imaginary
//! parts), and relabelled back to full slots. The sub-sum projects any non-periodic noise
//! away.

use psf_circuits::HeBackend;
use psf_ckks::Ciphertext;

use super::refresh::{HeRefresh, Refresh};
use crate::Result;

/// [`HeRefresh`] on ciphertexts relabelled to `sparse` slots for the bootstrap.
pub(crate) struct SparseRefresh<'a> {
    pub(crate) inner: HeRefresh<'a>,
    /// `log2` of the bootstrapping circuit's slots.
    pub(crate) sparse: u32,
    /// `log2` of the ciphertexts' slots.
    pub(crate) full: u32,
}

fn relabel(cts: impl IntoIterator<Item = Ciphertext>, log_slots: u32) -> Vec<Ciphertext> {
    cts.into_iter()
        .map(|mut c| {
            c.meta.log_slots = log_slots;
            c
        })
        .collect()
}

impl Refresh<HeBackend<'_>> for SparseRefresh<'_> {
    fn output_level(&self) -> usize {
        self.inner.output_level()
    }

    fn refresh(
        &self,
        be: &HeBackend<'_>,
        site: &str,
        cts: &[Ciphertext],
    ) -> Result<Vec<Ciphertext>> {
        let sparse = relabel(cts.iter().cloned(), self.sparse);
        Ok(relabel(self.inner.refresh(be, site, &sparse)?, self.full))
    }
}
