//! Base conversion between RNS bases (the core of ModUp / ModDown) and reconstruction of
//! centered integers from residues (for decoding).

use rayon::prelude::*;

use crate::{Modulus, Repr, Result, RnsBasis, RnsPoly, ifma};

/// Coefficients accumulated side by side (independent dependency chains).
const LANES: usize = 4;
/// Coefficients per IFMA block (a multiple of 8; `N >= 16` is always a multiple of it or
/// smaller than it).
const IFMA_BLOCK: usize = 256;
/// Products of two values below 2^62 summed before a reduction (keeps sums below 2^128).
const LAZY_TERMS: usize = 15;

/// Converts residues over a source basis `A = {a_i}` to a target basis `B = {b_j}`:
/// `y_i = [x_i * (A/a_i)^-1]_{a_i}`, then `out_j = sum_i y_i * [A/a_i]_{b_j} - v * [A]_{b_j}`.
///
/// - *approximate* (`v = 0`): the result is `x + u*A` for some `0 <= u < |A|`, the fast
///   conversion used by hybrid key switching, whose `u*A` term the key absorbs;
/// - *exact* (`v = round(sum_i y_i / a_i)`, HPS-style floating-point correction): the
///   centered representative of `x` in `(-A/2, A/2]`, exact except when `x/A` is within
///   ~2^-50 of +-1/2.
#[derive(Debug, Clone)]
pub struct BasisConverter {
    from: RnsBasis,
    to: RnsBasis,
    /// `(A/a_i)^-1 mod a_i` and Shoup quotient.
    hat_inv: Vec<(u64, u64)>,
    /// `[A/a_i]_{b_j}`, indexed `[j][i]`.
    hat_mod_to: Vec<Vec<u64>>,
    /// `[A]_{b_j}`.
    a_mod_to: Vec<u64>,
    /// `1 / a_i` as f64.
    a_inv_f64: Vec<f64>,
}

impl BasisConverter {
    /// Precomputes the tables from `from` to `to`.
    pub fn new(from: &RnsBasis, to: &RnsBasis) -> Result<Self> {
        let k = from.len();
        let mut hat_inv = Vec::with_capacity(k);
        for i in 0..k {
            let m = from.modulus(i);
            let hat = (0..k)
                .filter(|&j| j != i)
                .fold(1u64, |acc, j| m.mul(acc, m.reduce(from.modulus(j).value())));
            let inv = m.inv(hat)?;
            hat_inv.push((inv, m.shoup(inv)));
        }
        let hat_mod_to = (0..to.len())
            .map(|j| {
                let m = to.modulus(j);
                (0..k)
                    .map(|i| {
                        (0..k)
                            .filter(|&l| l != i)
                            .fold(1u64, |acc, l| m.mul(acc, m.reduce(from.modulus(l).value())))
                    })
                    .collect()
            })
            .collect();
        let a_mod_to = (0..to.len())
            .map(|j| from.product_mod(to.modulus(j)))
            .collect();
        let a_inv_f64 = (0..k)
            .map(|i| 1.0 / from.modulus(i).value() as f64)
            .collect();
        Ok(Self {
            from: from.clone(),
            to: to.clone(),
            hat_inv,
            hat_mod_to,
            a_mod_to,
            a_inv_f64,
        })
    }

    /// Source basis.
    pub fn from(&self) -> &RnsBasis {
        &self.from
    }

    /// Target basis.
    pub fn to(&self) -> &RnsBasis {
        &self.to
    }

    /// Approximate conversion of the coefficient-form limbs `input[..|A|]` into `out` (all
    /// `|B|` limbs written, coefficient form).
    pub fn convert_approx(&self, input: &[&[u64]], out: &mut [&mut [u64]]) {
        self.convert(input, out, false);
    }

    /// Exact (centered) conversion, see the type's documentation.
    pub fn convert_exact(&self, input: &[&[u64]], out: &mut [&mut [u64]]) {
        self.convert(input, out, true);
    }

    /// Polynomial form of [`Self::convert_approx`]: `input` holds exactly the `|A|` source limbs.
    pub fn convert_poly_approx(&self, input: &RnsPoly) -> RnsPoly {
        let mut out = RnsPoly::zero(input.n(), self.to.len(), Repr::Coeff);
        let ins: Vec<&[u64]> = input.limbs_iter().collect();
        let mut outs: Vec<&mut [u64]> = out.data_mut().chunks_exact_mut(input.n()).collect();
        self.convert(&ins, &mut outs, false);
        out
    }

