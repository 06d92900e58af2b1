//! The Merkle tree against a reference written straight from RFC 9162's
//! definitions (MTH, PATH, PROOF/SUBPROOF), sharing no code with the server.

use govledger::ledger::merkle::{self, IndexSource, MerkleIndex};
use govledger::ledger::Hash;
use rand::{Rng, SeedableRng};
use ring::digest::{digest, SHA256};

mod rfc {
    use super::*;

    fn sha(parts: &[&[u8]]) -> Hash {
        let joined: Vec<u8> = parts.concat();
        digest(&SHA256, &joined).as_ref().try_into().unwrap()
    }

    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => sha(&[]),
            1 => sha(&[&[0], &d[0]]),
            n => sha(&[&[1], &mth(&d[..k(n)]), &mth(&d[k(n)..])]),
        }
    }

    pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = k(n);
        if m < k {
            [path(m, &d[..k]), vec![mth(&d[k..])]].concat()
        } else {
            [path(m - k, &d[k..]), vec![mth(&d[..k])]].concat()
        }
    }

    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = k(n);
        if m <= k {
            [subproof(m, &d[..k], b), vec![mth(&d[k..])]].concat()
        } else {
            [subproof(m - k, &d[k..], false), vec![mth(&d[..k])]].concat()
        }
    }

    pub fn proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        subproof(m, d, true)
    }
}

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen()).collect()
}

fn index_of(leaves: &[Hash]) -> MerkleIndex {
    let mut index = MerkleIndex::new();
    for leaf in leaves {
        index.push(leaf);
    }
    index
}

/// Reads leaves from the slice, counting reads to show proofs stay O(log n).
fn source<'a>(
    index: &'a MerkleIndex,
    leaves: &'a [Hash],
    reads: &'a mut usize,
) -> IndexSource<'a, impl FnMut(u64, u64) -> Result<Vec<Hash>, ()> + 'a> {
    IndexSource::new(index, move |first: u64, count: u64| {
        *reads += 1;
        Ok(leaves[first as usize..(first + count) as usize].to_vec())
    })
}

#[test]
fn roots_and_proofs_match_rfc9162_for_every_size_up_to_64() {
    let all = leaves(64, 1);
    for n in 1..=64usize {
        let d = &all[..n];
        let index = index_of(d);
        let mut reads = 0;
        let mut src = source(&index, d, &mut reads);
        let root = merkle::root(&mut src, n as u64).unwrap();
        assert_eq!(root, rfc::mth(d), "root of {n}");
        for m in 0..n {
            let path = merkle::inclusion_proof(&mut src, m as u64, n as u64).unwrap();
            assert_eq!(path, rfc::path(m, d), "PATH({m}, D[{n}])");
            assert!(merkle::verify_inclusion(m as u64, n as u64, &merkle::leaf_hash(&d[m]), &path, &root));
        }
        for m in 1..=n {
            let proof = merkle::consistency_proof(&mut src, m as u64, n as u64).unwrap();
            assert_eq!(proof, rfc::proof(m, d), "PROOF({m}, D[{n}])");
            let old_root = rfc::mth(&d[..m]);
            assert!(merkle::verify_consistency(m as u64, n as u64, &old_root, &root, &proof), "{m} -> {n}");
        }
    }
}

#[test]
fn verifiers_never_accept_a_wrong_root_leaf_or_path() {
    let all = leaves(41, 2);
    for n in 1..=40usize {
        let d = &all[..n];
        let root = rfc::mth(d);
        let wrong_root = rfc::mth(&all[..n.min(39) + 1]);
        for m in 0..n {
            let path = rfc::path(m, d);
            let leaf = merkle::leaf_hash(&d[m]);
            assert!(!merkle::verify_inclusion(m as u64, n as u64, &leaf, &path, &wrong_root) || wrong_root == root);
            assert!(!merkle::verify_inclusion(m as u64, n as u64, &merkle::leaf_hash(&[9; 32]), &path, &root));
            assert!(!merkle::verify_inclusion(m as u64 + 1, n as u64, &leaf, &path, &root) || n == 1 && m == 0);
            // A path for size n does not prove inclusion in the tree of size n + 1.
            // (A size paired with another size's root is not checked: only
            // signed checkpoints bind sizes to roots, as in RFC 9162.)
            let bigger_root = rfc::mth(&all[..n + 1]);
            assert!(!merkle::verify_inclusion(m as u64, n as u64 + 1, &leaf, &path, &bigger_root));
            for i in 0..path.len() {
                let mut bad = path.clone();
                bad[i][0] ^= 1;
                assert!(!merkle::verify_inclusion(m as u64, n as u64, &leaf, &bad, &root));
                let mut short = path.clone();
                short.remove(i);
                assert!(!merkle::verify_inclusion(m as u64, n as u64, &leaf, &short, &root));
            }
            let mut long = path.clone();
            long.push([0; 32]);
            assert!(!merkle::verify_inclusion(m as u64, n as u64, &leaf, &long, &root));
        }
        for m in 1..n {
            let proof = rfc::proof(m, d);
            let old = rfc::mth(&d[..m]);
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][31] ^= 0x80;
                assert!(!merkle::verify_consistency(m as u64, n as u64, &old, &root, &bad));
            }
            let mut forged_old = old;
            forged_old[0] ^= 1;
            assert!(!merkle::verify_consistency(m as u64, n as u64, &forged_old, &root, &proof));
            assert!(!merkle::verify_consistency(m as u64, n as u64, &old, &wrong_root, &proof) || wrong_root == root);
        }
    }
}

#[test]
fn a_hundred_thousand_leaves_at_random_points_with_logarithmic_reads() {
    let n = 100_000usize;
    let all = leaves(n, 3);
    let index = index_of(&all);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    for _ in 0..10 {
        let size = rng.gen_range(1..=n);
        let d = &all[..size];
        let m = rng.gen_range(0..size);
        let mut reads = 0;
        let mut src = source(&index, &all, &mut reads);
        let root = merkle::root(&mut src, size as u64).unwrap();
        let path = merkle::inclusion_proof(&mut src, m as u64, size as u64).unwrap();
        let old = rng.gen_range(1..=size);
        let proof = merkle::consistency_proof(&mut src, old as u64, size as u64).unwrap();
        let old_root = merkle::root(&mut src, old as u64).unwrap();
        drop(src);
        assert!(reads <= 4, "{reads} leaf reads for one proof set");
        assert_eq!(path, rfc::path(m, d));
        assert_eq!(proof, rfc::proof(old, d));
        assert_eq!(root, rfc::mth(d));
        assert_eq!(old_root, rfc::mth(&all[..old]));
        assert!(merkle::verify_inclusion(m as u64, size as u64, &merkle::leaf_hash(&all[m]), &path, &root));
        assert!(merkle::verify_consistency(old as u64, size as u64, &old_root, &root, &proof));
    }
}

#[test]
fn an_index_built_in_parallel_equals_one_built_leaf_by_leaf() {
    let all = leaves(1000, 5);
    for n in (1..=70).chain([255, 256, 257, 999, 1000]) {
        let d = &all[..n];
        for threads in [1, 2, 3, 8] {
            let parallel = MerkleIndex::from_event_hashes(d, threads);
            assert_eq!(parallel.size(), n as u64);
            let mut reads = 0;
            let mut src = source(&parallel, d, &mut reads);
            assert_eq!(merkle::root(&mut src, n as u64).unwrap(), rfc::mth(d), "n {n} threads {threads}");
            let m = n / 2;
            assert_eq!(merkle::inclusion_proof(&mut src, m as u64, n as u64).unwrap(), rfc::path(m, d));
        }
    }
}
