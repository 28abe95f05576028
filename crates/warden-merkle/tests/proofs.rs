//! Proofs this crate generates verify, for every tree up to 70 leaves and every index
//! and prefix; a proof for another leaf, size or root does not.

#![allow(clippy::unwrap_used)]

use warden_merkle::*;

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("record {i}").as_bytes()))
        .collect()
}

#[test]
fn generated_inclusion_proofs_verify_and_mutations_fail() {
    for n in 1..=70usize {
        let l = leaves(n);
        let r = root(&l);
        for i in 0..n {
            let p = inclusion_proof(&l, i).unwrap();
            verify_inclusion(i as u64, n as u64, &l[i], &p, &r).unwrap();
            let other = (i + 1) % n;
            if other != i {
                assert!(verify_inclusion(other as u64, n as u64, &l[i], &p, &r).is_err());
            }
            let bigger = root(&leaves(n + 1));
            assert!(verify_inclusion(i as u64, n as u64 + 1, &l[i], &p, &bigger).is_err());
        }
    }
}

#[test]
fn generated_consistency_proofs_verify_and_mutations_fail() {
    for n in 1..=70usize {
        let l = leaves(n);
        let r2 = root(&l);
        for m in 1..=n {
            let r1 = root(&l[..m]);
            let p = consistency_proof(&l, m).unwrap();
            verify_consistency(m as u64, n as u64, &r1, &r2, &p).unwrap();
            if m < n {
                let wrong = root(
                    &leaves(m + 1)[..m - 1]
                        .iter()
                        .chain([leaf_hash(b"x")].iter())
                        .copied()
                        .collect::<Vec<_>>(),
                );
                assert!(verify_consistency(m as u64, n as u64, &wrong, &r2, &p).is_err());
            }
        }
    }
}

#[test]
fn the_rfc_hashing_is_domain_separated() {
    let a = leaf_hash(b"a");
    assert_ne!(a, node_hash(&a, &a));
    assert_eq!(root(&[a]), a);
    assert_eq!(root(&[]), empty_root());
}