    fn convert(&self, input: &[&[u64]], out: &mut [&mut [u64]], exact: bool) {
        let k = self.from.len();
        assert_eq!(input.len(), k, "source limb count");
        assert_eq!(out.len(), self.to.len(), "target limb count");
        let n = self.from.n();
        // y_i = x_i * hat_inv_i mod a_i
        let mut y = vec![0u64; k * n];
        y.par_chunks_exact_mut(n)
            .zip(input.par_iter())
            .enumerate()
            .for_each(|(i, (yi, xi))| {
                let m = self.from.modulus(i);
                let (w, ws) = self.hat_inv[i];
                for (d, &x) in yi.iter_mut().zip(xi.iter()) {
                    *d = m.mul_shoup(x, w, ws);
                }
            });
        let v: Option<Vec<u64>> = exact.then(|| {
            (0..n)
                .map(|c| {
                    let s: f64 = (0..k)
                        .map(|i| y[i * n + c] as f64 * self.a_inv_f64[i])
                        .sum();
                    s.round() as u64
                })
                .collect()
        });
        let sources_small = (0..k).all(|i| self.from.modulus(i).value() < ifma::IFMA_LIMIT);
        let use_ifma = ifma::available() && sources_small && k <= ifma::IFMA_MAX_TERMS;
        out.par_iter_mut().enumerate().for_each(|(j, oj)| {
            let m = self.to.modulus(j);
            let fix = v.as_ref().map(|v| (v, m.neg(self.a_mod_to[j])));
            if use_ifma && m.value() < ifma::IFMA_LIMIT {
                self.accumulate_ifma(&y, j, oj, fix);
            } else {
                self.accumulate_scalar(&y, j, oj, fix);
            }
        });
    }

    /// `out = sum_i y_i * [A/a_i]_{b_j}` (plus the exact correction) with AVX-512 IFMA.
    fn accumulate_ifma(&self, y: &[u64], j: usize, oj: &mut [u64], fix: Option<(&Vec<u64>, u64)>) {
        let m = self.to.modulus(j);
        let n = self.from.n();
        let (mut lo, mut hi) = ([0u64; IFMA_BLOCK], [0u64; IFMA_BLOCK]);
        for (b, dst) in oj.chunks_mut(IFMA_BLOCK).enumerate() {
            let start = b * IFMA_BLOCK;
            let len = dst.len();
            ifma::mac_rows(
                y,
                n,
                start,
                &self.hat_mod_to[j],
                &mut lo[..len],
                &mut hi[..len],
            );
            for (kk, d) in dst.iter_mut().enumerate() {
                let sum = lo[kk] as u128 + ((hi[kk] as u128) << 52);
                let mut r = m.reduce_u128_any(sum);
                if let Some((v, neg_a)) = fix {
                    r = m.add(r, m.mul(v[start + kk] % m.value(), neg_a));
                }
                *d = r;
            }
        }
    }

    /// The portable path: four independent register-resident 128-bit sums per step.
    fn accumulate_scalar(
        &self,
        y: &[u64],
        j: usize,
        oj: &mut [u64],
        fix: Option<(&Vec<u64>, u64)>,
    ) {
        let m = self.to.modulus(j);
        let n = self.from.n();
        let coeffs = &self.hat_mod_to[j];
        for (q4, dst) in oj.chunks_exact_mut(LANES).enumerate() {
            let k = q4 * LANES;
            let mut acc = [0u128; LANES];
            for (chunk_idx, chunk) in coeffs.chunks(LAZY_TERMS).enumerate() {
                if chunk_idx > 0 {
                    for a in acc.iter_mut() {
                        *a = m.reduce_u128_any(*a) as u128;
                    }
                }
                for (i, &c) in chunk.iter().enumerate() {
                    let row = (chunk_idx * LAZY_TERMS + i) * n + k;
                    let yv: &[u64; LANES] = y[row..row + LANES].try_into().expect("lanes");
                    for u in 0..LANES {
                        acc[u] += yv[u] as u128 * c as u128;
                    }
                }
            }
            for u in 0..LANES {
                let mut r = m.reduce_u128_any(acc[u]);
                if let Some((v, neg_a)) = fix {
                    r = m.add(r, m.mul(v[k + u] % m.value(), neg_a));
                }
                dst[u] = r;
            }
        }
    }
}

/// Reconstructs centered integers from residues by balanced mixed-radix (Garner)
/// conversion and evaluates them in `f64`: exact digits, one rounding per term.
#[derive(Debug, Clone)]
pub struct CrtReconstructor {
    basis: RnsBasis,
    /// `(q_0 ... q_{i-1})^-1 mod q_i`.
    prefix_inv: Vec<u64>,
    /// `[q_0 ... q_{j-1}]_{q_i}` for `j < i`, indexed `[i][j]`.
    prefix_mod: Vec<Vec<u64>>,
    /// `q_0 ... q_{i-1}` as f64 (may be +inf for huge bases; only used with nonzero digits).
    prefix_f64: Vec<f64>,
}

