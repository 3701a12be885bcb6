//! Property tests for RNS polynomials, ring operations and base conversion.

use proptest::prelude::*;
use psf_math::*;

fn basis(n: usize, bits: u32, count: usize, exclude: &[u64]) -> RnsBasis {
    let primes = ntt_primes(bits, n, count, PrimeSearch::Below, exclude).unwrap();
    RnsBasis::new(n, &primes).unwrap()
}

fn residues(x: i128, b: &RnsBasis) -> Vec<u64> {
    (0..b.len()).map(|i| b.modulus(i).from_i128(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exact_conversion_gives_centered_value(x in -(1i128 << 98)..(1i128 << 98)) {
        let n = 16;
        let a = basis(n, 50, 2, &[]);
        let b = basis(n, 40, 3, &a.primes());
        let conv = BasisConverter::new(&a, &b).unwrap();
        let rx = residues(x, &a);
        let inputs: Vec<Vec<u64>> = rx.iter().map(|&r| vec![r; n]).collect();
        let ins: Vec<&[u64]> = inputs.iter().map(|v| v.as_slice()).collect();
        let mut outs = vec![vec![0u64; n]; b.len()];
        let mut out_refs: Vec<&mut [u64]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        conv.convert_exact(&ins, &mut out_refs);
        let want = residues(x, &b);
        for j in 0..b.len() {
            prop_assert!(outs[j].iter().all(|&v| v == want[j]));
        }
        // Approximate: x + u*A with 0 <= u < |A|.
        let mut out_refs: Vec<&mut [u64]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        conv.convert_approx(&ins, &mut out_refs);
        let a_prod: i128 = a.primes().iter().map(|&q| q as i128).product();
        let x_pos = x.rem_euclid(a_prod);
        let ok = (0..a.len() as i128).any(|u| residues(x_pos + u * a_prod, &b).iter().enumerate().all(|(j, &r)| outs[j][0] == r));
        prop_assert!(ok);
    }

    #[test]
    fn crt_reconstruction_is_exact(x in -(1i128 << 120)..(1i128 << 120)) {
        let n = 16;
        let b = basis(n, 45, 3, &[]);
        let mut p = RnsPoly::zero(n, 3, Repr::Coeff);
        for (i, r) in residues(x, &b).into_iter().enumerate() {
            p.limb_mut(i)[5] = r;
        }
        let crt = CrtReconstructor::new(&b).unwrap();
        let got = crt.centered_f64(&p, 5);
        prop_assert!((got - x as f64).abs() <= (x as f64).abs() * 1e-15);
        prop_assert_eq!(crt.centered_f64(&p, 0), 0.0);
    }

    #[test]
    fn ring_product_is_negacyclic(seed: u64) {
        let n = 32;
        let b = basis(n, 55, 2, &[]);
        let mut s = Sampler::seeded(seed);
        let a = s.uniform_poly(&b, 2, Repr::Coeff);
        let c = s.uniform_poly(&b, 2, Repr::Coeff);
        let (mut fa, mut fc) = (a.clone(), c.clone());
        b.ntt(&mut fa);
        b.ntt(&mut fc);
        let mut prod = RnsPoly::zero(n, 2, Repr::Eval);
        b.mul(&fa, &fc, &mut prod);
        let mut acc = RnsPoly::zero(n, 2, Repr::Eval);
        b.mul_add_assign(&mut acc, &fa, &fc);
        b.mul_add_assign(&mut acc, &fa, &fc);
        let mut twice = prod.clone();
        b.add_assign(&mut twice, &prod);
        prop_assert_eq!(&acc, &twice);
        b.intt(&mut prod);
        for i in 0..2 {
            let m = b.modulus(i);
            let (x, y) = (a.limb(i), c.limb(i));
            for k in 0..n {
                let mut want = 0u64;
                for j in 0..n {
                    let (l, sign) = if j <= k { (k - j, false) } else { (n + k - j, true) };
                    let t = m.mul(x[j], y[l]);
                    want = if sign { m.sub(want, t) } else { m.add(want, t) };
                }
                prop_assert_eq!(prod.limb(i)[k], want);
            }
        }
    }

    #[test]
    fn automorphisms_agree_across_forms(seed: u64, k in 1usize..16) {
        let n = 64;
        let b = basis(n, 50, 2, &[]);
        let g = (0..k).fold(1usize, |acc, _| acc * 5 % (2 * n));
        let a = Sampler::seeded(seed).uniform_poly(&b, 2, Repr::Coeff);
        let mut coeff = RnsPoly::zero(n, 2, Repr::Coeff);
        b.automorphism_coeff(&a, g, &mut coeff);
        b.ntt(&mut coeff);
        let mut fa = a.clone();
        b.ntt(&mut fa);
        let mut eval = RnsPoly::zero(n, 2, Repr::Eval);
        b.automorphism_eval(&fa, &b.plan(0).automorphism_permutation(g), &mut eval);
        prop_assert_eq!(coeff, eval);
    }
}

#[test]
fn basis_rejects_duplicates_and_bad_degree() {
    let n = 16;
    let p = ntt_primes(30, n, 1, PrimeSearch::Below, &[]).unwrap()[0];
    assert!(matches!(
        RnsBasis::new(n, &[p, p]),
        Err(MathError::DuplicateModulus { .. })
    ));
    assert!(RnsBasis::new(24, &[p]).is_err());
}

#[test]
fn rescale_divides_with_rounding() {
    let n = 16;
    let b = basis(n, 40, 3, &[]);
    let q2 = b.modulus(2).value() as i128;
    let mut s = Sampler::seeded(9);
    let vals: Vec<i128> = (0..n)
        .map(|_| s.uniform_below(1 << 60) as i128 * 977 - (1i128 << 68))
        .collect();
    let mut p = RnsPoly::zero(n, 3, Repr::Coeff);
    for i in 0..3 {
        for (k, &v) in vals.iter().enumerate() {
            p.limb_mut(i)[k] = b.modulus(i).from_i128(v);
        }
    }
    b.ntt(&mut p);
    b.rescale_eval(&mut p);
    b.intt(&mut p);
    assert_eq!(p.limbs(), 2);
    let crt = CrtReconstructor::new(&b.prefix(2)).unwrap();
    for (k, &v) in vals.iter().enumerate() {
        let want = (v as f64 / q2 as f64).round();
        assert!(
            (crt.centered_f64(&p, k) - want).abs() <= 1.0,
            "coefficient {k}"
        );
    }
}
