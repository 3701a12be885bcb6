//! The evaluation keys a compiled circuit needs, and the level each must reach.
//!
//! Ciphertexts of the circuit (outside bootstrapping) never sit above the fresh level: the
//! client encrypts there and bootstrapping returns there. So the keys of the circuit's own
//! rotations are limited to that level (`Q_0..Q_fresh ++ P`, the digits covering
//! `Q_0..Q_fresh`: about 30 % of a full key on the 128-bit bootstrapping set). The
//! bootstrapping's rotations are limited to the level each runs at (CoeffsToSlots and the
//! sub-sums at the top: full; SlotsToCoeffs below EvalMod), its conjugation and the
//! relinearization key stay full, and a rotation used in several places gets the highest
//! level.

use std::collections::BTreeMap;

use psf_circuits::bootstrap::presets::BootstrapPreset;
use psf_circuits::bootstrap::{Bootstrapper, Encapsulation};
use psf_ckks::{
    CkksError, CkksParameters, EvaluationKeys, KeyGenerator, SecretKey,
    galois_element_for_conjugation, galois_element_for_rotation,
};
use psf_rlwe::{RlweError, SwitchingKey};
use serde::{Deserialize, Serialize};

use crate::Result;

/// The evaluation keys a client must generate for the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequirements {
    /// Relinearization key.
    pub relinearization: bool,
    /// Conjugation key (real-slot bootstrapping).
    pub conjugation: bool,
    /// Rotations (slot units), circuit and bootstrapping together, sorted.
    pub rotations: Vec<i64>,
    /// Their Galois elements (conjugation included), sorted.
    pub galois_elements: Vec<usize>,
    /// Hamming weight of the bootstrapping's ephemeral sparse secret (encapsulation keys).
    pub encapsulation_weight: Option<usize>,
    /// The level each rotation's key must reach, by Galois element, for the keys that may be
    /// limited below the top level (the circuit's rotations: the fresh level); elements not
    /// listed need full keys. Empty in requirements written before limited keys existed,
    /// which therefore ask for full keys throughout.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_levels: BTreeMap<usize, usize>,
}

impl KeyRequirements {
    /// The level the key for Galois element `g` must reach under `params` (the top level
    /// unless the element is limited).
    pub fn required_level(&self, g: usize, params: &CkksParameters) -> usize {
        let top = params.ring().max_level();
        self.key_levels.get(&g).map_or(top, |&l| l.min(top))
    }

    /// `(rotation, level)` pairs for [`EvaluationKeys::generate_leveled`].
    pub fn leveled_rotations(&self, params: &CkksParameters) -> Vec<(i64, usize)> {
        let log_n = params.ring().log_n();
        self.rotations
            .iter()
            .map(|&k| {
                let g = galois_element_for_rotation(k, log_n);
                (k, self.required_level(g, params))
            })
            .collect()
    }

    /// Bytes of the relinearization and Galois key material these requirements make under
    /// `params` (limited keys at their levels).
    pub fn key_material_bytes(&self, params: &CkksParameters) -> usize {
        let ring = params.ring();
        let top = ring.max_level();
        let relin = if self.relinearization {
            SwitchingKey::size_bytes_at(ring, top)
        } else {
            0
        };
        relin
            + self
                .galois_elements
                .iter()
                .map(|&g| SwitchingKey::size_bytes_at(ring, self.required_level(g, params)))
                .sum::<usize>()
    }

    /// Generates exactly these keys for secret `sk`: the evaluation keys (relinearization,
    /// rotations each up to its required level, conjugation) and, when bootstrapping is
    /// needed, the encapsulation keys (their sparse secret drawn from `encapsulation_seed`
    /// when given, for tests; from the OS otherwise).
    ///
    /// # Errors
    /// Key generation failures of the CKKS layer or of the bootstrapping keys.
    pub fn generate(
        &self,
        params: &CkksParameters,
        kgen: &mut KeyGenerator,
        sk: &SecretKey,
        encapsulation_seed: Option<u64>,
    ) -> Result<(EvaluationKeys, Option<Encapsulation>)> {
        let rotations = self.leveled_rotations(params);
        let mut keys = EvaluationKeys::generate_leveled(kgen, sk, &rotations, self.conjugation)
            .map_err(CkksError::from)?;
        if !self.relinearization {
            keys.relin = None;
        }
        let encapsulation = self
            .encapsulation_weight
            .map(|h| Encapsulation::generate(params, sk, h, encapsulation_seed))
            .transpose()?;
        Ok((keys, encapsulation))
    }

