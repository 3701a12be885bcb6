//! NTT-friendly prime generation: primes `q = 1 mod 2N` of a chosen size.

use crate::{MathError, Result};

/// Deterministic Miller-Rabin for all `u64` (the first 12 primes are a sufficient base set).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for &p in &BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let pow = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, a);
            }
            a = mul(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for &a in &BASES {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// Whether `q` is a prime with `q = 1 mod 2n`.
pub fn is_ntt_friendly(q: u64, n: usize) -> bool {
    q % (2 * n as u64) == 1 && is_prime(q)
}

/// Where to look for primes of a given bit size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimeSearch {
    /// Largest primes below `2^bits` (all fit in `bits` bits).
    Below,
    /// Primes alternately just above and just below `2^bits`, closest first, so that their
    /// product stays close to `2^(bits * count)` (for scaling primes).
    Around,
}

/// Finds `count` distinct NTT-friendly primes (`q = 1 mod 2n`) of about `bits` bits, none of
/// them in `exclude`.
pub fn ntt_primes(
    bits: u32,
    n: usize,
    count: usize,
    search: PrimeSearch,
    exclude: &[u64],
) -> Result<Vec<u64>> {
    let err = || MathError::NotEnoughPrimes {
        wanted: count,
        bits,
        n,
    };
    if !(10..=61).contains(&bits) || !n.is_power_of_two() {
        return Err(err());
    }
    let step = 2 * n as u64;
    let center = 1u64 << bits;
    let usable = move |q: &u64| *q > step && *q < crate::MAX_MODULUS && !exclude.contains(q);
    let mut below = std::iter::successors(Some(center + 1 - step), move |q| q.checked_sub(step))
        .take_while(move |q| *q > center >> 1)
        .filter(move |q| usable(q) && is_prime(*q));
    let mut above = std::iter::successors(Some(center + 1 + step), move |q| Some(q + step))
        .take_while(move |q| *q < 2 * center)
        .filter(move |q| usable(q) && is_prime(*q));
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let from_above = search == PrimeSearch::Around && out.len() % 2 == 0;
        let next = if from_above {
            above.next().or_else(|| below.next())
        } else {
            below.next().or_else(|| match search {
                PrimeSearch::Around => above.next(),
                PrimeSearch::Below => None,
            })
        };
        out.push(next.ok_or_else(err)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primality_known_values() {
        let primes = [2u64, 3, 5, 97, 65537, 1_000_000_007, 0x1fffffffffffffff];
        for p in primes {
            assert!(is_prime(p), "{p}");
        }
        let composites = [
            1u64,
            4,
            561,
            1_000_000_007 * 3,
            3_215_031_751,
            0xffff_ffff_ffff_ffff,
        ];
        for c in composites {
            assert!(!is_prime(c), "{c}");
        }
    }

    #[test]
    fn finds_distinct_ntt_primes() {
        for (bits, search) in [
            (50, PrimeSearch::Around),
            (60, PrimeSearch::Below),
            (30, PrimeSearch::Below),
        ] {
            let n = 1 << 16;
            let ps = ntt_primes(bits, n, 8, search, &[]).unwrap();
            assert_eq!(ps.len(), 8);
            for (i, &p) in ps.iter().enumerate() {
                assert!(is_ntt_friendly(p, n));
                assert!(!ps[..i].contains(&p));
                let lg = (p as f64).log2();
                assert!((lg - bits as f64).abs() < 0.05, "{p} has {lg} bits");
                if search == PrimeSearch::Below {
                    assert!(p < 1 << bits);
                }
            }
            let more = ntt_primes(bits, n, 2, search, &ps).unwrap();
            assert!(more.iter().all(|p| !ps.contains(p)));
        }
    }

    #[test]
    fn too_many_primes_is_an_error() {
        assert!(ntt_primes(12, 1 << 10, 50, PrimeSearch::Below, &[]).is_err());
    }
}
