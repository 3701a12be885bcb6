//! The simulation evaluator against the real one: every Backend operation gives the same
//! counts, levels and scales, values within the CKKS noise, the same errors at the same places,
//! and the modelled noise is of the size of the real noise.

use psf_circuits::{Backend, HeBackend, NoiseModel, SimBackend};
use psf_ckks::*;

struct He {
    params: CkksParameters,
    enc: Encoder,
    sk: SecretKey,
    pk: PublicKey,
    eval: Evaluator,
}

const ROTS: [i64; 3] = [1, 5, -3];

fn he() -> He {
    let params = sets::insecure_n10().try_build().unwrap();
    let mut kgen = KeyGenerator::seeded(params.ring(), 21);
    let sk = kgen.gen_secret_key();
    let pk = kgen.gen_public_key(&sk);
    let keys = EvaluationKeys::generate(&mut kgen, &sk, &ROTS, false).unwrap();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params, keys);
    He {
        params,
        enc,
        sk,
        pk,
        eval,
    }
}

impl He {
    fn encrypt(&self, v: &[f64], level: usize) -> Ciphertext {
        let pt = self
            .enc
            .encode(
                v,
                self.params.max_log_slots(),
                level,
                self.params.default_scale(),
            )
            .unwrap();
        Encryptor::with_public_key(&self.pk)
            .seeded(4)
            .encrypt(&pt)
            .unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        self.enc
            .decode(&Decryptor::new(&self.sk).decrypt(ct).unwrap())
            .unwrap()
    }
}

/// A circuit touching every operation, written once over the backend.
fn every_op<B: Backend>(be: &B, x: &B::Ct, y: &B::Ct) -> psf_circuits::Result<Vec<B::Ct>> {
    let n = be.slots();
    let w: Vec<f64> = (0..n).map(|i| (i % 7) as f64 / 7.0 - 0.4).collect();
    let pt = be.encode(&w, be.level(x), be.default_scale())?;
    let s = be.add(x, y)?;
    let d = be.sub(&s, &be.neg(y)?)?;
    let c = be.add_const(&be.mul_int(&d, 3)?, 0.25)?;
    let p = be.add_plain(&c, &pt)?;
    let q = be.prime(be.level(x)) as f64;
    let m = be.rescale(&be.mul_const(&p, -0.375, q)?)?;
    let xy = be.rescale(&be.mul_relin(x, y)?)?;
    let pm = be.rescale(&be.mul_plain(&m, &pt)?)?;
    let low = be.drop_to_level(&xy, be.level(&pm))?;
    let r = be.rotate(&low, 5)?;
    let mut out = be.rotate_hoisted(&pm, &ROTS)?;
    out.push(r);
    out.push(be.with_scale(&xy, be.scale(&xy) * 2.0));
    Ok(out)
}

#[test]
fn every_operation_matches_the_real_evaluator() {
    let h = he();
    let n = h.params.max_slots();
    let xs: Vec<f64> = (0..n)
        .map(|i| ((i * 37) % 101) as f64 / 101.0 - 0.5)
        .collect();
    let ys: Vec<f64> = (0..n)
        .map(|i| ((i * 53) % 97) as f64 / 97.0 - 0.5)
        .collect();
    let top = h.params.ring().max_level();
    let scale = h.params.default_scale().0;
    let hb = HeBackend::new(&h.params, &h.enc, &h.eval);
    let sim = SimBackend::new(&h.params);
    let he_out = every_op(&hb, &h.encrypt(&xs, top), &h.encrypt(&ys, top)).unwrap();
    let sx = sim.encrypt(&xs, top, scale).unwrap();
    let sim_out = every_op(&sim, &sx, &sim.encrypt(&ys, top, scale).unwrap()).unwrap();
    assert_eq!(
        hb.counts(),
        sim.counts(),
        "he {} / sim {}",
        hb.counts(),
        sim.counts()
    );
    println!("counts: {}", sim.counts());
    for (c, s) in he_out.iter().zip(&sim_out) {
        assert_eq!((c.level(), c.meta.scale.0), (s.level, s.scale));
        let stats = PrecisionStats::from_real(&s.values, &h.decrypt(c));
        assert!(stats.min_bits > 25.0, "{stats}");
    }
}