    /// Checks that `keys` hold every key these requirements list, each reaching its level.
    ///
    /// # Errors
    /// [`CkksError::MissingKey`] for a missing key; [`RlweError::KeyLevelTooLow`] for a key
    /// limited below the level it must reach.
    pub fn check(&self, params: &CkksParameters, keys: &EvaluationKeys) -> Result<()> {
        let top = params.ring().max_level();
        if self.relinearization {
            let relin = keys
                .relin
                .as_ref()
                .ok_or_else(|| CkksError::MissingKey("relinearization key".into()))?;
            check_level(relin.0.max_level(), top)?;
        }
        for &g in &self.galois_elements {
            let have = keys
                .galois_max_level(g)
                .ok_or_else(|| CkksError::MissingKey(format!("Galois element {g}")))?;
            check_level(have, self.required_level(g, params))?;
        }
        Ok(())
    }

    /// The requirements of two circuits under the same parameters run by one holder of keys
    /// (e.g. the forward pass and the decoder): everything either needs, each key at the
    /// higher of the levels asked (full where either needs it full).
    pub fn union(mut self, other: KeyRequirements) -> KeyRequirements {
        // None: not needed; Some(None): needed full; Some(Some(l)): needed up to l.
        let level_in = |r: &KeyRequirements, g: usize| {
            (r.galois_elements.binary_search(&g).is_ok()).then(|| r.key_levels.get(&g).copied())
        };
        let mut key_levels = BTreeMap::new();
        for &g in self.galois_elements.iter().chain(&other.galois_elements) {
            let level = match (level_in(&self, g), level_in(&other, g)) {
                (Some(Some(x)), Some(Some(y))) => Some(x.max(y)),
                (Some(Some(x)), None) | (None, Some(Some(x))) => Some(x),
                _ => None,
            };
            if let Some(level) = level {
                key_levels.insert(g, level);
            }
        }
        self.relinearization |= other.relinearization;
        self.conjugation |= other.conjugation;
        self.rotations.extend(other.rotations);
        self.rotations.sort_unstable();
        self.rotations.dedup();
        self.galois_elements.extend(other.galois_elements);
        self.galois_elements.sort_unstable();
        self.galois_elements.dedup();
        self.encapsulation_weight = self.encapsulation_weight.or(other.encapsulation_weight);
        self.key_levels = key_levels;
        self
    }
}

fn check_level(key_level: usize, level: usize) -> Result<()> {
    if key_level < level {
        return Err(CkksError::from(RlweError::KeyLevelTooLow { level, key_level }).into());
    }
    Ok(())
}