impl CrtReconstructor {
    /// Tables for `basis`.
    pub fn new(basis: &RnsBasis) -> Result<Self> {
        let k = basis.len();
        let mut prefix_inv = Vec::with_capacity(k);
        let mut prefix_mod = Vec::with_capacity(k);
        for i in 0..k {
            let m = basis.modulus(i);
            let mut row = Vec::with_capacity(i);
            let mut p = 1u64;
            for j in 0..i {
                row.push(p);
                p = m.mul(p, m.reduce(basis.modulus(j).value()));
            }
            prefix_inv.push(if i == 0 { 1 } else { m.inv(p)? });
            prefix_mod.push(row);
        }
        let mut prefix_f64 = Vec::with_capacity(k);
        let mut p = 1.0f64;
        for i in 0..k {
            prefix_f64.push(p);
            p *= basis.modulus(i).value() as f64;
        }
        Ok(Self {
            basis: basis.clone(),
            prefix_inv,
            prefix_mod,
            prefix_f64,
        })
    }

    /// The centered value of coefficient `c` of a coefficient-form polynomial whose limbs are
    /// the first `poly.limbs()` primes of the basis, as `f64`.
    pub fn centered_f64(&self, poly: &RnsPoly, c: usize) -> f64 {
        let k = poly.limbs();
        // Fast path: a value below q_0/2 in magnitude (the common case when decoding) is
        // its centered residue modulo q_0; check it against every other residue (O(k)).
        let x0 = self.basis.modulus(0).center(poly.limb(0)[c]);
        if (1..k).all(|i| self.basis.modulus(i).from_i64(x0) == poly.limb(i)[c]) {
            return x0 as f64;
        }
        let mut digits = [0i64; 64];
        assert!(k <= 64 && k <= self.basis.len());
        let mut value = 0.0f64;
        for i in 0..k {
            let m: &Modulus = self.basis.modulus(i);
            // Residue of the partial sum sum_{j<i} d_j * M_j modulo q_i.
            let partial = (0..i).fold(0u64, |acc, j| {
                m.add(acc, m.mul(m.from_i64(digits[j]), self.prefix_mod[i][j]))
            });
            let d = m.mul(m.sub(poly.limb(i)[c], partial), self.prefix_inv[i]);
            digits[i] = m.center(d);
        }
        for i in (0..k).rev() {
            if digits[i] != 0 {
                value += digits[i] as f64 * self.prefix_f64[i];
            }
        }
        value
    }

    /// All coefficients of `poly` (coefficient form) as centered `f64`.
    pub fn centered_f64_all(&self, poly: &RnsPoly) -> Vec<f64> {
        assert_eq!(poly.repr(), Repr::Coeff);
        (0..poly.n())
            .into_par_iter()
            .map(|c| self.centered_f64(poly, c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PrimeSearch, Sampler, ntt_primes};

    /// The IFMA and scalar accumulations agree bit for bit (where IFMA exists).
    #[test]
    fn ifma_and_scalar_paths_agree() {
        let n = 1 << 10;
        let a = RnsBasis::new(n, &ntt_primes(50, n, 7, PrimeSearch::Below, &[]).unwrap()).unwrap();
        let b = RnsBasis::new(
            n,
            &ntt_primes(51, n, 5, PrimeSearch::Below, &a.primes()).unwrap(),
        )
        .unwrap();
        let conv = BasisConverter::new(&a, &b).unwrap();
        let mut s = Sampler::seeded(11);
        let x = s.uniform_poly(&a, a.len(), Repr::Coeff);
        let y: Vec<u64> = (0..a.len())
            .flat_map(|i| {
                let m = a.modulus(i);
                let (w, ws) = conv.hat_inv[i];
                x.limb(i)
                    .iter()
                    .map(move |&v| m.mul_shoup(v, w, ws))
                    .collect::<Vec<_>>()
            })
            .collect();
        let v: Vec<u64> = (0..n).map(|_| s.uniform_below(8)).collect();
        for j in 0..b.len() {
            for fix in [None, Some((&v, b.modulus(j).neg(conv.a_mod_to[j])))] {
                let mut scalar = vec![0u64; n];
                conv.accumulate_scalar(&y, j, &mut scalar, fix);
                if ifma::available() {
                    let mut vector = vec![0u64; n];
                    conv.accumulate_ifma(&y, j, &mut vector, fix);
                    assert_eq!(scalar, vector, "target {j}");
                }
                assert!(scalar.iter().all(|&r| r < b.modulus(j).value()));
            }
        }
    }
}
