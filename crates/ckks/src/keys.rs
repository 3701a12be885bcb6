//! The evaluation keys a server holds: relinearization and Galois keys.

use std::collections::{BTreeMap, HashMap};

use psf_rlwe::{GaloisKey, KeyGenerator, RelinearizationKey, Result, SecretKey};

/// Galois element of a left rotation by `k` slots: `5^k mod 2N` (`k` may be negative).
pub fn galois_element_for_rotation(k: i64, log_n: u32) -> usize {
    let two_n = 1u64 << (log_n + 1);
    let order = 1i64 << (log_n - 1); // the order of 5 modulo 2N
    let e = k.rem_euclid(order) as u64;
    let (mut base, mut acc, mut e) = (5u64, 1u64, e);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * base % two_n;
        }
        base = base * base % two_n;
        e >>= 1;
    }
    acc as usize
}

/// Galois element of complex conjugation: `2N - 1`.
pub fn galois_element_for_conjugation(log_n: u32) -> usize {
    (1usize << (log_n + 1)) - 1
}

/// Evaluation keys: optional relinearization key and Galois keys by element.
#[derive(Clone, Default)]
pub struct EvaluationKeys {
    /// `s^2 -> s`.
    pub relin: Option<RelinearizationKey>,
    /// `s(X^g) -> s` by `g`.
    pub galois: HashMap<usize, GaloisKey>,
}

impl EvaluationKeys {
    /// Generates a relinearization key and Galois keys for the given rotations (and
    /// conjugation if asked).
    pub fn generate(
        kgen: &mut KeyGenerator,
        sk: &SecretKey,
        rotations: &[i64],
        conjugation: bool,
    ) -> Result<Self> {
        let log_n = sk.params().log_n();
        let mut elements: Vec<usize> = rotations
            .iter()
            .map(|&k| galois_element_for_rotation(k, log_n))
            .collect();
        if conjugation {
            elements.push(galois_element_for_conjugation(log_n));
        }
        elements.sort_unstable();
        elements.dedup();
        let mut galois = HashMap::new();
        for g in elements {
            galois.insert(g, kgen.gen_galois_key(g, sk)?);
        }
        Ok(Self {
            relin: Some(kgen.gen_relinearization_key(sk)),
            galois,
        })
    }

    /// Generates a full relinearization key, Galois keys for `(rotation, max_level)` pairs,
    /// each limited to its level (see [`KeyGenerator::gen_galois_key_up_to`]; the top level
    /// gives a full key), and a full conjugation key if asked. A Galois element listed twice
    /// (the same rotation, or rotations equal modulo the slots) gets the higher level.
    ///
    /// # Errors
    /// [`psf_rlwe::RlweError::InvalidLevel`] for a level above the parameters' top.
    pub fn generate_leveled(
        kgen: &mut KeyGenerator,
        sk: &SecretKey,
        rotations: &[(i64, usize)],
        conjugation: bool,
    ) -> Result<Self> {
        let params = sk.params();
        let (log_n, top) = (params.log_n(), params.max_level());
        let mut levels: BTreeMap<usize, usize> = BTreeMap::new();
        for &(k, level) in rotations {
            params.check_level(level)?;
            let e = levels
                .entry(galois_element_for_rotation(k, log_n))
                .or_insert(level);
            *e = (*e).max(level);
        }
        if conjugation {
            levels.insert(galois_element_for_conjugation(log_n), top);
        }
        let mut galois = HashMap::with_capacity(levels.len());
        for (g, level) in levels {
            galois.insert(g, kgen.gen_galois_key_up_to(g, sk, level)?);
        }
        Ok(Self {
            relin: Some(kgen.gen_relinearization_key(sk)),
            galois,
        })
    }

    /// Adds `other`'s keys to these; where both hold a key for the same purpose (the
    /// relinearization key, a Galois element), the one reaching the higher level is kept
    /// (these on a tie).
    pub fn merge(&mut self, other: EvaluationKeys) {
        if let Some(r) = other.relin {
            let keep = self
                .relin
                .as_ref()
                .is_some_and(|mine| mine.0.max_level() >= r.0.max_level());
            if !keep {
                self.relin = Some(r);
            }
        }
        for (g, key) in other.galois {
            match self.galois.get(&g) {
                Some(mine) if mine.key.max_level() >= key.key.max_level() => {}
                _ => {
                    self.galois.insert(g, key);
                }
            }
        }
    }

    /// The highest level the key for Galois element `g` switches at, if there is one.
    pub fn galois_max_level(&self, g: usize) -> Option<usize> {
        self.galois.get(&g).map(|k| k.key.max_level())
    }

    /// Total size of the key material in bytes.
    pub fn size_bytes(&self) -> usize {
        self.relin.as_ref().map_or(0, |r| r.0.size_bytes())
            + self
                .galois
                .values()
                .map(|g| g.key.size_bytes())
                .sum::<usize>()
    }
}