/// The keys of a circuit using `circuit_rotations` (outside bootstrapping) under `preset`:
/// relinearization, conjugation, the circuit's rotations limited to the fresh level (where
/// bootstrapping returns and inputs are encrypted: the circuit never runs above it), the
/// bootstrapping's at the levels it rotates at ([`Bootstrapper::rotation_levels`]: full for
/// CoeffsToSlots, SlotsToCoeffs's level for its own), each key at the highest level any use
/// needs; the encapsulation.
///
/// [`Bootstrapper::rotation_levels`]: psf_circuits::bootstrap::Bootstrapper::rotation_levels
pub(crate) fn key_requirements_of(
    preset: &BootstrapPreset,
    circuit_rotations: &[i64],
    circuit_levels: &BTreeMap<i64, usize>,
) -> Result<KeyRequirements> {
    let params = preset.params.try_build()?;
    let boot = Bootstrapper::planned_rotation_levels(&params, preset.config)?;
    let slots = params.max_slots() as i64;
    let fresh = params.ring().max_level() - preset.config.depth();
    let uses = boot.into_iter().chain(
        circuit_rotations
            .iter()
            .map(|&r| (r, circuit_levels.get(&r).map_or(fresh, |&l| l.min(fresh)))),
    );
    let mut levels: BTreeMap<i64, usize> = BTreeMap::new();
    for (r, level) in uses {
        let r = r.rem_euclid(slots);
        if r != 0 {
            let e = levels.entry(r).or_insert(level);
            *e = (*e).max(level);
        }
    }
    let (log_n, top) = (params.ring().log_n(), params.ring().max_level());
    let key_levels = (levels.iter())
        .filter(|&(_, &l)| l < top)
        .map(|(&r, &l)| (galois_element_for_rotation(r, log_n), l))
        .collect();
    let rotations: Vec<i64> = levels.into_keys().collect();
    let mut galois_elements: Vec<usize> = rotations
        .iter()
        .map(|&r| galois_element_for_rotation(r, log_n))
        .collect();
    galois_elements.push(galois_element_for_conjugation(log_n));
    galois_elements.sort_unstable();
    galois_elements.dedup();
    Ok(KeyRequirements {
        relinearization: true,
        conjugation: true,
        rotations,
        galois_elements,
        encapsulation_weight: preset.config.ephemeral_weight,
        key_levels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psf_circuits::bootstrap::presets;
    use psf_ckks::sets;

    fn params() -> CkksParameters {
        sets::insecure_n10().try_build().unwrap()
    }

    /// Rotations 1 (limited to level 2) and 3 (full), conjugation.
    fn requirements(params: &CkksParameters) -> KeyRequirements {
        let log_n = params.ring().log_n();
        let (g1, g3) = (
            galois_element_for_rotation(1, log_n),
            galois_element_for_rotation(3, log_n),
        );
        let mut galois_elements = vec![g1, g3, galois_element_for_conjugation(log_n)];
        galois_elements.sort_unstable();
        KeyRequirements {
            relinearization: true,
            conjugation: true,
            rotations: vec![1, 3],
            galois_elements,
            encapsulation_weight: None,
            key_levels: BTreeMap::from([(g1, 2)]),
        }
    }

    #[test]
    fn generated_keys_reach_exactly_their_levels() {
        let params = params();
        let req = requirements(&params);
        let log_n = params.ring().log_n();
        let mut kgen = KeyGenerator::seeded(params.ring(), 1);
        let sk = kgen.gen_secret_key();
        let (keys, encap) = req.generate(&params, &mut kgen, &sk, None).unwrap();
        assert!(encap.is_none());
        let top = params.ring().max_level();
        let level = |k: i64| keys.galois_max_level(galois_element_for_rotation(k, log_n));
        assert_eq!((level(1), level(3)), (Some(2), Some(top)));
        assert_eq!(
            keys.galois_max_level(galois_element_for_conjugation(log_n)),
            Some(top)
        );
        assert_eq!(req.key_material_bytes(&params), keys.size_bytes());
        req.check(&params, &keys).unwrap();
        // A key below its level and a missing key are refused, naming what is wrong.
        let mut short = keys.clone();
        let g3 = galois_element_for_rotation(3, log_n);
        short
            .galois
            .insert(g3, kgen.gen_galois_key_up_to(g3, &sk, 4).unwrap());
        let err = req.check(&params, &short).unwrap_err();
        assert!(
            matches!(
                err,
                crate::InferError::Ckks(CkksError::Rlwe(RlweError::KeyLevelTooLow {
                    level: 6,
                    key_level: 4
                }))
            ),
            "{err}"
        );
        short.galois.remove(&g3);
        let err = req.check(&params, &short).unwrap_err();
        assert!(
            matches!(err, crate::InferError::Ckks(CkksError::MissingKey(_))),
            "{err}"
        );
    }

    #[test]
    fn old_json_asks_for_full_keys_and_levels_round_trip() {
        let params = params();
        let req = requirements(&params);
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<KeyRequirements>(&json).unwrap(), req);
        let old = r#"{"relinearization":true,"conjugation":true,"rotations":[1,3],
            "galois_elements":[5,125,2047],"encapsulation_weight":null}"#;
        let old: KeyRequirements = serde_json::from_str(old).unwrap();
        assert!(old.key_levels.is_empty());
        let top = params.ring().max_level();
        assert!(
            old.galois_elements
                .iter()
                .all(|&g| old.required_level(g, &params) == top)
        );
    }

    #[test]
    fn union_keeps_the_higher_level_and_full_wins() {
        let params = params();
        let log_n = params.ring().log_n();
        let g = |k: i64| galois_element_for_rotation(k, log_n);
        let a = requirements(&params);
        // b: rotation 1 full, rotation 2 limited to 4, rotation 3 limited to 1.
        let mut b = a.clone();
        b.rotations = vec![1, 2, 3];
        b.galois_elements.push(g(2));
        b.galois_elements.sort_unstable();
        b.key_levels = BTreeMap::from([(g(2), 4), (g(3), 1)]);
        let u = a.clone().union(b.clone());
        assert_eq!(u.rotations, vec![1, 2, 3]);
        // 1: full in b; 2: only b's limit; 3: full in a.
        assert_eq!(u.key_levels, BTreeMap::from([(g(2), 4)]));
        assert_eq!(u, b.union(a.clone()));
        let mut c = a.clone();
        c.key_levels.insert(g(1), 5);
        assert_eq!(a.union(c).key_levels, BTreeMap::from([(g(1), 5)]));
    }

    /// The bootstrapping's rotations keep the level they run at (full for CoeffsToSlots,
    /// lower for SlotsToCoeffs); the circuit's own are limited to the level bootstrapping
    /// returns to; a rotation used by both gets the higher level.
    #[test]
    fn circuit_rotations_are_limited_to_the_fresh_level() {
        let preset = presets::for_log_n(12);
        let params = preset.params.try_build().unwrap();
        let boot = psf_circuits::bootstrap::Bootstrapper::new(&params, preset.config).unwrap();
        let boot_levels: BTreeMap<i64, usize> = boot.rotation_levels().into_iter().collect();
        let top = params.ring().max_level();
        let fresh = boot.output_level();
        // CoeffsToSlots rotates at its stages' levels from the top down; SlotsToCoeffs right
        // after EvalMod, down to one level above the fresh level.
        let cts = (top + 1 - preset.config.cts_levels)..=top;
        let stc_top = top - preset.config.cts_levels - preset.config.eval_mod.depth();
        let stc_levels = (fresh + 1)..=stc_top;
        assert!(
            (boot_levels.values()).all(|l| cts.contains(l) || stc_levels.contains(l)),
            "{boot_levels:?}"
        );
        assert!(boot_levels.values().any(|l| stc_levels.contains(l)));
        let stc = *boot_levels
            .iter()
            .find(|(_, l)| stc_levels.contains(l))
            .unwrap()
            .0;
        let own = (1..).find(|r| !boot_levels.contains_key(r)).unwrap();
        // `-own` runs only at level 3 in the circuit: its key stops there.
        let circuit_levels = BTreeMap::from([(-own, 3)]);
        let req = key_requirements_of(&preset, &[own, stc, -own], &circuit_levels).unwrap();
        let log_n = params.ring().log_n();
        let slots = params.max_slots() as i64;
        let level = |r: i64| req.required_level(galois_element_for_rotation(r, log_n), &params);
        assert_eq!((level(own), level(slots - own)), (fresh, 3));
        assert_eq!(level(stc), boot_levels[&stc].max(fresh));
        for (&r, &l) in &boot_levels {
            assert_eq!(level(r.rem_euclid(slots)), l, "rotation {r}");
        }
        assert!(req.rotations.contains(&(slots - own)));
        let conj = galois_element_for_conjugation(log_n);
        assert_eq!(req.required_level(conj, &params), top);
    }
}