#[test]
fn errors_happen_at_the_same_places() {
    let h = he();
    let hb = HeBackend::new(&h.params, &h.enc, &h.eval);
    let sim = SimBackend::new(&h.params).with_keys(
        true,
        ROTS.iter()
            .map(|&k| galois_element_for_rotation(k, h.params.ring().log_n())),
    );
    let scale = h.params.default_scale().0;
    let (c, s) = (h.encrypt(&[0.5], 2), sim.encrypt(&[0.5], 2, scale).unwrap());
    let (c2, s2) = (
        hb.with_scale(&c, scale * 3.0),
        sim.with_scale(&s, scale * 3.0),
    );
    assert!(hb.add(&c, &c2).is_err() && sim.add(&s, &s2).is_err());
    let hp = hb.encode(&[1.0], 2, scale * 2.0).unwrap();
    let sp = sim.encode(&[1.0], 2, scale * 2.0).unwrap();
    assert!(hb.add_plain(&c, &hp).is_err() && sim.add_plain(&s, &sp).is_err());
    assert!(hb.rotate(&c, 2).is_err() && sim.rotate(&s, 2).is_err());
    assert!(hb.rotate_hoisted(&c, &[1, 2]).is_err() && sim.rotate_hoisted(&s, &[1, 2]).is_err());
    let (c0, s0) = (
        hb.drop_to_level(&c, 0).unwrap(),
        sim.drop_to_level(&s, 0).unwrap(),
    );
    assert!(hb.rescale(&c0).is_err() && sim.rescale(&s0).is_err());
    assert!(hb.drop_to_level(&c0, 1).is_err() && sim.drop_to_level(&s0, 1).is_err());
    assert!(hb.mul_const(&c, 1e30, 1e30).is_err() && sim.mul_const(&s, 1e30, 1e30).is_err());
    assert!(sim.encrypt(&vec![0.0; sim.slots() + 1], 2, scale).is_err());
    assert!(sim.encrypt(&[0.0], sim.max_level() + 1, scale).is_err());
    assert_eq!(
        hb.counts(),
        sim.counts(),
        "he {} / sim {}",
        hb.counts(),
        sim.counts()
    );
    let no_relin = SimBackend::new(&h.params).with_keys(false, []);
    assert!(no_relin.mul_relin(&s, &s).is_err());
}

#[test]
fn modelled_noise_has_the_size_of_real_noise() {
    let h = he();
    let n = h.params.max_slots();
    let xs: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64) - 0.5).collect();
    let top = h.params.ring().max_level();
    let hb = HeBackend::new(&h.params, &h.enc, &h.eval);
    let sim = SimBackend::new(&h.params).with_noise(NoiseModel::estimate(&h.params), 17);
    let exact = SimBackend::new(&h.params);
    let scale = h.params.default_scale().0;
    let run = |x: &Ciphertext| -> Vec<f64> {
        let m = hb.rescale(&hb.mul_relin(x, x).unwrap()).unwrap();
        h.decrypt(&m)
    };
    let he_vals = run(&h.encrypt(&xs, top));
    let sx = sim.encrypt(&xs, top, scale).unwrap();
    let sim_vals = sim
        .rescale(&sim.mul_relin(&sx, &sx).unwrap())
        .unwrap()
        .values;
    let ex = exact.encrypt(&xs, top, scale).unwrap();
    let want = exact
        .rescale(&exact.mul_relin(&ex, &ex).unwrap())
        .unwrap()
        .values;
    let rms = |v: &[f64]| {
        (v.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / n as f64)
            .sqrt()
    };
    let (he_rms, sim_rms) = (rms(&he_vals), rms(&sim_vals));
    println!("noise rms after x^2: real {he_rms:.3e}, modelled {sim_rms:.3e}");
    assert!(sim_rms > 0.0 && he_rms / sim_rms < 8.0 && sim_rms / he_rms < 8.0);
}
